// The Functions page: every function with its kind, visibility and validators; run any of
// them (internal too) with JSON arguments, optionally acting as a user identity, and see the
// result, its log lines and the duration; a query can be kept open as a live view.

import { h, mount, notice, errorText } from "../ui.js";
import { fromConvexJson, parseJsonText, toConvexJson, toJsonText } from "../values.js";
import { describe } from "../validators.js";

const SYSTEM = "_system/frontend";

export function render(root, deployment, route) {
  const [selectedPath] = route;
  const list = h("ul", { "data-testid": "functions" });
  const content = h("div", { class: "content" });
  mount(
    root,
    h(
      "div",
      { class: "split" },
      h("aside", { class: "side" }, h("h2", { class: "muted" }, "Functions"), list),
      content,
    ),
  );
  let runner = null;
  const unsubscribe = deployment.watch(
    `${SYSTEM}/functions:list`,
    {},
    (functions) => {
      mount(
        list,
        functions.length === 0 ? h("li", { class: "muted" }, "No functions") : null,
        functions.map((f) =>
          h(
            "li",
            {},
            h(
              "a",
              {
                href: `#functions/${encodeURIComponent(f.path)}`,
                class: f.path === selectedPath ? "active" : null,
                "data-path": f.path,
              },
              h("span", { class: "mono" }, f.path),
              h("span", { class: `kind ${f.visibility}` }, `${f.kind}${f.visibility === "internal" ? " · internal" : ""}`),
            ),
          ),
        ),
      );
      const spec = functions.find((f) => f.path === selectedPath);
      if (runner === null) {
        if (spec) runner = showFunction(content, deployment, spec);
        else mount(content, h("div", { class: "panel muted" }, selectedPath ? `No function ${selectedPath}.` : "Choose a function."));
      }
    },
    (err) => mount(list, notice("error", errorText(err), "functions-error")),
  );
  return () => {
    unsubscribe();
    if (runner) runner.stop();
  };
}

function showFunction(content, deployment, spec) {
  const args = h("textarea", { "aria-label": "Arguments JSON", "data-testid": "run-args", spellcheck: "false", class: "medium" }, "{}");
  const actingAs = h("textarea", {
    "aria-label": "Acting as user identity JSON",
    "data-testid": "run-identity",
    placeholder: '{"subject": "user-1", "issuer": "https://example.com"}',
    spellcheck: "false",
    class: "short",
  });
  const output = h("div", { "data-testid": "run-output", "aria-live": "polite" });
  const run = h("button", { type: "button", class: "primary", "data-testid": "run" }, "Run");
  const live = h("input", { type: "checkbox", "data-testid": "run-live" });
  let stopLive = null;

  function stopWatching() {
    if (stopLive) stopLive();
    stopLive = null;
  }

  run.addEventListener("click", async () => {
    stopWatching();
    let parsedArgs;
    let identity = null;
    try {
      parsedArgs = parseJsonText(args.value || "{}", "The arguments");
      if (actingAs.value.trim()) identity = JSON.parse(actingAs.value);
    } catch (err) {
      mount(output, notice("error", err.message, "run-error"));
      return;
    }
    if (live.checked && spec.kind === "query") {
      // Live view: the query stays subscribed over the websocket (admin may read internal).
      const started = performance.now();
      stopLive = deployment.watch(
        spec.path,
        parsedArgs,
        (value) =>
          mount(
            output,
            h("div", { class: "muted" }, `live · updated ${new Date().toLocaleTimeString()} · first result after ${(performance.now() - started).toFixed(0)} ms`),
            h("pre", { class: "out", "data-testid": "run-result" }, toJsonText(value)),
          ),
        (err) => mount(output, notice("error", errorText(err), "run-error")),
      );
      return;
    }
    run.disabled = true;
    mount(output, notice("info", "Running..."));
    let result;
    try {
      result = await deployment.run(spec.path, toConvexJson(parsedArgs), identity);
    } catch (err) {
      mount(output, notice("error", errorText(err), "run-error"));
      return;
    } finally {
      run.disabled = false;
    }
    mount(
      output,
      h(
        "div",
        { class: "muted", "data-testid": "run-duration" },
        `${result.ok ? "success" : "failure"} in ${result.durationMs.toFixed(1)} ms`,
      ),
      result.ok
        ? h("pre", { class: "out", "data-testid": "run-result" }, toJsonText(fromConvexJson(result.value)))
        : notice(
            "error",
            result.errorMessage + (result.errorData === undefined ? "" : `\n${toJsonText(fromConvexJson(result.errorData))}`),
            "run-error",
          ),
      result.logLines.length
        ? h(
            "div",
            {},
            h("h4", {}, "Log lines"),
            h("pre", { class: "out", "data-testid": "run-logs" }, result.logLines.join("\n")),
          )
        : null,
    );
  });

  mount(
    content,
    h(
      "section",
      { class: "panel", "data-testid": "function-panel" },
      h("h2", { class: "mono" }, spec.path),
      h("p", {}, h("span", { class: `kind ${spec.visibility}` }, `${spec.kind} · ${spec.visibility}`)),
      h(
        "dl",
        { class: "validators" },
        h("dt", {}, "Arguments"),
        h("dd", { class: "mono", "data-testid": "args-validator" }, describe(spec.args)),
        h("dt", {}, "Returns"),
        h("dd", { class: "mono", "data-testid": "returns-validator" }, describe(spec.returns)),
      ),
      h(
        "details",
        {},
        h("summary", { class: "muted" }, "Validators as JSON"),
        h("pre", { class: "out" }, JSON.stringify({ args: spec.args, returns: spec.returns }, null, 2)),
      ),
      spec.kind === "httpAction"
        ? h("p", { class: "muted" }, "HTTP actions are called through their routes.")
        : [
            h("label", {}, "Arguments (JSON)", args),
            h("label", {}, "Act as user identity (JSON, optional)", actingAs),
            h(
              "div",
              { class: "row-actions" },
              run,
              spec.kind === "query" ? h("label", {}, live, " keep open as a live view") : null,
            ),
            output,
          ],
    ),
  );
  return { stop: stopWatching };
}
