// ceylon-redis dashboard: live regions, charts, confirmations. No inline script runs
// (the pages' Content-Security-Policy forbids it); everything starts from here.
(function () {
  "use strict";
  const body = document.body;
  const root = body.dataset.root || "";
  const refreshMs = Math.max(500, parseFloat(body.dataset.refresh || "2") * 1000);

  document.addEventListener("submit", function (ev) {
    const form = ev.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      ev.preventDefault();
    }
  });

  const live = document.getElementById("live");
  let pending = null;
  let busy = false;
  let last = "";

  function fragmentUrl() {
    const sep = location.search ? "&" : "?";
    return location.pathname + location.search + sep + "fragment=1";
  }

  function isFinal() {
    return live && live.dataset.final === "yes";
  }

  async function refresh() {
    pending = null;
    if (!live || busy) return;
    busy = true;
    try {
      const res = await fetch(fragmentUrl(), { headers: { "Accept": "text/html" } });
      if (res.ok) {
        const html = await res.text();
        if (html !== last) {
          last = html;
          live.innerHTML = html;
          body.dataset.refreshed = String(Date.now());
        }
        const probe = live.querySelector("[data-final-now]");
        if (probe) live.dataset.final = "yes";
      }
    } catch (e) { /* the server is away: the next tick tries again */ }
    busy = false;
  }

  function soon(delay) {
    if (!pending) pending = setTimeout(refresh, delay);
  }

  const feed = document.getElementById("feed");
  function addToFeed(events) {
    if (!feed) return;
    for (const e of events) {
      if (e.kind === "progress") continue;
      const li = document.createElement("li");
      const time = document.createElement("time");
      time.textContent = e.at.replace("T", " ").slice(0, 19);
      const kind = document.createElement("span");
      kind.className = "kind " + e.kind;
      kind.textContent = e.kind;
      const link = document.createElement("a");
      link.className = "mono";
      link.href = root + "/tasks/" + encodeURIComponent(e.task_id);
      link.textContent = e.task_id;
      li.append(time, " ", kind, " " + e.role + " ", link);
      feed.prepend(li);
    }
    while (feed.children.length > 50) feed.lastChild.remove();
  }

  // One event stream per visible tab: a browser allows about six connections to a host,
  // so a hidden tab gives its stream up (and catches up by a refresh when shown again).
  let source = null;
  function openStream() {
    if (source || !live || !live.dataset.stream || !window.EventSource) return;
    source = new EventSource(live.dataset.stream);
    source.onmessage = function (msg) {
      let events = [];
      try { events = JSON.parse(msg.data); } catch (e) { return; }
      addToFeed(events);
      soon(250);
    };
    source.onerror = function () {
      // closed for good (a refusal, a server error): the next showing of the tab retries
      if (source && source.readyState === EventSource.CLOSED) closeStream();
    };
    body.dataset.stream = "open";
  }
  function closeStream() {
    if (source) { source.close(); source = null; body.dataset.stream = "closed"; }
  }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { closeStream(); } else { openStream(); soon(0); }
  });
  if (!document.hidden) openStream();
  if (live) {
    setInterval(function () {
      if (!document.hidden && !isFinal()) soon(0);
    }, refreshMs);
  }

  // Charts (overview): finished per minute per role, and run-time percentiles.
  const charts = document.getElementById("charts");
  if (charts && window.uPlot) {
    let plots = [];
    const colors = ["#2b6cb0", "#1f8a4c", "#c0392b", "#b7791f", "#7c5cbf", "#4a5568",
                    "#d53f8c", "#319795"];
    const select = document.getElementById("latency-role");
    let latest = null;

    function width(el) { return Math.max(300, el.clientWidth - 10); }

    function draw(data) {
      latest = data;
      plots.forEach(function (p) { p.destroy(); });
      plots = [];
      const minute = data.minute;
      const xs = [];
      for (let i = 0; i < 60; i++) xs.push((minute - 59 + i) * 60);
      const tEl = document.getElementById("chart-throughput");
      const series = [{}];
      const values = [xs];
      data.roles.forEach(function (r, i) {
        series.push({ label: r.role, stroke: colors[i % colors.length], width: 2,
                      points: { show: true, size: 4 } });
        values.push(r.throughput);
      });
      plots.push(new uPlot({ width: width(tEl), height: 220, series: series,
                             axes: [{}, { label: "tasks / min" }] }, values, tEl));
      const lEl = document.getElementById("chart-latency");
      const pick = select ? select.value : "*";
      const row = pick === "*" ? data.overall : data.roles.find(function (r) { return r.role === pick; });
      const lat = row ? row.run_by_minute : [];
      const col = function (k) { return lat.map(function (p) { return p[k] === null ? null : p[k] * 1000; }); };
      plots.push(new uPlot({ width: width(lEl), height: 220,
        series: [{}, { label: "p50", stroke: "#1f8a4c", width: 2, points: { show: true, size: 5 } },
                 { label: "p95", stroke: "#b7791f", width: 2, points: { show: true, size: 5 } },
                 { label: "p99", stroke: "#c0392b", width: 2, points: { show: true, size: 5 } }],
        axes: [{}, { label: "ms" }] }, [xs, col(0), col(1), col(2)], lEl));
      charts.dataset.drawn = String(data.roles.length);
    }

    async function load() {
      if (document.hidden) return;
      try {
        const res = await fetch(charts.dataset.src, { headers: { "Accept": "application/json" } });
        if (res.ok) draw(await res.json());
      } catch (e) { /* next tick */ }
    }
    if (select) select.addEventListener("change", function () { if (latest) draw(latest); });
    load();
    setInterval(load, Math.max(refreshMs * 5, 10000));
  }
})();
