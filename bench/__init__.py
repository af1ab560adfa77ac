"""Benchmarks of a Reactor server: ``python -m bench`` (see ``bench.cli``)."""
