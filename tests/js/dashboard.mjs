// Drives the dashboard in real headless Chromium (Debian's /usr/bin/chromium through
// playwright-core) against a Reactor server serving tests/e2e/dashboard_app, while the
// official `convex` client writes and watches from outside, as another user would.
//
//   node dashboard.mjs <deployment url> <admin key file> <screenshot dir> [<json [[path, kind]...]>]
//
// Prints {"checks": {<name>: {ok, result|error}}, "order": [...]} on stdout; the checks run in
// order in one browser (each later one needs the login of the first), and one failing does
// not stop the rest. tests/e2e/test_dashboard.py asserts on each.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { ConvexClient } from "convex/browser";
import { chromium } from "playwright-core";

import {
  capture,
  deploymentUrl,
  finish,
  installCrashHandlers,
  installWatchdog,
  uniqueName,
  waitFor,
} from "./lib.mjs";

const url = deploymentUrl();
const adminKey = readFileSync(process.argv[3], "utf8").trim();
const shots = process.argv[4];
installCrashHandlers();
installWatchdog(120_000, "dashboard.mjs");

const STEP_MS = 10_000;
const LIVE_MS = 1_000; // a write by another client must be on screen within this

const userDataDir = mkdtempSync(join(tmpdir(), "reactor-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(STEP_MS);
const consoleErrors = [];
const requests = [];
page.on("console", (msg) => {
  if (msg.type() === "error") consoleErrors.push(msg.text());
});
page.on("pageerror", (err) => consoleErrors.push(`pageerror: ${err.message}`));
page.on("request", (request) => requests.push(request.url()));

const outsider = new ConvexClient(url);
const checks = {};
const order = [];
async function check(name, fn) {
  order.push(name);
  checks[name] = await capture(fn);
}
async function shot(name) {
  await page.screenshot({ path: join(shots, `dashboard-${name}.png`), fullPage: true });
}

// The outsider's live view of the tasks table, as the app's own public query gives it.
const seen = { values: [] };
outsider.onUpdate("tasks:list", {}, (value) => seen.values.push(value));
const latest = () => seen.values[seen.values.length - 1] || [];

const title = uniqueName("task");

// An admin's one-off call over HTTP, to check from outside what the browser did.
async function adminCall(path, args) {
  const response = await fetch(`${url}/api/function`, {
    method: "POST",
    headers: { Authorization: `Convex ${adminKey}`, "Content-Type": "application/json" },
    body: JSON.stringify({ path, args, format: "json" }),
  });
  const body = await response.json();
  if (body.status !== "success") throw new Error(`${path}: ${JSON.stringify(body)}`);
  return body.value;
}


await check("wrong_key_refused", async () => {
  await page.goto(`${url}/dashboard/`);
  await page.fill("#admin-key", "reactor-admin|this-is-not-the-key-0000000000000000000000");
  await page.click("button[type=submit]");
  const error = page.getByTestId("login-error");
  await error.waitFor();
  const stored = await page.evaluate(() => JSON.stringify(sessionStorage));
  await shot("login");
  return {
    error: await error.textContent(),
    navVisible: await page.locator("#nav").isVisible(),
    sessionStorage: stored,
    url: page.url(),
  };
});

await check("login", async () => {
  await page.fill("#admin-key", adminKey);
  await page.click("button[type=submit]");
  await page.getByTestId("page-data").waitFor();
  await page.locator("#nav a[data-page=data]").waitFor();
  const stored = await page.evaluate(() => Object.values(sessionStorage));
  // A reload keeps the session (the key is in sessionStorage) without asking again.
  await page.reload();
  await page.getByTestId("page-data").waitFor();
  return {
    keyStored: stored.includes(adminKey),
    urls: requests.filter((u) => u.includes(encodeURIComponent(adminKey)) || u.includes(adminKey)),
    url: page.url(),
  };
});

await check("tables_listed", async () => {
  await page.locator('[data-table="tasks"]').waitFor();
  await page.locator('[data-table="notes"]').waitFor();
  const names = await page.locator("[data-table]").evaluateAll((els) => els.map((e) => e.dataset.table));
  return { names };
});

let insertedId = null;
await check("live_insert", async () => {
  await page.click('[data-table="tasks"]');
  await page.getByTestId("documents-summary").waitFor();
  const countBefore = await page.getByTestId("count-tasks").textContent();
  const started = Date.now();
  insertedId = await outsider.mutation("tasks:add", { title, priority: 2 });
  const acknowledged = Date.now();
  await page
    .locator(`tr[data-id="${insertedId}"]`)
    .waitFor({ timeout: LIVE_MS + (acknowledged - started) });
  const onScreenMs = Date.now() - acknowledged;
  await page.waitForFunction(
    (before) => document.querySelector('[data-testid="count-tasks"]').textContent !== before,
    countBefore,
    { timeout: LIVE_MS },
  );
  await shot("data");
  return {
    onScreenMs,
    countBefore,
    countAfter: await page.getByTestId("count-tasks").textContent(),
    reloaded: false,
  };
});

await check("non_admin_websocket_refused", async () => {
  // The outsider holds no admin key: system functions are not there for it.
  const errors = [];
  const unsubscribe = outsider.onUpdate(
    "_system/frontend/tables:list",
    {},
    () => errors.push("delivered a value"),
    (err) => errors.push(err.message),
  );
  await waitFor(() => errors.length > 0, STEP_MS, "the query to fail");
  unsubscribe();
  let mutation = "resolved";
  try {
    await outsider.mutation("_system/frontend/documents:remove", { ids: [insertedId] });
  } catch (err) {
    mutation = err.message;
  }
  const fresh = await outsider.query("tasks:list", {});
  // Every dashboard function, by its kind (the list comes from the test, from the registry).
  const each = {};
  for (const [path, kind] of JSON.parse(process.argv[5] || "[]")) {
    try {
      if (kind === "query") {
        each[path] = await new Promise((resolve) => {
          const stop = outsider.onUpdate(
            path,
            {},
            () => {
              stop();
              resolve("delivered a value");
            },
            (err) => {
              stop();
              resolve(err.message);
            },
          );
        });
      } else if (kind === "mutation") {
        await outsider.mutation(path, {});
        each[path] = "resolved";
      } else {
        await outsider.action(path, {});
        each[path] = "resolved";
      }
    } catch (err) {
      each[path] = err.message;
    }
  }
  return { query: errors[0], mutation, stillThere: fresh.some((t) => t._id === insertedId), each };
});

async function openInserted() {
  await page.click(`tr[data-id="${insertedId}"]`);
  const editor = page.getByTestId("document-json");
  await page.waitForFunction(
    (id) => document.querySelector('[data-testid="document-json"]')?.value.includes(id),
    insertedId,
  );
  return editor;
}

await check("invalid_edit_refused", async () => {
  const editor = await openInserted();
  const doc = JSON.parse(await editor.inputValue());
  doc.priority = "high"; // the schema says float64
  await editor.fill(JSON.stringify(doc, null, 2));
  await page.getByTestId("save-document").click();
  const error = page.getByTestId("document-error");
  await error.waitFor();
  await shot("document-error");
  // Nothing was written: the outsider still sees the number, from the server.
  const fresh = await outsider.query("tasks:list", {});
  const stored = fresh.find((t) => t._id === insertedId);
  return { error: await error.textContent(), storedPriority: stored && stored.priority };
});

const renamed = `${title}-renamed`;
await check("valid_edit_seen", async () => {
  const editor = page.getByTestId("document-json");
  const doc = JSON.parse(await editor.inputValue());
  doc.priority = 5;
  doc.title = renamed;
  await editor.fill(JSON.stringify(doc, null, 2));
  await page.getByTestId("save-document").click();
  await page.getByTestId("document-saved").waitFor();
  const task = await waitFor(
    () => latest().find((t) => t._id === insertedId && t.title === renamed),
    STEP_MS,
    "the outsider's subscription to show the edit",
  );
  return { title: task.title, priority: task.priority, done: task.done };
});

await check("internal_mutation_run", async () => {
  await page.click("#nav a[data-page=functions]");
  await page.locator('[data-path="tasks:complete_by_title"]').click();
  const panel = page.getByTestId("function-panel");
  await panel.waitFor();
  const kind = await panel.locator(".kind").textContent();
  const validators = [
    await page.getByTestId("args-validator").textContent(),
    await page.getByTestId("returns-validator").textContent(),
  ];
  await page.getByTestId("run-args").fill(JSON.stringify({ title: renamed }));
  await page.getByTestId("run").click();
  const result = page.getByTestId("run-result");
  await result.waitFor();
  await shot("functions");
  const task = await waitFor(
    () => latest().find((t) => t._id === insertedId && t.done === true),
    STEP_MS,
    "the outsider to see the task done",
  );
  return {
    kind,
    validators,
    result: (await result.textContent()).trim(),
    logs: await page.getByTestId("run-logs").textContent(),
    duration: await page.getByTestId("run-duration").textContent(),
    done: task.done,
  };
});

await check("run_as_user_and_live_view", async () => {
  await page.click("#nav a[data-page=functions]");
  await page.locator('[data-path="tasks:whoami"]').click();
  await page.getByTestId("function-panel").waitFor();
  const run = async () => {
    await page.getByTestId("run").click();
    await page.getByTestId("run-result").waitFor();
    return (await page.getByTestId("run-result").textContent()).trim();
  };
  const asAdmin = await run();
  await page.getByTestId("run-identity").fill('{"subject": "user-7", "issuer": "https://issuer.example"}');
  const asUser = await run();
  // int64 and bytes arguments and results, exactly (the editor's {"$int64"} and {"$bytes"}).
  await page.locator('[data-path="tasks:double"]').click();
  await page.locator("h2", { hasText: "tasks:double" }).waitFor();
  await page.getByTestId("run-args").fill('{"n": {"$int64": "9007199254740993"}, "raw": {"$bytes": "AAEC"}}');
  const doubled = JSON.parse(await run());
  // A query kept open as a live view changes when another client writes.
  await page.locator('[data-path="tasks:list"]').click();
  await page.locator("h2", { hasText: "tasks:list" }).waitFor();
  await page.getByTestId("run-live").check();
  await page.getByTestId("run").click();
  await page.getByTestId("run-result").waitFor();
  const liveTitle = `${title}-live-view`;
  await outsider.mutation("tasks:add", { title: liveTitle, priority: 3 });
  const started = Date.now();
  await page.getByTestId("run-result").filter({ hasText: liveTitle }).waitFor({ timeout: 5000 });
  return { asAdmin, asUser, doubled, liveMs: Date.now() - started };
});

await check("failed_call_in_logs", async () => {
  await page.click("#nav a[data-page=logs]");
  await page.getByTestId("logs-outcome").selectOption("failure");
  await page.getByTestId("logs-form").locator("button[type=submit]").click();
  await page.getByTestId("logs").waitFor();
  let message = "";
  try {
    await outsider.query("tasks:fail", { why: "for the logs page" });
  } catch (err) {
    message = err.message;
  }
  const requestId = (message.match(/\[Request ID: ([0-9a-f]+)\]/) || [])[1];
  if (!requestId) throw new Error(`no request id in ${JSON.stringify(message)}`);
  const started = Date.now();
  const row = page.locator(`tr[data-request-id="${requestId}"]`);
  await row.waitFor({ timeout: 5000 });
  const onScreenMs = Date.now() - started;
  const cells = await row.locator("td").allTextContents();
  const error = await page.getByTestId("log-error").first().textContent();
  const traceback = await row.locator("xpath=following-sibling::tr[1]").getByTestId("log-traceback").textContent();
  const outcomes = await page.locator("tr[data-outcome]").evaluateAll((rows) => rows.map((r) => r.dataset.outcome));
  await shot("logs");
  // Filtering by the request id leaves that call alone.
  await page.getByTestId("logs-outcome").selectOption("");
  await page.getByTestId("logs-request-id").fill(requestId);
  await page.getByTestId("logs-form").locator("button[type=submit]").click();
  await page.waitForFunction(
    (id) => {
      const rows = [...document.querySelectorAll("tr[data-request-id]")];
      return rows.length === 1 && rows[0].dataset.requestId === id;
    },
    requestId,
  );
  return { requestId, onScreenMs, cells, error, traceback, outcomes: [...new Set(outcomes)] };
});

await check("insert_from_dashboard", async () => {
  await page.click("#nav a[data-page=data]");
  await page.click('[data-table="tasks"]');
  await page.getByTestId("add-document").click();
  const inserted = `${title}-from-dashboard`;
  await page
    .getByTestId("new-document-json")
    .fill(JSON.stringify({ title: inserted, done: false, priority: 1 }));
  await page.getByTestId("insert-document").click();
  await page.getByTestId("inserted").waitFor();
  const task = await waitFor(
    () => latest().find((t) => t.title === inserted),
    STEP_MS,
    "the outsider to see the inserted document",
  );
  return { title: task.title };
});

await check("delete_with_confirmation", async () => {
  await page.click('[data-table="tasks"]');
  await openInserted();
  // Dismissing the confirmation deletes nothing.
  page.once("dialog", (dialog) => dialog.dismiss());
  await page.getByTestId("delete-document").click();
  await page.waitForTimeout(300);
  const afterDismiss = (await outsider.query("tasks:list", {})).some((t) => t._id === insertedId);
  let message = null;
  page.once("dialog", (dialog) => {
    message = dialog.message();
    dialog.accept();
  });
  await page.getByTestId("delete-document").click();
  await page.getByTestId("document-deleted").waitFor();
  await waitFor(
    () => !latest().some((t) => t._id === insertedId),
    STEP_MS,
    "the outsider to see the document gone",
  );
  await page.locator(`tr[data-id="${insertedId}"]`).waitFor({ state: "detached" });
  return { afterDismiss, message };
});

await check("sort_filter_follow_id", async () => {
  const ids = {};
  for (const p of [30, 10, 20]) {
    ids[p] = await outsider.mutation("tasks:add", { title: `${title}-p${p}`, priority: p });
  }
  const noteId = await adminCall("_system/frontend/documents:insert", {
    table: "notes",
    document: { task: ids[20], text: "see the task" },
  });
  await page.click("#nav a[data-page=data]");
  await page.click('[data-table="tasks"]');
  await page.getByTestId("documents-summary").waitFor();
  const priorities = () =>
    page.evaluate(() => {
      const table = document.querySelector('[data-testid="documents"]');
      const column = [...table.querySelectorAll("th")].findIndex((th) => th.textContent === "priority");
      return [...table.querySelectorAll("tbody tr")].map((tr) => Number(tr.children[column].textContent));
    });
  await page.getByTestId("index").selectOption("by_priority");
  await page.getByTestId("order").selectOption("asc");
  await page.locator('table[data-index="by_priority"][data-order="asc"]').waitFor();
  const ascending = await priorities();
  await page.getByTestId("order").selectOption("desc");
  await page.locator('table[data-index="by_priority"][data-order="desc"]').waitFor();
  const descending = await priorities();
  await page.getByTestId("filter-field").fill("priority");
  await page.getByTestId("filter-value").fill("20");
  await page.getByTestId("filter-form").locator("button[type=submit]").click();
  await page.locator(`table[data-filter='{"field":"priority","value":20}']`).waitFor();
  const filtered = await page.locator('[data-testid="documents"] tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.id));
  // Follow the note's reference to its task.
  await page.click('[data-table="notes"]');
  const link = page.locator(`tr[data-id="${noteId}"] a`);
  await link.waitFor();
  await link.click();
  await page.waitForFunction(
    (id) => document.querySelector('[data-testid="document-json"]')?.value.includes(id),
    ids[20],
  );
  const followed = JSON.parse(await page.getByTestId("document-json").inputValue());
  const panelTitle = await page.getByTestId("document-panel").locator("h3").textContent();
  return { ascending, descending, filtered, expected: ids[20], followed: followed.title, panelTitle };
});

await check("export_and_import", async () => {
  await page.click("#nav a[data-page=data]");
  await page.getByTestId("open-snapshots").click();
  await page.getByTestId("export").click();
  await page.getByTestId("export-done").waitFor({ timeout: 20_000 });
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByTestId("export-download").click(),
  ]);
  const zip = readFileSync(await download.path());
  const lines =
    [
      `{"title": "${title}-imported-1", "done": false, "priority": 7}`,
      `{"title": "${title}-imported-2", "done": true, "priority": 8}`,
    ].join("\n") + "\n";
  const countBefore = Number(await page.getByTestId("count-tasks").textContent());
  await page.getByTestId("import-file").setInputFiles({
    name: "more-tasks.jsonl",
    mimeType: "application/jsonl",
    buffer: Buffer.from(lines),
  });
  await page.getByTestId("import-table").fill("tasks");
  await page.getByTestId("import-mode").selectOption("append");
  await page.getByTestId("import").click();
  const summaryBox = page.getByTestId("import-summary");
  await summaryBox.waitFor().catch(async (err) => {
    throw new Error(`${err.message}; import status: ${await page.getByTestId("import-status").textContent()}`);
  });
  const summary = await summaryBox.textContent();
  await shot("import");
  await page.getByTestId("import-confirm").click();
  const done = await page.getByTestId("import-done").textContent();
  await page.waitForFunction(
    (expected) => document.querySelector('[data-testid="count-tasks"]')?.textContent === expected,
    String(countBefore + 2),
  );
  const imported = (await outsider.query("tasks:list", {})).filter((t) => t.title.includes("-imported-"));
  return {
    filename: download.suggestedFilename(),
    zipMagic: zip.subarray(0, 2).toString("latin1"),
    hasTasks: zip.includes(Buffer.from("tasks/documents.jsonl")),
    summary,
    done,
    imported: imported.map((t) => [t.title.replace(title, ""), t.done, t.priority]),
  };
});

await check("cancel_pending_job", async () => {
  const jobId = await outsider.mutation("tasks:add_later", { title: `${title}-later`, delay_s: 600 });
  await page.click("#nav a[data-page=schedules]");
  const row = page.locator(`tr[data-job="${jobId}"]`);
  await row.and(page.locator('[data-state="pending"]')).waitFor();
  let message = null;
  page.once("dialog", (dialog) => {
    message = dialog.message();
    dialog.accept();
  });
  await row.getByTestId("cancel-job").click();
  await page.getByTestId("job-canceled").waitFor();
  await page.locator(`tr[data-job="${jobId}"][data-state="canceled"]`).waitFor();
  const cronRow = page.locator('tr[data-cron="hourly count"]');
  await cronRow.waitFor();
  await shot("schedules");
  const jobs = await adminCall("_system/frontend/scheduled:list", {});
  return {
    message,
    stored: jobs.find((j) => j._id === jobId).state.kind,
    cron: await cronRow.locator("td").allTextContents(),
  };
});

// A 1x1 PNG.
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
  "base64",
);

