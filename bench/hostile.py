"""The ``hostile`` section: a bystander's query round trip while hostile clients run, in turn.

Phases: ``baseline`` (no attack), ``admin_flood`` (200 wrong admin keys in flight over HTTP,
from 20 loopback addresses), ``big_frames`` (16 MB websocket frames of millions of empty
objects from unauthenticated sockets), ``slow_reader`` (sockets subscribed to a query that a
writer changes every 20 ms, which never read), ``fuzz`` (random malformed websocket and HTTP
messages). The attack runs in its own process (``python -m bench.hostile KIND CONFIG``, JSON
lines like ``bench.worker``); the bystander (one raw websocket adding a fresh query and
removing the last one, round trip = ModifyQuerySet sent to its Transition received) and the
server RSS sampler run in the controller. It only measures: nothing here passes or fails.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import shutil
import socket
import sys
import time
from typing import Any

import httpx
from websockets.asyncio.client import connect

from bench.common import (
    BenchError,
    Server,
    Worker,
    make_workdir,
    stop_all,
    summary_ms,
)

__all__ = ["hostile_rows", "run_hostile"]

PHASES = ["baseline", "admin_flood", "big_frames", "slow_reader", "fuzz"]
LABELS = {
    "baseline": "no attack",
    "admin_flood": "(a) wrong-admin-key flood",
    "big_frames": "(b) 16 MB frames, unauthenticated",
    "slow_reader": "(c) slow readers",
    "fuzz": "(d) fuzz (ws + HTTP)",
}
FRAME_BYTES = 16 * 2**20 - 64
WRONG_KEY = "reactor-admin|" + "w" * 40


# -- the controller ------------------------------------------------------------------------------


async def run_hostile(scale: Any, out: dict[str, Any]) -> dict[str, Any]:
    workdir = make_workdir("hostile")
    server = Server(workdir=workdir, loop=scale.server_loop)
    workers: list[Worker] = []
    duration_s = float(scale.n(6, 2))
    try:
        await server.start()
        out["phase_s"] = duration_s
        for kind in PHASES:
            worker = None
            try:
                if kind != "baseline":
                    worker = Worker(
                        kind,
                        {"http": server.http, "ws": server.ws},
                        workdir / f"{kind}.log",
                        module="bench.hostile",
                    )
                    workers.append(worker)
                    await worker.start()
                    await worker.expect("ready", 30)
                out[kind] = await _phase(server, worker, duration_s)
            except BenchError as exc:  # one attack's failure: the others still run
                out[kind] = {"error": str(exc)}
                if worker is not None:
                    await worker.stop()
                continue
            if not server.alive():
                out[kind]["server_died"] = server.log_tail()
                break
    finally:
        await stop_all(workers, server)
        shutil.rmtree(workdir, ignore_errors=True)
    return out


async def _phase(server: Server, worker: Worker | None, duration_s: float) -> dict[str, Any]:
    rss_before = server.rss()
    peak = rss_before or 0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, server.rss() or 0)
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    if worker is not None:
        worker.send("go")
        await asyncio.sleep(0.5)  # let the attack ramp up
    rtts, failures = await _bystander(server, duration_s)
    attack: dict[str, Any] = {}
    if worker is not None:
        worker.send("stop")
        attack = await worker.expect("result", 60)
        attack.pop("event", None)
        await worker.stop()
    await asyncio.sleep(2.0)  # what the server gives back once the attack is over
    stop.set()
    await sampler
    rss_after = server.rss()
    return {
        "bystander_ms": summary_ms(rtts),
        "bystander_failures": failures,
        "rss_before_mib": _mib(rss_before),
        "rss_peak_mib": _mib(max(peak, rss_after or 0)),
        "rss_after_mib": _mib(rss_after),
        "attack": attack,
    }


async def _bystander(server: Server, duration_s: float) -> tuple[list[int], list[str]]:
    """Round trips of a fresh query (Add the next, Remove the last) until ``duration_s``."""
    rtts: list[int] = []
    failures: list[str] = []
    deadline = time.monotonic() + duration_s
    version = 0
    while time.monotonic() < deadline:
        try:
            async with connect(server.ws, max_size=None, open_timeout=10) as ws:
                await ws.send(_connect_message())
                version = 0
                while time.monotonic() < deadline:
                    changes: list[dict[str, Any]] = [
                        {
                            "type": "Add",
                            "queryId": version + 1,
                            "udfPath": "tasks:mine",
                            "args": [{"owner": f"bystander-{version + 1}"}],
                        }
                    ]
                    if version:
                        changes.append({"type": "Remove", "queryId": version})
                    started = time.perf_counter_ns()
                    await ws.send(
                        json.dumps(
                            {
                                "type": "ModifyQuerySet",
                                "baseVersion": version,
                                "newVersion": version + 1,
                                "modifications": changes,
                            }
                        )
                    )
                    version += 1
                    while True:
                        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                        if (
                            message.get("type") == "Transition"
                            and message["endVersion"]["querySet"] >= version
                        ):
                            break
                    rtts.append(time.perf_counter_ns() - started)
                    await asyncio.sleep(0.02)
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}"[:200])
            await asyncio.sleep(0.2)
    return rtts, failures[:5]


def _connect_message() -> str:
    session = base64.b16encode(os.urandom(16)).decode().lower()
    uuid = f"{session[:8]}-{session[8:12]}-4{session[13:16]}-8{session[17:20]}-{session[20:]}"
    return json.dumps(
        {
            "type": "Connect",
            "sessionId": uuid,
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
            "clientTs": 0,
        }
    )


def _mib(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)


# -- the table -----------------------------------------------------------------------------------


def hostile_rows(section: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """(section, metric, value, target, status, vs limit) rows, as ``bench.cli.rows``."""
    out: list[tuple[str, str, str, str, str, str]] = []
    base = (section.get("baseline") or {}).get("bystander_ms") or {}
    for kind in PHASES:
        phase = section.get(kind)
        if not isinstance(phase, dict):
            continue
        if "error" in phase:
            out.append(("hostile", f"{LABELS[kind]}: FAILED", phase["error"][:80], "", "", ""))
            continue
        lat = phase["bystander_ms"]
        label = LABELS[kind]
        ratio = ""
        if kind != "baseline" and lat.get("p50") and base.get("p50"):
            ratio = f"{lat['p50'] / base['p50']:.1f}x no-attack p50"
        value = f"{_ms(lat.get('p50'))} / {_ms(lat.get('p99'))} (n={lat['n']:,})"
        if phase["bystander_failures"]:
            value += f", {len(phase['bystander_failures'])} reconnects"
        out.append(("hostile", f"{label}: bystander query RTT p50 / p99", value, "", "", ratio))
        out.append(
            (
                "hostile",
                f"{label}: server RSS before / peak / after",
                f"{phase['rss_before_mib']} / {phase['rss_peak_mib']} / "
                f"{phase['rss_after_mib']} MiB",
                "",
                "",
                "",
            )
        )
        attack = phase.get("attack") or {}
        if attack:
            out.append(("hostile", f"{label}: attack", _describe(kind, attack), "", "", ""))
        if phase.get("server_died"):
            out.append(("hostile", f"{label}: SERVER DIED", "see JSON", "", "FAIL", ""))
    return out


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} ms"


def _describe(kind: str, attack: dict[str, Any]) -> str:
    if kind == "admin_flood":
        statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(attack["statuses"].items()))
        return f"{attack['requests']:,} wrong keys ({statuses})"
    if kind == "big_frames":
        return f"{attack['frames']:,} frames of {FRAME_BYTES / 2**20:.0f} MB sent"
    if kind == "slow_reader":
        return (
            f"{attack['readers']} readers, {attack['writes']:,} writes of "
            f"{attack['write_kib']} KiB results"
        )
    return f"{attack['ws_messages']:,} ws messages, {attack['http_requests']:,} HTTP requests"


# -- the attacker process ------------------------------------------------------------------------


async def _until_stopped(work: Any, commands: Any) -> None:
    """Run ``work`` (a coroutine) until the controller says ``stop``."""
    task = asyncio.ensure_future(work)
    await commands.wait_for("stop")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def attack_admin_flood(config: dict[str, Any], commands: Any) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    in_flight = 200
    peers = [f"127.0.0.{i}" for i in range(2, 22)]
    clients = [
        httpx.AsyncClient(
            base_url=config["http"],
            transport=httpx.AsyncHTTPTransport(local_address=peer),
            timeout=30,
            limits=httpx.Limits(max_connections=in_flight),
        )
        for peer in peers
    ]

    async def one(client: httpx.AsyncClient) -> None:
        while True:
            try:
                response = await client.post(
                    "/api/query",
                    json={"path": "tasks:board", "args": {}},
                    headers={"Authorization": f"Convex {WRONG_KEY}"},
                )
                key = str(response.status_code)
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            statuses[key] = statuses.get(key, 0) + 1

    async def flood() -> None:
        await asyncio.gather(*(one(clients[i % len(clients)]) for i in range(in_flight)))

    try:
        await _until_stopped(flood(), commands)
    finally:
        for client in clients:
            await client.aclose()
    return {"requests": sum(statuses.values()), "statuses": statuses}


async def attack_big_frames(config: dict[str, Any], commands: Any) -> dict[str, Any]:
    frame = "[" + "{}," * ((FRAME_BYTES - 2) // 3) + "{}]"
    sent = 0
    errors: dict[str, int] = {}

    async def sender() -> None:
        nonlocal sent
        while True:
            try:
                async with connect(config["ws"], max_size=None, open_timeout=10) as ws:
                    while True:
                        await ws.send(frame)
                        sent += 1
            except Exception as exc:
                name = type(exc).__name__
                errors[name] = errors.get(name, 0) + 1
                await asyncio.sleep(0.05)

    await _until_stopped(asyncio.gather(*(sender() for _ in range(4))), commands)
    return {"frames": sent, "errors": errors}


async def attack_slow_reader(config: dict[str, Any], commands: Any) -> dict[str, Any]:
    readers = [await _raw_subscriber(config["http"], "tasks:board") for _ in range(8)]
    title = "x" * 800  # ten of them on the board: ~8 KiB per result
    writes = 0

    async def writer() -> None:
        nonlocal writes
        async with httpx.AsyncClient(base_url=config["http"], timeout=30) as client:
            while True:
                await client.post(
                    "/api/mutation",
                    json={"path": "tasks:add", "args": {"owner": "w", "title": title}},
                )
                writes += 1
                await asyncio.sleep(0.02)

    try:
        await _until_stopped(writer(), commands)
    finally:
        for sock in readers:
            sock.close()
    return {"readers": len(readers), "writes": writes, "write_kib": 8}


async def _raw_subscriber(http: str, udf_path: str) -> socket.socket:
    """A websocket that subscribes to ``udf_path`` and then never reads (small receive
    buffer), so the server's sends back up."""
    host, port = http.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /api/sync HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = await asyncio.to_thread(sock.recv, 4096)
        if not chunk:
            raise ConnectionError("the server closed the slow reader's handshake")
        response += chunk
    if not response.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"the slow reader's upgrade was refused: {response[:80]!r}")
    add = {
        "type": "ModifyQuerySet",
        "baseVersion": 0,
        "newVersion": 1,
        "modifications": [{"type": "Add", "queryId": 1, "udfPath": udf_path, "args": [{}]}],
    }
    for text in (_connect_message(), json.dumps(add)):
        sock.sendall(_masked_frame(0x1, text.encode()))
    return sock


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame (clients must mask)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = bytes([0x80 | opcode, 0x80 | length])
    elif length < 2**16:
        header = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


