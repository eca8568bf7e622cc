"""Coverage-guided fuzzing of every parser that takes bytes from the network or from uploads.

``python -m fuzz`` runs each target of :mod:`fuzz.registry` under atheris (libFuzzer) for a time
budget; ``fuzz/README.md`` explains how to run it, add a target and what each one covers.
"""
