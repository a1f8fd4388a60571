// The console's pages, one per hash route (#/customers/acme): the route never holds the key.
import { can, canAct, get, scopes, signIn, signOut, signedIn } from "./api.js";
import { actionButton, barChart, errorBox, fields, form, h, link, money, say, section, table, tree, when } from "./ui.js";

const enc = encodeURIComponent;
// a time as the API writes it (RFC 3339 in UTC with Z, no fraction on a whole second): the form of every
// time sent, and of every bucket's label (a minute's or an hour's first instant), matched as text
const iso = (d) => d.toISOString().replace(/\.\d+Z$/, "Z");
const main = () => document.getElementById("main");

function page(title, ...children) {
  document.title = `${title} · Neruba console`;
  return [h("h1", {}, title), ...children];
}

// A part of a page that loads on its own: an error in one part never blanks the others.
function part(load) {
  const holder = h("div", { class: "part", "aria-busy": "true" }, h("p", { class: "loading" }, "Loading…"));
  load()
    .then((node) => holder.replaceChildren(...[node].flat()))
    .catch((error) => holder.replaceChildren(errorBox(error)))
    .finally(() => holder.removeAttribute("aria-busy"));
  return holder;
}

const needs = (scope) => h("p", { class: "note" }, `This part reads ${scope} routes: sign in with a key that has the ${scope} scope.`);
const needsAdmin = () => needs("admin");

// ---------------------------------------------------------------- sign-in
function signInPage() {
  const problem = h("div", { id: "signin-problem" });
  const node = form("signin", [{ name: "key", label: "API key", type: "password", required: true, placeholder: "nrb_…" }], "Sign in", async ({ key }) => {
    problem.replaceChildren();
    try {
      const found = await signIn(key.trim());
      say(`Signed in with the ${found.join(" and ")} scope${found.length > 1 ? "s" : ""}.`);
      location.hash = "#/overview";
      render();
    } catch (error) {
      problem.replaceChildren(errorBox(error.status === 401 ? { message: "The API does not accept this key.", code: "unauthorized" } : error));
    }
  });
  return page(
    "Sign in",
    h("p", {}, "Type an API key. A read key sees everything read-only; a key with the admin scope can also act. The key stays in this browser tab only (session storage) and is sent to this API only."),
    node,
    problem,
  );
}

// ---------------------------------------------------------------- overview
function overviewPage() {
  // [from, to) by whole minutes, up to the end of the current minute (so it is counted too)
  const now = new Date(Math.floor(Date.now() / 60000) * 60000 + 60000);
  const from = new Date(now.getTime() - 6 * 3600 * 1000);
  return page(
    "Overview",
    section("Health and readiness", part(async () => {
      const health = await get("/health");
      let ready;
      try {
        ready = await get("/ready");
      } catch (error) {
        ready = { status: `not ready: ${error.message}`, checks: (error.details || []).map((d) => ({ name: d.param, ok: false })) };
      }
      return [
        fields([["health", `${health.status} (version ${health.version})`], ["readiness", ready.status]]),
        table("Readiness checks", [["check", (c) => c.name], ["ok", (c) => (c.ok ? "yes" : "NO")]], ready.checks || []),
      ];
    })),
    section("Ingest outcomes, last 6 hours", !can("read") ? needs("read") : part(async () => {
      const counts = await get("/v1/ingest/outcomes", { from: iso(from), to: iso(now), granularity: "minute" });
      // the API lists only minutes that have outcomes: lay them on every minute of the range
      const byMinute = new Map(counts.data.map((b) => [b.start, b]));
      const minutes = [];
      for (let t = Math.floor(from.getTime() / 60000) * 60000; t < now.getTime(); t += 60000) {
        const start = iso(new Date(t));
        minutes.push(byMinute.get(start) || { start, accepted: 0, duplicate: 0, conflict: 0, replay: 0, failed: 0, over_limit: 0 });
      }
      return [
        fields(Object.entries(counts.totals)),
        counts.data.length ? barChart(minutes, "Ingest outcomes per minute, last 6 hours") : h("p", { class: "empty" }, "No event in the last 6 hours."),
      ];
    })),
    section("Alarms in alarm", canAct() ? part(async () => {
      const alarms = await get("/admin/alarms");
      return table("Alarms in alarm", [["alarm", (a) => a.name], ["since", (a) => when(a.since)], ["metric", (a) => a.metric], ["reason", (a) => a.reason]], alarms.data, "none.");
    }) : needsAdmin()),
    section("Dead-letter queues", canAct() ? part(dlqTable) : needsAdmin()),
    section("Latest billing runs", canAct() ? part(async () => {
      const runs = await get("/admin/billing-runs", { limit: 5 });
      return table("Billing runs", [["id", (r) => r.id], ["trigger", (r) => r.trigger], ["as of", (r) => when(r.as_of)], ["status", (r) => r.status], ["windows", (r) => r.windows_found], ["invoiced", (r) => r.invoiced], ["failed", (r) => r.failed]], runs.data);
    }) : needsAdmin()),
    section("Latest sweeps", canAct() ? part(async () => {
      const sweeps = await get("/admin/sweeps", { limit: 5 });
      return table("Sweeps", [["id", (r) => r.id], ["trigger", (r) => r.trigger], ["started", (r) => when(r.started_at)], ["found", (r) => r.found], ["repaired", (r) => r.repaired], ["status", (r) => r.status]], sweeps.data);
    }) : needsAdmin()),
  );
}

