"""The function-runner pools: app code runs in worker processes, never in the server.

Owns starting runner processes (``reactor.runners.worker``) and replacing them, handing each
call to a free runner, the deadline of every call (enforced from outside: a query runner past
it is killed; an action runner is first asked to cancel the action, and killed only if it
does not within ``CANCEL_GRACE_S``), and answering the calls back an action's ``ctx`` makes.
Queries and mutations share one pool (one call per runner at a time); actions and HTTP
actions another (several per runner), so long actions never starve short functions. A call
whose runner dies, for whatever reason, fails alone with a clear error; the pool starts a
fresh runner in its place.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from reactor.core.system_tables import TableRegistry
from reactor.core.tasks import start_task
from reactor.engine.invocation import (
    OUT_OF_MEMORY,
    ActionServices,
    FunctionResult,
    HttpCall,
    HttpReply,
    MutationBatch,
    MutationCall,
    describe_failure,
)
from reactor.errors import AppLoadFailed
from reactor.runners import wire
from schema.errors import FunctionError, ReactorError, UserError
from schema.values import dumps, loads

__all__ = ["AppLoadFailed", "RunnerPools", "RunnerSettings", "RunnerSetup", "probe_app"]

log = logging.getLogger("reactor.runners")

FUNCTION_TIMEOUT = wire.FUNCTION_TIMEOUT
# How long an action cancelled at its deadline has to end before its runner is killed (its
# event loop is blocked, or it swallowed the cancellation).
CANCEL_GRACE_S = 1.0
_CALL_IDS = itertools.count(1)
# How long a query or mutation that timed out or crashed its runner runs on a runner of its own.
QUARANTINE_S = 60.0
RUNNER_CRASHED = "RunnerCrashed"
# Why a call sent to a runner has no outcome (besides the runner's exit reason).
TIMEOUT = "timeout"
RETRY = "retry"  # it never started: the runner died running a call queued before it
# A sequential runner takes a call queued behind the one it is running only if that one
# started less than this long ago: a slow call must not hold up a fast one.
PIPELINE_BEHIND_S = 0.002
QUERY_PIPELINE = 2  # calls a query runner holds: the one it runs and the next
# Action runners run at a lower CPU priority than the server and the query runners: a
# CPU-bound action takes what they leave, never what they need.
ACTION_NICE = 10
# A call still queued after this long (the one ahead turned out slow) runs elsewhere instead.
RESCUE_AFTER_S = 0.005


class _PoolClosed(Exception):
    """The pool a call waited on was retired (a reload) or stopped: take the current one."""


@dataclass(frozen=True, slots=True)
class _Restarted:
    """Why a call has no outcome: its runner was killed for another call (``cause``)."""

    cause: str


Outcome = wire.Done | wire.HttpDone | str | _Restarted


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    """Pool sizes and limits (``reactor serve --query-runners N ...``)."""

    query_runners: int
    action_runners: int
    function_timeout_s: float = 1.0  # a query or mutation (Convex: 1 s)
    action_timeout_s: float = 600.0  # an action or HTTP action (Convex: 10 min)
    memory_mb: int = 1024  # address space of one runner; 0: no cap
    actions_per_runner: int = 8  # actions one action runner runs at once
    load_timeout_s: float = 60.0  # loading the app in a runner

    @classmethod
    def for_machine(cls, **overrides: Any) -> RunnerSettings:
        """Defaults from the CPU count: one query runner per core, half as many action
        runners (at least one each); ``overrides`` win."""
        cores = os.cpu_count() or 1
        values: dict[str, Any] = {
            "query_runners": max(1, cores),
            "action_runners": max(1, cores // 2),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass(slots=True)
class RunnerSetup:
    """What every runner of a deployment loads and reads (read again at each start)."""

    directory: Path
    storage: str
    env: Callable[[], Mapping[str, str]]
    tables: TableRegistry
    dev: bool
    blob_directory: str | None
    secret: Callable[[], str | None]
    base_url: Callable[[], str]
    # The newest published commit (``Publisher.last_commit_ts``): a call at a ts past it (a
    # tick) reads a snapshot that must hold that commit, not the ts (``Call.holds``).
    last_commit: Callable[[], int] = lambda: 0

    @classmethod
    def probing(cls, directory: Path, env: Mapping[str, str]) -> RunnerSetup:
        """The setup of a runner that only loads the app (``probe_app``)."""
        return cls(
            directory, "", lambda: env, TableRegistry(), False, None, lambda: None, lambda: ""
        )


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class _Runner:
    """One runner process and the calls it is running."""

    def __init__(
        self,
        setup: RunnerSetup,
        settings: RunnerSettings,
        kind: str,
        *,
        probe: bool = False,
        sequential: bool = False,
        timeout_s: float = 0.0,
    ) -> None:
        self.setup = setup
        self.settings = settings
        self.kind = kind
        self.probe = probe  # only load the app (no data to read: it may not exist yet)
        # Sequential runners run their calls one at a time, in the order sent, so the server
        # may send the next call before the last one ends (no idle gap between calls): each
        # call's deadline starts when the one before it ends, and the calls queued behind one
        # that killed the runner, or that turned out slow, run again elsewhere (``RETRY``).
        # Other runners run their calls concurrently, each with its own deadline from its send.
        self.sequential = sequential
        self.timeout_s = timeout_s
        self.process: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None
        # The calls sent and not yet answered, in the order sent; ``head_started`` is when the
        # oldest one started running (sequential runners), ``_timers`` their deadlines.
        self.calls: dict[int, asyncio.Future[Outcome]] = {}
        self.head_started = 0.0
        self._timers: dict[int, asyncio.TimerHandle] = {}
        # What each call runs (for errors), the calls cancelled at their deadline and not yet
        # answered (concurrent runners: ``_expire``), and why the runner was killed, if for a
        # call of its own: its other calls are told so.
        self.labels: dict[int, str] = {}
        self.expiring: set[int] = set()
        self.restart_cause: str | None = None
        self.services: dict[int, ActionServices] = {}
        self.on_free: Callable[[], None] = lambda: None  # a call ended: room for another
        self.tables_generation = -1
        self.alive = False
        self.manifest = b""  # a probe's description of the app (``functions.manifest``)
        self.env_sent: Mapping[str, str] | None = None  # the variables this runner has
        self._reader_task: asyncio.Task[None] | None = None
        self._rpc_tasks: set[asyncio.Task[None]] = set()

    @property
    def load(self) -> int:
        return len(self.calls)

    async def start(self) -> None:
        """Spawn the process and wait until it has loaded the app.

        Raises:
            AppLoadFailed: the app failed to load or took longer than ``load_timeout_s``.
        """
        parent, child = socket.socketpair()
        env = dict(os.environ)
        env.setdefault("MALLOC_ARENA_MAX", "2")  # keeps the address-space cap meaningful
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "reactor.runners.worker",
                str(child.fileno()),
                pass_fds=(child.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                env=env,
            )
        except BaseException:
            parent.close()  # cancelled (the pool stopped) or could not start
            raise
        finally:
            child.close()
        reader, self.writer = await asyncio.open_connection(sock=parent)
        setup = self.setup
        self.env_sent = setup.env()
        wire.write_frame(
            self.writer,
            wire.Init(
                str(setup.directory),
                "" if self.probe else setup.storage,
                dict(self.env_sent),
                setup.dev,
                self.settings.memory_mb,
                setup.blob_directory,
                setup.secret(),
                setup.base_url(),
                self.sequential,
                ACTION_NICE if self.kind == "action" else 0,
            ),
        )
        try:
            async with asyncio.timeout(self.settings.load_timeout_s):
                first = await wire.read_from_runner(reader)
        except TimeoutError:
            self.kill()
            raise AppLoadFailed(
                f"Loading the app in {setup.directory} took longer than "
                f"{self.settings.load_timeout_s:g} s (a module's top-level code never returned?)"
            ) from None
        if isinstance(first, wire.LoadFailed):
            self.kill()
            raise AppLoadFailed(f"The app in {setup.directory} failed to load: {first.message}")
        if not isinstance(first, wire.Ready):
            self.kill()
            code = await self.process.wait()
            raise AppLoadFailed(
                f"The function runner exited while loading the app in {setup.directory} "
                f"({_exit_reason(code)})"
            )
        self.alive = True
        self.manifest = first.manifest
        self._reader_task = start_task(self._read(reader), name=f"{self.kind} runner {first.pid}")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await wire.read_from_runner(reader)
                if message is None:
                    break
                if isinstance(message, wire.Rpc):
                    task = asyncio.get_running_loop().create_task(self._answer(message))
                    self._rpc_tasks.add(task)
                    task.add_done_callback(self._rpc_tasks.discard)
                elif isinstance(message, (wire.Done, wire.HttpDone)):
                    if isinstance(message, wire.Done) and message.error_code == OUT_OF_MEMORY:
                        self.restart_cause = self._culprit(message.id, "ran out of memory")
                    self._settle(message.id, message)
        except Exception:
            log.exception("reading from a function runner failed")
        finally:
            self.kill()
            code = None if self.process is None else await self.process.wait()
            reason: str | _Restarted = _exit_reason(code)
            if self.restart_cause is not None:
                reason = _Restarted(self.restart_cause)
            # A sequential runner was running only its oldest call: the others never started.
            for index, call_id in enumerate(list(self.calls)):
                self._settle(call_id, RETRY if self.sequential and index else reason)

    def _culprit(self, call_id: int, what: str) -> str:
        label = self.labels.get(call_id, "a call")
        return f"{self.kind} `{label}` on the same runner {what}"

    def _settle(self, call_id: int, outcome: Outcome) -> None:
        """End call ``call_id`` with ``outcome``; on a sequential runner the next call starts
        now, and its deadline with it."""
        future = self.calls.pop(call_id, None)
        timer = self._timers.pop(call_id, None)
        if timer is not None:
            timer.cancel()
        label = self.labels.pop(call_id, "a call")
        if call_id in self.expiring:
            self.expiring.discard(call_id)
            if self.alive:
                log.warning(
                    "%s timed out after %g s; cancelled, its runner runs on", label, self.timeout_s
                )
                for _ in range(self.settings.actions_per_runner):
                    self.on_free()  # ``_pick`` shunned this runner while the call was ending
        if future is None:
            return
        if not future.done():
            future.set_result(outcome)
        if self.sequential and self.calls and self.alive:
            self.head_started = asyncio.get_running_loop().time()
            self._arm(next(iter(self.calls)))
        self.on_free()  # a call waiting for room may take this one (even a dropped copy's)

    def _arm(self, call_id: int) -> None:
        self._timers[call_id] = asyncio.get_running_loop().call_later(
            self.timeout_s, self._expire, call_id
        )

    def _rescue(self, call_id: int) -> None:
        """A call still queued behind a slow one runs elsewhere instead (``RETRY``). The runner
        is told to skip the copy sent here (``Cancel``); it stays listed until the runner
        answers it, and should the copy have started after all, its outcome is dropped: the
        server commits only what it awaits, so a mutation still commits at most once."""
        future = self.calls.get(call_id)
        if future is not None and not future.done() and next(iter(self.calls)) != call_id:
            future.set_result(RETRY)
            if self.alive and self.writer is not None:
                wire.write_frame(self.writer, wire.Cancel(call_id))  # skip it if not started

    def _expire(self, call_id: int) -> None:
        """A call ran past its deadline. A concurrent runner is asked to cancel it (``Cancel``)
        and answers it with the timeout error; only if it has not within ``CANCEL_GRACE_S``
        (its event loop is blocked, or the call swallowed the cancellation) is it killed. A
        sequential runner is killed at once. Its reader settles the other calls."""
        self._timers.pop(call_id, None)
        if not self.sequential and call_id not in self.expiring and self.alive and self.writer:
            self.expiring.add(call_id)
            wire.write_frame(self.writer, wire.Cancel(call_id, self.timeout_s))
            self._timers[call_id] = asyncio.get_running_loop().call_later(
                CANCEL_GRACE_S, self._expire, call_id
            )
            return
        if call_id in self.expiring:
            self.restart_cause = self._culprit(
                call_id,
                f"exceeded its time limit ({self.timeout_s:g} s) and did not stop when "
                f"cancelled (a blocked event loop, or a swallowed asyncio.CancelledError)",
            )
            self.expiring.discard(call_id)
            log.warning(
                "%s did not stop %g s after its deadline; its runner is killed, with %d other "
                "call(s)",
                self.labels.get(call_id, "a call"),
                CANCEL_GRACE_S,
                len(self.calls) - 1,
            )
        self.labels.pop(call_id, None)
        future = self.calls.pop(call_id, None)
        if future is not None and not future.done():
            future.set_result(TIMEOUT)
        self.kill()
        self.on_free()
        if self.sequential:  # the calls queued behind it never started
            for queued in list(self.calls):
                self._settle(queued, RETRY)

    async def _answer(self, rpc: wire.Rpc) -> None:
        services = self.services.get(rpc.call_id)
        try:
            if services is None:
                raise FunctionError("the call this request belongs to has ended")
            value = await _serve_rpc(services, rpc)
            reply = wire.Reply(rpc.id, dumps(value))
        except UserError as exc:
            reply = wire.Reply(rpc.id, error=exc.message, error_data=dumps(exc.data))
        except ReactorError as exc:
            reply = wire.Reply(rpc.id, error=exc.message)
        except Exception as exc:
            failure = describe_failure(rpc.op, exc, dev=self.setup.dev)
            reply = wire.Reply(rpc.id, error=failure.error_message)
        if self.alive and self.writer is not None:
            wire.write_frame(self.writer, reply)

    async def call(
        self, message: wire.Call, services: ActionServices | None, label: str = ""
    ) -> Outcome:
        """Send ``message`` and wait for its outcome: the outcome, or why there is none
        (``TIMEOUT``, ``RETRY``: it never started and may run elsewhere, or the runner's exit
        reason)."""
        assert self.writer is not None
        if not self.alive:
            return RETRY
        if self.tables_generation != self.setup.tables.generation:
            self.tables_generation = self.setup.tables.generation
            message.tables = self.setup.tables.numbers()
        env = self.setup.env()
        if env is not self.env_sent:  # set since this runner started: calls see it at once
            self.env_sent = env
            message.env = dict(env)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        first = not self.calls
        # Every send its own id: a call taken back and sent again must not be answered by
        # the copy it left behind.
        message.id = next(_CALL_IDS)
        self.calls[message.id] = future
        self.labels[message.id] = label or message.path
        if services is not None:
            self.services[message.id] = services
        try:
            wire.write_frame(self.writer, message)
            if not self.sequential:
                self._arm(message.id)
            elif first:
                self.head_started = loop.time()
                self._arm(message.id)
            else:
                loop.call_later(RESCUE_AFTER_S, self._rescue, message.id)
            return await future
        finally:
            # A cancelled caller's call stays listed: it may still be running, and its
            # deadline still holds the runner to account.
            self.services.pop(message.id, None)

    def kill(self) -> None:
        self.alive = False
        if self.process is not None and self.process.returncode is None:
            try:
                self.process.kill()
            except ProcessLookupError:
                pass

    async def stop(self) -> None:
        self.kill()
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)
        if self.writer is not None:
            self.writer.close()


async def _serve_rpc(services: ActionServices, rpc: wire.Rpc) -> Any:
    args = loads(rpc.args)
    identity = None if rpc.identity is None else loads(rpc.identity)
    op = rpc.op
    if op in ("query", "mutation"):
        path, call_args = args
        run = services.run_query if op == "query" else services.run_mutation
        result = await run(path, call_args, identity)
        if result.success:
            return loads(result.value_json)
        if result.error_data_json is not None:
            raise UserError(loads(result.error_data_json), result.error_message)
        raise FunctionError(result.error_message)
    scope, _, name = op.partition(".")
    if scope == "scheduler" and name in ("run_after", "run_at", "cancel"):
        return await getattr(services.scheduler(), name)(*args)
    storage_ops = ("generate_upload_url", "get_url", "get_metadata", "delete", "store", "get")
    if scope == "storage" and name in storage_ops:
        storage = services.storage()
        if storage is None:
            raise FunctionError("ctx.storage is not available in this deployment")
        return await getattr(storage, name)(*args)
    raise FunctionError(f"Unknown runner request {op!r}")


class _Pool:
    """``size`` runners of one kind, each holding up to ``per_runner`` calls at once: run
    concurrently, or, on ``sequential`` runners, one after the other (the next one queued so
    the runner never waits for the server between calls)."""

    def __init__(
        self,
        setup: RunnerSetup,
        settings: RunnerSettings,
        *,
        kind: str,
        size: int,
        per_runner: int,
        timeout_s: float,
        sequential: bool = False,
    ) -> None:
        self.setup = setup
        self.settings = settings
        self.kind = kind
        self.size = size
        self.per_runner = per_runner
        self.timeout_s = timeout_s
        self.sequential = sequential
        self.runners: list[_Runner] = []
        self._dead: set[_Runner] = set()  # replaced, not yet stopped
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._replacing: set[asyncio.Task[None]] = set()
        self.closed = False

    async def start(self) -> None:
        runners = [self._new_runner() for _ in range(self.size)]
        results = await asyncio.gather(*(r.start() for r in runners), return_exceptions=True)
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            for runner in runners:
                await runner.stop()
            raise failure
        for runner in runners:
            self._add(runner)

    def _new_runner(self) -> _Runner:
        runner = _Runner(
            self.setup,
            self.settings,
            self.kind,
            sequential=self.sequential,
            timeout_s=self.timeout_s,
        )
        runner.on_free = self._wake
        return runner

    def _add(self, runner: _Runner) -> None:
        self.runners.append(runner)
        for _ in range(self.per_runner):
            self._wake()

    def _wake(self) -> None:
        """Let the longest-waiting call look for a runner again."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _pick(self) -> _Runner | None:
        """An idle runner, else the least loaded one with room whose current call is young
        (sequential runners) or any with room (concurrent ones); None: wait."""
        best: _Runner | None = None
        now = asyncio.get_running_loop().time()
        for runner in self.runners:
            load = runner.load
            if not runner.alive or load >= self.per_runner or runner.expiring:
                continue  # full, or a call past its deadline may yet get it killed
            if load == 0:
                return runner
            if self.sequential and now - runner.head_started > PIPELINE_BEHIND_S:
                continue
            if best is None or load < best.load:
                best = runner
        return best

    async def _acquire(self, urgent: bool = False) -> _Runner:
        runner = await self._wait_for_room(urgent)
        if runner is None:
            raise _PoolClosed
        return runner

    def has_room(self) -> bool:
        """Whether a call sent now would start at once: a runner has room, and no call waits."""
        return not self._waiters and self._pick() is not None

    async def room(self) -> None:
        """Return once a runner has room for a call (in turn with the calls waiting for one),
        without taking it: the caller sends its call in the same turn of the event loop. A
        closed pool has room (the call is refused there)."""
        await self._wait_for_room()

    async def _wait_for_room(self, urgent: bool = False) -> _Runner | None:
        """Wait in turn (``urgent``: before the calls already waiting) until a runner has room:
        that runner; None once the pool is closed."""
        first = not urgent
        while not self.closed:
            runner = self._pick()
            if runner is not None:
                return runner
            waiter = asyncio.get_running_loop().create_future()
            # A woken call that found nothing keeps its place at the front.
            (self._waiters.append if first else self._waiters.appendleft)(waiter)
            first = False
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass the wake-up on
                raise
        return None

    def _replace(self, runner: _Runner) -> None:
        if runner not in self.runners:
            return
        self.runners.remove(runner)
        self._dead.add(runner)  # stopped by ``replace`` or, if the pool stops first, ``stop``

        async def replace() -> None:
            await runner.stop()
            self._dead.discard(runner)
            delay = 0.05
            while not self.closed:
                fresh = self._new_runner()
                try:
                    await fresh.start()
                except Exception:
                    log.exception("starting a %s runner failed; retrying", self.kind)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                if self.closed:
                    await fresh.stop()
                    return
                self._add(fresh)
                return

        task = asyncio.get_running_loop().create_task(replace())
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def run(
        self,
        message: wire.Call,
        services: ActionServices | None,
        label: str,
        *,
        urgent: bool = False,
    ) -> wire.Done | wire.HttpDone | FunctionResult:
        """Run ``message`` on a free runner (``urgent``: before the calls already waiting):
        its outcome, or a failed result saying why there is none (deadline passed, runner
        died)."""
        while True:
            runner = await self._acquire(urgent)
            started = asyncio.get_running_loop().time()
            outcome = await runner.call(message, services, label)
            if isinstance(outcome, wire.Done) and outcome.error_code == OUT_OF_MEMORY:
                runner.kill()  # it exits anyway: a process past a MemoryError is not trusted
            if not runner.alive:
                self._replace(runner)
            if outcome != RETRY:
                break
        if isinstance(outcome, _Restarted):
            took = asyncio.get_running_loop().time() - started
            log.error("%s stopped: its runner was killed (%s)", label, outcome.cause)
            return FunctionResult(
                False,
                error_message=(
                    f"{self.kind.capitalize()} runner restarted: {outcome.cause}; this "
                    f"{message.kind if message.kind != 'http' else 'HTTP action'} was stopped "
                    f"after {took:.1f} s, may have done part of its work, and is not run again"
                ),
                error_code=RUNNER_CRASHED,
            )
        if not isinstance(outcome, str):
            return outcome
        if outcome == TIMEOUT:
            log.warning("%s timed out after %g s; its runner was replaced", label, self.timeout_s)
            return FunctionResult(
                False, error_message=wire.timed_out(self.timeout_s), error_code=FUNCTION_TIMEOUT
            )
        log.error("the function runner running %s exited (%s); replaced", label, outcome)
        effect = (
            "nothing it wrote was committed"
            if message.kind in ("query", "mutation")
            else "it may have done part of its work"
        )
        return FunctionResult(
            False,
            error_message=(
                f"The function runner exited unexpectedly ({outcome}) while running {label}; "
                f"{effect}"
            ),
            error_code=RUNNER_CRASHED,
        )

    def _close(self) -> None:
        self.closed = True
        while self._waiters:  # they see ``closed`` and go to the current pool
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def stop(self) -> None:
        self._close()
        for task in list(self._replacing):
            task.cancel()
        await asyncio.gather(*self._replacing, return_exceptions=True)
        await asyncio.gather(*(runner.stop() for runner in [*self.runners, *self._dead]))
        self.runners.clear()
        self._dead.clear()

    async def retire(self) -> None:
        """Stop taking calls; stop each runner once the calls it is running have ended."""
        self._close()
        deadline = asyncio.get_running_loop().time() + self.timeout_s + 1.0
        while any(r.load for r in self.runners) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await self.stop()


