// meter-gateway page: live values over server-sent events (or one snapshot with ?live=0),
// hand-drawn SVG charts and the 382L display. Plain ES2020, no dependencies, no build step. MIT, like the rest of meter-gateway.
"use strict";

const API = "/api/v1";
const SVG = "http://www.w3.org/2000/svg";
const $ = (selector) => document.querySelector(selector);
// Datasheet "Mains voltage reading": a phase indicator lights above the minimum voltage and
// flashes when the voltage is there but no current flows (below the starting current).
const VOLTAGE_MIN_V = 184; // 0.8 x 230 V
const STARTING_CURRENT_A = 0.02;
const PHASES = [["1-0:32.7.0", "1-0:31.7.0"], ["1-0:52.7.0", "1-0:51.7.0"], ["1-0:72.7.0", "1-0:71.7.0"]];
const TARIFF = "0-0:96.14.0";
const LIVE_POINT_MS = 10000; // one point of the live curve per 10 s is plenty at 800 px

const page = {
  info: null,
  meter: null,
  registers: {}, // obis -> {value, unit, at, label?}
  labels: {},
  display: null,
  lcd: { list: "auto", index: 0, shownAt: 0, lastPush: 0 },
  today: { since: null, until: null, rows: [], interval: 900, live: [] },
  updates: 0,
  degraded: false,
  magnetic: false,
};

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

// ---------------------------------------------------------------------------------------------
// the 382L LCD

function displayCode(code) {
  // The 7-digit identification shows C.D.E of the OBIS code (1-0:32.7.0 -> 32.7.0).
  const match = /^(\d+)-(\d+):(.+)$/.exec(code);
  return match ? match[3] : code;
}

function lcdValue(register) {
  if (!register) return ["--------", ""];
  const { value, unit } = register;
  if (typeof value !== "number") return [String(value).slice(0, 8), unit || ""];
  switch (unit) {
    case "kWh": case "kvarh": {
      const [whole, frac] = value.toFixed(2).split(".");
      return [`${whole.padStart(6, "0")}.${frac}`, unit];
    }
    case "W": return [(value / 1000).toFixed(3), "kW"];
    case "var": return [(value / 1000).toFixed(3), "kvar"];
    case "VA": return [(value / 1000).toFixed(3), "kVA"];
    case "V": return [value.toFixed(1), "V"];
    case "A": return [value.toFixed(2), "A"];
    case "Hz": return [value.toFixed(2), "Hz"];
    default: return [Number.isInteger(value) ? String(value) : value.toFixed(3), unit || ""];
  }
}

function num(code) {
  const register = page.registers[code];
  return register && typeof register.value === "number" ? register.value : null;
}

function quadrant() {
  const pPlus = num("1-0:1.7.0"), pMinus = num("1-0:2.7.0");
  const qPlus = num("1-0:3.7.0"), qMinus = num("1-0:4.7.0");
  if (pPlus === null && pMinus === null) return "";
  const p = (pPlus || 0) - (pMinus || 0);
  const q = (qPlus || 0) - (qMinus || 0);
  if (p >= 0) return q >= 0 ? "1" : "4";
  return q >= 0 ? "2" : "3";
}

function lcdList(name) {
  const display = page.display;
  if (!display) return [];
  const wanted = name === "manual" ? display.manual : display.auto;
  const present = wanted.filter((code) => code in page.registers);
  return present.length ? present : wanted;
}

// What the LCD shows: this page's manual list while its button was pushed in the last 2 min,
// else the modelled meter's own display (engine), else the auto list scrolled here.
function lcdCurrent() {
  const lcd = page.lcd;
  const display = page.display;
  const now = Date.now();
  if (lcd.list === "manual" && now - lcd.lastPush >= display.manual_timeout_s * 1000) {
    lcd.list = "auto";
    lcd.index = 0;
    lcd.shownAt = now;
  }
  if (lcd.list === "manual") {
    const list = lcdList("manual");
    return { code: list[lcd.index % Math.max(list.length, 1)], list: "manual", index: lcd.index };
  }
  if (page.server) return { code: page.server.obis, list: page.server.list, index: page.server.index };
  const list = lcdList("auto");
  if (now - lcd.shownAt >= display.scroll_s * 1000) {
    lcd.index = list.length ? (lcd.index + 1) % list.length : 0;
    lcd.shownAt = now;
  }
  return { code: list[lcd.index % Math.max(list.length, 1)], list: "auto", index: lcd.index };
}

