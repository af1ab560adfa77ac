// DOM helpers of the dashboard: building elements without innerHTML (no markup is ever built
// from data, so a document's strings cannot inject script), and small shared widgets.

/** h("div", {class: "x", onclick: fn}, child, "text", [more]) -> HTMLElement */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "value" || name === "checked" || name === "disabled") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A one-line message box: kind is "error", "ok" or "info". */
export function notice(kind, text, testid) {
  return h(
    "div",
    { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status", "data-testid": testid },
    text,
  );
}

export function formatBytes(n) {
  if (typeof n !== "number") return "";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

export function formatTime(ms) {
  if (typeof ms !== "number") return "";
  const d = new Date(ms);
  return d.toISOString().replace("T", " ").replace("Z", "");
}

/** The message of an error thrown by the convex client or by `api.js` calls. */
export function errorText(err) {
  if (err === null || err === undefined) return "unknown error";
  // A ConvexError from a dashboard function carries {message, path} (path: where in the
  // document the schema refused it).
  const data = err.data;
  if (data && typeof data === "object" && typeof data.message === "string") return data.message;
  if (typeof data === "string") return data;
  const message = err.message || String(err);
  // The convex client prefixes "[CONVEX M(path)] [Request ID: …] Server Error\n"; keep all
  // of it, the request id is what the Logs page finds the call by.
  return message;
}
