"use strict";
// Ferry's control room: reads the JSON API this page is served by. Text from the API is only
// ever set as textContent (never parsed as HTML). The function key, given once as ?code=, is
// kept in this tab's sessionStorage and sent as x-functions-key; it is never shown.
(() => {
  const KEY_NAME = "ferry.functionKey";
  const query = new URLSearchParams(location.search);
  if (query.has("code")) {
    sessionStorage.setItem(KEY_NAME, query.get("code"));
    query.delete("code");
    const rest = query.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
  const key = sessionStorage.getItem(KEY_NAME);
  const NOW_MS = 2000, RULES_MS = 10000, TIMEOUT_MS = 10000, DAY_MS = 86400000;
  const $ = (id) => document.getElementById(id);
  const rates = new Map();
  let timer = null, runsExist = false, healthShown = false;

  class ApiError extends Error {
    constructor(status, message, code) { super(message); this.status = status; this.code = code; }
  }

  async function api(path, method = "GET") {
    const controller = new AbortController();
    const stop = setTimeout(() => controller.abort(), TIMEOUT_MS);
    const headers = { Accept: "application/json" };
    if (key) headers["x-functions-key"] = key;
    let response;
    try {
      response = await fetch(path, { method, headers, credentials: "same-origin", signal: controller.signal });
    } catch (err) {
      throw new ApiError(0, controller.signal.aborted ? `no answer within ${TIMEOUT_MS / 1000} s` : "the service cannot be reached");
    } finally {
      clearTimeout(stop);
    }
    let body = null;
    try { body = await response.json(); } catch (err) { body = null; }
    if (!response.ok) {
      const message = body && body.message ? body.message : `${response.status} ${response.statusText}`;
      throw new ApiError(response.status, message, body && body.code);
    }
    return body;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const badge = (state) => el("span", { class: `state s-${state}`, text: state });
  const jobLink = (id, text) => el("a", { href: `#job/${encodeURIComponent(id)}`, text: text || id });

  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = Number(n), i = 0;
    while (value >= 1024 && i < units.length - 1) { value /= 1024; i++; }
    return `${value.toFixed(i && value < 10 ? 1 : 0)} ${units[i]}`;
  }

  function ago(text) {
    if (!text) return "–";
    const ms = Date.now() - Date.parse(text);
    if (!isFinite(ms)) return String(text);
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }

  const when = (text) => el("time", { datetime: text || "", title: text || "", text: ago(text) });

  function duration(seconds) {
    if (!isFinite(seconds) || seconds < 0) return "–";
    if (seconds < 60) return `${Math.ceil(seconds)} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function banner(text, notice) {
    const node = $("banner");
    node.hidden = !text;
    node.className = notice ? "banner notice" : "banner";
    node.textContent = text || "";
  }

  async function trouble(err) {
    if (err.status === 401 || err.status === 403) {
      banner("This page has no rights to the API: open it with the function key (?code=…) or sign in.");
      return;
    }
    if (err.status && err.status < 500) { banner(err.message, true); return; }
    let detail = err.message;
    try {  // the health check answers within 5 s whatever storage does, naming what did not answer
      const res = await fetch("/api/health", { headers: key ? { "x-functions-key": key } : {}, credentials: "same-origin" });
      const doc = await res.json();
      if (res.status === 503) detail = `storage does not answer (queue: ${doc.queue}; table: ${doc.table})`;
    } catch (again) { /* keep the first reason */ }
    for (const node of document.querySelectorAll(".empty")) {
      if (node.textContent === "Loading…") node.textContent = "Not known for now.";
    }
    healthShown = true;
    banner(`Ferry cannot show this now: ${detail}. Retrying…`);
  }

  function fresh() {
    // The moment the first view's data is on screen, for bench/page.py.
    if (!performance.getEntriesByName("ferry:data").length) performance.mark("ferry:data");
    if (healthShown) { healthShown = false; banner(""); }
    $("live").textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  // -- now ------------------------------------------------------------------------------------

  function progressOf(job) {
    const p = job.progress || {};
    const total = Number(p.bytesTotal || 0), done = Number(p.bytesDone ?? p.bytesMoved ?? 0);
    const now = Date.now() / 1000;
    const seen = rates.get(job.id);
    let rate = p.seconds > 0 ? Number(p.bytesMoved || 0) / p.seconds : 0;
    if (seen && done > seen.done && now > seen.at) rate = (done - seen.done) / (now - seen.at);
    if (!seen || done !== seen.done) rates.set(job.id, { done, at: now });
    const pct = total > 0 ? Math.min(100, (100 * done) / total) : 0;
    const left = rate > 0 && total > done ? (total - done) / rate : NaN;
    return { total, done, rate, pct, left, blobs: `${p.blobsDone ?? ((p.blobsCopied || 0) + (p.blobsMounted || 0) + (p.blobsPresent || 0))}/${p.blobsTotal ?? "?"}` };
  }

  function cancelButton(job, after) {
    return el("button", { type: "button", class: "danger", "data-cancel": job.id, text: job.cancelRequestedAt ? "Stopping…" : "Cancel",
      disabled: Boolean(job.cancelRequestedAt), onclick: async (event) => {
        const button = event.currentTarget;
        button.disabled = true;
        try {
          const doc = await api(`/api/imports/${encodeURIComponent(job.id)}/cancel`, "POST");
          button.textContent = doc.state === "cancelled" ? "Cancelled" : "Stopping…";
          banner("");
        } catch (err) {
          button.disabled = false;
          banner(err.status === 401 || err.status === 403 ? "Cancel refused: this page has no rights to the API (function key or sign-in)." : `Cancel refused: ${err.message}`, true);
        }
        after();
      } });
  }

  function runningCard(job) {
    const p = progressOf(job);
    const bar = el("div", { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": p.pct.toFixed(1), "aria-label": "bytes copied" });
    bar.style.width = `${p.pct.toFixed(1)}%`;
    return el("article", { class: "card", "data-job": job.id },
      el("div", {}, jobLink(job.id, job.source), " → ", el("span", { class: "ref", text: (job.targets || []).join(", ") })),
      el("div", { class: "track" }, bar),
      el("div", { class: "figures" },
        el("span", { "data-figure": "bytes", text: `${bytes(p.done)} of ${p.total ? bytes(p.total) : "?"}` }),
        el("span", { "data-figure": "rate", text: p.rate > 0 ? `${bytes(p.rate)}/s` : "– /s" }),
        el("span", { "data-figure": "left", text: `${duration(p.left)} left` }),
        el("span", { text: `blobs ${p.blobs}` }),
        el("span", { text: `attempt ${job.attemptCount || 1}` })),
      el("div", { class: "actions" }, cancelButton(job, refresh)));
  }

  let queuedNext = null;
  async function loadNow() {
    const [running, queued] = await Promise.all([api("/api/imports?state=running&limit=100"), api("/api/imports?state=queued&limit=50")]);
    const cards = $("running");
    cards.replaceChildren(...running.items.map(runningCard));
    if (!running.items.length) cards.append(el("p", { class: "empty", text: "Nothing is copying." }));
    $("running-count").textContent = running.next ? "(100+)" : `(${running.items.length})`;
    renderQueued(queued.items, false);
    queuedNext = queued.next;
    $("queued-more").hidden = !queuedNext;
    $("queued-count").textContent = queued.next ? "(50+)" : `(${queued.items.length})`;
    if (runsExist) await loadRunningRuns();
  }

  function renderQueued(items, append) {
    const body = $("queued").tBodies[0];
    const rows = items.map((job) => el("tr", { "data-job": job.id },
      el("td", {}, when(job.createdAt)), el("td", { class: "ref" }, jobLink(job.id, job.source)),
      el("td", { class: "ref", text: (job.targets || []).join(", ") }), el("td", {}, cancelButton(job, refresh))));
    if (append) body.append(...rows); else body.replaceChildren(...rows);
    if (!body.rows.length) body.append(el("tr", {}, el("td", { colspan: 4, class: "empty", text: "Nothing is waiting." })));
  }

  $("queued-more").addEventListener("click", async () => {
    try {
      const page = await api(`/api/imports?state=queued&limit=50&continuation=${encodeURIComponent(queuedNext)}`);
      renderQueued(page.items, true);
      queuedNext = page.next;
      $("queued-more").hidden = !queuedNext;
    } catch (err) { trouble(err); }
  });

  // -- runs (when the API has them) -----------------------------------------------------------

  function probeRuns() {
    // The server says whether its API has runs (GET /api/runs): no request that could fail.
    runsExist = document.body.dataset.runs === "1";
    document.querySelector('nav a[data-view="runs"]').hidden = !runsExist;
    $("now-runs").hidden = !runsExist;
  }

  // A run's trigger in words ("api, by function key sha256:…", "mirror nginx", "event 42"), not JSON.
  const triggerText = (t) => !t ? "" : [t.type, t.rule, t.eventId && `event ${t.eventId}`, t.requestedBy && `by ${t.requestedBy}`]
    .filter(Boolean).join(", ");

  const runCounts = (run) => Object.entries(run.counts || {}).map(([k, v]) => `${k} ${v}`).join(", ");

  async function loadRunningRuns() {
    const page = await api("/api/runs?state=running&limit=20");
    $("running-runs").replaceChildren(...(page.items || []).map((run) => el("article", { class: "card" },
      el("div", {}, el("b", { text: run.kind || "run" }), " ", el("span", { class: "ref", text: triggerText(run.trigger) || run.id })),
      el("div", { class: "figures", text: runCounts(run) }))));
  }

  let runsNext = null;
  async function loadRuns(append) {
    const page = await api(`/api/runs?limit=50${append && runsNext ? "&continuation=" + encodeURIComponent(runsNext) : ""}`);
    const rows = (page.items || []).map((run) => el("tr", {},
      el("td", {}, when(run.createdAt || run.startedAt)), el("td", { text: run.kind || "" }),
      el("td", { class: "ref", text: triggerText(run.trigger) }), el("td", {}, badge(run.state || "?")),
      el("td", { text: runCounts(run) })));
    const body = $("runs").tBodies[0];
    if (append) body.append(...rows); else body.replaceChildren(...rows);
    runsNext = page.next;
    $("runs-more").hidden = !runsNext;
  }
  $("runs-more").addEventListener("click", () => loadRuns(true).catch(trouble));

  // -- rules ----------------------------------------------------------------------------------

  async function loadRules() {
    const doc = await api("/api/rules");
    const body = $("rules").tBodies[0];
    if (!doc.configured) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "empty", text: "No rules file is configured (FERRY_RULES_FILE)." })));
      return;
    }
    body.replaceChildren(...doc.rules.map((rule) => el("tr", { class: rule.state === "behind" || rule.state === "failing" ? rule.state : null, "data-rule": rule.name },
      el("td", {}, el("div", { text: `${rule.name} (${rule.kind})` }), el("div", { class: "msg", text: `${rule.source} → ${rule.target}` })),
      el("td", {}, badge(rule.state), rule.deferred ? el("div", { class: "msg", text: rule.deferred }) : null),
      el("td", { text: rule.selected ?? "–" }), el("td", { text: rule.upToDate ?? "–" }),
      el("td", {}, rule.behind ? el("span", { text: `${rule.behind}${rule.inFlight ? ` (${rule.inFlight} copying)` : ""}` }) : el("span", { text: rule.behind ?? "–" }),
        rule.behind && rule.behindSince ? el("div", { class: "msg" }, "since ", when(rule.behindSince)) : null),
      el("td", {}, ...(rule.failing || []).map((f) => el("div", {}, jobLink(f.job, `${f.tag}: ${f.code}`)))),
      el("td", {}, when(rule.lastPass)), el("td", {}, when(rule.lastSuccess)))));
    if (!doc.rules.length) body.append(el("tr", {}, el("td", { colspan: 8, class: "empty", text: "The rules file has no rules." })));
  }

  // -- failures -------------------------------------------------------------------------------

  const registryOf = (ref) => String(ref || "").split("/")[0] || "?";

  async function loadFailures() {
    // Paged as the API pages (newest first), the groups drawn after each page.
    const since = Date.now() - DAY_MS, failed = [];
    let next = null;
    for (let page = 0; page < 10; page++) {
      const doc = await api(`/api/imports?state=failed&limit=100${next ? "&continuation=" + encodeURIComponent(next) : ""}`);
      failed.push(...doc.items.filter((job) => Date.parse(job.finishedAt || job.updatedAt) >= since));
      next = doc.next;
      const done = !next || doc.items.some((job) => Date.parse(job.createdAt) < since - DAY_MS);
      drawFailures(failed, done);
      if (page === 0) fresh();
      if (done) break;
    }
  }

  function drawFailures(failed, done) {
    const groups = new Map();
    for (const job of failed) {
      const code = (job.error && job.error.code) || "UNKNOWN";
      const key = `${code} ${registryOf(job.source)}`;
      if (!groups.has(key)) groups.set(key, { code, registry: registryOf(job.source), jobs: [] });
      groups.get(key).jobs.push(job);
    }
    const open = new Set([...document.querySelectorAll("details.group[open]")].map((d) => d.dataset.key));
    const sorted = [...groups.entries()].sort((a, b) => b[1].jobs.length - a[1].jobs.length);
    $("failures").replaceChildren(...sorted.map(([key, g]) => el("details", { class: "group", "data-code": g.code, "data-key": key, open: open.has(key) },
      el("summary", {}, el("b", { text: g.code }), el("span", { text: g.registry }), el("span", { class: "count", text: `${g.jobs.length} job${g.jobs.length > 1 ? "s" : ""}` }),
        el("span", { class: "msg", text: (g.jobs[0].error && g.jobs[0].error.message) || "" })),
      el("ul", {}, ...g.jobs.map((job) => el("li", {}, jobLink(job.id, job.source), " ", when(job.finishedAt || job.updatedAt),
        el("div", { class: "msg", text: (job.error && job.error.message) || "" })))))));
    if (!sorted.length) $("failures").append(el("p", { class: "empty", text: done ? "No job failed in the last 24 hours." : "Looking…" }));
  }

  // -- jobs -----------------------------------------------------------------------------------

  const jobPages = { tokens: [null], at: 0 };
  async function loadJobs() {
    const state = $("jobs-state").value;
    const token = jobPages.tokens[jobPages.at];
    const doc = await api(`/api/imports?limit=50${state ? "&state=" + state : ""}${token ? "&continuation=" + encodeURIComponent(token) : ""}`);
    $("jobs").tBodies[0].replaceChildren(...doc.items.map((job) => el("tr", { "data-job": job.id },
      el("td", {}, when(job.createdAt)), el("td", {}, badge(job.state)), el("td", { class: "ref" }, jobLink(job.id, job.source)),
      el("td", { class: "ref", text: (job.targets || []).join(", ") }), el("td", { text: job.attemptCount }),
      el("td", { text: (job.error && job.error.code) || "" }))));
    jobPages.tokens[jobPages.at + 1] = doc.next;
    $("jobs-older").disabled = !doc.next;
    $("jobs-newer").disabled = jobPages.at === 0;
  }
  $("jobs-state").addEventListener("change", () => { jobPages.tokens = [null]; jobPages.at = 0; loadJobs().catch(trouble); });
  $("jobs-older").addEventListener("click", () => { jobPages.at++; loadJobs().catch(trouble); });
  $("jobs-newer").addEventListener("click", () => { jobPages.at = Math.max(0, jobPages.at - 1); loadJobs().catch(trouble); });

  // -- one job --------------------------------------------------------------------------------

  function timeline(job) {
    const events = [[job.createdAt, "queued"]];
    for (const a of job.attempts || []) {
      events.push([a.startedAt, `attempt ${a.number} started${a.worker ? ` on ${a.worker.host} (pid ${a.worker.pid})` : ""}`]);
      if (a.finishedAt) events.push([a.finishedAt, `attempt ${a.number} ${a.outcome}${a.code ? ` (${a.code})` : ""}`]);
    }
    if (job.cancelRequestedAt) events.push([job.cancelRequestedAt, "cancel asked for"]);
    if (job.finishedAt) events.push([job.finishedAt, job.state]);
    events.sort((a, b) => Date.parse(a[0]) - Date.parse(b[0]));
    return el("ol", { class: "timeline" }, ...events.map(([at, what]) => el("li", {}, el("time", { datetime: at, title: at, text: new Date(at).toLocaleString() }), what)));
  }

  function attemptsTable(job) {
    return el("div", { class: "wrap" }, el("table", { id: "attempts" },
      el("thead", {}, el("tr", {}, ...["#", "started", "ended", "outcome", "code", "message", "bytes"].map((h) => el("th", { text: h })))),
      el("tbody", {}, ...(job.attempts || []).map((a) => el("tr", {},
        el("td", { text: a.number }), el("td", {}, when(a.startedAt)), el("td", {}, a.finishedAt ? when(a.finishedAt) : "–"),
        el("td", {}, badge(a.outcome)), el("td", { text: a.code || "" }), el("td", { class: "msg", text: a.message || "" }), el("td", { text: bytes(a.bytes) }))))));
  }

  function landed(job) {
    const r = job.result;
    if (!r) return null;
    const facts = [["digest", r.digest], ["source digest", r.sourceDigest], ["media type", r.mediaType], ["engine", r.engine],
      ["manifests", r.manifests], ["blobs", r.blobs ? `${r.blobs.copied} copied, ${r.blobs.mounted} mounted, ${r.blobs.present} present of ${r.blobs.total}` : null],
      ["bytes", r.bytes !== undefined ? bytes(r.bytes) : null], ["seconds", r.seconds], ["up to date", r.upToDate ? "yes: nothing to copy" : null]];
    return [el("h3", { text: "What landed" }), el("dl", { class: "facts" }, ...facts.filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])),
      el("ul", {}, ...(r.targets || []).map((t) => el("li", { class: "ref", text: `${t}${r.digest && !t.includes("@") ? " @ " + r.digest : ""}` })))];
  }

  async function loadJob(id) {
    const job = await api(`/api/imports/${encodeURIComponent(id)}`);
    const request = (await api(`/api/imports/${encodeURIComponent(id)}/request`)).request;
    const links = [];
    if (job.retryOf) links.push(el("div", {}, "Retry of ", jobLink(job.retryOf)));
    if (job.retriedBy) links.push(el("div", {}, "Retried as ", jobLink(job.retriedBy)));
    if (job.run) links.push(el("div", {}, "Part of run ", el("span", { class: "ref", text: job.run })));
    const actions = el("div", { class: "actions" });
    if (job.state === "queued" || job.state === "running") actions.append(cancelButton(job, refresh));
    if (job.state === "failed" || job.state === "cancelled") actions.append(el("button", { type: "button", text: "Retry", onclick: async () => {
      try { const doc = await api(`/api/imports/${encodeURIComponent(job.id)}/retry`, "POST"); location.hash = `#job/${doc.id}`; } catch (err) { banner(`Retry refused: ${err.message}`, true); }
    } }));
    const p = job.state === "running" ? progressOf(job) : null;
    $("job").replaceChildren(...[
      el("h2", {}, "Job ", el("span", { class: "ref", text: job.id }), " ", badge(job.state)),
      el("dl", { class: "facts" }, el("dt", { text: "source" }), el("dd", { class: "ref", text: job.source }),
        el("dt", { text: "targets" }), el("dd", { class: "ref", text: (job.targets || []).join(", ") }),
        el("dt", { text: "attempts" }), el("dd", { text: job.attemptCount })),
      ...links, actions,
      p ? runningCard(job) : null,
      job.error ? el("div", { class: "banner", id: "job-error" }, el("b", { text: job.error.code }), ": ", job.error.message) : null,
      landed(job),
      el("h3", { text: "Timeline" }), timeline(job),
      el("h3", { text: "Attempts" }), attemptsTable(job),
      el("h3", { text: "Request" }), request ? el("pre", { text: JSON.stringify(request, null, 2) }) : el("p", { class: "empty", text: "The request was not kept for this job." }),
    ].flat().filter(Boolean));
    return job;
  }

  // -- routing and refresh --------------------------------------------------------------------

  function route() {
    const hash = location.hash.replace(/^#/, "") || "now";
    const [view, ...rest] = hash.split("/");
    return { view: ["now", "runs", "rules", "failures", "jobs", "job"].includes(view) ? view : "now", id: decodeURIComponent(rest.join("/")) };
  }

  async function refresh() {
    clearTimeout(timer);
    const { view, id } = route();
    let every = NOW_MS;
    try {
      if (view === "now") await loadNow();
      else if (view === "runs") { await loadRuns(false); every = RULES_MS; }
      else if (view === "rules") { await loadRules(); every = RULES_MS; }
      else if (view === "failures") { await loadFailures(); every = 30000; }
      else if (view === "jobs") { await loadJobs(); every = RULES_MS; }
      else if (view === "job") { const job = await loadJob(id); if (!["queued", "running"].includes(job.state)) every = RULES_MS; }
      fresh();
    } catch (err) {
      if (view === "job" && err.status === 404) { $("job").replaceChildren(el("p", { class: "empty", text: `No job ${id}.` })); }
      else await trouble(err);
    }
    timer = setTimeout(refresh, every);
  }

  function show() {
    const { view } = route();
    for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== `view-${view}`;
    for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.view === view);
    document.title = `Ferry · ${document.getElementById(`view-${view}`).dataset.title}`;
    refresh();
  }

  window.addEventListener("hashchange", show);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  probeRuns();
  show();
})();
