// The API as the console calls it: same origin, the operator's key in the Authorization header only.
// The key lives in this tab's sessionStorage (gone when the tab closes) and never in a URL.

const KEY = "neruba.console.key";
const SCOPES = "neruba.console.scopes";

// The API's root: the page is served at <root>/console (a stage prefix on API Gateway, none locally).
export const root = location.pathname.replace(/\/console\/?$/, "");

export class ApiError extends Error {
  constructor(status, error, requestId) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || `http_${status}`;
    this.param = error.param;
    this.details = error.details;
    this.requestId = requestId;
  }
}

export function signedIn() {
  return sessionStorage.getItem(KEY) !== null;
}

export function scopes() {
  return (sessionStorage.getItem(SCOPES) || "").split(" ").filter(Boolean);
}

export function can(scope) {
  return scopes().includes(scope);
}

export function canAct() {
  return can("admin");
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(SCOPES);
}

export async function call(method, path, { query, body, idempotencyKey, key } = {}) {
  const url = new URL(root + path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json", Authorization: `Bearer ${key || sessionStorage.getItem(KEY) || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
    referrerPolicy: "no-referrer",
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  const requestId = response.headers.get("X-Request-Id") || response.headers.get("x-amzn-RequestId");
  if (!response.ok) {
    const error = data && typeof data.error === "object" ? data.error : { message: text.slice(0, 200) };
    throw new ApiError(response.status, error, requestId);
  }
  return { data, requestId, status: response.status };
}

export const get = (path, query) => call("GET", path, { query }).then((r) => r.data);

async function allowed(key, path) {
  try {
    await call("GET", path, { key, query: { limit: 1 } });
    return true;
  } catch (error) {
    if (error.status === 403) return false;
    throw error;
  }
}

// Check a key by two harmless reads: one needs the read scope, one the admin scope.
export async function signIn(key) {
  const found = [];
  if (await allowed(key, "/v1/meters")) found.push("read");
  if (await allowed(key, "/admin/sweeps")) found.push("admin");
  if (!found.length) throw new ApiError(403, { code: "insufficient_scope", message: "This key has neither the read nor the admin scope." });
  sessionStorage.setItem(KEY, key);
  sessionStorage.setItem(SCOPES, found.join(" "));
  return found;
}

export function newIdempotencyKey() {
  if (crypto.randomUUID) return `console-${crypto.randomUUID()}`;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `console-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

// The audit record an action wrote: the record of `partition` carrying the action's request id.
export async function auditRecordOf(partitions, requestId) {
  for (const partition of partitions) {
    if (!partition) continue;
    const page = await get("/admin/audit", { customer_id: partition, limit: 20 });
    const found = page.data.find((record) => record.request_id === requestId);
    if (found) return found;
  }
  return null;
}