function lcdTick() {
  if (page.display) renderLcd();
}

function pushButton() {
  const lcd = page.lcd;
  const now = Date.now();
  if (lcd.list !== "manual") {
    lcd.list = "manual";
    lcd.index = 0;
  } else {
    const length = lcdList("manual").length;
    lcd.index = length ? (lcd.index + 1) % length : 0;
  }
  lcd.lastPush = now;
  lcd.shownAt = now;
  renderLcd();
}

function renderLcd() {
  const { code, list, index } = lcdCurrent();
  let register = code ? page.registers[code] : null;
  if (!register && page.server && page.server.obis === code && page.server.value !== null) {
    register = { value: page.server.value, unit: page.server.unit };
  }
  const [text, unit] = lcdValue(register);
  $("#lcd").dataset.list = list;
  $("#lcd").dataset.index = String(index);
  $("#lcd").dataset.obis = code || "";
  // Unlit segments show faintly behind the lit ones, as on the real glass.
  const id = (code ? displayCode(code) : "").padStart(7, " ");
  const value = text.padStart(8, " ");
  $("#lcd-id").textContent = id;
  $("#lcd-id-ghost").textContent = id.replace(/[^.]/g, "8");
  $("#lcd-value").textContent = value;
  $("#lcd-value-ghost").textContent = value.replace(/[^.]/g, "8");
  $("#lcd-unit").textContent = unit;
  $("#lcd-label").textContent = code ? (page.labels[code] || code) : "";
  $("#lcd-list").textContent = { manual: "MAN", battery: "BAT" }[list] || "AUTO";
  const q = quadrant();
  $("#lcd-quadrant").dataset.q = q;
  for (const mark of document.querySelectorAll("#lcd-quadrant i")) {
    mark.classList.toggle("on", mark.dataset.q === q);
  }
  PHASES.forEach(([voltage, current], i) => {
    const v = num(voltage), a = num(current);
    const mark = $(`#lcd-l${i + 1}`);
    const live = v !== null && v >= VOLTAGE_MIN_V;
    mark.classList.toggle("on", live && (a === null || a >= STARTING_CURRENT_A));
    mark.classList.toggle("blink", live && a !== null && a < STARTING_CURRENT_A);
  });
  const tariff = page.registers[TARIFF];
  const active = tariff ? String(tariff.value).replace(/\D/g, "") : "";
  for (const mark of document.querySelectorAll("#lcd-tariff i")) {
    mark.classList.toggle("on", mark.dataset.t === active);
  }
  $("#lcd-status").textContent = page.magnetic ? "MAG" : page.degraded ? "ERR" : "";
}

// ---------------------------------------------------------------------------------------------
// live values

function formatValue(register) {
  if (!register) return "–";
  const value = register.value;
  if (typeof value !== "number") return String(value);
  const digits = { kWh: 3, kvarh: 3, V: 1, A: 2, Hz: 2, W: 0, var: 0, VA: 0 }[register.unit];
  return value.toLocaleString(undefined, {
    minimumFractionDigits: digits ?? 0,
    maximumFractionDigits: digits ?? 3,
  });
}

function applyRegisters(registers, { flash = true } = {}) {
  for (const [code, register] of Object.entries(registers)) {
    page.registers[code] = { ...page.registers[code], ...register };
    if (register.label) page.labels[code] = register.label;
    const tile = document.querySelector(`.tile[data-obis="${code}"] .v`);
    if (tile) {
      tile.textContent = formatValue(page.registers[code]);
      if (flash) { tile.classList.remove("flash"); void tile.offsetWidth; tile.classList.add("flash"); }
    }
  }
  const pPlus = num("1-0:1.7.0"), pMinus = num("1-0:2.7.0");
  if (pPlus !== null || pMinus !== null) {
    const net = (pPlus || 0) - (pMinus || 0);
    $("#net-power").textContent = Math.round(net).toLocaleString();
    $("#net-dir").textContent = net < 0 ? "exporting" : "importing";
  }
  renderRegisterTable();
  if (BREAKER_REGISTERS.some((code) => code in registers)) refreshBreakerSoon();
}

