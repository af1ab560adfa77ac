"""Running one app function's handler: its context, its transaction, its outcome.

Owns what happens inside a function runner for one call: building ``ctx`` (with
``ctx.run_query``/``ctx.run_mutation`` nested in the caller's transaction, and an action's
``ctx.run_*`` reaching the server through ``ActionServices``), validating, capturing log lines,
and turning whatever the handler did into a ``FunctionResult`` (``describe_failure``). A
mutation's result carries its prepared commit; committing it, retrying conflicts and
de-duplicating requests belong to the server (``reactor.engine.executor``). The same code runs
in a runner process (``reactor.runners``) and, for tests and embedding, in the server's own
process.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from functions import deployment_env
from functions.context import ActionCtx, Auth, MutationCtx, QueryCtx, RunFunction, Scheduler
from functions.database import DatabaseReader, DatabaseWriter
from functions.decorators import FunctionKind, FunctionSpec
from functions.http_router import HttpRouter
from functions.paths import reference_path
from functions.registry import Registry
from reactor.core.determinism import deterministic
from reactor.core.persistence import CommitRequest
from reactor.core.reads import ReadSet
from reactor.engine.log_lines import capture
from reactor.engine.transaction import HotDocumentRead, Transaction
from reactor.errors import AuthenticationError, NetworkNotAllowed
from schema.errors import (
    ArgumentValidationError,
    DocumentNotFound,
    FunctionError,
    FunctionNotFound,
    InvalidCursor,
    OptimisticConcurrencyError,
    ReactorError,
    ReadOnlyTransactionError,
    ReturnValidationError,
    SchemaError,
    StorageError,
    TransactionLimitExceeded,
    UserError,
    ValidationError,
)
from schema.values import MAX_DOCUMENT_SIZE, dumps, to_clean_json

__all__ = [
    "MAX_CALL_DEPTH",
    "BATCH_TIME_S",
    "MAX_VALUE_BYTES",
    "OUT_OF_MEMORY",
    "ActionServices",
    "FunctionResult",
    "HttpCall",
    "HttpReply",
    "Invoker",
    "MutationBatch",
    "MutationCall",
    "TransactionHooks",
    "describe_failure",
]

log = logging.getLogger("reactor.engine.invocation")

MAX_CALL_DEPTH = 8
# The error code of a call that exhausted its runner's memory (the runner is then replaced).
OUT_OF_MEMORY = "OutOfMemory"
# How long a batch of mutations (``Invoker.mutation_batch``) starts new ones for.
BATCH_TIME_S = 0.05
# Convex's limit on a function's arguments and on its result (CONVEX_SEMANTICS.md §5).
MAX_VALUE_BYTES = 16 * 1024 * 1024
assert MAX_VALUE_BYTES >= MAX_DOCUMENT_SIZE


@dataclass(slots=True)
class FunctionResult:
    """The outcome of one execution. ``value_json`` is pre-encoded for the wire; a mutation's
    ``commit`` is its prepared writes (None when it failed)."""

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
    commit: CommitRequest | None = None
    job_gone: bool = False
    # Execution records (reactor.engine.execution_log): documents this run read, and wrote.
    documents_read: int = 0
    documents_written: int = 0
    # A resent mutation answered with its stored result: nothing ran (no execution record).
    answered_from_storage: bool = False
    # A server error's traceback, as logged under its request id (for the execution log).
    traceback: str | None = None
    # A mutation's first run stopped at its read of this document, which other mutations are
    # queued to write (``Transaction.hot``): no outcome; it runs again in its turn.
    deferred: str | None = None
    # Of ``attempts``, the first runs stopped so (they ran only up to that read).
    deferred_runs: int = 0
    # A mutation run in a batch of this many (``Invoker.mutation_batch``); 0: alone.
    batched: int = 0


@dataclass(slots=True)
class MutationCall:
    """One mutation of a batch (``Invoker.mutation_batch``)."""

    path: str
    args: dict[str, Any]
    identity: dict[str, Any] | None = None
    job_id: str | None = None


@dataclass(slots=True)
class MutationBatch:
    """What a batch of mutations did: the outcomes of those that ran, in order (the others did
    not run), and the commit of their writes (None: nothing to commit)."""

    results: list[FunctionResult]
    commit: CommitRequest | None


@dataclass(slots=True)
class HttpCall:
    """One request to an HTTP action, as a runner receives it (the body read whole)."""

    method: str
    path: str
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    scheme: str = "http"
    server: tuple[str, int] = ("127.0.0.1", 3211)
    client: tuple[str, int] | None = None


@dataclass(slots=True)
class HttpReply:
    """An HTTP action's response, or ``failure`` (the call failed: the server answers it)."""

    status: int = 200
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    failure: FunctionResult | None = None
    log_lines: tuple[str, ...] = ()  # what the handler printed (its execution record)


