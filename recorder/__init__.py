"""Recording subscribers and the recordings library."""
