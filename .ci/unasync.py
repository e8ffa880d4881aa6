"""Generate the blocking client from the asyncio one: ceylon_redis/client/_async -> _sync.

The asyncio side is the one source; this rewrites each of its modules token by
token as httpcore does (``async def`` -> ``def``, ``await x`` -> ``x``, AsyncX -> X,
...) and writes the result to ``_sync`` with a header saying so.

    python .ci/unasync.py           # write the blocking modules
    python .ci/unasync.py --check   # exit 1, naming them, if any is not current
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "ceylon_redis" / "client" / "_async"
TARGET = ROOT / "ceylon_redis" / "client" / "_sync"

SUBS = [
    # Docstrings that name the flavour.
    ("The clients' I/O, written once for asyncio; ``../_sync`` is generated from it.",
     "The blocking clients, generated from ``../_async`` by .ci/unasync.py: do not edit."),
    ("The asyncio producer: enqueue, wait, inspect.",
     "The blocking producer, for scripts and web apps (Flask, Django)."),
    ("the asyncio producer", "the blocking producer"),
    ("for asyncio code", "for blocking code"),
    # Syntax.
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\baclose\b", "close"),
    # Names whose blocking twin is not just the name without "Async".
    (r"\bAsyncWaiter\b", "SyncWaiter"),
    (r"\basync_redis\b", "sync_redis"),
    (r"\brun_each_async\b", "run_each"),
    (r"\bcheck_async\b", "check"),
    (r"\bimport asyncio\b", "import time"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"\bAsync([A-Z]\w*)", r"\1"),
]
COMPILED = [(re.compile(p if p.startswith(r"\b") else re.escape(p)), r) for p, r in SUBS]


def unasync(text: str, name: str) -> str:
    for pattern, repl in COMPILED:
        text = pattern.sub(repl, text)
    header = (f"# Generated from ceylon_redis/client/_async/{name} by .ci/unasync.py: "
              "do not edit.\n")
    return header + text


def expected() -> dict[Path, str]:
    return {TARGET / src.name: unasync(src.read_text(), src.name)
            for src in sorted(SOURCE.glob("*.py"))}


def main(argv: list[str]) -> int:
    want = expected()
    stale = [p for p, text in want.items() if not p.exists() or p.read_text() != text]
    extra = [p for p in TARGET.glob("*.py") if p not in want]
    if "--check" in argv:
        for p in [*stale, *extra]:
            print(f"{p.relative_to(ROOT)} is not generated from _async as it stands: "
                  "run python .ci/unasync.py", file=sys.stderr)
        return 1 if stale or extra else 0
    TARGET.mkdir(exist_ok=True)
    for p in stale:
        p.write_text(want[p])
        print(f"wrote {p.relative_to(ROOT)}")
    for p in extra:
        p.unlink()
        print(f"removed {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
