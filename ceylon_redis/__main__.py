"""``python -m ceylon_redis`` runs the CLI."""

from .cli import main

main()
