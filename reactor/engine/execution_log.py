"""Execution records: one structured record per function execution, kept in a bounded ring.

Owns the record's shape (``ExecutionRecord``: its field names are stable, the dashboard, ``reactor
logs``, ``npx convex logs`` and ``/metrics`` read them; docs/operations.md lists them), how a
``FunctionResult`` becomes one (``record_of``: outcome, error code, request id), the ring with
its monotonic cursor, its filters and its waiters (``ExecutionLog``), and the one-line summary
each record leaves on the server log. It does not time calls or know transports: the executor
and the HTTP-actions route build records, and ``reactor.server`` turns the ring into routes.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import random
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from reactor.engine.invocation import FunctionResult

__all__ = [
    "DEFAULT_CAPACITY",
    "Caller",
    "ExecutionLog",
    "ExecutionRecord",
    "ExecutionSink",
    "LogFormat",
    "Outcome",
    "record_of",
    "summary",
]

log = logging.getLogger("reactor.executions")

DEFAULT_CAPACITY = 10_000
_REQUEST_ID = re.compile(r"^\[Request ID: ([0-9a-f]+)\]")


class Caller(enum.Enum):
    """Who started an execution."""

    WEBSOCKET = "websocket"
    HTTP = "http"
    SCHEDULER = "scheduler"
    CRON = "cron"
    HTTP_ACTION = "http_action"
    # Nested: an action's ctx.run_query/run_mutation, the CLI, tests and embedding.
    INTERNAL = "internal"


class Outcome(enum.Enum):
    SUCCESS = "success"
    # The app's ConvexError or a mistake the runtime detected in the call (its ``error_code``).
    USER_ERROR = "user_error"
    # Anything else ("Server Error"): the server log has its traceback under ``request_id``.
    SYSTEM_ERROR = "system_error"


# The values, for the hot path (an Enum member's ``.value`` is a descriptor call).
SUCCESS = Outcome.SUCCESS.value
USER_ERROR = Outcome.USER_ERROR.value
SYSTEM_ERROR = Outcome.SYSTEM_ERROR.value


class LogFormat(enum.Enum):
    TEXT = "text"
    JSON = "json"


class ExecutionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One finished function execution. Field names are part of the operator interface."""

    cursor: int  # strictly increasing within a process (microseconds since the epoch, at least)
    timestamp: float  # unix seconds when it finished
    path: str  # "messages:send"; for HTTP actions "GET /hello"
    kind: str  # query | mutation | action | http_action
    caller: str  # a Caller value
    live_rerun: bool  # a live query run again after a commit into its read set
    duration_s: float
    outcome: str  # an Outcome value
    error_code: str | None
    error_message: str | None
    request_id: str  # names a system error's traceback in the server log
    documents_read: int
    documents_written: int
    occ_retries: int
    log_lines: tuple[str, ...]
    traceback: str | None = None  # a system error's, as the server (or its runner) logged it
    # First runs stopped at a read of a document re-runs were queued to write (they ran again
    # in turn; not counted in ``occ_retries``).
    deferred_runs: int = 0
    # Mutations in the one transaction this one committed in (re-runs waiting for the same
    # documents, or first runs gathered while the runners were busy); 0: alone.
    batched: int = 0


_encode = msgspec.json.Encoder().encode
# Request ids of executions without a server error only tell records apart (a server error's
# comes from its log line, ``secrets``): no system call per execution.
_request_ids = random.Random()


def record_of(
    result: FunctionResult,
    *,
    path: str,
    kind: str,
    caller: Caller,
    duration_s: float,
    live_rerun: bool = False,
) -> ExecutionRecord:
    """The record of ``result`` (``cursor`` and ``timestamp`` are set by ``ExecutionLog``)."""
    request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    if result.success:
        outcome = SUCCESS
    else:
        error_message = result.error_message
        match = _REQUEST_ID.match(error_message)
        if match is not None:
            outcome = SYSTEM_ERROR
            request_id = match.group(1)
            error_code = result.error_code
        elif result.retryable:  # OCC retries exhausted, storage unavailable
            outcome = SYSTEM_ERROR
            error_code = result.error_code
        else:
            outcome = USER_ERROR
            if result.error_code is not None:
                error_code = result.error_code
            elif result.error_data_json is not None:
                error_code = "ConvexError"
            else:
                error_code = "Error"
    occ_retries = max(0, result.attempts - 1 - result.deferred_runs)
    return ExecutionRecord(
        cursor=0,
        timestamp=0.0,
        path=path,
        kind=kind,
        caller=caller.value,
        live_rerun=live_rerun,
        duration_s=duration_s,
        outcome=outcome,
        error_code=error_code,
        error_message=error_message,
        request_id=request_id or f"{_request_ids.getrandbits(64):016x}",
        documents_read=result.documents_read,
        documents_written=result.documents_written,
        occ_retries=occ_retries,
        log_lines=tuple(result.log_lines),
        traceback=result.traceback if outcome == SYSTEM_ERROR else None,
        deferred_runs=result.deferred_runs,
        batched=result.batched,
    )


def summary(record: ExecutionRecord) -> str:
    """A readable one-line account of ``record`` (the text server log, ``reactor logs``)."""
    rerun = " rerun" if record.live_rerun else ""
    head = f"{record.kind} {record.path} [{record.caller}{rerun}] {record.duration_s * 1000:.1f} ms"
    counts = f"read {record.documents_read} written {record.documents_written}"
    if record.occ_retries:
        counts += f" occ_retries {record.occ_retries}"
    if record.deferred_runs:
        counts += f" deferred {record.deferred_runs}"
    if record.batched:
        counts += f" batched {record.batched}"
    if record.outcome == SUCCESS:
        return f"{head} success ({counts})"
    message = (record.error_message or "").replace("\n", " | ")
    if len(message) > 300:
        message = message[:300] + "..."
    return (
        f"{head} {record.outcome} {record.error_code or '-'}: {message} "
        f"(request {record.request_id}; {counts})"
    )


