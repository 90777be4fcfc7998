"""Benchmarks (figures go to docs/benchmarks.md)."""
