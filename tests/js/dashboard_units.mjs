// Unit checks of the dashboard's pure modules (no browser): the editor's value encoding,
// validators written as types, and the Prometheus text parser and quantiles of the Health page.
//
//   node dashboard_units.mjs
//
// Prints {"checks": {<name>: {ok, result|error}}}; tests/e2e/test_dashboard.py asserts on them.

import { capture, finish } from "./lib.mjs";

const root = "../../reactor/server/dashboard_static";
const values = await import(`${root}/values.js`);
const { describe } = await import(`${root}/validators.js`);
const health = await import(`${root}/pages/health.js`);

const checks = {};

checks.round_trip = await capture(() => {
  const bytes = new Uint8Array([0, 1, 254, 255]).buffer;
  const value = { n: 1.5, big: 12345678901234567890n, raw: bytes, list: [NaN, -Infinity, "s", null], nested: { ok: true } };
  const text = values.toJsonText(value);
  const back = values.parseJsonText(text, "doc");
  return {
    text: JSON.parse(text),
    bigint: typeof back.big === "bigint" && back.big === 12345678901234567890n,
    bytes: [...new Uint8Array(back.raw)],
    nan: Number.isNaN(back.list[0]),
    negInf: back.list[1] === -Infinity,
  };
});

checks.convex_json = await capture(() => {
  const value = { n: -2n, big: 2n ** 62n, raw: new Uint8Array([1, 2]).buffer, inf: Infinity, neg0: -0, x: 1.5 };
  const json = values.toConvexJson(value);
  const back = values.fromConvexJson(JSON.parse(JSON.stringify(json)));
  return {
    json,
    back: values.toEditable(back),
    negZero: Object.is(back.neg0, -0),
  };
});

checks.bad_input = await capture(() => {
  const errors = [];
  for (const text of ['{"a": {"$int64": "12x"}}', '{"a": {"$bytes": "%%%"}}', '{"a": {"$float": "1"}}', "{oops"]) {
    try {
      values.parseJsonText(text, "The document");
      errors.push(null);
    } catch (err) {
      errors.push(err.message);
    }
  }
  return errors;
});

checks.cells = await capture(() => [
  values.cellText("text"),
  values.cellText(7n),
  values.cellText(new Uint8Array(3).buffer),
  values.cellText({ a: [1, 2] }),
  values.looksLikeId("j57a33anytbf5be4j3rex55ss8kgy97"),
  values.looksLikeId("hello"),
]);

checks.validators = await capture(() => [
  describe(null),
  describe({ type: "object", value: { title: { fieldType: { type: "string" }, optional: false }, n: { fieldType: { type: "float64" }, optional: true } } }),
  describe({ type: "array", value: { type: "id", tableName: "tasks" } }),
  describe({ type: "union", value: [{ type: "literal", value: "a" }, { type: "int64" }] }),
]);

checks.metrics = await capture(() => {
  const text = [
    "# HELP reactor_function_duration_seconds x",
    'reactor_function_duration_seconds_bucket{kind="query",le="0.001",path="a:b"} 50.0',
    'reactor_function_duration_seconds_bucket{kind="query",le="0.01",path="a:b"} 99.0',
    'reactor_function_duration_seconds_bucket{kind="query",le="+Inf",path="a:b"} 100.0',
    'reactor_live_sessions 3.0',
  ].join("\n");
  const parsed = health.parse(text);
  const buckets = parsed
    .filter((m) => m.name.endsWith("_bucket"))
    .map((m) => [m.labels.le === "+Inf" ? Infinity : Number(m.labels.le), m.value]);
  return {
    count: parsed.length,
    labels: parsed[0].labels,
    p50: health.quantile(buckets, 0.5),
    p99: health.quantile(buckets, 0.99),
    empty: health.quantile([], 0.5),
  };
});

finish({ checks });
