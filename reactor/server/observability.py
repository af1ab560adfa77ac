"""The operator's routes: execution logs, metrics, liveness and readiness.

Owns ``GET /api/stream_function_logs`` (the long poll ``npx convex logs`` runs, entries in
Convex's ``FunctionExecution`` shape), ``GET /api/execution_logs`` (the native records, for
``reactor logs`` and the dashboard), ``GET /metrics`` (Prometheus text; admin key unless the
deployment's metrics are public), ``GET /health`` and ``GET /ready``, and the execution record
of an HTTP action. The records and metrics themselves live in
``reactor.engine.execution_log`` and ``reactor.server.metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reactor.engine.execution_log import Caller, ExecutionLog, ExecutionRecord, record_of
from reactor.engine.invocation import FunctionResult, HttpReply
from reactor.server.deployment import Deployment
from reactor.server.http_errors import HttpError, error_response, require_admin
from reactor.server.metrics import CONTENT_TYPE

__all__ = [
    "MAX_WAIT_S",
    "READY_TIMEOUT_S",
    "convex_entry",
    "observability_routes",
    "record_http_action",
]

log = logging.getLogger("reactor.http")

# A long poll answers at the latest after this long (Convex: 60 s); shorter, so that a client
# that went away holds no request (and a server stopping waits for none) for long.
MAX_WAIT_S = 30.0
READY_TIMEOUT_S = 2.0
DEFAULT_LIMIT = 1000
_json = msgspec.json.Encoder()

_UDF_TYPES = {
    "query": "Query",
    "mutation": "Mutation",
    "action": "Action",
    "http_action": "HttpAction",
}
_CONVEX_CALLERS = {
    "websocket": "SyncWorker",
    "http": "HttpApi",
    "scheduler": "Scheduler",
    "cron": "Cron",
    "http_action": "HttpEndpoint",
    "internal": "Action",
}
_LEVELS = ("LOG", "DEBUG", "INFO", "WARN", "ERROR")


def _route(
    fn: Callable[[Deployment, Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request.app.state.deployment, request)
        except HttpError as exc:
            log.info("HTTP %s %s: %s %s", request.method, request.url.path, exc.status, exc.message)
            return error_response(exc.status, exc.code, exc.message)

    return endpoint


# -- execution logs ----------------------------------------------------------------------------


async def _wait_or_disconnect(
    request: Request, execution_log: ExecutionLog, since: int, timeout_s: float
) -> None:
    """Wait for a record above ``since``, at most ``timeout_s``; a client that leaves ends the
    wait too (its request would otherwise hold a task until the timeout)."""
    if timeout_s <= 0:
        return

    async def disconnected() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    waiter = asyncio.ensure_future(execution_log.wait(since, timeout_s))
    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({waiter, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiter, watcher):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _float_param(request: Request, name: str, default: float) -> float:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise HttpError(400, "BadRequest", f"`{name}` must be a number, got {raw[:50]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise HttpError(400, "BadRequest", f"`{name}` must be a non-negative number, got {raw!r}")
    return value


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        message = f"`{name}` must be an integer, got {raw[:50]!r}"
        raise HttpError(400, "BadRequest", message) from None
    if value < 0:
        raise HttpError(400, "BadRequest", f"`{name}` must not be negative, got {value}")
    return value


def _log_line(line: str, timestamp_ms: int) -> dict[str, Any]:
    """A captured ``[LEVEL] text`` line as Convex's structured ``LogLineJson``."""
    level = "LOG"
    text = line
    if line.startswith("["):
        head, sep, rest = line.partition("] ")
        if sep and head[1:] in _LEVELS:
            level, text = head[1:], rest
    return {"messages": [text], "isTruncated": False, "timestamp": timestamp_ms, "level": level}


def convex_entry(record: ExecutionRecord) -> dict[str, Any]:
    """``record`` as a ``FunctionExecution`` Completion entry of Convex's log stream."""
    timestamp_ms = int(record.timestamp * 1000)
    entry: dict[str, Any] = {
        "kind": "Completion",
        "udfType": _UDF_TYPES.get(record.kind, "Action"),
        "identifier": record.path,
        "componentPath": None,
        "logLines": [_log_line(line, timestamp_ms) for line in record.log_lines],
        "timestamp": record.timestamp,
        "executionTimestamp": record.timestamp - record.duration_s,
        "cachedResult": False,
        "caller": _CONVEX_CALLERS.get(record.caller, record.caller),
        "parentExecutionId": None,
        "executionTime": record.duration_s,
        "userExecutionTime": record.duration_s,
        "success": None,
        "error": record.error_message,
        "requestId": record.request_id,
        "executionId": str(record.cursor),
        "usageStats": {
            "databaseReadBytes": 0,
            "databaseWriteBytes": 0,
            "databaseIoReadBytes": 0,
            "databaseIoWriteBytes": 0,
            "databaseReadDocuments": record.documents_read,
            "databaseWriteDocuments": record.documents_written,
            "databaseWriteIndexRows": 0,
            "storageReadBytes": 0,
            "storageWriteBytes": 0,
            "vectorIndexReadBytes": 0,
            "vectorIndexWriteBytes": 0,
            "textIndexQueryBytes": 0,
            "textIndexWriteQueryBytes": 0,
            "vectorIndexReadQueryBytes": 0,
            "vectorIndexWriteQueryBytes": 0,
            "networkEgressBytes": 0,
            "memoryUsedMb": 0,
        },
        "returnBytes": None,
        "occInfo": {"retryCount": record.occ_retries} if record.occ_retries else None,
        "willRetry": False,
        "identityType": "unknown",
        "environment": "isolate" if record.kind in ("query", "mutation") else "node",
    }
    return entry


