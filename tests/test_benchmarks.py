"""`python -m benchmarks --quick`: every workload completes on every installed peer.

Figures are reported, never asserted; what is asserted is that each workload ran,
gave a figure, and that every result it checked was right (the run exits 0 then).
The peers come with the ``bench`` extra (a venv of their own, docs/benchmarks.md);
where they are not installed only ceylon-redis runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = "ceylon-redis"
#: figures every peer must give, where its library has the API
EVERY = ["enqueue.sync one", "enqueue.sync bulk", "enqueue.async one", "enqueue.async bulk",
         "drain.async", "drain.async.spawn", "drain.sync", "drain.sync.spawn", "scale.2",
         "rtt.p50", "rtt.p99", "dag.chain", "dag.fan", "memory.queued", "memory.result"]

pytestmark = pytest.mark.slow


def test_every_workload_runs_and_checks_its_results(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--tasks", "60", "--rtt", "10",
         "--fan", "50", "--json", str(out), "--markdown", str(md)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = json.loads(out.read_text())
    assert run["ok"] and not run["problems"]
    assert run["machine"]["cores"] and run["machine"]["redis_version"]
    ran = [name for name, info in run["peers"].items() if info["status"] == "ran"]
    assert OURS in ran
    figures = {f["key"]: f for f in run["figures"]}
    assert set(EVERY) <= set(figures)
    for key in EVERY:
        f = figures[key]
        assert f["median"].get(OURS), f"{OURS} has no figure for {key}"
        for peer in ran:
            # each peer either measured it or said why it cannot
            assert f["median"].get(peer) or f["unsupported"].get(peer), (peer, key)
        if len(ran) > 1 and any(f["median"].get(p) for p in ran if p != OURS):
            assert f["ratio"] is not None and f["best_peer"] not in (None, OURS)
    assert "| measurement |" in md.read_text()


def test_the_instruction_count_benchmark_counts_a_drain(tmp_path: Path) -> None:
    if shutil.which("valgrind") is None or shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("valgrind or redis-server is not installed")
        pytest.skip("valgrind or redis-server is not installed")
    out = tmp_path / "instructions.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.redis_instructions", "--tasks", "300",
         "--only", "plain", "--only", "coordinator", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())
    for name in ("plain", "coordinator"):
        # what a noop drain costs the server: tens of thousands of instructions a task,
        # never none (counting off) nor millions (counting the start-up)
        assert 10_000 < rows[name]["instructions_per_task"] < 2_000_000, rows
        assert rows[name]["tasks"] == 300 and rows[name]["commands_per_task"] > 3
        assert 1_000 < rows[name]["enqueue_instructions_per_task"] < 1_000_000, rows
        assert rows[name]["enqueue_commands_per_task"] >= 3  # EXISTS, HSET, XADD at least
    assert rows["coordinator"]["instructions_per_task"] > rows["plain"]["instructions_per_task"]
