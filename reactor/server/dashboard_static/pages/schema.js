// The Schema page: the served schema's tables, their fields (validators) and indexes with
// their back-fill state.

import { h, mount, notice, errorText } from "../ui.js";
import { describe } from "../validators.js";

const SYSTEM = "_system/frontend";

export function render(root, deployment) {
  const body = h("div", { "data-testid": "schema" });
  mount(root, h("section", { class: "panel" }, h("h2", {}, "Schema and indexes"), body));
  let stop = null;
  function watch() {
    if (stop) stop();
    stop = deployment.watch(
      `${SYSTEM}/schema:get`,
      {},
      (schema) => {
        if (schema === null) {
          mount(body, h("p", { class: "muted" }, "The app has no schema.py: tables are schemaless."));
          return;
        }
        mount(
          body,
          h("p", { class: "muted" }, `Schema validation ${schema.schemaValidation ? "on" : "off"}.`),
          schema.tables.map((t) =>
            h(
              "div",
              { class: "panel", "data-schema-table": t.tableName },
              h("h3", {}, t.tableName),
              h("h4", {}, "Fields"),
              fields(t.documentType),
              h("h4", {}, "Indexes"),
              t.indexes.length === 0
                ? h("p", { class: "muted" }, "by_creation_time and by_id only")
                : h(
                    "table",
                    { class: "grid" },
                    h("thead", {}, h("tr", {}, ["Name", "Fields", "State"].map((c) => h("th", {}, c)))),
                    h(
                      "tbody",
                      {},
                      t.indexes.map((i) =>
                        h("tr", { "data-index": i.indexDescriptor }, h("td", { class: "mono" }, i.indexDescriptor), h("td", { class: "mono" }, i.fields.join(", ")), h("td", {}, i.state)),
                      ),
                    ),
                  ),
            ),
          ),
        );
      },
      (err) => mount(body, notice("error", errorText(err), "schema-error")),
    );
  }
  watch();
  // Back-fill state lives outside the tables: look again every 5 s.
  const timer = setInterval(watch, 5000);
  return () => {
    clearInterval(timer);
    if (stop) stop();
  };
}

function fields(validator) {
  if (!validator || validator.type !== "object") {
    return h("pre", { class: "out" }, JSON.stringify(validator, null, 2));
  }
  return h(
    "table",
    { class: "grid" },
    h("thead", {}, h("tr", {}, ["Field", "Type", "Optional"].map((c) => h("th", {}, c)))),
    h(
      "tbody",
      {},
      Object.entries(validator.value).map(([name, field]) =>
        h("tr", {}, h("td", { class: "mono" }, name), h("td", { class: "mono" }, describe(field.fieldType)), h("td", {}, field.optional ? "yes" : "")),
      ),
    ),
  );
}
