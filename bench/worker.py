"""Load processes of the benchmark: ``python -m bench.worker ROLE CONFIG_JSON``.

Each role speaks JSON lines on stdout (``{"event": "ready" | "done" | "result" | "error", ...}``)
and takes one-word commands on stdin (``go``, ``stop``, ``quit``). They use raw ``websockets``
asyncio clients (on uvloop when installed), never the project's own client, so the figures
measure the server and not our SDK.

Roles:
- ``subscribers``: N websocket sessions each subscribed to one query; records, for every
  Transition carrying a modification after the initial one, receipt time minus endVersion.ts.
- ``writer``: one websocket session sending mutations at a fixed pace.
- ``bank``: C concurrent clients doing transfers (websocket mutations or HTTP keep-alive).
- ``echo_server`` / ``echo_client``: the raw websocket round-trip limit.
- ``broadcast_server``: the raw fan-out limit: a bare ``websockets`` server on uvloop (the
  loop ``reactor serve`` runs on) answering each ``ModifyQuerySet`` with a Transition
  and then, on ``go``, pushing ``count`` Transitions ``interval_s`` apart to every connection:
  each one encoded and framed once, the same bytes written to every transport.
- ``sqlite``: the raw SQLite two-row transaction limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import sqlite3
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect

_decode = msgspec.json.Decoder().decode


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def ts_of(version: dict[str, Any]) -> int:
    import base64
    import struct

    return int(struct.unpack("<Q", base64.b64decode(version["ts"]))[0])


class Commands:
    """Lines from stdin as an asyncio queue (read by a thread; EOF counts as ``quit``)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def pump() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(self.queue.put_nowait, line.strip())
            loop.call_soon_threadsafe(self.queue.put_nowait, "quit")

        threading.Thread(target=pump, daemon=True).start()

    async def wait_for(self, *words: str) -> str:
        while True:
            word = await self.queue.get()
            if word in words or word == "quit":
                return word


def connect_message() -> str:
    return json.dumps(
        {
            "type": "Connect",
            "sessionId": str(uuid.uuid4()),
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
            "clientTs": 0,
        }
    )


def ws_connect(url: str, config: dict[str, Any]) -> connect:
    return connect(
        url,
        compression="deflate" if config.get("deflate") else None,
        proxy=None,
        open_timeout=config.get("open_timeout_s", 30),
        ping_interval=None,  # the server pings; client pings would only add load
        close_timeout=2,
        max_queue=config.get("max_queue", 16),
        max_size=64 * 1024 * 1024,
        write_limit=config.get("write_limit", 32768),
    )


def format_args(template: dict[str, Any], i: int) -> dict[str, Any]:
    return {k: v.format(i=i) if isinstance(v, str) else v for k, v in template.items()}


# -- subscribers -------------------------------------------------------------------------------


