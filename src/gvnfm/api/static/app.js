// gvnfm up web page: plain JavaScript and SVG, no library, no build step.
// It reads the control API with the page's cookie, re-reads it whenever the event stream
// (/api/v1/events, the orchestrator's progress events) says something changed, and sends day-2
// requests to the same routes the CLI uses (409 refusals are shown as messages).
"use strict";
(() => {
  const API = "/api/v1";
  // the header that proves a state-changing request comes from this page (see gvnfm.api.access)
  const HEADERS = { "X-Gvnfm-Request": "page", "Content-Type": "application/json" };
  const STATES = ["INITIALIZED", "INACTIVE", "ACTIVE", "ERROR"];
  const MAX_OPS = 50;
  let nsrKey = "current";
  let report = null;
  let ops = [];
  let waiting = "loading…";
  let timer = null, refreshing = false, again = false, lastSeen = "";
  const execResults = {};
  const notes = {};
  const pending = new Set();   // ids of buttons whose request has not been answered (drawn disabled)          // per VNF, the answer to the last request sent from its card (shown in the card)

  const $ = (id) => document.getElementById(id);
  const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" })[c]);
  const slug = (v) => String(v ?? "").replace(/[^A-Za-z0-9_-]/g, "_");
  // VNFC instance states come lower-case from the VNFM ("error"), VNFR states upper-case
  const stateClass = (s) => (STATES.includes(String(s).toUpperCase()) ? String(s).toUpperCase() : "other");
  const badge = (s, text) => `<span class="state" data-state="${esc(String(s ?? "").toUpperCase())}">${esc(text ?? s ?? "")}</span>`;
  const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "");
  const secs = (d) => (d == null ? "" : `${Number(d).toFixed(d < 10 ? 2 : 0)} s`);

  async function api(method, path, body) {
    const init = { method, headers: HEADERS, credentials: "same-origin" };
    if (body !== undefined) init.body = JSON.stringify(body);
    let res;
    try {
      res = await fetch(API + path, init);
    } catch (err) {
      return { ok: false, status: 0, data: { detail: `gvnfm up does not answer (${err.message})` } };
    }
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    return { ok: res.ok, status: res.status, data };
  }

  function detail(r) {
    const d = r.data && r.data.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((x) => `${(x.loc || []).slice(1).join(".")}: ${x.msg}`).join("; ");
    return r.status ? `HTTP ${r.status}` : "no answer";
  }

  // -- messages (aria-live region) -----------------------------------------------------------
  let messageSeq = 0;
  function say(kind, text, vnf) {
    if (vnf) { notes[vnf] = { kind, text }; if (report) render(); }
    const box = $("messages");
    const id = `msg-${++messageSeq}`;
    const div = document.createElement("div");
    div.className = "message";
    div.dataset.kind = kind;
    div.id = id;
    if (kind === "error") div.setAttribute("role", "alert");
    div.innerHTML = `<p>${esc(text)}</p><button type="button" data-dismiss="${id}" aria-label="Dismiss message">×</button>`;
    box.prepend(div);
    while (box.children.length > 4) box.lastElementChild.remove();
  }

  // -- reading ---------------------------------------------------------------------------------
  function schedule(delay = 60) {
    if (timer !== null) return;
    timer = setTimeout(() => { timer = null; refresh(); }, delay);
  }

  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const key = encodeURIComponent(nsrKey);
      const [r, o] = await Promise.all([api("GET", `/ns-records/${key}`),
        api("GET", `/operations?nsr=${key}&steps=true`)]);
      if (r.status === 401) { window.location.assign("/"); return; }
      if (r.ok) {
        report = r.data;
        if (nsrKey === "current" && report.nsr && report.nsr.id) nsrKey = report.nsr.id;  // kept after teardown
      } else {
        waiting = detail(r);
      }
      if (o.ok) ops = o.data;
      const seen = JSON.stringify([report, ops, waiting]);
      if (seen !== lastSeen) { lastSeen = seen; render(); }   // nothing changed: the DOM is left alone
    } finally {
      refreshing = false;
      if (again) { again = false; schedule(0); }
    }
  }

  function connect() {
    const live = $("live");
    const source = new EventSource(`${API}/events`);
    source.addEventListener("hello", () => {
      live.dataset.live = "open";
      live.textContent = "live";
      schedule(0);
    });
    source.addEventListener("progress", () => schedule());
    source.onerror = () => {
      live.dataset.live = "closed";
      live.textContent = "not connected (gvnfm up stopped?) — retrying";
      // the browser retries on its own unless the answer was an error (a new run: a new token);
      // then try again later: the page's next read sends it to the sign-in page if the token is gone
      if (source.readyState === EventSource.CLOSED) setTimeout(() => { connect(); schedule(0); }, 2000);
    };
  }

  // -- drawing ---------------------------------------------------------------------------------
  function snapshot() {
    const active = document.activeElement;
    const keep = { focus: active && active.id ? active.id : null, open: [], values: {}, sel: null };
    document.querySelectorAll("details[id]").forEach((d) => { if (d.open) keep.open.push(d.id); });
    document.querySelectorAll("main input[id], main textarea[id]").forEach((i) => { keep.values[i.id] = i.value; });
    if (active && "selectionStart" in active) keep.sel = [active.selectionStart, active.selectionEnd];
    return keep;
  }

  function restore(keep) {
    keep.open.forEach((id) => { const d = $(id); if (d) d.open = true; });
    Object.entries(keep.values).forEach(([id, v]) => { const i = $(id); if (i) i.value = v; });
    const f = keep.focus && $(keep.focus);
    if (f && document.activeElement !== f) {
      f.focus({ preventScroll: true });
      if (keep.sel && "setSelectionRange" in f) { try { f.setSelectionRange(...keep.sel); } catch (_) { /* */ } }
    }
  }

  function render() {
    const keep = snapshot();
    if (!report) {
      $("ns-name").textContent = "network service";
      $("topology").innerHTML = `<p class="meta">${esc(waiting)}</p>`;
    } else {
      const nsr = report.nsr;
      $("ns-name").textContent = `network service ${nsr.name || ""}`;
      $("ns-status").dataset.state = nsr.status;
      $("ns-status").textContent = nsr.status;
      document.title = `${nsr.name} — ${nsr.status} — gvnfm up`;
      $("topology").innerHTML = topology(report);
      $("vnfs").innerHTML = report.vnfrs.map(card).join("");
    }
    $("operations").innerHTML = operations();
    renderRuns();
    restore(keep);
  }

  // VNFs in columns by dependency depth (a target right of its sources); one column per row on a
  // narrow screen
  function topology(data) {
    const vnfrs = data.vnfrs, deps = data.dependencies || [];
    const depth = Object.fromEntries(vnfrs.map((v) => [v.name, 0]));
    for (let i = 0; i < vnfrs.length; i++) {
      for (const d of deps) {
        if (d.source in depth && d.target in depth && depth[d.target] < depth[d.source] + 1) {
          depth[d.target] = Math.min(depth[d.source] + 1, vnfrs.length);
        }
      }
    }
    const narrow = ($("topology").clientWidth || 800) < 620;
    const W = 270, HEAD = 48, ROW = 26, PAD = 8, M = 16, GAP_X = 190, GAP_Y = narrow ? 90 : 28;
    const pos = {};
    const columns = {};
    vnfrs.forEach((v) => { (columns[depth[v.name]] = columns[depth[v.name]] || []).push(v); });
    let maxX = 0, maxY = 0, y = M;
    Object.keys(columns).map(Number).sort((a, b) => a - b).forEach((col) => {
      let cy = M;
      columns[col].forEach((v) => {
        const h = HEAD + Math.max(v.vnfc.length, 1) * ROW + PAD;
        const p = narrow ? { x: M, y, w: W, h } : { x: M + col * (W + GAP_X), y: cy, w: W, h };
        pos[v.name] = p;
        if (narrow) y += h + GAP_Y; else cy += h + GAP_Y;
        maxX = Math.max(maxX, p.x + W);
        maxY = Math.max(maxY, p.y + h);
      });
    });
    const width = maxX + M + (narrow ? 60 : 0), height = maxY + M;
    const edges = deps.filter((d) => pos[d.source] && pos[d.target]).map((d) => edge(d, pos, narrow)).join("");
    const boxes = vnfrs.map((v) => box(v, pos[v.name], ROW, HEAD)).join("");
    const summary = vnfrs.map((v) => `${v.name} ${v.status}`).join(", ");
    return `<svg viewBox="0 0 ${width} ${height}" width="${width}" role="group"
      aria-label="Topology: ${esc(summary)}; arrows point from a source VNF to the VNF that needs its parameters">
      <defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8"
        orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#57606a"/></marker></defs>
      ${edges}${boxes}</svg>`;
  }

  function wrap(words, max) {
    const lines = [];
    let line = "";
    words.forEach((w, i) => {
      const piece = w + (i < words.length - 1 ? "," : "");
      if (line && (line + " " + piece).length > max) { lines.push(line); line = piece; } else line = line ? `${line} ${piece}` : piece;
    });
    if (line) lines.push(line);
    return lines;
  }

  function edge(d, pos, narrow) {
    const s = pos[d.source], t = pos[d.target];
    let x1, y1, x2, y2, path, lx, ly;
    if (narrow) {
      x1 = s.x + s.w - 30; y1 = s.y + s.h; x2 = t.x + t.w - 30; y2 = t.y;
      path = `M${x1},${y1} C${x1 + 60},${(y1 + y2) / 2} ${x2 + 60},${(y1 + y2) / 2} ${x2},${y2}`;
      lx = s.x + 12; ly = (y1 + y2) / 2 - 8;
    } else {
      x1 = s.x + s.w; y1 = s.y + 62; x2 = t.x; y2 = t.y + 62;
      const mx = (x1 + x2) / 2;
      path = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
      lx = x1 + 10; ly = Math.min(y1, y2) - 10;
    }
    const lines = wrap(d.parameters || [], 24);
    if (!narrow) ly -= (lines.length - 1) * 15;  // the label above the arrow
    const label = lines.map((l, i) => `<tspan x="${lx + 4}" dy="${i ? 15 : 0}">${esc(l)}</tspan>`).join("");
    const lw = Math.max(...lines.map((l) => l.length), 1) * 7 + 8;
    return `<g class="dependency" data-edge="${esc(d.source)}->${esc(d.target)}">
      <title>${esc(d.target)} needs ${esc(d.source)}'s ${esc((d.parameters || []).join(", "))}</title>
      <path class="edge" d="${path}" marker-end="url(#arrow)"/>
      <rect class="edge-label-bg" x="${lx}" y="${ly - 12}" width="${lw}" height="${lines.length * 15 + 4}" rx="3"/>
      <text class="edge-label" x="${lx + 4}" y="${ly}">${label}</text></g>`;
  }

  function box(v, p, ROW, HEAD) {
    const cls = stateClass(v.status);
    const rows = v.vnfc.map((c, i) => {
      const y = p.y + HEAD + i * ROW;
      const running = c.progress && c.progress.status === "running";
      const prog = running ? ` · ${c.progress.event || c.progress.action || ""}` : "";
      const st = stateClass(c.state);
      return `<a href="#runs/${encodeURIComponent(v.name)}/${encodeURIComponent(c.hostname)}" id="topo-${slug(c.hostname)}"
          data-vnfc="${esc(c.hostname)}" data-state="${esc(c.state)}">
        <title>${esc(c.hostname)}: ${esc(c.state)}${running ? ` (running ${esc(c.progress.event || "")} ${esc(c.progress.script || "")})` : ""} — show its script runs</title>
        <rect class="vnfc-row" x="${p.x + 4}" y="${y}" width="${p.w - 8}" height="${ROW - 2}" rx="3"/>
        <circle class="fill-${st}" cx="${p.x + 16}" cy="${y + ROW / 2 - 1}" r="6"/>
        <text x="${p.x + 28}" y="${y + ROW / 2 + 4}">${esc(c.hostname)}</text>
        <text class="muted" x="${p.x + 128}" y="${y + ROW / 2 + 4}">${esc(((c.state || "") + prog).slice(0, 20))}</text></a>`;
    }).join("") || `<text class="muted" x="${p.x + 12}" y="${p.y + HEAD + 14}">no VNFC yet</text>`;
    return `<g class="vnf" data-vnf="${esc(v.name)}" data-state="${esc(v.status)}">
      <rect class="box stroke-${cls}" x="${p.x}" y="${p.y}" width="${p.w}" height="${p.h}" rx="6"/>
      <rect class="fill-${cls}" x="${p.x}" y="${p.y}" width="6" height="${p.h}" rx="2"/>
      <a href="#vnf-${slug(v.name)}" id="topo-vnf-${slug(v.name)}"><title>${esc(v.name)}: ${esc(v.status)} — go to its actions</title>
        <text class="vnf-name" x="${p.x + 14}" y="${p.y + 20}">${esc(v.name)}</text></a>
      <text class="muted" x="${p.x + 14}" y="${p.y + 38}">${esc(v.type || "")} · ${esc(v.status)}${v.action ? " · " + esc(v.action) : ""}</text>
      ${rows}</g>`;
  }

  function button(act, text, data, extra = "") {
    const attrs = Object.entries(data).map(([k, val]) => `data-${k}="${esc(val)}"`).join(" ");
    const id = `act-${act}-${slug(data.vnf)}${data.host ? "-" + slug(data.host) : ""}`;
    // aria-disabled, not disabled: a disabled button loses the keyboard focus when the page redraws
    const busy = pending.has(id) ? ' aria-disabled="true" aria-busy="true"' : "";
    return `<button type="button" id="${id}" data-act="${act}" ${attrs} ${extra}${busy}>${text}</button>`;
  }

  function card(v) {
    const n = slug(v.name);
    const err = v.error && v.status === "ERROR" ? errorBox(v) : "";
    const rows = v.vnfc.map((c) => {
      const p = c.progress;
      const now = p ? `${esc(p.event || p.action || "")} ${esc(p.script || "")} ${p.status ? badge(p.status) : ""}` : "";
      const ips = Object.entries(c.ips || {}).map(([k, ip]) => `${esc(k)} ${esc(ip)}`).join(", ");
      const d = { vnf: v.name, host: c.hostname };
      return `<tr data-vnfc="${esc(c.hostname)}"><td>${esc(c.hostname)}</td><td>${badge(c.state)}</td>
        <td class="optional">${ips}</td><td>${now}</td></tr>
        <tr class="vnfc-actions"><td colspan="4"><div class="actions">
          <a href="#runs/${encodeURIComponent(v.name)}/${encodeURIComponent(c.hostname)}" id="runs-link-${slug(c.hostname)}">Script runs</a>
          ${button("start", "Start", d, `aria-label="Start ${esc(c.hostname)}"`)}
          ${button("stop", "Stop", d, `aria-label="Stop ${esc(c.hostname)}"`)}
          ${button("heal", "Heal", d, `aria-label="Heal ${esc(c.hostname)}"`)}
          ${button("scale-in", "Scale in", d, `class="danger" aria-label="Scale in: remove ${esc(c.hostname)}"`)}
        </div></td></tr>`;
    }).join("");
    const ex = execResults[v.name];
    const exOut = ex ? `<div class="exec-result" aria-live="polite">${ex.map((r) => `<p>${esc(r.hostname)} ${badge(r.status === 0 ? "ok" : "failed", `exit ${r.status}`)}</p>
        ${r.output ? `<pre>${esc(r.output)}</pre>` : ""}${r.err ? `<pre>${esc(r.err)}</pre>` : ""}`).join("")}</div>` : "";
    const d = { vnf: v.name };
    return `<article class="vnf" id="vnf-${n}" data-vnf="${esc(v.name)}" data-state="${esc(v.status)}" tabindex="-1"
        aria-labelledby="vnf-h-${n}">
      <h3 id="vnf-h-${n}">${esc(v.name)} ${badge(v.status)}</h3>
      <p class="meta">type ${esc(v.type || "")} · ${v.vnfc.length} VNFC${v.vnfc.length === 1 ? "" : "s"}${v.action ? ` · now: ${esc(v.action)}` : ""}</p>
      ${err}
      <div class="actions" role="group" aria-label="${esc(v.name)}: every VNFC">
        ${button("start", "Start", d, `aria-label="Start ${esc(v.name)}"`)}
        ${button("stop", "Stop", d, `aria-label="Stop ${esc(v.name)}"`)}
        ${button("scale-out", "Scale out", d, `aria-label="Scale out ${esc(v.name)}: add a VNFC"`)}
      </div>
      ${notes[v.name] ? `<p class="note" data-kind="${notes[v.name].kind}">${esc(notes[v.name].text)}</p>` : ""}
      <table class="vnfc-table"><caption class="vh">VNFC instances of ${esc(v.name)}</caption>
        <thead><tr><th scope="col">VNFC</th><th scope="col">state</th><th scope="col" class="optional">address</th>
        <th scope="col">now</th></tr></thead><tbody>${rows}</tbody></table>
      <p><label for="heal-cause-${n}">Heal cause</label> <input id="heal-cause-${n}" value="manual heal" size="16"></p>
      <details id="exec-${n}"><summary>Execute a script on every VNFC</summary>
        <label for="exec-text-${n}">Script</label>
        <textarea id="exec-text-${n}" rows="4" spellcheck="false">#!/bin/bash\nhostname; uptime</textarea>
        <div class="actions">${button("execute", "Run the script", d, `aria-label="Run the script on every VNFC of ${esc(v.name)}"`)}</div>
        ${exOut}</details>
    </article>`;
  }

  function errorBox(v) {
    const e = v.error;
    const where = [e.hostname && `VNFC ${e.hostname}`, e.event ? `event ${e.event}` : `during ${e.action}`,
      e.script && `script ${e.script}`].filter(Boolean).join(", ");
    const stderr = (e.stderr || "").trim();
    const link = e.hostname
      ? `<a href="#runs/${encodeURIComponent(v.name)}/${encodeURIComponent(e.hostname)}">Script runs of ${esc(e.hostname)}</a>` : "";
    return `<div class="error" data-error="${esc(v.name)}"><h4>Failed: ${esc(where)}</h4><p>${esc(e.message)}</p>
      ${stderr && !e.message.includes(stderr) ? `<pre>${esc(stderr)}</pre>` : ""}
      <p class="meta">Fix the cause (e.g. <code>gvnfm update-script</code>), then resume: it runs again from the failed script.</p>
      <div class="actions">${button("resume", "Resume", { vnf: v.name }, `class="primary" aria-label="Resume ${esc(v.name)}"`)} ${link}</div></div>`;
  }

  function operations() {
    if (!ops.length) return `<p class="meta">no operation yet</p>`;
    const running = ops.filter((o) => o.state === "RUNNING").reverse();
    const past = ops.filter((o) => o.state !== "RUNNING").reverse().slice(0, MAX_OPS);
    const table = (list, caption) => `<table class="ops"><caption class="vh">${caption}</caption>
      <thead><tr><th scope="col">started</th><th scope="col">VNF</th><th scope="col">operation</th>
      <th scope="col">state</th><th scope="col" class="optional">took</th><th scope="col">steps</th></tr></thead>
      <tbody>${list.map(opRow).join("")}</tbody></table>`;
    return `<h3>Current</h3>${running.length ? table(running, "current operations") : `<p class="meta">none running</p>`}
      <h3>Past</h3>${past.length ? table(past, "past operations, newest first") : `<p class="meta">none</p>`}
      ${ops.length - running.length > MAX_OPS ? `<p class="meta">the newest ${MAX_OPS} shown (gvnfm ops lists all)</p>` : ""}`;
  }

  function opRow(o) {
    const steps = o.steps || [];
    const failed = steps.filter((s) => s.exit_status !== 0).length;
    const took = o.ended_at ? secs((new Date(o.ended_at) - new Date(o.started_at)) / 1000) : "";
    let now = "";
    if (o.state === "RUNNING" && report) {
      const v = report.vnfrs.find((x) => x.name === o.vnfr);
      const active = v ? v.vnfc.filter((c) => c.progress && c.progress.status === "running") : [];
      now = active.map((c) => `<li>${esc(c.hostname)}: ${esc(c.progress.event || "")} ${esc(c.progress.script || "")} ${badge("running")}</li>`).join("");
    }
    const list = steps.map((s) => `<li>${esc(s.hostname)}: ${esc(s.event)} ${esc(s.script)}
      ${badge(s.exit_status === 0 ? "ok" : "failed", `exit ${s.exit_status}`)} ${secs(s.duration)}</li>`).join("") + now;
    const summary = `${steps.length} script${steps.length === 1 ? "" : "s"} done${failed ? `, ${failed} failed` : ""}${now ? ", running…" : ""}`;
    const body = list ? `<details id="op-${slug(o.id)}"><summary>${summary}</summary><ol class="steps">${list}</ol></details>` : summary;
    return `<tr class="op" data-op="${esc(o.action)}" data-vnf="${esc(o.vnfr)}" data-state="${esc(o.state)}">
      <td>${esc(time(o.started_at))}</td><td>${esc(o.vnfr)}</td><td>${esc(o.action)}</td>
      <td>${badge(o.state)}${o.error ? `<br><small>${esc(o.error.slice(0, 200))}</small>` : ""}</td>
      <td class="optional">${took}</td><td>${body}</td></tr>`;
  }

  // -- one VNFC's script runs (#runs/<vnf>/<host>) -----------------------------------------------
  function selected() {
    const m = /^#runs\/([^/]+)\/([^/]+)$/.exec(window.location.hash);
    return m ? { vnf: decodeURIComponent(m[1]), host: decodeURIComponent(m[2]) } : null;
  }

  function renderRuns() {
    const panel = $("runs");
    const sel = selected();
    if (!sel) { panel.hidden = true; panel.innerHTML = ""; return; }
    const v = report && report.vnfrs.find((x) => x.name === sel.vnf);
    const c = v && v.vnfc.find((x) => x.hostname === sel.host);
    const runs = c ? [...(c.scripts || [])].sort((a, b) => (a.started_at < b.started_at ? 1 : -1)) : [];
    const rows = runs.map((r) => {
      const id = `run-${slug(sel.host)}-${slug(r.started_at)}-${slug(r.event)}-${slug(r.script)}`;   // stable
      const out = [r.stdout && `<h4>stdout</h4><pre data-stream="stdout">${esc(r.stdout)}</pre>`,
        r.stderr && `<h4>stderr</h4><pre data-stream="stderr">${esc(r.stderr)}</pre>`].filter(Boolean).join("") || "<p>no output</p>";
      return `<tbody class="run" data-event="${esc(r.event)}" data-exit="${r.exit_status}"><tr>
        <td>${esc(time(r.started_at))}</td><td>${esc(r.event)}</td><td>${esc(r.script)}</td>
        <td>${badge(r.exit_status === 0 ? "ok" : "failed", String(r.exit_status))}</td><td>${secs(r.duration)}</td></tr>
        <tr class="run-output"><td colspan="5"><details id="${id}"><summary>output<span class="vh"> of ${esc(r.script)}
        (${esc(r.event)})</span></summary>${out}</details></td></tr></tbody>`;
    }).join("");
    panel.hidden = false;
    panel.innerHTML = `<header><h2 id="runs-h">Script runs of ${esc(sel.host)} (${esc(sel.vnf)})</h2>
      <a href="#" id="runs-close">Close<span class="vh"> (Escape)</span></a></header>
      ${!c ? `<p>${esc(sel.host)} is not a VNFC of ${esc(sel.vnf)} (any more).</p>` : runs.length ? `<table>
        <caption class="vh">newest first</caption><thead><tr><th scope="col">started</th><th scope="col">event</th>
        <th scope="col">script</th><th scope="col">exit</th><th scope="col">took</th></tr></thead>${rows}</table>` : "<p>no script has run on it yet</p>"}`;
  }

  // -- acting --------------------------------------------------------------------------------------
  async function act(btn) {
    const { act: what, vnf, host } = btn.dataset;
    const base = `/ns-records/${encodeURIComponent(nsrKey)}/vnfrecords/${encodeURIComponent(vnf)}`;
    const n = slug(vnf);
    const requests = {
      start: [`${base}/start`, host ? { hostname: host } : {}, `start ${host || vnf}`],
      stop: [`${base}/stop`, host ? { hostname: host } : {}, `stop ${host || vnf}`],
      "scale-out": [`${base}/scale-out`, {}, `scale out ${vnf}`],
      "scale-in": [`${base}/scale-in`, { hostname: host }, `scale in ${vnf} (remove ${host})`],
      heal: [`${base}/heal`, { hostname: host, cause: ($(`heal-cause-${n}`) || {}).value || "manual heal" }, `heal ${host}`],
      resume: [`${base}/resume`, {}, `resume ${vnf}`],
      execute: [`${base}/execute`, { script: ($(`exec-text-${n}`) || {}).value || "" }, `execute on ${vnf}`],
    };
    const [path, body, label] = requests[what];
    pending.add(btn.id);
    btn.setAttribute("aria-disabled", "true");
    btn.setAttribute("aria-busy", "true");
    const r = await api("POST", path, body);
    pending.delete(btn.id);
    const again = $(btn.id) || btn;     // the page may have been redrawn meanwhile
    again.removeAttribute("aria-disabled");
    again.removeAttribute("aria-busy");
    if (what === "execute" && r.ok) {
      execResults[vnf] = r.data.results || [];
      say(r.data.ok ? "ok" : "error", `${label}: ${r.data.ok ? "every VNFC exit 0" : `failed on ${(r.data.failed || []).join(", ")}`}`, vnf);
    } else if (r.ok) {
      say("ok", `${label}: accepted`, vnf);
    } else {
      const why = r.status >= 400 && r.status < 500 ? "refused" : "failed";
      say("error", `${label} ${why} (${r.status}): ${detail(r)}`, vnf);
    }
    schedule(0);
  }

  document.addEventListener("click", (ev) => {
    const dismiss = ev.target.closest("[data-dismiss]");
    if (dismiss) { const m = $(dismiss.dataset.dismiss); if (m) m.remove(); return; }
    const btn = ev.target.closest("button[data-act]");
    if (btn && !pending.has(btn.id)) act(btn);
  });

  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && selected()) {
      const back = $(`runs-link-${slug(selected().host)}`);
      window.location.hash = "#";
      if (back) back.focus();
    }
  });

  window.addEventListener("hashchange", () => {
    renderRuns();
    const sel = selected();
    if (sel) { const h = $("runs"); h.scrollIntoView({ block: "start" }); h.focus({ preventScroll: true }); }
    else if (window.location.hash.startsWith("#vnf-")) { const c = $(window.location.hash.slice(1)); if (c) c.focus(); }
  });
  let lastWidth = 0;
  window.addEventListener("resize", () => {
    const w = $("topology").clientWidth;
    if (report && (w < 620) !== (lastWidth < 620)) render();
    lastWidth = w;
  });

  lastWidth = $("topology").clientWidth;
  connect();
  refresh();
})();