async def _stream_function_logs(deployment: Deployment, request: Request) -> Response:
    """Convex's long poll: entries after ``cursor`` (milliseconds, opaque to the CLI), waiting
    up to MAX_WAIT_S for one. ``cursor=0`` (a client's first poll) answers at once, so the
    records that arrive next are not in the batch the CLI skips as history."""
    await require_admin(deployment, request)
    execution_log = deployment.execution_log
    raw = _float_param(request, "cursor", 0.0)
    since = round(raw * 1000)
    if since > 0:
        await _wait_or_disconnect(request, execution_log, since, MAX_WAIT_S)
    if since > 0:  # page forward, oldest first
        records = execution_log.read(since=since)[:DEFAULT_LIMIT]
    else:  # the history a first poll shows (--history N): the newest
        records = execution_log.read(since=since, limit=DEFAULT_LIMIT)
    newest = records[-1].cursor if records else max(since, execution_log.last_cursor)
    body = {"entries": [convex_entry(r) for r in records], "newCursor": newest / 1000}
    return Response(_json.encode(body), media_type="application/json")


async def _execution_logs(deployment: Deployment, request: Request) -> Response:
    """The native records: ``?cursor=`` (exclusive), ``path``, ``outcome`` (success,
    user_error, system_error or failure = both errors), ``request_id``, ``limit`` (the newest N
    matching; without it the oldest DEFAULT_LIMIT, to page forward with the answer's
    ``cursor``), ``wait`` (seconds to wait for a first matching record, at most MAX_WAIT_S)."""
    await require_admin(deployment, request)
    execution_log = deployment.execution_log
    params = request.query_params
    since = _int_param(request, "cursor") or 0
    limit = _int_param(request, "limit")
    wait_s = min(_float_param(request, "wait", 0.0), MAX_WAIT_S)
    outcome: str | tuple[str, ...] | None = params.get("outcome") or None
    if outcome == "failure":
        outcome = ("user_error", "system_error")

    def read() -> list[ExecutionRecord]:
        try:
            found = execution_log.read(
                since=since,
                path=params.get("path") or None,
                outcome=outcome,
                request_id=params.get("request_id") or None,
                limit=limit,
            )
            return found if limit is not None else found[:DEFAULT_LIMIT]
        except ValueError as exc:
            raise HttpError(400, "BadRequest", str(exc)) from exc

    records = read()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    seen = execution_log.last_cursor
    while not records and loop.time() < deadline:
        await _wait_or_disconnect(request, execution_log, seen, deadline - loop.time())
        if execution_log.last_cursor == seen:
            break  # timed out, or the client left
        seen = execution_log.last_cursor
        records = read()
    # The cursor to pass next: past every record looked at, matching or not.
    cursor = max(since, records[-1].cursor if records else seen)
    body = {
        "records": [execution_log.to_builtins(r) for r in records],
        "cursor": cursor,
        "oldestCursor": execution_log.dropped_before,
    }
    return Response(_json.encode(body), media_type="application/json")


def record_http_action(
    deployment: Deployment, method: str, path: str, reply: HttpReply, duration_s: float
) -> None:
    """Leave the execution record of one HTTP action (path ``"GET /hello"``)."""
    result = reply.failure or FunctionResult(True, log_lines=reply.log_lines)
    deployment.execution_log.add(
        record_of(
            result,
            path=f"{method} {path}",
            kind="http_action",
            caller=Caller.HTTP_ACTION,
            duration_s=duration_s,
        )
    )


# -- metrics and health ------------------------------------------------------------------------


async def _metrics(deployment: Deployment, request: Request) -> Response:
    if not deployment.metrics_public:
        await require_admin(deployment, request)
    return Response(await deployment.metrics.exposition(), media_type=CONTENT_TYPE)


async def _health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _ready(deployment: Deployment, request: Request) -> Response:
    reason = await readiness(deployment)
    if reason is None:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)


async def readiness(deployment: Deployment) -> str | None:
    """Why ``deployment`` cannot serve calls yet (None: it can)."""
    if not deployment.started:
        return "the deployment is starting or stopping"
    pools = deployment.pools
    if pools is not None and (pools.queries.closed or pools.actions.closed):
        return "the function runner pools are stopped"
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await deployment.persistence.get_global("ready-probe")
    except TimeoutError:
        return f"storage did not answer a read within {READY_TIMEOUT_S:g} s"
    except Exception as exc:
        return f"storage did not answer a read: {type(exc).__name__}: {exc}"
    return None


def observability_routes() -> list[Route]:
    return [
        Route("/api/stream_function_logs", _route(_stream_function_logs), methods=["GET"]),
        Route("/api/execution_logs", _route(_execution_logs), methods=["GET"]),
        Route("/metrics", _route(_metrics), methods=["GET"]),
        Route("/health", _health, methods=["GET"]),
        Route("/ready", _route(_ready), methods=["GET"]),
    ]
