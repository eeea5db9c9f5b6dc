"""Benchmarks of the sync engine against a bulk-load floor and a per-model baseline.

Run ``.venv/bin/python -m benchmarks.run --help``; docs/PERFORMANCE.md explains the variants.
"""
