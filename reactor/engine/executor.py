"""Runs app functions for the server: on a function runner, with the server's half of the work.

Owns: the dispatch by function kind (``run``), the snapshot a call reads at, the OCC retry
loop of mutations (jittered backoff, then a clear final error) and their commit, mutation
idempotency by (session, request) id, and what an action's ``ctx`` reaches in the server
(``ActionServices``). Handlers run on a ``FunctionRunner`` (``reactor.engine.runner``):
out of process in a served deployment (``reactor.runners``), in this process for tests. It does
not own snapshots and transactions (``reactor.engine.database``), caching or subscriptions
(``reactor.engine.query_cache``) or transports.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.context import Scheduler
from functions.decorators import FunctionKind, FunctionSpec
from reactor.core.persistence import CommitRequest, MutationRecord
from reactor.core.tasks import start_task
from reactor.engine.database import Database
from reactor.engine.execution_log import Caller, ExecutionSink, record_of
from reactor.engine.invocation import (
    MAX_VALUE_BYTES,
    ActionServices,
    FunctionResult,
    MutationCall,
    TransactionHooks,
    describe_failure,
)
from reactor.engine.retry_lanes import Lanes, RetryLanes, Rider, Turns, turns
from reactor.engine.runner import FunctionRunner
from reactor.engine.transaction import Transaction
from schema.errors import (
    ArgumentValidationError,
    OptimisticConcurrencyError,
    StorageUnavailable,
)
from schema.values import dumps, loads

__all__ = ["Executor", "FunctionResult", "TransactionHooks"]

log = logging.getLogger("reactor.engine.executor")

OCC_MAX_RETRIES = 4
OCC_INITIAL_BACKOFF_S = 0.001
OCC_MAX_BACKOFF_S = 0.05
# The most mutations one re-run in its turn runs in one transaction (itself and its riders).
MAX_BATCH = 16
# Sessions whose newest request id is remembered (a resend below it is looked up in storage).
MAX_REMEMBERED_SESSIONS = 100_000


class Executor:
    """Runs app functions of the served app on ``runner`` against ``database``.
    ``scheduler`` and ``storage`` give an action its ``ctx.scheduler`` and ``ctx.storage``."""

    def __init__(
        self,
        database: Database,
        runner: FunctionRunner,
        *,
        scheduler: Callable[[Transaction | None], Scheduler] | None = None,
        storage: Callable[[Transaction | None], Any] | None = None,
        dev: bool = False,
        on_execution: ExecutionSink | None = None,
    ) -> None:
        self.database = database
        self.runner = runner
        self.persistence = database.persistence
        self.committer = database.server_committer()
        self.runtime = database.runtime
        self._scheduler = scheduler
        self._storage_for = storage
        self.dev = dev
        self._on_execution = on_execution
        # Where re-runs take turns, by written document (``_run_mutation``).
        self._lanes = RetryLanes()
        # First runs gathering while the runners have no room, by function (``_gather``).
        self._gatherings: dict[str, list[Rider]] = {}
        self._gathering_tasks: set[asyncio.Task[None]] = set()
        self._newest_request: dict[str, int] = {}
        # (session id, request id) -> a mutation still running; finished ones are in storage
        self._mutations: dict[tuple[str, int], asyncio.Future[FunctionResult]] = {}
        self.services: ActionServices = _ServerServices(self)

    def action_scheduler(self) -> Scheduler:
        """An action's ``ctx.scheduler``: each call commits at once."""
        if self._scheduler is None:
            raise RuntimeError("ctx.scheduler is not available in this deployment")
        return self._scheduler(None)

    def action_storage(self) -> Any:
        """An action's ``ctx.storage``."""
        return None if self._storage_for is None else self._storage_for(None)

    @property
    def registry(self) -> Any:
        return self.database.served.registry

    def snapshot_ts(self) -> int:
        return self.database.snapshot_ts()

    async def run(
        self,
        spec: FunctionSpec,
        args: Mapping[str, Any],
        *,
        identity: Mapping[str, Any] | None = None,
        caller: Caller = Caller.INTERNAL,
    ) -> FunctionResult:
        """Run any function by its kind: the one dispatch of the HTTP API, the CLI and tests."""
        if spec.kind is FunctionKind.QUERY:
            return await self.run_query(spec, args, identity=identity, caller=caller)
        if spec.kind is FunctionKind.MUTATION:
            return await self.run_mutation(spec, args, identity=identity, caller=caller)
        return await self.run_action(spec, args, identity=identity, caller=caller)

    def _record(
        self,
        spec: FunctionSpec,
        kind: str,
        caller: Caller,
        started_ns: int,
        result: FunctionResult,
        *,
        live_rerun: bool = False,
    ) -> None:
        """Leave the execution record of ``result`` (``reactor.engine.execution_log``)."""
        path = _path(spec)
        if self._on_execution is None or path.startswith("_system/"):
            return  # the built-in functions of the CLI and dashboard stay out, as in Convex
        duration_s = (self.runtime.monotonic_ns() - started_ns) / 1e9
        self._on_execution(
            record_of(
                result,
                path=path,
                kind=kind,
                caller=caller,
                duration_s=duration_s,
                live_rerun=live_rerun,
            )
        )

    async def _recorded(
        self,
        spec: FunctionSpec,
        kind: str,
        caller: Caller,
        run: Awaitable[FunctionResult],
        *,
        live_rerun: bool = False,
    ) -> FunctionResult:
        """Await ``run`` and record it; a runner that failed outright is recorded as a system
        error before its exception goes on."""
        started_ns = self.runtime.monotonic_ns()
        try:
            result = await run
        except Exception as exc:
            failure = _raised(exc)
            self._record(spec, kind, caller, started_ns, failure, live_rerun=live_rerun)
            raise
        self._record(spec, kind, caller, started_ns, result, live_rerun=live_rerun)
        return result

    def _refused_args(self, spec: FunctionSpec, args: Mapping[str, Any]) -> FunctionResult | None:
        """A failed result when ``args`` exceed Convex's 16 MiB argument limit."""
        try:
            size = len(dumps(dict(args)))
        except Exception as exc:
            return describe_failure(_path(spec), exc, dev=self.dev)
        if size <= MAX_VALUE_BYTES:
            return None
        error = ArgumentValidationError(
            f"Arguments for {spec.path} are too large: {size} bytes "
            f"(limit: {MAX_VALUE_BYTES} bytes)"
        )
        return describe_failure(_path(spec), error, dev=self.dev)

    # -- queries -----------------------------------------------------------------------------

    async def run_query(
        self,
        spec: FunctionSpec,
        args: Mapping[str, Any],
        *,
        identity: Mapping[str, Any] | None = None,
        ts: int | None = None,
        journal: str | None = None,
        caller: Caller = Caller.INTERNAL,
        live_rerun: bool = False,
    ) -> FunctionResult:
        """Run a query at ``ts`` (default: the latest published commit). ``caller`` and
        ``live_rerun`` go into its execution record."""
        run = self._run_query(spec, args, identity, ts, journal)
        return await self._recorded(spec, "query", caller, run, live_rerun=live_rerun)

    async def _run_query(
        self,
        spec: FunctionSpec,
        args: Mapping[str, Any],
        identity: Mapping[str, Any] | None,
        ts: int | None,
        journal: str | None,
    ) -> FunctionResult:
        ts = self.snapshot_ts() if ts is None else ts
        refused = self._refused_args(spec, args)
        if refused is not None:
            refused.ts = ts
            return refused
        return await self.runner.query(
            _path(spec),
            dict(args),
            identity=None if identity is None else dict(identity),
            ts=ts,
            journal=journal,
        )

    # -- mutations ---------------------------------------------------------------------------

    async def run_mutation(
        self,
        spec: FunctionSpec,
        args: Mapping[str, Any],
        *,
        identity: Mapping[str, Any] | None = None,
        idempotency_key: tuple[str, int] | None = None,
        job_id: str | None = None,
        max_retries: int = OCC_MAX_RETRIES,
        caller: Caller = Caller.INTERNAL,
    ) -> FunctionResult:
        """Run a mutation to commit, retrying OCC conflicts; deduplicated by idempotency key.

        ``job_id`` names the scheduled job this run executes: its state changes commit in the
        mutation's own transaction; a job no longer pending gives ``job_gone`` and no commit.
        ``caller`` goes into its execution record (a job gone and a resent request answered
        from storage ran nothing and leave none).
        """
        started_ns = self.runtime.monotonic_ns()
        try:
            result = await self._deduplicated(
                spec, args, identity, idempotency_key, job_id, max_retries
            )
        except Exception as exc:
            self._record(spec, "mutation", caller, started_ns, _raised(exc))
            raise
        if not result.job_gone and not result.answered_from_storage:
            self._record(spec, "mutation", caller, started_ns, result)
        return result

    async def _deduplicated(
        self,
        spec: FunctionSpec,
        args: Mapping[str, Any],
        identity: Mapping[str, Any] | None,
        idempotency_key: tuple[str, int] | None,
        job_id: str | None,
        max_retries: int,
    ) -> FunctionResult:
        refused = self._refused_args(spec, args)
        if refused is not None:
            return refused
        call_identity = None if identity is None else dict(identity)
        if idempotency_key is None:
            return await self._run_mutation(
                spec, dict(args), call_identity, None, job_id, max_retries
            )
        pending = self._mutations.get(idempotency_key)
        if pending is not None:
            return await asyncio.shield(pending)
        session_id, request_id = idempotency_key
        # Request ids only grow within a session. Above both the newest id this process started
        # and the newest one stored by any process, a request cannot have run: skip the lookup.
        newest = self._newest_request.get(session_id)
        if newest is None:
            newest = await self.persistence.max_request_id(session_id)
        stored = (
            None
            if newest is not None and request_id > newest
            else await self.persistence.lookup_mutation(session_id, request_id)
        )
        if newest is None or request_id > newest:
            newest = request_id
        self._remember(session_id, newest)
        if stored is not None:
            ts, result_json = stored
            await self.committer.wait_published(ts)  # written, maybe not yet durable
            answer = FunctionResult(True, value=loads(result_json), value_json=result_json, ts=ts)
            answer.answered_from_storage = True
            return answer
        future: asyncio.Future[FunctionResult] = asyncio.get_running_loop().create_future()
        self._mutations[idempotency_key] = future
        try:
            result = await self._run_mutation(
                spec, dict(args), call_identity, idempotency_key, None, max_retries
            )
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved
            raise
        finally:
            # A successful result is durable in storage with the commit (a resend reads it
            # there); a failed one committed nothing, and a resend runs it again.
            del self._mutations[idempotency_key]
        future.set_result(result)
        return result

    def _remember(self, session_id: str, newest: int) -> None:
        newest_request = self._newest_request
        newest_request.pop(session_id, None)
        newest_request[session_id] = newest
        if len(newest_request) > MAX_REMEMBERED_SESSIONS:
            del newest_request[next(iter(newest_request))]  # the least recently used

    async def _run_mutation(
        self,
        spec: FunctionSpec,
        args: dict[str, Any],
        identity: dict[str, Any] | None,
        idempotency_key: tuple[str, int] | None,
        job_id: str | None,
        max_retries: int,
    ) -> FunctionResult:
        attempt = 0
        deferred = 0
        rider = Rider(MutationCall(_path(spec), args, identity, job_id), idempotency_key)
        lanes: Lanes = []
        try:
            while True:
                attempt += 1
                # A run stopped at a hot read is no conflict: it does not use up a retry.
                if lanes:
                    outcome = await self._attempt_in_turn(
                        spec, lanes, rider, attempt, max_retries + deferred
                    )
                elif attempt == 1:
                    outcome = await self._first_attempt(spec, rider, max_retries)
                else:
                    outcome = await self._attempt(spec, rider, attempt, max_retries + deferred)
                if isinstance(outcome, FunctionResult):
                    break
                deferred += outcome.deferred
                if not lanes and outcome.keys:
                    # After a conflict, re-runs of mutations that write the same documents
                    # take turns (one lane per document): they then never conflict with each
                    # other, only with first attempts, so a hot document costs one execution
                    # per commit instead of one per contender, while re-runs about other
                    # documents go on beside them instead of queueing behind them. The one
                    # whose turn it is runs the others waiting for the same documents along.
                    lanes = self._lanes.join(outcome, rider)
                    carried = await self._lanes.take_turns(lanes, rider)
                    if carried is not None:
                        outcome = carried
                        outcome.attempts = attempt + 1
                        break
        finally:
            self._lanes.leave(lanes, rider)
        # The lanes are free as soon as the commit is readable (the next re-run reads it); the
        # answer waits until it, or the snapshot of an answer that committed nothing, is durable.
        await self.committer.wait_published(outcome.ts)
        outcome.deferred_runs = deferred
        return outcome

    async def _attempt(
        self, spec: FunctionSpec, rider: Rider, attempt: int, max_retries: int
    ) -> FunctionResult | Turns:
        """One execution and commit; when it conflicted and should be re-run, the retry lanes
        it takes turns in (``turns``). A first run is told the documents re-runs are queued
        to write (``hot_documents``) and stops if it reads one.

        It reads at the newest written commit, durable or not (``mutation_snapshot_ts``), and
        returns once its own commit is written: a re-run after a conflict reads the commit
        that beat it without waiting for its fsync. ``result.ts`` is the commit's, or the
        snapshot's when it committed nothing; the caller answers once that is durable."""
        call = rider.call
        ts = self.database.mutation_snapshot_ts()
        result = await self.runner.mutation(
            call.path,
            call.args,
            identity=call.identity,
            ts=ts,
            job_id=call.job_id,
            urgent=attempt > 1,
            hot=self._lanes.hot_documents() if attempt == 1 else None,
        )
        if result.deferred is not None:
            return self._lanes.after_hot_read(result.deferred)
        result.attempts = attempt
        result.ts = ts
        request = result.commit
        result.commit = None
        if request is not None:
            result.documents_written = len(request.writes)
        if not result.success or request is None:
            return result
        records = _records([rider], [result])
        if not request.write_keys and not records and call.job_id is None:
            return result
        if attempt == 1 and self._lanes.queued(request):
            return turns(request)  # no commit: it waits its turn in the lane
        committed = await self._commit(spec, request, records, ts, attempt, max_retries)
        if isinstance(committed, int):
            result.ts = committed
            return result
        if isinstance(committed, StorageFailure):
            return committed.result()
        return committed

    async def _attempt_in_turn(
        self, spec: FunctionSpec, lanes: Lanes, rider: Rider, attempt: int, max_retries: int
    ) -> FunctionResult | Turns:
        """A re-run in its turn (holding its lanes), with up to ``MAX_BATCH - 1`` riders
        waiting for the same lanes and function run after it in one transaction and committed
        with it (``_run_together``). Each rider is handed its outcome, or its place in the
        queue back when it did not run or the commit conflicted. The batch is a task of its
        own: cancelled (its client left), this re-run still lets it end, and its riders get
        their outcomes then (its commit may land: they must not run again)."""
        riders = self._lanes.take_riders(lanes, rider, MAX_BATCH - 1)
        if not riders:
            return await self._attempt(spec, rider, attempt, max_retries)
        work = asyncio.ensure_future(
            self._run_together(spec, [rider, *riders], attempt, max_retries)
        )
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            if work.done():
                self._end_turn(lanes, riders, work)
            else:
                work.add_done_callback(lambda done: self._end_turn(lanes, riders, done))
            raise
        except Exception:
            pass  # the batch did not run (``_end_turn`` logs why)
        outcome = self._end_turn(lanes, riders, work)
        if outcome is None:  # it could not run: the head runs alone, the riders wait again
            return await self._attempt(spec, rider, attempt, max_retries)
        return outcome

    def _end_turn(
        self, lanes: Lanes, riders: list[Rider], work: asyncio.Future[_Together]
    ) -> FunctionResult | Turns | None:
        """Hand the riders of a batch that ended their outcomes, or their places back; the
        head's outcome (None: the batch did not run)."""
        try:
            if work.cancelled():
                return None
            error = work.exception()
            if error is not None:
                log.error("running mutations together failed", exc_info=error)
                return None
            together = work.result()
            if not together.ran:
                return None
            ridden = riders[: together.ran - 1]  # the others did not run: they wait again
            if together.failure is not None:
                for other in ridden:
                    self._lanes.settle(other, together.failure.result())
                return together.failure.result()
            if together.again is not None:
                return together.again  # conflicted: the riders wait again
            for other, result in zip(ridden, together.results[1:], strict=True):
                self._lanes.settle(other, result)
            return together.results[0]
        finally:
            self._lanes.put_back(lanes, riders)  # those without an outcome

    async def _first_attempt(
        self, spec: FunctionSpec, rider: Rider, max_retries: int
    ) -> FunctionResult | Turns:
        """A mutation's first run. While the runners have no room for it, first runs of one
        function gather and run together (``_gather``) instead of each waiting for a runner:
        one runner call and one commit for up to ``MAX_BATCH`` of them; a first run whose
        gathering could not run it runs alone. Not with a retry budget of its own."""
        if max_retries == OCC_MAX_RETRIES and not self.runner.has_room(rider.call.path):
            outcome = await self._gather(spec, rider)
            if outcome is not None:
                return outcome
        return await self._attempt(spec, rider, 1, max_retries)

    async def _gather(self, spec: FunctionSpec, rider: Rider) -> FunctionResult | Turns | None:
        """Join the gathering of first runs of ``rider``'s function (opening one if there is
        none, or it is full): its outcome, ``Turns`` with no lanes when the commit of the
        gathering conflicted (it runs again alone), or None when it did not run."""
        path = rider.call.path
        gathering = self._gatherings.get(path)
        if gathering is None or len(gathering) >= MAX_BATCH:
            gathering = self._gatherings[path] = []
            task = start_task(self._run_gathering(spec, gathering), name=f"gathering {path}")
            self._gathering_tasks.add(task)
            task.add_done_callback(self._gathering_tasks.discard)
        wake: asyncio.Future[FunctionResult | Turns | None] = (
            asyncio.get_running_loop().create_future()
        )
        rider.wake = wake
        gathering.append(rider)
        return await wake

    async def _run_gathering(self, spec: FunctionSpec, gathering: list[Rider]) -> None:
        """Wait for room on the runners, then run the first runs gathered meanwhile
        together; each one is handed its outcome (None: it runs alone). Each is told the
        documents re-runs are queued to write (``hot_documents``): one that reads one stops
        there and takes its turn, the others go on."""
        path = _path(spec)
        members: list[Rider] = []
        try:
            await self.runner.room(path)
            if self._gatherings.get(path) is gathering:
                del self._gatherings[path]
            members = [rider for rider in gathering if rider.waiting]
            if len(members) < 2:
                return  # alone (``finally``)
            try:
                together = await self._run_together(
                    spec, members, 1, OCC_MAX_RETRIES, hot=self._lanes.hot_documents()
                )
            except BaseException as exc:  # its commit may have landed: none runs again
                for rider in members:
                    self._lanes.settle(rider, describe_failure(path, exc, dev=self.dev))
                raise
            ran = members[: together.ran]
            if together.failure is not None:
                for rider in ran:
                    self._lanes.settle(rider, together.failure.result())
            elif together.again is not None:
                for rider in ran:
                    self._lanes.settle(rider, Turns([], {}))  # conflicted: again, alone
            else:
                for rider, result in zip(ran, together.results, strict=True):
                    if result.deferred is not None:  # stopped at a hot read: its turn
                        self._lanes.settle(rider, self._lanes.after_hot_read(result.deferred))
                    else:
                        self._lanes.settle(rider, result)
        finally:
            if self._gatherings.get(path) is gathering:
                del self._gatherings[path]
            for rider in gathering:
                self._lanes.settle(rider, None)  # not run: alone

    async def _run_together(
        self,
        spec: FunctionSpec,
        members: list[Rider],
        attempt: int,
        max_retries: int,
        *,
        hot: frozenset[str] | None = None,
    ) -> _Together:
        """Run ``members`` (mutations of ``spec``) one after the other in one transaction
        (``FunctionRunner.mutation_batch``) and commit them together: one runner call and one
        commit for all of them, each with its own idempotency record. First runs (``hot``)
        that together write a document re-runs queue on do not commit ahead of them: none ran
        (each runs alone, and takes its turn)."""
        ts = self.database.mutation_snapshot_ts()
        batch = await self.runner.mutation_batch([m.call for m in members], ts=ts, hot=hot)
        results = batch.results
        if not results or (
            attempt == 1 and batch.commit is not None and self._lanes.queued(batch.commit)
        ):
            return _Together(0)
        members = members[: len(results)]
        request = batch.commit
        records = _records(members, results)
        jobs = any(r.success and m.call.job_id for m, r in zip(members, results, strict=True))
        committed = ts
        if request is not None and (request.write_keys or records or jobs):
            outcome = await self._commit(spec, request, records, ts, attempt, max_retries)
            if isinstance(outcome, StorageFailure):
                return _Together(len(results), failure=outcome)
            if not isinstance(outcome, int):
                return _Together(len(results), again=outcome)
            committed = outcome
        for result in results:
            result.ts = committed if result.success else ts
            result.attempts = attempt
            result.batched = len(results)
        return _Together(len(results), results)

    async def _commit(
        self,
        spec: FunctionSpec,
        request: CommitRequest,
        records: list[MutationRecord],
        ts: int,
        attempt: int,
        max_retries: int,
    ) -> int | FunctionResult | Turns | StorageFailure:
        """Commit a mutation's ``request`` read at ``ts``: its commit ts once written; after a
        conflict the turns to re-run in (``Turns``), or, past ``max_retries``, the failure;
        ``StorageFailure`` when storage failed."""
        try:
            self._adopt_tables(request)
            # A re-run goes first in its commit batch: it loses only to commits of earlier
            # batches, not to first attempts queued beside it.
            return await self.committer.commit_written(request, records, priority=attempt > 1)
        except OptimisticConcurrencyError as exc:
            if attempt > max_retries:
                exc.function = spec.path
                failure = self._occ_failure(spec, exc)
                failure.ts = ts
                failure.attempts = attempt
                return failure
            # Re-running before the conflicting commit is readable would conflict again.
            if exc.write_ts is not None:
                await self.committer.wait_visible(exc.write_ts)
            if attempt == 1:
                # Spread the first conflicts out; a re-run in the retry lane (which it holds)
                # goes again at once: sleeping there would only hold the other re-runs back.
                backoff = min(OCC_INITIAL_BACKOFF_S * 2 ** (attempt - 1), OCC_MAX_BACKOFF_S)
                await self.runtime.sleep(backoff * self.runtime.random())
            return turns(request)
        except StorageUnavailable as exc:
            return StorageFailure(_path(spec), exc, ts, self.dev)

    def _adopt_tables(self, request: CommitRequest) -> None:
        """Take the tables a runner numbered into this deployment's registry.

        Raises:
            OptimisticConcurrencyError: another commit numbered one of them otherwise first
                (the mutation re-runs with the current numbering).
        """
        tables = self.database.tables
        for name, number in request.tables.items():
            if not tables.claim(name, number):
                raise OptimisticConcurrencyError(
                    f"Table {name!r} was created concurrently; retrying", table=name
                )
        request.tables = tables.unpersisted()

    def _occ_failure(self, spec: FunctionSpec, exc: OptimisticConcurrencyError) -> FunctionResult:
        log.warning("mutation %s failed after %d OCC retries: %s", spec.path, OCC_MAX_RETRIES, exc)
        return FunctionResult(False, error_message=exc.message, retryable=True, error_code=exc.code)

    # -- actions ---------------------------------------------------------------------------

    async def run_action(
        self,
        spec: FunctionSpec,
        args: Mapping[str, Any],
        *,
        identity: Mapping[str, Any] | None = None,
        caller: Caller = Caller.INTERNAL,
    ) -> FunctionResult:
        """Run an action: no transaction of its own; it reaches data through ``ctx.run_*``."""
        run = self._run_action(spec, args, identity)
        return await self._recorded(spec, "action", caller, run)

    async def _run_action(
        self, spec: FunctionSpec, args: Mapping[str, Any], identity: Mapping[str, Any] | None
    ) -> FunctionResult:
        refused = self._refused_args(spec, args)
        if refused is None:
            result = await self.runner.action(
                _path(spec),
                dict(args),
                identity=None if identity is None else dict(identity),
                services=self.services,
            )
        else:
            result = refused
        result.ts = self.snapshot_ts()
        return result