_VALID: list[dict[str, Any]] = [
    {"type": "Connect", "sessionId": "x", "connectionCount": 0, "lastCloseReason": "x"},
    {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": []},
    {"type": "Mutation", "requestId": 0, "udfPath": "tasks:add", "args": [{}]},
    {"type": "Action", "requestId": 0, "udfPath": "x:y", "args": [{}]},
    {"type": "Authenticate", "tokenType": "User", "baseVersion": 0, "value": "a.b.c"},
    {"type": "Event", "eventType": "x", "event": None},
]
_JUNK: list[Any] = [None, -1, 2**70, 1.5e308, "", "x" * 1000, [], {}, [[[[]]]], True, "\u0000"]


def _fuzz_text(rng: random.Random) -> str | bytes:
    choice = rng.random()
    if choice < 0.15:
        return rng.randbytes(rng.randint(1, 2000))
    if choice < 0.3:
        return "".join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(1, 300)))
    message = dict(rng.choice(_VALID))
    for _ in range(rng.randint(1, 3)):
        field = rng.choice([*message.keys(), "type", "extra", "modifications", "args"])
        message[field] = rng.choice(_JUNK)
    text = json.dumps(message)
    if rng.random() < 0.3:
        cut = rng.randint(0, len(text))
        text = text[:cut]
    if rng.random() < 0.1:
        text = "[" * 5000 + "]" * 5000
    return text


