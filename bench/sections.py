"""The benchmark sections (``hostile`` lives in ``bench.hostile``, ``isolation`` in
``bench.isolation``): each returns a dict of figures (JSON-ready).

Every section starts its own server on a fresh temporary SQLite directory, drives it from
``bench.worker`` processes and stops everything it started, whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    BenchError,
    Server,
    Worker,
    cpu_seconds,
    free_port,
    make_workdir,
    percentile,
    stop_all,
    summary_ms,
)
from bench.hostile import run_hostile
from bench.isolation import run_isolation
from bench.snapshot import run_snapshot


@dataclass(frozen=True)
class Scale:
    """Counts of one run; ``quick`` divides the big ones by ~10."""

    quick: bool = False
    bank_transport: str = "ws"
    deflate: bool = False
    profile_dir: Path | None = None
    server_loop: str = "default"
    gc_log: bool = False
    gc_threshold: str | None = None

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full


def cpu_delta(before: float | None, after: float | None) -> float | None:
    if before is None or after is None:
        return None
    return after - before


class Phase:
    """CPU seconds used by the server and by load processes over one measured interval
    (and a py-spy profile of the server over it, with ``--profile``)."""

    def __init__(self, server: Server, workers: list[Worker]) -> None:
        self.server = server
        self.workers = workers
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.server_cpu0 = server.cpu()
        self.worker_cpu0 = [w.cpu() for w in workers]

    @classmethod
    async def begin(cls, server: Server, workers: list[Worker], tag: str) -> Phase:
        await server.start_profile(tag)
        return cls(server, workers)

    async def finish(self) -> dict[str, Any]:
        await self.server.stop_profile()
        elapsed = time.monotonic() - self.t0
        server_cpu = cpu_delta(self.server_cpu0, self.server.cpu())
        load_cpu = sum(
            d
            for d in (
                cpu_delta(a, w.cpu()) for a, w in zip(self.worker_cpu0, self.workers, strict=True)
            )
            if d
        )
        gc_pauses = self.server.gc_pauses(self.wall0, time.time())
        return {
            **({"server_gc": gc_pauses} if gc_pauses is not None else {}),
            "seconds": round(elapsed, 3),
            "server_cpu_pct": None if server_cpu is None else round(100 * server_cpu / elapsed, 1),
            "load_cpu_pct": round(100 * load_cpu / elapsed, 1),
        }


def split(total: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` (start, count) ranges covering 0..total-1."""
    base, extra = divmod(total, parts)
    out, start = [], 0
    for i in range(parts):
        count = base + (1 if i < extra else 0)
        if count:
            out.append((start, count))
        start += count
    return out


async def subscribe(
    server: Server | None,
    workdir: Any,
    *,
    name: str,
    total: int,
    procs: int,
    udf_path: str,
    args: dict[str, Any],
    scale: Scale,
    expect_updates: int = 0,
    concurrency: int = 32,
    connect_deadline_s: float = 45.0,
    max_queue: int = 16,
    url: str | None = None,
) -> tuple[list[Worker], dict[str, Any]]:
    """Start subscriber processes and wait until all their sessions hold an initial result
    (from ``server``, or the websocket at ``url``)."""
    if url is None:
        assert server is not None
        url = server.ws
    workers = [
        Worker(
            "subscribers",
            {
                "url": url,
                "udf_path": udf_path,
                "args": args,
                "start": start,
                "count": count,
                "concurrency": concurrency,
                "connect_deadline_s": connect_deadline_s,
                "expect_updates": expect_updates,
                "deflate": scale.deflate,
                "max_queue": max_queue,
            },
            workdir / f"{name}-{i}.log",
        )
        for i, (start, count) in enumerate(split(total, procs))
    ]
    t0 = time.monotonic()
    for worker in workers:
        await worker.start()
    readies = await asyncio.gather(*(w.expect("ready", connect_deadline_s + 30) for w in workers))
    connected = sum(r["connected"] for r in readies)
    info = {
        "connected": connected,
        "failed": sum(r["failed"] for r in readies),
        "connect_s": round(time.monotonic() - t0, 2),
        "connect_errors": [e for r in readies for e in r["errors"]][:5],
    }
    info["connect_rate_per_s"] = round(connected / max(info["connect_s"], 1e-9))
    return workers, info


