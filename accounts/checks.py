"""System checks for accounts (the encryption keyring check lives with accounts.crypto)."""