// ---------------------------------------------------------------- customers
function customersPage() {
  const results = h("div", { id: "customer-results" });
  const show = async (query) => {
    const wanted = (query || "").trim().toLowerCase();
    const found = [];
    let cursor;
    for (let pages = 0; pages < 10 && found.length < 50; pages += 1) {
      const list = await get("/v1/customers", { limit: 100, starting_after: cursor });
      found.push(...list.data.filter((c) => !wanted || [c.external_id, c.name, c.email].some((v) => (v || "").toLowerCase().includes(wanted))));
      if (!list.has_more) break;
      cursor = list.next_cursor;
    }
    results.replaceChildren(table(wanted ? `Customers matching “${query}”` : "Customers", [
      ["id", (c) => link(`#/customers/${enc(c.external_id)}`, c.external_id)],
      ["name", (c) => c.name], ["email", (c) => c.email], ["currency", (c) => c.currency],
      ["archived", (c) => (c.archived_at ? when(c.archived_at) : "no")],
    ], found, "none found."));
  };
  const search = form("customer-search", [{ name: "q", label: "Search customers (id, name or email)" }], "Search", ({ q }) => show(q).catch((e) => results.replaceChildren(errorBox(e))));
  show("").catch((e) => results.replaceChildren(errorBox(e)));
  return page("Customers", search, results);
}

function customerPage(id) {
  const usage = h("div", { id: "usage" });
  return page(
    `Customer ${id}`,
    part(async () => {
      const c = await get(`/v1/customers/${enc(id)}`);
      return fields([["name", c.name], ["email", c.email], ["currency", c.currency], ["timezone", c.timezone], ["Stripe customer", c.stripe_customer_id], ["created", when(c.created_at)], ["archived", c.archived_at ? when(c.archived_at) : "no"]]);
    }),
    section("Balance", part(async () => {
      const b = await get(`/v1/customers/${enc(id)}/balance`);
      return fields([["amount due", money(b.amount_due_minor, b.currency)], ["credit available", money(b.credit_available_minor, b.currency)], ["paid to date", money(b.paid_to_date_minor, b.currency)]]);
    })),
    section("Subscriptions", part(async () => {
      const subs = await get(`/v1/customers/${enc(id)}/subscriptions`);
      return table("Subscriptions", [["id", (s) => s.id], ["status", (s) => s.status], ["plan", (s) => s.phases.map((p) => `${p.plan_code} v${p.plan_version}`).join(", ")], ["started", (s) => when(s.start_at)], ["ends", (s) => when(s.ended_at)]], subs.data);
    })),
    section("Usage", part(() => usageCharts(id)), usageForm(id, usage), usage),
    section("Credit grants", part(async () => {
      const grants = await get(`/v1/customers/${enc(id)}/credit-grants`);
      return table("Credit grants", [["id", (g) => g.id], ["kind", (g) => g.kind], ["amount", (g) => money(g.amount_minor, g.currency)], ["remaining", (g) => money(g.remaining_minor, g.currency)], ["status", (g) => g.status], ["expires", (g) => when(g.expires_at)]], grants.data);
    })),
    section("Invoices", part(async () => {
      const invoices = await get("/v1/invoices", { customer_id: id, limit: 20 });
      return table("Invoices", [["id", (i) => link(`#/invoices/${enc(i.id)}`, i.id)], ["number", (i) => i.number], ["status", (i) => i.status], ["period", (i) => `${when(i.period_start)} → ${when(i.period_end)}`], ["total", (i) => money(i.total_minor, i.currency)]], invoices.data);
    })),
    section("Ledger postings", part(async () => {
      const postings = await get(`/v1/customers/${enc(id)}/ledger`, { limit: 20 });
      return table("Ledger postings", [["at", (p) => when(p.at)], ["reason", (p) => p.reason], ["source", (p) => [p.source, p.source_id].filter(Boolean).join(" ")], ["total", (p) => money(p.total_minor, p.currency)], ["entries", (p) => p.entries.map((e) => `${e.account} ${e.debit_minor ? `Dr ${e.debit_minor}` : `Cr ${e.credit_minor}`}`).join("; ")]], postings.data);
    })),
  );
}