await check("upload_and_delete_file", async () => {
  await page.click("#nav a[data-page=files]");
  await page.getByTestId("upload-input").setInputFiles({ name: "dot.png", mimeType: "image/png", buffer: PNG });
  await page.getByTestId("upload").click();
  const uploaded = page.getByTestId("uploaded");
  await uploaded.waitFor();
  const storageId = (await uploaded.textContent()).match(/as (\S+)\.$/)[1];
  const row = page.locator(`tr[data-file="${storageId}"]`);
  await row.waitFor();
  const cells = await row.locator("td").allTextContents();
  const imageLoaded = await row.locator("img.thumb").evaluate((img) => img.complete && img.naturalWidth === 1);
  const href = await row.getByTestId("download").getAttribute("href");
  const downloaded = Buffer.from(await (await fetch(href)).arrayBuffer());
  await shot("files");
  page.once("dialog", (dialog) => dialog.accept());
  await row.getByTestId("delete-file").click();
  await page.getByTestId("file-deleted").waitFor();
  await row.waitFor({ state: "detached" });
  const after = await fetch(href);
  const files = await adminCall("_system/frontend/files:list", {});
  return {
    cells,
    imageLoaded,
    sameBytes: downloaded.equals(PNG),
    statusAfterDelete: after.status,
    stillListed: files.some((f) => f._id === storageId),
  };
});

