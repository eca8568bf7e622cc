"""The lecture broadcast benchmark's parts; ``benchmarks/bench_broadcast.py`` runs them."""