// One chart per meter the customer's current plans charge, over the last 7 days.
async function usageCharts(id) {
  const subs = await get(`/v1/customers/${enc(id)}/subscriptions`);
  const versions = new Set();
  for (const sub of subs.data.filter((s) => !s.ended_at)) {
    for (const phase of sub.phases.filter((p) => !p.end_at)) versions.add(`${phase.plan_code}\u0000${phase.plan_version}`);
  }
  const meters = new Set();
  for (const key of versions) {
    const [code, version] = key.split("\u0000");
    const plan = await get(`/v1/plans/${enc(code)}/versions/${enc(version)}`);
    for (const charge of plan.charges) meters.add(charge.meter_code);
  }
  if (!meters.size) return h("p", { class: "empty" }, "No metered charge on the current plans.");
  const to = new Date();
  const from = new Date(to.getTime() - 7 * 24 * 3600 * 1000);
  const charts = [];
  for (const meter of meters) {
    const usage = await get(`/v1/customers/${enc(id)}/usage`, { meter, from: iso(from), to: iso(to), granularity: "hour" });
    charts.push(h("h3", {}, `${meter}: ${usage.total} over the last 7 days (${usage.aggregation})`), usageChart(usage));
  }
  return charts;
}

function usageForm(id, target) {
  const to = new Date();
  const from = new Date(to.getTime() - 7 * 24 * 3600 * 1000);
  return form("usage-form", [{ name: "meter", label: "Another meter or range: meter code", required: true }, { name: "from", label: "From", value: iso(from) }, { name: "to", label: "To", value: iso(to) }], "Show usage", async (q) => {
    try {
      const usage = await get(`/v1/customers/${enc(id)}/usage`, { meter: q.meter, from: q.from, to: q.to, granularity: "hour" });
      target.replaceChildren(fields([["total", usage.total], ["aggregation", usage.aggregation]]), usageChart(usage), table("Usage per hour", [["hour", (b) => when(b.bucket)], ["quantity", (b) => b.quantity], ["events", (b) => b.events]], usage.data));
    } catch (error) {
      target.replaceChildren(errorBox(error));
    }
  });
}

function usageChart(usage) {
  // the quantity per hour as bars (quantities are exact decimal text; the chart only scales them)
  // laid on every hour of the range (the API lists only hours with usage); grouped rows add up per hour
  const byHour = new Map();
  for (const b of usage.data) byHour.set(b.bucket, (byHour.get(b.bucket) || 0) + Number(b.quantity));
  const buckets = [];
  for (let t = Math.floor(Date.parse(usage.from) / 3600000) * 3600000; t < Date.parse(usage.to); t += 3600000) {
    const start = iso(new Date(t));
    buckets.push({ start, quantity: byHour.get(start) || 0 });
  }
  return usage.data.length ? barChart(buckets, `Usage of ${usage.meter} per hour with usage`, ["quantity"]) : h("p", { class: "empty" }, "No usage in this range.");
}