function renderRegisterTable() {
  const body = $("#registers tbody");
  const rows = Object.entries(page.registers).sort(([a], [b]) => a.localeCompare(b, "en", { numeric: true }));
  body.replaceChildren(...rows.map(([code, register]) => row([
    code, page.labels[code] || "", [formatValue(register), "num"], register.unit || "",
  ])));
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    const [text, cls] = Array.isArray(cell) ? cell : [cell, ""];
    td.textContent = text;
    if (cls) td.className = cls;
    tr.append(td);
  }
  return tr;
}

function addLivePoint(registers) {
  if (!("1-0:1.7.0" in registers || "1-0:2.7.0" in registers)) return;
  const at = Date.parse(registers["1-0:1.7.0"]?.at || registers["1-0:2.7.0"]?.at);
  const points = page.today.live;
  if (points.length && at - points[points.length - 1][0] < LIVE_POINT_MS) return;
  points.push([at, (num("1-0:1.7.0") || 0) - (num("1-0:2.7.0") || 0)]);
  drawToday();
}

function connect() {
  const source = new EventSource(`${API}/stream?meter=${encodeURIComponent(page.meter)}`);
  const conn = $("#conn");
  source.onopen = () => { conn.textContent = "live"; conn.className = "pill on"; };
  source.onerror = () => { conn.textContent = "reconnecting"; conn.className = "pill off"; };
  source.addEventListener("snapshot", (message) => {
    const data = JSON.parse(message.data);
    applyRegisters(data.meters[page.meter] || {}, { flash: false });
    if (data.display && data.display[page.meter]) page.server = data.display[page.meter];
    lcdTick();
  });
  for (const kind of ["live", "state"]) {
    source.addEventListener(kind, (message) => {
      const data = JSON.parse(message.data);
      if (data.meter !== page.meter) return;
      page.updates += 1;
      document.body.dataset.updates = String(page.updates);
      applyRegisters(data.registers);
      if (kind === "live") addLivePoint(data.registers);
      lcdTick();
    });
  }
  source.addEventListener("display", (message) => {
    const data = JSON.parse(message.data);
    if (data.meter !== page.meter) return;
    page.server = data;
    lcdTick();
  });
  source.addEventListener("profile", (message) => {
    const row = JSON.parse(message.data);
    const today = page.today;
    if (row.meter !== page.meter || !today.since || Date.parse(row.start) < Date.parse(today.since)) return;
    today.rows = today.rows.filter((r) => r.start !== row.start).concat([row]);
    drawToday();
  });
  source.addEventListener("event", (message) => prependEvent(JSON.parse(message.data)));
  source.addEventListener("health", (message) => renderModules(JSON.parse(message.data)));
}

// ?live=0: one reading and no stream. An open event stream is a request that never ends, so a
// headless browser waiting for the network to go quiet (a screenshot, an e-paper kiosk) would
// wait forever; this page settles.
async function loadSnapshot() {
  const data = await getJSON(`${API}/meters/${encodeURIComponent(page.meter)}/registers`);
  applyRegisters(data.registers, { flash: false });
  const conn = $("#conn");
  conn.textContent = "snapshot";
  conn.className = "pill";
  lcdTick();
}

// ---------------------------------------------------------------------------------------------
// events and modules

function timeText(iso) {
  return new Date(iso).toLocaleString(undefined, {
    timeZone: page.info.timezone, dateStyle: "short", timeStyle: "medium",
  });
}

function prependEvent(event) {
  const body = $("#events tbody");
  body.prepend(row([timeText(event.at), event.meter, event.kind, event.detail]));
  while (body.children.length > 50) body.lastElementChild.remove();
  if (/magnet/i.test(event.kind)) { page.magnetic = true; }
  if (event.meter === page.meter && BREAKER_EVENTS.test(event.kind)) refreshBreakerSoon();
}