async def collect(workers: list[Worker]) -> list[dict[str, Any]]:
    for worker in workers:
        worker.send("stop")
    return list(await asyncio.gather(*(w.expect("result", 60) for w in workers)))


async def start_writer(
    server: Server,
    workdir: Any,
    *,
    name: str,
    count: int,
    interval_s: float,
    owner_prefix: str,
    owners: int,
    udf_path: str = "tasks:add",
) -> Worker:
    """A connected writer process, waiting for ``go``."""
    worker = Worker(
        "writer",
        {
            "url": server.ws,
            "udf_path": udf_path,
            "count": count,
            "interval_s": interval_s,
            "owner_prefix": owner_prefix,
            "owners": owners,
        },
        workdir / f"{name}.log",
    )
    await worker.start()
    await worker.expect("ready", 30)
    return worker


async def run_writer(worker: Worker, timeout_s: float) -> dict[str, Any]:
    worker.send("go")
    return await worker.expect("result", timeout_s)


# -- 1. push -----------------------------------------------------------------------------------


async def run_push(scale: Scale, out: dict[str, Any]) -> dict[str, Any]:
    workdir = make_workdir("push")
    server = Server(
        workdir=workdir,
        profile=scale.profile_dir,
        loop=scale.server_loop,
        gc_log=scale.gc_log,
        gc_threshold=scale.gc_threshold,
    )
    workers: list[Worker] = []
    try:
        await server.start()
        out["distinct"] = await _push_phase(
            server,
            workdir,
            workers,
            name="distinct",
            scale=scale,
            conns=scale.n(1000, 100),
            writes=scale.n(200, 20),
            interval_s=0.02,
            udf_path="tasks:mine",
            args={"owner": "o{i}"},
            owner_prefix="o",
        )
        # The writer's own round trip, the same mutation with nobody subscribed (phase (a)'s
        # sessions are gone): the figure its acks during the shared fan-out are compared with.
        idle = await start_writer(
            server,
            workdir,
            name="push-idle-writer",
            count=scale.n(100, 20),
            interval_s=0.02,
            owner_prefix="idle",
            owners=0,
        )
        workers.append(idle)
        idle_result = await run_writer(idle, 60)
        await idle.stop()
        out["idle_mutation_rtt_ms"] = summary_ms(idle_result["rtt_ns"])
        out["shared"] = await _push_phase(
            server,
            workdir,
            workers,
            name="shared",
            scale=scale,
            conns=scale.n(1000, 100),
            writes=scale.n(100, 10),
            interval_s=0.1,
            udf_path="tasks:board",
            args={},
            owner_prefix="w",
        )
        out["server_log_errors"] = _log_errors(server)
        await server.stop()
        out["raw_broadcast"] = await _raw_broadcast_phase(
            workdir, workers, scale=scale, conns=scale.n(1000, 100), writes=scale.n(100, 10)
        )
    finally:
        await stop_all(workers, server)
        shutil.rmtree(workdir, ignore_errors=True)
    return out


