"""Benchmarks: run with `nox -s bench`."""
