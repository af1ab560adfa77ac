// A mutation whose websocket dies while the server is executing it must be applied
// exactly once.
//
//   node dropped_connection.mjs <deployment url> [--delay SECONDS] [--kill-after MS]
//
// The official ConvexClient connects through a small TCP proxy run by this script.
// It calls counter:slow_increment (which sleeps `delay` seconds between its read and
// its write); `kill-after` ms later the proxy destroys every proxied TCP connection.
// The client reconnects through the proxy and resends the mutation with the same
// sessionId and requestId (PROTOCOL.md §6.2); the server must not apply it twice
// (§6.2 "Idempotency", trap 4). The final counter value is read by a separate
// ConvexHttpClient that talks to the server directly.

import net from "node:net";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";

import {
  assertReachable,
  deploymentUrl,
  describeError,
  finish,
  installCrashHandlers,
  installWatchdog,
  sleep,
  uniqueName,
  withTimeout,
} from "./lib.mjs";

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
}

const url = deploymentUrl();
const delay = option("--delay", 1.0);
const killAfterMs = option("--kill-after", 300);
installCrashHandlers();
installWatchdog(40_000, "dropped_connection.mjs");
await assertReachable(url);

const target = new URL(url);
const proxyState = {
  connections: 0,
  live: new Set(),
  serverToClientText: "", // server frames are unmasked, so their JSON is readable
  killed: false,
  mutationResponsesBeforeKill: 0,
};

const proxy = net.createServer((clientSocket) => {
  proxyState.connections += 1;
  const serverSocket = net.connect(Number(target.port || 80), target.hostname);
  proxyState.live.add(clientSocket);
  proxyState.live.add(serverSocket);
  const drop = () => {
    proxyState.live.delete(clientSocket);
    proxyState.live.delete(serverSocket);
    clientSocket.destroy();
    serverSocket.destroy();
  };
  clientSocket.on("error", drop);
  serverSocket.on("error", drop);
  clientSocket.on("close", drop);
  serverSocket.on("close", drop);
  serverSocket.on("data", (chunk) => {
    if (!proxyState.killed) proxyState.serverToClientText += chunk.toString("latin1");
  });
  clientSocket.pipe(serverSocket);
  serverSocket.pipe(clientSocket);
});
await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
const proxyUrl = `http://127.0.0.1:${proxy.address().port}`;

const name = uniqueName("drop");
const client = new ConvexClient(proxyUrl);
const direct = new ConvexHttpClient(url);

const before = await withTimeout(client.query(anyApi.counter.get, { name }), 10_000, "counter:get via proxy");
const connectionsBefore = proxyState.connections;

const started = Date.now();
const pending = client.mutation(anyApi.counter.slow_increment, { name, delay });
let settled = null;
pending.then(
  () => (settled ??= Date.now() - started),
  () => (settled ??= Date.now() - started),
);

await sleep(killAfterMs);
const settledBeforeKill = settled !== null;
proxyState.mutationResponsesBeforeKill = (
  proxyState.serverToClientText.match(/"MutationResponse"/g) || []
).length;
proxyState.killed = true;
const killedSockets = proxyState.live.size;
for (const socket of [...proxyState.live]) socket.destroy();

let result;
try {
  result = { ok: true, value: await withTimeout(pending, 25_000, "the interrupted mutation") };
} catch (err) {
  result = { ok: false, error: describeError(err) };
}
const resolvedAfterMs = Date.now() - started;

// Give a duplicate execution (if any) time to land before reading the counter.
await sleep(Math.max(500, delay * 1000));
const final = await withTimeout(direct.query(anyApi.counter.get, { name }), 10_000, "counter:get direct");
const viaClient = await withTimeout(client.query(anyApi.counter.get, { name }), 10_000, "counter:get via proxy");

await withTimeout(client.close(), 5_000, "client.close()").catch(() => {});
proxy.close();
finish({
  name,
  delay,
  killAfterMs,
  before,
  connectionsBefore,
  connectionsAfter: proxyState.connections,
  killedSockets,
  settledBeforeKill,
  mutationResponsesBeforeKill: proxyState.mutationResponsesBeforeKill,
  result,
  resolvedAfterMs,
  final,
  viaClient,
});
