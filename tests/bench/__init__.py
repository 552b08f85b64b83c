"""Benchmarks, run by hand (``python -m tests.bench.<name>``); not part of the test suite."""
