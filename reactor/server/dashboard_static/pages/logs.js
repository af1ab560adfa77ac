// The Logs page: the deployment's execution log (one record per function execution), live,
// newest first, filtered by function, outcome and request id. A failed call shows its error
// message; a server error's request id names its traceback in the server log.

import { h, mount, notice, errorText, formatTime } from "../ui.js";

const SHOWN = 300; // records kept on screen
const WAIT_S = 25; // the long poll's wait

export function render(root, deployment) {
  const path = h("input", { placeholder: "function, e.g. tasks:add", "aria-label": "Function", "data-testid": "logs-path", size: 18 });
  const outcome = h(
    "select",
    { "aria-label": "Outcome", "data-testid": "logs-outcome" },
    [["", "any outcome"], ["success", "success"], ["failure", "failure (any error)"], ["user_error", "user error"], ["system_error", "server error"]].map(
      ([value, label]) => h("option", { value }, label),
    ),
  );
  const requestId = h("input", { placeholder: "request id", "aria-label": "Request id", "data-testid": "logs-request-id", size: 16 });
  const status = h("div", {});
  const body = h("tbody", {});
  const form = h(
    "form",
    { class: "toolbar", "data-testid": "logs-form" },
    path,
    outcome,
    requestId,
    h("button", { type: "submit" }, "Filter"),
  );
  mount(
    root,
    h(
      "section",
      { class: "panel" },
      h("h2", {}, "Logs"),
      form,
      status,
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { class: "grid", "data-testid": "logs" },
          h("thead", {}, h("tr", {}, ["Time", "Function", "Kind", "Caller", "Outcome", "Duration", "Request id", "Reads / writes"].map((c) => h("th", {}, c)))),
          body,
        ),
      ),
    ),
  );

  let controller = null;
  let records = [];

  function query(extra) {
    const params = new URLSearchParams();
    if (path.value.trim()) params.set("path", path.value.trim());
    if (outcome.value) params.set("outcome", outcome.value);
    if (requestId.value.trim()) params.set("request_id", requestId.value.trim());
    for (const [k, v] of Object.entries(extra)) params.set(k, String(v));
    return `/api/execution_logs?${params}`;
  }

  async function follow() {
    if (controller) controller.abort();
    const mine = new AbortController();
    controller = mine;
    records = [];
    mount(body);
    let cursor;
    try {
      const first = await deployment.http("GET", query({ limit: SHOWN }), undefined, mine.signal);
      cursor = first.cursor;
      add(first.records);
      mount(status);
    } catch (err) {
      if (!mine.signal.aborted) mount(status, notice("error", errorText(err), "logs-error"));
      return;
    }
    while (!mine.signal.aborted) {
      try {
        const next = await deployment.http("GET", query({ cursor, wait: WAIT_S }), undefined, mine.signal);
        cursor = next.cursor;
        add(next.records);
        mount(status);
      } catch (err) {
        if (mine.signal.aborted) return;
        mount(status, notice("error", `${errorText(err)} (retrying)`, "logs-error"));
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }
  }

  function add(batch) {
    if (!batch.length) return;
    records = [...batch.slice().reverse(), ...records].slice(0, SHOWN);
    mount(body, records.map(row));
  }

  function row(r) {
    const failed = r.outcome !== "success";
    const details = [];
    if (r.error_message) details.push(h("div", { class: "outcome-failure log-line", "data-testid": "log-error" }, r.error_message));
    for (const line of r.log_lines) details.push(h("div", { class: "log-line" }, line));
    if (r.traceback) details.push(h("pre", { class: "log-line traceback", "data-testid": "log-traceback" }, r.traceback));
    return [
      h(
        "tr",
        { "data-request-id": r.request_id, "data-outcome": r.outcome, "data-path": r.path },
        h("td", {}, formatTime(r.timestamp * 1000)),
        h("td", { class: "mono" }, r.path, r.live_rerun ? h("span", { class: "muted" }, " (live re-run)") : null),
        h("td", {}, r.kind),
        h("td", {}, r.caller),
        h("td", { class: failed ? "outcome-failure" : "outcome-success" }, r.error_code ? `${r.outcome} (${r.error_code})` : r.outcome),
        h("td", {}, `${(r.duration_s * 1000).toFixed(1)} ms`),
        h("td", { class: "mono" }, r.request_id),
        h("td", {}, `${r.documents_read} / ${r.documents_written}${r.occ_retries ? ` · ${r.occ_retries} OCC retries` : ""}`),
      ),
      details.length ? h("tr", { class: "details" }, h("td", { colspan: 8 }, details)) : null,
    ];
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    follow();
  });
  follow();
  return () => {
    if (controller) controller.abort();
    controller = null;
  };
}
