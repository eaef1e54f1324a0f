"""Signal receivers that feed the audit log (sign-in, sign-out, failures, lockouts)."""