async function loadEvents() {
  // The log pages forward by id; walk the last week and keep the newest 50.
  const since = new Date(Date.now() - 7 * 86400e3).toISOString();
  let after = 0, kept = [];
  for (let pages = 0; pages < 20; pages += 1) {
    const data = await getJSON(`${API}/events?since=${encodeURIComponent(since)}&limit=1000&after_id=${after}`);
    kept = kept.concat(data.events).slice(-50);
    if (data.next_after_id === null) break;
    after = data.next_after_id;
  }
  for (const event of kept) prependEvent(event);
}

function renderModules(modules) {
  const body = $("#modules tbody");
  const entries = Array.isArray(modules) ? modules.map((m) => [m.name, m]) : Object.entries(modules);
  page.degraded = entries.some(([, m]) => m.state !== "running" || !m.communicating);
  body.replaceChildren(...entries.map(([name, m]) => {
    const tr = row([name, m.state, [`${m.frames_ok} / ${m.frames_failed}`, "num"], m.last_error || ""]);
    tr.children[1].className = `state-${m.state}`;
    return tr;
  }));
}

// ---------------------------------------------------------------------------------------------
// breaker and credit (never a safety function)

const BREAKER_REGISTERS = ["breaker_state", "breaker_actuator", "breaker_feedback", "credit"];
const BREAKER_EVENTS = /^(breaker_|top_up$|credit_|emergency_credit$|disconnect_deferred$|button_refused$)/;
const BREAKER_TEXT = {
  connected: "connected", disconnected: "disconnected", ready_for_reconnection: "ready for reconnection",
};
const TOKEN_KEY = "meter-gateway-token";
let breakerTimer = null;

async function loadBreaker() {
  page.breaker = await getJSON(`${API}/meters/${encodeURIComponent(page.meter)}/breaker`);
  renderBreaker();
}

function refreshBreakerSoon() {
  // Several registers and events arrive for one switch: fetch once they have settled.
  clearTimeout(breakerTimer);
  breakerTimer = setTimeout(() => loadBreaker().catch(() => {}), 250);
}

function renderBreaker() {
  const b = page.breaker;
  if (!b) return;
  $("#breaker").hidden = false;
  $("#breaker").dataset.state = b.enabled ? b.state : "none";
  $("#breaker-safety").textContent = b.safety;
  const state = $("#breaker-state"), actuator = $("#breaker-actuator");
  if (b.enabled) {
    actuator.hidden = false;
    state.textContent = BREAKER_TEXT[b.state] || b.state;
    state.className = `pill ${{ connected: "on", disconnected: "off" }[b.state] || "warn"}`;
    const confirmation = b.actuator.confirmation;
    actuator.dataset.confirmation = confirmation;
    actuator.textContent = !b.actuator.module ? "no actuator: model only"
      : confirmation === "confirmed" ? `${b.actuator.module} confirms`
      : confirmation === "pending" ? `${b.actuator.module}: switching ${b.actuator.target}…`
      : `${b.actuator.module} FAILED: position unconfirmed`;
    actuator.className = `pill ${{ confirmed: "on", pending: "warn" }[confirmation] || "off"}`;
    $("#breaker-causes").textContent = b.causes.length ? `held open by ${b.causes.join(", ")}` : "";
    const c = b.control;
    $("#breaker-modes").textContent = `remote reconnect: ${c.remote_reconnect}; button `
      + `${c.button_disconnect ? "opens" : "does not open"}, ${c.button_reconnect ? "closes" : "does not close"}`;
  } else {
    state.textContent = "no breaker";
    state.className = "pill";
    actuator.hidden = true;
    $("#breaker-modes").textContent = "[meters.breaker] enabled = false";
  }
  $("#breaker-form").hidden = !b.enabled;
  const credit = b.prepayment;
  $("#credit-row").hidden = !credit.enabled;
  if (credit.enabled) {
    const value = Number(credit.credit);
    $("#credit-value").textContent = value.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 3 });
    $("#credit-unit").textContent = credit.unit;
    $("#credit-row").dataset.exhausted = String(credit.exhausted);
    $("#credit-note").textContent = [
      credit.exhausted ? "no credit left" : "",
      credit.deferred ? "friendly hours keep the power on" : "",
      credit.emergency_in_use ? "emergency credit in use" : "",
      credit.friendly_now && !credit.deferred ? "friendly hours now" : "",
    ].filter(Boolean).join("; ");
  }
  $("#breaker-history tbody").replaceChildren(...b.history.map((e) => row([timeText(e.at), e.kind.replace(/_/g, " "), e.detail])));
}