class Subscribers:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.latencies: list[int] = []
        self.server_part: list[int] = []  # serverTs - endVersion.ts: commit to send, in the server
        self.update_counts: list[int] = []
        self.empty_transitions = 0
        self.other_messages = 0
        self.connected = 0
        self.failed = 0
        self.closed_early = 0
        self.errors: list[str] = []
        self.conns: list[ClientConnection] = []
        self.done = asyncio.Event()
        self.expect = int(config.get("expect_updates", 0))
        self.complete = 0  # connections that received ``expect`` updates
        self.stopping = False

    async def one(self, i: int, sem: asyncio.Semaphore, ready: asyncio.Event) -> None:
        config = self.config
        index = len(self.update_counts)
        self.update_counts.append(0)
        try:
            async with sem:
                ws = await ws_connect(config["url"], config)
                self.conns.append(ws)
                await ws.send(connect_message())
                await ws.send(
                    json.dumps(
                        {
                            "type": "ModifyQuerySet",
                            "baseVersion": 0,
                            "newVersion": 1,
                            "modifications": [
                                {
                                    "type": "Add",
                                    "queryId": 0,
                                    "udfPath": config["udf_path"],
                                    "args": [format_args(config["args"], i)],
                                }
                            ],
                        }
                    )
                )
                async with asyncio.timeout(config.get("initial_timeout_s", 30)):
                    while True:
                        message = _decode(await ws.recv())
                        if message.get("type") == "Transition" and message["modifications"]:
                            kind = message["modifications"][0]["type"]
                            if kind != "QueryUpdated":
                                raise RuntimeError(f"initial result: {message['modifications'][0]}")
                            break
        except Exception as exc:
            self.failed += 1
            if len(self.errors) < 5:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        self.connected += 1
        if self.connected + self.failed >= config["count"]:
            ready.set()
        latencies = self.latencies
        counts = self.update_counts
        try:
            async for raw in ws:
                now = time.time_ns()
                message = _decode(raw)
                if message.get("type") != "Transition":
                    self.other_messages += 1
                    continue
                if not message["modifications"]:
                    self.empty_transitions += 1
                    continue
                commit_ts = ts_of(message["endVersion"])
                latencies.append(now - commit_ts)
                server_ts = message.get("serverTs")
                if isinstance(server_ts, int):
                    self.server_part.append(server_ts - commit_ts)
                counts[index] += 1
                if self.expect and counts[index] == self.expect:
                    self.complete += 1
                    if self.complete >= self.connected:
                        self.done.set()
        except Exception as exc:
            if len(self.errors) < 5:
                self.errors.append(f"receive: {type(exc).__name__}: {exc}")
        if not self.stopping:
            self.closed_early += 1

    async def run(self, commands: Commands) -> None:
        config = self.config
        start, count = int(config["start"]), int(config["count"])
        sem = asyncio.Semaphore(int(config.get("concurrency", 32)))
        ready = asyncio.Event()
        t0 = time.monotonic()
        tasks = [
            asyncio.ensure_future(self.one(i, sem, ready)) for i in range(start, start + count)
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), config.get("connect_deadline_s", 60))
        emit(
            "ready",
            connected=self.connected,
            failed=self.failed,
            connect_s=time.monotonic() - t0,
            errors=self.errors,
            rss=rss_self(),
        )

        async def watch_done() -> None:
            await self.done.wait()
            emit("done", complete=self.complete)

        watcher = asyncio.ensure_future(watch_done()) if self.expect else None
        await commands.wait_for("stop")
        self.stopping = True
        if watcher is not None:
            watcher.cancel()
        emit(
            "result",
            connected=self.connected,
            failed=self.failed,
            latencies_ns=self.latencies,
            server_part_ns=self.server_part,
            update_counts=self.update_counts,
            empty_transitions=self.empty_transitions,
            other_messages=self.other_messages,
            closed_early=self.closed_early,
            errors=self.errors,
            rss=rss_self(),
        )
        # Close politely, but do not let thousands of close handshakes hold up the run.
        for task in tasks:
            task.cancel()
        closers = [asyncio.ensure_future(ws.close()) for ws in self.conns]
        if closers:
            await asyncio.wait(closers, timeout=5)


def rss_self() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- writer ------------------------------------------------------------------------------------


async def request(
    ws: ClientConnection, request_id: int, path: str, args: dict[str, Any]
) -> dict[str, Any]:
    """Send a Mutation and return its MutationResponse (other messages are skipped)."""
    await ws.send(
        json.dumps({"type": "Mutation", "requestId": request_id, "udfPath": path, "args": [args]})
    )
    while True:
        message: dict[str, Any] = _decode(await ws.recv())
        if message.get("type") == "MutationResponse" and message.get("requestId") == request_id:
            return message


async def writer(config: dict[str, Any], commands: Commands) -> None:
    rng = random.Random(config.get("seed", 1))
    async with ws_connect(config["url"], config) as ws:
        await ws.send(connect_message())
        emit("ready")
        if await commands.wait_for("go") == "quit":
            return
        interval = float(config["interval_s"])
        commit_ts: list[int] = []
        rtts: list[int] = []
        errors: list[str] = []
        t0 = time.monotonic()
        for k in range(int(config["count"])):
            delay = t0 + k * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            owners = int(config["owners"])
            owner = config["owner_prefix"] + str(rng.randrange(owners) if owners else k)
            sent = time.time_ns()
            response = await request(ws, k, config["udf_path"], {"owner": owner, "title": f"t{k}"})
            rtts.append(time.time_ns() - sent)
            if response.get("success"):
                commit_ts.append(ts_of(response))
            elif len(errors) < 5:
                errors.append(str(response.get("result")))
        emit(
            "result",
            commit_ts=commit_ts,
            rtt_ns=rtts,
            failures=len(errors),
            errors=errors,
            seconds=time.monotonic() - t0,
        )


# -- bank --------------------------------------------------------------------------------------


