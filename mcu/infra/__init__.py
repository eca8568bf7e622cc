"""Plumbing every layer may use: metrics, the SQLite helper, HTTP error bodies, limits."""
