// The Node websocket harness of `python -m bench peers`: the same load, measured the same way,
// against Reactor (Convex's sync protocol over its websocket: Connect, ModifyQuerySet, Mutation,
// Transition, MutationResponse) and against Parse Server (LiveQuery's protocol for subscriptions:
// connect, subscribe, create events; its REST API for writes).
//
//   node harness.mjs ROLE CONFIG_JSON
//
// Like bench/worker.py: JSON lines on stdout ({"event": "ready" | "done" | "result" | "error"}),
// one-word commands on stdin ("go", "stop", "quit"; end of input counts as "quit").
//
// Roles (config.target is "reactor" or "parse"):
// - subscribers: config.count sessions (numbered from config.start), each subscribed to
//   "mine" (the tasks of owner o<i>) or "board" (every task). Latency of a push = receipt time
//   minus the send time the writer put in the newest task's title (both CLOCK_MONOTONIC, one
//   machine), so the mutation's own path is inside it, for both servers alike.
// - writer: config.count writes config.interval_s apart, one at a time, each title = send time.
// - bank: config.clients concurrent clients doing transfers for config.duration_s.
//
// Parse has no multi-object read-modify-write transaction: a Parse transfer is one /batch
// request with transaction: true holding two Increment operations (debit, credit), in account
// order so that two opposite transfers cannot deadlock. Reactor runs bank:transfer, which reads
// both balances and writes both documents in one serializable mutation.

import http from 'node:http';
import { randomUUID } from 'node:crypto';
import readline from 'node:readline';

export const ROLES = ['subscribers', 'writer', 'bank'];
export const TARGETS = ['reactor', 'parse'];

const now = () => process.hrtime.bigint();

function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

