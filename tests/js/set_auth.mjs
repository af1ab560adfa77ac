// The official ConvexClient's setAuth flow against a Reactor server serving tests/e2e/auth_app.
//
//   node set_auth.mjs <deployment url> '{"first": jwt, "refreshed": jwt, "invalid": jwt}'
//
// Scenario "good": fetchToken returns `first` for forceRefreshToken:false and `refreshed` for
// forceRefreshToken:true. The client must confirm the first token (onAuthChange(true)), then
// immediately refetch with force=true and send the refresh Authenticate (baseVersion 1); the
// subscribed whoami:me query shows the refreshed claims. Then clearAuth() logs out.
//
// Scenario "bad": fetchToken always returns `invalid` (bad signature). The server answers
// AuthError; the client refetches with force=true, gets the same token, gives up, reports
// onAuthChange(false) and carries on unauthenticated — without crashing.
//
// Prints {"good": {...}, "bad": {...}} with what was observed; pytest asserts on it.

import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";

import {
  deploymentUrl,
  finish,
  installCrashHandlers,
  installWatchdog,
  sleep,
  waitFor,
  withTimeout,
} from "./lib.mjs";

const STEP_MS = 15_000;
// SET_AUTH_VERBOSE=1 makes the client log its auth state machine (for debugging).
const clientOptions = { verbose: process.env.SET_AUTH_VERBOSE === "1" };
const url = deploymentUrl();
const tokens = JSON.parse(process.argv[3] ?? "{}");
for (const name of ["first", "refreshed", "invalid"]) {
  if (typeof tokens[name] !== "string") {
    process.stderr.write(`missing token "${name}" in argv[3]\n`);
    process.exit(2);
  }
}
installCrashHandlers();
installWatchdog(50_000, "set_auth.mjs");

function subscribe(client) {
  const sub = { values: [], errors: [] };
  sub.unsubscribe = client.onUpdate(
    anyApi.whoami.me,
    {},
    (value) => sub.values.push(value),
    (err) => sub.errors.push(String(err)),
  );
  return sub;
}

async function good() {
  const client = new ConvexClient(url, clientOptions);
  const fetchCalls = [];
  const authChanges = [];
  const sub = subscribe(client);
  client.setAuth(
    async ({ forceRefreshToken }) => {
      fetchCalls.push(forceRefreshToken);
      return forceRefreshToken ? tokens.refreshed : tokens.first;
    },
    (isAuthenticated) => authChanges.push(isAuthenticated),
  );
  await waitFor(() => authChanges.length >= 1, STEP_MS, "onAuthChange after setAuth");
  await waitFor(
    () => sub.values.some((v) => v && v.email === "refreshed@js.test"),
    STEP_MS,
    "the query to show the refreshed token's identity",
  );
  const mutationResult = await withTimeout(
    client.mutation(anyApi.whoami.me_mutation, {}),
    STEP_MS,
    "mutation as the refreshed user",
  );
  // Let any further (unexpected) auth churn show up before reporting.
  await sleep(300);
  const valuesBeforeClear = [...sub.values];
  client.client.clearAuth();
  await waitFor(
    () => sub.values.length > valuesBeforeClear.length && sub.values.at(-1) === null,
    STEP_MS,
    "the query to re-run anonymously after clearAuth",
  );
  const result = {
    authChanges,
    fetchCalls,
    values: valuesBeforeClear,
    errors: sub.errors,
    mutationResult,
    afterClearAuth: sub.values.at(-1),
  };
  await client.close();
  return result;
}

async function bad() {
  const client = new ConvexClient(url, clientOptions);
  const fetchCalls = [];
  const authChanges = [];
  const sub = subscribe(client);
  client.setAuth(
    async ({ forceRefreshToken }) => {
      fetchCalls.push(forceRefreshToken);
      return tokens.invalid;
    },
    (isAuthenticated) => authChanges.push(isAuthenticated),
  );
  await waitFor(() => authChanges.length >= 1, STEP_MS, "onAuthChange(false) for a bad token");
  await waitFor(() => sub.values.length >= 1, STEP_MS, "the query result, unauthenticated");
  const mutationResult = await withTimeout(
    client.mutation(anyApi.whoami.me_mutation, {}),
    STEP_MS,
    "mutation after giving up on auth",
  );
  await sleep(300);
  const result = {
    authChanges,
    fetchCalls,
    queryValue: sub.values.at(-1),
    errors: sub.errors,
    mutationResult,
  };
  await client.close();
  return result;
}

const report = {};
report.good = await good();
report.bad = await bad();
finish(report);
