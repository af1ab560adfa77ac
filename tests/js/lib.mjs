// Shared helpers for the Node scripts that drive the official `convex` npm client
// against a running Reactor server.
//
// Every script is standalone: `node <script>.mjs <deployment url> [options]`.
// It prints one JSON document on stdout and exits 0 when it ran to completion
// (individual scenario failures are reported inside the JSON so that pytest can
// assert on them), or exits non-zero with a message on stderr when it could not
// run at all (no server, timeout, uncaught exception such as a FatalError crash).

import { ConvexError } from "convex/values";

export function deploymentUrl() {
  const url = process.argv[2];
  if (!url || !/^https?:\/\//.test(url)) {
    process.stderr.write(
      `usage: node ${process.argv[1]} <deployment url, e.g. http://127.0.0.1:3210> [...]\n`,
    );
    process.exit(2);
  }
  return url.replace(/\/+$/, "");
}

// Fail the whole script (exit 3) if it has not finished after `ms`.
export function installWatchdog(ms, what) {
  const timer = setTimeout(() => {
    process.stderr.write(
      `TIMEOUT: ${what} did not finish within ${ms} ms (is the server running and speaking the Convex protocol?)\n`,
    );
    process.exit(3);
  }, ms);
  return timer;
}

// Any uncaught exception (for example the client throwing on a FatalError or on an
// invalid Transition inside the websocket message handler) ends the script with a
// distinctive exit code and the error on stderr.
export function installCrashHandlers() {
  process.on("uncaughtException", (err) => {
    process.stderr.write(`UNCAUGHT EXCEPTION: ${err && err.stack ? err.stack : err}\n`);
    process.exit(4);
  });
  process.on("unhandledRejection", (err) => {
    process.stderr.write(`UNHANDLED REJECTION: ${err && err.stack ? err.stack : err}\n`);
    process.exit(5);
  });
}

export function finish(results) {
  process.stdout.write(JSON.stringify(results) + "\n");
  // Clients keep sockets and timers alive; exit explicitly once the output is flushed.
  process.stdout.write("", () => process.exit(0));
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// Resolves with the first value for which `predicate()` returns a truthy result.
export async function waitFor(predicate, ms, what, intervalMs = 10) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export function uniqueName(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

// A JSON-safe, lossless description of a Convex value, so pytest can assert on
// types that JSON cannot carry (bigint, ArrayBuffer, NaN, -0, undefined).
export function tag(value) {
  if (value === undefined) return { $undefined: true };
  if (value === null) return null;
  if (typeof value === "bigint") return { $bigint: value.toString() };
  if (typeof value === "number") {
    if (Number.isNaN(value)) return { $number: "NaN" };
    if (value === Infinity) return { $number: "Infinity" };
    if (value === -Infinity) return { $number: "-Infinity" };
    if (Object.is(value, -0)) return { $number: "-0" };
    return value;
  }
  if (value instanceof ArrayBuffer) return { $bytes: [...new Uint8Array(value)] };
  if (ArrayBuffer.isView(value)) return { $view: value.constructor.name };
  if (Array.isArray(value)) return value.map(tag);
  if (typeof value === "object") {
    const out = {};
    for (const key of Object.keys(value).sort()) out[key] = tag(value[key]);
    return out;
  }
  return value;
}

export function describeError(err) {
  if (!(err instanceof Error)) return { notAnError: true, value: String(err) };
  return {
    name: err.name,
    message: err.message,
    isConvexError: err instanceof ConvexError,
    hasData: err.data !== undefined,
    data: err.data === undefined ? null : tag(err.data),
  };
}

// Runs `fn` and returns {ok:true, result} or {ok:false, error} so that one failing
// scenario does not hide the others.
export async function capture(fn) {
  try {
    return { ok: true, result: await fn() };
  } catch (err) {
    return { ok: false, error: describeError(err), stack: err && err.stack };
  }
}

// Expects `promise` to reject; returns the described error, or a marker when it resolved.
export async function rejection(promise) {
  try {
    const value = await promise;
    return { resolved: true, value: tag(value) };
  } catch (err) {
    return describeError(err);
  }
}

export function bytes(...values) {
  return new Uint8Array(values).buffer;
}

// Fail fast (exit 6) with a clear message when nothing answers at the URL.
export async function assertReachable(url) {
  try {
    const res = await withTimeout(fetch(url + "/"), 5_000, `GET ${url}/`);
    if (!res.ok) throw new Error(`GET ${url}/ returned ${res.status}`);
  } catch (err) {
    process.stderr.write(`cannot reach the server at ${url}: ${err.message}\n`);
    process.exit(6);
  }
}
