"""The load-test tool's parts (``benchmarks/loadtest.py`` is the entry point)."""