async def _raw_broadcast_phase(
    workdir: Any, workers: list[Worker], *, scale: Scale, conns: int, writes: int
) -> dict[str, Any]:
    """The shared fan-out's raw limit, measured as phase (b) is: the same subscribers, as many
    pushes as apart, from a bare ``websockets`` server on uvloop (as ``reactor serve`` runs)
    writing one pre-built frame to each transport (``bench.worker.broadcast_server``)."""
    port = free_port()
    raw = Worker(
        "broadcast_server",
        {"port": port, "count": writes, "interval_s": 0.1},
        workdir / "raw-broadcast.log",
    )
    workers.append(raw)
    await raw.start()
    await raw.expect("ready", 30)
    subs, info = await subscribe(
        None,
        workdir,
        name="raw-broadcast",
        total=conns,
        procs=2,
        udf_path="tasks:board",
        args={},
        scale=scale,
        expect_updates=writes,
        url=f"ws://127.0.0.1:{port}/",
    )
    workers.extend(subs)
    await asyncio.sleep(0.5)
    cpu0 = raw.cpu()
    raw.send("go")
    pushed = (await raw.expect("result", writes * 0.1 + 60))["pushed"]
    try:
        await asyncio.gather(*(w.expect("done", 15) for w in subs))
    except BenchError:
        pass
    cpu = cpu_delta(cpu0, raw.cpu())
    results = await collect(subs)
    raw.send("stop")
    await asyncio.gather(*(w.stop() for w in [*subs, raw]))
    latencies = [v for r in results for v in r["latencies_ns"]]
    return {
        "connections": info["connected"],
        "pushed": pushed,
        "receipts": len(latencies),
        "latency_ms": summary_ms(latencies),
        "server_cpu_s": cpu,
        "cpu_per_push_us": None if cpu is None or not pushed else round(cpu / pushed * 1e6, 2),
    }


async def _push_phase(
    server: Server,
    workdir: Any,
    workers: list[Worker],
    *,
    name: str,
    scale: Scale,
    conns: int,
    writes: int,
    interval_s: float,
    udf_path: str,
    args: dict[str, Any],
    owner_prefix: str,
) -> dict[str, Any]:
    shared = not args
    subs, info = await subscribe(
        server,
        workdir,
        name=f"push-{name}",
        total=conns,
        procs=2,
        udf_path=udf_path,
        args=args,
        scale=scale,
        expect_updates=writes if shared else 0,
    )
    workers.extend(subs)
    if info["connected"] == 0:
        raise BenchError(f"push {name}: no subscriber connected: {info['connect_errors']}")
    rss_connected = server.rss()
    await asyncio.sleep(0.5)
    writer = await start_writer(
        server,
        workdir,
        name=f"push-{name}-writer",
        count=writes,
        interval_s=interval_s,
        owner_prefix=owner_prefix,
        owners=conns if not shared else 0,
    )
    workers.append(writer)
    phase = await Phase.begin(server, subs, f"push-{name}")
    own_cpu0 = cpu_seconds(server.pid)  # the server process alone, without its runners
    wres = await run_writer(writer, writes * interval_s + 60)
    if shared:
        # Every subscriber should see every write; wait (bounded) until they all have.
        try:
            await asyncio.gather(*(w.expect("done", 15) for w in subs))
        except BenchError:
            pass
    else:
        await asyncio.sleep(1.0)
    cpu = cpu_delta(phase.server_cpu0, server.cpu())
    own_cpu = cpu_delta(own_cpu0, cpu_seconds(server.pid))
    usage = await phase.finish()
    results = await collect(subs)
    await asyncio.gather(*(w.stop() for w in [*subs, writer]))
    latencies = [v for r in results for v in r["latencies_ns"]]
    expected = len(wres["commit_ts"]) * (info["connected"] if shared else 1)
    # Server (and runner) CPU per Transition received: everything the server did over the
    # phase (mutations, query runs, pushes) divided by the pushes.
    usage["server_cpu_s"] = cpu
    usage["cpu_per_push_us"] = (
        None if cpu is None or not latencies else round(cpu / len(latencies) * 1e6, 2)
    )
    usage["process_cpu_per_push_us"] = (
        None if own_cpu is None or not latencies else round(own_cpu / len(latencies) * 1e6, 2)
    )
    return {
        "connections": info["connected"],
        "connect_failed": info["failed"],
        "connect_s": info["connect_s"],
        "writes": len(wres["commit_ts"]),
        "write_failures": wres["failures"],
        "write_errors": wres["errors"],
        "write_interval_ms": interval_s * 1000,
        "receipts": len(latencies),
        "receipts_expected": expected,
        "latency_ms": summary_ms(latencies),
        "server_part_ms": summary_ms([v for r in results for v in r["server_part_ns"]]),
        "mutation_rtt_ms": summary_ms(wres["rtt_ns"]),
        "empty_transitions": sum(r["empty_transitions"] for r in results),
        "closed_early": sum(r["closed_early"] for r in results),
        "subscriber_errors": [e for r in results for e in r["errors"]][:5],
        "server_rss_mib": _mib(rss_connected),
        **usage,
    }


