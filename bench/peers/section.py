"""``python -m bench peers``: the same workloads against Reactor and against Parse Server 9.10 +
LiveQuery on PostgreSQL 15, both driven by one Node harness (``bench/peers/harness.mjs``).

It installs what it needs when it is missing (PostgreSQL from Debian with ``apt-get``, Parse
Server from npm into ``bench/peers/node_modules`` with ``npm ci``), starts a private PostgreSQL
cluster on a free 127.0.0.1 port in a temporary directory, Parse Server + LiveQuery on it, and
``reactor serve bench/app``, one after the other, and stops everything it started. The raw
limits (SQLite two-row transaction, websocket echo) are measured in the same run by the
``limits`` section's workers. What makes the comparison unfair either way: bench/README.md.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    BenchError,
    Server,
    Worker,
    _children,
    _terminate,
    free_port,
    kill_all,
    machine_facts,
    make_workdir,
    rss_bytes,
    summary_ms,
    tree_cpu_seconds,
    wait_ready,
)

PEERS_DIR = Path(__file__).resolve().parent
HARNESS = PEERS_DIR / "harness.mjs"
PARSE_SERVER = PEERS_DIR / "parse_server.mjs"
PARSE_VERSION = "9.10.0"
PG_ROOT = Path("/usr/lib/postgresql")  # Debian's layout: <version>/bin/initdb
APT_OPTIONS = ["-o", "Acquire::Retries=1", "-o", "Acquire::http::Timeout=30"]  # fail, not hang
APP_ID = "bench"
MASTER_KEY = "bench-master-key-not-secret"
ACCOUNTS = 10_000
INITIAL_BALANCE = 1000.0
INSTALL_TIMEOUT_S = 600.0
SECTION_TIMEOUT_S = 1500.0  # both servers, every workload, plus first-time installs


# -- installing --------------------------------------------------------------------------------


def _run(cmd: list[str], what: str, timeout_s: float, **kwargs: Any) -> str:
    """Run a setup command; BenchError naming ``what`` if it is missing, fails or hangs."""
    try:
        done = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            **kwargs,
        )
    except FileNotFoundError:
        raise BenchError(f"{what}: {cmd[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: `{' '.join(cmd)}` did not finish in {timeout_s:.0f} s") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise BenchError(f"{what}: `{' '.join(cmd)}` exited with {done.returncode}:\n{tail}")
    return str(done.stdout)


def postgres_bindir() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (Debian layout), if any."""
    found = sorted(
        (p / "bin" for p in PG_ROOT.glob("*") if (p / "bin" / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


def ensure_postgres() -> Path:
    """PostgreSQL's bin directory, installing Debian's ``postgresql`` package first if needed."""
    found = postgres_bindir()
    if found is not None:
        return found
    if shutil.which("apt-get") is None:
        raise BenchError(
            f"PostgreSQL is not installed (no {PG_ROOT}/*/bin/initdb) and apt-get is not "
            "available to install it: install Debian's `postgresql` package"
        )
    print(
        "[bench] peers: installing PostgreSQL (apt-get install -y postgresql) ...", file=sys.stderr
    )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        _run(
            ["apt-get", "install", "-y", *APT_OPTIONS, "postgresql"],
            "installing PostgreSQL",
            INSTALL_TIMEOUT_S,
            env=env,
        )
    except BenchError:
        _run(["apt-get", "update", *APT_OPTIONS], "apt-get update", INSTALL_TIMEOUT_S, env=env)
        _run(
            ["apt-get", "install", "-y", *APT_OPTIONS, "postgresql"],
            "installing PostgreSQL",
            INSTALL_TIMEOUT_S,
            env=env,
        )
    found = postgres_bindir()
    if found is None:
        raise BenchError(
            "apt-get installed postgresql but no /usr/lib/postgresql/*/bin/initdb exists"
        )
    return found


def ensure_node_modules() -> None:
    """``npm ci`` in bench/peers when Parse Server (pinned in its package-lock.json) is missing."""
    if shutil.which("node") is None:
        raise BenchError(
            "node is not installed (Parse Server and the harness need Node.js >= 20.19)"
        )
    installed = PEERS_DIR / "node_modules" / "parse-server" / "package.json"
    with contextlib.suppress(OSError, ValueError):
        if json.loads(installed.read_text()).get("version") == PARSE_VERSION:
            return
    if shutil.which("npm") is None:
        raise BenchError(f"npm is not installed: cannot install parse-server {PARSE_VERSION}")
    print(
        f"[bench] peers: npm ci in {PEERS_DIR} (parse-server {PARSE_VERSION}) ...", file=sys.stderr
    )
    _run(
        ["npm", "ci", "--no-audit", "--no-fund", "--fetch-retries=2", "--fetch-timeout=60000"],
        "installing Parse Server",
        INSTALL_TIMEOUT_S,
        cwd=PEERS_DIR,
    )


# -- PostgreSQL and Parse Server ---------------------------------------------------------------


_clusters: set[Postgres] = set()  # started and not yet stopped: stop_clusters() stops them


def stop_clusters() -> None:
    """Stop every PostgreSQL cluster this process started (at exit, on SIGTERM or Ctrl-C)."""
    for cluster in list(_clusters):
        cluster.stop()


class Postgres:
    """A private cluster in ``workdir/pg`` on 127.0.0.1:port (fsync and synchronous_commit on,
    the defaults: a commit is acknowledged once its WAL is flushed, as Reactor's are)."""

    def __init__(self, bindir: Path, workdir: Path) -> None:
        self.bindir = bindir
        self.datadir = workdir / "pg"
        self.sockdir = workdir / "pgsock"
        self.log = workdir / "postgres.log"
        self.port = free_port()
        self.prefix: list[str] = []
        self.started = False

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/bench"

    def _own(self, *paths: Path) -> None:
        if os.geteuid() != 0:
            return
        user = pwd.getpwnam("postgres")
        for path in paths:
            os.chown(path, user.pw_uid, user.pw_gid)

    def start(self) -> None:
        if os.geteuid() == 0:  # the server refuses to run as root
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise BenchError("running as root but there is no `postgres` user") from None
            self.prefix = ["runuser", "-u", "postgres", "--"]
        workdir = self.datadir.parent
        workdir.chmod(0o755)
        for path in (self.datadir, self.sockdir):
            path.mkdir(mode=0o700)
        self.log.touch()
        self._own(self.datadir, self.sockdir, self.log)
        bin_ = self.bindir
        _run(
            [
                *self.prefix,
                str(bin_ / "initdb"),
                "-D",
                str(self.datadir),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            "initdb",
            120,
        )
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.sockdir} -c max_connections=200"
        )
        _run(
            [
                *self.prefix,
                str(bin_ / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ],
            "starting PostgreSQL",
            90,
        )
        self.started = True
        _clusters.add(self)
        self.psql("CREATE DATABASE bench", database="postgres")

    def psql(self, sql: str, database: str = "bench") -> str:
        return _run(
            [
                *self.prefix,
                str(self.bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-Atc",
                sql,
            ],
            f"psql {sql!r}",
            120,
        )

    @property
    def pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.datadir / "postmaster.pid").read_text().splitlines()[0])
        return None

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        _clusters.discard(self)
        try:
            _run(
                [
                    *self.prefix,
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ],
                "stopping PostgreSQL",
                60,
            )
        except BenchError as exc:  # then the immediate shutdown, by the postmaster's pid
            pid = self.pid
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGQUIT)
            print(f"[bench] peers: {exc}; sent SIGQUIT to PostgreSQL ({pid})", file=sys.stderr)


class ParseProcess:
    """``node parse_server.mjs``: Parse Server with LiveQuery on the same HTTP server."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        self.port = free_port()
        self.database_url = database_url
        self.log_path = workdir / "parse-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}/parse"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/parse"

    async def start(self, timeout_s: float = 60.0) -> None:
        config = {
            "port": self.port,
            "databaseURI": self.database_url,
            "appId": APP_ID,
            "masterKey": MASTER_KEY,
            "logsFolder": str(self.log_path.parent / "parse-logs"),
        }
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["node", str(PARSE_SERVER), json.dumps(config)],
            cwd=self.log_path.parent,
            # Parse's default logger opens its folder when imported, before any option is read.
            env={**os.environ, "PARSE_SERVER_LOGS_FOLDER": str(config["logsFolder"])},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _children.add(self.proc)
        await wait_ready(
            self.proc, self.http + "/health", "Parse Server", self.log_tail, timeout_s, 0.2
        )

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    async def stop(self) -> None:
        if self.proc is not None:
            await _terminate(self.proc, 10)
            _children.discard(self.proc)

    async def rest(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"X-Parse-Application-Id": APP_ID, "X-Parse-Master-Key": MASTER_KEY}
        async with httpx.AsyncClient(timeout=120) as client:
            response = await client.request(method, self.http + path, json=body, headers=headers)
        if response.status_code not in (200, 201):
            raise BenchError(
                f"Parse {method} {path}: HTTP {response.status_code}: {response.text[:300]}"
            )
        return response.json()


# -- the load: Node harness processes -----------------------------------------------------------


@dataclass
class NodeWorker(Worker):
    """``node harness.mjs ROLE CONFIG``: the same JSON-lines contract as ``bench.worker``."""

    async def start(self) -> None:
        self._log_file = open(self.log_path, "wb")
        self.proc = await asyncio.create_subprocess_exec(
            "node",
            str(HARNESS),
            self.role,
            json.dumps(self.config),
            cwd=PEERS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log_file,
            limit=256 * 1024 * 1024,
        )
        _children.add(self.proc)


# -- one server under test ---------------------------------------------------------------------


def tree_write_bytes(pid: int | None) -> int | None:
    """Bytes a process and its live children caused to be written to storage (/proc/PID/io)."""
    if pid is None:
        return None

    def one(p: int) -> int:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{p}/io").read_text().splitlines():
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
        return 0

    total = one(pid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    total += one(int(entry.name))
    return total


@dataclass
class Target:
    """What the workloads need to know about one server under test."""

    name: str
    ws: str
    http: str
    server_pid: int
    db_pid: int | None  # Parse's PostgreSQL postmaster; Reactor's SQLite is in its own process
    seed_accounts: Callable[[], Awaitable[None]]
    bank_total: Callable[[], Awaitable[tuple[int, float]]]
    flush: Callable[[], Awaitable[None]]  # write out what the database deferred (CHECKPOINT)
    # Bytes the database says it wrote so far (PostgreSQL: WAL bytes + 8 KiB per data page
    # written by the checkpointer, the background writer and backends); None for Reactor.
    db_written: Callable[[], Awaitable[int | None]]
    workdir: Path
    workers: list[Worker] = field(default_factory=list)

    def config(self, **fields: Any) -> dict[str, Any]:
        return {"target": self.name, "url": self.ws, "http": self.http, "app_id": APP_ID, **fields}

    def cpu(self) -> tuple[float | None, float | None]:
        server = tree_cpu_seconds(self.server_pid)
        db = tree_cpu_seconds(self.db_pid) if self.db_pid else None
        return server, db

    def written(self) -> int | None:
        return tree_write_bytes(self.db_pid or self.server_pid)

    async def worker(self, role: str, name: str, **fields: Any) -> NodeWorker:
        worker = NodeWorker(role, self.config(**fields), self.workdir / f"{self.name}-{name}.log")
        self.workers.append(worker)
        await worker.start()
        return worker


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _per(cpu_s: float | None, count: int) -> float | None:
    """Microseconds of CPU per operation."""
    return None if cpu_s is None or not count else round(1e6 * cpu_s / count, 1)


def _split(total: int, parts: int) -> list[tuple[int, int]]:
    base, extra = divmod(total, parts)
    out, start = [], 0
    for i in range(parts):
        count = base + (1 if i < extra else 0)
        out.append((start, count))
        start += count
    return [r for r in out if r[1]]


async def _subscribers(
    t: Target, name: str, *, total: int, query: str, expect: int
) -> list[NodeWorker]:
    subs = [
        await t.worker(
            "subscribers",
            f"{name}-{i}",
            start=start,
            count=count,
            query=query,
            expect_updates=expect,
            concurrency=32,
        )
        for i, (start, count) in enumerate(_split(total, 2))
    ]
    readies = await asyncio.gather(*(w.expect("ready", 180) for w in subs))
    connected = sum(int(r["connected"]) for r in readies)
    if connected < total:
        errors = [e for r in readies for e in r["errors"]][:3]
        raise BenchError(f"{t.name} {name}: {connected} of {total} subscribers connected: {errors}")
    return subs


async def _finish(workers: list[NodeWorker]) -> list[dict[str, Any]]:
    for w in workers:
        w.send("stop")
    results = list(await asyncio.gather(*(w.expect("result", 120) for w in workers)))
    await asyncio.gather(*(w.stop() for w in workers))
    return results


async def push_phase(
    t: Target, name: str, *, conns: int, writes: int, interval_s: float, shared: bool
) -> dict[str, Any]:
    subs = await _subscribers(
        t,
        f"push-{name}",
        total=conns,
        query="board" if shared else "mine",
        expect=writes if shared else 0,
    )
    writer = await t.worker(
        "writer",
        f"push-{name}-writer",
        count=writes,
        interval_s=interval_s,
        owner_prefix="w" if shared else "o",
        owners=0 if shared else conns,
        seed=7,
    )
    await writer.expect("ready", 30)
    (cpu0, db0), t0 = t.cpu(), time.monotonic()
    writer.send("go")
    wres = await writer.expect("result", writes * interval_s + 120)
    if shared:
        with contextlib.suppress(BenchError):
            await asyncio.gather(*(w.expect("done", 20) for w in subs))
    else:
        await asyncio.sleep(1.0)
    (cpu1, db1), elapsed = t.cpu(), time.monotonic() - t0
    results = await _finish(subs)
    await writer.stop()
    latencies = [v for r in results for v in r["latencies_ns"]]
    receipts = len(latencies)
    server_cpu, db_cpu = _delta(cpu0, cpu1), _delta(db0, db1)
    return {
        "connections": conns,
        "writes": int(wres["writes"]),
        "write_failures": int(wres["failures"]),
        "write_errors": wres["errors"],
        "receipts": receipts,
        "receipts_expected": int(wres["writes"]) * (conns if shared else 1),
        "latency_ms": summary_ms(latencies),
        "writer_ack_ms": summary_ms(wres["rtt_ns"]),
        "seconds": round(elapsed, 2),
        "server_cpu_s": server_cpu,
        "db_cpu_s": db_cpu,
        "server_cpu_per_push_us": None
        if not receipts or server_cpu is None
        else round(1e6 * server_cpu / receipts, 1),
        "db_cpu_per_push_us": None
        if not receipts or db_cpu is None
        else round(1e6 * db_cpu / receipts, 1),
        "closed_early": sum(int(r["closed_early"]) for r in results),
        "subscriber_errors": [e for r in results for e in r["errors"]][:5],
    }


async def idle_ack(t: Target, writes: int) -> dict[str, Any]:
    """The writer alone: its mutation round trip on a server with no subscribers."""
    writer = await t.worker(
        "writer", "idle-writer", count=writes, interval_s=0.02, owner_prefix="i", owners=0
    )
    await writer.expect("ready", 30)
    writer.send("go")
    wres = await writer.expect("result", writes + 60)
    await writer.stop()
    return {
        "writes": int(wres["writes"]),
        "ack_ms": summary_ms(wres["rtt_ns"]),
        "errors": wres["errors"],
    }


async def idle_rss(t: Target, conns: int) -> dict[str, Any]:
    await asyncio.sleep(1.0)
    before = rss_bytes(t.server_pid)
    subs = await _subscribers(t, "idle", total=conns, query="board", expect=0)
    await asyncio.sleep(3.0)  # settle
    after = rss_bytes(t.server_pid)
    await _finish(subs)
    per_conn = (
        None if before is None or after is None else round((after - before) / conns / 1024, 1)
    )
    return {
        "connections": conns,
        "rss_before_mib": _mib(before),
        "rss_after_mib": _mib(after),
        "per_conn_kib": per_conn,
    }


async def bank_phase(
    t: Target, name: str, *, clients: int, hot: float, duration_s: float
) -> dict[str, Any]:
    procs = 2 if clients >= 50 else 1
    workers = [
        await t.worker(
            "bank",
            f"bank-{name}-{i}",
            clients=count,
            duration_s=duration_s,
            accounts=ACCOUNTS,
            hot_fraction=hot,
            seed=100 * i + (7 if hot else 0) + clients,
        )
        for i, (_, count) in enumerate(_split(clients, procs))
    ]
    await asyncio.gather(*(w.expect("ready", 120) for w in workers))
    await t.flush()
    (cpu0, db0), written0, own0 = t.cpu(), t.written(), await t.db_written()
    for w in workers:
        w.send("go")
    results = await asyncio.gather(*(w.expect("result", duration_s + 120) for w in workers))
    (cpu1, db1) = t.cpu()
    await t.flush()
    written1, own1 = t.written(), await t.db_written()
    await asyncio.gather(*(w.stop() for w in workers))
    seconds = max(float(r["seconds"]) for r in results)
    ok = sum(int(r["ok"]) for r in results)
    written = None if written0 is None or written1 is None else written1 - written0
    return {
        "clients": clients,
        "hot_fraction": hot,
        "committed": ok,
        "seconds": round(seconds, 2),
        "transfers_per_s": round(ok / seconds, 1) if seconds else None,
        "occ_failures": sum(int(r["occ"]) for r in results),
        "other_failures": sum(int(r["other"]) for r in results),
        "hot_committed": sum(int(r["hot_ok"]) for r in results),
        "errors": [e for r in results for e in r["errors"]][:5],
        "latency_ms": summary_ms([v for r in results for v in r["latencies_ns"]]),
        "server_cpu_s": _delta(cpu0, cpu1),
        "db_cpu_s": _delta(db0, db1),
        "bytes_written": written,
        "bytes_per_transfer": round(written / ok) if written is not None and ok else None,
        "db_bytes_per_transfer": None
        if own0 is None or own1 is None or not ok
        else round((own1 - own0) / ok),
        "server_cpu_per_transfer_us": _per(_delta(cpu0, cpu1), ok),
        "db_cpu_per_transfer_us": _per(_delta(db0, db1), ok),
    }


async def measure(t: Target, quick: bool, out: dict[str, Any]) -> dict[str, Any]:
    """Every workload against one server, in the same order and with the same counts."""

    def n(full: int, small: int) -> int:
        return small if quick else full

    out["idle_ack"] = await idle_ack(t, n(50, 10))
    # Before the push phases: their garbage (and a later collection) would move the RSS.
    out["idle_rss"] = await idle_rss(t, n(3000, 300))
    out["push_distinct"] = await push_phase(
        t, "distinct", conns=n(1000, 100), writes=n(200, 20), interval_s=0.02, shared=False
    )
    out["push_shared"] = await push_phase(
        t, "shared", conns=n(1000, 100), writes=n(100, 10), interval_s=0.1, shared=True
    )
    t0 = time.monotonic()
    await t.seed_accounts()
    out["seed_s"] = round(time.monotonic() - t0, 1)
    count, total = await t.bank_total()
    out["balance_before"] = {"accounts": count, "total": total}
    seconds = float(n(10, 2))
    out["bank_uncontended"] = await bank_phase(
        t, "uncontended", clients=50, hot=0.0, duration_s=seconds
    )
    out["bank_contended"] = await bank_phase(
        t, "contended", clients=50, hot=0.8, duration_s=seconds
    )
    for clients in (100, 200):
        out[f"bank_{clients}"] = await bank_phase(
            t, f"c{clients}", clients=clients, hot=0.0, duration_s=float(n(5, 2))
        )
    count, total = await t.bank_total()
    expected = ACCOUNTS * INITIAL_BALANCE
    out["balance"] = {
        "accounts": count,
        "after": total,
        "expected": expected,
        "conserved": count == ACCOUNTS and total == expected,
    }
    return out


# -- the two servers ---------------------------------------------------------------------------


async def run_reactor(quick: bool, out: dict[str, Any]) -> dict[str, Any]:
    workdir = make_workdir("peers-reactor")
    server = Server(workdir=workdir)
    target: Target | None = None
    try:
        await server.start()

        async def seed() -> None:
            for start in range(0, ACCOUNTS, 500):
                await server.call(
                    "mutation",
                    "bank:seed",
                    {"start": float(start), "count": 500.0, "balance": INITIAL_BALANCE},
                )

        async def total() -> tuple[int, float]:
            value = await server.call("query", "bank:total", {})
            return int(value["count"]), float(value["total"])

        async def flush() -> None:
            return None  # SQLite checkpoints its WAL itself, inside the measured interval

        async def no_db_count() -> int | None:
            return None

        target = Target(
            name="reactor",
            ws=server.ws,
            http=server.http,
            server_pid=server.pid,
            db_pid=None,
            seed_accounts=seed,
            bank_total=total,
            flush=flush,
            db_written=no_db_count,
            workdir=workdir,
        )
        return await measure(target, quick, out)
    finally:
        if target is not None:
            await asyncio.gather(*(w.stop() for w in target.workers), return_exceptions=True)
        await server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def run_parse(quick: bool, out: dict[str, Any]) -> dict[str, Any]:
    bindir = await asyncio.to_thread(ensure_postgres)
    await asyncio.to_thread(ensure_node_modules)
    workdir = make_workdir("peers-parse")
    pg = Postgres(bindir, workdir)
    parse: ParseProcess | None = None
    target: Target | None = None
    try:
        await asyncio.to_thread(pg.start)
        out["postgres"] = (await asyncio.to_thread(pg.psql, "SHOW server_version")).strip()
        parse = ParseProcess(pg.url, workdir)
        await parse.start()
        p = parse
        await p.rest("POST", "/classes/Task", {"owner": "seed", "title": "seed"})  # the class

        async def seed() -> None:
            # One account alone first: it creates the class (a batch would race to create it).
            first = {"objectId": "a0", "n": 0, "balance": INITIAL_BALANCE}
            await p.rest("POST", "/classes/Account", first)
            for start in range(0, ACCOUNTS, 500):
                requests = [
                    {
                        "method": "POST",
                        "path": "/parse/classes/Account",
                        "body": {"objectId": f"a{n}", "n": n, "balance": INITIAL_BALANCE},
                    }
                    for n in range(max(start, 1), start + 500)
                ]
                answers = await p.rest("POST", "/batch", {"requests": requests})
                bad = [a for a in answers if "success" not in a]
                if bad:
                    raise BenchError(f"seeding Parse accounts: {bad[:2]}")

        async def total() -> tuple[int, float]:
            found = await p.rest("GET", f"/classes/Account?limit={ACCOUNTS * 2}&keys=balance")
            balances = [float(r.get("balance", 0)) for r in found["results"]]
            return len(balances), sum(balances)

        async def flush() -> None:
            await asyncio.to_thread(pg.psql, "CHECKPOINT")

        async def db_written() -> int | None:
            sql = (
                "SELECT (SELECT wal_bytes FROM pg_stat_wal) + 8192 * (buffers_checkpoint"
                " + buffers_clean + buffers_backend) FROM pg_stat_bgwriter"
            )
            return int(float((await asyncio.to_thread(pg.psql, sql)).strip()))

        target = Target(
            name="parse",
            ws=parse.ws,
            http=parse.http,
            server_pid=parse.pid,
            db_pid=pg.pid,
            seed_accounts=seed,
            bank_total=total,
            flush=flush,
            db_written=db_written,
            workdir=workdir,
        )
        return await measure(target, quick, out)
    finally:
        if target is not None:
            await asyncio.gather(*(w.stop() for w in target.workers), return_exceptions=True)
        try:
            if parse is not None:
                await parse.stop()
        finally:
            pg.stop()  # whatever happened above: a cluster left running outlives the bench
            shutil.rmtree(workdir, ignore_errors=True)


async def run_peers(quick: bool, out: dict[str, Any]) -> dict[str, Any]:
    from bench.sections import Scale, run_limits

    # Install first (it can take minutes), so that nothing is measured while apt or npm runs.
    await asyncio.to_thread(ensure_postgres)
    await asyncio.to_thread(ensure_node_modules)
    out["limits"] = {}
    await run_limits(Scale(quick=quick), out["limits"])
    out["reactor"] = {}
    await run_reactor(quick, out["reactor"])
    out["parse"] = {}
    await run_parse(quick, out["parse"])
    # Again at the end: on a shared machine one measurement of the limit can be a bad moment.
    out["limits_after"] = {}
    await run_limits(Scale(quick=quick), out["limits_after"])
    return out


# -- the table ---------------------------------------------------------------------------------


def _mib(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)  # type: ignore[assignment]
    return data


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int) or (isinstance(value, float) and digits == 0):
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _ratio(a: Any, b: Any) -> str:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return ""
    return f"{a / b:.2f}x"


# (label, path under each server's figures, unit, digits, better when: "lower" | "higher")
METRICS: list[tuple[str, tuple[str, ...], str, int, str]] = [
    (
        "push, {conns} conns on distinct queries, p50",
        ("push_distinct", "latency_ms", "p50"),
        "ms",
        2,
        "lower",
    ),
    (
        "push, {conns} conns on distinct queries, p99",
        ("push_distinct", "latency_ms", "p99"),
        "ms",
        2,
        "lower",
    ),
    (
        "push, {conns} conns on one shared query, p50",
        ("push_shared", "latency_ms", "p50"),
        "ms",
        2,
        "lower",
    ),
    (
        "push, {conns} conns on one shared query, p99",
        ("push_shared", "latency_ms", "p99"),
        "ms",
        2,
        "lower",
    ),
    (
        "server CPU per pushed message (shared query)",
        ("push_shared", "server_cpu_per_push_us"),
        "µs",
        1,
        "lower",
    ),
    (
        "  + database CPU per pushed message",
        ("push_shared", "db_cpu_per_push_us"),
        "µs",
        1,
        "lower",
    ),
    (
        "writer's own ack during the shared fan-out, p50",
        ("push_shared", "writer_ack_ms", "p50"),
        "ms",
        2,
        "lower",
    ),
    (
        "writer's own ack during the shared fan-out, p99",
        ("push_shared", "writer_ack_ms", "p99"),
        "ms",
        2,
        "lower",
    ),
    ("writer's ack with no subscribers, p50", ("idle_ack", "ack_ms", "p50"), "ms", 2, "lower"),
    (
        "transfers/s, 50 clients, uncontended",
        ("bank_uncontended", "transfers_per_s"),
        "/s",
        0,
        "higher",
    ),
    (
        "server CPU per transfer (uncontended)",
        ("bank_uncontended", "server_cpu_per_transfer_us"),
        "µs",
        0,
        "lower",
    ),
    (
        "  + database CPU per transfer",
        ("bank_uncontended", "db_cpu_per_transfer_us"),
        "µs",
        0,
        "lower",
    ),
    (
        "bytes written per transfer, kernel write_bytes (inflated)",
        ("bank_uncontended", "bytes_per_transfer"),
        "B",
        0,
        "lower",
    ),
    (
        "  PostgreSQL's own count: WAL + 8 KiB pages",
        ("bank_uncontended", "db_bytes_per_transfer"),
        "B",
        0,
        "lower",
    ),
    (
        "transfers/s, 50 clients, 80 % on two hot accounts",
        ("bank_contended", "transfers_per_s"),
        "/s",
        0,
        "higher",
    ),
    (
        "  failed transfers (OCC / other), contended",
        ("bank_contended", "occ_failures"),
        "",
        0,
        "lower",
    ),
    ("transfer p50, 100 clients", ("bank_100", "latency_ms", "p50"), "ms", 1, "lower"),
    ("transfer p99, 100 clients", ("bank_100", "latency_ms", "p99"), "ms", 1, "lower"),
    ("transfer p50, 200 clients", ("bank_200", "latency_ms", "p50"), "ms", 1, "lower"),
    ("transfer p99, 200 clients", ("bank_200", "latency_ms", "p99"), "ms", 1, "lower"),
    ("idle subscribed connection, server RSS", ("idle_rss", "per_conn_kib"), "KiB", 1, "lower"),
]


def best_limits(*runs: dict[str, Any]) -> dict[str, Any]:
    """The better of the raw limits measured at the start and at the end of the run."""
    rates = [r["sqlite_txn_per_s"] for r in runs if r.get("sqlite_txn_per_s")]
    best: dict[str, Any] = {"sqlite_txn_per_s": max(rates) if rates else None, "ws_rtt_ms": {}}
    for key in ("p50", "p99"):
        rtts = [r["ws_rtt_ms"][key] for r in runs if (r.get("ws_rtt_ms") or {}).get(key)]
        best["ws_rtt_ms"][key] = min(rtts) if rtts else None
    return best


def _limit(label: str, limits: dict[str, Any], value: Any) -> str:
    """The raw limit measured in the same run, and Reactor's figure against it."""
    tps = limits.get("sqlite_txn_per_s")
    rtt = limits.get("ws_rtt_ms") or {}
    if "transfers/s" in label and tps:
        return f"SQLite 2-row txn {tps:,.0f}/s ({_ratio(value, tps)})"
    if label.startswith("push") or label.startswith("writer's"):
        key = "p99" if label.endswith("p99") else "p50"
        if rtt.get(key):
            return f"ws echo RTT {key} {rtt[key]:.3f} ms ({_ratio(value, rtt[key])})"
    return ""


def peers_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(workload, Reactor, Parse + LiveQuery, Reactor ÷ Parse, raw limit) for every figure."""
    reactor = results.get("reactor") or {}
    parse = results.get("parse") or {}
    limits = best_limits(results.get("limits") or {}, results.get("limits_after") or {})
    out = []
    conns = _get(reactor, "push_distinct", "connections") or _get(
        parse, "push_distinct", "connections"
    )
    for label, path, unit, digits, better in METRICS:
        label = label.replace("{conns}", f"{conns:,}" if conns else "?")
        r, p = _get(reactor, *path), _get(parse, *path)
        if label.startswith("  failed"):

            def fails(side: dict[str, Any]) -> str:
                phase = side.get("bank_contended") or {}
                if not phase:
                    return "n/a"
                return f"{phase.get('occ_failures', 0):,} / {phase.get('other_failures', 0):,}"

            out.append((label, fails(reactor), fails(parse), "", ""))
            continue
        ratio = _ratio(r, p)
        if ratio:
            if abs(r / p - 1) < 0.03:
                ratio += " (even)"
            else:
                ratio += " (better)" if (r < p if better == "lower" else r > p) else " (worse)"
        out.append(
            (
                label,
                f"{_num(r, digits)} {unit}".strip() if r is not None else "n/a",
                f"{_num(p, digits)} {unit}".strip() if p is not None else "n/a",
                ratio,
                _limit(label, limits, r),
            )
        )
    for side, name in ((reactor, "Reactor"), (parse, "Parse")):
        balance = side.get("balance")
        if balance:
            out.append(
                (
                    f"{name}: total balance conserved",
                    "yes"
                    if balance["conserved"]
                    else f"NO ({balance['after']} of {balance['expected']})",
                    "",
                    "",
                    "",
                )
            )
    return out


NOTES = [
    "push latency = receipt at the subscriber - the writer's send time carried in the task's "
    "title (one clock): it includes the write's own path, for both servers.",
    "Reactor pushes the whole query result (10 newest tasks); LiveQuery pushes the one created "
    "object and ignores order and limit.",
    "Parse transfer = one /batch request, transaction: true, of two Increment operations in "
    "account order: no read-modify-write (Parse has no multi-object read-modify-write); "
    "Reactor's bank:transfer reads both balances and writes both documents, serializably.",
    "CPU: Reactor = its process and its function runners (SQLite inside); Parse = its Node "
    "process (REST + LiveQuery); PostgreSQL's processes on the '+ database' line.",
    "bytes written: /proc/PID/io write_bytes of the Reactor server tree / of PostgreSQL "
    "(after a CHECKPOINT, so deferred page writes count). This kernel counts a whole large "
    "folio (up to 2 MiB) each time a write re-dirties one, so overwrites inside big files "
    "(PostgreSQL's preallocated WAL segments, SQLite's reused WAL) are inflated; PostgreSQL's "
    "own count (pg_stat_wal.wal_bytes + 8 KiB x pages written) is the logical figure.",
    "Reactor ÷ Parse: 'better' / 'worse' say which way the figure points; raw limits: the "
    "better of the runs at the start and at the end of the section.",
]


def render_peers(report: dict[str, Any]) -> str:
    results = report.get("results") or {}
    machine = report.get("machine") or {}
    header = (
        "workload",
        "Reactor",
        "Parse + LiveQuery",
        "Reactor ÷ Parse",
        "raw limit (Reactor vs it)",
    )
    table = [header, *peers_rows(results)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]

    def line(r: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()

    parse = results.get("parse") or {}
    lines = [
        "Reactor vs Parse Server "
        + PARSE_VERSION
        + " + LiveQuery"
        + (f" on PostgreSQL {parse['postgres']}" if parse.get("postgres") else "")
        + ("  (--quick: counts scaled down ~10x)" if report.get("quick") else ""),
        f"  {machine.get('date')} | {machine.get('cores')} cores ({machine.get('cpu_model')}) | "
        f"{machine.get('mem_total_gib')} GiB | code {machine.get('revision') or 'unknown'}"
        + (
            f" | load average (1, 5, 15 min) {machine['load_average_before']} before, "
            f"{machine.get('load_average_after')} after"
            if machine.get("load_average_before")
            else ""
        ),
        "  both driven by bench/peers/harness.mjs (Node, ws); servers and load share the cores; "
        "127.0.0.1 only",
        "",
        line(header),
        "  ".join("-" * w for w in widths),
        *(line(r) for r in table[1:]),
        "",
        *NOTES,
    ]
    for name, error in (report.get("errors") or {}).items():
        lines += ["", f"{name}: FAILED: {error}"]
    return "\n".join(lines)


def main_peers(quick: bool, json_path: Path) -> int:
    """Run the section (installing what it needs), print the table, save the JSON report."""
    machine = machine_facts()
    load_before = [round(x, 1) for x in os.getloadavg()]
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    print("[bench] peers ...", file=sys.stderr, flush=True)
    t0 = time.monotonic()

    async def go() -> None:
        try:
            await asyncio.wait_for(run_peers(quick, results), SECTION_TIMEOUT_S)
        except TimeoutError:
            errors["peers"] = f"timed out after {SECTION_TIMEOUT_S:.0f} s"
        except BenchError as exc:
            errors["peers"] = str(exc)
        except Exception as exc:
            errors["peers"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        finally:
            kill_all()

    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop PostgreSQL (pg_ctl daemonizes it:
    # kill_all cannot reach it) and Parse Server.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    atexit.register(stop_clusters)
    try:
        asyncio.run(go())
    except KeyboardInterrupt:
        kill_all()
        stop_clusters()
        print("\ninterrupted", file=sys.stderr)
        return 130
    print(f"[bench] peers done in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    machine["load_average_before"] = load_before
    machine["load_average_after"] = [round(x, 1) for x in os.getloadavg()]
    report = {"machine": machine, "quick": quick, "results": results, "errors": errors}
    print(render_peers(report))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults written to {json_path}")
    return 1 if errors else 0
