"""The clients' I/O, written once for asyncio; ``../_sync`` is generated from it."""