await check("environment_variables", async () => {
  await page.click("#nav a[data-page=env]");
  await page.getByTestId("env-name").fill("DASHBOARD_TEST");
  await page.getByTestId("env-value").fill("forty-two");
  await page.getByTestId("env-save").click();
  const row = page.locator('tr[data-env="DASHBOARD_TEST"]');
  await row.waitFor();
  const shown = await row.locator("td").allTextContents();
  await shot("env");
  const afterSet = (await adminCall("_system/cli/queryEnvironmentVariables:get", { name: "DASHBOARD_TEST" }));
  page.once("dialog", (dialog) => dialog.accept());
  await row.getByTestId("env-remove").click();
  await row.waitFor({ state: "detached" });
  const afterRemove = await adminCall("_system/cli/queryEnvironmentVariables:get", { name: "DASHBOARD_TEST" });
  return { shown, afterSet, afterRemove };
});

await check("schema_page", async () => {
  await page.click("#nav a[data-page=schema]");
  const row = page.locator('[data-schema-table="tasks"] tr[data-index="by_priority"]');
  await row.waitFor();
  await shot("schema");
  return {
    index: await row.locator("td").allTextContents(),
    fields: await page.locator('[data-schema-table="notes"] tbody tr').first().locator("td").allTextContents(),
  };
});

