# Generated from ceylon_redis/client/_async/__init__.py by .ci/unasync.py: do not edit.
"""The blocking clients, generated from ``../_async`` by .ci/unasync.py: do not edit."""
