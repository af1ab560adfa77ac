"""Benchmarks of a Reactor server: ``python -m bench`` (see ``bench/README.md`` and ``bench.cli``)."""