class RunnerPools:
    """The ``FunctionRunner`` of a served deployment: a pool for queries and mutations, one
    for actions and HTTP actions."""

    def __init__(self, setup: RunnerSetup, settings: RunnerSettings) -> None:
        self.setup = setup
        self.settings = settings
        self.queries = self._pool("query")
        self.actions = self._pool("action")
        # function path -> loop time its quarantine ends (``_run``)
        self._quarantine: dict[str, float] = {}
        self._quarantine_runners: _Pool | None = None
        self._quarantine_lock = asyncio.Lock()

    def _pool(self, kind: str) -> _Pool:
        s = self.settings
        if kind == "query":
            return _Pool(
                self.setup,
                s,
                kind=kind,
                size=s.query_runners,
                per_runner=QUERY_PIPELINE,
                timeout_s=s.function_timeout_s,
                sequential=True,
            )
        return _Pool(
            self.setup,
            s,
            kind=kind,
            size=s.action_runners,
            per_runner=s.actions_per_runner,
            timeout_s=s.action_timeout_s,
        )

    async def start(self) -> None:
        """Start both pools once the app has loaded in one runner.

        Raises:
            AppLoadFailed: the app does not load (or hangs) in a runner.
        """
        await asyncio.gather(self.queries.start(), self.actions.start())

    async def stop(self) -> None:
        await asyncio.gather(
            self.queries.stop(), self.actions.stop(), self._stop_quarantine(retire=False)
        )

    async def probe(self) -> dict[str, Any]:
        """Load the app as it is now in a runner of its own, then stop it: module code that
        fails or hangs is found there, never in the server. Returns its manifest.

        Raises:
            AppLoadFailed: why the app does not load.
        """
        return await probe_app(self.setup, self.settings)

    async def reload(self) -> bool:
        """Start runners on the app as it is now (code and environment); once they have
        loaded it they take every new call and the old ones finish theirs. False when the app
        does not load: the previous runners keep serving."""
        queries, actions = self._pool("query"), self._pool("action")
        try:
            await asyncio.gather(queries.start(), actions.start())
        except Exception as exc:
            await asyncio.gather(queries.stop(), actions.stop())
            log.error("%s; the previous code keeps serving", exc)
            return False
        old = (self.queries, self.actions)
        self.queries, self.actions = queries, actions
        for pool in old:
            start_task(pool.retire(), name="retire runners")
        self._quarantine.clear()  # new code: every function starts afresh
        start_task(self._stop_quarantine(retire=True), name="retire the quarantine runner")
        return True

    # -- FunctionRunner ----------------------------------------------------------------------

    async def query(
        self,
        path: str,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None,
        ts: int,
        journal: str | None,
    ) -> FunctionResult:
        message = wire.Call(0, "query", path, dumps(args), _identity(identity), ts, journal)
        message.holds = min(ts, self.setup.last_commit())
        return self._result(await self._run("query", message, None, path), ts)

    async def _run(
        self,
        pool: str,
        message: wire.Call,
        services: ActionServices | None,
        label: str,
        *,
        urgent: bool = False,
    ) -> wire.Done | wire.HttpDone | FunctionResult:
        while True:
            current = self.queries if pool == "query" else self.actions
            if pool == "query" and self._quarantined(label):
                current = await self._quarantine_pool()
            try:
                outcome = await current.run(message, services, label, urgent=urgent)
            except _PoolClosed:
                if current is (self.queries if pool == "query" else self.actions):
                    return FunctionResult(
                        False, error_message="The deployment is shutting down; try again"
                    )
                continue  # a reload swapped the pools while this call waited: take the new ones
            if (
                pool == "query"
                and isinstance(outcome, FunctionResult)
                and outcome.error_code in (FUNCTION_TIMEOUT, RUNNER_CRASHED)
            ):
                self._quarantine[label] = asyncio.get_running_loop().time() + QUARANTINE_S
            return outcome

    # -- quarantine: a function that timed out or crashed its runner runs apart for a while --

    def _quarantined(self, label: str) -> bool:
        until = self._quarantine.get(label)
        if until is None:
            return False
        if until < asyncio.get_running_loop().time():
            del self._quarantine[label]
            return False
        return True

    async def _quarantine_pool(self) -> _Pool:
        """One runner of its own for quarantined queries and mutations, started on first use:
        however often clients call a runaway function, it holds one runner, not the pool."""
        async with self._quarantine_lock:
            if self._quarantine_runners is None or self._quarantine_runners.closed:
                pool = _Pool(
                    self.setup,
                    self.settings,
                    kind="quarantine",
                    size=1,
                    per_runner=1,
                    timeout_s=self.settings.function_timeout_s,
                    sequential=True,
                )
                await pool.start()
                self._quarantine_runners = pool
            return self._quarantine_runners

    async def _stop_quarantine(self, *, retire: bool) -> None:
        pool, self._quarantine_runners = self._quarantine_runners, None
        if pool is not None:
            await (pool.retire() if retire else pool.stop())

    async def mutation(
        self,
        path: str,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None,
        ts: int,
        job_id: str | None,
        urgent: bool = False,
        hot: frozenset[str] | None = None,
    ) -> FunctionResult:
        message = wire.Call(0, "mutation", path, dumps(args), _identity(identity), ts, None, job_id)
        message.holds = min(ts, self.setup.last_commit())
        if hot:
            message.hot = list(hot)
        return self._result(await self._run("query", message, None, path, urgent=urgent), ts)

    def has_room(self, path: str) -> bool:
        """A quarantined function runs apart: it never waits behind the others."""
        return self._quarantined(path) or self.queries.has_room()

    async def room(self, path: str) -> None:
        if not self._quarantined(path):
            await self.queries.room()

    async def mutation_batch(
        self, calls: list[MutationCall], *, ts: int, hot: frozenset[str] | None = None
    ) -> MutationBatch:
        """``FunctionRunner.mutation_batch``: one call on a query runner. A batch that could
        not run (its runner died, or it passed the deadline) has no outcome: each of its
        mutations runs again."""
        message = wire.Call(0, "mutation", calls[0].path, b"", None, ts)
        message.holds = min(ts, self.setup.last_commit())
        message.batch = wire.batch_call(calls)
        if hot:
            message.hot = list(hot)
        label = f"{calls[0].path} and {len(calls) - 1} more mutation(s) in one batch"
        outcome = await self._run("query", message, None, label, urgent=True)
        if not isinstance(outcome, wire.Done) or outcome.batch is None:
            return MutationBatch([], None)
        return wire.decode_batch(outcome, ts)

    async def action(
        self,
        path: str,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None,
        services: ActionServices,
    ) -> FunctionResult:
        message = wire.Call(0, "action", path, dumps(args), _identity(identity))
        return self._result(await self._run("action", message, services, path), 0)

    async def http_action(
        self,
        call: HttpCall,
        *,
        identity: dict[str, Any] | None,
        auth_error: tuple[str, str] | None,
        services: ActionServices,
    ) -> HttpReply:
        message = wire.Call(
            0,
            "http",
            "",
            b"",
            _identity(identity),
            http=wire.http_call(call),
            auth_error=auth_error,
        )
        outcome = await self._run("action", message, services, f"HTTP action {call.path}")
        if isinstance(outcome, FunctionResult):
            return HttpReply(500, failure=outcome)
        if isinstance(outcome, wire.Done):  # cannot happen: the runner answers in kind
            return HttpReply(500, failure=wire.decode_result(outcome, 0))
        return wire.http_reply(outcome, 0)

    @staticmethod
    def _result(outcome: wire.Done | wire.HttpDone | FunctionResult, ts: int) -> FunctionResult:
        if isinstance(outcome, FunctionResult):
            outcome.ts = ts
            return outcome
        if isinstance(outcome, wire.HttpDone):  # cannot happen: the runner answers in kind
            return FunctionResult(False, error_message="The runner answered out of kind")
        return wire.decode_result(outcome, ts)


def _identity(identity: dict[str, Any] | None) -> bytes | None:
    return None if identity is None else dumps(identity)


async def probe_app(setup: RunnerSetup, settings: RunnerSettings) -> dict[str, Any]:
    """Load the app of ``setup`` in a throwaway runner (``RunnerPools.probe``): its manifest,
    all the server needs of the app (``functions.manifest.app_from_manifest``).

    Raises:
        AppLoadFailed: why the app does not load (the error, or that it took too long).
    """
    runner = _Runner(setup, settings, "probe", probe=True)
    try:
        await runner.start()
    finally:
        await runner.stop()
    try:
        manifest = msgspec.json.decode(runner.manifest)
    except msgspec.DecodeError as exc:
        raise AppLoadFailed(f"The function runner described the app unreadably: {exc}") from None
    if not isinstance(manifest, dict):
        raise AppLoadFailed("The function runner described the app unreadably")
    return manifest
