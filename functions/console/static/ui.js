// DOM helpers: every text goes in through textContent (never HTML), every input gets a label.
import { auditRecordOf, call, canAct, newIdempotencyKey } from "./api.js";

export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
export function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  for (const child of children.flat(Infinity)) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

export const link = (href, text) => h("a", { href }, text);

export function money(minor, currency) {
  if (minor === null || minor === undefined) return "—";
  const sign = minor < 0 ? "-" : "";
  const abs = Math.abs(minor);
  return `${sign}${Math.trunc(abs / 100)}.${String(abs % 100).padStart(2, "0")} ${currency || ""}`.trim();
}

export const when = (text) => (text ? String(text).replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z") : "—");

export function section(title, ...children) {
  const id = `s-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

// A table with a caption and column headers; `columns` is [[header, row => cell], ...].
export function table(caption, columns, rows, empty = "Nothing yet.") {
  if (!rows.length) return h("p", { class: "empty" }, `${caption}: ${empty}`);
  return h(
    "table",
    {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map(([title]) => h("th", { scope: "col" }, title)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row) ?? "—"))))),
  );
}

// Any JSON value as a tree of <details> (objects and lists) and key: value lines.
export function tree(value, label = "", open = 1) {
  if (value === null || typeof value !== "object") {
    return h("div", { class: "leaf" }, label ? h("span", { class: "key" }, `${label}: `) : null, h("span", { class: "value" }, JSON.stringify(value)));
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
  const size = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
  return h(
    "details",
    { open: open > 0 },
    h("summary", {}, label ? `${label} ${size}` : size),
    h("div", { class: "children" }, entries.map(([k, v]) => tree(v, k, open - 1))),
  );
}

export function fields(pairs) {
  return h("dl", { class: "fields" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

export function say(text) {
  document.getElementById("status").textContent = text;
}

export function errorBox(error) {
  const parts = [error.message || String(error)];
  if (error.code) parts.push(`(${error.code}${error.requestId ? `, request ${error.requestId}` : ""})`);
  return h("p", { class: "error", role: "alert" }, parts.join(" "));
}

// A form of labelled inputs; `inputs` is [{name, label, value?, type?, required?, pattern?}].
export function form(id, inputs, submitText, onSubmit) {
  const node = h(
    "form",
    { id, class: "inline" },
    inputs.map((input) => [
      h("label", { for: `${id}-${input.name}` }, input.label),
      h("input", {
        id: `${id}-${input.name}`,
        name: input.name,
        type: input.type || "text",
        value: input.value,
        required: input.required,
        placeholder: input.placeholder,
        autocomplete: "off",
      }),
    ]),
    h("button", { type: "submit" }, submitText),
  );
  node.addEventListener("submit", (event) => {
    event.preventDefault();
    onSubmit(Object.fromEntries(new FormData(node).entries()));
  });
  return node;
}

// Stacked bars over time (plain SVG, no library): ingest outcomes, or one series such as a meter's usage.
export const OUTCOMES = ["accepted", "duplicate", "conflict", "replay", "failed", "over_limit"];
export function barChart(buckets, title, series = OUTCOMES) {
  const width = 720;
  const height = 180;
  const pad = 28;
  const max = Math.max(1, ...buckets.map((b) => series.reduce((sum, o) => sum + b[o], 0)));
  const step = (width - pad) / Math.max(1, buckets.length);
  const bars = [];
  buckets.forEach((bucket, i) => {
    let y = height - pad;
    for (const outcome of series) {
      const value = bucket[outcome];
      if (!value) continue;
      const barHeight = (value / max) * (height - 2 * pad);
      y -= barHeight;
      bars.push(s("rect", { x: pad + i * step, y, width: Math.max(1, step - 1), height: barHeight, class: `o-${outcome}` }, s("title", {}, `${bucket.start} ${outcome}: ${value}`)));
    }
  });
  const labels = buckets.length
    ? [s("text", { x: pad, y: height - 8, class: "axis" }, buckets[0].start), s("text", { x: width - 4, y: height - 8, class: "axis end" }, buckets[buckets.length - 1].start)]
    : [];
  const svg = s(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, class: "chart" },
    s("title", {}, title),
    s("line", { x1: pad, y1: height - pad, x2: width, y2: height - pad, class: "axis-line" }),
    s("text", { x: 2, y: pad, class: "axis" }, String(max)),
    bars,
    labels,
  );
  const legend = series.length > 1 ? h("ul", { class: "legend" }, series.map((o) => h("li", {}, h("span", { class: `swatch o-${o}`, "aria-hidden": "true" }), o))) : null;
  return h("figure", {}, svg, legend);
}

// One operator action: ask for a reason and a ticket, confirm, send with an Idempotency-Key, then show
// the audit record the action wrote (found by the action's request id).
export function actionButton(text, { summary, method = "POST", path, body = {}, audit = [], done }) {
  const button = h("button", { type: "button", class: "action", disabled: !canAct(), title: canAct() ? undefined : "Needs an admin key" }, text);
  button.addEventListener("click", () => openAction({ text, summary, method, path, body, audit, done }));
  return button;
}

function openAction(action) {
  const dialog = document.getElementById("action");
  const formNode = document.getElementById("action-form");
  const result = document.getElementById("action-result");
  const errorNode = document.getElementById("action-error");
  document.getElementById("action-title").textContent = action.text;
  document.getElementById("action-summary").textContent = action.summary;
  formNode.reset();
  formNode.hidden = false;
  result.hidden = true;
  errorNode.textContent = "";
  const idempotencyKey = newIdempotencyKey(); // one per dialog: a second click sends the same key
  formNode.onsubmit = async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(formNode).entries());
    const submit = document.getElementById("action-submit");
    submit.disabled = true;
    errorNode.textContent = "";
    try {
      const body = { ...action.body, reason: data.reason, ticket: data.ticket };
      const answer = await call(action.method, action.path, { body, idempotencyKey });
      const partitions = typeof action.audit === "function" ? action.audit(answer.data) : action.audit;
      const record = await auditRecordOf([...partitions, "_global"], answer.requestId);
      const shown = document.getElementById("action-record");
      shown.replaceChildren(
        record ? fields([["id", record.id], ["action", record.action], ["actor", record.actor], ["customer", record.customer_id], ["target", record.target], ["reason", record.reason], ["ticket", record.ticket], ["at", when(record.at)], ["request", record.request_id]]) : h("p", {}, `No audit record found for request ${answer.requestId}.`),
        tree(answer.data, "answer", 0),
      );
      formNode.hidden = true;
      result.hidden = false;
      document.getElementById("action-close").focus();
      say(`${action.text}: done (request ${answer.requestId}).`);
      if (action.done) action.done(answer.data);
    } catch (error) {
      errorNode.textContent = `${error.message} (${error.code || "error"})`;
    } finally {
      submit.disabled = false;
    }
  };
  document.getElementById("action-cancel").onclick = () => dialog.close();
  document.getElementById("action-close").onclick = () => dialog.close();
  dialog.showModal();
  document.getElementById("action-reason").focus();
}
