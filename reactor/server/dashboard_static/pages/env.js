// The Environment variables page: list, add, edit, remove. Changing them re-loads the app's
// code with the new values (docs/reference.md), so functions see them at once.

import { h, mount, notice, errorText } from "../ui.js";

export function render(root, deployment) {
  const list = h("div", { class: "scroll", "data-testid": "env" });
  const status = h("div", { "data-testid": "env-status" });
  const name = h("input", { placeholder: "NAME", "aria-label": "Variable name", "data-testid": "env-name" });
  const value = h("input", { placeholder: "value", "aria-label": "Variable value", "data-testid": "env-value" });
  const form = h(
    "form",
    { class: "toolbar", "data-testid": "env-form" },
    name,
    value,
    h("button", { type: "submit", class: "primary", "data-testid": "env-save" }, "Set"),
  );
  let stopped = false;

  async function change(changes, done) {
    try {
      const body = await deployment.http("POST", "/api/admin/env", { changes });
      mount(status, notice("ok", done, "env-saved"));
      show(body.env);
    } catch (err) {
      mount(status, notice("error", errorText(err), "env-error"));
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = name.value.trim();
    if (!key) {
      mount(status, notice("error", "Enter a name.", "env-error"));
      return;
    }
    change({ [key]: value.value }, `Set ${key}.`).then(() => {
      name.value = "";
      value.value = "";
    });
  });

  function show(env) {
    if (stopped) return;
    const names = Object.keys(env).sort();
    mount(
      list,
      names.length === 0
        ? h("p", { class: "muted" }, "No environment variables.")
        : h(
            "table",
            { class: "grid" },
            h("thead", {}, h("tr", {}, ["Name", "Value", ""].map((c) => h("th", {}, c)))),
            h(
              "tbody",
              {},
              names.map((n) =>
                h(
                  "tr",
                  { "data-env": n },
                  h("td", { class: "mono" }, n),
                  h("td", { class: "mono" }, env[n]),
                  h(
                    "td",
                    {},
                    h("button", { type: "button", onclick: () => { name.value = n; value.value = env[n]; value.focus(); } }, "Edit"),
                    " ",
                    h("button", {
                      type: "button",
                      class: "danger",
                      "data-testid": "env-remove",
                      onclick: () => {
                        if (window.confirm(`Remove ${n}?`)) change({ [n]: null }, `Removed ${n}.`);
                      },
                    }, "Remove"),
                  ),
                ),
              ),
            ),
          ),
    );
  }

  mount(root, h("section", { class: "panel" }, h("h2", {}, "Environment variables"), form, status, list));
  deployment.http("GET", "/api/admin/env").then(
    (body) => show(body.env),
    (err) => mount(status, notice("error", errorText(err), "env-error")),
  );
  return () => {
    stopped = true;
  };
}