async function pressBreakerButton(event) {
  event.preventDefault();
  const token = $("#api-token").value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  const result = $("#breaker-result");
  result.textContent = "…";
  const response = await fetch(`${API}/meters/${encodeURIComponent(page.meter)}/commands/button`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ args: {} }),
  });
  const data = await response.json().catch(() => ({}));
  result.dataset.ok = String(response.ok);
  result.textContent = response.ok
    ? `done: ${BREAKER_TEXT[data.result.state] || data.result.state}`
    : `refused: ${data.error ? data.error.message : `HTTP ${response.status}`}`;
  await loadBreaker();
}

// ---------------------------------------------------------------------------------------------
// charts (hand-drawn SVG)

function el(name, attributes, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Round axis bounds: about four steps of 1, 2, 2.5 or 5 times a power of ten.
function scale(low, high) {
  const raw = (high - low) / 4 || 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * power).find((s) => s >= raw);
  return { min: Math.floor(low / step) * step, max: Math.ceil(high / step) * step, step };
}

function axes(svg, box, { min, max, step }, unit) {
  // As many decimals as the step has: 0.025 needs three, or 0.025 and 0.03 would read alike.
  const digits = (String(Number(step.toPrecision(6))).split(".")[1] || "").length;
  for (let value = min; value <= max + step / 2; value += step) {
    const y = box.bottom - ((value - min) / (max - min)) * (box.bottom - box.top);
    svg.append(el("line", { x1: box.left, x2: box.right, y1: y, y2: y, class: "grid" }));
    svg.append(el("text", { x: box.left - 6, y: y + 4, "text-anchor": "end" }, value.toFixed(digits)));
  }
  svg.append(el("text", { x: box.left - 6, y: box.top - 8, "text-anchor": "end" }, unit));
}

function drawToday() {
  const svg = $("#chart-today");
  const today = page.today;
  if (!today.since) return;
  svg.replaceChildren();
  const box = { left: 48, right: 790, top: 20, bottom: 195 };
  const t0 = Date.parse(today.since), t1 = t0 + 86400e3;
  const x = (t) => box.left + ((t - t0) / (t1 - t0)) * (box.right - box.left);
  // kWh in an interval -> its mean power in W
  const mean = (r, code) => ((r.values[code] || 0) * 3.6e9) / (Date.parse(r.end) - Date.parse(r.start));
  const imports = today.rows.map((r) => [Date.parse(r.start), mean(r, "1-0:1.8.0")]);
  const exports = today.rows.map((r) => [Date.parse(r.start), mean(r, "1-0:2.8.0")]);
  const live = today.live.filter(([t]) => t >= t0 && t < t1);
  const range = scale(
    -Math.max(0, ...exports.map((p) => p[1]), ...live.map((p) => -p[1])),
    Math.max(1, ...imports.map((p) => p[1]), ...live.map((p) => p[1])),
  );
  const y = (w) => box.bottom - ((w - range.min) / (range.max - range.min)) * (box.bottom - box.top);
  axes(svg, box, range, "W");
  for (let h = 0; h <= 24; h += 3) {
    svg.append(el("text", { x: x(t0 + h * 3600e3), y: box.bottom + 16, "text-anchor": "middle" }, `${h}`));
  }
  const width = Math.max(1, x(t0 + today.interval * 1000) - x(t0) - 1);
  for (const [t, w] of imports) if (w > 0) svg.append(el("rect", { x: x(t), y: y(w), width, height: y(0) - y(w), class: "import" }));
  for (const [t, w] of exports) if (w > 0) svg.append(el("rect", { x: x(t), y: y(0), width, height: y(-w) - y(0), class: "export" }));
  if (live.length > 1) {
    svg.append(el("polyline", { points: live.map(([t, w]) => `${x(t).toFixed(1)},${y(w).toFixed(1)}`).join(" "), class: "live" }));
  }
  $("#today-note").textContent = today.rows.length
    ? `load profile, ${today.interval / 60} min intervals; line: live power`
    : "no load profile recorded yet; line: live power since this page opened";
}