class _ServerServices:
    """``ActionServices`` of actions run by ``executor``: queries and mutations run as
    top-level calls (own transaction, own retries), as Convex runs an action's ``ctx.run_*``."""

    __slots__ = ("_executor",)

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    async def _run(
        self, path: str, kind: FunctionKind, args: dict[str, Any], identity: dict[str, Any] | None
    ) -> FunctionResult:
        executor = self._executor
        try:
            spec = executor.registry.resolve(path, kind=kind, allow_internal=True)
        except Exception as exc:
            return describe_failure(path, exc, dev=executor.dev)
        if kind is FunctionKind.QUERY:
            return await executor.run_query(spec, args, identity=identity)
        return await executor.run_mutation(spec, args, identity=identity)

    async def run_query(
        self, path: str, args: dict[str, Any], identity: dict[str, Any] | None
    ) -> FunctionResult:
        return await self._run(path, FunctionKind.QUERY, args, identity)

    async def run_mutation(
        self, path: str, args: dict[str, Any], identity: dict[str, Any] | None
    ) -> FunctionResult:
        return await self._run(path, FunctionKind.MUTATION, args, identity)

    def scheduler(self) -> Scheduler:
        return self._executor.action_scheduler()

    def storage(self) -> Any:
        return self._executor.action_storage()


