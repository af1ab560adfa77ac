// Import and export in Convex's snapshot format, from the Data page, through the same admin
// routes and live `_system/cli/*` job queries `npx convex export` / `import` use. The ZIP is
// fetched with the admin key in a header and handed to the browser as a blob (never a URL
// holding the key).

import { h, mount, notice, errorText, formatBytes } from "./ui.js";

const PART_BYTES = 4 * 1024 * 1024;
const FORMATS = { ".zip": "zip", ".jsonl": "jsonLines", ".json": "jsonArray", ".csv": "csv" };

/** The panel; returns {element, stop}. */
export function snapshotPanel(deployment) {
  const stops = [];

  // -- export ---------------------------------------------------------------------------------
  const includeFiles = h("input", { type: "checkbox", "data-testid": "export-files" });
  const exportButton = h("button", { type: "button", class: "primary", "data-testid": "export" }, "Export a snapshot");
  const exportStatus = h("div", { "data-testid": "export-status" });
  // The export shown is "ours" once it is newer than the one shown when the button was
  // clicked (the answer to the request may arrive after the job already completed).
  let latest = null;
  let before = undefined;
  exportButton.addEventListener("click", async () => {
    before = latest ? latest._creationTime : null;
    try {
      const flag = includeFiles.checked ? "true" : "false";
      await deployment.http("POST", `/api/export/request/zip?includeStorage=${flag}`);
      showExport();
    } catch (err) {
      before = undefined;
      mount(exportStatus, notice("error", errorText(err), "export-error"));
    }
  });
  function showExport() {
    const job = latest;
    if (!job) {
      if (before !== undefined) mount(exportStatus, notice("info", "Export requested..."));
      return;
    }
    const ours = before !== undefined && job._creationTime !== before;
    if (job.state === "completed") {
      const ts = String(job.start_ts);
      const download = h("button", { type: "button", "data-testid": "export-download" }, `Download snapshot_${ts}.zip`);
      download.addEventListener("click", () => save(deployment, `/api/export/zip/${ts}`, `snapshot_${ts}.zip`, exportStatus));
      mount(
        exportStatus,
        notice("ok", `Export completed (${formatBytes(Number(job.size))}).`, ours ? "export-done" : null),
        download,
      );
    } else if (job.state === "failed") {
      mount(exportStatus, notice("error", `Export failed: ${job.error_message}`, "export-error"));
    } else {
      mount(exportStatus, notice("info", `Export ${job.state}${job.progress_message ? `: ${job.progress_message}` : ""}`));
    }
  }
  stops.push(
    deployment.watch("_system/cli/exports:getLatest", {}, (job) => {
      latest = job;
      showExport();
    }),
  );

  // -- import ---------------------------------------------------------------------------------
  const file = h("input", { type: "file", accept: ".zip,.jsonl,.json,.csv", "data-testid": "import-file", "aria-label": "Snapshot or table file" });
  const table = h("input", { placeholder: "table (for .jsonl/.json/.csv)", "aria-label": "Table", "data-testid": "import-table" });
  const mode = h(
    "select",
    { "aria-label": "Mode", "data-testid": "import-mode" },
    [["requireEmpty", "only into empty tables"], ["append", "append"], ["replace", "replace the table's documents"], ["replaceAll", "replace everything"]].map(
      ([value, label]) => h("option", { value }, label),
    ),
  );
  const importButton = h("button", { type: "button", class: "primary", "data-testid": "import" }, "Upload and check");
  const importStatus = h("div", { "data-testid": "import-status" });
  let stopImport = null;

  importButton.addEventListener("click", async () => {
    const chosen = file.files && file.files[0];
    if (!chosen) {
      mount(importStatus, notice("error", "Choose a file first.", "import-error"));
      return;
    }
    const suffix = (chosen.name.match(/\.[^.]+$/) || [""])[0].toLowerCase();
    const format = FORMATS[suffix];
    if (!format) {
      mount(importStatus, notice("error", `Unsupported file type ${suffix || "(none)"}: use .zip, .jsonl, .json or .csv`, "import-error"));
      return;
    }
    if (format !== "zip" && !table.value.trim()) {
      mount(importStatus, notice("error", "Name the table a .jsonl, .json or .csv file goes into.", "import-error"));
      return;
    }
    importButton.disabled = true;
    try {
      mount(importStatus, notice("info", "Uploading..."));
      const { uploadToken } = await deployment.http("POST", "/api/import/start_upload");
      const partTokens = [];
      for (let offset = 0, part = 1; offset < chosen.size || part === 1; offset += PART_BYTES, part++) {
        const bytes = await chosen.slice(offset, offset + PART_BYTES).arrayBuffer();
        const response = await fetch(`/api/import/upload_part?uploadToken=${encodeURIComponent(uploadToken)}&partNumber=${part}`, {
          method: "POST",
          headers: { Authorization: `Convex ${deployment.key}` },
          body: bytes,
        });
        const text = await response.text();
        if (!response.ok) throw new Error(text);
        partTokens.push(JSON.parse(text));
        if (offset + PART_BYTES >= chosen.size) break;
      }
      const spec = { format, mode: mode.value };
      if (format !== "zip") spec.tableName = table.value.trim();
      const { importId } = await deployment.http("POST", "/api/import/finish_upload", {
        import: spec,
        uploadToken,
        partTokens,
      });
      follow(importId);
    } catch (err) {
      mount(importStatus, notice("error", errorText(err), "import-error"));
    } finally {
      importButton.disabled = false;
    }
  });

  function follow(importId) {
    if (stopImport) stopImport();
    stopImport = deployment.watch("_system/cli/queryImport", { importId }, (job) => {
      if (!job) return;
      const state = job.state;
      if (state.state === "waiting_for_confirmation") {
        const confirm = h("button", { type: "button", class: "primary", "data-testid": "import-confirm" }, "Import");
        confirm.addEventListener("click", async () => {
          confirm.disabled = true;
          try {
            await deployment.http("POST", "/api/perform_import", { importId });
          } catch (err) {
            mount(importStatus, notice("error", errorText(err), "import-error"));
          }
        });
        mount(importStatus, h("pre", { class: "out", "data-testid": "import-summary" }, state.message_to_confirm), confirm);
      } else if (state.state === "completed") {
        mount(importStatus, notice("ok", `Imported ${state.num_rows_written} documents.`, "import-done"));
      } else if (state.state === "failed") {
        mount(importStatus, notice("error", state.error_message, "import-error"));
      } else {
        mount(importStatus, notice("info", `Import ${state.state}${state.progress_message ? `: ${state.progress_message}` : ""}`));
      }
    });
  }

  const element = h(
    "section",
    { class: "panel", "data-testid": "snapshots" },
    h("h3", {}, "Export"),
    h("div", { class: "toolbar" }, exportButton, h("label", {}, includeFiles, " include stored files")),
    exportStatus,
    h("h3", {}, "Import"),
    h("p", { class: "muted" }, "A snapshot ZIP (as exported here or by Convex), or one table as .jsonl, .json or .csv. The file is checked first; nothing is written until you confirm."),
    h("div", { class: "toolbar" }, file, table, mode, importButton),
    importStatus,
  );
  return {
    element,
    stop() {
      for (const stop of stops) stop();
      if (stopImport) stopImport();
    },
  };
}

async function save(deployment, path, name, status) {
  try {
    const response = await fetch(path, { headers: { Authorization: `Convex ${deployment.key}` } });
    if (!response.ok) throw new Error(await response.text());
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = h("a", { href: url, download: name });
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (err) {
    mount(status, notice("error", errorText(err), "export-error"));
  }
}
