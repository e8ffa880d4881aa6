"""docs/api.md keeps up with the code: every public name is documented, every example runs.

A ```python block preceded by the line ``<!-- runnable -->`` is run in-process,
each against a fresh embedded Redis (``embedded://``), with the environment
pointing there too so that nothing reaches a real Redis. No Redis is needed.
"""

from __future__ import annotations

import inspect
import re
import sys
import types
from pathlib import Path

import pytest

import ceylon_redis
from ceylon_redis import (
    AsyncClient,
    AsyncGraph,
    Client,
    Coordinator,
    Graph,
    Settings,
    TaskProcessingPlayground,
    Worker,
    connection,
)
from ceylon_redis.settings import ENV_VARS

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
TEXT = DOC.read_text()
MARK = "<!-- runnable -->"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _code_words() -> set[str]:
    """Every identifier inside inline code spans and fenced blocks of the doc."""
    fenced = re.findall(r"^```[a-z]*\n(.*?)^```$", TEXT, re.MULTILINE | re.DOTALL)
    inline = re.findall(r"`([^`\n]+)`", BLOCK.sub("", TEXT))
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", " ".join(fenced + inline)))


WORDS = _code_words()


def _public_methods(cls: type) -> list[str]:
    return sorted(name for name, _ in inspect.getmembers(cls, callable)
                  if not name.startswith("_"))


def _runnable_blocks() -> list[tuple[int, str]]:
    """(line number, code) of each python block right after a runnable marker."""
    out = []
    for m in BLOCK.finditer(TEXT):
        before = TEXT[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if before.strip() == MARK:
            out.append((TEXT.count("\n", 0, m.start()) + 2, m.group(1)))
    return out


RUNNABLE = _runnable_blocks()


@pytest.mark.parametrize("name", ceylon_redis.__all__)
def test_exported_name_is_documented(name: str) -> None:
    assert name in WORDS, f"ceylon_redis.{name} is not in docs/api.md (in `code`)"


@pytest.mark.parametrize("cls", [Client, AsyncClient, Graph, AsyncGraph, Worker, Coordinator,
                                 TaskProcessingPlayground], ids=lambda c: c.__name__)
def test_public_methods_are_documented(cls: type) -> None:
    missing = [m for m in _public_methods(cls) if m not in WORDS]
    assert not missing, f"{cls.__name__} methods missing from docs/api.md: {missing}"


def test_clients_have_the_same_methods() -> None:
    assert _public_methods(Client) == _public_methods(AsyncClient)


def test_settings_fields_and_environment_are_documented() -> None:
    fields = [f for f in Settings.__dataclass_fields__ if f not in WORDS]
    env = [v for v in ENV_VARS if v not in WORDS]
    assert not fields and not env, f"missing from docs/api.md: {fields + env}"


def test_there_are_runnable_blocks() -> None:
    assert len(RUNNABLE) >= 4


@pytest.mark.parametrize("line, code", RUNNABLE, ids=[f"line{n}" for n, _ in RUNNABLE])
def test_runnable_block(line: int, code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "_embedded_server", None)  # a fresh one for this block
    monkeypatch.setenv("CEYLON_REDIS_URL", "embedded://")
    monkeypatch.delenv("REDIS_URL", raising=False)
    name = f"api_doc_line{line}"
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, name, module)  # for dataclasses and pickling lookups
    exec(compile(code, f"{DOC}:{line}", "exec"), module.__dict__)
