// The dashboard's shell: the login form, the navigation between pages and the page's life
// cycle (each page's render returns a cleanup that drops its live subscriptions).

import { checkAdminKey, Deployment, forgetKey, KeyRefused, storedKey, storeKey } from "./api.js";
import { h, mount, notice } from "./ui.js";
import * as data from "./pages/data.js";
import * as env from "./pages/env.js";
import * as files from "./pages/files.js";
import * as functions from "./pages/functions.js";
import * as health from "./pages/health.js";
import * as logs from "./pages/logs.js";
import * as schedules from "./pages/schedules.js";
import * as schema from "./pages/schema.js";

const PAGES = [
  { id: "data", title: "Data", page: data },
  { id: "functions", title: "Functions", page: functions },
  { id: "logs", title: "Logs", page: logs },
  { id: "schedules", title: "Schedules", page: schedules },
  { id: "files", title: "Files", page: files },
  { id: "env", title: "Environment", page: env },
  { id: "schema", title: "Schema", page: schema },
  { id: "health", title: "Health", page: health },
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const logout = document.getElementById("logout");
const connection = document.getElementById("connection");

let deployment = null;
let cleanup = null;
let stopConnectionWatch = null;

function showLogin(error) {
  nav.hidden = true;
  logout.hidden = true;
  connection.hidden = true;
  const input = h("input", {
    type: "password",
    name: "adminKey",
    id: "admin-key",
    autocomplete: "current-password",
    required: true,
    "aria-label": "Admin key",
  });
  const status = h("div", { "aria-live": "polite" });
  if (error) mount(status, notice("error", error, "login-error"));
  const button = h("button", { type: "submit", class: "primary" }, "Log in");
  // method=post: were the script ever not to run, the browser must not put the key in a URL.
  const form = h(
    "form",
    { method: "post", "data-testid": "login-form" },
    h("label", { for: "admin-key" }, "Admin key", input),
    button,
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      mount(status, notice("error", "Enter the deployment's admin key.", "login-error"));
      return;
    }
    button.disabled = true;
    mount(status, notice("info", "Checking the key..."));
    try {
      await checkAdminKey(key);
    } catch (err) {
      button.disabled = false;
      input.value = "";
      const text = err instanceof KeyRefused ? err.message : String(err.message || err);
      mount(status, notice("error", text, "login-error"));
      input.focus();
      return;
    }
    storeKey(key);
    start(key);
  });
  mount(
    main,
    h(
      "section",
      { class: "login" },
      h("h1", {}, "Reactor dashboard"),
      h(
        "p",
        { class: "muted" },
        "Enter the deployment's admin key (printed by `reactor serve` at first start, or " +
          "`reactor rotate-admin-key`). It is kept in this tab's session storage only.",
      ),
      form,
    ),
  );
  input.focus();
}

function start(key) {
  deployment = new Deployment(key);
  nav.hidden = false;
  logout.hidden = false;
  connection.hidden = false;
  mount(
    nav,
    PAGES.map((p) => h("a", { href: `#${p.id}`, "data-page": p.id }, p.title)),
  );
  stopConnectionWatch = deployment.client.subscribeToConnectionState((state) => {
    const up = state.isWebSocketConnected;
    connection.textContent = up ? "live" : "reconnecting...";
    connection.classList.toggle("down", !up);
  });
  route();
}

function stop() {
  if (cleanup) cleanup();
  cleanup = null;
  if (stopConnectionWatch) stopConnectionWatch();
  stopConnectionWatch = null;
  if (deployment) deployment.close();
  deployment = null;
}

function route() {
  if (!deployment) return;
  const [pageId, ...rest] = (window.location.hash.slice(1) || "data").split("/");
  const entry = PAGES.find((p) => p.id === pageId) || PAGES[0];
  for (const link of nav.querySelectorAll("a")) {
    link.classList.toggle("active", link.dataset.page === entry.id);
  }
  if (cleanup) cleanup();
  cleanup = null;
  const root = h("div", { class: "page", "data-testid": `page-${entry.id}` });
  mount(main, root);
  cleanup = entry.page.render(root, deployment, rest.map(decodeURIComponent)) || null;
}

window.addEventListener("hashchange", route);
logout.addEventListener("click", () => {
  forgetKey();
  stop();
  showLogin();
});

const key = storedKey();
if (key) {
  // The key was accepted earlier in this tab; check it again (it may have been rotated).
  checkAdminKey(key).then(
    () => start(key),
    (err) => {
      forgetKey();
      showLogin(err.message);
    },
  );
} else {
  showLogin();
}
