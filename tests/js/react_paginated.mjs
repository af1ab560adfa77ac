// `usePaginatedQuery` from the official `convex/react` package against the taskboard example's
// `tasks:page` (declared with `pagination_opts_validator`), rendered in Node with
// react-test-renderer.
//
//   node react_paginated.mjs <deployment url>          tab A: seeds, pages, then opens tab B
//   node react_paginated.mjs <deployment url> tab-b    tab B: a freshly loaded page
//
// Tab A loads two pages, then three tasks are added at the top, so its live first page grows.
// Tab B runs in its own Node process, as a reloaded browser tab does: its hook numbers its
// pagination `id` from 1 again, so it sends exactly the arguments of A's first page, without a
// journal. It must get a fresh first page of 2, and its loadMore must continue from there,
// while A keeps its grown page and loads the rest. Prints one JSON document.

import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import React from "react";
import TestRenderer from "react-test-renderer";
import WebSocket from "ws";
import { ConvexHttpClient } from "convex/browser";
import { ConvexProvider, ConvexReactClient, usePaginatedQuery } from "convex/react";
import { anyApi } from "convex/server";

import {
  assertReachable,
  deploymentUrl,
  finish,
  installCrashHandlers,
  installWatchdog,
  waitFor,
  withTimeout,
} from "./lib.mjs";

globalThis.IS_REACT_ACT_ENVIRONMENT = false;

const STEP_MS = 10_000;
const url = deploymentUrl();
const role = process.argv[3] ?? "tab-a";
installCrashHandlers();
installWatchdog(role === "tab-a" ? 50_000 : 25_000, `react_paginated.mjs ${role}`);
await assertReachable(url);

const consoleErrors = [];
const originalError = console.error;
console.error = (...args) => {
  consoleErrors.push(args.map(String).join(" "));
  originalError(...args);
};

// Mounts one component using the hook; returns accessors for what it rendered.
function mountTab() {
  const renders = []; // {status, titles} per render
  let loadMore = null;
  function Tasks() {
    const { results, status, loadMore: more } = usePaginatedQuery(
      anyApi.tasks.page,
      {},
      { initialNumItems: 2 },
    );
    loadMore = more;
    renders.push({ status, titles: results.map((task) => task.title) });
    return null;
  }
  const client = new ConvexReactClient(url, { webSocketConstructor: WebSocket });
  const renderer = TestRenderer.create(
    React.createElement(ConvexProvider, { client }, React.createElement(Tasks)),
  );
  const last = () => renders[renders.length - 1];
  return {
    renders,
    last,
    loadMore: (n) => loadMore(n),
    // The first render whose titles are `titles` (and status, if given).
    waitTitles: (titles, status, what) =>
      waitFor(
        () =>
          renders.find(
            (r) =>
              JSON.stringify(r.titles) === JSON.stringify(titles) &&
              (status === undefined || r.status === status),
          ),
        STEP_MS,
        `${what}: ${JSON.stringify(titles)} (last render ${JSON.stringify(last())})`,
      ),
    close: async () => {
      renderer.unmount();
      await withTimeout(client.close(), 5_000, "ConvexReactClient.close()").catch(() => {});
    },
  };
}

const waitLoaded = (tab, what) =>
  waitFor(
    () => tab.last() && !tab.last().status.startsWith("Loading") && tab.last(),
    STEP_MS,
    what,
  );

if (role === "tab-b") {
  const tab = mountTab();
  const firstPage = await waitLoaded(tab, "tab B's first page");
  tab.loadMore(2);
  await waitFor(() => tab.renders.some((r) => r.status === "LoadingMore"), STEP_MS, "loadMore");
  const afterLoadMore = await waitLoaded(tab, "tab B's second page");
  await tab.close();
  finish({ firstPage, afterLoadMore, consoleErrors });
} else {
  const http = new ConvexHttpClient(url);
  const add = (title) =>
    withTimeout(http.mutation(anyApi.tasks.add, { title, owner: "pager" }), STEP_MS, title);
  for (const title of ["t1", "t2", "t3", "t4", "t5"]) await add(title);

  const tab = mountTab();
  const firstPage = await waitLoaded(tab, "tab A's first page");
  tab.loadMore(2);
  const twoPages = await tab.waitTitles(["t5", "t4", "t3", "t2"], "CanLoadMore", "A's 2 pages");
  for (const title of ["n1", "n2", "n3"]) await add(title); // newest first: inside page one
  const grown = await tab.waitTitles(
    ["n3", "n2", "n1", "t5", "t4", "t3", "t2"],
    "CanLoadMore",
    "A's grown first page",
  );

  // A reloaded tab: another process, the same hook arguments, no journal.
  const tabB = await new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [fileURLToPath(import.meta.url), url, "tab-b"],
      { timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`tab B failed: ${err.message}\n${stdout}\n${stderr}`));
        else resolve(JSON.parse(stdout.trim().split("\n").pop()));
      },
    );
  });

  const afterTabB = tab.last();
  tab.loadMore(10);
  const exhausted = await tab.waitTitles(
    ["n3", "n2", "n1", "t5", "t4", "t3", "t2", "t1"],
    "Exhausted",
    "A's last page",
  );
  await tab.close();
  finish({ firstPage, twoPages, grown, tabB, afterTabB, exhausted, consoleErrors });
}
