"""What README.md and docs/ say, against the code (issue 27, item 7): numbers the scripts
hold, options the CLI has, and the commands the README gives. No Redis needed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from ceylon_redis.cli import main
from ceylon_redis.keys import check_task_id
from ceylon_redis.protocol import new_task_id
from ceylon_redis.scripts import source
from tests.cli_support import full_env

ROOT = Path(__file__).resolve().parent.parent
DOCS = {name: (ROOT / name).read_text()
        for name in ("README.md", "docs/api.md", "docs/architecture.md", "docs/operations.md")}


def _max_crashes() -> int:
    found = re.search(r"^local MAX_CRASHES = (\d+)$", source("requeue"), re.MULTILINE)
    assert found, "requeue.lua holds the crash budget"
    return int(found.group(1))


def test_the_crash_budget_the_docs_give_is_the_scripts() -> None:
    """README said a task lost 3 times is failed; the scripts fail it the 4th time."""
    budget = _max_crashes()
    claims = 0
    for name, text in DOCS.items():
        flat = " ".join(text.split())
        for more_than, n in re.findall(r"lost (?:with its worker )?(more than )?(\d+) times",
                                       flat):
            assert int(n) == (budget if more_than else budget + 1), (name, more_than, n)
            claims += 1
        for n in re.findall(r"budget of their own \((\d+)[^)]*\)", flat):
            assert int(n) == budget, name
            claims += 1
    assert claims >= 4


def test_every_environment_variable_a_cli_option_reads_is_in_api_md() -> None:
    """CEYLON_REDIS_PREFETCH (worker --prefetch) was missing."""
    def commands(cmd: click.Command) -> list[click.Command]:
        subs = cmd.commands.values() if isinstance(cmd, click.Group) else []
        return [cmd, *(c for sub in subs for c in commands(sub))]

    names = {v for cmd in commands(main) for p in cmd.params
             for v in ([p.envvar] if isinstance(p.envvar, str) else p.envvar or [])}
    assert "CEYLON_REDIS_PREFETCH" in names
    missing = sorted(n for n in names if f"`{n}`" not in DOCS["docs/api.md"])
    assert not missing, f"CLI environment variables missing from docs/api.md: {missing}"


def test_enqueue_help_names_the_ids_it_makes() -> None:
    """It said 'a new uuid'; ids are 16 random characters (96 bits)."""
    text = " ".join(CliRunner().invoke(main, ["enqueue", "--help"]).output.split())
    assert "uuid" not in text.lower()
    assert "Task id (default: 16 random characters, 96 bits)" in text
    ids = {new_task_id() for _ in range(10_000)}
    assert len(ids) == 10_000 and all(re.fullmatch(r"[A-Za-z0-9_.]{16}", i) for i in ids)
    assert all(check_task_id(i) == i for i in ids)  # each one a valid id to pass back


def test_the_readme_says_the_demo_falls_back_only_with_no_url_set() -> None:
    (paragraph,) = [p for p in DOCS["README.md"].split("\n\n") if p.startswith("The demo runs")]
    flat = " ".join(paragraph.split())
    assert "With `CEYLON_REDIS_URL` or `REDIS_URL` set (or `--url`), it uses that Redis and " \
           "fails if none answers there." in flat
    assert "With no URL set, it uses `localhost:6379` if a Redis answers there, else an " \
           "embedded in-process Redis" in flat
    assert "every key it leaves expires after a day" in flat


README_WORKER = "ceylon-redis worker examples.skill_levels:workers --role worker"


def test_the_readme_worker_command_says_where_it_runs() -> None:
    for name in ("README.md", "docs/api.md"):
        flat = " ".join(DOCS[name].split())
        assert f"{README_WORKER}` from the repository's root" in flat, name


def test_a_worker_target_not_importable_here_says_where_it_was_looked_for(
        tmp_path: Path) -> None:
    """From another directory, README's worker command failed with only "No module named
    'examples'"; the error now says where modules are imported from."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); import ceylon_redis.cli as c; "
            f"sys.path.remove({str(ROOT)!r}); c.main()")
    env = {k: v for k, v in full_env({}).items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code, *README_WORKER.split()[1:]],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line == (
        "error: cannot import module 'examples.skill_levels': No module named 'examples' "
        f"(modules are imported from the current directory, {tmp_path}, and PYTHONPATH: run "
        "the worker where the module is, or add its directory to PYTHONPATH)")
