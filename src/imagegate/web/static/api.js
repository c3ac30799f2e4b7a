// The HTTP API as the console uses it. The key lives in sessionStorage only (never in a URL
// or localStorage), so it is gone when the tab closes.

const KEY_SLOT = "imagegate.apiKey";

export const session = {
  get key() { return sessionStorage.getItem(KEY_SLOT); },
  set(key) { sessionStorage.setItem(KEY_SLOT, key); },
  clear() { sessionStorage.removeItem(KEY_SLOT); },
};

/** An API answer that is not 2xx: `status`, `code`, the message, and `details` (JSON path → rules). */
export class ApiError extends Error {
  constructor(status, body) {
    const message = (body && body.error) || `The gateway answered ${status}`;
    super(message);
    this.status = status;
    this.body = body || {};
    this.code = this.body.code || null;
    this.details = this.body.details || {};
  }
}

let onUnauthorized = () => {};
/** Called when a signed-in request gets 401 (the key was revoked meanwhile). */
export function setUnauthorizedHandler(handler) { onUnauthorized = handler; }

/**
 * Call the API. `body` is sent as JSON, `form` as multipart. Returns the parsed JSON body.
 * `key` overrides the session key (used by sign-in before the key is stored).
 */
export async function api(path, { method = "GET", body, form, headers = {}, key, signal } = {}) {
  const apiKey = key ?? session.key;
  const init = { method, headers: { Accept: "application/json", ...headers }, signal };
  if (apiKey) init.headers["X-API-Key"] = apiKey;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  } else if (form) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { error: "The gateway cannot be reached. Check that imagegate is running." });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { error: text }; }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && key === undefined && session.key) onUnauthorized(error);
    throw error;
  }
  return data;
}

/** A fresh Idempotency-Key for one logical submit (reused if the same submit is retried). */
export function idempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
