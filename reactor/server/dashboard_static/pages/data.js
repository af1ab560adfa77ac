// The Data page: tables with live document counts; a table's documents, live, in the order
// of any of its indexes, filtered by a field's value; a document opened as JSON to edit
// (validated by the server against the schema: the error names the path, nothing is written),
// insert and delete (after a confirmation), and ids followed to their documents.

import { h, mount, notice, errorText, formatTime } from "../ui.js";
import { snapshotPanel } from "../snapshots.js";
import { cellText, looksLikeId, parseJsonText, toEditable, toJsonText } from "../values.js";

const SYSTEM = "_system/frontend";
const PAGE_SIZE = 100;
const MAX_LIMIT = 1000; // the server's PAGE_LIMIT

export function render(root, deployment, route) {
  const [selected, openId] = route;
  const subscriptions = [];
  const sideList = h("ul", { "data-testid": "tables" });
  const content = h("div", { class: "content" });
  mount(
    root,
    h(
      "div",
      { class: "split" },
      h(
        "aside",
        { class: "side" },
        h("h2", { class: "muted" }, "Tables"),
        sideList,
        h("a", { href: "#data/_snapshots", class: "side-action", "data-testid": "open-snapshots" }, "Import / export"),
      ),
      content,
    ),
  );
  let tableView = null;
  // One live count per table: a write re-runs only its own table's count.
  const counts = new Map();

  function watchCount(name) {
    const entry = { text: "…", unsubscribe: null };
    entry.unsubscribe = deployment.watch(
      `${SYSTEM}/tables:count`,
      { table: name },
      (c) => {
        entry.text = c.capped ? `${c.count}+` : String(c.count);
        const el = sideList.querySelector(`[data-testid="count-${CSS.escape(name)}"]`);
        if (el) el.textContent = entry.text;
      },
      () => {
        entry.text = "?";
      },
    );
    counts.set(name, entry);
  }

  subscriptions.push(
    deployment.watch(
      `${SYSTEM}/tables:list`,
      {},
      (value) => {
        for (const t of value) if (!counts.has(t.name)) watchCount(t.name);
        for (const [name, entry] of counts) {
          if (!value.some((t) => t.name === name)) {
            entry.unsubscribe();
            counts.delete(name);
          }
        }
        mount(
          sideList,
          value.length === 0 ? h("li", { class: "muted" }, "No tables yet") : null,
          value.map((t) =>
            h(
              "li",
              {},
              h(
                "a",
                {
                  href: `#data/${encodeURIComponent(t.name)}`,
                  class: t.name === selected ? "active" : null,
                  "data-table": t.name,
                },
                h("span", {}, t.name),
                h("span", { class: "count", "data-testid": `count-${t.name}` }, counts.get(t.name).text),
              ),
            ),
          ),
        );
        if (selected && selected !== "_snapshots" && tableView === null) {
          const table = value.find((t) => t.name === selected);
          tableView = showTable(content, deployment, table || { name: selected, indexes: [] }, openId);
        } else if (tableView) {
          const table = value.find((t) => t.name === selected);
          if (table) tableView.setIndexes(table.indexes);
        }
      },
      (err) => mount(sideList, notice("error", errorText(err), "tables-error")),
    ),
  );
  let snapshots = null;
  if (selected === "_snapshots") {
    snapshots = snapshotPanel(deployment);
    mount(content, snapshots.element);
  } else if (!selected) {
    mount(content, h("div", { class: "panel muted" }, "Choose a table."));
    if (openId) openDocument(content, deployment, openId);
  }
  return () => {
    for (const unsubscribe of subscriptions) unsubscribe();
    for (const entry of counts.values()) entry.unsubscribe();
    if (snapshots) snapshots.stop();
    if (tableView) tableView.stop();
  };
}