# What executors hold: a callable taking a record (``ExecutionLog.add``), or None for none.
ExecutionSink = Callable[[ExecutionRecord], object]


class ExecutionLog:
    """The newest ``capacity`` execution records, in the order they finished.

    Invariant: cursors strictly increase along the ring, so ``since(cursor)`` never repeats or
    skips a record still in the ring; a reader that fell more than ``capacity`` records behind
    sees the gap as the oldest cursor being above its own (``dropped_before``)."""

    def __init__(
        self,
        *,
        capacity: int = DEFAULT_CAPACITY,
        log_format: LogFormat = LogFormat.TEXT,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.log_format = log_format
        self._clock_ns = clock_ns
        self._records: collections.deque[ExecutionRecord] = collections.deque(maxlen=capacity)
        self._last_cursor = 0
        self._arrived: asyncio.Event | None = None
        self.total = 0
        self._listeners: list[ExecutionSink] = []
        self._closed = False

    def subscribe(self, listener: ExecutionSink) -> None:
        """Call ``listener`` with every record added from now on (metrics)."""
        self._listeners.append(listener)

    def add(self, record: ExecutionRecord) -> ExecutionRecord:
        """Stamp ``record`` with its cursor and finish time, keep it, wake waiters, log it."""
        now_ns = self._clock_ns()
        cursor = max(self._last_cursor + 1, now_ns // 1000)
        self._last_cursor = cursor
        stamped = msgspec.structs.replace(record, cursor=cursor, timestamp=now_ns / 1e9)
        self._records.append(stamped)
        self.total += 1
        for listener in self._listeners:
            try:
                listener(stamped)
            except Exception:
                log.exception("an execution record listener failed")
        if self._arrived is not None:
            self._arrived.set()
            self._arrived = None
        self._log(stamped)
        return stamped

    def _log(self, record: ExecutionRecord) -> None:
        failed = record.outcome != SUCCESS
        if self.log_format is LogFormat.JSON:
            # One JSON line per record (the JSON formatter writes ``execution`` out whole).
            log.info(summary(record), extra={"execution": msgspec.to_builtins(record)})
        elif log.isEnabledFor(logging.INFO if failed else logging.DEBUG):
            log.log(logging.INFO if failed else logging.DEBUG, "%s", summary(record))

    def __len__(self) -> int:
        return len(self._records)

    @property
    def last_cursor(self) -> int:
        """The cursor of the newest record (0 before the first)."""
        return self._last_cursor

    @property
    def dropped_before(self) -> int:
        """The cursor of the oldest record still kept (0 when empty)."""
        return self._records[0].cursor if self._records else 0

    def read(
        self,
        *,
        since: int = 0,
        path: str | None = None,
        outcome: str | Iterable[str] | None = None,
        request_id: str | None = None,
        limit: int | None = None,
    ) -> list[ExecutionRecord]:
        """Records with a cursor above ``since`` matching every filter given, oldest first;
        with ``limit``, the newest ``limit`` of them.

        Raises:
            ValueError: an unknown ``outcome`` or a negative ``limit``.
        """
        wanted = _outcomes(outcome)
        if limit is not None and limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        out = [
            record
            for record in self._after(since)
            if (path is None or record.path == path)
            and (wanted is None or record.outcome in wanted)
            and (request_id is None or record.request_id == request_id)
        ]
        if limit is not None:
            out = out[len(out) - limit :] if limit else []
        return out

    def _after(self, since: int) -> Iterable[ExecutionRecord]:
        records = self._records
        if not records or records[-1].cursor <= since:
            return ()
        if records[0].cursor > since:
            return list(records)
        # Cursors increase along the ring: bisect for the first one above ``since``.
        lo, hi = 0, len(records) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if records[mid].cursor > since:
                hi = mid
            else:
                lo = mid + 1
        return [records[i] for i in range(lo, len(records))]

    def close(self) -> None:
        """End every wait, now and later (the server is stopping: a long poll must not hold
        its shutdown)."""
        self._closed = True
        if self._arrived is not None:
            self._arrived.set()
            self._arrived = None

    async def wait(self, since: int, timeout_s: float) -> bool:
        """Wait until a record with a cursor above ``since`` exists, at most ``timeout_s``
        (not at all once closed); whether one does."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._last_cursor <= since:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or self._closed:
                return False
            if self._arrived is None:
                self._arrived = asyncio.Event()
            try:
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            except TimeoutError:
                return self._last_cursor > since
        return True

    @staticmethod
    def to_json(record: ExecutionRecord) -> bytes:
        return _encode(record)

    @staticmethod
    def to_builtins(record: ExecutionRecord) -> dict[str, Any]:
        value: dict[str, Any] = msgspec.to_builtins(record)
        return value


def _outcomes(outcome: str | Iterable[str] | None) -> frozenset[str] | None:
    if outcome is None:
        return None
    values = frozenset([outcome] if isinstance(outcome, str) else outcome)
    known = {o.value for o in Outcome}
    unknown = sorted(values - known)
    if unknown:
        raise ValueError(
            f"unknown outcome {unknown[0]!r}: expected one of {', '.join(sorted(known))}"
        )
    return values
