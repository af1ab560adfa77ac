// Drives the official `convex` npm client (ConvexClient over the websocket sync
// protocol, and ConvexHttpClient over the HTTP API) against a Reactor server that
// serves tests/e2e/app.
//
//   node scenarios.mjs <deployment url> [scenario ...]
//
// Prints {"scenarios": {<name>: {ok, result|error}}, "names": [...]} on stdout.
// Each scenario reports the concrete values it observed; tests/e2e/test_official_js.py
// asserts on them.

import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi, makeFunctionReference } from "convex/server";

import {
  assertReachable,
  bytes,
  capture,
  deploymentUrl,
  describeError,
  finish,
  installCrashHandlers,
  installWatchdog,
  rejection,
  tag,
  uniqueName,
  waitFor,
  withTimeout,
} from "./lib.mjs";

const STEP_MS = 10_000;

const url = deploymentUrl();
installCrashHandlers();
installWatchdog(90_000, "scenarios.mjs");

const clients = [];
function wsClient() {
  const client = new ConvexClient(url);
  clients.push(client);
  return client;
}
function httpClient() {
  return new ConvexHttpClient(url);
}

// Records every value (and error) an onUpdate subscription delivers.
function record(client, ref, args) {
  const sub = { values: [], errors: [] };
  sub.unsubscribe = client.onUpdate(
    ref,
    args,
    (value) => sub.values.push(value),
    (err) => sub.errors.push(err),
  );
  sub.waitForValues = (n, what) =>
    waitFor(() => sub.values.length >= n, STEP_MS, `${what} (${n} values, have ${sub.values.length})`);
  sub.waitForError = (what) => waitFor(() => sub.errors.length >= 1, STEP_MS, what);
  sub.waitForValue = (predicate, what) =>
    waitFor(() => sub.values.find(predicate), STEP_MS, what);
  return sub;
}

const bodiesOf = (messages) => messages.map((m) => m.body);

