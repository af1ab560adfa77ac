// The Schedules page: scheduled jobs by state (live: they move from pending to running to
// finished on screen), cancel a pending one; and each cron job with its schedule, next and
// last run and the last run's outcome.

import { h, mount, notice, errorText, formatTime } from "../ui.js";
import { cellText } from "../values.js";

const SYSTEM = "_system/frontend";
const STATES = ["all", "pending", "inProgress", "success", "failed", "canceled"];

export function render(root, deployment) {
  const stateSelect = h(
    "select",
    { "aria-label": "Job state", "data-testid": "job-state" },
    STATES.map((s) => h("option", { value: s }, s)),
  );
  const jobs = h("div", { class: "scroll", "data-testid": "jobs" });
  const jobsStatus = h("div", {});
  const crons = h("div", { class: "scroll", "data-testid": "crons" });
  mount(
    root,
    h(
      "section",
      { class: "panel" },
      h("h2", {}, "Scheduled functions"),
      h("div", { class: "toolbar" }, h("label", {}, "State", stateSelect)),
      jobsStatus,
      jobs,
    ),
    h("section", { class: "panel" }, h("h2", {}, "Cron jobs"), crons),
  );

  let stopJobs = null;
  function watchJobs() {
    if (stopJobs) stopJobs();
    const args = stateSelect.value === "all" ? {} : { state: stateSelect.value };
    stopJobs = deployment.watch(
      `${SYSTEM}/scheduled:list`,
      args,
      (list) => renderJobs(list),
      (err) => mount(jobs, notice("error", errorText(err), "jobs-error")),
    );
  }

  function renderJobs(list) {
    if (list.length === 0) {
      mount(jobs, h("p", { class: "muted" }, "No scheduled functions."));
      return;
    }
    mount(
      jobs,
      h(
        "table",
        { class: "grid" },
        h("thead", {}, h("tr", {}, ["Function", "State", "Scheduled for", "Completed", "Arguments", ""].map((c) => h("th", {}, c)))),
        h(
          "tbody",
          {},
          list.map((job) =>
            h(
              "tr",
              { "data-job": job._id, "data-state": job.state.kind },
              h("td", { class: "mono" }, job.name),
              h("td", {}, job.state.kind, job.state.error ? h("div", { class: "outcome-failure" }, job.state.error) : null),
              h("td", {}, formatTime(job.scheduledTime)),
              h("td", {}, formatTime(job.completedTime)),
              h("td", { class: "mono" }, cellText(job.args && job.args[0])),
              h(
                "td",
                {},
                job.state.kind === "pending"
                  ? h("button", { type: "button", class: "danger", "data-testid": "cancel-job", onclick: () => cancel(job._id) }, "Cancel")
                  : null,
              ),
            ),
          ),
        ),
      ),
    );
  }

  async function cancel(id) {
    if (!window.confirm(`Cancel scheduled job ${id}?`)) return;
    try {
      await deployment.mutation(`${SYSTEM}/scheduled:cancel`, { id });
      mount(jobsStatus, notice("ok", `Canceled ${id}.`, "job-canceled"));
    } catch (err) {
      mount(jobsStatus, notice("error", errorText(err), "cancel-error"));
    }
  }

  stateSelect.addEventListener("change", watchJobs);
  watchJobs();

  // Due times live outside the tables: re-read every 5 s besides the live re-runs.
  let stopCrons = null;
  function watchCrons() {
    if (stopCrons) stopCrons();
    stopCrons = deployment.watch(
      `${SYSTEM}/crons:list`,
      {},
      (list) =>
        mount(
          crons,
          list.length === 0
            ? h("p", { class: "muted" }, "No cron jobs (the app has no crons.py).")
            : h(
                "table",
                { class: "grid" },
                h("thead", {}, h("tr", {}, ["Name", "Function", "Schedule", "Next run", "Last run", "Outcome"].map((c) => h("th", {}, c)))),
                h(
                  "tbody",
                  {},
                  list.map((c) =>
                    h(
                      "tr",
                      { "data-cron": c.name },
                      h("td", {}, c.name),
                      h("td", { class: "mono" }, c.function),
                      h("td", {}, c.schedule),
                      h("td", {}, formatTime(c.nextRun)),
                      h("td", {}, c.lastRun ? formatTime(c.lastRun.scheduledTime) : "never"),
                      h("td", {}, c.lastRun ? c.lastRun.state.kind : ""),
                    ),
                  ),
                ),
              ),
        ),
      (err) => mount(crons, notice("error", errorText(err), "crons-error")),
    );
  }
  watchCrons();
  const timer = setInterval(() => {
    // A fresh subscription re-runs the query (the client keeps one per distinct args).
    watchCrons();
  }, 5000);

  return () => {
    clearInterval(timer);
    if (stopJobs) stopJobs();
    if (stopCrons) stopCrons();
  };
}
