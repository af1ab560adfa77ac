"""The websocket shell of the sync protocol: pumps frames between a socket and a ServerSession.

Owns, per connection: the receive loop, the in-order mutation worker, the sender (outgoing
frames in order, then the latest snapshot, as a Transition once the session allows it), the
Ping, and closing with the right final message and code, or with 1011 when one of its tasks
fails. It holds no protocol state: every rule lives in ``reactor.sync.protocol``, running and
caching queries in ``reactor.engine.query_cache``; time comes from the deployment's runtime.

Cheap per connection, as a fan-out to thousands of sessions and thousands of idle sockets
need: the receive loop is the connection's only task while it is idle. Frames go out at once,
from whoever produced them (the query cache delivering a snapshot, the mutation worker), as
long as the socket takes them; a task (the "sync sender") is started only to wait while the
socket's buffer is full. Under uvicorn's websockets sans-I/O protocol without compression
(what ``reactor serve`` runs), frames are framed here and written to the transport directly,
skipping the ASGI send, its text round trip and the websocket library's per-frame work; the
encoded part of a Transition that many sessions share is encoded once
(``protocol.SharedTransitions``). The mutation worker exists while mutations are queued, and
one sweep per event loop sends the Pings of every connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import struct
import types
import weakref
from collections.abc import Coroutine, Mapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from functions.decorators import FunctionKind
from reactor.auth import AuthenticationError, Credentials
from reactor.core.runtime import Runtime
from reactor.engine.execution_log import Caller
from reactor.server.deployment import Deployment
from reactor.server.metrics import DeploymentMetrics
from reactor.server.outcomes import outcome_of
from reactor.sync.limits import SyncLimits
from reactor.sync.protocol import (
    ActionRequested,
    AuthenticateRequested,
    CallRefused,
    MutationRequested,
    QueriesChanged,
    QueryFailure,
    QueryOutcome,
    QuerySuccess,
    ServerSession,
    SessionError,
    SharedTransitions,
    decode_frame,
    final_message,
)
from schema.errors import FunctionNotFound

__all__ = ["SyncConnection", "sync_endpoint"]

log = logging.getLogger("reactor.sync")

PING_INTERVAL_S = 15.0
# What sending on a socket the peer (or we) already closed raises.
_SOCKET_GONE = (WebSocketDisconnect, RuntimeError, OSError)
# Frames up to this size are decoded on the event loop (well under a millisecond); larger ones
# in a worker thread, at most LARGE_FRAME_DECODES at a time per loop, so a burst of 16 MiB
# frames neither holds the loop for long nor multiplies memory (the decoder's C part still
# holds the GIL, but each frame's cost is bounded by ``messages.scan_frame``).
INLINE_DECODE_BYTES = 64 * 1024
LARGE_FRAME_DECODES = 2
_large_decodes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)
# A session closed for unsent data waits this long for its close frame to get out (the client
# must read what is queued before it); then the ASGI server drops the socket.
CLOSE_TIMEOUT_S = 10.0
SLOW_CLIENT_REASON = "ClientTooSlow"
# Convex's reason for too many queued mutations; JS clients back off 3 s on it.
BUSY_REASON = "TooManyConcurrentRequests"


_NOTHING: Mapping[int, QueryOutcome] = types.MappingProxyType({})

# Actions under way (a strong reference: the loop keeps only weak ones); they run to completion
# even when their connection ends.
_running_actions: set[asyncio.Task[None]] = set()


def _decode_slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slot = _large_decodes.get(loop)
    if slot is None:
        slot = _large_decodes[loop] = asyncio.Semaphore(LARGE_FRAME_DECODES)
    return slot


_shared_transitions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedTransitions] = (
    weakref.WeakKeyDictionary()
)


def _shared() -> SharedTransitions:
    loop = asyncio.get_running_loop()
    shared = _shared_transitions.get(loop)
    if shared is None:
        shared = _shared_transitions[loop] = SharedTransitions()
    return shared


# Connections a fan-out's flusher sends to per turn of the event loop.
FLUSH_SLICE = 64


class _Flusher:
    """Sends the snapshots delivered to many connections at once (a fan-out) ``FLUSH_SLICE``
    connections per turn of the event loop, which polls its sockets in between: a mutation's
    response, sent as soon as it exists, never waits for the rest of a fan-out, and a fan-out
    to 10,000 sessions does not hold the loop for its whole length. One per event loop."""

    __slots__ = ("_loop", "_queue", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: collections.deque[SyncConnection] = collections.deque()
        self._scheduled = False

    def add(self, connection: SyncConnection) -> None:
        self._queue.append(connection)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        """One slice. Its Transitions carry one ``serverTs``, the time read before the first of
        them is written (per runtime: tests run deployments on manual clocks), and its pushes
        go into the metrics once per commit ts (``DeploymentMetrics.pushed``), not one by one."""
        queue = self._queue
        runtime: Runtime | None = None
        server_ts = 0
        metrics: DeploymentMetrics | None = None
        pushed_ts = -1
        pushed = 0
        try:
            for _ in range(min(FLUSH_SLICE, len(queue))):
                connection = queue.popleft()
                connection._flush_queued = False
                deployment = connection.deployment
                if deployment.runtime is not runtime:
                    runtime = deployment.runtime
                    server_ts = runtime.now_ns()
                try:
                    ts = connection._flush(server_ts)
                except Exception as exc:  # that connection ends; the others are sent to
                    connection._fail("sync sender", exc)
                    continue
                if ts >= 0:
                    if ts == pushed_ts and deployment.metrics is metrics:
                        pushed += 1
                    else:
                        if metrics is not None:
                            metrics.pushed(pushed_ts, pushed)
                        metrics, pushed_ts, pushed = deployment.metrics, ts, 1
        finally:
            if metrics is not None:
                metrics.pushed(pushed_ts, pushed)
            if queue:
                self._loop.call_soon(self._run)
            else:
                self._scheduled = False


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher] = (
    weakref.WeakKeyDictionary()
)


def _flusher() -> _Flusher:
    loop = asyncio.get_running_loop()
    flusher = _flushers.get(loop)
    if flusher is None:
        flusher = _flushers[loop] = _Flusher(loop)
    return flusher


# Unmasked FIN text frame headers (RFC 6455 §5.2) for payloads below 126 bytes, and the header
# of one below 65536 bytes: (0x81, 126, its length as 16 bits).
_SHORT_HEADERS = [bytes((0x81, n)) for n in range(126)]
_MEDIUM_HEADER = struct.Struct(">BBH").pack


def text_frame(payload: bytes) -> bytes:
    """``payload`` as one unmasked websocket text frame (a server's frame, RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        return _SHORT_HEADERS[n] + payload
    if n < 65536:
        return _MEDIUM_HEADER(0x81, 126, n) + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


class FrameWriter:
    """Writes text frames straight to the transport of uvicorn's websockets sans-I/O protocol.

    Only for a connection without extensions (permessage-deflate frames must be compressed in
    order by the websocket library). Frames written here and the protocol's own (its pings,
    pongs, the close frame) never interleave: each is one ``transport.write``. Flow control is
    the protocol's: ``writable`` is False while the transport's buffer is above its high-water
    mark, as uvicorn's own send would wait then.
    """

    __slots__ = ("_protocol", "_writable")

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol
        self._writable = protocol.writable  # the protocol's, for its whole life

    @classmethod
    def of(cls, websocket: WebSocket) -> FrameWriter | None:
        """The writer for ``websocket`` (accepted), or None when frames must go through ASGI."""
        # Starlette keeps the ASGI send it was given; under uvicorn it is the protocol's method.
        protocol = getattr(getattr(websocket, "_send", None), "__self__", None)
        if not isinstance(protocol, WebSocketsSansIOProtocol) or protocol.conn.extensions:
            return None
        return cls(protocol)

    @property
    def writable(self) -> bool:
        return self._writable.is_set()

    async def wait_writable(self) -> None:
        await self._protocol.writable.wait()

    def write(self, payload: bytes, *more: bytes) -> bool:
        """Write ``payload`` (UTF-8 JSON) as a text frame, and each of ``more`` after it (in
        one write); return whether the socket takes more now (``writable``).

        Raises:
            WebSocketDisconnect: the socket is gone (closed, closing, or our close was sent).
        """
        protocol = self._protocol
        transport = protocol.transport
        if protocol.disconnected or protocol.close_sent or transport.is_closing():
            raise WebSocketDisconnect(1006)
        if more:
            transport.write(b"".join([text_frame(payload), *map(text_frame, more)]))
            return self._writable.is_set()
        n = len(payload)
        if 126 <= n < 65536:  # a Transition's usual size: text_frame, inlined
            transport.write(_MEDIUM_HEADER(0x81, 126, n) + payload)
        else:
            transport.write(text_frame(payload))
        return self._writable.is_set()


class _PingSweep:
    """Sends the Pings of every connection of one event loop and runtime from one task:
    a connection that sent nothing for ``PING_INTERVAL_S`` gets a Ping within a third of that
    more. The task ends when no connection is left (and starts again with the next one)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.connections: set[SyncConnection] = set()
        self.task: asyncio.Task[None] | None = None

    def add(self, connection: SyncConnection) -> None:
        self.connections.add(connection)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run(), name="sync pings")

    async def _run(self) -> None:
        runtime = self.runtime
        try:
            while self.connections:
                await runtime.sleep(PING_INTERVAL_S / 3)
                now = runtime.monotonic_ns()
                limit = now - int(PING_INTERVAL_S * 1e9)
                for connection in list(self.connections):
                    # Sending only sets ``_sent`` (no clock read per frame): the sweep turns it
                    # into the time the connection was last seen sending.
                    if connection._sent:
                        connection._sent = False
                        connection._quiet_since = now
                    elif connection._quiet_since <= limit:
                        try:
                            connection._queue(connection.protocol.ping())
                        except Exception as exc:
                            connection._fail("sync pinger", exc)
        finally:
            self.task = None


_ping_sweeps: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Runtime, _PingSweep]] = (
    weakref.WeakKeyDictionary()
)


def _ping_sweep(runtime: Runtime) -> _PingSweep:
    sweeps = _ping_sweeps.setdefault(asyncio.get_running_loop(), {})
    sweep = sweeps.get(runtime)
    if sweep is None:
        sweep = sweeps[runtime] = _PingSweep(runtime)
    return sweep


class SyncConnection:
    """One websocket client. Also the ``SessionSink`` that live queries deliver snapshots to."""

    __slots__ = (
        "__weakref__",
        "_close_request",
        "_closed",
        "_delivered",
        "_drainer",
        "_expiry",
        "_failed",
        "_flush_queued",
        "_flusher",
        "_heads",
        "_quiet_since",
        "_mutation_task",
        "_mutations",
        "_outbox",
        "_sending",
        "_serving",
        "_snapshot",
        "_sent",
        "_tasks",
        "_writer",
        "buffered_bytes",
        "deferred_bytes",
        "deployment",
        "identity",
        "is_admin",
        "limits",
        "protocol",
        "queued_mutation_bytes",
        "websocket",
    )

    def __init__(
        self,
        websocket: WebSocket,
        deployment: Deployment,
        *,
        limits: SyncLimits | None = None,
    ) -> None:
        self.websocket = websocket
        self.deployment = deployment
        self.protocol = ServerSession()
        self.identity: dict[str, Any] | None = None
        self.limits = SyncLimits() if limits is None else limits
        # What this session owes its client, in bytes (``unsent_bytes``): the frames queued in
        # ``_outbox`` plus the one being sent (``buffered_bytes``), and the results delivered
        # while that send is stuck (``deferred_bytes``). Past ``limits.max_buffered_bytes``
        # the session is closed with SLOW_CLIENT_REASON and what it queued is dropped.
        #
        # Why the second term: Transitions are never queued. The sender builds one from the
        # latest snapshot only once the previous frame is out, and a newer snapshot replaces
        # an unsent one, so memory stays bounded (about one Transition plus the frame in the
        # transport) however slowly the client reads. But the send to a client that does not
        # read blocks for ever (it waits for the transport's buffer to drain), the queue never
        # grows, and such a client was never closed while the server went on running its
        # queries. ``deferred_bytes`` is what unbounded buffering would have queued behind
        # that send; every send that completes resets it, so a client that reads, however
        # slowly, is not closed for it.
        self._outbox: collections.deque[bytes] | None = None  # created when needed
        self.buffered_bytes = 0
        self.deferred_bytes = 0
        self._sending = False
        self._delivered: Mapping[int, QueryOutcome] = _NOTHING
        # Frame bytes of the mutations queued for, or running in, the in-order worker.
        self.queued_mutation_bytes = 0
        self._close_request: tuple[int, str] | None = None
        self._snapshot: tuple[int, Mapping[int, QueryOutcome]] | None = None
        # Mutations waiting for the worker, which runs only while there are some.
        self._mutations: collections.deque[tuple[MutationRequested | CallRefused, int]] | None = (
            None
        )
        self._mutation_task: asyncio.Task[None] | None = None
        self._closed = False
        # Pings: whether a frame went out since the last sweep, and since when none has.
        self._sent = False
        self._quiet_since = deployment.runtime.monotonic_ns()
        self._heads: SharedTransitions | None = None  # the event loop's, set by serve()
        self._flusher: _Flusher | None = None  # the event loop's, set by serve()
        self._flush_queued = False  # waiting in the flusher's queue
        # Cancelled when the connection ends; actions are not (they run to completion).
        self._tasks: set[asyncio.Task[None]] | None = None  # created with the first
        # The task sending while the socket cannot take more (or sends must go through ASGI).
        self._drainer: asyncio.Task[None] | None = None
        self._writer: FrameWriter | None = None  # set once accepted, when frames go direct
        self._serving: asyncio.Task[Any] | None = None  # the task running serve()
        self._failed = False
        self.is_admin = False
        self._expiry: asyncio.Task[None] | None = None

    # -- SessionSink -------------------------------------------------------------------------

    def deliver(self, ts: int, outcomes: Mapping[int, QueryOutcome]) -> None:
        if self._close_request is not None or self._closed:
            return
        if self._sending:
            previous = self._delivered
            self.deferred_bytes += sum(
                _outcome_bytes(outcome)
                for query_id, outcome in outcomes.items()
                if (old := previous.get(query_id)) is not outcome
                and (old is None or old.fingerprint != outcome.fingerprint)
            )
            if self.unsent_bytes > self.limits.max_buffered_bytes:
                self._close_slow_client()
                return
        self._delivered = outcomes
        self._snapshot = (ts, outcomes)
        flusher = self._flusher
        if flusher is None:
            self._pump()
        elif not self._flush_queued:  # else the queued flush sends this newer snapshot
            self._flush_queued = True
            flusher.add(self)

    @property
    def unsent_bytes(self) -> int:
        return self.buffered_bytes + self.deferred_bytes

    # -- main loop ---------------------------------------------------------------------------

    async def serve(self) -> None:
        """Run the connection until the client leaves, the protocol ends it, or a task fails.

        A failed background task (sender, mutation worker, pinger, token-expiry timer, action)
        is logged with its traceback and closes the socket with 1011, which clients answer by
        reconnecting; an exception of the receive loop itself propagates to the ASGI server.
        """
        await self.websocket.accept()
        self._writer = FrameWriter.of(self.websocket)
        self._heads = _shared()
        self._flusher = _flusher()
        metrics = self.deployment.metrics
        metrics.session_opened()
        # The receive loop runs in this task; a failed background task cancels it (one task
        # and no extra future per connection: 10,000 idle sockets stay cheap).
        self._serving = asyncio.current_task()
        pings = _ping_sweep(self.deployment.runtime)
        pings.add(self)
        try:
            await self._receive_loop()
        except asyncio.CancelledError:
            if not self._failed or self._serving is None or self._serving.uncancel() > 0:
                raise  # a cancellation from outside (shutdown) goes on
            code, reason = self._close_request or (1011, "InternalServerError")
            await self._close_with(None, code, reason)
        finally:
            metrics.session_closed()
            self._closed = True
            pings.connections.discard(self)
            self.deployment.query_cache.remove_session(self)
            tasks = list(self._tasks or ())
            for task in tasks:
                task.cancel()
            # Failures were logged by _task_done; cancellation at shutdown stays quiet.
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work, name=name)
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """Log a failed task with its traceback and end the connection (serve closes it)."""
        if self._tasks is not None:
            self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._fail(task.get_name(), exc)

    def _fail(self, what: str, exc: BaseException) -> None:
        """``what`` failed with ``exc``: log it with its traceback and end the connection with
        1011 (serve closes it)."""
        log.error(
            "sync session %s: %s failed; closing the connection",
            self.protocol.session_id,
            what,
            exc_info=exc,
        )
        if not self._failed and not self._closed and self._serving is not None:
            self._failed = True
            self._serving.cancel()

    async def _receive_loop(self) -> None:
        ws = self.websocket
        while True:
            try:
                message = await ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            size = len(data)
            try:
                if len(data) <= INLINE_DECODE_BYTES:
                    decoded = decode_frame(data)
                else:
                    async with _decode_slot():
                        decoded = await asyncio.to_thread(decode_frame, data)
                del data, message  # a large frame's text is not kept while it is handled
                now_ms = self.deployment.runtime.now_ns() // 1_000_000
                events = self.protocol.receive_message(decoded, now_ms=now_ms)
            except SessionError as exc:
                log.warning(
                    "closing sync session %s: %s: %s", self.protocol.session_id, exc.code, exc
                )
                # ASGI cannot send Convex's codeless close (BadRequest): 1000 with the error's
                # code as the reason, so every close frame says why.
                await self._close_with(
                    final_message(exc), exc.close_code or 1000, exc.close_reason or exc.code
                )
                return
            for event in events:
                if not await self._handle(event, size):
                    return

    async def _handle(self, event: Any, frame_bytes: int) -> bool:
        """Act on one protocol event (read from a frame of ``frame_bytes``); False when the
        connection must end."""
        live = self.deployment.query_cache
        if isinstance(event, QueriesChanged):
            # A snapshot not yet sent predates the new query set: the query cache delivers one
            # for it (an id removed and re-added must not be answered by the old query).
            self._snapshot = None
            for query_id in event.removed:
                live.remove(self, query_id)
            for spec in event.added:
                self._add_query(spec.query_id, spec.udf_path, spec.args, spec.journal)
            live.request_update(self)
        elif isinstance(event, MutationRequested):
            return await self._enqueue_mutation(event, frame_bytes)
        elif isinstance(event, ActionRequested):
            # Actions run concurrently and to completion even if the socket drops.
            task = asyncio.get_running_loop().create_task(
                self._run_action(event), name=f"sync action {event.request_id}"
            )
            _running_actions.add(task)
            task.add_done_callback(_running_actions.discard)
            task.add_done_callback(self._task_done)
        elif isinstance(event, AuthenticateRequested):
            return await self._authenticate(event)
        elif isinstance(event, CallRefused):
            log.info(
                "session %s: refused %s %d: %s",
                self.protocol.session_id,
                event.kind,
                event.request_id,
                event.error,
            )
            if event.kind == "Mutation":
                # Answered in order with the others; its args were not kept (a few bytes).
                return await self._enqueue_mutation(event, 0)
            else:
                self._queue(
                    self.protocol.action_response(event.request_id, QueryFailure(event.error))
                )
        return True

    def _add_query(
        self, query_id: int, udf_path: str, args: dict[str, Any], journal: str | None
    ) -> None:
        try:
            spec = self.deployment.resolve(
                udf_path, kind=FunctionKind.QUERY, is_admin=self.is_admin
            )
        except FunctionNotFound as exc:
            self.protocol.fail_query(query_id, QueryFailure(exc.message))
            return
        self.deployment.query_cache.add(
            self, query_id, spec, args, identity=self.identity, journal=journal
        )

    async def _authenticate(self, event: AuthenticateRequested) -> bool:
        try:
            credentials = Credentials.from_authenticate(
                event.token_type, event.value, event.acting_as
            )
            client = self.websocket.client
            principal = await self.deployment.auth.authenticate(
                credentials, peer=None if client is None else client.host
            )
        except AuthenticationError as exc:
            # Never a FatalError here: it kills JS clients (PROTOCOL.md §7).
            log.info("session %s: AuthError: %s", self.protocol.session_id, exc.message)
            frame = self.protocol.auth_error_message(exc.message, attempted=True)
            await self._close_with(frame, 1000, "")
            return False
        self.identity = principal.identity
        self.is_admin = principal.is_admin
        self._watch_expiry(principal.valid_until)
        self.protocol.confirm_identity()
        self._snapshot = None  # computed under the old identity: the re-runs make the next one
        live = self.deployment.query_cache
        for query_id, spec in list(self.protocol.queries.items()):
            live.remove(self, query_id)
            self._add_query(query_id, spec.udf_path, spec.args, spec.journal)
        live.request_update(self)
        return True

    def _watch_expiry(self, valid_until: float | None) -> None:
        """When the token in force stops being valid (its ``exp`` plus the verifier's leeway,
        the rule HTTP applies too), tell the client (AuthError, not attempted) so it fetches a
        fresh one, and close, as Convex does with TokenExpired."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if valid_until is None:
            return
        version = self.protocol.authenticates_received
        runtime = self.deployment.runtime

        async def expire() -> None:
            await runtime.sleep(max(0.0, valid_until - runtime.now_ns() / 1e9))
            if self.protocol.authenticates_received != version or self._closed:
                return
            frame = self.protocol.auth_error_message("TokenExpired", attempted=False)
            await self._close_with(frame, 1000, "")

        self._expiry = self._start(expire(), "sync token expiry")

    # -- mutations and actions ---------------------------------------------------------------

    async def _enqueue_mutation(self, event: MutationRequested | CallRefused, size: int) -> bool:
        """Queue a mutation for the in-order worker; False (the session closed 1013) past
        ``limits.max_queued_mutations`` mutations or ``limits.max_queued_mutation_bytes``.

        Closing rather than refusing the one mutation with a failed MutationResponse, as
        Convex does for its count bound (TooManyConcurrentMutations is an overload error,
        close code 1013, PROTOCOL.md §2): the client keeps its unanswered mutations and
        resends them after a reconnect with backoff (they run once, by (session, requestId)),
        where a failed response would reject a call that did nothing wrong and roll back its
        optimistic update. A single mutation is at most 16 MiB of arguments, so a client that
        waits for its answers never meets the bound.
        """
        limits = self.limits
        queued = self._mutations
        if queued is not None and len(queued) >= limits.max_queued_mutations:
            what = f"more than {limits.max_queued_mutations} mutations"
        elif self.queued_mutation_bytes + size > limits.max_queued_mutation_bytes:
            what = f"more than {limits.max_queued_mutation_bytes} bytes of mutations"
        else:
            self.queued_mutation_bytes += size
            if queued is None:
                queued = self._mutations = collections.deque()
            queued.append((event, size))
            if self._mutation_task is None:
                self._mutation_task = self._start(self._mutation_worker(), "sync mutation worker")
            return True
        log.warning(
            "closing sync session %s: %s: %s queued", self.protocol.session_id, BUSY_REASON, what
        )
        await self._close_with(None, 1013, BUSY_REASON)
        return False

    async def _mutation_worker(self) -> None:
        """Run the queued mutations in order; ends when none is left (``_enqueue_mutation``
        starts another)."""
        try:
            while queued := self._mutations:
                request, size = queued.popleft()
                try:
                    await self._run_mutation(request)
                finally:
                    self.queued_mutation_bytes -= size
        finally:
            self._mutation_task = None
            if not self._mutations:
                self._mutations = None

    async def _run_mutation(self, request: MutationRequested | CallRefused) -> None:
        deployment = self.deployment
        if isinstance(request, CallRefused):
            frame = self.protocol.mutation_response(request.request_id, QueryFailure(request.error))
            self._send_then_transition(frame)
            return
        try:
            spec = deployment.resolve(
                request.udf_path, kind=FunctionKind.MUTATION, is_admin=self.is_admin
            )
        except FunctionNotFound as exc:
            frame = self.protocol.mutation_response(request.request_id, QueryFailure(exc.message))
            self._send_then_transition(frame)
            return
        session_id = self.protocol.session_id
        key = None if session_id is None else (session_id, request.request_id)
        # Shielded: a dropped socket must not abandon a mutation half-way; a resend with the
        # same (session, request) id waits for this very execution.
        task = asyncio.ensure_future(
            deployment.executor.run_mutation(
                spec,
                request.args,
                identity=self.identity,
                idempotency_key=key,
                caller=Caller.WEBSOCKET,
            )
        )
        result = await asyncio.shield(task)
        outcome = outcome_of(result)
        frame = self.protocol.mutation_response(request.request_id, outcome, ts=result.ts)
        self._send_then_transition(frame, result.ts)

    def _send_then_transition(self, frame: bytes, ts: int | None = None) -> None:
        """Queue a MutationResponse and ask for the snapshot its Transition is built from.

        A session without queries (a client that only calls mutations) needs no snapshot:
        when nothing else is owed, its Transition is built at once, at the mutation's ``ts``,
        and written with the response in one write."""
        if ts is not None and not self.protocol.queries and self._send_with_transition(frame, ts):
            return
        if self._queue(frame):
            self.deployment.query_cache.request_update(self)

    def _send_with_transition(self, frame: bytes, ts: int) -> bool:
        """Write ``frame`` and the Transition at ``ts`` (of a session without queries) together;
        False (nothing done) unless the socket takes them now with nothing queued before."""
        writer = self._idle_writer()
        if writer is None or self._snapshot is not None:
            return False
        transition = self.protocol.transition_for(
            ts, _NOTHING, server_ts=self.deployment.runtime.now_ns()
        )
        if transition is None:  # held below an earlier response's ts: the general way
            self._queue(frame)
            self.deployment.query_cache.request_update(self)
            return True
        size = len(frame) + len(transition)
        if self.unsent_bytes + size > self.limits.max_buffered_bytes:
            self._close_slow_client()
            return True
        writable = self._write_now(writer, frame, transition)
        if writable is None:
            return True
        self.deployment.metrics.pushed(ts)
        if not writable and self._outbox:
            self._drainer = self._start(self._drain(), "sync sender")
        return True

    async def _run_action(self, event: ActionRequested) -> None:
        try:
            spec = self.deployment.resolve(
                event.udf_path, kind=FunctionKind.ACTION, is_admin=self.is_admin
            )
            result = await self.deployment.executor.run_action(
                spec, event.args, identity=self.identity, caller=Caller.WEBSOCKET
            )
            outcome = outcome_of(result)
        except FunctionNotFound as exc:
            outcome = QueryFailure(exc.message)
        self._queue(self.protocol.action_response(event.request_id, outcome))

    # -- sending -----------------------------------------------------------------------------

    def _queue(self, frame: bytes) -> bool:
        """Queue a frame for the sender; False (and the session closing) when the client has
        left more than ``limits.max_buffered_bytes`` unsent, or the session is closing."""
        if self._close_request is not None or self._closed:
            return False
        if self.unsent_bytes + len(frame) > self.limits.max_buffered_bytes:
            self._close_slow_client()
            return False
        outbox = self._outbox
        if outbox is None:
            outbox = self._outbox = collections.deque()
        outbox.append(frame)
        self.buffered_bytes += len(frame)
        self._pump()
        return True

    def _close_slow_client(self) -> None:
        """Drop what is queued and end the session: its client stopped reading."""
        log.warning(
            "closing sync session %s: %s: more than %d bytes unsent (the client does not read)",
            self.protocol.session_id,
            SLOW_CLIENT_REASON,
            self.limits.max_buffered_bytes,
        )
        self._close_request = (1008, SLOW_CLIENT_REASON)
        self._outbox = None
        self._snapshot = None
        self._delivered = _NOTHING
        self.deployment.query_cache.remove_session(self)
        if not self._failed and not self._closed and self._serving is not None:
            self._failed = True
            self._serving.cancel()

    def _next_frame(self, server_ts: int | None = None) -> tuple[bytes, int] | None:
        """The next frame owed, counted in ``buffered_bytes`` (a queued one, else a Transition
        of the latest snapshot when the session allows one, its ``serverTs`` ``server_ts`` or
        else now), with the snapshot's ts (-1 for a queued frame); None when nothing is owed
        now."""
        outbox = self._outbox
        if outbox:
            frame = outbox.popleft()
            if not outbox:
                self._outbox = None
            return frame, -1
        snapshot = self._snapshot
        if snapshot is None or self._close_request is not None:
            return None
        ts, outcomes = snapshot
        if server_ts is None:
            server_ts = self.deployment.runtime.now_ns()
        transition = self.protocol.transition_for(
            ts, outcomes, server_ts=server_ts, shared=self._heads
        )
        if transition is None:
            return None  # held by the session; the query cache delivers again
        self._snapshot = None
        buffered = self.buffered_bytes = self.buffered_bytes + len(transition)
        if buffered + self.deferred_bytes > self.limits.max_buffered_bytes:
            self._close_slow_client()
            return None
        return transition, ts

    def _flush(self, server_ts: int) -> int:
        """``_send_owed(server_ts)`` for the flusher; its common case (just a snapshot owed,
        the socket taking it) without the general loop."""
        snapshot = self._snapshot
        writer = self._idle_writer()
        if snapshot is None or writer is None:
            return self._send_owed(server_ts)
        ts, outcomes = snapshot
        transition = self.protocol.transition_for(
            ts, outcomes, server_ts=server_ts, shared=self._heads
        )
        if transition is None:
            return -1  # held by the session; the query cache delivers again
        self._snapshot = None
        size = len(transition)
        if self.buffered_bytes + self.deferred_bytes + size > self.limits.max_buffered_bytes:
            self._close_slow_client()
            return -1
        writable = self._write_now(writer, transition)
        if writable is None:
            return -1
        if not writable and (self._outbox or self._snapshot is not None):
            self._drainer = self._start(self._drain(), "sync sender")
        return ts

    def _idle_writer(self) -> FrameWriter | None:
        """The writer, when a frame written now goes out at once with nothing owed before it:
        no queued frame, no sender task, the session open and the socket taking more."""
        writer = self._writer
        if (
            writer is None
            or not writer.writable
            or self._drainer is not None
            or self._outbox
            or self._closed
            or self._failed
            or self._close_request is not None
        ):
            return None
        return writer

    def _write_now(self, writer: FrameWriter, frame: bytes, *more: bytes) -> bool | None:
        """Write ``frame`` and ``more`` at once: whether the socket takes more now; None when
        it is gone (the receive loop ends the session; nothing more is sent)."""
        self._sent = True
        try:
            writable = writer.write(frame, *more)
        except _SOCKET_GONE as exc:
            log.debug("sync session %s: sender stopped: %s", self.protocol.session_id, exc)
            self._close_request = self._close_request or (1000, "")
            return None
        self.deferred_bytes = 0
        return writable

    def _pump(self) -> None:
        """Send what is owed: written at once while the socket takes it, else by the sender
        task (started here), which waits for the socket and ends when nothing is left."""
        ts = self._send_owed(None)
        if ts >= 0:
            self.deployment.metrics.pushed(ts)

    def _send_owed(self, server_ts: int | None) -> int:
        """``_pump``, for a Transition of ``serverTs`` ``server_ts`` (None: now); returns the
        ts of the Transition written (-1: none), for the caller to count in the metrics."""
        if self._drainer is not None or self._closed or self._failed or self._close_request:
            return -1
        writer = self._writer
        if writer is None or not writer.writable:
            # Before serve() nothing is sent; a held snapshot waits for the next delivery.
            if self._serving is not None and (self._outbox or self._snapshot is not None):
                self._drainer = self._start(self._drain(), "sync sender")
            return -1
        pushed = -1
        try:
            while (item := self._next_frame(server_ts)) is not None:
                frame, ts = item
                self.buffered_bytes -= len(frame)
                self._sent = True
                writable = writer.write(frame)
                self.deferred_bytes = 0
                if ts >= 0:
                    pushed = ts
                if not writable:
                    if self._outbox or self._snapshot is not None:
                        self._drainer = self._start(self._drain(), "sync sender")
                    break
        except _SOCKET_GONE as exc:
            # The receive loop ends the session; nothing more is sent.
            log.debug("sync session %s: sender stopped: %s", self.protocol.session_id, exc)
            self._close_request = self._close_request or (1000, "")
        except Exception as exc:
            self._fail("sync sender", exc)
        return pushed

    async def _drain(self) -> None:
        """The sender task: send what is owed, waiting for the socket, until nothing is left."""
        try:
            while (item := self._next_frame()) is not None:
                frame, ts = item
                if not await self._send_or_stop(frame):
                    return
                if ts >= 0:
                    self.deployment.metrics.pushed(ts)
        finally:
            self._drainer = None

    async def _send(self, frame: bytes) -> None:
        self._sent = True
        writer = self._writer
        if writer is None:
            await self.websocket.send({"type": "websocket.send", "text": frame.decode("utf-8")})
            return
        if not writer.writable:
            await writer.wait_writable()
        writer.write(frame)

    async def _send_or_stop(self, frame: bytes) -> bool:
        """Send one frame counted in ``buffered_bytes`` until it is out (a client that does not
        read blocks the send, flow control); False when the socket is gone (the receive loop
        ends the session). A completed send means the client reads: ``deferred_bytes`` restarts.
        """
        self._sending = True
        try:
            await self._send(frame)
        except _SOCKET_GONE as exc:
            log.debug("sync session %s: sender stopped: %s", self.protocol.session_id, exc)
            return False
        finally:
            self._sending = False
            self.buffered_bytes -= len(frame)
        self.deferred_bytes = 0
        return True

    async def _close_with(self, final: bytes | None, code: int, reason: str) -> None:
        self._close_request = self._close_request or (code, reason)  # nothing more is queued
        if self._drainer is not None:
            self._drainer.cancel()
        # Bounded: a client that does not read never lets the close frame out; after the
        # timeout the ASGI server drops the socket when this handler returns.
        with contextlib.suppress(*_SOCKET_GONE, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                if final is not None:
                    await self._send(final)
                await self.websocket.close(code=code, reason=reason or None)


async def sync_endpoint(websocket: WebSocket) -> None:
    """The route's handler (``reactor.server.app`` hands sync websockets to their session before
    routing; this serves an app mounted without that entry layer)."""
    state = websocket.app.state
    limits = getattr(state, "sync_limits", None)
    await SyncConnection(
        websocket, state.deployment, limits=limits if isinstance(limits, SyncLimits) else None
    ).serve()


def _outcome_bytes(outcome: QueryOutcome) -> int:
    """About what ``outcome`` adds to a Transition (its JSON, not the envelope)."""
    size = sum(len(line) for line in outcome.log_lines)
    if isinstance(outcome, QuerySuccess):
        return size + len(outcome.value_json or b"null")
    return size + len(outcome.message) + len(outcome.error_data_json or b"")