# -- 2. bank -----------------------------------------------------------------------------------

ACCOUNTS = 10_000
INITIAL_BALANCE = 1000.0
SEED_BATCH = 500
# (mode, fraction of transfers between accounts 0 and 1, concurrent clients)
BANK_PHASES = (
    ("uncontended", 0.0, 50),
    ("contended", 0.8, 50),
    ("uncontended_200", 0.0, 200),
)


async def run_bank(scale: Scale, out: dict[str, Any]) -> dict[str, Any]:
    workdir = make_workdir("bank")
    server = Server(
        workdir=workdir,
        profile=scale.profile_dir,
        loop=scale.server_loop,
        gc_log=scale.gc_log,
        gc_threshold=scale.gc_threshold,
    )
    workers: list[Worker] = []
    out.update(transport=scale.bank_transport, clients=50)
    try:
        await server.start()
        t0 = time.monotonic()
        for start in range(0, ACCOUNTS, SEED_BATCH):
            await server.call(
                "mutation",
                "bank:seed",
                {"start": float(start), "count": float(SEED_BATCH), "balance": INITIAL_BALANCE},
            )
        out["seed_s"] = round(time.monotonic() - t0, 2)
        out["seed_docs_per_s"] = round(ACCOUNTS / (time.monotonic() - t0))
        before = await server.call("query", "bank:total", {})
        duration = scale.n(10, 2)
        # The raw limit beside the phases (this shared machine's disk varies several-fold
        # within minutes): before and after them, the better of the two.
        raw = [await _sqlite_limit(workdir, scale, workers)]
        for mode, hot, clients in BANK_PHASES:
            out[mode] = await _bank_phase(
                server, workdir, workers, mode, hot, duration, scale, clients=clients
            )
        raw.append(await _sqlite_limit(workdir, scale, workers))
        out["sqlite_txn_per_s_runs"] = raw
        out["sqlite_txn_per_s"] = max(raw)
        t0 = time.monotonic()
        after = await server.call("query", "bank:total", {})
        out["total_query_ms"] = round((time.monotonic() - t0) * 1000, 1)
        expected = ACCOUNTS * INITIAL_BALANCE
        out["balance"] = {
            "accounts": after["count"],
            "before": before["total"],
            "after": after["total"],
            "expected": expected,
            "conserved": after["total"] == expected and after["count"] == ACCOUNTS,
        }
        out["server_log_errors"] = _log_errors(server)
    finally:
        await stop_all(workers, server)
        shutil.rmtree(workdir, ignore_errors=True)
    return out