class TransactionHooks(Protocol):
    """Work the runtime adds to a mutation's own transaction (a scheduled job's state).
    ``before`` returns False when the job is gone: the run is abandoned, nothing commits."""

    async def before(self, txn: Transaction) -> bool: ...

    async def after(self, txn: Transaction) -> None: ...


class ActionServices(Protocol):
    """What an action's ``ctx`` reaches in the server: queries and mutations in their own
    transactions, and the action's scheduler and file storage."""

    async def run_query(
        self, path: str, args: dict[str, Any], identity: dict[str, Any] | None
    ) -> FunctionResult: ...

    async def run_mutation(
        self, path: str, args: dict[str, Any], identity: dict[str, Any] | None
    ) -> FunctionResult: ...

    def scheduler(self) -> Scheduler: ...

    def storage(self) -> Any: ...


# Mistakes of the caller or of the app's code the runtime detected: reported with their own
# code and message, logged without a traceback. Anything else is a server fault ("Server
# Error", traceback in the log).
_CALLER_FAULTS: tuple[type[ReactorError], ...] = (
    ValidationError,
    SchemaError,
    FunctionNotFound,
    NetworkNotAllowed,
    ReadOnlyTransactionError,
    DocumentNotFound,
    InvalidCursor,
    TransactionLimitExceeded,
)
_SERVER_FAULTS: tuple[type[ReactorError], ...] = (ReturnValidationError,)
# Reported as their bare message, as Convex does for a call that never reached the handler.
_BARE: tuple[type[ReactorError], ...] = (ArgumentValidationError, FunctionNotFound)


def describe_failure(path: str, exc: BaseException, *, dev: bool) -> FunctionResult:
    """The failed ``FunctionResult`` of ``exc`` raised by the function at ``path``.

    ``AppError`` (``UserError``) data reaches the caller; the runtime's own errors caused by the
    call (a validation error, a limit, a bad cursor, a missing function) reach it with their
    code and message; anything else becomes ``[Request ID: …] Server Error`` with the full
    traceback logged (and shown to the caller too under ``reactor dev``).
    """
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]  # task groups (httpx, anyio) wrap the one real error
    if isinstance(exc, MemoryError):
        log.warning("%s ran out of memory", path)
        return FunctionResult(
            False,
            error_message="Function execution ran out of memory (MemoryError)",
            error_code=OUT_OF_MEMORY,
        )
    if isinstance(exc, UserError):
        try:
            data_json = dumps(exc.data)
        except Exception:
            data_json = dumps(_printable(exc.data))
        message = exc.message if isinstance(exc.data, str) else "ConvexError"
        return FunctionResult(
            False,
            error_message=f"Uncaught ConvexError: {_printable(message)}",
            error_data_json=data_json,
            error_data=exc.data,
        )
    if isinstance(exc, _CALLER_FAULTS) and not isinstance(exc, _SERVER_FAULTS):
        message = _printable(exc.message)
        log.info("%s failed: %s: %s", path, exc.code, message)
        if not isinstance(exc, _BARE):
            message = f"Uncaught {type(exc).__name__}: {message}"
        return FunctionResult(False, error_message=message, error_code=exc.code)
    request_id = secrets.token_hex(8)
    try:
        detail = "".join(traceback.format_exception(exc))
    except Exception:  # a broken __str__ or __repr__ of app code
        detail = f"{type(exc).__name__} (its traceback could not be formatted)"
    detail = _printable(detail)
    log.error("[Request ID: %s] %s failed:\n%s", request_id, path, detail)
    message = f"[Request ID: {request_id}] Server Error"
    if isinstance(exc, ReactorError):
        message += f"\nUncaught {type(exc).__name__}: {_printable(exc.message)}"
    elif dev:
        message += f"\nUncaught {type(exc).__name__}: {_printable(_text(exc))}\n{detail}"
    retryable = isinstance(exc, (OptimisticConcurrencyError, StorageError))
    code = exc.code if retryable and isinstance(exc, ReactorError) else None
    return FunctionResult(
        False, error_message=message, retryable=retryable, error_code=code, traceback=detail
    )


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose str() failed>"


