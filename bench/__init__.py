"""Benchmarks of a Reactor server: ``python -m bench``.

See ``bench/README.md`` and ``bench.cli``.
"""