function showTable(content, deployment, table, openId) {
  const state = { index: "by_creation_time", order: "desc", filter: null, limit: PAGE_SIZE };
  let unsubscribe = null;
  let openedId = openId || null;

  const indexSelect = h("select", { "aria-label": "Sort by index", "data-testid": "index" });
  const orderSelect = h(
    "select",
    { "aria-label": "Order", "data-testid": "order" },
    h("option", { value: "desc" }, "newest first (desc)"),
    h("option", { value: "asc" }, "oldest first (asc)"),
  );
  const filterField = h("input", { placeholder: "field", "aria-label": "Filter field", "data-testid": "filter-field", size: 10 });
  const filterValue = h("input", { placeholder: 'value (JSON or text)', "aria-label": "Filter value", "data-testid": "filter-value", size: 14 });
  const filterStatus = h("span", {});
  const body = h("div", { class: "scroll" });
  const editor = h("div", {});
  const status = h("div", {});

  function setIndexes(indexes) {
    const current = indexSelect.value || state.index;
    const names = ["by_creation_time", "by_id", ...(indexes || []).map((i) => i.name)];
    mount(
      indexSelect,
      names.map((name) => {
        const fields = (indexes || []).find((i) => i.name === name);
        const label = fields ? `${name} (${fields.fields.join(", ")})` : name;
        return h("option", { value: name }, label);
      }),
    );
    indexSelect.value = names.includes(current) ? current : "by_creation_time";
  }
  setIndexes(table.indexes);

  function subscribe() {
    if (unsubscribe) unsubscribe();
    const args = { table: table.name, index: state.index, order: state.order, limit: state.limit };
    if (state.filter) args.filter = state.filter;
    unsubscribe = deployment.watch(
      `${SYSTEM}/documents:page`,
      args,
      (page) => {
        mount(status);
        renderRows(page, args);
      },
      (err) => mount(status, notice("error", errorText(err), "documents-error")),
    );
  }

  function renderRows(page, args) {
    const docs = page.documents;
    const columns = ["_id", "_creationTime"];
    for (const doc of docs) {
      for (const key of Object.keys(doc)) if (!columns.includes(key)) columns.push(key);
    }
    const note = page.isDone
      ? `${docs.length} document${docs.length === 1 ? "" : "s"}`
      : `the first ${docs.length} documents`;
    const more =
      page.isDone || state.limit >= MAX_LIMIT
        ? null
        : h(
            "button",
            {
              type: "button",
              "data-testid": "show-more",
              onclick: () => {
                state.limit = Math.min(MAX_LIMIT, state.limit + PAGE_SIZE);
                subscribe();
              },
            },
            "Show more",
          );
    mount(
      body,
      h("div", { class: "muted", "data-testid": "documents-summary" }, note),
      h(
        "table",
        {
          class: "grid",
          "data-testid": "documents",
          // What these rows answer (tests and scripts wait for a view by these).
          "data-index": args.index,
          "data-order": args.order,
          "data-filter": args.filter ? JSON.stringify(toEditable(args.filter)) : "",
        },
        h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
        h(
          "tbody",
          {},
          docs.map((doc) =>
            h(
              "tr",
              {
                class: `row${doc._id === openedId ? " selected" : ""}`,
                "data-id": doc._id,
                onclick: () => open(doc._id),
              },
              columns.map((c) => h("td", {}, cell(c, doc[c]))),
            ),
          ),
        ),
      ),
      more,
    );
  }

  function cell(column, value) {
    if (column === "_creationTime") return formatTime(value);
    if (column !== "_id" && looksLikeId(value)) {
      return h(
        "a",
        {
          href: "#",
          class: "mono",
          title: "Open the document this id names",
          onclick: (event) => {
            event.preventDefault();
            event.stopPropagation();
            openDocument(editor, deployment, value);
          },
        },
        value,
      );
    }
    return h("span", { class: column === "_id" ? "mono" : null }, cellText(value));
  }

  function open(id) {
    openedId = id;
    openDocument(editor, deployment, id, () => {
      openedId = null;
    });
  }

  function applyFilter() {
    const field = filterField.value.trim();
    if (!field) {
      state.filter = null;
      mount(filterStatus);
    } else {
      let value;
      try {
        value = parseJsonText(filterValue.value, "The filter value");
      } catch {
        value = filterValue.value; // plain text: compare as a string
      }
      state.filter = { field, value };
      mount(filterStatus, h("span", { class: "muted" }, `${field} = ${JSON.stringify(toEditable(value))}`));
    }
    subscribe();
  }

  indexSelect.addEventListener("change", () => {
    state.index = indexSelect.value;
    subscribe();
  });
  orderSelect.addEventListener("change", () => {
    state.order = orderSelect.value;
    subscribe();
  });

  const filterForm = h(
    "form",
    { class: "toolbar", "data-testid": "filter-form", onsubmit: (e) => { e.preventDefault(); applyFilter(); } },
    h("label", {}, "Filter", filterField, "=", filterValue),
    h("button", { type: "submit" }, "Apply"),
    h("button", { type: "button", onclick: () => { filterField.value = ""; filterValue.value = ""; applyFilter(); } }, "Clear"),
    filterStatus,
  );

  mount(
    content,
    h(
      "section",
      { class: "panel" },
      h("h2", { "data-testid": "table-title" }, table.name),
      h(
        "div",
        { class: "toolbar" },
        h("label", {}, "Sort by", indexSelect),
        orderSelect,
        h("button", { type: "button", class: "primary", "data-testid": "add-document", onclick: () => insertForm(editor, deployment, table.name) }, "Add document"),
      ),
      filterForm,
      status,
      body,
    ),
    editor,
  );
  subscribe();
  if (openId) open(openId);
  return {
    setIndexes,
    stop() {
      if (unsubscribe) unsubscribe();
      if (editor.stop) editor.stop();
    },
  };
}

