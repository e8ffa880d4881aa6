"""The dashboard in a real headless browser (Debian's chromium and chromedriver, driven by
selenium), served by ``ceylon-redis dashboard`` as a subprocess, with worker daemons on
real Redis: pages update live without a reload, a dead letter retried from the page runs
again, an action without the token is refused, and task fields are shown as text.
With CEYLON_REDIS_SCREENSHOTS=<dir> the last test saves the main pages there
(docs/img holds a set made this way)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ceylon_redis import Client, TaskDef, TaskStatus
from tests.conftest import ROOT, Daemon, spawn_coordinator, spawn_worker
from tests.test_integration import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

TOKEN = "browser-test-token"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PROGRESSING = "tests.handlers_for_tests:progressing"
FLAKY = "tests.handlers_for_tests:flaky"
FAST = {"CEYLON_REDIS_PROGRESS_INTERVAL": "0.05"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless chromium for the module; fails (not skips) under CI=true without it."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        msg = "no chromium/chromedriver (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,900", "--disable-gpu"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(redis_url: str, prefix: str, daemons: list[Daemon]) -> str:
    """``ceylon-redis dashboard --actions`` on the test namespace; its base URL."""
    port = free_port()
    env = {**os.environ, "CEYLON_REDIS_URL": redis_url, "CEYLON_REDIS_PREFIX": prefix,
           "PYTHONPATH": str(ROOT)}
    d = Daemon(["dashboard", "--port", str(port), "--actions", "--token", TOKEN,
                "--refresh", "0.5"], env)
    daemons.append(d)
    d.wait_for("dashboard of")
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(base), timeout=15)
    return base


@pytest.fixture
def dashboard(served: str, browser: Any) -> str:
    """``served``, with the browser signed out."""
    browser.delete_all_cookies()
    return served


def _answers(base: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(base + "/queues", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def until(browser: Any, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """The first truthy value of ``check``, looked at every 0.1 s (AssertionError after)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := check():
                return value
        except Exception:  # the live region was swapped between find and read
            pass
        time.sleep(0.1)
    raise AssertionError(f"not so after {timeout} s; page:\n{browser.page_source[:3000]}")


def mark_page(browser: Any) -> None:
    """Set a flag that a reload would clear: live updates must keep it."""
    browser.execute_script("window.__sameDocument = 1;")


def same_document(browser: Any) -> bool:
    return bool(browser.execute_script("return window.__sameDocument === 1;"))


def sign_in(browser: Any, base: str) -> None:
    browser.get(base + "/login")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "sign-in").click()
    until(browser, lambda: "sign out" in browser.page_source)


def test_the_event_stream_reaches_every_listener_and_comes_back_after_all_left(
        served: str, client: Client) -> None:
    import httpx

    def first_event_of(task_id_box: list[str], got: list[dict[str, Any]]) -> None:
        with httpx.stream("GET", served + "/api/stream", timeout=20) as r:
            for line in r.iter_lines():
                if line.startswith("data: ") and task_id_box:
                    got += [e for e in json.loads(line[6:]) if e["task_id"] == task_id_box[0]]
                    if got:
                        return

    for round_ in range(2):  # the second time, the one tail of the stream starts again
        box: list[str] = []
        results: list[list[dict[str, Any]]] = [[], [], []]
        threads = [threading.Thread(target=first_event_of, args=(box, r)) for r in results]
        for t in threads:
            t.start()
        time.sleep(1.0)  # connected and listening
        box.append(client.enqueue("streamed", round_))
        for t in threads:
            t.join(20)
        assert all(r and r[0]["kind"] == "enqueued" for r in results), results


def test_the_overview_shows_a_role_once_tasks_are_enqueued(
        browser: Any, dashboard: str, client: Client) -> None:
    browser.get(dashboard + "/")
    assert not browser.find_elements(By.CSS_SELECTOR, 'tr[data-role="fresh"]')
    mark_page(browser)
    client.enqueue_many("fresh", list(range(5)))
    cell = until(browser, lambda: browser.find_element(
        By.CSS_SELECTOR, 'tr[data-role="fresh"] td.n-queued'))
    until(browser, lambda: cell.text == "5" or browser.find_element(
        By.CSS_SELECTOR, 'tr[data-role="fresh"] td.n-queued').text == "5")
    assert same_document(browser), "the page was reloaded, not updated"
    assert browser.execute_script("return document.body.dataset.stream;") == "open"


def test_a_running_tasks_progress_moves_on_its_page(
        browser: Any, dashboard: str, client: Client, redis_url: str, prefix: str,
        daemons: list[Daemon]) -> None:
    spawn_worker(daemons, redis_url, prefix, PROGRESSING, "--role", "steps", env=FAST)
    tid = client.enqueue("steps", {"steps": 40, "sleep": 0.15}, name="long report")
    browser.get(f"{dashboard}/tasks/{tid}")
    mark_page(browser)
    seen: list[float] = []

    def fraction() -> bool:
        # both read in one script, from one state of the page: read one by one, an
        # update in between could pair the last fraction before it with its status after
        value, status = browser.execute_script(
            "return [document.getElementById('task-progress').dataset.fraction,"
            " document.getElementById('task-status').textContent];")
        if value and (not seen or float(value) != seen[-1]):
            seen.append(float(value))
        return "COMPLETED" in status

    until(browser, fraction, timeout=30)
    assert len(seen) >= 3, seen
    assert seen == sorted(seen) and seen[-1] == 1.0, seen
    assert same_document(browser)


