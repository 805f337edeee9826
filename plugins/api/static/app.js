// perpbot web dashboard: vanilla JavaScript, no build step.
// Polls the read endpoints once a second, follows /api/events (Server-Sent Events, read with
// fetch so the bearer token can be sent), and posts control actions with the token the user
// entered (kept in sessionStorage: this tab only). Text from the API is always set with
// textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "perpbot-api-token";
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem(TOKEN_KEY) || "";

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

async function getJSON(path) {
  const r = await fetch(path, { headers: headers(), cache: "no-store" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.status + " " + r.statusText);
  return body;
}

function num(s, digits) {
  if (s === null || s === undefined) return "–";
  const n = Number(s);
  if (!isFinite(n)) return String(s);
  return n.toLocaleString(undefined, { minimumFractionDigits: digits ?? 2, maximumFractionDigits: digits ?? 2 });
}
function pct(f, digits) { return f === null || f === undefined ? "–" : (f * 100).toFixed(digits ?? 2) + "%"; }
function signClass(s) { const n = Number(s); return n > 0 ? "pos" : n < 0 ? "neg" : ""; }
function time(ns) { return ns ? new Date(ns / 1e6).toISOString().replace("T", " ").slice(0, 19) : "–"; }

function fill(tableId, rows, cells) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren();
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const c of cells(row)) {
      const td = document.createElement("td");
      const [text, cls] = Array.isArray(c) ? c : [c, ""];
      td.textContent = text === null || text === undefined ? "–" : String(text);
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = $(tableId).querySelectorAll("th").length;
    td.className = "muted";
    td.textContent = "none";
    tr.appendChild(td);
    body.appendChild(tr);
  }
}

function showStatus(s) {
  $("run").textContent = `${s.mode === "journal" ? "journal" : "run"} ${s.run_id} · ${s.strategy} · ${s.venues.join(", ")}`;
  const badge = $("state-badge");
  if (s.halted) { badge.textContent = "halted"; badge.className = "badge bad"; badge.title = s.halted; }
  else if (s.running) { badge.textContent = "running"; badge.className = "badge ok"; badge.title = ""; }
  else { badge.textContent = s.stop_reason ? "stopped: " + s.stop_reason : "stopped"; badge.className = "badge"; }
  $("paused-badge").hidden = !s.entries_paused;
  $("paused-badge").title = s.entries_paused || "";
  $("clock").textContent = time(s.ts_ns) + (s.simulated_clock ? " (replay time)" : " UTC");
  $("equity").textContent = num(s.equity);
  if (s.equity !== null && s.start_equity !== null) {
    const d = Number(s.equity) - Number(s.start_equity);
    $("equity-change").textContent = (d >= 0 ? "+" : "") + num(d) + " since start";
    $("equity-change").className = "sub " + signClass(d);
  }
  $("drawdown").textContent = pct(s.drawdown_frac);
  $("events").textContent = s.events.toLocaleString();
  $("decisions").textContent = s.decisions.toLocaleString();
  $("orders-sent").textContent = s.orders_sent.toLocaleString();
  $("progress").textContent = s.progress === null ? "" : "replay " + pct(s.progress, 0);
  fill("feeds", s.feeds, (f) => [
    f.venue, f.feed,
    f.connected === null ? "n/a" : f.connected ? ["yes", "pos"] : ["no", "neg"],
    f.last_message_age_s === null ? time(f.last_event_ns) : f.last_message_age_s.toFixed(1) + " s ago",
    Object.keys(f.paused).length ? [Object.entries(f.paused).map(([t, r]) => t + ": " + r).join("; "), "neg"] : "none",
    f.circuit_open ? [f.circuit_open, "neg"] : "closed",
  ]);
  for (const b of document.querySelectorAll(".buttons button")) b.disabled = s.mode !== "bot" || !s.running;
}

function showPnl(p) {
  $("pnl-net").textContent = num(p.net);
  $("pnl-net").className = "value " + signClass(p.net);
  $("pnl-realized").textContent = num(p.realized);
  $("pnl-unrealized").textContent = num(p.unrealized);
  $("pnl-fees").textContent = num(p.fees);
  $("pnl-funding").textContent = num(p.funding);
  $("max-drawdown").textContent = "max " + pct(p.max_drawdown_frac === null ? null : -Math.abs(p.max_drawdown_frac));
}

function showChart(points) {
  if (points.length < 2) return;
  const W = 800, H = 150, DD_TOP = 158, DD_H = 58;
  const eq = points.map((p) => Number(p.equity));
  const lo = Math.min(...eq), hi = Math.max(...eq);
  const span = hi - lo || Math.max(Math.abs(hi) * 1e-4, 1e-9);  // a flat line sits in the middle
  const mid = hi === lo ? 0.5 : 0;
  const t0 = points[0].ts_ns, t1 = points[points.length - 1].ts_ns, tspan = t1 - t0 || 1;
  const x = (t) => ((t - t0) / tspan) * W;
  const line = points.map((p, i) => (i ? "L" : "M") + x(p.ts_ns).toFixed(1) + "," + (4 + (1 - mid - (Number(p.equity) - lo) / span) * (H - 8)).toFixed(1)).join(" ");
  $("eq-line").setAttribute("d", line);
  const worst = Math.min(...points.map((p) => p.drawdown_frac), -1e-9);
  const dd = points.map((p) => "L" + x(p.ts_ns).toFixed(1) + "," + (DD_TOP + (p.drawdown_frac / worst) * DD_H).toFixed(1)).join(" ");
  $("dd-area").setAttribute("d", "M0," + DD_TOP + " " + dd + " L" + W + "," + DD_TOP + " Z");
  $("chart-hi").textContent = num(hi);
  $("chart-lo").textContent = num(lo);
  $("chart-dd").textContent = pct(worst > -1e-9 ? 0 : worst);
  $("chart-span").textContent = time(t0) + " – " + time(t1);
}

