// A live subscription to a system query (`_system/cli/tableData`) with the admin key, as the
// dashboard holds them: the first result, then the result after a mutation sent over the same
// websocket (`messages:send`), and a subscription without the admin key (it must fail).
//
// usage: node system_live.mjs <deployment url> <admin key> <channel>
// prints {"first": [...bodies], "after": [...bodies], "anonymousError": "..."}

import { ConvexClient } from "convex/browser";
import { anyApi, makeFunctionReference } from "convex/server";
import {
  deploymentUrl,
  finish,
  installCrashHandlers,
  installWatchdog,
  withTimeout,
} from "./lib.mjs";

installCrashHandlers();
installWatchdog(30000, "system_live");

const url = deploymentUrl();
const adminKey = process.argv[3];
const channel = process.argv[4];

const admin = new ConvexClient(url, { unsavedChangesWarning: false });
admin.setAdminAuth(adminKey);

const tableData = makeFunctionReference("_system/cli/tableData");
const args = { table: "messages", order: "asc", paginationOpts: { numItems: 1000, cursor: null } };
const bodies = (result) =>
  result.page.filter((doc) => doc.channel === channel).map((doc) => doc.body);

const results = [];
let notify = null;
admin.onUpdate(tableData, args, (result) => {
  results.push(bodies(result));
  if (notify) notify();
});

async function nextResult(count, what) {
  while (results.length < count) {
    await withTimeout(new Promise((resolve) => (notify = resolve)), 10000, what);
  }
  return results[count - 1];
}

const first = await nextResult(1, "the first result");
await admin.mutation(anyApi.messages.send, { channel, body: "live" });
let after = await nextResult(2, "the result after the mutation");
while (!after.includes("live")) {
  after = await nextResult(results.length + 1, "a result holding the new message");
}

const anonymous = new ConvexClient(url, { unsavedChangesWarning: false });
const anonymousError = await withTimeout(
  new Promise((resolve) => {
    anonymous.onUpdate(
      tableData,
      args,
      () => resolve("no error: the query ran without the admin key"),
      (error) => resolve(String(error)),
    );
  }),
  10000,
  "the anonymous subscription's answer",
);

await admin.close();
await anonymous.close();
finish({ first, after, anonymousError });