function localDate(date) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: page.info.timezone }).format(date);
}

async function drawWeek() {
  const svg = $("#chart-week");
  const todayLocal = localDate(new Date());
  const start = new Date(`${todayLocal}T00:00:00Z`);
  start.setUTCDate(start.getUTCDate() - 6);
  const since = start.toISOString().slice(0, 10);
  const data = await getJSON(`${API}/meters/${encodeURIComponent(page.meter)}/profile?since=${since}`);
  const days = new Map();
  for (let i = 0; i < 7; i += 1) {
    const day = new Date(start);
    day.setUTCDate(day.getUTCDate() + i);
    days.set(day.toISOString().slice(0, 10), [0, 0]);
  }
  for (const r of data.rows) {
    const key = localDate(new Date(Date.parse(r.start)));
    const sums = days.get(key);
    if (sums) { sums[0] += r.values["1-0:1.8.0"] || 0; sums[1] += r.values["1-0:2.8.0"] || 0; }
  }
  svg.replaceChildren();
  const box = { left: 40, right: 392, top: 20, bottom: 195 };
  const range = scale(0, Math.max(0.1, ...[...days.values()].map((d) => Math.max(d[0], d[1]))));
  const top = range.max;
  axes(svg, box, range, "kWh");
  const slot = (box.right - box.left) / 7;
  [...days.entries()].forEach(([day, [imported, exported]], i) => {
    const x = box.left + i * slot + slot * 0.15;
    const w = slot * 0.34;
    const h = (v) => (v / top) * (box.bottom - box.top);
    svg.append(el("rect", { x, y: box.bottom - h(imported), width: w, height: h(imported), class: "import" }, ));
    svg.append(el("rect", { x: x + w, y: box.bottom - h(exported), width: w, height: h(exported), class: "export" }));
    svg.append(el("text", { x: x + w, y: box.bottom + 16, "text-anchor": "middle" }, day.slice(5)));
  });
  $("#week-note").textContent = data.rows.length ? "import / export, kWh per day" : "no load profile recorded yet";
}

async function loadToday() {
  const data = await getJSON(`${API}/meters/${encodeURIComponent(page.meter)}/profile`);
  Object.assign(page.today, { since: data.since, until: data.until, rows: data.rows, interval: data.interval_s });
  drawToday();
}

// ---------------------------------------------------------------------------------------------

async function main() {
  page.info = await getJSON(`${API}/info`);
  $("#gateway-name").textContent = page.info.name;
  $("#version").textContent = `v${page.info.version}`;
  const params = new URLSearchParams(location.search);
  page.meter = params.get("meter") || page.info.meters[0];
  if (page.info.meters.length > 1) {
    const select = $("#meter-select");
    for (const id of page.info.meters) select.append(new Option(id, id, false, id === page.meter));
    select.onchange = () => { location.search = `?meter=${encodeURIComponent(select.value)}`; };
    $("#meter-pick").hidden = false;
  }
  page.display = await getJSON(`${API}/meters/${encodeURIComponent(page.meter)}/display`);
  Object.assign(page.labels, page.display.labels);
  page.server = page.display.state;
  page.lcd.shownAt = Date.now();
  $("#push").addEventListener("click", pushButton);
  $("#api-token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("#breaker-form").addEventListener("submit", (event) => pressBreakerButton(event).catch((error) => {
    $("#breaker-result").textContent = `error: ${error.message}`;
  }));
  if (params.get("live") === "0") await loadSnapshot();
  else connect();
  setInterval(lcdTick, 250);
  renderModules((await getJSON(`${API}/health`)).modules);
  await Promise.all([loadToday(), drawWeek(), loadEvents(), loadBreaker()]);
  // New intervals arrive on the stream; a new day starts a new curve and a new bar.
  setInterval(() => {
    if (Date.now() - Date.parse(page.today.since) >= 86400e3) { loadToday(); drawWeek(); }
  }, 60e3);
  document.body.dataset.ready = "1";
}

main().catch((error) => {
  $("#conn").textContent = `error: ${error.message}`;
  $("#conn").className = "pill off";
});