await check("health_page", async () => {
  await page.click("#nav a[data-page=health]");
  const load = (async () => {
    for (let i = 0; i < 20; i++) {
      await outsider.mutation("tasks:add", { title: `${title}-load-${i}`, priority: i });
    }
  })();
  // Two samples (2 s apart) give rates; the outsider's mutations give latencies and commits.
  await page.waitForFunction(
    () => {
      const value = (id) => document.querySelector(`[data-metric="${id}"] .value`)?.textContent;
      return /^\d/.test(value("calls")) && Number(value("commits")) > 0 && /^\d/.test(value("latency"));
    },
    null,
    { timeout: 8000 },
  );
  await load;
  const read = async (id) => await page.locator(`[data-metric="${id}"] .value`).textContent();
  await shot("health");
  return {
    sessions: Number(await read("sessions")),
    calls: Number(await read("calls")),
    commits: Number(await read("commits")),
    latency: await read("latency"),
    polylines: await page.locator('[data-metric="calls"] svg polyline').count(),
  };
});

await check("show_more", async () => {
  await adminCall("tasks:seed", { count: 120, prefix: `${title}-seed` });
  await page.click("#nav a[data-page=data]");
  await page.click('[data-table="tasks"]');
  const rows = () => page.locator('[data-testid="documents"] tbody tr').count();
  await page.getByTestId("show-more").waitFor();
  const first = await rows();
  const summary = await page.getByTestId("documents-summary").textContent();
  await page.getByTestId("show-more").click();
  await page.waitForFunction(
    () => document.querySelectorAll('[data-testid="documents"] tbody tr').length > 100,
  );
  return { first, summary, after: await rows(), total: (await outsider.query("tasks:list", {})).length };
});

await check("phone_layout", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click("#nav a[data-page=data]");
  await page.click('[data-table="tasks"]');
  await page.getByTestId("documents-summary").waitFor();
  await shot("phone");
  return await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
  }));
});

await check("key_never_in_a_url", async () => {
  return {
    requests: requests.length,
    leaked: requests.filter((u) => u.includes(adminKey) || u.includes(encodeURIComponent(adminKey))),
    consoleErrors,
  };
});

await context.close();
await outsider.close();
rmSync(userDataDir, { recursive: true, force: true });
finish({ checks, order });