async function refresh() {
  const jobs = [
    getJSON("/api/status").then(showStatus),
    getJSON("/api/pnl").then(showPnl),
    getJSON("/api/equity").then((e) => showChart(e.points)),
    getJSON("/api/positions").then((p) => {
      fill("positions", p.positions, (r) => [r.ticker, [num(r.size, 4), signClass(r.size)], num(r.entry), num(r.mark),
        [num(r.unrealized), signClass(r.unrealized)], r.liquidation_price ? num(r.liquidation_price) : (r.liquidation_note || "–"),
        pct(r.liquidation_distance, 1)]);
      fill("accounts", p.accounts, (a) => [a.venue, num(a.equity), num(a.free_collateral), num(a.initial_margin),
        num(a.maintenance_margin), pct(a.margin_usage, 1)]);
      const subs = p.subaccounts || [];
      $("subaccounts").hidden = subs.length === 0;
      fill("subaccounts", subs, (r) => [r.venue, r.subaccount + (r.isolated ? " (isolated)" : ""),
        Object.entries(r.positions).map(([t, z]) => t + " " + z).join(", ") || "flat", num(r.equity), num(r.free_collateral)]);
    }),
    getJSON("/api/orders").then((o) => fill("orders", o.orders, (r) => [r.client_id, r.ticker, r.side, num(r.size, 4),
      r.price === null ? "market" : num(r.price), r.status, r.tag])),
    getJSON("/api/markets").then((m) => fill("markets", m.markets, (r) => [r.rank ?? "–", r.ticker, num(r.price),
      r.composite === null ? "–" : r.composite.toFixed(1), ...["momentum", "volume", "volatility", "orderbook", "funding"]
        .map((k) => (r.scores[k] === undefined ? "–" : r.scores[k].toFixed(0)))])),
    getJSON("/api/risk?limit=20").then((r) => fill("risk", r.actions.slice().reverse(), (a) => [time(a.ts_ns), a.policy,
      [a.action, a.action === "HALT" || a.action === "CLOSE_ALL" ? "neg" : ""], a.ticker, [a.reason, "reason"]])),
  ];
  const results = await Promise.allSettled(jobs);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) $("run").textContent = "API error: " + failed.reason.message;
}

function logEvent(kind, data) {
  const li = document.createElement("li");
  let text = kind;
  if (kind === "fill") text += ` ${data.side} ${data.size} ${data.ticker} @ ${data.price}`;
  else if (kind === "risk") text += ` ${data.policy}: ${data.action} ${data.reason}`;
  else if (kind === "order_result") text += ` ${data.client_id} ${data.side} ${data.size} ${data.ticker}: ${data.status}`;
  else if (kind === "decisions") text += ` ${data.decisions} (+${data.since_last})`;
  else if (kind === "equity") text += ` ${num(data.equity)}`;
  else if (kind === "order") text += ` ${data.client_id} ${data.ticker}: ${data.status}` + (data.filled ? ` (filled ${data.filled})` : "");
  else if (kind === "control") text += ` ${data.action} by ${data.source}: ${data.applied ? "applied" : "queued"}`;
  else text += " " + JSON.stringify(data);
  li.textContent = text;
  const log = $("event-log");
  log.prepend(li);
  while (log.children.length > 30) log.lastChild.remove();
}

async function follow() {
  // Server-Sent Events over fetch (EventSource cannot send the Authorization header)
  for (;;) {
    try {
      const r = await fetch("/api/events", { headers: headers({ Accept: "text/event-stream" }) });
      if (!r.ok) { $("stream-state").textContent = "unavailable (" + r.status + ")"; return; }
      $("stream-state").textContent = "connected";
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let kind = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) kind = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (data) logEvent(kind, JSON.parse(data));
          if (kind === "bye") { $("stream-state").textContent = "ended (the bot stopped)"; return; }
        }
      }
    } catch (e) {
      $("stream-state").textContent = "reconnecting (" + e.message + ")";
    }
    await new Promise((res) => setTimeout(res, 2000));
  }
}

async function control(action) {
  const msg = $("control-msg");
  if (!token) { msg.textContent = "enter the bearer token first"; return; }
  if ((action === "close-all" || action === "halt") && !window.confirm(`Really ${action}?`)) return;
  msg.textContent = action + "…";
  try {
    const r = await fetch("/api/control/" + action, {
      method: "POST", headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ reason: action + " from the web dashboard" }),
    });
    const body = await r.json().catch(() => ({}));
    msg.textContent = r.ok ? `${body.action}: ${body.applied ? "applied" : "queued"} (${body.source})` : "refused: " + (body.error || r.status);
  } catch (e) {
    msg.textContent = "failed: " + e.message;
  }
  refresh();
}

$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("token").value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
  $("token").value = "";
  $("control-msg").textContent = token ? "token set for this tab" : "token cleared";
});
for (const b of document.querySelectorAll(".buttons button")) b.addEventListener("click", () => control(b.dataset.action));

refresh();
setInterval(refresh, 1000);
follow();
