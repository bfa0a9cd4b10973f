"""Auth service: accounts, login sessions (RS256 JWT cookies), activation and password-reset mail."""