// ---------------------------------------------------------------- invoices
function invoicePage(id) {
  const explanation = h("div", { id: "explanation" });
  return page(
    `Invoice ${id}`,
    part(async () => {
      const inv = await get(`/v1/invoices/${enc(id)}`);
      return [
        fields([["customer", link(`#/customers/${enc(inv.customer_id)}`, inv.customer_id)], ["number", inv.number], ["status", inv.status], ["period", `${when(inv.period_start)} → ${when(inv.period_end)}`], ["subtotal", money(inv.subtotal_minor, inv.currency)], ["credits applied", money(inv.credits_applied_minor, inv.currency)], ["total", money(inv.total_minor, inv.currency)]]),
        table("Lines", [["line", (l) => l.line_id], ["description", (l) => l.description], ["meter", (l) => l.meter_code], ["quantity", (l) => l.quantity], ["amount", (l) => money(l.amount_minor, inv.currency)]], inv.lines),
        section("Ledger postings of this invoice", part(() => invoicePostings(inv))),
        h("div", { class: "buttons" },
          h("button", { type: "button", id: "explain", onclick: () => explain(id, explanation) }, "Explain"),
          actionButton("Rerun invoice", { summary: `Recompute invoice ${id} (a draft is recomputed; a finalized invoice gets a correction).`, path: `/admin/invoices/${enc(id)}/rerun`, audit: [inv.customer_id], done: () => render() }),
        ),
      ];
    }),
    section("Explanation", explanation),
  );
}

// The postings whose source is this invoice, among the customer's latest 100 (the ledger lists by customer).
async function invoicePostings(inv) {
  const postings = await get(`/v1/customers/${enc(inv.customer_id)}/ledger`, { limit: 100 });
  const mine = postings.data.filter((p) => p.source === "invoice" && p.source_id === inv.id);
  return [
    table("Ledger postings of this invoice", [["at", (p) => when(p.at)], ["reason", (p) => p.reason], ["source", (p) => `${p.source} ${p.source_id}`], ["total", (p) => money(p.total_minor, p.currency)], ["entries", (p) => p.entries.map((e) => `${e.account} ${e.debit_minor ? `Dr ${e.debit_minor}` : `Cr ${e.credit_minor}`}`).join("; ")]], mine, "none among the customer's latest 100."),
    link(`#/customers/${enc(inv.customer_id)}`, "All ledger postings of the customer"),
  ];
}

async function explain(id, target) {
  target.replaceChildren(h("p", { class: "loading" }, "Loading…"));
  try {
    const e = await get(`/v1/invoices/${enc(id)}/explain`);
    const original = (ref) => (ref && ref.invoice_id ? h("p", {}, "Corrects ", link(`#/invoices/${enc(ref.invoice_id)}`, `invoice ${ref.invoice_id}`)) : null);
    target.replaceChildren(
      ...e.lines.map((line, i) => [tree(line, `line ${i + 1}: ${line.description || line.line_id || ""}`, 3), original(line.references)]).flat().filter(Boolean),
      e.corrects ? [original(e.corrects), tree(e.corrects, "corrects", 1)].filter(Boolean) : "",
    );
    target.querySelector("summary")?.focus();
  } catch (error) {
    target.replaceChildren(errorBox(error));
  }
}

// ---------------------------------------------------------------- events
function eventsPage() {
  const result = h("div", { id: "event-result" });
  return page(
    "Events",
    form("event-lookup", [{ name: "customer_id", label: "Customer id", required: true }, { name: "transaction_id", label: "Transaction id", required: true }], "Look up", async (q) => {
      try {
        const e = await get(`/v1/events/${enc(q.transaction_id)}`, { customer_id: q.customer_id });
        result.replaceChildren(
          fields([["status", e.status], ["meter", e.code], ["timestamp", when(e.timestamp)], ["received", when(e.received_at)], ["late", e.late ? "yes" : "no"], ["reason", e.reason], ["copies", Object.entries(e.copies).map(([k, v]) => `${k}: ${v}`).join(", ")]]),
          table("Every copy and its outcome", [["outcome", (o) => o.outcome], ["at", (o) => when(o.at)], ["copy", (o) => o.copy_id], ["reason", (o) => o.reason]], e.outcomes),
          tree(e.properties, "properties", 1),
        );
      } catch (error) {
        result.replaceChildren(errorBox(error));
      }
    }),
    result,
  );
}

// ---------------------------------------------------------------- Stripe events
function stripeEventsPage() {
  if (!canAct()) return page("Stripe events", needsAdmin());
  return page("Stripe events", part(async () => {
    const list = await get("/admin/stripe-events", { limit: 50 });
    return table("Stored Stripe events", [["id", (e) => link(`#/stripe-events/${enc(e.id)}`, e.id)], ["type", (e) => e.type], ["status", (e) => e.status], ["outcome", (e) => e.outcome], ["created", (e) => when(e.created)], ["attempts", (e) => e.attempts]], list.data);
  }));
}