async def attack_fuzz(config: dict[str, Any], commands: Any) -> dict[str, Any]:
    rng = random.Random(1234)
    counts = {"ws_messages": 0, "http_requests": 0, "ws_closed": 0}
    paths = ["/api/query", "/api/mutation", "/api/action", "/api/sync", "/api/run/x/y", "/"]
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]

    async def ws_fuzzer() -> None:
        while True:
            try:
                async with connect(config["ws"], max_size=None, open_timeout=10) as ws:
                    if rng.random() < 0.7:
                        await ws.send(_connect_message())
                    while True:
                        await ws.send(_fuzz_text(rng))
                        counts["ws_messages"] += 1
                        await asyncio.sleep(0)
            except Exception:
                counts["ws_closed"] += 1
                await asyncio.sleep(0.01)

    async def http_fuzzer() -> None:
        async with httpx.AsyncClient(base_url=config["http"], timeout=30) as client:
            while True:
                headers = {}
                if rng.random() < 0.3:
                    headers["Authorization"] = rng.choice(
                        ["Convex", "Convex :", "Bearer", "Bearer a.b", "Convex x:!!!", "\t"]
                    )
                if rng.random() < 0.3:
                    headers["Content-Type"] = rng.choice(["application/json", "text/plain", "x"])
                body = _fuzz_text(rng)
                with contextlib.suppress(httpx.HTTPError):
                    await client.request(
                        rng.choice(methods),
                        rng.choice(paths) + rng.choice(["", "?format=x", "?adminKey=", "/%00"]),
                        content=body.encode("utf-8", "surrogatepass")
                        if isinstance(body, str)
                        else body,
                        headers=headers,
                    )
                counts["http_requests"] += 1

    work = asyncio.gather(*(ws_fuzzer() for _ in range(8)), *(http_fuzzer() for _ in range(8)))
    await _until_stopped(work, commands)
    return counts


ATTACKS = {
    "admin_flood": attack_admin_flood,
    "big_frames": attack_big_frames,
    "slow_reader": attack_slow_reader,
    "fuzz": attack_fuzz,
}


async def _attacker(kind: str, config: dict[str, Any]) -> None:
    from bench.worker import Commands, emit

    commands = Commands()
    emit("ready")
    if await commands.wait_for("go") != "go":
        return
    result = await ATTACKS[kind](config, commands)
    emit("result", **result)
    await commands.wait_for("quit")


if __name__ == "__main__":
    try:
        asyncio.run(_attacker(sys.argv[1], json.loads(sys.argv[2])))
    except Exception as exc:
        from bench.worker import emit

        emit("error", error=f"{type(exc).__name__}: {exc}")
        raise