const scenarios = {
  // onUpdate gets the initial result, then the updates caused by mutations made by
  // other clients (a ConvexHttpClient and a second ConvexClient).
  async subscription() {
    const channel = uniqueName("sub");
    const watcher = wsClient();
    const sub = record(watcher, anyApi.messages.list, { channel });
    await sub.waitForValues(1, "initial messages:list result");
    const initial = sub.values[0];

    const httpId = await withTimeout(
      httpClient().mutation(anyApi.messages.send, { channel, body: "from http" }),
      STEP_MS,
      "ConvexHttpClient mutation messages:send",
    );
    const afterHttp = await sub.waitForValue(
      (v) => v.length === 1,
      "update after the ConvexHttpClient mutation",
    );

    const other = wsClient();
    const wsId = await withTimeout(
      other.mutation("messages:send", { channel, body: "from ws" }),
      STEP_MS,
      "second ConvexClient mutation messages:send",
    );
    const afterWs = await sub.waitForValue(
      (v) => v.length === 2,
      "update after the second ConvexClient's mutation",
    );
    sub.unsubscribe();
    return {
      initial: tag(initial),
      afterHttpBodies: bodiesOf(afterHttp),
      afterWsBodies: bodiesOf(afterWs),
      httpIdType: typeof httpId,
      wsIdType: typeof wsId,
      idsMatchDocs: afterWs[1]._id === httpId && afterWs[0]._id === wsId,
      channels: afterWs.map((m) => m.channel),
      creationTimeTypes: afterWs.map((m) => typeof m._creationTime),
      creationTimeOrdered: afterWs[0]._creationTime >= afterWs[1]._creationTime,
      subscriptionErrors: sub.errors.map(describeError),
    };
  },

  // A mutation's promise resolves only once the client's own subscriptions reflect it.
  async readYourWrites() {
    const channel = uniqueName("ryw");
    const client = wsClient();
    const sub = record(client, anyApi.messages.list, { channel });
    await sub.waitForValues(1, "initial messages:list result");
    const results = [];
    for (const body of ["one", "two", "three"]) {
      const id = await withTimeout(
        client.mutation(anyApi.messages.send, { channel, body }),
        STEP_MS,
        `mutation messages:send ${body}`,
      );
      const current = sub.unsubscribe.getCurrentValue();
      results.push({
        idType: typeof id,
        bodiesAtResolve: current === undefined ? null : bodiesOf(current),
        idVisibleAtResolve: current !== undefined && current.some((m) => m._id === id),
      });
    }
    const oneShot = await withTimeout(
      client.query(anyApi.messages.bodies, { channel }),
      STEP_MS,
      "client.query messages:bodies",
    );
    return { results, oneShot };
  },

  // Concurrent mutations from one client are applied one at a time, in order.
  async counter() {
    const name = uniqueName("ctr");
    const client = wsClient();
    const returned = await withTimeout(
      Promise.all([1, 2, 3, 4, 5].map(() => client.mutation(anyApi.counter.increment, { name }))),
      STEP_MS,
      "5 concurrent counter:increment mutations",
    );
    const final = await withTimeout(
      client.query(anyApi.counter.get, { name }),
      STEP_MS,
      "counter:get",
    );
    return { returned, final };
  },

  // AppError data reaches the client as ConvexError.data, from mutations and queries;
  // failed mutations leave no trace.
  async convexErrors() {
    const channel = uniqueName("err");
    const client = wsClient();
    const mutationError = await rejection(
      withTimeout(
        client.mutation(anyApi.errors.mutation_app_error, { channel }),
        STEP_MS,
        "mutation errors:mutation_app_error",
      ),
    );
    const emptyBody = await rejection(
      withTimeout(
        client.mutation(anyApi.messages.send, { channel, body: "" }),
        STEP_MS,
        "mutation messages:send with empty body",
      ),
    );
    const queryError = await rejection(
      withTimeout(client.query(anyApi.errors.query_app_error, {}), STEP_MS, "query errors:query_app_error"),
    );
    const sub = record(client, anyApi.errors.query_app_error, {});
    await sub.waitForError("onUpdate error callback for errors:query_app_error");
    const subscriptionError = describeError(sub.errors[0]);
    sub.unsubscribe();
    const httpMutationError = await rejection(
      httpClient().mutation(anyApi.errors.mutation_app_error, { channel }),
    );
    const httpQueryError = await rejection(httpClient().query(anyApi.errors.query_app_error, {}));
    const bodiesAfter = await withTimeout(
      client.query(anyApi.messages.bodies, { channel }),
      STEP_MS,
      "messages:bodies after failed mutations",
    );
    // The client keeps working after errors.
    const stillWorks = await withTimeout(
      client.mutation(anyApi.messages.send, { channel, body: "ok" }),
      STEP_MS,
      "mutation after errors",
    );
    return {
      mutationError,
      emptyBody,
      queryError,
      subscriptionError,
      httpMutationError,
      httpQueryError,
      bodiesAfter,
      stillWorksIdType: typeof stillWorks,
    };
  },

  // A plain exception reaches the client as "... Server Error" without data.
  async serverErrors() {
    const channel = uniqueName("crash");
    const client = wsClient();
    const queryError = await rejection(
      withTimeout(client.query(anyApi.errors.query_crash, {}), STEP_MS, "query errors:query_crash"),
    );
    const mutationError = await rejection(
      withTimeout(
        client.mutation(anyApi.errors.mutation_crash, { channel }),
        STEP_MS,
        "mutation errors:mutation_crash",
      ),
    );
    const httpQueryError = await rejection(httpClient().query(anyApi.errors.query_crash, {}));
    const httpMutationError = await rejection(
      httpClient().mutation(anyApi.errors.mutation_crash, { channel }),
    );
    const bodiesAfter = await withTimeout(
      client.query(anyApi.messages.bodies, { channel }),
      STEP_MS,
      "messages:bodies after crashed mutations",
    );
    return { queryError, mutationError, httpQueryError, httpMutationError, bodiesAfter };
  },

  // int64 (bigint), bytes (ArrayBuffer), NaN, ±Infinity and -0 survive args and results,
  // over the websocket and over HTTP, untyped (v.any passthrough) and typed (validators).
  async values() {
    const client = wsClient();
    const http = httpClient();
    const payload = {
      big: 5n,
      min: -(2n ** 63n),
      max: 2n ** 63n - 1n,
      bytes: bytes(0, 1, 2, 254, 255),
      empty: new ArrayBuffer(0),
      nan: NaN,
      inf: Infinity,
      ninf: -Infinity,
      negzero: -0,
      float: 1.5,
      int: 3,
      nested: { list: [7n, bytes(9), NaN, "s", true, null] },
    };
    const wsQuery = await withTimeout(client.query(anyApi.echo.args, payload), STEP_MS, "echo:args query");
    const wsMutation = await withTimeout(
      client.mutation(anyApi.echo.mutate, payload),
      STEP_MS,
      "echo:mutate mutation",
    );
    const httpQuery = await withTimeout(http.query(anyApi.echo.args, payload), STEP_MS, "http echo:args");
    const httpMutation = await withTimeout(
      http.mutation(anyApi.echo.mutate, payload),
      STEP_MS,
      "http echo:mutate",
    );
    const typedArgs = { n: 41n, b: bytes(1, 2, 3), f: NaN };
    const typed = await withTimeout(client.query(anyApi.echo.typed, typedArgs), STEP_MS, "echo:typed");
    const typedHttp = await withTimeout(http.query(anyApi.echo.typed, typedArgs), STEP_MS, "http echo:typed");
    const typedMutation = await withTimeout(
      client.mutation(anyApi.echo.typed_mutation, { n: 21n, b: bytes(104, 105) }),
      STEP_MS,
      "echo:typed_mutation",
    );
    // A number where v.int64() is required must be rejected by the validator.
    const wrongType = await rejection(
      withTimeout(client.query(anyApi.echo.typed, { n: 41, b: bytes(1), f: 1 }), STEP_MS, "echo:typed bad"),
    );
    return {
      payload: tag(payload),
      wsQuery: tag(wsQuery),
      wsMutation: tag(wsMutation),
      httpQuery: tag(httpQuery),
      httpMutation: tag(httpMutation),
      typed: tag(typed),
      typedHttp: tag(typedHttp),
      typedMutation: tag(typedMutation),
      wrongType,
    };
  },

  // The default export is reachable as "messages" (JS canonicalises it to
  // "messages:default" on the websocket; the HTTP client sends "messages").
  async defaultExport() {
    const channel = uniqueName("dflt");
    const client = wsClient();
    const http = httpClient();
    await withTimeout(
      client.mutation(anyApi.messages.send, { channel, body: "x" }),
      STEP_MS,
      "messages:send",
    );
    const q = (ref, what) => withTimeout(client.query(ref, { channel }), STEP_MS, what);
    return {
      byReference: await q(makeFunctionReference("messages"), 'makeFunctionReference("messages")'),
      byString: await q("messages", '"messages"'),
      byExplicitDefault: await q("messages:default", '"messages:default"'),
      byAnyApi: await q(anyApi.messages.default, "anyApi.messages.default"),
      httpBare: await withTimeout(http.query("messages", { channel }), STEP_MS, 'http "messages"'),
      httpExplicit: await withTimeout(
        http.query("messages:default", { channel }),
        STEP_MS,
        'http "messages:default"',
      ),
    };
  },

  // ConvexHttpClient on its own: query and mutation.
  async httpClient() {
    const channel = uniqueName("http");
    const http = httpClient();
    const before = await http.query(anyApi.messages.bodies, { channel });
    const id = await http.mutation(anyApi.messages.send, { channel, body: "via http" });
    const id2 = await http.mutation("messages:send", { channel, body: "via http 2" });
    const after = await http.query("messages:bodies", { channel });
    const listed = await http.query(anyApi.messages.list, { channel });
    const name = uniqueName("hctr");
    const counts = [];
    for (let i = 0; i < 3; i++) counts.push(await http.mutation(anyApi.counter.increment, { name }));
    const missing = await rejection(http.query("messages:does_not_exist", {}));
    return {
      before,
      after,
      idTypes: [typeof id, typeof id2],
      listedIds: listed.map((m) => m._id),
      ids: [id2, id],
      counts,
      final: await http.query(anyApi.counter.get, { name }),
      missing,
    };
  },

  // Internal functions cannot be called by clients, over either transport.
  async internalFunctions() {
    const name = uniqueName("internal");
    const client = wsClient();
    const http = httpClient();
    const wsQuery = await rejection(
      withTimeout(client.query("errors:secret", {}), STEP_MS, "errors:secret over ws"),
    );
    const wsMutation = await rejection(
      withTimeout(client.mutation("counter:internal_bump", { name }), STEP_MS, "internal_bump over ws"),
    );
    const httpQuery = await rejection(http.query("errors:secret", {}));
    const httpMutation = await rejection(http.mutation("counter:internal_bump", { name }));
    const counter = await withTimeout(client.query(anyApi.counter.get, { name }), STEP_MS, "counter:get");
    return { wsQuery, wsMutation, httpQuery, httpMutation, counter };
  },
};

const selected = process.argv.slice(3);
const names = selected.length ? selected : Object.keys(scenarios);
for (const name of names) {
  if (!(name in scenarios)) {
    process.stderr.write(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(", ")}\n`);
    process.exit(2);
  }
}

await assertReachable(url);

const results = {};
await Promise.all(
  names.map(async (name) => {
    results[name] = await capture(() => scenarios[name]());
  }),
);
await Promise.all(clients.map((c) => withTimeout(c.close(), 5_000, "client.close()").catch(() => {})));
finish({ names, scenarios: results });