function stripeEventPage(id) {
  const refresh = () => render();
  return page(`Stripe event ${id}`, part(async () => {
    const e = await get(`/admin/stripe-events/${enc(id)}`);
    const customer = e.customer_id || (e.refs && e.refs.customer_id);
    return [
      fields([["type", e.type], ["status", e.status], ["outcome", e.outcome], ["error", e.error], ["attempts", e.attempts], ["created", when(e.created)], ["received", when(e.received_at)]]),
      h("div", { class: "buttons" }, actionButton("Replay event", { summary: `Process Stripe event ${id} again (its effects are idempotent).`, path: `/admin/stripe-events/${enc(id)}/replay`, audit: [customer, "_stripe"], done: refresh })),
      table("Processing history", [["at", (a) => when(a.at)], ["trigger", (a) => a.trigger], ["status", (a) => a.status], ["outcome", (a) => a.outcome], ["error", (a) => a.error]], e.history || []),
      tree(e, "stored event", 0),
    ];
  }));
}

// ---------------------------------------------------------------- dead-letter queues
async function dlqTable() {
  const list = await get("/admin/dlqs");
  return table("Dead-letter queues", [
    ["queue", (q) => q.name], ["source", (q) => q.source_queue || "—"], ["depth", (q) => q.depth], ["in flight", (q) => q.in_flight],
    ["", (q) => (q.source_queue ? actionButton(`Redrive ${q.name}`, { summary: `Move every message of ${q.name} back to ${q.source_queue}.`, path: `/admin/dlqs/${enc(q.name)}/redrive`, audit: ["_global"], done: () => render() }) : "not redrivable")],
  ], list.data);
}

function dlqsPage() {
  if (!canAct()) return page("Dead-letter queues", needsAdmin());
  return page("Dead-letter queues", h("p", {}, "A redrive moves a queue's messages back to the queue they failed from, where the workers take them again."), part(dlqTable));
}

// ---------------------------------------------------------------- audit log
function auditPage() {
  if (!canAct()) return page("Audit log", needsAdmin());
  const result = h("div", { id: "audit-result" });
  const show = async (partition) => {
    try {
      const records = await get("/admin/audit", { customer_id: partition, limit: 50 });
      result.replaceChildren(table(`Audit records of ${partition}`, [["at", (r) => when(r.at)], ["action", (r) => r.action], ["actor", (r) => r.actor], ["target", (r) => r.target], ["reason", (r) => r.reason], ["ticket", (r) => r.ticket], ["request", (r) => r.request_id]], records.data));
    } catch (error) {
      result.replaceChildren(errorBox(error));
    }
  };
  return page("Audit log", h("p", {}, "Records are kept per customer; operator actions on no customer are under _global, Stripe replays of no customer under _stripe."), form("audit-lookup", [{ name: "customer_id", label: "Customer id (or _global, _stripe)", required: true, value: "_global" }], "Show", (q) => show(q.customer_id.trim())), result);
}

// ---------------------------------------------------------------- outgoing webhooks
function webhookEventParts(e) {
  return [
    fields([["type", e.type], ["customer", e.customer_id], ["created", when(e.created)], ["sequence", e.sequence]]),
    table("Deliveries", [["endpoint", (d) => d.endpoint_id], ["status", (d) => d.status], ["attempts", (d) => d.attempts], ["delivered", (d) => when(d.delivered_at)], ["failed", (d) => when(d.failed_at)], ["next attempt", (d) => when(d.next_at)]], e.deliveries || []),
    table("Attempts", [["at", (a) => when(a.at)], ["endpoint", (a) => a.endpoint_id], ["attempt", (a) => a.attempt], ["HTTP status", (a) => a.status_code], ["ms", (a) => a.latency_ms], ["error", (a) => a.error]], e.attempts || []),
    h("div", { class: "buttons" }, actionButton("Resend event", { summary: `Send webhook event ${e.id} again to its endpoints.`, path: "/admin/webhook-resends", body: { event_id: e.id }, audit: [e.customer_id] })),
    tree(e.payload, "payload", 1),
  ];
}

function webhookEventPage(id) {
  if (!canAct()) return page("Webhook event", needsAdmin());
  return page(`Webhook event ${id}`, part(async () => webhookEventParts(await get(`/admin/webhook-events/${enc(id)}`))));
}

