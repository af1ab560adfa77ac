// Mounts a React component that uses `useQuery` / `useMutation` from the official
// `convex/react` package (ConvexReactClient + ConvexProvider), rendered in Node with
// react-test-renderer, and records what it renders as the server's data changes.
//
//   node react_usequery.mjs <deployment url>
//
// Prints {"renders": [...], "afterOwnMutation": ..., "afterOtherMutation": ..., ...}.

import React from "react";
import TestRenderer from "react-test-renderer";
import WebSocket from "ws";
import { ConvexHttpClient } from "convex/browser";
import { ConvexProvider, ConvexReactClient, useMutation, useQuery } from "convex/react";
import { anyApi } from "convex/server";

import {
  assertReachable,
  deploymentUrl,
  finish,
  installCrashHandlers,
  installWatchdog,
  uniqueName,
  waitFor,
  withTimeout,
} from "./lib.mjs";

// Updates arrive from the websocket, outside act(): tell React this is not a test
// act() environment so it schedules renders normally without warnings.
globalThis.IS_REACT_ACT_ENVIRONMENT = false;

const STEP_MS = 10_000;
const url = deploymentUrl();
installCrashHandlers();
installWatchdog(45_000, "react_usequery.mjs");
await assertReachable(url);

const consoleErrors = [];
const originalError = console.error;
console.error = (...args) => {
  consoleErrors.push(args.map(String).join(" "));
  originalError(...args);
};

const channel = uniqueName("react");
const renders = []; // every value the component rendered with (null = loading)
let send = null; // the useMutation callback, captured from the component

function Messages({ channel }) {
  const bodies = useQuery(anyApi.messages.bodies, { channel });
  const defaultExport = useQuery(anyApi.messages.default, { channel });
  send = useMutation(anyApi.messages.send);
  renders.push({
    bodies: bodies === undefined ? null : bodies,
    count: defaultExport === undefined ? null : defaultExport.count,
  });
  return React.createElement(
    "ul",
    null,
    (bodies ?? []).map((body, i) => React.createElement("li", { key: i }, body)),
  );
}

const client = new ConvexReactClient(url, { webSocketConstructor: WebSocket });
const renderer = TestRenderer.create(
  React.createElement(ConvexProvider, { client }, React.createElement(Messages, { channel })),
);

const lastRender = () => renders[renders.length - 1];
const renderedItems = () =>
  renderer.root.findAllByType("li").map((node) => node.children.join(""));

await waitFor(
  () => lastRender() && lastRender().bodies !== null && lastRender().count !== null,
  STEP_MS,
  "the first rendered useQuery result",
);
const initial = lastRender();
const initialRenderCount = renders.length;

// A mutation through the component's own useMutation.
const id = await withTimeout(send({ channel, body: "mine" }), STEP_MS, "useMutation messages:send");
const afterOwnMutation = await waitFor(
  () => renders.find((r) => r.bodies && r.bodies.length === 1 && r.count === 1),
  STEP_MS,
  "a re-render showing the component's own mutation",
);

// A mutation by another client must re-render the component too.
await withTimeout(
  new ConvexHttpClient(url).mutation(anyApi.messages.send, { channel, body: "theirs" }),
  STEP_MS,
  "ConvexHttpClient messages:send",
);
const afterOtherMutation = await waitFor(
  () => renders.find((r) => r.bodies && r.bodies.length === 2 && r.count === 2),
  STEP_MS,
  "a re-render showing another client's mutation",
);
const items = renderedItems();

renderer.unmount();
await withTimeout(client.close(), 5_000, "ConvexReactClient.close()").catch(() => {});
finish({
  channel,
  initial,
  initialRenderCount,
  idType: typeof id,
  afterOwnMutation,
  afterOtherMutation,
  items,
  renders,
  consoleErrors,
});
