"""Runs one registered function: builds its context, validates, and turns outcomes into results.

Owns: the snapshot a query or mutation reads at, the OCC retry loop of mutations (jittered
backoff, then a clear final error), mutation idempotency by (session, request) id, and the
error mapping (``AppError`` data reaches clients; any other exception becomes
``[Request ID: …] Server Error`` with the full traceback logged). It does not own caching or
subscriptions (``reactor.engine.query_cache``) or transports.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from functions.context import ActionCtx, Auth, MutationCtx, QueryCtx, Scheduler
from functions.database import DatabaseReader, DatabaseWriter
from functions.decorators import FunctionKind, FunctionSpec
from functions.paths import reference_path
from functions.registry import Registry
from reactor.core.determinism import deterministic
from reactor.core.persistence import MutationRecord, Persistence
from reactor.core.reads import ReadSet
from reactor.core.runtime import Runtime
from reactor.core.system_tables import TableRegistry
from reactor.engine.committer import Committer
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
T = TypeVar("T")


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
    extra: dict[str, Any] = field(default_factory=dict)


class Executor:
    def __init__(
        self,
        *,
        schema: Any,
        persistence: Persistence,
        committer: Committer,
        tables: TableRegistry,
        runtime: Runtime,
        dev: bool = False,
    ) -> None:
        self.schema = schema
        self.persistence = persistence
        self.committer = committer
        self.tables = tables
        self.runtime = runtime
        self.dev = dev
        self.registry: Registry | None = None  # set by the composition root; swapped on reload
        # ctx.scheduler factories, set by the composition root (reactor.platform.scheduler)
        self.mutation_scheduler: Callable[[Transaction], Scheduler] | None = None
        self.action_scheduler: Callable[[], Scheduler] | None = None
        # ctx.storage factory (reactor.platform.files), given the call's transaction (None in actions)
        self.storage_handle: Callable[[Transaction | None], Any] | None = None
        self.env: Mapping[str, str] = {}
        self._retry_lane = asyncio.Lock()
        self._newest_request: dict[str, int] = {}
        # (session id, request id) -> in-flight or finished mutation result
        self._mutations: dict[tuple[str, int], asyncio.Future[FunctionResult]] = {}

    def snapshot_ts(self) -> int:
        return self.committer.published_ts

    def _storage(self, txn: Transaction | None) -> Any:
        return None if self.storage_handle is None else self.storage_handle(txn)

    def _transaction(self, ts: int, *, writable: bool, journal: str | None = None) -> Transaction:
        return Transaction(
            self.persistence,
            ts,
            schema=self.schema,
            tables=self.tables,
            writable=writable,
            now_ms=self.runtime.now_ns() / 1e6,
            journal=journal,
        )

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
        txn = self._transaction(ts, writable=False, journal=journal)
        auth = Auth(dict(identity) if identity is not None else None)
        ctx = QueryCtx(DatabaseReader(txn), auth, env=self.env, storage=self._storage(txn))
        with capture() as logs:
            try:
                with deterministic("query"):
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
        txn = self._transaction(ts, writable=True)
        auth = Auth(dict(identity) if identity is not None else None)
        scheduler = None if self.mutation_scheduler is None else self.mutation_scheduler(txn)
        ctx = MutationCtx(
            DatabaseWriter(txn), auth, scheduler, env=self.env, storage=self._storage(txn)
        )
        if hooks is not None:
            await hooks.before(txn)  # JobGone propagates: nothing to commit
        with capture() as logs:
            try:
                with deterministic("mutation"):
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
            if self.registry is None:
                raise RuntimeError("Executor.registry is not set")
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
            scheduler=None if self.action_scheduler is None else self.action_scheduler(),
            storage=self._storage(None),
            env=self.env,
        )

    # -- the runtime's own transactions ------------------------------------------------------

    async def run_system(self, body: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``body`` in a writable transaction and commit it, re-running it on conflicts
        until it commits (the scheduler's bookkeeping must not be lost)."""
        attempt = 0
        while True:
            attempt += 1
            txn = self._transaction(self.snapshot_ts(), writable=True)
            value = await body(txn)
            if not txn.has_writes:
                return value
            try:
                await self.committer.commit(txn.prepare_commit())
                return value
            except OptimisticConcurrencyError as exc:
                if exc.write_ts is not None:
                    await self.committer.wait_published(exc.write_ts)
                backoff = min(OCC_INITIAL_BACKOFF_S * 2 ** min(attempt, 10), 1.0)
                await self.runtime.sleep(backoff * self.runtime.random())

    def _occ_failure(self, spec: FunctionSpec, exc: OptimisticConcurrencyError) -> FunctionResult:
        log.warning("mutation %s failed after %d OCC retries: %s", spec.path, OCC_MAX_RETRIES, exc)
        return FunctionResult(False, error_message=exc.message, retryable=True, error_code=exc.code)

    @staticmethod
    def is_query(spec: FunctionSpec) -> bool:
        return spec.kind is FunctionKind.QUERY