def _printable(value: Any) -> str:
    """``value`` as text that encodes as UTF-8 (unpaired surrogates replaced)."""
    text = value if isinstance(value, str) else _text_of(value)
    return text.encode("utf-8", "replace").decode("utf-8")


def _text_of(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def success(value: Any) -> FunctionResult:
    """A successful result; the value is encoded now, so an unencodable one fails the call."""
    value_json = dumps(value)
    if len(value_json) > MAX_VALUE_BYTES:
        raise FunctionError(
            f"Function return value is too large: {len(value_json)} bytes "
            f"(limit: {MAX_VALUE_BYTES} bytes)"
        )
    return FunctionResult(True, value=value, value_json=value_json)


class Invoker:
    """Runs handlers of the app in ``registry()``. ``begin(ts, writable, journal)`` opens a
    transaction; ``scheduler``/``storage`` give a transaction its ``ctx.scheduler`` and
    ``ctx.storage``; ``job_hooks(job_id)`` the bookkeeping of a scheduled mutation.

    A runner process runs calls with one; it is also itself a ``FunctionRunner`` that runs
    them in this process (tests and embedding, without isolation)."""

    def __init__(
        self,
        *,
        registry: Callable[[], Registry],
        begin: Callable[[int, bool, str | None], Transaction],
        env: Callable[[], Mapping[str, str]],
        scheduler: Callable[[Transaction], Scheduler] | None = None,
        storage: Callable[[Transaction], Any] | None = None,
        job_hooks: Callable[[str], TransactionHooks] | None = None,
        http_router: Callable[[], HttpRouter | None] | None = None,
        dev: bool = False,
    ) -> None:
        self._registry = registry
        self._begin = begin
        self._env = env
        self._scheduler = scheduler
        self._storage = storage
        self._job_hooks = job_hooks
        self._http_router = http_router or (lambda: None)
        self.dev = dev

    def resolve(self, path: str, kind: FunctionKind) -> FunctionSpec:
        return self._registry().resolve(path, kind=kind, allow_internal=True)

    def failure(self, path: str, exc: BaseException) -> FunctionResult:
        return describe_failure(path, exc, dev=self.dev)

    # -- queries -----------------------------------------------------------------------------

    async def query(
        self,
        path: str,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None,
        ts: int,
        journal: str | None,
    ) -> FunctionResult:
        txn = self._begin(ts, False, journal)
        auth = Auth(identity)
        with capture() as logs:
            try:
                spec = self.resolve(path, FunctionKind.QUERY)
                ctx = self._query_ctx(txn, auth, depth=0)
                with deterministic("query"), deployment_env.using(self._env()):
                    value = await spec.invoke(ctx, args)
                result = success(value)
            except BaseException as exc:
                result = self.failure(path, exc)
        result.log_lines = logs.lines
        result.ts = ts
        result.documents_read = txn.documents_read
        result.read_set = txn.read_set()
        result.identity_read = auth.was_read
        result.journal = txn.journal
        return result

    # -- mutations ---------------------------------------------------------------------------

    async def mutation(
        self,
        path: str,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None,
        ts: int,
        job_id: str | None = None,
        urgent: bool = False,
        hot: frozenset[str] | None = None,
    ) -> FunctionResult:
        """One execution at ``ts``: on success the result carries the prepared commit (in
        process, nothing waits for a runner: ``urgent`` changes nothing). A read of a document
        in ``hot`` stops it (``FunctionResult.deferred``)."""
        txn = self._begin(ts, True, None)
        if hot:
            txn.hot = hot
        result, _ = await self._execute(txn, MutationCall(path, args, identity, job_id), True)
        result.ts = ts
        result.documents_read = txn.documents_read
        return result

    def has_room(self, path: str) -> bool:
        """In process, a call never waits for a runner."""
        return True

    async def room(self, path: str) -> None:
        return None

    async def mutation_batch(
        self, calls: Sequence[MutationCall], *, ts: int, hot: frozenset[str] | None = None
    ) -> MutationBatch:
        """Run ``calls`` one after the other in one transaction at ``ts``, each seeing the
        writes of those before it, as if each had committed alone in this order; a failed one
        leaves no write behind, nor does one stopped at its read of a document in ``hot``
        (``FunctionResult.deferred``, as ``mutation``). The outcomes of the calls that ran (in
        order) and the commit of all their writes (None when there is none).

        The batch stops early, leaving the remaining calls not run, after ``BATCH_TIME_S`` or
        when a call other than the first exceeds a transaction limit the calls before it used
        up in part: those run again, alone or in another batch. When the writes of all of
        them exceed a limit together, none counts as run. The commit, when one succeeded,
        carries the read set of all of them (a read-only one's too: its record may need it).
        """
        txn = self._begin(ts, True, None)
        if hot:
            txn.hot = hot
        results: list[FunctionResult] = []
        deadline = time.monotonic() + BATCH_TIME_S
        for index, call in enumerate(calls):
            if index and time.monotonic() > deadline:
                break
            savepoint = txn.savepoint()
            read_before = txn.documents_read
            result, error = await self._execute(txn, call, False)
            if not result.success:
                txn.rollback_to(savepoint)
                if index and isinstance(error, TransactionLimitExceeded):
                    break  # it may fit alone: it runs again
            else:
                result.documents_written = txn.written_since(savepoint)
            result.ts = ts
            result.documents_read = txn.documents_read - read_before
            results.append(result)
        if not any(result.success for result in results):
            return MutationBatch(results, None)
        try:
            return MutationBatch(results, txn.prepare_commit())
        except TransactionLimitExceeded:
            return MutationBatch([], None)  # too much together: each runs again

    async def _execute(
        self, txn: Transaction, call: MutationCall, prepare: bool
    ) -> tuple[FunctionResult, BaseException | None]:
        """Run ``call``'s handler in ``txn`` (and its job's bookkeeping): its outcome, with the
        exception it failed with; ``prepare``: a success carries the prepared commit. Stopped
        at a hot read, it has none (``deferred``), and ``txn`` is ready for the next call."""
        hooks = None
        if call.job_id is not None and self._job_hooks is not None:
            hooks = self._job_hooks(call.job_id)
            if not await hooks.before(txn):
                return FunctionResult(False, error_message="job gone", job_gone=True), None
        error: BaseException | None = None
        with capture() as logs:
            try:
                spec = self.resolve(call.path, FunctionKind.MUTATION)
                ctx = self._mutation_ctx(txn, Auth(call.identity), depth=0)
                with deterministic("mutation"), deployment_env.using(self._env()):
                    value = await spec.invoke(ctx, call.args)
                result = success(value)
                if hooks is not None:
                    await hooks.after(txn)
                if prepare:
                    result.commit = txn.prepare_commit()
            except HotDocumentRead:
                result = FunctionResult(False)  # answered below, from txn.hot_read
            except BaseException as exc:
                error = exc
                result = self.failure(call.path, exc)
        if txn.hot_read is not None:  # even if the handler caught HotDocumentRead
            result = FunctionResult(False, deferred=txn.hot_read)
            txn.hot_read = None
        result.log_lines = logs.lines
        return result, error

    # -- contexts and nested calls in one transaction -----------------------------------------

    def _query_ctx(self, txn: Transaction, auth: Auth, *, depth: int) -> QueryCtx:
        run_query, _ = self._nested_calls(txn, auth, depth)
        return QueryCtx(
            DatabaseReader(txn),
            auth,
            env=self._env(),
            storage=None if self._storage is None else self._storage(txn),
            run_query=run_query,
        )

    def _mutation_ctx(self, txn: Transaction, auth: Auth, *, depth: int) -> MutationCtx:
        run_query, run_mutation = self._nested_calls(txn, auth, depth)
        return MutationCtx(
            DatabaseWriter(txn),
            auth,
            None if self._scheduler is None else self._scheduler(txn),
            env=self._env(),
            storage=None if self._storage is None else self._storage(txn),
            run_query=run_query,
            run_mutation=run_mutation,
        )

    def _nested(self, reference: Any, kind: FunctionKind, depth: int) -> FunctionSpec:
        if depth >= MAX_CALL_DEPTH:
            raise FunctionError(f"Function calls are nested more than {MAX_CALL_DEPTH} deep")
        return self.resolve(reference_path(reference), kind)

    def _nested_path(self, reference: Any, kind: FunctionKind, depth: int) -> str:
        return self._nested(reference, kind, depth).path or reference_path(reference)

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

        async def run_query(reference: Any, args: Mapping[str, Any] | None = None) -> Any:
            spec = self._nested(reference, FunctionKind.QUERY, depth)
            return await spec.invoke(self._query_ctx(txn, auth, depth=depth + 1), dict(args or {}))

        async def run_mutation(reference: Any, args: Mapping[str, Any] | None = None) -> Any:
            if not txn.writable:
                raise FunctionError("ctx.run_mutation is not available in a query")
            spec = self._nested(reference, FunctionKind.MUTATION, depth)
            ctx = self._mutation_ctx(txn, auth, depth=depth + 1)
            savepoint = txn.savepoint()
            try:
                return await spec.invoke(ctx, dict(args or {}))
            except BaseException:
                txn.rollback_to(savepoint)
                raise

        return run_query, run_mutation

    # -- actions ---------------------------------------------------------------------------

    async def action(
        self,
        path: str,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None,
        services: ActionServices,
        depth: int = 0,
    ) -> FunctionResult:
        """Run an action: no transaction of its own; it reaches data through ``ctx.run_*``."""
        with capture() as logs:
            try:
                spec = self.resolve(path, FunctionKind.ACTION)
                ctx = self.action_ctx(identity, services, depth=depth)
                with deployment_env.using(self._env()):
                    value = await spec.invoke(ctx, args)
                result = success(value)
            except BaseException as exc:
                result = self.failure(path, exc)
        result.log_lines = logs.lines
        return result

    def action_ctx(
        self, identity: dict[str, Any] | None, services: ActionServices, *, depth: int = 0
    ) -> ActionCtx:
        """The context of an action (or HTTP action): each ``run_query``/``run_mutation`` is its
        own transaction in the server; ``run_action`` runs here, one level deeper."""

        def unwrap(result: FunctionResult) -> Any:
            if result.success:
                return result.value
            if result.error_data_json is not None:
                raise UserError(result.error_data, result.error_message)
            raise FunctionError(result.error_message)

        async def run_query(reference: Any, args: Mapping[str, Any] | None = None) -> Any:
            path = self._nested_path(reference, FunctionKind.QUERY, depth)
            return unwrap(await services.run_query(path, dict(args or {}), identity))

        async def run_mutation(reference: Any, args: Mapping[str, Any] | None = None) -> Any:
            path = self._nested_path(reference, FunctionKind.MUTATION, depth)
            return unwrap(await services.run_mutation(path, dict(args or {}), identity))

        async def run_action(reference: Any, args: Mapping[str, Any] | None = None) -> Any:
            path = self._nested_path(reference, FunctionKind.ACTION, depth)
            return unwrap(
                await self.action(
                    path,
                    dict(args or {}),
                    identity=identity,
                    services=services,
                    depth=depth + 1,
                )
            )

        return ActionCtx(
            auth=Auth(identity),
            run_query=run_query,
            run_mutation=run_mutation,
            run_action=run_action,
            scheduler=services.scheduler(),
            storage=services.storage(),
            env=self._env(),
        )

    # -- HTTP actions ------------------------------------------------------------------------

    async def http_action(
        self,
        call: HttpCall,
        *,
        identity: dict[str, Any] | None,
        auth_error: tuple[str, str] | None,
        services: ActionServices,
    ) -> HttpReply:
        """Route ``call`` through the app's ``http.py`` and run its handler. ``auth_error``
        (message, reason) is a credential that failed: reading the identity raises it."""
        router = self._http_router()
        match = None if router is None else router.lookup(call.method, call.path)
        if match is None:
            return HttpReply(
                404,
                [(b"content-type", b"text/plain; charset=utf-8")],
                f"No HttpAction routed for {call.path}".encode(),
            )
        label = f"{call.method} {call.path}"
        with capture() as logs:
            try:
                ctx = self.action_ctx(identity, services)
                if auth_error is not None:
                    ctx.auth = _FailedAuth(AuthenticationError(auth_error[0], reason=auth_error[1]))
                response = await match.handler.invoke_http(ctx, _request(call))
                reply = await _reply(response, match.route)
            except UserError as exc:
                body = _json_bytes({"code": "ConvexError", "data": to_clean_json(exc.data)})
                reply = HttpReply(400, [(b"content-type", b"application/json")], body)
            except BaseException as exc:
                reply = HttpReply(500, failure=self.failure(f"HTTP action {label}", exc))
        reply.log_lines = logs.lines
        if reply.failure is not None:
            reply.failure.log_lines = logs.lines
        if match.drop_body:  # HEAD: the GET route's status and headers (its length too)
            reply.body = b""
        return reply


class _FailedAuth(Auth):
    """``ctx.auth`` of a request whose ``Authorization`` header did not authenticate: reading
    the identity raises why (Convex's ``Identity::Unknown(Some(error))``)."""

    __slots__ = ("_error",)

    def __init__(self, error: AuthenticationError) -> None:
        super().__init__(None)
        self._error = error

    async def get_user_identity(self) -> dict[str, Any] | None:
        self.was_read = True
        raise AuthenticationError(self._error.message, reason=self._error.reason)


def _request(call: HttpCall) -> Request:
    scope = {
        "type": "http",
        "method": call.method,
        "path": call.path,
        "raw_path": call.path.encode(),
        "query_string": call.query_string,
        "headers": call.headers,
        "scheme": call.scheme,
        "server": call.server,
        "client": call.client,
        "root_path": "",
        "http_version": "1.1",
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": call.body, "more_body": False}

    return Request(scope, receive)


async def _reply(response: Any, route: Any) -> HttpReply:
    if not isinstance(response, Response):
        raise FunctionError(
            f"HTTP action for {route} returned {type(response).__name__}, not a starlette Response"
        )
    iterator = getattr(response, "body_iterator", None)
    if iterator is None:
        body = bytes(response.body)
    else:
        chunks: list[bytes] = []
        size = 0
        async for chunk in iterator:
            data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
            size += len(data)
            if size > MAX_VALUE_BYTES:
                raise FunctionError(
                    f"HTTP action response is too large (limit: {MAX_VALUE_BYTES} bytes)"
                )
            chunks.append(data)
        body = b"".join(chunks)
    headers = [(k, v) for k, v in response.raw_headers if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    return HttpReply(response.status_code, headers, body)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
