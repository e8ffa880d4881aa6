"""``python -m benchmarks``: ceylon-redis against its peers (see benchmarks/compare.py)."""

import sys

from benchmarks.compare import main

sys.exit(main())
