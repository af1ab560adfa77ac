// The Files page: stored files (live) with size, type and sha256; image previews, download,
// delete (after a confirmation) and upload (through an upload URL, as app clients do).

import { h, mount, notice, errorText, formatBytes, formatTime } from "../ui.js";

const SYSTEM = "_system/frontend";

export function render(root, deployment) {
  const list = h("div", { class: "scroll", "data-testid": "files" });
  const status = h("div", { "data-testid": "files-status" });
  const input = h("input", { type: "file", "data-testid": "upload-input", "aria-label": "File to upload" });
  const upload = h("button", { type: "button", class: "primary", "data-testid": "upload" }, "Upload");
  upload.addEventListener("click", async () => {
    const file = input.files && input.files[0];
    if (!file) {
      mount(status, notice("error", "Choose a file first.", "upload-error"));
      return;
    }
    upload.disabled = true;
    try {
      const url = await deployment.mutation(`${SYSTEM}/files:generateUploadUrl`, {});
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": file.type || "application/octet-stream" },
        body: file,
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.message || `upload failed: HTTP ${response.status}`);
      mount(status, notice("ok", `Uploaded ${file.name} as ${body.storageId}.`, "uploaded"));
      input.value = "";
    } catch (err) {
      mount(status, notice("error", errorText(err), "upload-error"));
    } finally {
      upload.disabled = false;
    }
  });

  mount(
    root,
    h(
      "section",
      { class: "panel" },
      h("h2", {}, "Files"),
      h("div", { class: "toolbar" }, input, upload),
      status,
      list,
    ),
  );

  const unsubscribe = deployment.watch(
    `${SYSTEM}/files:list`,
    {},
    (files) => {
      if (files.length === 0) {
        mount(list, h("p", { class: "muted" }, "No stored files."));
        return;
      }
      mount(
        list,
        h(
          "table",
          { class: "grid" },
          h("thead", {}, h("tr", {}, ["", "Id", "Size", "Type", "sha256", "Uploaded", ""].map((c) => h("th", {}, c)))),
          h(
            "tbody",
            {},
            files.map((f) =>
              h(
                "tr",
                { "data-file": f._id },
                h("td", {}, f.contentType && f.contentType.startsWith("image/") && f.url
                  ? h("img", { src: f.url, alt: "", width: 48, height: 48, style: null, class: "thumb" })
                  : null),
                h("td", { class: "mono" }, f._id),
                h("td", {}, formatBytes(f.size)),
                h("td", {}, f.contentType || "unknown"),
                h("td", { class: "mono", title: f.sha256 }, f.sha256.slice(0, 12) + "…"),
                h("td", {}, formatTime(f._creationTime)),
                h(
                  "td",
                  {},
                  f.url ? h("a", { href: f.url, download: "", "data-testid": "download" }, "Download") : null,
                  " ",
                  h("button", { type: "button", class: "danger", "data-testid": "delete-file", onclick: () => remove(f._id) }, "Delete"),
                ),
              ),
            ),
          ),
        ),
      );
    },
    (err) => mount(list, notice("error", errorText(err), "files-error")),
  );

  async function remove(id) {
    if (!window.confirm(`Delete file ${id}? This cannot be undone.`)) return;
    try {
      await deployment.mutation(`${SYSTEM}/files:delete`, { ids: [id] });
      mount(status, notice("ok", `Deleted ${id}.`, "file-deleted"));
    } catch (err) {
      mount(status, notice("error", errorText(err), "delete-error"));
    }
  }

  return unsubscribe;
}
