"""Function runners, end to end: whatever app code does, it fails only its own call.

Each test runs a real ``reactor serve`` (runner processes included) on a small app whose
functions misbehave on request, and drives it over HTTP and websockets with the Python client
while a bystander measures its own mutation→push round trips.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from client_sdk import AsyncReactorClient, FunctionFailed
from tests.e2e.conftest import ReactorServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

APP = {
    "schema.py": """
        from schema import define_schema, define_table, v

        schema = define_schema(
            {
                "items": define_table({"name": v.string(), "n": v.optional(v.float64())}),
                "marks": define_table({"name": v.string()}),
            }
        )
    """,
    "items.py": """
        from functions import mutation, query
        from schema import v

        @mutation(args={"name": v.string()})
        async def add(ctx, name):
            return await ctx.db.insert("items", {"name": name})

        @query(args={})
        async def count(ctx):
            return len(await ctx.db.query("items").collect())

        @mutation(args={"name": v.string()})
        async def mark(ctx, name):
            return await ctx.db.insert("marks", {"name": name})

        @mutation(args={"name": v.string()})
        async def bump(ctx, name):
            items = ctx.db.query("items")
            found = await items.filter(lambda q: q.eq(q.field("name"), name)).first()
            if found is None:
                await ctx.db.insert("items", {"name": name, "n": 1.0})
                return 1.0
            await ctx.db.patch(found["_id"], {"n": found["n"] + 1})
            return found["n"] + 1

        @query(args={"name": v.string()})
        async def bumps(ctx, name):
            items = ctx.db.query("items")
            found = await items.filter(lambda q: q.eq(q.field("name"), name)).first()
            return None if found is None else found["n"]

        @query(args={})
        async def marks(ctx):
            return [m["name"] for m in await ctx.db.query("marks").collect()]
    """,
    "bad.py": """
        import asyncio
        import ctypes
        import os
        import time

        from functions import AppError, action, mutation, query
        from schema import v

        def misbehave(kind):
            if kind == "loop":
                while True:
                    pass
            if kind == "exit":
                raise SystemExit(3)
            if kind == "interrupt":
                raise KeyboardInterrupt
            if kind == "cancelled":
                raise asyncio.CancelledError
            if kind == "generator_exit":
                raise GeneratorExit
            if kind == "os_exit":
                os._exit(3)
            if kind == "segfault":
                ctypes.string_at(0)
            if kind == "memory":
                hog = []
                while True:
                    hog.append(bytearray(64 << 20))
            if kind == "recursion":
                def deeper(n):
                    return deeper(n + 1) + 1
                deeper(0)
            if kind == "unencodable_result":
                return "\\ud800"
            if kind == "unencodable_error":
                raise AppError("\\ud800")
            return "fine"

        @query(args={"kind": v.string()})
        async def q(ctx, kind):
            await ctx.db.query("items").collect()
            return misbehave(kind)

        @mutation(args={"kind": v.string()})
        async def m(ctx, kind):
            await ctx.db.insert("items", {"name": "from " + kind})
            return misbehave(kind)

        @action(args={"kind": v.string()})
        async def a(ctx, kind):
            return misbehave(kind)

        @query(args={"n": v.float64()})
        async def loop_forever(ctx, n):
            while True:
                pass

        @query(args={"seconds": v.float64()})
        async def spin(ctx, seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
            return seconds

        @action(args={"seconds": v.float64()})
        async def burn(ctx, seconds):
            end = time.monotonic() + seconds
            n = 0
            while time.monotonic() < end:
                n += 1
            return n

        @query(args={})
        async def sleepy(ctx):
            n = len(await ctx.db.query("items").collect())
            await asyncio.sleep(5)
            return n

        @mutation(args={"name": v.string(), "pid_file": v.string()})
        async def stuck(ctx, name, pid_file):
            await ctx.db.insert("marks", {"name": name})
            with open(pid_file, "w") as out:
                out.write(str(os.getpid()))
            time.sleep(60)
    """,
}

# Every process that imports the app's modules signs this file beside the app directory.
APP["loaded_by.py"] = """
    import os

    with open(os.path.join(os.path.dirname(__file__), "..", "loaded_by.txt"), "a") as out:
        out.write(f"{os.getpid()}\\n")
"""

KINDS = [
    "loop",
    "exit",
    "interrupt",
    "cancelled",
    "generator_exit",
    "os_exit",
    "segfault",
    "memory",
    "recursion",
    "unencodable_result",
    "unencodable_error",
]


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runners_app") / "app"
    root.mkdir()
    for name, text in APP.items():
        (root / name).write_text(textwrap.dedent(text).lstrip())
    return root


def _server(
    tmp_path_factory: pytest.TempPathFactory, app_dir: Path, *flags: str
) -> Iterator[ReactorServer]:
    base = tmp_path_factory.mktemp("runners")
    server = ReactorServer(base / "data", base / "server.log", app_dir=app_dir, flags=flags)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, app_dir: Path) -> Iterator[ReactorServer]:
    yield from _server(
        tmp_path_factory,
        app_dir,
        "--runner-memory-mb",
        "768",
        "--function-timeout",
        "1",
        "--action-timeout",
        "3",
    )


@pytest.fixture(scope="module")
def patient_server(
    tmp_path_factory: pytest.TempPathFactory, app_dir: Path
) -> Iterator[ReactorServer]:
    """Queries may run 10 s here (a live query that sleeps 5 s is legitimate), actions 10 min."""
    yield from _server(tmp_path_factory, app_dir, "--function-timeout", "10")


def post(server: ReactorServer, kind: str, path: str, args: dict[str, object]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/{kind}",
        json={"path": path, "args": args, "format": "json"},
        timeout=30,
    )


class Bystander:
    """A client whose own mutation→push round trips are timed while something else runs."""

    def __init__(self, client: AsyncReactorClient) -> None:
        self.client = client

    async def round_trips(self, count: int, pause_s: float = 0.02) -> list[float]:
        sub = self.client.subscribe("items:marks")
        seen = len(await sub.__anext__())
        times = []
        for i in range(count):
            start = time.perf_counter()
            await self.client.mutation("items:mark", {"name": f"m{i}"})
            while True:
                names = await asyncio.wait_for(sub.__anext__(), 10)
                if len(names) > seen:
                    seen = len(names)
                    break
            times.append(time.perf_counter() - start)
            await asyncio.sleep(pause_s)
        await sub.aclose()
        return times


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def _while_running(
    work: Callable[[], httpx.Response], bystander: Bystander, count: int
) -> tuple[httpx.Response, list[float]]:
    loop = asyncio.get_running_loop()
    pending = loop.run_in_executor(None, work)
    await asyncio.sleep(0.3)  # the runaway is under way
    times = await bystander.round_trips(count)
    return await pending, times


def test_the_server_never_runs_app_code(server: ReactorServer, app_dir: Path) -> None:
    """The server knows the app from a runner's manifest: only runners import its modules."""
    assert server.proc is not None
    signed = (app_dir.parent / "loaded_by.txt").read_text().split()
    assert signed, "no runner loaded the app"
    assert str(server.proc.pid) not in signed, signed
    body = post(server, "query", "items:count", {}).json()
    assert body["status"] == "success", body


def _runner_nice_values(server_pid: int) -> list[int]:
    values = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == server_pid and b"reactor.runners.worker" in cmdline:
            values.append(int(stat[16]))  # field 19 of proc(5): nice
    return values


def test_action_runners_run_at_a_lower_cpu_priority(server: ReactorServer) -> None:
    """A CPU-bound action gets only the CPU the server and the query runners leave."""
    assert server.proc is not None
    values = _runner_nice_values(server.proc.pid)
    assert 0 in values and 10 in values, values


async def test_a_query_looping_forever_times_out_alone(server: ReactorServer) -> None:
    async with AsyncReactorClient(server.url) as client:
        bystander = Bystander(client)
        baseline = await bystander.round_trips(20)

        started = time.monotonic()

        def runaway(n: int = 0) -> httpx.Response:
            return post(server, "query", "bad:loop_forever", {"n": n})

        response, during = await _while_running(runaway, bystander, 40)
        took = time.monotonic() - started
        body = response.json()
        assert body["status"] == "error", body
        assert "timed out" in body["errorMessage"], body
        assert took < 1.0 + 1.0 + 0.5, took  # the limit plus 1 s (plus the set-up pause)
        assert httpx.get(f"{server.url}/version", timeout=5).status_code == 200
        # The bystander's round trips stay fast while a runner spins one of the two cores.
        assert p99(during) < max(0.05, 3 * p99(baseline)), (baseline, during)
        # The next call is served by a fresh runner.
        again = post(server, "query", "bad:spin", {"seconds": 0.01}).json()
        assert again == {"status": "success", "value": 0.01}

        # Now quarantined, the runaway holds one runner of its own however many clients call
        # it at once: three of them (distinct arguments, so three runs) do not starve the pool.
        with ThreadPoolExecutor(3) as pool:
            calls = [pool.submit(runaway, n) for n in (1, 2, 3)]
            time.sleep(0.3)  # all three are under way
            started = time.monotonic()
            assert post(server, "query", "items:count", {}).json()["status"] == "success"
            waited = time.monotonic() - started
            answers = [call.result() for call in calls]
        assert all("timed out" in a.json()["errorMessage"] for a in answers), answers
        assert waited < 0.3, waited  # not the second a whole busy pool would cost
    server.assert_alive()


@pytest.mark.parametrize("kind", KINDS)
async def test_every_failure_fails_only_its_call(server: ReactorServer, kind: str) -> None:
    before = post(server, "query", "items:count", {}).json()["value"]
    async with (
        AsyncReactorClient(server.url) as victim,
        AsyncReactorClient(server.url) as other,
    ):
        watch = other.subscribe("items:count")
        assert await watch.__anext__() == before
        live = victim.subscribe("bad:q", {"kind": kind})
        with pytest.raises(FunctionFailed) as live_failure:
            await asyncio.wait_for(live.__anext__(), 15)
        # A mutation over the websocket, then over HTTP: an error, and nothing committed.
        with pytest.raises(FunctionFailed) as ws_failure:
            await asyncio.wait_for(victim.mutation("bad:m", {"kind": kind}), 15)
        http_mutation = post(server, "mutation", "bad:m", {"kind": kind}).json()
        http_query = post(server, "query", "bad:q", {"kind": kind}).json()
        http_action = post(server, "action", "bad:a", {"kind": kind}).json()
        # Every other subscription, on this socket and on others, keeps updating.
        mine = victim.subscribe("items:count")
        assert await asyncio.wait_for(mine.__anext__(), 10) == before
        await victim.mutation("items:add", {"name": "after " + kind})
        assert await asyncio.wait_for(watch.__anext__(), 10) == before + 1
        assert await asyncio.wait_for(mine.__anext__(), 10) == before + 1
    for message in (
        str(live_failure.value),
        str(ws_failure.value),
        http_mutation.get("errorMessage", ""),
        http_query.get("errorMessage", ""),
        http_action.get("errorMessage", ""),
    ):
        assert message, (kind, http_mutation, http_query, http_action)
    assert http_mutation["status"] == http_query["status"] == http_action["status"] == "error"
    # Nothing the failed mutations wrote was committed.
    assert post(server, "query", "items:count", {}).json()["value"] == before + 1
    server.assert_alive()


async def test_conflicting_mutations_on_runners_are_serializable(server: ReactorServer) -> None:
    """Read-modify-write mutations from many clients at once: each increment lands exactly once
    (a runner's read set reaches the server's OCC check)."""
    name = f"counter-{time.monotonic_ns()}"
    assert post(server, "mutation", "items:bump", {"name": name}).json()["value"] == 1.0

    async def bump_many(count: int) -> None:
        async with AsyncReactorClient(server.url) as client:
            for _ in range(count):
                await client.mutation("items:bump", {"name": name})

    await asyncio.gather(*(bump_many(10) for _ in range(8)))
    assert post(server, "query", "items:bumps", {"name": name}).json()["value"] == 81.0


async def test_a_cpu_bound_action_does_not_slow_bystanders(
    patient_server: ReactorServer,
) -> None:
    server = patient_server
    async with AsyncReactorClient(server.url) as client:
        bystander = Bystander(client)
        baseline = await bystander.round_trips(30)

        def burn() -> httpx.Response:
            return post(server, "action", "bad:burn", {"seconds": 10.0})

        response, during = await _while_running(burn, bystander, 100)
        assert response.json()["status"] == "success"
    assert statistics.median(during) < max(0.02, 3 * statistics.median(baseline)), (
        statistics.median(baseline),
        statistics.median(during),
    )


async def test_a_slow_live_query_delays_only_its_own_subscribers(
    patient_server: ReactorServer,
) -> None:
    server = patient_server
    async with (
        AsyncReactorClient(server.url) as slow_client,
        AsyncReactorClient(server.url) as fast_client,
    ):
        slow = slow_client.subscribe("bad:sleepy")
        fast = fast_client.subscribe("items:count")
        first = await asyncio.wait_for(fast.__anext__(), 10)
        await asyncio.wait_for(slow.__anext__(), 15)
        pushes = []
        for i in range(3):
            start = time.perf_counter()
            await fast_client.mutation("items:add", {"name": f"fast {i}"})
            while await asyncio.wait_for(fast.__anext__(), 10) != first + i + 1:
                pass
            pushes.append(time.perf_counter() - start)
        assert max(pushes) < 1.0, pushes  # not the 5 s the slow query takes per write
        assert await asyncio.wait_for(slow.__anext__(), 15) >= first + 1


async def test_a_runner_killed_mid_mutation_commits_nothing(
    server: ReactorServer, tmp_path: Path
) -> None:
    before = set(post(server, "query", "items:marks", {}).json()["value"])
    pid_file = tmp_path / "runner.pid"
    async with AsyncReactorClient(server.url) as client:
        args = {"name": "stuck", "pid_file": str(pid_file)}
        call = asyncio.ensure_future(client.mutation("bad:stuck", args))
        deadline = time.monotonic() + 10
        while not (pid_file.exists() and pid_file.read_text()):
            assert time.monotonic() < deadline, "the mutation never started"
            await asyncio.sleep(0.05)
        os.kill(int(pid_file.read_text()), 9)
        with pytest.raises(FunctionFailed) as failure:
            await asyncio.wait_for(call, 15)
        assert "killed by SIGKILL" in str(failure.value)
        assert "nothing it wrote was committed" in str(failure.value)
    after = set(post(server, "query", "items:marks", {}).json()["value"])
    assert after == before
    server.assert_alive()
