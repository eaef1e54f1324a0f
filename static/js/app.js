// Convai Admin behaviour (no inline scripts anywhere: strict CSP).