function webhooksPage() {
  if (!canAct()) return page("Webhooks", needsAdmin());
  const result = h("div", { id: "webhook-result" });
  const listed = h("div", { id: "webhook-events" });
  const list = async (q) => {
    try {
      const query = { customer_id: q.customer_id.trim(), limit: 50 };
      if (q.type.trim()) query.type = q.type.trim();
      const found = await get("/admin/webhook-events", query);
      listed.replaceChildren(table(`Webhook events of ${query.customer_id}, newest first`, [["id", (e) => link(`#/webhook-events/${enc(e.id)}`, e.id)], ["type", (e) => e.type], ["sequence", (e) => e.sequence], ["created", (e) => when(e.created)]], found.data));
    } catch (error) {
      listed.replaceChildren(errorBox(error));
    }
  };
  return page(
    "Webhooks",
    section("Endpoints", part(async () => {
      const list = await get("/admin/webhook-endpoints", { limit: 50 });
      return table("Webhook endpoints", [["id", (e) => e.id], ["url", (e) => e.url], ["status", (e) => e.status || (e.disabled ? "disabled" : "enabled")], ["types", (e) => (e.enabled_events || e.event_types || []).join(", ")]], list.data);
    })),
    section("Recent events", form("webhook-events-lookup", [{ name: "customer_id", label: "Customer id (or _global)", required: true }, { name: "type", label: "Event type (optional)", placeholder: "invoice.finalized" }], "List events", list), listed),
    section("Deliveries of an event", form("webhook-event", [{ name: "event_id", label: "Webhook event id (evt_…)", required: true }], "Show deliveries", async (q) => {
      try {
        result.replaceChildren(...webhookEventParts(await get(`/admin/webhook-events/${enc(q.event_id.trim())}`)));
      } catch (error) {
        result.replaceChildren(errorBox(error));
      }
    }), result),
  );
}

// ---------------------------------------------------------------- routing
// [route, page, the scope its reads need and the page's title without it (admin pages check theirs)]
const ROUTES = [
  [/^#\/overview$/, overviewPage],
  [/^#\/customers$/, customersPage, "read", "Customers"],
  [/^#\/customers\/([^/]+)$/, customerPage, "read", "Customer"],
  [/^#\/invoices\/([^/]+)$/, invoicePage, "read", "Invoice"],
  [/^#\/events$/, eventsPage, "read", "Events"],
  [/^#\/stripe-events$/, stripeEventsPage],
  [/^#\/stripe-events\/([^/]+)$/, stripeEventPage],
  [/^#\/dlqs$/, dlqsPage],
  [/^#\/audit$/, auditPage],
  [/^#\/webhooks$/, webhooksPage],
  [/^#\/webhook-events\/([^/]+)$/, webhookEventPage],
];

// The route's parts decoded; null when one is not valid percent-encoding (a mistyped or cut link).
function decodedAll(parts) {
  try {
    return parts.map(decodeURIComponent);
  } catch {
    return null;
  }
}

function render() {
  const signed = signedIn();
  document.getElementById("nav").hidden = !signed;
  document.getElementById("signout").hidden = !signed;
  document.getElementById("who").textContent = signed ? `Scopes: ${scopes().join(", ")}${canAct() ? "" : " (read-only)"}` : "";
  let content;
  if (!signed) {
    content = signInPage();
  } else {
    const hash = location.hash || "#/overview";
    const found = ROUTES.map(([pattern, ...rest]) => [hash.match(pattern), ...rest]).find(([m]) => m);
    const args = found ? decodedAll(found[0].slice(1)) : null;
    if (!args) content = page("Not found", h("p", {}, "No console page here."), link("#/overview", "Overview"));
    else if (found[2] && !can(found[2])) content = page(found[3], needs(found[2]));
    else content = found[1](...args);
  }
  for (const a of document.querySelectorAll("#nav a")) {
    if ((location.hash || "#/overview").startsWith(a.getAttribute("href"))) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  main().replaceChildren(...content);
  const heading = main().querySelector("h1");
  if (heading) heading.setAttribute("tabindex", "-1");
}

window.addEventListener("hashchange", () => {
  render();
  main().querySelector("h1")?.focus();
});
// the skip link moves focus to the page; it must not change the #/route
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  main().focus();
});
document.getElementById("signout").addEventListener("click", () => {
  signOut();
  location.hash = "";
  render();
  say("Signed out: the key is forgotten.");
});
render();
