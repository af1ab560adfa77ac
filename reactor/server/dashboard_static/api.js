// The dashboard's connection to its deployment: the admin key (kept in sessionStorage only:
// never in a URL, a cookie or a log), the official convex browser client over the sync
// websocket authenticated as admin (every view is a live query), and admin HTTP calls.

const KEY_STORAGE = "reactor.dashboard.adminKey";

export class KeyRefused extends Error {}

/** Ask the deployment whether `key` is its admin key; throws KeyRefused (or Error) if not. */
export async function checkAdminKey(key) {
  let response;
  try {
    response = await fetch("/api/check_admin_key", {
      headers: { Authorization: `Convex ${key}` },
      cache: "no-store",
    });
  } catch (err) {
    throw new Error(`The deployment did not answer: ${err.message}`);
  }
  if (response.ok) return;
  let message = `HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (body && body.message) message = body.message;
  } catch {
    // not JSON: keep the status
  }
  if (response.status === 401 || response.status === 403) {
    throw new KeyRefused(`That admin key was refused: ${message}`);
  }
  throw new Error(`Could not check the admin key: ${message}`);
}

export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function storeKey(key) {
  sessionStorage.setItem(KEY_STORAGE, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
}

/** The deployment as the dashboard sees it: a live client plus admin HTTP calls. */
export class Deployment {
  constructor(key) {
    this.key = key;
    this.client = new window.convex.ConvexClient(window.location.origin, {
      skipConvexDeploymentUrlCheck: true,
      unsavedChangesWarning: false,
    });
    this.client.setAdminAuth(key);
  }

  /** Subscribe to a query; returns the unsubscribe function. */
  watch(path, args, onValue, onError) {
    return this.client.onUpdate(path, args, onValue, (err) => {
      if (onError) onError(err);
      else console.error(path, err);
    });
  }

  query(path, args) {
    return this.client.query(path, args);
  }

  mutation(path, args) {
    return this.client.mutation(path, args);
  }

  /** Run any function (internal too) once over HTTP, as admin, optionally acting as a user
   * identity. `args` and the answer's value are Convex's encoded JSON (see values.js).
   * Resolves to {ok, value, errorMessage, errorData, logLines, durationMs}. */
  async run(path, args, actingAs) {
    let auth = `Convex ${this.key}`;
    if (actingAs) {
      const json = JSON.stringify(actingAs);
      auth += ":" + btoa(String.fromCharCode(...new TextEncoder().encode(json)));
    }
    const started = performance.now();
    const response = await fetch("/api/function", {
      method: "POST",
      headers: { Authorization: auth, "Content-Type": "application/json" },
      body: JSON.stringify({ path, args, format: "convex_encoded_json" }),
      cache: "no-store",
    });
    const durationMs = performance.now() - started;
    let body;
    try {
      body = await response.json();
    } catch {
      body = { status: "error", errorMessage: `HTTP ${response.status}` };
    }
    if (!response.ok && body.code) {
      body = { status: "error", errorMessage: `${body.code}: ${body.message}` };
    }
    return {
      ok: body.status === "success",
      value: body.value,
      errorMessage: body.errorMessage,
      errorData: body.errorData,
      logLines: body.logLines || [],
      durationMs,
    };
  }

  /** An admin HTTP route (GET or POST JSON); throws Error with the server's message.
   * `signal` (an AbortSignal) cancels it. */
  async http(method, path, body, signal) {
    const response = await fetch(path, {
      method,
      signal,
      headers: {
        Authorization: `Convex ${this.key}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    const text = await response.text();
    if (path === "/metrics" && response.ok) return text;
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (!response.ok) {
      const message = parsed && parsed.message ? parsed.message : text || `HTTP ${response.status}`;
      throw new Error(message);
    }
    return parsed;
  }

  close() {
    return this.client.close();
  }
}