def is_occ(message: str) -> bool:
    return "changed while this mutation was being run" in message or "Optimistic" in message


class Bank:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.rng = random.Random(config.get("seed", 0))
        self.ok = 0
        self.occ = 0
        self.other = 0
        self.errors: list[str] = []
        self.latencies: list[int] = []
        self.hot_ok = 0
        self.hot_occ = 0
        self.stop_at = 0.0

    def pair(self) -> tuple[float, float]:
        n = int(self.config["accounts"])
        rng = self.rng
        if rng.random() < float(self.config.get("hot_fraction", 0.0)):
            return (0.0, 1.0) if rng.random() < 0.5 else (1.0, 0.0)
        a, b = rng.sample(range(n), 2)
        return float(a), float(b)

    def record(self, ok: bool, message: str, started: int, src: float, dst: float) -> None:
        if src <= 1.0 and dst <= 1.0:
            if ok:
                self.hot_ok += 1
            elif is_occ(message):
                self.hot_occ += 1
        if ok:
            self.ok += 1
            self.latencies.append(time.time_ns() - started)
        elif is_occ(message):
            self.occ += 1
        else:
            self.other += 1
            if len(self.errors) < 5:
                self.errors.append(message[:300])

    async def ws_client(self, ws: ClientConnection, client: int) -> None:
        request_id = 0
        while time.monotonic() < self.stop_at:
            src, dst = self.pair()
            amount = float(self.rng.randint(1, 100))
            started = time.time_ns()
            response = await request(
                ws, request_id, "bank:transfer", {"src": src, "dst": dst, "amount": amount}
            )
            request_id += 1
            self.record(
                bool(response.get("success")), str(response.get("result")), started, src, dst
            )

    async def http_client(self, client: Any) -> None:
        url = self.config["http"] + "/api/mutation"
        while time.monotonic() < self.stop_at:
            src, dst = self.pair()
            amount = float(self.rng.randint(1, 100))
            started = time.time_ns()
            body = {
                "path": "bank:transfer",
                "args": [{"src": src, "dst": dst, "amount": amount}],
                "format": "convex_encoded_json",
            }
            try:
                response = await client.post(url, json=body)
                data = response.json()
            except Exception as exc:
                self.record(False, f"{type(exc).__name__}: {exc}", started, src, dst)
                continue
            ok = response.status_code == 200 and data.get("status") == "success"
            message = str(data.get("errorMessage") or data.get("message") or data)
            if response.status_code == 503 and not is_occ(message):
                message = "Optimistic (HTTP 503) " + message
            self.record(ok, message, started, src, dst)

    async def run(self, commands: Commands) -> None:
        config = self.config
        clients = int(config["clients"])
        duration = float(config["duration_s"])
        if config.get("transport", "ws") == "http":
            import httpx

            limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
            async with httpx.AsyncClient(limits=limits, timeout=60) as client:
                # Warm the keep-alive pool before the clock starts.
                await asyncio.gather(*(client.get(config["http"] + "/") for _ in range(clients)))
                emit("ready")
                if await commands.wait_for("go") == "quit":
                    return
                t0 = time.monotonic()
                self.stop_at = t0 + duration
                await asyncio.gather(*(self.http_client(client) for _ in range(clients)))
        else:
            conns = []
            for _ in range(clients):
                ws = await ws_connect(config["url"], config)
                await ws.send(connect_message())
                conns.append(ws)
            emit("ready")
            if await commands.wait_for("go") == "quit":
                return
            t0 = time.monotonic()
            self.stop_at = t0 + duration
            await asyncio.gather(*(self.ws_client(ws, i) for i, ws in enumerate(conns)))
            for ws in conns:
                await ws.close()
        elapsed = time.monotonic() - t0
        emit(
            "result",
            ok=self.ok,
            occ=self.occ,
            other=self.other,
            errors=self.errors,
            hot_ok=self.hot_ok,
            hot_occ=self.hot_occ,
            seconds=elapsed,
            latencies_ns=self.latencies,
        )


# -- limits ------------------------------------------------------------------------------------


async def echo_server(config: dict[str, Any], commands: Commands) -> None:
    from websockets.asyncio.server import serve

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", int(config["port"]), compression=None, ping_interval=None):
        emit("ready")
        await commands.wait_for("stop")


def _ts_b64(ts: int) -> str:
    import base64
    import struct

    return base64.b64encode(struct.pack("<Q", ts)).decode()


