// The status page updates itself: it asks /status.json once a second and
// redraws the services and transitions from it. Strings from the server
// only ever become text nodes, never markup.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const EVERY_MS = 1000;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function rate(r) {
  return r < 0 ? "-" : r.toFixed(1);
}

function spark(sp) {
  const svg = svgEl("svg", { viewBox: "0 0 120 24", width: "120", height: "24", role: "img",
    "aria-label": "active connections and weight, last minute" });
  for (const x of sp.down) {
    svg.append(svgEl("rect", { class: "down", x: String(x), y: "0", width: String(sp.step), height: "24" }));
  }
  svg.append(svgEl("polyline", { class: "w", points: sp.weight }));
  svg.append(svgEl("polyline", { class: "a", points: sp.active }));
  return svg;
}

function note(b) {
  if (b.operator_drain) return "drained by operator";
  if (b.draining) return "draining";
  if (!b.configured) return "not configured";
  return "";
}

function backendRow(b) {
  const tr = el("tr", { "data-backend": b.address, "data-health": b.health });
  tr.append(
    el("td", { class: "addr" }, b.address),
    el("td", { class: "health" }, b.health),
    el("td", { class: "weight" }, b.configured ? String(b.configured_weight) : "-"),
    el("td", { class: "kernel" }, b.in_kernel ? String(b.kernel_weight) : "-"),
    el("td", { class: "active" }, String(b.active_conns)),
    el("td", { class: "inactive" }, String(b.inactive_conns)),
    el("td", { class: "rate" }, rate(b.conn_rate)),
    el("td", { class: "spark" }, spark(b.spark)),
    el("td", { class: "note" }, note(b)));
  return tr;
}

function service(s) {
  let state = s.in_kernel ? "in kernel" : "NOT IN KERNEL";
  if (s.quorum_lost) state += `, QUORUM LOST (${s.serving} of ${s.quorum} serving)`;
  const head = el("tr", {}, ...["backend", "health", "weight", "kernel", "active", "inactive", "conn/s", "last minute", "note"]
    .map((h) => el("th", {}, h)));
  const body = el("tbody", {}, ...s.backends.map(backendRow));
  return el("section", { class: "service", "data-service": s.name },
    el("h2", {}, s.name + " ", el("small", {}, s.key), " ",
      el("span", { class: "svc-state" }, state), " ",
      el("span", { class: "svc-rate" }, rate(s.conn_rate) + " conn/s")),
    el("table", {}, el("thead", {}, head), body));
}

function bgp(b) {
  const sec = document.getElementById("bgp");
  sec.hidden = !b;
  if (!b) return;
  let state = `AS ${b.asn}, router id ${b.router_id}`;
  if (b.self_drained) state += ", drained by operator (drain-self)";
  if (b.leaving) state += ", leaving";
  document.getElementById("bgp-state").textContent = state;
  const time = (t) => (t ? new Date(t).toISOString().slice(11, 19) : "-");
  document.getElementById("bgp-peers").replaceChildren(...(b.peers || []).map((p) =>
    el("tr", { "data-peer": p.address, "data-state": p.state },
      el("td", {}, p.address), el("td", {}, String(p.asn)), el("td", { class: "state" }, p.state),
      el("td", {}, time(p.since)), el("td", {}, p.bfd || "-"), el("td", {}, String(p.advertised)))));
  document.getElementById("bgp-vips").replaceChildren(...(b.vips || []).map((v) =>
    el("li", { "data-vip": v.address, "data-announced": String(v.announced) },
      v.address + ": " + (v.announced ? "announced" : `not announced (${v.reason})`))));
}

function lines(id, list, empty) {
  const ul = document.getElementById(id);
  const items = (list || []).map((t) => el("li", {}, t));
  if (items.length === 0 && empty) items.push(el("li", { class: "none" }, empty));
  ul.replaceChildren(...items);
}

function render(p) {
  document.getElementById("services").replaceChildren(...p.services.map(service));
  lines("health-transitions", p.health_transitions, "none yet");
  bgp(p.bgp);
  const vrrp = document.getElementById("vrrp");
  vrrp.hidden = !p.vrrp_state;
  if (p.vrrp_state) {
    const st = document.getElementById("vrrp-state");
    st.textContent = p.vrrp_state;
    st.className = "vrrp-" + p.vrrp_state;
    document.getElementById("vrrp-priority").textContent = String(p.vrrp_priority);
    lines("vrrp-transitions", p.vrrp_transitions);
  }
  const up = document.getElementById("updated");
  const at = new Date(p.time);
  up.dataset.time = String(at.getTime());
  up.textContent = "as of " + at.toISOString().slice(11, 19) + " UTC";
  up.classList.remove("stale");
}

async function poll() {
  try {
    const r = await fetch("/status.json", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
  } catch (e) {
    // A director that restarts or is unreachable: say so on the page
    // and keep asking.
    const up = document.getElementById("updated");
    up.classList.add("stale");
    up.textContent = "not updating: " + e.message;
  } finally {
    setTimeout(poll, EVERY_MS);
  }
}

setTimeout(poll, EVERY_MS);
