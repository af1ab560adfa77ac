"""Runs one registered function: builds its context, validates, and turns outcomes into results.

Owns: the dispatch by function kind (``run``), the OCC retry loop of mutations (jittered
backoff, then a clear final error), mutation idempotency by (session, request) id, and the
error mapping (``AppError`` data reaches clients; any other exception becomes
``[Request ID: …] Server Error`` with the full traceback logged). It does not own snapshots and
transactions (``reactor.engine.database``), caching or subscriptions
(``reactor.engine.query_cache``) or transports.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from functions import deployment_env
from functions.context import ActionCtx, Auth, MutationCtx, QueryCtx, RunFunction, Scheduler
from functions.database import DatabaseReader, DatabaseWriter
from functions.decorators import FunctionKind, FunctionSpec
from functions.paths import reference_path
from functions.registry import Registry
from reactor.core.determinism import deterministic
from reactor.core.persistence import MutationRecord
from reactor.core.reads import ReadSet
from reactor.engine.database import Database
from reactor.engine.log_lines import capture
from reactor.engine.transaction import Transaction
from schema.errors import (
    ArgumentValidationError,
    FunctionError,
    FunctionNotFound,
    OptimisticConcurrencyError,
    ReactorError,
    StorageUnavailable,
    UserError,
)
from schema.values import dumps, loads

__all__ = ["Executor", "FunctionResult", "TransactionHooks"]

log = logging.getLogger("reactor.engine.executor")

OCC_MAX_RETRIES = 4
MAX_CALL_DEPTH = 8


class TransactionHooks(Protocol):
    """Work the runtime adds to a mutation's own transaction (a scheduled job's state)."""

    async def before(self, txn: Transaction) -> None: ...

    async def after(self, txn: Transaction) -> None: ...


OCC_INITIAL_BACKOFF_S = 0.001
OCC_MAX_BACKOFF_S = 0.05


@dataclass(slots=True)
class FunctionResult:
    """The outcome of one execution. ``value_json`` is pre-encoded for the wire."""

    success: bool
    value: Any = None
    value_json: bytes = b"null"
    error_message: str = ""
    error_data_json: bytes | None = None
    error_data: Any = None
    ts: int = 0
    read_set: ReadSet | None = None
    identity_read: bool = False
    journal: str | None = None
    log_lines: tuple[str, ...] = ()
    retryable: bool = False
    error_code: str | None = None
    attempts: int = 1


class Executor:
    """Runs app functions against ``database``. ``env``, ``scheduler`` and ``storage`` give a
    call its ``ctx.env``, ``ctx.scheduler`` (given the call's transaction, None in actions) and
    ``ctx.storage``; the registry is the served app's, read at each call."""

    def __init__(
        self,
        database: Database,
        *,
        env: Callable[[], Mapping[str, str]],
        scheduler: Callable[[Transaction | None], Scheduler] | None = None,
        storage: Callable[[Transaction | None], Any] | None = None,
        dev: bool = False,
    ) -> None:
        self.database = database
        self.persistence = database.persistence
        self.committer = database.committer
        self.runtime = database.runtime
        self._env = env
        self._scheduler = scheduler
        self._storage_for = storage
        self.dev = dev
        self._retry_lane = asyncio.Lock()
        self._newest_request: dict[str, int] = {}
        # (session id, request id) -> in-flight or finished mutation result
        self._mutations: dict[tuple[str, int], asyncio.Future[FunctionResult]] = {}

    @property
    def registry(self) -> Registry:
        return self.database.served.registry

    @property
    def env(self) -> Mapping[str, str]:
        return self._env()

    def snapshot_ts(self) -> int:
        return self.database.snapshot_ts()

    def _storage(self, txn: Transaction | None) -> Any:
        return None if self._storage_for is None else self._storage_for(txn)

    def _scheduler_for(self, txn: Transaction | None) -> Scheduler | None:
        return None if self._scheduler is None else self._scheduler(txn)

    async def run(
        self,
        spec: FunctionSpec,
        args: Mapping[str, Any],
        *,
        identity: Mapping[str, Any] | None = None,
    ) -> FunctionResult:
        """Run any function by its kind: the one dispatch of the HTTP API, the CLI and tests."""
        if spec.kind is FunctionKind.QUERY:
            return await self.run_query(spec, args, identity=identity)
        if spec.kind is FunctionKind.MUTATION:
            return await self.run_mutation(spec, args, identity=identity)
        return await self.run_action(spec, args, identity=identity)

    # -- errors ------------------------------------------------------------------------------

    def _failure(self, spec: FunctionSpec | None, exc: BaseException) -> FunctionResult:
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]  # task groups (httpx, anyio) wrap the one real error
        if isinstance(exc, UserError):
            try:
                data_json = dumps(exc.data)
            except ReactorError:
                data_json = dumps(str(exc.data))
            message = exc.message if isinstance(exc.data, str) else "ConvexError"
            return FunctionResult(
                False,
                error_message=f"Uncaught ConvexError: {message}",
                error_data_json=data_json,
                error_data=exc.data,
            )
        if isinstance(exc, (ArgumentValidationError, FunctionNotFound)):
            return FunctionResult(False, error_message=exc.message)
        request_id = secrets.token_hex(8)
        path = spec.path if spec is not None else "?"
        detail = "".join(traceback.format_exception(exc))
        log.error("[Request ID: %s] %s failed:\n%s", request_id, path, detail)
        message = f"[Request ID: {request_id}] Server Error"
        if isinstance(exc, ReactorError):
            message += f"\nUncaught {type(exc).__name__}: {exc.message}"
        elif self.dev:
            message += f"\nUncaught {type(exc).__name__}: {exc}\n{detail}"
        retryable = isinstance(exc, (OptimisticConcurrencyError, StorageUnavailable))
        code = exc.code if retryable and isinstance(exc, ReactorError) else None
        return FunctionResult(False, error_message=message, retryable=retryable, error_code=code)

    def _success(self, value: Any) -> FunctionResult:
        return FunctionResult(True, value=value, value_json=dumps(value))

    # -- queries -----------------------------------------------------------------------------

    async def run_query(
        self,
        spec: FunctionSpec,
        args: Mapping[str, Any],
        *,
        identity: Mapping[str, Any] | None = None,
        ts: int | None = None,
        journal: str | None = None,
    ) -> FunctionResult:
        """Run a query at ``ts`` (default: the latest published commit)."""
        ts = self.snapshot_ts() if ts is None else ts
        txn = self.database.begin(ts, writable=False, journal=journal)
        auth = Auth(dict(identity) if identity is not None else None)
        ctx = self._query_ctx(txn, auth, depth=0)
        with capture() as logs:
            try:
                with deterministic("query"), deployment_env.using(self.env):
                    value = await spec.invoke(ctx, dict(args))
                result = self._success(value)
            except Exception as exc:
                result = self._failure(spec, exc)
        result.log_lines = logs.lines
        result.ts = ts
        result.read_set = txn.read_set()
        result.identity_read = auth.was_read
        result.journal = txn.journal
        return result

    # -- mutations ---------------------------------------------------------------------------

    async def run_mutation(
        self,
        spec: FunctionSpec,
        args: Mapping[str, Any],
        *,
        identity: Mapping[str, Any] | None = None,
        idempotency_key: tuple[str, int] | None = None,
        hooks: TransactionHooks | None = None,
        max_retries: int = OCC_MAX_RETRIES,
    ) -> FunctionResult:
        """Run a mutation to commit, retrying OCC conflicts; deduplicated by idempotency key.

        ``hooks`` (the scheduler's) run inside the same transaction before and after the
        handler; ``hooks.before`` may raise ``JobGone`` to abandon the run without committing.
        """
        if idempotency_key is None:
            return await self._run_mutation(spec, args, identity, None, hooks, max_retries)
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
        self._newest_request[session_id] = newest
        if stored is not None:
            ts, result_json = stored
            return FunctionResult(True, value=loads(result_json), value_json=result_json, ts=ts)
        future: asyncio.Future[FunctionResult] = asyncio.get_running_loop().create_future()
        self._mutations[idempotency_key] = future
        try:
            result = await self._run_mutation(
                spec, args, identity, idempotency_key, None, max_retries
            )
        except BaseException as exc:
            self._mutations.pop(idempotency_key, None)
            future.set_exception(exc)
            future.exception()  # mark retrieved
            raise
        future.set_result(result)
        if len(self._mutations) > 100_000:
            # Successful results are durable in storage; in-memory copies are only a fast path.
            for key in list(self._mutations)[:50_000]:
                if self._mutations[key].done():
                    del self._mutations[key]
        return result

    async def _run_mutation(
        self,
        spec: FunctionSpec,
        args: Mapping[str, Any],
        identity: Mapping[str, Any] | None,
        idempotency_key: tuple[str, int] | None,
        hooks: TransactionHooks | None,
        max_retries: int,
    ) -> FunctionResult:
        attempt = 0
        lane: asyncio.Lock | None = None
        try:
            while True:
                attempt += 1
                if attempt == 2:
                    # After a conflict, re-runs take turns in one lane: they then never conflict
                    # with each other, only with first attempts, so a hot document costs one
                    # execution per commit instead of one per contender.
                    lane = self._retry_lane
                    await lane.acquire()
                result = await self._attempt(
                    spec, args, identity, idempotency_key, attempt, hooks, max_retries
                )
                if result is not None:
                    return result
        finally:
            if lane is not None:
                lane.release()

    async def _attempt(
        self,
        spec: FunctionSpec,
        args: Mapping[str, Any],
        identity: Mapping[str, Any] | None,
        idempotency_key: tuple[str, int] | None,
        attempt: int,
        hooks: TransactionHooks | None,
        max_retries: int,
    ) -> FunctionResult | None:
        """One execution and commit; None when it conflicted and should be re-run."""
        ts = self.snapshot_ts()
        txn = self.database.begin(ts, writable=True)
        auth = Auth(dict(identity) if identity is not None else None)
        ctx = self._mutation_ctx(txn, auth, depth=0)
        if hooks is not None:
            await hooks.before(txn)  # JobGone propagates: nothing to commit
        with capture() as logs:
            try:
                with deterministic("mutation"), deployment_env.using(self.env):
                    value = await spec.invoke(ctx, dict(args))
                result = self._success(value)
                if hooks is not None:
                    await hooks.after(txn)
            except Exception as exc:
                result = self._failure(spec, exc)
        result.log_lines = logs.lines
        result.attempts = attempt
        if not result.success:
            result.ts = ts
            return result
        if not txn.has_writes and idempotency_key is None and hooks is None:
            result.ts = ts
            return result
        record = (
            None
            if idempotency_key is None
            else MutationRecord(idempotency_key[0], idempotency_key[1], result.value_json)
        )
        try:
            result.ts = await self.committer.commit(txn.prepare_commit(), record)
            return result
        except OptimisticConcurrencyError as exc:
            if attempt > max_retries:
                exc.function = spec.path
                failure = self._occ_failure(spec, exc)
                failure.ts = ts
                failure.attempts = attempt
                return failure
            # Re-running before the conflicting commit is visible would conflict again.
            if exc.write_ts is not None:
                await self.committer.wait_published(exc.write_ts)
            backoff = min(OCC_INITIAL_BACKOFF_S * 2 ** (attempt - 1), OCC_MAX_BACKOFF_S)
            await self.runtime.sleep(backoff * self.runtime.random())
            return None
        except StorageUnavailable as exc:
            failure = self._failure(spec, exc)
            failure.ts = ts
            return failure

    # -- contexts and nested calls in one transaction -----------------------------------------

    def _query_ctx(self, txn: Transaction, auth: Auth, *, depth: int) -> QueryCtx:
        run_query, _ = self._nested_calls(txn, auth, depth)
        return QueryCtx(
            DatabaseReader(txn),
            auth,
            env=self.env,
            storage=self._storage(txn),
            run_query=run_query,
        )

    def _mutation_ctx(self, txn: Transaction, auth: Auth, *, depth: int) -> MutationCtx:
        run_query, run_mutation = self._nested_calls(txn, auth, depth)
        return MutationCtx(
            DatabaseWriter(txn),
            auth,
            self._scheduler_for(txn),
            env=self.env,
            storage=self._storage(txn),
            run_query=run_query,
            run_mutation=run_mutation,
        )

    def _nested_calls(
        self, txn: Transaction, auth: Auth, depth: int
    ) -> tuple[RunFunction, RunFunction]:
        """``ctx.run_query``/``ctx.run_mutation`` of a query or mutation: the called function runs
        in the caller's transaction (it sees the caller's writes; its reads join the caller's
        read set, so a conflict re-runs the whole outer mutation; its writes commit with the
        caller's). Arguments and the result are validated; internal functions may be called;
        errors reach the caller unchanged, and a nested mutation that raises has its own writes
        rolled back first. ``auth`` is shared: a nested call reading the identity counts as the
        caller reading it."""

        def resolve(reference: Any, kind: FunctionKind) -> FunctionSpec:
            if depth >= MAX_CALL_DEPTH:
                raise FunctionError(f"Function calls are nested more than {MAX_CALL_DEPTH} deep")
            return self.registry.resolve(reference_path(reference), kind=kind, allow_internal=True)

        async def run_query(reference: Any, args: Mapping[str, Any] | None = None) -> Any:
            spec = resolve(reference, FunctionKind.QUERY)
            return await spec.invoke(self._query_ctx(txn, auth, depth=depth + 1), dict(args or {}))

        async def run_mutation(reference: Any, args: Mapping[str, Any] | None = None) -> Any:
            if not txn.writable:
                raise FunctionError("ctx.run_mutation is not available in a query")
            spec = resolve(reference, FunctionKind.MUTATION)
            ctx = self._mutation_ctx(txn, auth, depth=depth + 1)
            savepoint = txn.savepoint()
            try:
                return await spec.invoke(ctx, dict(args or {}))
            except BaseException:
                txn.rollback_to(savepoint)
                raise

        return run_query, run_mutation

    # -- actions ---------------------------------------------------------------------------

    async def run_action(
        self,
        spec: FunctionSpec,
        args: Mapping[str, Any],
        *,
        identity: Mapping[str, Any] | None = None,
        depth: int = 0,
    ) -> FunctionResult:
        """Run an action: no transaction of its own; it reaches data through ``ctx.run_*``."""
        ctx = self.action_ctx(identity, depth=depth)
        with capture() as logs:
            try:
                with deployment_env.using(self.env):
                    value = await spec.invoke(ctx, dict(args))
                result = self._success(value)
            except Exception as exc:
                result = self._failure(spec, exc)
        result.log_lines = logs.lines
        result.ts = self.snapshot_ts()
        return result

    def action_ctx(self, identity: Mapping[str, Any] | None, *, depth: int = 0) -> ActionCtx:
        """The context of an action (or HTTP action): each ``run_*`` call is its own transaction."""

        def resolve(reference: Any, kind: FunctionKind) -> FunctionSpec:
            if depth >= MAX_CALL_DEPTH:
                raise FunctionError(f"Function calls are nested more than {MAX_CALL_DEPTH} deep")
            return self.registry.resolve(reference_path(reference), kind=kind, allow_internal=True)

        def unwrap(result: FunctionResult) -> Any:
            if result.success:
                return result.value
            if result.error_data_json is not None:
                raise UserError(result.error_data, result.error_message)
            raise FunctionError(result.error_message)

        async def run_query(reference: Any, args: Mapping[str, Any] | None = None) -> Any:
            spec = resolve(reference, FunctionKind.QUERY)
            return unwrap(await self.run_query(spec, dict(args or {}), identity=identity))

        async def run_mutation(reference: Any, args: Mapping[str, Any] | None = None) -> Any:
            spec = resolve(reference, FunctionKind.MUTATION)
            return unwrap(await self.run_mutation(spec, dict(args or {}), identity=identity))

        async def run_action(reference: Any, args: Mapping[str, Any] | None = None) -> Any:
            spec = resolve(reference, FunctionKind.ACTION)
            return unwrap(
                await self.run_action(spec, dict(args or {}), identity=identity, depth=depth + 1)
            )

        return ActionCtx(
            auth=Auth(dict(identity) if identity is not None else None),
            run_query=run_query,
            run_mutation=run_mutation,
            run_action=run_action,
            scheduler=self._scheduler_for(None),
            storage=self._storage(None),
            env=self.env,
        )

    def _occ_failure(self, spec: FunctionSpec, exc: OptimisticConcurrencyError) -> FunctionResult:
        log.warning("mutation %s failed after %d OCC retries: %s", spec.path, OCC_MAX_RETRIES, exc)
        return FunctionResult(False, error_message=exc.message, retryable=True, error_code=exc.code)