export function validate(role, config) {
  if (!ROLES.includes(role)) {
    throw new Error(`unknown role ${JSON.stringify(role)}; expected one of ${ROLES.join(', ')}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new Error('CONFIG_JSON must be a JSON object');
  }
  if (!TARGETS.includes(config.target)) {
    throw new Error(
      `config.target must be one of ${TARGETS.join(', ')}, got ${JSON.stringify(config.target)}`,
    );
  }
  const need = {
    subscribers: ['url', 'count', 'query'],
    writer: config.target === 'reactor' ? ['url', 'count', 'interval_s'] : ['http', 'count', 'interval_s'],
    bank: config.target === 'reactor' ? ['url', 'clients', 'duration_s', 'accounts'] : ['http', 'clients', 'duration_s', 'accounts'],
  }[role];
  for (const key of need) {
    if (config[key] === undefined) {
      throw new Error(`config.${key} is required for role ${role} on ${config.target}`);
    }
  }
  if (role === 'subscribers' && !['mine', 'board'].includes(config.query)) {
    throw new Error(`config.query must be "mine" or "board", got ${JSON.stringify(config.query)}`);
  }
  return config;
}

// -- stdin commands ----------------------------------------------------------------------------

class Commands {
  constructor() {
    this.waiters = [];
    this.queue = [];
    const rl = readline.createInterface({ input: process.stdin });
    rl.on('line', (line) => this.push(line.trim()));
    rl.on('close', () => this.push('quit'));
  }
  push(word) {
    this.queue.push(word);
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
  async waitFor(...words) {
    for (;;) {
      while (this.queue.length) {
        const word = this.queue.shift();
        if (word === 'quit' || words.includes(word)) return word;
      }
      await new Promise((resolve) => this.waiters.push(resolve));
    }
  }
}

// -- websocket helpers -------------------------------------------------------------------------

let WebSocket = null; // loaded on first use: validating a config needs no node_modules

async function openSocket(url, timeoutMs = 30000) {
  WebSocket ??= (await import('ws')).default;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`connect to ${url}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.once('open', () => {
      clearTimeout(timer);
      resolve(ws);
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Resolve with the first parsed message for which pick(message) is true. */
function nextMessage(ws, pick, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.off('message', onMessage);
      reject(new Error(`no expected message within ${timeoutMs} ms`));
    }, timeoutMs);
    function onMessage(data) {
      const message = JSON.parse(data.toString());
      if (pick(message)) {
        clearTimeout(timer);
        ws.off('message', onMessage);
        resolve(message);
      }
    }
    ws.on('message', onMessage);
  });
}

function reactorConnect(ws) {
  ws.send(
    JSON.stringify({
      type: 'Connect',
      sessionId: randomUUID(),
      connectionCount: 0,
      lastCloseReason: 'InitialConnect',
      clientTs: 0,
    }),
  );
}

/** The send time (ns, CLOCK_MONOTONIC) a writer put in a title, or null. */
export function sentAt(title) {
  if (typeof title !== 'string' || !/^\d+$/.test(title)) return null;
  return BigInt(title);
}

// -- subscribers -------------------------------------------------------------------------------

async function subscribers(config, commands) {
  const start = Number(config.start ?? 0);
  const count = Number(config.count);
  const expect = Number(config.expect_updates ?? 0);
  const concurrency = Number(config.concurrency ?? 32);
  const latencies = [];
  const errors = [];
  const sockets = [];
  const counts = new Array(count).fill(0);
  let connected = 0;
  let failed = 0;
  let complete = 0;
  let closedEarly = 0;
  let stopping = false;
  let doneSent = false;

  const onPush = (index, title) => {
    const sent = sentAt(title);
    if (sent === null) return;
    latencies.push(Number(now() - sent));
    counts[index] += 1;
    if (expect && counts[index] === expect) {
      complete += 1;
      if (complete >= connected && !doneSent) {
        doneSent = true;
        emit('done', { complete });
      }
    }
  };

  const one = async (index) => {
    const i = start + index;
    const ws = await openSocket(config.url);
    sockets.push(ws);
    ws.on('close', () => {
      if (!stopping) closedEarly += 1;
    });
    ws.on('error', (err) => {
      if (errors.length < 5) errors.push(`socket: ${err.message}`);
    });
    if (config.target === 'reactor') {
      reactorConnect(ws);
      ws.send(
        JSON.stringify({
          type: 'ModifyQuerySet',
          baseVersion: 0,
          newVersion: 1,
          modifications: [
            {
              type: 'Add',
              queryId: 0,
              udfPath: config.query === 'mine' ? 'tasks:mine' : 'tasks:board',
              args: [config.query === 'mine' ? { owner: `o${i}` } : {}],
            },
          ],
        }),
      );
      const first = await nextMessage(
        ws,
        (m) => m.type === 'Transition' && m.modifications.length > 0,
      );
      if (first.modifications[0].type !== 'QueryUpdated') {
        throw new Error(`initial result: ${JSON.stringify(first.modifications[0])}`);
      }
      ws.on('message', (data) => {
        const m = JSON.parse(data.toString());
        if (m.type !== 'Transition') return;
        for (const mod of m.modifications) {
          if (mod.type === 'QueryUpdated' && Array.isArray(mod.value) && mod.value.length) {
            onPush(index, mod.value[0].title); // newest first (order desc)
          }
        }
      });
    } else {
      ws.send(JSON.stringify({ op: 'connect', applicationId: config.app_id ?? 'bench' }));
      await nextMessage(ws, (m) => m.op === 'connected' || m.op === 'error').then((m) => {
        if (m.op === 'error') throw new Error(`LiveQuery connect: ${JSON.stringify(m)}`);
      });
      ws.send(
        JSON.stringify({
          op: 'subscribe',
          requestId: 1,
          query: { className: 'Task', where: config.query === 'mine' ? { owner: `o${i}` } : {} },
        }),
      );
      const m = await nextMessage(ws, (x) => x.op === 'subscribed' || x.op === 'error');
      if (m.op === 'error') throw new Error(`LiveQuery subscribe: ${JSON.stringify(m)}`);
      ws.on('message', (data) => {
        const event = JSON.parse(data.toString());
        if (event.op === 'create' && event.object) onPush(index, event.object.title);
      });
    }
  };

  const t0 = Date.now();
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const index = next++;
      try {
        await one(index);
        connected += 1;
      } catch (err) {
        failed += 1;
        if (errors.length < 5) errors.push(`${err.name}: ${err.message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  emit('ready', { connected, failed, connect_s: (Date.now() - t0) / 1000, errors });
  await commands.waitFor('stop');
  stopping = true;
  emit('result', {
    connected,
    failed,
    latencies_ns: latencies,
    update_counts: counts,
    closed_early: closedEarly,
    errors,
    rss: process.memoryUsage().rss,
  });
  for (const ws of sockets) ws.terminate();
}

// -- HTTP (Parse REST) ---------------------------------------------------------------------------

function restClient(base, appId, sockets) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
  const url = new URL(base);
  return (method, path, body) =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = http.request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          method,
          path: url.pathname.replace(/\/$/, '') + path,
          headers: {
            'X-Parse-Application-Id': appId,
            'Content-Type': 'application/json',
            ...(payload ? { 'Content-Length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let data = null;
            try {
              data = JSON.parse(text);
            } catch {
              data = text;
            }
            resolve({ status: res.statusCode, data });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      if (payload) req.write(payload);
      req.end();
    });
}

// -- writer ------------------------------------------------------------------------------------

async function writer(config, commands) {
  const count = Number(config.count);
  const intervalMs = Number(config.interval_s) * 1000;
  const owners = Number(config.owners ?? 0);
  const prefix = config.owner_prefix ?? 'w';
  let seed = Number(config.seed ?? 1);
  const random = () => {
    // xorshift32: the same owner sequence for both targets
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  let write;
  let ws = null;
  if (config.target === 'reactor') {
    ws = await openSocket(config.url);
    reactorConnect(ws);
    let requestId = 0;
    write = async (owner, title) => {
      const id = requestId++;
      const waiting = nextMessage(ws, (m) => m.type === 'MutationResponse' && m.requestId === id, 60000);
      ws.send(
        JSON.stringify({ type: 'Mutation', requestId: id, udfPath: 'tasks:add', args: [{ owner, title }] }),
      );
      const m = await waiting;
      return m.success ? null : String(m.result);
    };
  } else {
    const rest = restClient(config.http, config.app_id ?? 'bench', 1);
    write = async (owner, title) => {
      const r = await rest('POST', '/classes/Task', { owner, title });
      return r.status === 201 ? null : `HTTP ${r.status}: ${JSON.stringify(r.data).slice(0, 300)}`;
    };
  }
  emit('ready');
  if ((await commands.waitFor('go')) === 'quit') return;
  const rtts = [];
  const errors = [];
  let failures = 0;
  const t0 = Date.now();
  for (let k = 0; k < count; k++) {
    const delay = t0 + k * intervalMs - Date.now();
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const owner = prefix + String(owners ? Math.floor(random() * owners) : k);
    const sent = now();
    let error;
    try {
      error = await write(owner, String(sent));
    } catch (err) {
      error = `${err.name}: ${err.message}`;
    }
    if (error) {
      failures += 1;
      if (errors.length < 5) errors.push(error);
    } else {
      rtts.push(Number(now() - sent));
    }
  }
  emit('result', { writes: count - failures, rtt_ns: rtts, failures, errors, seconds: (Date.now() - t0) / 1000 });
  ws?.terminate();
}

// -- bank --------------------------------------------------------------------------------------

function isOcc(message) {
  return /changed while this mutation was being run|Optimistic|could not serialize|deadlock/i.test(
    message,
  );
}

async function bank(config, commands) {
  const clients = Number(config.clients);
  const duration = Number(config.duration_s) * 1000;
  const accounts = Number(config.accounts);
  const hot = Number(config.hot_fraction ?? 0);
  let seed = (Number(config.seed ?? 0) * 2654435761 + 1) >>> 0 || 1;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const pair = () => {
    if (random() < hot) return random() < 0.5 ? [0, 1] : [1, 0];
    const a = Math.floor(random() * accounts);
    let b = Math.floor(random() * (accounts - 1));
    if (b >= a) b += 1;
    return [a, b];
  };
  const stats = { ok: 0, occ: 0, other: 0, hot_ok: 0, hot_occ: 0, errors: [], latencies_ns: [] };
  const record = (error, started, src, dst) => {
    const isHot = src <= 1 && dst <= 1;
    if (!error) {
      stats.ok += 1;
      if (isHot) stats.hot_ok += 1;
      stats.latencies_ns.push(Number(now() - started));
    } else if (isOcc(error)) {
      stats.occ += 1;
      if (isHot) stats.hot_occ += 1;
    } else {
      stats.other += 1;
      if (stats.errors.length < 5) stats.errors.push(error.slice(0, 300));
    }
  };
  let transfer;
  const sockets = [];
  if (config.target === 'reactor') {
    for (let c = 0; c < clients; c++) {
      const ws = await openSocket(config.url);
      reactorConnect(ws);
      const pending = new Map();
      ws.on('message', (data) => {
        const m = JSON.parse(data.toString());
        if (m.type === 'MutationResponse') {
          pending.get(m.requestId)?.(m);
          pending.delete(m.requestId);
        }
      });
      sockets.push({ ws, pending, next: 0 });
    }
    transfer = async (c, src, dst, amount) => {
      const s = sockets[c];
      const id = s.next++;
      const response = new Promise((resolve) => s.pending.set(id, resolve));
      s.ws.send(
        JSON.stringify({
          type: 'Mutation',
          requestId: id,
          udfPath: 'bank:transfer',
          args: [{ src, dst, amount }],
        }),
      );
      const m = await response;
      return m.success ? null : String(m.result);
    };
  } else {
    const rest = restClient(config.http, config.app_id ?? 'bench', clients);
    await Promise.all(Array.from({ length: clients }, () => rest('GET', '/health')));
    transfer = async (c, src, dst, amount) => {
      // Lock order: the lower account first, whichever way the money goes.
      const ops = [
        [src, -amount],
        [dst, amount],
      ].sort((x, y) => x[0] - y[0]);
      const r = await rest('POST', '/batch', {
        transaction: true,
        requests: ops.map(([n, delta]) => ({
          method: 'PUT',
          path: `/parse/classes/Account/a${n}`,
          body: { balance: { __op: 'Increment', amount: delta } },
        })),
      });
      if (r.status === 200 && Array.isArray(r.data) && r.data.every((x) => x.success)) return null;
      return `HTTP ${r.status}: ${JSON.stringify(r.data).slice(0, 300)}`;
    };
  }
  emit('ready');
  if ((await commands.waitFor('go')) === 'quit') return;
  const t0 = Date.now();
  const stopAt = t0 + duration;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      while (Date.now() < stopAt) {
        const [src, dst] = pair();
        const amount = 1 + Math.floor(random() * 100);
        const started = now();
        let error;
        try {
          error = await transfer(c, src, dst, amount);
        } catch (err) {
          error = `${err.name}: ${err.message}`;
        }
        record(error, started, src, dst);
      }
    }),
  );
  const seconds = (Date.now() - t0) / 1000;
  emit('result', { ...stats, seconds });
  for (const s of sockets) s.ws.terminate();
}

// -- entry point -------------------------------------------------------------------------------

async function main() {
  const [role, raw] = process.argv.slice(2);
  let config;
  try {
    config = validate(role, JSON.parse(raw ?? 'null'));
  } catch (err) {
    process.stderr.write(`harness.mjs: ${err.message}\nusage: node harness.mjs ROLE CONFIG_JSON\n`);
    process.exit(2);
  }
  const commands = new Commands();
  try {
    if (role === 'subscribers') await subscribers(config, commands);
    else if (role === 'writer') await writer(config, commands);
    else await bank(config, commands);
  } catch (err) {
    emit('error', { error: `${err.name}: ${err.message}` });
    await flushed();
    process.exit(1);
  }
  await flushed(); // a result line can be megabytes: exit only once the pipe has it all
  process.exit(0);
}

function flushed() {
  return new Promise((resolve) => process.stdout.write('', resolve));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
