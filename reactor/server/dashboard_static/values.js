// Convex values <-> the JSON the dashboard shows and edits. The convex client hands us int64
// as BigInt and bytes as ArrayBuffer, which JSON cannot hold; in the editor they are written
// {"$int64": "123"} and {"$bytes": "<base64>"} (and non-finite floats {"$float": "NaN"}), and
// turned back into BigInt/ArrayBuffer before a call, so the client encodes them exactly.

export function toEditable(value) {
  if (typeof value === "bigint") return { $int64: value.toString() };
  if (value instanceof ArrayBuffer) return { $bytes: toBase64(new Uint8Array(value)) };
  if (typeof value === "number" && !Number.isFinite(value)) return { $float: String(value) };
  if (Array.isArray(value)) return value.map(toEditable);
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = toEditable(v);
    return out;
  }
  return value;
}

export function fromEditable(value, path = "$") {
  if (Array.isArray(value)) return value.map((v, i) => fromEditable(v, `${path}[${i}]`));
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "$int64") {
      const text = value.$int64;
      if (typeof text !== "string" || !/^-?\d+$/.test(text)) {
        throw new Error(`${path}: $int64 must be a string of digits, got ${JSON.stringify(text)}`);
      }
      return BigInt(text);
    }
    if (keys.length === 1 && keys[0] === "$bytes") {
      return fromBase64(value.$bytes, path).buffer;
    }
    if (keys.length === 1 && keys[0] === "$float") {
      const f = Number(value.$float);
      if (!["NaN", "Infinity", "-Infinity"].includes(value.$float)) {
        throw new Error(`${path}: $float must be "NaN", "Infinity" or "-Infinity"`);
      }
      return f;
    }
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = fromEditable(v, `${path}.${k}`);
    return out;
  }
  return value;
}

/** Pretty JSON of a value for the editor. */
export function toJsonText(value) {
  return JSON.stringify(toEditable(value), null, 2);
}

/** Parse the editor's text; throws Error naming the problem. */
export function parseJsonText(text, what) {
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`${what} is not valid JSON: ${err.message}`);
  }
  return fromEditable(parsed);
}

/** A short one-line rendering of a value for a table cell. */
export function cellText(value) {
  if (value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "bigint") return `${value}n`;
  if (value instanceof ArrayBuffer) return `<${value.byteLength} bytes>`;
  const text = JSON.stringify(toEditable(value));
  return text.length > 120 ? text.slice(0, 117) + "..." : text;
}

function toBase64(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function fromBase64(text, path) {
  if (typeof text !== "string") throw new Error(`${path}: $bytes must be a base64 string`);
  let raw;
  try {
    raw = atob(text);
  } catch {
    throw new Error(`${path}: $bytes is not valid base64`);
  }
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** Whether a string looks like a document id (table-tagged, opaque). */
export function looksLikeId(value) {
  return typeof value === "string" && /^[0-9a-z]{31,37}$/.test(value);
}

/** A value (BigInt, ArrayBuffer, non-finite floats included) as Convex's encoded JSON, what
 * the HTTP API takes as arguments: {"$integer": <8 bytes LE, base64>}, {"$bytes": …},
 * {"$float": <8 bytes LE, base64>}. */
export function toConvexJson(value) {
  if (typeof value === "bigint") {
    const view = new DataView(new ArrayBuffer(8));
    view.setBigInt64(0, value, true);
    return { $integer: toBase64(new Uint8Array(view.buffer)) };
  }
  if (value instanceof ArrayBuffer) return { $bytes: toBase64(new Uint8Array(value)) };
  if (typeof value === "number" && (!Number.isFinite(value) || Object.is(value, -0))) {
    const view = new DataView(new ArrayBuffer(8));
    view.setFloat64(0, value, true);
    return { $float: toBase64(new Uint8Array(view.buffer)) };
  }
  if (Array.isArray(value)) return value.map(toConvexJson);
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = toConvexJson(v);
    return out;
  }
  return value;
}

/** Convex's encoded JSON back to values (the inverse of toConvexJson). */
export function fromConvexJson(json) {
  if (Array.isArray(json)) return json.map(fromConvexJson);
  if (json !== null && typeof json === "object") {
    const keys = Object.keys(json);
    if (keys.length === 1 && keys[0] === "$integer") {
      return new DataView(fromBase64(json.$integer, "$").buffer).getBigInt64(0, true);
    }
    if (keys.length === 1 && keys[0] === "$float") {
      return new DataView(fromBase64(json.$float, "$").buffer).getFloat64(0, true);
    }
    if (keys.length === 1 && keys[0] === "$bytes") return fromBase64(json.$bytes, "$").buffer;
    const out = {};
    for (const [k, v] of Object.entries(json)) out[k] = fromConvexJson(v);
    return out;
  }
  return json;
}