def _board(k: int) -> list[dict[str, Any]]:
    """Ten documents shaped like ``tasks:board``'s (the raw pushes carry as many bytes)."""
    return [
        {
            "_id": f"{k:06d}{i:02d}abcdefghjkmnpqrstvwxyz0123",
            "_creationTime": 1.7e12 + k * 10 + i,
            "owner": f"w{k}",
            "title": f"t{k}",
        }
        for i in range(10)
    ]


def _raw_transition(k: int, ts: int) -> bytes:
    version = {"querySet": 1, "identity": 0, "ts": _ts_b64(ts)}
    return json.dumps(
        {
            "type": "Transition",
            "startVersion": version if k else {"querySet": 0, "identity": 0, "ts": _ts_b64(0)},
            "endVersion": version,
            "modifications": [
                {
                    "type": "QueryUpdated",
                    "queryId": 0,
                    "value": _board(k),
                    "logLines": [],
                    "journal": None,
                }
            ],
            "clientClockSkew": 0,
            "serverTs": ts,
        },
        separators=(",", ":"),
    ).encode()


def _text_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


async def broadcast_server(config: dict[str, Any], commands: Commands) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    subscribed: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        async for raw in ws:
            if _decode(raw).get("type") == "ModifyQuerySet":
                await ws.send(_raw_transition(0, time.time_ns()).decode())
                subscribed.add(ws)
        subscribed.discard(ws)

    async with serve(
        handler, "127.0.0.1", int(config["port"]), compression=None, ping_interval=None
    ):
        emit("ready")
        if await commands.wait_for("go") == "quit":
            return
        interval = float(config["interval_s"])
        t0 = time.monotonic()
        sent = 0
        for k in range(1, int(config["count"]) + 1):
            delay = t0 + k * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            frame = _text_frame(_raw_transition(k, time.time_ns()))
            for ws in subscribed:
                ws.transport.write(frame)
            sent += len(subscribed)
        emit("result", pushed=sent)
        await commands.wait_for("stop")


async def echo_client(config: dict[str, Any], commands: Commands) -> None:
    payload = json.dumps({"type": "Transition", "pad": "x" * int(config.get("payload", 200))})
    rtts: list[int] = []
    async with ws_connect(config["url"], config) as ws:
        for _ in range(50):  # warm up
            await ws.send(payload)
            await ws.recv()
        for _ in range(int(config["count"])):
            started = time.time_ns()
            await ws.send(payload)
            await ws.recv()
            rtts.append(time.time_ns() - started)
    emit("result", rtt_ns=rtts)


async def sqlite_limit(config: dict[str, Any], commands: Commands) -> None:
    path = Path(config["path"])
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE accounts (n INTEGER PRIMARY KEY, balance REAL NOT NULL)")
    db.executemany("INSERT INTO accounts VALUES (?, ?)", [(i, 1000.0) for i in range(10_000)])
    rng = random.Random(0)
    duration = float(config["duration_s"])
    count = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < duration:
        a, b = rng.sample(range(10_000), 2)
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE accounts SET balance = balance - 1 WHERE n = ?", (a,))
        db.execute("UPDATE accounts SET balance = balance + 1 WHERE n = ?", (b,))
        db.execute("COMMIT")
        count += 1
    elapsed = time.monotonic() - t0
    db.close()
    emit("result", txns=count, seconds=elapsed)


# -- entry point -------------------------------------------------------------------------------


async def main(role: str, config: dict[str, Any]) -> None:
    commands = Commands()
    if role == "subscribers":
        await Subscribers(config).run(commands)
    elif role == "writer":
        await writer(config, commands)
    elif role == "bank":
        await Bank(config).run(commands)
    elif role == "echo_server":
        await echo_server(config, commands)
    elif role == "echo_client":
        await echo_client(config, commands)
    elif role == "broadcast_server":
        await broadcast_server(config, commands)
    elif role == "sqlite":
        await sqlite_limit(config, commands)
    else:
        raise SystemExit(f"unknown role {role!r}")


def run() -> None:
    role, config = sys.argv[1], json.loads(sys.argv[2])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(main(role, config))
    except KeyboardInterrupt:
        pass
    except BaseException as exc:
        traceback.print_exc()
        with contextlib.suppress(Exception):
            emit("error", error=f"{type(exc).__name__}: {exc}")
        sys.stdout.flush()
        raise SystemExit(1) from None


if __name__ == "__main__":
    run()
