"""The websocket shell of the sync protocol: pumps frames between a socket and a ServerSession.

Owns, per connection: the receive loop, the in-order mutation worker, the sender (outgoing
frames in order, then the latest snapshot, as a Transition once the session allows it), the
Ping timer, and closing with the right final message and code, or with 1011 when one of its
tasks fails. It holds no protocol state: every rule lives in ``reactor.sync.protocol``, running
and caching queries in ``reactor.engine.query_cache``; time comes from the deployment's runtime.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import weakref
from collections.abc import Coroutine, Mapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from functions.decorators import FunctionKind
from reactor.auth import AuthenticationError, Credentials
from reactor.engine.execution_log import Caller
from reactor.server.deployment import Deployment
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


def _decode_slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slot = _large_decodes.get(loop)
    if slot is None:
        slot = _large_decodes[loop] = asyncio.Semaphore(LARGE_FRAME_DECODES)
    return slot


class SyncConnection:
    """One websocket client. Also the ``SessionSink`` that live queries deliver snapshots to."""

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
        # transport) however slowly the client reads. But the ASGI send of a client that does
        # not read blocks for ever (uvicorn waits for the transport's buffer to drain), the
        # queue never grows, and such a client was never closed while the server went on
        # running its queries. ``deferred_bytes`` is what unbounded buffering would have
        # queued behind that send; every send that completes resets it, so a client that
        # reads, however slowly, is not closed for it.
        self._outbox: collections.deque[bytes] = collections.deque()
        self.buffered_bytes = 0
        self.deferred_bytes = 0
        self._sending = False
        self._delivered: Mapping[int, QueryOutcome] = {}
        # Frame bytes of the mutations queued for, or running in, the in-order worker.
        self.queued_mutation_bytes = 0
        self._close_request: tuple[int, str] | None = None
        self._snapshot: tuple[int, Mapping[int, QueryOutcome]] | None = None
        self._wake = asyncio.Event()
        self._mutations: asyncio.Queue[tuple[MutationRequested | CallRefused, int]] = (
            asyncio.Queue()
        )
        self._closed = False
        self._last_send_ns = deployment.runtime.monotonic_ns()
        # Cancelled when the connection ends; actions are not (they run to completion).
        self._tasks: set[asyncio.Task[None]] = set()
        self._sender_task: asyncio.Task[None] | None = None
        self._actions: set[asyncio.Task[None]] = set()
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
        self._wake.set()

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
        metrics = self.deployment.metrics
        metrics.session_opened()
        # The receive loop runs in this task; a failed background task cancels it (one task
        # and no extra future per connection: 10,000 idle sockets stay cheap).
        self._serving = asyncio.current_task()
        self._sender_task = self._start(self._sender(), "sync sender")
        self._start(self._mutation_worker(), "sync mutation worker")
        self._start(self._pinger(), "sync pinger")
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
            self.deployment.query_cache.remove_session(self)
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            # Failures were logged by _task_done; cancellation at shutdown stays quiet.
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """Log a failed task with its traceback and end the connection (serve closes it)."""
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        log.error(
            "sync session %s: %s failed; closing the connection",
            self.protocol.session_id,
            task.get_name(),
            exc_info=task.exception(),
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
            self._actions.add(task)
            task.add_done_callback(self._actions.discard)
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
        if self._mutations.qsize() >= limits.max_queued_mutations:
            what = f"more than {limits.max_queued_mutations} mutations"
        elif self.queued_mutation_bytes + size > limits.max_queued_mutation_bytes:
            what = f"more than {limits.max_queued_mutation_bytes} bytes of mutations"
        else:
            self.queued_mutation_bytes += size
            self._mutations.put_nowait((event, size))
            return True
        log.warning(
            "closing sync session %s: %s: %s queued", self.protocol.session_id, BUSY_REASON, what
        )
        await self._close_with(None, 1013, BUSY_REASON)
        return False

    async def _mutation_worker(self) -> None:
        while True:
            request, size = await self._mutations.get()
            try:
                await self._run_mutation(request)
            finally:
                self.queued_mutation_bytes -= size

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
        self._send_then_transition(frame)

    def _send_then_transition(self, frame: bytes) -> None:
        """Queue a MutationResponse and ask for the snapshot its Transition is built from."""
        if self._queue(frame):
            self.deployment.query_cache.request_update(self)

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
        self._outbox.append(frame)
        self.buffered_bytes += len(frame)
        self._wake.set()
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
        self._outbox.clear()
        self._snapshot = None
        self._delivered = {}
        self.deployment.query_cache.remove_session(self)
        if not self._failed and not self._closed and self._serving is not None:
            self._failed = True
            self._serving.cancel()

    async def _send(self, frame: bytes) -> None:
        self._last_send_ns = self.deployment.runtime.monotonic_ns()
        await self.websocket.send({"type": "websocket.send", "text": frame.decode("utf-8")})

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

    async def _pinger(self) -> None:
        """Queue a Ping whenever nothing went out for PING_INTERVAL_S (JS needs a text frame
        at least every 60 s, Rust any frame every 30 s)."""
        runtime = self.deployment.runtime
        while True:
            idle_s = (runtime.monotonic_ns() - self._last_send_ns) / 1e9
            if idle_s < PING_INTERVAL_S:
                await runtime.sleep(PING_INTERVAL_S - idle_s)
                continue
            self._queue(self.protocol.ping())
            await runtime.sleep(PING_INTERVAL_S)

    async def _sender(self) -> None:
        runtime = self.deployment.runtime
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                if not await self._send_or_stop(self._outbox.popleft()):
                    return
            snapshot = self._snapshot
            if snapshot is None or self._close_request is not None:
                continue
            ts, outcomes = snapshot
            transition = self.protocol.transition_for(ts, outcomes, server_ts=runtime.now_ns())
            if transition is None:
                continue  # held by the session; the query cache delivers again
            self._snapshot = None
            self.buffered_bytes += len(transition)
            if self.unsent_bytes > self.limits.max_buffered_bytes:
                self._close_slow_client()
                return
            if not await self._send_or_stop(transition):
                return
            self.deployment.metrics.pushed(ts)

    async def _close_with(self, final: bytes | None, code: int, reason: str) -> None:
        if self._sender_task is not None:
            self._sender_task.cancel()
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
