// A live ConvexClient keeps working across a server crash and restart.
//
//   node survive_restart.mjs <deployment url> <channel> <expected body after restart>
//
// Subscribes to messages:bodies for <channel> and prints one JSON line per result:
//   {"event":"value","value":[...]}
// The test harness kills and restarts the server, then sends <expected body> from another
// client. Once this client sees it, the script sends a mutation of its own (which must
// resolve: PROTOCOL.md §6.1, and the restarted server must accept the client's
// maxObservedTimestamp, trap 18), waits to see it, prints {"event":"done",...} and exits 0.

import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";

import {
  assertReachable,
  deploymentUrl,
  installCrashHandlers,
  installWatchdog,
  waitFor,
  withTimeout,
} from "./lib.mjs";

const url = deploymentUrl();
const channel = process.argv[3];
const expected = process.argv[4];
if (!channel || !expected) {
  process.stderr.write("usage: node survive_restart.mjs <url> <channel> <expected body>\n");
  process.exit(2);
}
installCrashHandlers();
installWatchdog(40_000, "survive_restart.mjs");
await assertReachable(url);

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const client = new ConvexClient(url);
let latest = null;
const errors = [];
client.onUpdate(
  anyApi.messages.bodies,
  { channel },
  (value) => {
    latest = value;
    emit({ event: "value", value });
  },
  (err) => {
    errors.push(err.message);
    emit({ event: "error", message: err.message });
  },
);

await waitFor(() => latest && latest.includes(expected), 30_000, `"${expected}" in ${channel}`, 20);
const mine = "from-js-after-restart";
const id = await withTimeout(
  client.mutation(anyApi.messages.send, { channel, body: mine }),
  10_000,
  "mutation after the restart",
);
await waitFor(() => latest.includes(mine), 10_000, "own mutation in the subscription", 20);
const state = client.connectionState();
emit({
  event: "done",
  value: latest,
  idType: typeof id,
  errors,
  connectionCount: state.connectionCount,
  isWebSocketConnected: state.isWebSocketConnected,
});
await withTimeout(client.close(), 5_000, "client.close()").catch(() => {});
process.stdout.write("", () => process.exit(0));