def test_a_dead_letter_retried_from_the_page_runs_again(
        browser: Any, dashboard: str, client: Client, redis_url: str, prefix: str,
        daemons: list[Daemon], sync_redis: Any) -> None:
    spawn_worker(daemons, redis_url, prefix, FLAKY, "--role", "flaky")
    fail_key = "{" + prefix + "}:test:fail:job-1"
    sync_redis.set(fail_key, 1)  # it fails until the key is gone
    tid = client.enqueue("flaky", None, task_id="job-1", max_attempts=1, name="flaky job")
    wait_until(lambda: client.dead_letter_count() == 1, timeout=15)
    sync_redis.delete(fail_key)
    sign_in(browser, dashboard)
    browser.get(dashboard + "/dead")
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-task="{tid}"]')
    assert "is told to fail" in row.text
    row.find_element(By.CSS_SELECTOR, 'button[data-action="retry-dead"]').click()
    until(browser, lambda: "retried 1" in browser.find_element(By.CSS_SELECTOR,
                                                                ".flash.ok").text)
    wait_until(lambda: client.get(tid).status is TaskStatus.COMPLETED, timeout=15)
    runs = int(sync_redis.get("{" + prefix + "}:test:runs:job-1"))
    assert runs == 2 and client.get(tid).result.success  # type: ignore[union-attr]


def test_an_action_without_the_token_is_refused(
        browser: Any, dashboard: str, client: Client) -> None:
    tid = client.enqueue("keep", 1)
    browser.get(f"{dashboard}/tasks/{tid}")
    assert not browser.find_elements(By.CSS_SELECTOR, 'button[data-action="cancel"]')
    browser.execute_script("""
        const f = document.createElement('form');
        f.method = 'post'; f.action = '/actions/cancel';
        const i = document.createElement('input');
        i.name = 'id'; i.value = arguments[0]; f.appendChild(i);
        document.body.appendChild(f); f.submit();""", tid)
    problem = until(browser, lambda: browser.find_element(By.ID, "problem"))
    assert "needs the dashboard's token" in problem.text
    assert client.get(tid).status is TaskStatus.QUEUED


def test_a_task_named_script_is_shown_as_text(
        browser: Any, dashboard: str, client: Client) -> None:
    name = "<script>alert(1)</script>"
    data = {"html": '<img src=x onerror="window.__pwned=1">'}
    tid = client.enqueue("web", data, name=name)
    for path in (f"/tasks/{tid}", "/tasks?role=web&status=queued", "/events"):
        browser.get(dashboard + path)
        time.sleep(0.3)
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018
        assert not browser.execute_script("return window.__pwned === 1;")
        assert name in browser.find_element(By.TAG_NAME, "main").text or path == "/events"
    browser.get(f"{dashboard}/tasks/{tid}")
    assert browser.find_element(By.ID, "task-name").text == name
    assert '<img src=x onerror=' in browser.find_element(By.ID, "task-data").text


def test_the_main_pages_render_without_script_errors(
        browser: Any, dashboard: str, client: Client, redis_url: str, prefix: str,
        daemons: list[Daemon], tmp_path: Path) -> None:
    spawn_coordinator(daemons, redis_url, prefix)
    spawn_worker(daemons, redis_url, prefix, PROGRESSING, "--role", "reports", env=FAST)
    spawn_worker(daemons, redis_url, prefix, FLAKY, "--role", "flaky")
    for i in range(30):
        client.enqueue("reports", {"steps": 4, "sleep": 0.01 * (i % 7)}, name=f"report {i}")
    for _ in range(3):
        client.enqueue("flaky", {"fail_first": True}, max_attempts=1, name="import batch")
    graph = client.enqueue_graph([
        TaskDef("reports", {"steps": 3, "sleep": 0.1}, id="extract", name="extract"),
        TaskDef("reports", {"steps": 3, "sleep": 0.1}, id="clean", name="clean",
                depends_on=["extract"]),
        TaskDef("reports", {"steps": 3, "sleep": 0.1}, id="aggregate", name="aggregate",
                depends_on=["extract"]),
        TaskDef("flaky", {"fail_first": True}, id="publish", name="publish",
                depends_on=["clean", "aggregate"], max_attempts=1),
        TaskDef("reports", {"steps": 3}, id="notify", name="notify", depends_on=["publish"])])
    client.add_schedule("hourly-digest", "reports", {"steps": 1}, every=3600)
    client.set_limit("reports", concurrency=8)
    wait_until(lambda: graph.info().status != "running", timeout=30)
    wait_until(lambda: client.stats().overall.finished >= 33, timeout=30)
    long_one = client.enqueue("reports", {"steps": 200, "sleep": 0.1}, name="quarterly report")
    wait_until(lambda: (client.get(long_one).progress or 0) > 0.1, timeout=15)
    shots = Path(os.environ.get("CEYLON_REDIS_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    sign_in(browser, dashboard)
    pages = {"overview": "/", "queues": "/queues", "workers": "/workers",
             "task": f"/tasks/{long_one}", "graph": f"/graphs/{graph.id}", "dead": "/dead",
             "tasks": "/tasks?status=finished", "schedules": "/schedules",
             "events": "/events"}
    browser.get_log("browser")  # forget what came before
    for name, path in pages.items():
        browser.get(dashboard + path)
        until(browser, lambda: browser.find_element(By.TAG_NAME, "h1"))
        if name == "overview":
            until(browser, lambda: browser.find_element(By.ID, "charts").get_attribute(
                "data-drawn") == "2")
        time.sleep(0.8)
        browser.save_screenshot(str(shots / f"dashboard-{name}.png"))
        assert (shots / f"dashboard-{name}.png").stat().st_size > 10_000
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    browser.get(f"{dashboard}/graphs/{graph.id}")
    nodes = browser.find_elements(By.CSS_SELECTOR, "svg.dag g.node")
    assert len(nodes) == 5
    assert {n.get_attribute("class") for n in nodes} == {
        "node completed", "node failed", "node cancelled"}
