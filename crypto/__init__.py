"""Password hashing, token signing, SRTP profile policy."""