/** Open document `id` in `panel`: live JSON, edit (replace), delete. */
function openDocument(panel, deployment, id, onClose) {
  if (panel.stop) panel.stop();
  const textarea = h("textarea", { "aria-label": "Document JSON", "data-testid": "document-json", spellcheck: "false" });
  const status = h("div", { "data-testid": "document-status" });
  const title = h("h3", {}, "Document ", h("span", { class: "mono" }, id));
  let current = null;
  let dirty = false;
  textarea.addEventListener("input", () => {
    dirty = true;
  });

  const save = h("button", { type: "button", class: "primary", "data-testid": "save-document" }, "Save");
  const remove = h("button", { type: "button", class: "danger", "data-testid": "delete-document" }, "Delete");
  const close = h("button", { type: "button" }, "Close");

  const unsubscribe = deployment.watch(
    `${SYSTEM}/documents:get`,
    { id },
    (found) => {
      if (found === null) {
        current = null;
        mount(status, notice("info", "This document does not exist (deleted, or never was)."));
        textarea.value = "";
        save.disabled = true;
        remove.disabled = true;
        return;
      }
      const changed = current !== null && toJsonText(current.document) !== toJsonText(found.document);
      current = found;
      title.replaceChildren("Document ", h("span", { class: "mono" }, id), h("span", { class: "muted" }, ` in ${found.table}`));
      if (!dirty) textarea.value = toJsonText(found.document);
      else if (changed) {
        mount(status, notice("info", "This document changed on the server while you edit it: Save replaces it with your version, Close discards yours.", "document-changed"));
      }
      save.disabled = false;
      remove.disabled = false;
    },
    (err) => mount(status, notice("error", errorText(err), "document-error")),
  );

  save.addEventListener("click", async () => {
    let document;
    try {
      document = parseJsonText(textarea.value, "The document");
    } catch (err) {
      mount(status, notice("error", err.message, "document-error"));
      return;
    }
    save.disabled = true;
    try {
      await deployment.mutation(`${SYSTEM}/documents:replace`, { id, document });
      dirty = false;
      mount(status, notice("ok", "Saved.", "document-saved"));
    } catch (err) {
      mount(status, notice("error", errorText(err), "document-error"));
    } finally {
      save.disabled = current === null;
    }
  });
  remove.addEventListener("click", async () => {
    if (!window.confirm(`Delete document ${id}? This cannot be undone.`)) return;
    try {
      await deployment.mutation(`${SYSTEM}/documents:remove`, { ids: [id] });
      mount(status, notice("ok", "Deleted.", "document-deleted"));
    } catch (err) {
      mount(status, notice("error", errorText(err), "document-error"));
    }
  });
  close.addEventListener("click", () => {
    stop();
    mount(panel);
    if (onClose) onClose();
  });
  function stop() {
    unsubscribe();
    panel.stop = null;
  }
  panel.stop = stop;
  mount(
    panel,
    h(
      "section",
      { class: "panel", "data-testid": "document-panel" },
      title,
      h("p", { class: "muted" }, 'System fields (_id, _creationTime) are kept. Int64: {"$int64": "1"}; bytes: {"$bytes": "base64"}.'),
      textarea,
      h("div", { class: "row-actions" }, save, remove, close),
      status,
    ),
  );
}

function insertForm(panel, deployment, table) {
  if (panel.stop) panel.stop();
  panel.stop = null;
  const textarea = h("textarea", { "aria-label": "New document JSON", "data-testid": "new-document-json", spellcheck: "false" }, "{\n  \n}");
  const status = h("div", { "data-testid": "insert-status" });
  const insert = h("button", { type: "button", class: "primary", "data-testid": "insert-document" }, "Insert");
  insert.addEventListener("click", async () => {
    let document;
    try {
      document = parseJsonText(textarea.value, "The document");
    } catch (err) {
      mount(status, notice("error", err.message, "insert-error"));
      return;
    }
    try {
      const id = await deployment.mutation(`${SYSTEM}/documents:insert`, { table, document });
      mount(status, notice("ok", `Inserted ${id}.`, "inserted"));
    } catch (err) {
      mount(status, notice("error", errorText(err), "insert-error"));
    }
  });
  mount(
    panel,
    h(
      "section",
      { class: "panel", "data-testid": "insert-panel" },
      h("h3", {}, `New document in ${table}`),
      textarea,
      h("div", { class: "row-actions" }, insert, h("button", { type: "button", onclick: () => mount(panel) }, "Close")),
      status,
    ),
  );
}
