"""Benchmarks of ceylon_redis against a real Redis: ``python -m benchmarks.throughput``."""
