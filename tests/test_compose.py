"""docker-compose.yml against the code, without Docker or Redis.

No Docker engine runs in the test environment, so the file is checked for what
would break it at ``docker compose up``: each service's command is parsed by the
real ``ceylon-redis`` click group (unknown options and bad values fail, as
they would in the container), worker targets import and resolve to handlers,
every environment variable set is one the code reads, and nothing stops
``--scale`` from working. The Dockerfile is read for what those commands need.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from ceylon_redis import settings
from ceylon_redis.cli import main
from ceylon_redis.errors import ValidationError
from ceylon_redis.handlers import handlers_from, load_object

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APPS = {name: svc for name, svc in SERVICES.items() if name != "redis"}
PUBLISHED = {"dashboard"}
"""Services one publishes on the host's loopback (a browser's way in); never scaled."""
WORKERS = {name: svc for name, svc in APPS.items() if svc["command"][1:2] == ["worker"]}
PRODUCTION_TASKS = "examples.production.tasks"


# ---------------------------------------------------------------- helpers


def commands(cmd: click.Command) -> Iterator[click.Command]:
    """The command and, for a group, every command under it."""
    yield cmd
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            yield from commands(sub)


def cli_envvars() -> set[str]:
    """Every environment variable a ``ceylon-redis`` option reads (``envvar=``)."""
    names: set[str] = set()
    for cmd in commands(main):
        assert not (cmd.context_settings or {}).get("auto_envvar_prefix"), cmd.name
        for param in cmd.params:
            envvar = param.envvar
            if isinstance(envvar, str):
                names.add(envvar)
            elif envvar:
                names.update(envvar)
    return names


def code_envvars() -> set[str]:
    """Every variable the code reads: Settings.from_env's and the CLI options'."""
    return set(settings.ENV_VARS) | cli_envvars()


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, in either of compose's two forms."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def use_environment(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Exactly ``env`` of the variables the code reads, as in a fresh container."""
    for name in list(os.environ):
        if name in code_envvars() or name.startswith("CEYLON_REDIS_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def parse(monkeypatch: pytest.MonkeyPatch, argv: list[str],
          env: dict[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    """Run ``argv`` through the real click group with every callback replaced by a recorder.

    Parsing, validation and envvar lookup are click's own (not resilient), so an
    unknown command or option or a bad value raises its UsageError. Returns the
    command path of the command that would run and its parameters.
    """
    assert argv[0] == "ceylon-redis", argv
    use_environment(monkeypatch, env or {})
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(**params: Any) -> None:
        calls.append((click.get_current_context().command_path, params))

    for cmd in commands(main):
        monkeypatch.setattr(cmd, "callback", record)
    main.main(argv[1:], prog_name="ceylon-redis", standalone_mode=False)
    assert calls, argv
    return calls[-1]


def seconds(duration: str | int | float) -> float:
    """A compose duration (``40s``, ``1m30s``, ``1500ms``) in seconds."""
    if isinstance(duration, (int, float)):
        return float(duration)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def fixed_host_port(entry: str | int | dict[str, Any]) -> bool:
    """Whether a ``ports`` entry publishes on a fixed host port (which one replica holds)."""
    if isinstance(entry, dict):
        return bool(entry.get("published"))
    parts = str(entry).split("/")[0].rsplit(":", 2)
    return len(parts) > 1 and parts[-2] != ""


# ---------------------------------------------------------------- the file


def test_services_are_redis_a_coordinator_and_workers() -> None:
    assert "redis" in SERVICES
    assert [s["command"][:2] for s in APPS.values()].count(["ceylon-redis", "coordinator"]) == 1
    assert WORKERS, "no worker services"


def test_redis_persists_and_never_evicts() -> None:
    redis = SERVICES["redis"]
    cmd = [str(x) for x in redis["command"]]
    assert cmd[0] == "redis-server"
    pairs = dict(zip(cmd[1::2], cmd[2::2]))
    assert pairs["--appendonly"] == "yes"
    assert pairs["--maxmemory-policy"] == "noeviction"
    named = [v.split(":")[0] for v in redis["volumes"] if v.split(":")[1] == "/data"]
    assert named and named[0] in COMPOSE["volumes"], redis["volumes"]
    test = redis["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL") and "redis-cli" in " ".join(test[1:])
    assert "ping" in " ".join(test[1:])


@pytest.mark.parametrize("name", sorted(APPS))
def test_app_services_wait_for_a_healthy_redis(name: str) -> None:
    assert APPS[name]["depends_on"] == {"redis": {"condition": "service_healthy"}}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_no_service_pins_a_container_name(name: str) -> None:
    assert "container_name" not in SERVICES[name]


@pytest.mark.parametrize("name", sorted(APPS))
def test_app_services_can_scale(name: str) -> None:
    if name in WORKERS:
        assert "ports" not in APPS[name]
    if name not in PUBLISHED:
        assert not any(fixed_host_port(p) for p in APPS[name].get("ports", [])), name


@pytest.mark.parametrize("name", sorted(set(APPS) - PUBLISHED))
def test_app_services_publish_no_port_on_the_host(name: str) -> None:
    """``ports: ["9808"]`` publishes on a random host port of every interface; a port for
    other containers (a Prometheus on the compose network) is ``expose:``."""
    assert "ports" not in APPS[name], (name, APPS[name].get("ports"))


def test_the_dashboard_is_read_only_and_on_the_hosts_loopback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    svc = APPS["dashboard"]
    _, params = parse(monkeypatch, [str(x) for x in svc["command"]], environment(svc))
    assert not params["actions"]
    assert params["host"] == "0.0.0.0"  # inside its container: reached through the mapping
    assert [str(p) for p in svc["ports"]] == [f"127.0.0.1:{params['port']}:{params['port']}"]
    assert "dashboard" in (ROOT / "Dockerfile").read_text()  # the extra is installed


def test_the_coordinator_exposes_its_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    (svc,) = [s for s in APPS.values() if s["command"][1] == "coordinator"]
    _, params = parse(monkeypatch, [str(x) for x in svc["command"]], environment(svc))
    assert params["metrics_port"] is not None
    assert [str(p) for p in svc.get("expose", [])] == [str(params["metrics_port"])]


def test_redis_is_published_on_the_loopback_only() -> None:
    for entry in SERVICES["redis"].get("ports", []):
        assert str(entry).startswith("127.0.0.1:"), entry


def test_port_check_tells_fixed_from_ephemeral() -> None:
    assert fixed_host_port("6379:6379") and fixed_host_port("127.0.0.1:6379:6379")
    assert fixed_host_port({"target": 9100, "published": "9100"})
    assert not fixed_host_port("9100") and not fixed_host_port(9100)
    assert not fixed_host_port("127.0.0.1::9100") and not fixed_host_port({"target": 9100})


# ---------------------------------------------------------------- commands


@pytest.mark.parametrize("name", sorted(APPS))
def test_command_parses_with_the_real_cli(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = APPS[name]
    argv = [str(x) for x in svc["command"]]
    path, _ = parse(monkeypatch, argv, environment(svc))
    assert path == f"ceylon-redis {argv[1]}"


@pytest.mark.parametrize("argv, env, message", [
    (["--concurency", "20"], {}, "--concurency"),                  # a typo
    (["--concurrency", "0"], {}, "--concurrency"),                  # out of range
    (["--grace", "soon"], {}, "--grace"),                           # not a number
    ([], {"CEYLON_REDIS_LOG_LEVEL": "LOUD"}, "--log-level"),        # bad value from the env
    ([], {"CEYLON_REDIS_COORDINATOR": "maybe"}, "--coordinator"),
])
def test_the_command_check_rejects_what_the_cli_rejects(
        argv: list[str], env: dict[str, str], message: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    svc = WORKERS[sorted(WORKERS)[0]]
    good = [str(x) for x in svc["command"]]
    parse(monkeypatch, good, environment(svc))  # the service's own command passes
    with pytest.raises(click.UsageError) as info:
        parse(monkeypatch, good + argv, {**environment(svc), **env})
    assert info.value.exit_code == 2
    assert message in info.value.format_message()


@pytest.mark.parametrize("argv", [["ceylon-redis", "coordinater"],
                                  ["ceylon-redis", "coordinator", "--role", "x"],
                                  ["ceylon-redis", "worker"]])
def test_unknown_commands_and_missing_arguments_are_rejected(
        argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(click.UsageError) as info:
        parse(monkeypatch, argv)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_worker_target_resolves_to_handlers_of_its_role(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = WORKERS[name]
    _, params = parse(monkeypatch, [str(x) for x in svc["command"]], environment(svc))
    handlers = handlers_from(load_object(params["target"]), params["role"])  # as the CLI does
    assert handlers and {h.role for h in handlers} == {params["role"]}


def test_every_production_handler_has_a_worker_service(monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = importlib.import_module(PRODUCTION_TASKS)
    handlers = {f"{PRODUCTION_TASKS}:{n}" for n, f in inspect.getmembers(tasks, inspect.isfunction)
                if f.__module__ == PRODUCTION_TASKS and not n.startswith("_")}
    served = {parse(monkeypatch, [str(x) for x in s["command"]], environment(s))[1]["target"]
              for s in WORKERS.values()}
    assert handlers and handlers <= served, handlers - served


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_stop_grace_period_outlasts_the_worker_grace(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = WORKERS[name]
    _, params = parse(monkeypatch, [str(x) for x in svc["command"]], environment(svc))
    assert seconds(svc["stop_grace_period"]) > params["grace"], (svc["stop_grace_period"],
                                                                 params["grace"])


def test_durations() -> None:
    assert (seconds("40s"), seconds("1m30s"), seconds("1500ms"), seconds(5)) == (40, 90, 1.5, 5)


# ---------------------------------------------------------------- environment


def test_env_names_of_settings_are_the_ones_from_env_reads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch, {})
    for name in settings.ENV_VARS:  # each one, set alone, changes or is checked by from_env
        monkeypatch.setenv(name, "not a number")
        if name in settings.URL_ENV:
            assert settings.Settings.from_env().url == "not a number"
        elif name == settings.PREFIX_ENV:
            with pytest.raises(ValidationError):
                settings.Settings.from_env()
        else:
            with pytest.raises(ValidationError, match=name):
                settings.Settings.from_env()
        monkeypatch.delenv(name)


def test_code_envvars_include_settings_and_cli_options() -> None:
    names = code_envvars()
    assert {"CEYLON_REDIS_URL", "REDIS_URL", "CEYLON_REDIS_PREFIX", "CEYLON_REDIS_LOG_LEVEL",
            "CEYLON_REDIS_CONCURRENCY", "CEYLON_REDIS_SOCKET_TIMEOUT"} <= names
    assert "CEYLON_REDIS_CONCURENCY" not in names  # a typo would be caught


@pytest.mark.parametrize("name", sorted(APPS))
def test_service_environment_is_read_by_the_code(name: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    env = environment(APPS[name])
    assert env, f"{name} sets no environment"
    assert set(env) <= code_envvars(), set(env) - code_envvars()
    use_environment(monkeypatch, env)
    st = settings.Settings.from_env()
    assert (st.url, st.prefix) == (env["CEYLON_REDIS_URL"], env["CEYLON_REDIS_PREFIX"])
    assert st.url.startswith("redis://redis:")  # the compose service, not localhost


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_has_what_the_commands_need() -> None:
    lines = [ln.split() for ln in (ROOT / "Dockerfile").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    workdir = next(ln[1] for ln in lines if ln[0] == "WORKDIR")
    copied = {src.rstrip("/") for ln in lines if ln[0] == "COPY" for src in ln[1:-1]}
    assert {"pyproject.toml", "README.md", "ceylon_redis"} <= copied  # README: pyproject's readme
    assert any(ln[0] == "RUN" and "pip" in ln and "install" in ln
               and any(a.strip("'\"").startswith(".") for a in ln) for ln in lines)
    # `ceylon-redis worker` imports its target from the working directory
    for svc in WORKERS.values():
        package = str(svc["command"][2]).split(":")[0].split(".")[0]
        assert package in copied, package
        copy = next(ln for ln in lines if ln[0] == "COPY" and package in ln[1:-1])
        assert copy[-1].rstrip("/") in (f"./{package}", f"{workdir}/{package}"), copy
        assert svc.get("working_dir", workdir) == workdir