def _raised(exc: Exception) -> FunctionResult:
    """The execution record's result of a call whose runner raised (the caller reports and
    logs the exception itself): a system error."""
    return FunctionResult(False, error_message=f"{type(exc).__name__}: {exc}", retryable=True)


def _records(members: list[Rider], results: list[FunctionResult]) -> list[MutationRecord]:
    """The idempotency records of the ``members`` that succeeded (``results``, in order)."""
    return [
        MutationRecord(m.idempotency_key[0], m.idempotency_key[1], r.value_json)
        for m, r in zip(members, results, strict=True)
        if r.success and m.idempotency_key is not None
    ]


@dataclass(slots=True)
class _Together:
    """What running mutations together came to: how many ran, and either their outcomes
    (committed together, or failed alone), or, for all of them, ``again`` (the commit
    conflicted: the turns to re-run in, or past the retries the failure) or ``failure``."""

    ran: int
    results: list[FunctionResult] = field(default_factory=list)
    again: FunctionResult | Turns | None = None
    failure: StorageFailure | None = None


@dataclass(slots=True)
class StorageFailure:
    """A commit storage refused: each mutation it carried fails with the same error."""

    path: str
    error: StorageUnavailable
    ts: int
    dev: bool

    def result(self) -> FunctionResult:
        failure = describe_failure(self.path, self.error, dev=self.dev)
        failure.ts = self.ts
        return failure


def _path(spec: FunctionSpec) -> str:
    return spec.path or "?"