async def _bank_phase(
    server: Server,
    workdir: Any,
    workers: list[Worker],
    mode: str,
    hot: float,
    duration: float,
    scale: Scale,
    *,
    clients: int = 50,
) -> dict[str, Any]:
    procs = 2
    phase_workers = [
        Worker(
            "bank",
            {
                "url": server.ws,
                "http": server.http,
                "transport": scale.bank_transport,
                "clients": count,
                "duration_s": duration,
                "accounts": ACCOUNTS,
                "hot_fraction": hot,
                "seed": 100 * i + (7 if hot else 0),
            },
            workdir / f"bank-{mode}-{i}.log",
        )
        for i, (_, count) in enumerate(split(clients, procs))
    ]
    workers.extend(phase_workers)
    for worker in phase_workers:
        await worker.start()
    await asyncio.gather(*(w.expect("ready", 30) for w in phase_workers))
    await asyncio.to_thread(_checkpoint, server.data_dir)  # earlier writes are not this phase's
    phase = await Phase.begin(server, phase_workers, f"bank-{mode}")
    written0, files0 = _write_bytes(server.pid), _data_bytes(server.data_dir)
    reruns0 = await _occ_reruns(server)
    wal = _WalFrames(server.data_dir)
    watching = asyncio.ensure_future(wal.watch())
    for worker in phase_workers:
        worker.send("go")
    results = await asyncio.gather(*(w.expect("result", duration + 60) for w in phase_workers))
    written1, files1 = _write_bytes(server.pid), _data_bytes(server.data_dir)
    watching.cancel()
    await asyncio.gather(watching, return_exceptions=True)
    wal.poll()
    # What the phase left in the WAL reaches the database file at a later checkpoint: count it
    # now (this process checkpoints, so its own write_bytes are that cost).
    checkpointed = await asyncio.to_thread(_checkpoint, server.data_dir)
    reruns1 = await _occ_reruns(server)
    usage = await phase.finish()
    await asyncio.gather(*(w.stop() for w in phase_workers))
    seconds = max(r["seconds"] for r in results)
    ok = sum(r["ok"] for r in results)
    latencies = [v for r in results for v in r["latencies_ns"]]
    written = None if written0 is None or written1 is None else written1 - written0 + checkpointed
    return {
        "clients": clients,
        "committed": ok,
        # Bytes the server process sent to storage (/proc/PID/io write_bytes: WAL frames,
        # checkpoints into the database file, logs) plus the final checkpoint of what the phase
        # left in the WAL, per committed transfer; and the growth of the data directory's files
        # (WAL + database) over the phase.
        "checkpoint_bytes": checkpointed,
        "written_bytes": written,
        "written_bytes_per_transfer": None if written is None or not ok else round(written / ok),
        "file_growth_bytes": files1 - files0,
        # SQLite's own count, beside the kernel's: WAL frames appended over the phase (read
        # from the WAL index in the -shm file), as bytes (page + frame header) per transfer.
        "wal_frames": wal.frames,
        "wal_bytes_per_transfer": (
            round(wal.frames * (wal.page_size + 24) / ok) if ok and wal.page_size else None
        ),
        # Executions of bank:transfer thrown away because their commit conflicted.
        "occ_reruns": None if reruns0 is None or reruns1 is None else reruns1[0] - reruns0[0],
        "deferred_runs": None if reruns0 is None or reruns1 is None else reruns1[1] - reruns0[1],
        # Transfers committed in one transaction with others (``reactor_batched_mutations``).
        "batched": None if reruns0 is None or reruns1 is None else reruns1[2] - reruns0[2],
        "seconds": round(seconds, 2),
        "transfers_per_s": round(ok / seconds, 1),
        "occ_failures": sum(r["occ"] for r in results),
        "other_failures": sum(r["other"] for r in results),
        "hot_committed": sum(r["hot_ok"] for r in results),
        "hot_occ_failures": sum(r["hot_occ"] for r in results),
        "errors": [e for r in results for e in r["errors"]][:5],
        "latency_ms": summary_ms(latencies),
        "hot_fraction": hot,
        "server_cpu_pct": usage["server_cpu_pct"],
        "load_cpu_pct": usage["load_cpu_pct"],
        "server_gc": usage.get("server_gc"),
    }


# -- 3. fanout ---------------------------------------------------------------------------------


