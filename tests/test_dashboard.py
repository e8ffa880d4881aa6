"""The dashboard over HTTP (httpx against the ASGI app, on fakeredis): every page renders
what Redis holds, lists paginate, task fields are escaped, and actions are refused
without the token and the CSRF token. The browser tests are in test_dashboard_browser."""

from __future__ import annotations

import asyncio
import base64
import html
import re
from collections.abc import AsyncIterator

import fakeredis
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from ceylon_redis import AsyncClient, Settings, TaskDef, TaskStatus, ValidationError
from ceylon_redis.dashboard import DashboardConfig, create_app
from ceylon_redis.dashboard.actions import safe_back
from ceylon_redis.dashboard.layout import MAX_NODES, depths, draw
from ceylon_redis.dashboard.live import SharedCache
from ceylon_redis.models import TaskInfo
from ceylon_redis.worker import Worker

TOKEN = "a-test-token-1234"
EVIL = "<script>alert(1)</script>"


@pytest.fixture
async def aclient(fake_async: fakeredis.FakeAsyncRedis) -> AsyncIterator[AsyncClient]:
    c = AsyncClient(redis=fake_async, prefix="dash")
    yield c
    await c.close()


def http(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash")


def make(aclient: AsyncClient, **config: object) -> Starlette:
    return create_app(aclient, config=DashboardConfig(cache_ttl=0, **config))  # type: ignore[arg-type]


async def run_some(aclient: AsyncClient, role: str, n: int, coordinator: bool = True) -> None:
    """Let a worker in this process finish ``n`` tasks of ``role``."""
    async def handler(data: object) -> object:
        if isinstance(data, dict) and data.get("fail"):
            raise RuntimeError("told to fail")
        return data

    worker = Worker(handler, role=role, redis_client=aclient.redis, prefix="dash",
                    coordinator=coordinator)
    runner = asyncio.create_task(worker.run())
    try:
        for _ in range(400):
            stats = await aclient.queues()
            if not any(q.ready or q.running for q in stats if q.role == role):
                break
            await asyncio.sleep(0.02)
    finally:
        worker.stop()
        await asyncio.wait_for(runner, 10)


async def test_every_page_renders_what_redis_holds(aclient: AsyncClient) -> None:
    tid = await aclient.enqueue("reports", {"n": 1}, name="monthly")
    await aclient.enqueue("reports", {"n": 2}, delay=600)
    graph = await aclient.enqueue_graph([TaskDef("etl", id="a", name="extract"),
                                         TaskDef("etl", id="b", name="load", depends_on=["a"])])
    app = make(aclient)
    async with http(app) as h:
        home = await h.get("/")
        assert home.status_code == 200
        assert re.search(r'data-role="reports">.*?class="n-queued"><a [^>]*>1<', home.text, re.S)
        assert "etl" in home.text
        for path in ("/queues", "/workers", "/dead", "/schedules", "/limits", "/events",
                     "/tasks", "/tasks?role=reports&status=queued",
                     "/tasks?role=reports&status=scheduled", "/tasks?role=etl&status=waiting",
                     "/tasks?status=finished", "/login"):
            r = await h.get(path)
            assert r.status_code == 200, (path, r.text[:500])
        task = await h.get(f"/tasks/{tid}")
        assert "monthly" in task.text and "QUEUED" in task.text and '&#34;n&#34;: 1' in task.text
        g = await h.get(f"/graphs/{graph.id}")
        assert g.status_code == 200
        assert g.text.count('class="node waiting"') == 1 and g.text.count('class="edge"') == 1
        assert (await h.get("/tasks?role=reports&status=scheduled")).text.count(
            "/tasks/") >= 1
        data = (await h.get("/api/overview")).json()
        assert {r["role"] for r in data["roles"]} == {"reports", "etl"}
        assert len(data["roles"][0]["throughput"]) == 60


async def test_unknown_things_and_bad_queries_get_a_page_that_says_so(
        aclient: AsyncClient) -> None:
    await aclient.enqueue("x", 1)
    async with http(make(aclient)) as h:
        r = await h.get("/tasks/no-such-task")
        assert r.status_code == 404 and "unknown task no-such-task" in r.text
        r = await h.get("/tasks?role=x&status=bogus")
        assert r.status_code == 400 and "unknown status 'bogus'" in html.unescape(r.text)
        r = await h.get("/tasks?role=x&status=queued&cursor=9:zz")
        assert r.status_code == 400 and "bad cursor" in r.text
        for bad in ("/tasks?status=finished&cursor=0:nonsense", "/dead?cursor=\u00b2:x",
                    "/tasks?role=x&status=waiting&cursor=0:abc",
                    "/tasks?role=x&status=running&cursor=0:1-x", "/events?before=9.x",
                    "/tasks?role=x&status=queued&cursor=0:s12", "/events?part=3"):
            r = await h.get(bad)
            assert r.status_code == 400, (bad, r.status_code)
            assert "bad cursor" in r.text or "no partition" in r.text, bad
        r = await h.get("/events?kind=nope")
        assert r.status_code == 400 and "unknown event kind" in r.text
        r = await h.get(f"/tasks?role={EVIL}&status=queued")
        assert r.status_code == 400 and "no role" in r.text and EVIL not in r.text
        assert (await h.get("/graphs/nope")).status_code == 404
        r = await h.get("/tasks?id=abc")
        assert r.status_code == 303 and r.headers["location"] == "/tasks/abc"


async def test_a_list_pages_through_every_task_once(aclient: AsyncClient) -> None:
    ids = [await aclient.enqueue("bulk", i) for i in range(23)]
    ids += [await aclient.enqueue("bulk", "urgent", priority=9)]
    seen: list[str] = []
    async with http(make(aclient, page_size=10)) as h:
        url = "/tasks?role=bulk&status=queued"
        pages = 0
        while url:
            text = (await h.get(url)).text
            pages += 1
            seen += re.findall(r'<td class="mono"><a href="/tasks/([A-Za-z0-9_.]+)"', text)
            nxt = re.search(r'rel="next" href="([^"]+)"', text)
            url = nxt[1].replace("&amp;", "&") if nxt else ""
    assert pages == 3
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    assert seen[0] == ids[-1]  # the prioritized task is taken first, and listed first


@pytest.mark.parametrize("coordinator", [True, False], ids=["coordinator", "events-only"])
async def test_finished_tasks_are_listed_newest_first_every_one_once(
        aclient: AsyncClient, coordinator: bool) -> None:
    """From the coordinators' lists, merged across roles; without a coordinator, from the
    lifecycle stream (pages end inside its entries: none is lost)."""
    other = await aclient.enqueue_many("more", [{"i": i} for i in range(3)])
    await run_some(aclient, "more", 3, coordinator)
    ids = await aclient.enqueue_many("work", [{"i": i} for i in range(9)])
    bad = await aclient.enqueue("work", {"fail": True})
    await run_some(aclient, "work", 10, coordinator)
    ids += other
    async with http(make(aclient, page_size=4)) as h:
        url, listed = "/tasks?status=finished", []
        while url:
            text = (await h.get(url)).text
            page = re.findall(r'<a href="/tasks/([A-Za-z0-9_.]+)"', text)
            assert 0 < len(page) <= 4
            listed += page
            nxt = re.search(r'rel="next" href="([^"]+)"', text)
            url = html.unescape(nxt[1]) if nxt else ""
        assert sorted(listed) == sorted([*ids, bad])
        failed = (await h.get("/tasks?role=work&status=failed")).text
        assert re.findall(r'<a href="/tasks/([A-Za-z0-9_.]+)"', failed) == [bad]
        done = (await h.get("/tasks?role=work&status=completed")).text
        assert set(re.findall(r'<a href="/tasks/([A-Za-z0-9_.]+)"', done)) <= set(ids)


async def test_task_fields_are_text_not_markup(aclient: AsyncClient) -> None:
    tid = await aclient.enqueue("web", {"html": EVIL}, name=EVIL)
    async with http(make(aclient)) as h:
        for path in (f"/tasks/{tid}", "/tasks?role=web&status=queued"):
            r = await h.get(path)
            assert r.status_code == 200
            assert EVIL not in r.text, path
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text, path
            assert "script-src 'self'" in r.headers["content-security-policy"]


async def test_the_dashboard_is_read_only_unless_started_with_actions(
        aclient: AsyncClient) -> None:
    tid = await aclient.enqueue("r", 1)
    async with http(make(aclient)) as h:
        r = await h.post("/actions/cancel", data={"id": tid},
                         headers={"authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 403 and "actions are off" in r.text
        assert "read-only" in (await h.get("/")).text
    assert (await aclient.get(tid)).status is TaskStatus.QUEUED


async def test_an_action_needs_the_token_and_from_a_browser_the_csrf_token(
        aclient: AsyncClient) -> None:
    a, b, c, d = [await aclient.enqueue("r", i) for i in range(4)]
    app = make(aclient, actions=True, token=TOKEN)
    async with http(app) as h:
        r = await h.post("/actions/cancel", data={"id": a})
        assert r.status_code == 401 and "needs the dashboard's token" in html.unescape(r.text)
        r = await h.post("/actions/cancel", data={"id": a},
                         headers={"authorization": "Bearer wrong-token-000"})
        assert r.status_code == 401
        r = await h.post("/login", data={"token": "wrong-token-000"})
        assert r.status_code == 401 and "wrong token" in r.text
        assert (await aclient.get(a)).status is TaskStatus.QUEUED

        # signed in by the cookie: still refused without the CSRF token the pages carry
        r = await h.post("/login", data={"token": TOKEN, "back": "/queues"})
        assert r.status_code == 303 and r.headers["location"] == "/queues"
        assert TOKEN not in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
        r = await h.post("/actions/cancel", data={"id": a})
        assert r.status_code == 403 and "CSRF" in r.text
        page = (await h.get(f"/tasks/{a}")).text
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert csrf, "a signed-in page carries the CSRF token"
        r = await h.post("/actions/cancel", data={"id": a, "csrf": csrf[1]},
                         headers={"origin": "http://evil.example"})
        assert r.status_code == 403 and "cross-origin" in r.text
        r = await h.post("/actions/cancel", data={"id": a, "csrf": csrf[1],
                                                  "back": f"/tasks/{a}"})
        assert r.status_code == 303 and r.headers["location"].startswith(f"/tasks/{a}?msg=")
        assert (await aclient.get(a)).status is TaskStatus.CANCELLED
        assert "cancelled 1" in (await h.get(r.headers["location"])).text
        # a message only the dashboard's own actions can put on its pages
        forged = await h.get(f"/tasks/{a}?msg=Your+session+expired,+go+to+evil.example")
        assert "evil.example" not in forged.text

        await h.post("/logout")
        h.cookies.clear()
        assert 'name="csrf"' not in (await h.get(f"/tasks/{b}")).text

    async with http(app) as h:  # an API caller: a Bearer header needs no CSRF token
        r = await h.post("/actions/cancel", data={"id": b}, headers={
            "authorization": f"Bearer {TOKEN}", "accept": "application/json"})
        assert r.status_code == 200 and r.json() == {"ok": "cancelled 1"}
        r = await h.get("/", headers={"authorization": "Basic \u00e9".encode("latin-1")})
        assert r.status_code == 200  # not base64: not signed in, not an error
        basic = base64.b64encode(f"ops:{TOKEN}".encode()).decode()
        r = await h.post("/actions/cancel", data={"id": c},
                         headers={"authorization": f"Basic {basic}"})
        assert r.status_code == 403  # basic auth is sent by browsers on their own: CSRF too
    assert (await aclient.get(b)).status is TaskStatus.CANCELLED
    assert (await aclient.get(c)).status is TaskStatus.QUEUED
    assert (await aclient.get(d)).status is TaskStatus.QUEUED


async def test_dead_letters_are_retried_and_purged_from_the_page(
        aclient: AsyncClient) -> None:
    bad = [await aclient.enqueue("dl", {"fail": True}) for _ in range(3)]
    await run_some(aclient, "dl", 3)
    assert await aclient.dead_letter_count() == 3
    async with http(make(aclient, actions=True, token=TOKEN)) as h:
        await h.post("/login", data={"token": TOKEN})
        page = (await h.get("/dead")).text
        assert all(t in page for t in bad)
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert csrf
        r = await h.post("/actions/retry-dead", data={"id": bad[0], "csrf": csrf[1],
                                                      "back": "/dead"})
        assert r.status_code == 303 and "retried%201" in r.headers["location"]
        assert (await aclient.get(bad[0])).status is TaskStatus.QUEUED
        entry = (await aclient.dead_letters())[0].id
        r = await h.post("/actions/purge-dead", data={"id": entry, "csrf": csrf[1]})
        assert r.status_code == 303
        r = await h.post("/actions/purge-dead", data={"csrf": csrf[1]})
        assert "error=" in r.headers["location"]  # nothing named, nothing confirmed
        r = await h.post("/actions/retry-dead", data={"csrf": csrf[1]})
        assert "error=" in r.headers["location"]
    assert await aclient.dead_letter_count() == 1


async def test_schedules_are_paused_and_resumed(aclient: AsyncClient) -> None:
    await aclient.add_schedule("nightly", "r", every=3600)
    await aclient.set_limit("r", rate="10/s", concurrency=3)
    async with http(make(aclient, actions=True, token=TOKEN)) as h:
        await h.post("/login", data={"token": TOKEN})
        page = (await h.get("/schedules")).text
        assert "nightly" in page and "active" in page
        limits = (await h.get("/limits")).text
        assert "10.0 per 1.0 s (burst 1)" in limits and "3 at once" in limits
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert csrf
        await h.post("/actions/pause-schedule", data={"schedule": "nightly", "csrf": csrf[1]})
        assert (await aclient.schedule("nightly")).paused
        assert ">paused<" in (await h.get("/schedules")).text
        r = await h.post("/actions/pause-schedule", data={"schedule": "none", "csrf": csrf[1],
                                                          "back": "/schedules"})
        assert "error=no%20schedule" in r.headers["location"]
        await h.post("/actions/resume-schedule", data={"schedule": "nightly", "csrf": csrf[1]})
    assert not (await aclient.schedule("nightly")).paused


async def test_it_mounts_under_a_path_of_another_app(aclient: AsyncClient) -> None:
    tid = await aclient.enqueue("r", 1)
    outer = Starlette(routes=[Mount("/ops/queue", app=make(aclient))])
    async with http(outer) as h:
        r = await h.get("/ops/queue/")
        assert r.status_code == 200
        assert 'href="/ops/queue/static/dashboard.css"' in r.text
        assert 'href="/ops/queue/queues"' in r.text
        assert (await h.get("/ops/queue/static/dashboard.js")).status_code == 200
        assert (await h.get(f"/ops/queue/tasks/{tid}")).status_code == 200


def test_the_token_is_not_in_the_configs_repr() -> None:
    assert TOKEN not in repr(DashboardConfig(actions=True, token=TOKEN))


def test_bad_options_are_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="needs a token"):
        DashboardConfig(actions=True).check()
    with pytest.raises(ValidationError, match="at least 8"):
        DashboardConfig(actions=True, token="short").check()
    with pytest.raises(ValidationError, match="page_size"):
        DashboardConfig(page_size=0).check()


def test_after_an_action_the_browser_goes_back_only_to_this_dashboard() -> None:
    assert safe_back("/dead?role=x", "") == "/dead?role=x"
    assert safe_back("//evil.example/x", "") == "/"
    assert safe_back("https://evil.example/", "") == "/"
    assert safe_back("/other/app", "/ops") == "/ops/"
    assert safe_back("/ops/dead", "/ops") == "/ops/dead"


def _t(tid: str, *deps: str) -> TaskInfo:
    return TaskInfo(id=tid, role="r", status=TaskStatus.WAITING, depends_on=list(deps))


def test_a_graph_is_drawn_in_columns_by_depth() -> None:
    tasks = [_t("a"), _t("b", "a"), _t("c", "a"), _t("d", "b", "c"), _t("e", "a", "d")]
    assert depths(tasks) == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 3}
    drawing = draw(tasks)
    assert drawing is not None and len(drawing.edges) == 6
    xs = {n.task.id: n.x for n in drawing.nodes}
    assert xs["a"] < xs["b"] == xs["c"] < xs["d"] < xs["e"]
    assert set(depths([_t("x", "y"), _t("y", "x")])) == {"x", "y"}  # a cycle ends
    chain = [_t("n0")] + [_t(f"n{i}", f"n{i - 1}") for i in range(1, 3000)]
    assert depths(chain)["n2999"] == 2999  # no recursion limit
    assert draw(chain[:MAX_NODES + 1]) is None


async def test_concurrent_looks_share_one_read_of_redis() -> None:
    cache, calls = SharedCache(ttl=10), []

    async def make_value() -> int:
        calls.append(1)
        await asyncio.sleep(0.05)
        return len(calls)

    values = await asyncio.gather(*(cache.get("k", make_value) for _ in range(20)))
    assert values == [1] * 20 and len(calls) == 1
    assert await cache.get("k", make_value) == 1
    cache.clear()
    assert await cache.get("k", make_value) == 2


async def test_with_partitions_every_list_pages_through_every_partition(
        fake_async: fakeredis.FakeAsyncRedis) -> None:
    settings = Settings(prefix="dashp", partitions=3)
    async with AsyncClient(settings=settings, redis=fake_async) as client:
        queued = [await client.enqueue("spread", i) for i in range(20)]
        later = [await client.enqueue("spread", i, delay=600) for i in range(7)]
        assert {client.parts.home(t).partition for t in queued} == {0, 1, 2}
        app = create_app(client, config=DashboardConfig(cache_ttl=0, page_size=4))
        async with http(app) as h:
            for status, want in (("queued", queued), ("scheduled", later)):
                url, seen = f"/tasks?role=spread&status={status}", []
                while url:
                    text = (await h.get(url)).text
                    seen += re.findall(r'<td class="mono"><a href="/tasks/([A-Za-z0-9_.]+)"', text)
                    nxt = re.search(r'rel="next" href="([^"]+)"', text)
                    url = html.unescape(nxt[1]) if nxt else ""
                assert sorted(seen) == sorted(want), status
            for tid in queued[:3] + later[:1]:
                assert (await h.get(f"/tasks/{tid}")).status_code == 200
            home = (await h.get("/")).text
            assert re.search(r'data-role="spread">.*?class="n-queued"><a [^>]*>20<', home, re.S)
            events = (await h.get("/events?part=2")).text
            assert "partition" in events and "/tasks/" in events


async def test_merged_lists_end_on_the_last_full_page_and_survive_their_expiry(
        aclient: AsyncClient) -> None:
    ids = {r: [await aclient.enqueue(r, i) for i in range(4)] for r in ("ra", "rb")}
    keys, now = aclient.keys, 1_796_000_000
    for r, tids in ids.items():  # as the coordinators write them: newest first
        for i, tid in enumerate(tids):
            await aclient.redis.lpush(keys.recent(r), f"C {now + i * 2 + (r == 'rb')} {tid}")
    async with http(make(aclient, page_size=4)) as h:
        first = (await h.get("/tasks?status=completed")).text
        shown = re.findall(r'<td class="mono"><a href="/tasks/([A-Za-z0-9_.]+)"', first)
        assert shown == [ids["rb"][3], ids["ra"][3], ids["rb"][2], ids["ra"][2]]  # by time
        nxt = re.search(r'rel="next" href="([^"]+)"', first)
        assert nxt
        second = (await h.get(html.unescape(nxt[1]))).text
        assert re.findall(r'<td class="mono"><a href="/tasks/([A-Za-z0-9_.]+)"', second) == [
            ids["rb"][1], ids["ra"][1], ids["rb"][0], ids["ra"][0]]
        assert 'rel="next"' not in second  # exactly full, and nothing after it
        for r in ids:
            await aclient.redis.delete(keys.recent(r))
        gone = await h.get(html.unescape(nxt[1]))  # a Next link made before they expired
        assert gone.status_code == 200 and "none" in gone.text