async def run_fanout(scale: Scale, out: dict[str, Any]) -> dict[str, Any]:
    workdir = make_workdir("fanout")
    server = Server(
        workdir=workdir,
        profile=scale.profile_dir,
        loop=scale.server_loop,
        gc_log=scale.gc_log,
        gc_threshold=scale.gc_threshold,
    )
    workers: list[Worker] = []
    total = scale.n(10_000, 1000)
    out["target_connections"] = total
    try:
        await server.start()
        out["server_rss_idle_mib"] = _mib(server.rss())
        subs, info = await subscribe(
            server,
            workdir,
            name="fanout",
            total=total,
            procs=4,
            udf_path="tasks:board",
            args={},
            scale=scale,
            expect_updates=1,
            concurrency=25,
            connect_deadline_s=40,
            max_queue=4,
        )
        workers.extend(subs)
        out.update(info)
        cpu0, t0 = server.cpu(), time.monotonic()
        await asyncio.sleep(3.0)  # let the server settle (and collect garbage) before measuring
        idle_cpu = cpu_delta(cpu0, server.cpu())
        if idle_cpu is not None:
            out["server_idle_cpu_pct"] = round(100 * idle_cpu / (time.monotonic() - t0), 1)
        rss = server.rss()
        out["server_rss_mib"] = _mib(rss)
        if rss is not None and info["connected"]:
            base = (out["server_rss_idle_mib"] or 0) * 2**20
            out["server_rss_per_conn_kib"] = round((rss - base) / info["connected"] / 1024, 1)
        load_rss = [r for w in subs for r in [_rss(w.pid)] if r]
        out["load_rss_mib_per_proc"] = _mib(max(load_rss)) if load_rss else None
        writer = await start_writer(
            server,
            workdir,
            name="fanout-writer",
            count=1,
            interval_s=0.0,
            owner_prefix="f",
            owners=0,
        )
        workers.append(writer)
        phase = await Phase.begin(server, subs, "fanout-write")
        wres = await run_writer(writer, 60)
        try:
            await asyncio.gather(*(w.expect("done", 20) for w in subs))
        except BenchError:
            pass
        usage = await phase.finish()
        results = await collect(subs)
        latencies = [v for r in results for v in r["latencies_ns"]]
        out["write_ok"] = bool(wres["commit_ts"])
        out["received"] = len(latencies)
        out["all_received"] = len(latencies) >= info["connected"] > 0
        out["all_received_ms"] = max(latencies) / 1e6 if latencies else None
        out["latency_ms"] = summary_ms(latencies)
        out["server_part_ms"] = summary_ms([v for r in results for v in r["server_part_ns"]])
        out["mutation_rtt_ms"] = summary_ms(wres["rtt_ns"])
        out["closed_early"] = sum(r["closed_early"] for r in results)
        out["subscriber_errors"] = [e for r in results for e in r["errors"]][:5]
        out["server_cpu_pct"] = usage["server_cpu_pct"]
        out["server_gc"] = usage.get("server_gc")
        out["server_log_errors"] = _log_errors(server)
    finally:
        await stop_all(workers, server)
        shutil.rmtree(workdir, ignore_errors=True)
    return out


async def _sqlite_limit(workdir: Path, scale: Scale, workers: list[Worker]) -> float:
    """The raw SQLite two-row transaction rate (``limits``), measured now."""
    path = workdir / f"limit-{len(workers)}.sqlite3"
    sqlite = Worker(
        "sqlite",
        {"path": str(path), "duration_s": scale.n(3, 1)},
        workdir / f"sqlite-{len(workers)}.log",
    )
    workers.append(sqlite)
    await sqlite.start()
    result = await sqlite.expect("result", 60)
    await sqlite.stop()
    for leftover in workdir.glob(f"{path.name}*"):
        leftover.unlink()
    return round(float(result["txns"]) / float(result["seconds"]), 1)


# -- 4. limits ---------------------------------------------------------------------------------


async def run_limits(scale: Scale, out: dict[str, Any]) -> dict[str, Any]:
    workdir = make_workdir("limits")
    workers: list[Worker] = []
    try:
        sqlite = Worker(
            "sqlite",
            {"path": str(workdir / "limit.sqlite3"), "duration_s": scale.n(3, 1)},
            workdir / "sqlite.log",
        )
        workers.append(sqlite)
        await sqlite.start()
        result = await sqlite.expect("result", 60)
        out["sqlite_txn_per_s"] = round(result["txns"] / result["seconds"], 1)
        out["sqlite_txns"] = result["txns"]

        port = free_port()
        echo = Worker("echo_server", {"port": port}, workdir / "echo-server.log")
        workers.append(echo)
        await echo.start()
        await echo.expect("ready", 30)
        client = Worker(
            "echo_client",
            {"url": f"ws://127.0.0.1:{port}/", "count": scale.n(2000, 500), "payload": 200},
            workdir / "echo-client.log",
        )
        workers.append(client)
        await client.start()
        result = await client.expect("result", 60)
        out["ws_rtt_ms"] = summary_ms(result["rtt_ns"])
        echo.send("stop")
    finally:
        await stop_all(workers, None)
        shutil.rmtree(workdir, ignore_errors=True)
    return out


# -- helpers -----------------------------------------------------------------------------------


def _mib(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)


def _rss(pid: int) -> int | None:
    from bench.common import rss_bytes

    return rss_bytes(pid)


def _write_bytes(pid: int) -> int | None:
    """Bytes process ``pid`` has caused to be sent to storage so far (/proc/PID/io)."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


async def _occ_reruns(server: Server, path: str = "bank:transfer") -> tuple[int, int, int] | None:
    """The server's counts of wasted executions of ``path`` (/metrics): conflicted ones
    (``reactor_occ_conflicts``: re-runs plus final OCC failures) and first runs stopped at a
    read of a document re-runs were queued to write (``reactor_deferred_runs``); and of its
    executions run together with other re-runs in one transaction (``reactor_batched_mutations``).
    """
    import httpx

    try:
        async with httpx.AsyncClient(timeout=10) as client:
            text = (await client.get(server.http + "/metrics")).text
    except httpx.HTTPError:
        return None
    counts = {
        "reactor_occ_conflicts_total": 0,
        "reactor_deferred_runs_total": 0,
        "reactor_batched_mutations_total": 0,
    }
    for name in counts:
        needle = f'{name}{{path="{path}"}} '
        for line in text.splitlines():
            if line.startswith(needle):
                counts[name] = int(float(line[len(needle) :]))
    return (
        counts["reactor_occ_conflicts_total"],
        counts["reactor_deferred_runs_total"],
        counts["reactor_batched_mutations_total"],
    )


class _WalFrames:
    """Counts the frames SQLite appends to a database's WAL, polling ``mxFrame`` in the WAL
    index header (the -shm file; it starts over at 0 when a checkpoint lets the WAL restart,
    and the few frames written between the last poll and a restart are missed)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "reactor.sqlite3-shm"
        self.frames = 0
        self.page_size = 0
        self._last: int | None = None

    def poll(self) -> None:
        import struct

        try:
            with open(self.path, "rb") as shm:
                header = shm.read(24)
        except OSError:
            return
        if len(header) < 24:
            return
        page_size, max_frame = struct.unpack_from("<HI", header, 14)
        self.page_size = 65536 if page_size == 1 else page_size
        if self._last is not None:
            self.frames += max_frame - self._last if max_frame >= self._last else max_frame
        self._last = max_frame

    async def watch(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(0.005)


def _checkpoint(data_dir: Path) -> int:
    """Checkpoint the server's WAL into its database file from this process (SQLite allows a
    second connection to); returns the bytes this process wrote doing so."""
    import sqlite3

    before = _write_bytes(os.getpid()) or 0
    conn = sqlite3.connect(data_dir / "reactor.sqlite3", isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        conn.close()
    return (_write_bytes(os.getpid()) or 0) - before


def _data_bytes(data_dir: Path) -> int:
    """Total size of the files in a data directory (database, WAL, blobs)."""
    return sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())


def _log_errors(server: Server) -> list[str]:
    """The first few ERROR/Traceback lines the server logged (it runs at --log-level warning)."""
    lines = [
        line
        for line in server.log_text().splitlines()
        if "ERROR" in line or "Traceback" in line or "Exception" in line
    ]
    return lines[:5]


SECTIONS = {
    "limits": run_limits,
    "push": run_push,
    "bank": run_bank,
    "fanout": run_fanout,
    "isolation": run_isolation,
    "hostile": run_hostile,
    "snapshot": run_snapshot,
}

__all__ = ["SECTIONS", "Scale", "percentile"]
