"""The websocket shell of the sync protocol: pumps frames between a socket and a ServerSession.

Owns, per connection: the receive loop, the in-order mutation worker, the sender (outgoing
frames in order, then the latest snapshot as a Transition, a Ping after 15 s of silence), and
closing with the right final message and code. Protocol rules live in
``reactor.sync.protocol``; running and caching queries in ``reactor.engine.query_cache``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from functions.decorators import FunctionKind
from reactor.auth import AuthenticationError, Credentials
from reactor.engine.query_cache import outcome_of
from reactor.server.deployment import Services
from reactor.sync import messages
from reactor.sync.protocol import (
    ActionRequested,
    AuthenticateRequested,
    MutationRequested,
    QueriesChanged,
    QueryFailure,
    QueryOutcome,
    ServerSession,
    SessionError,
)
from schema.errors import FunctionNotFound

__all__ = ["SyncConnection", "sync_endpoint"]

log = logging.getLogger("reactor.sync")

PING_INTERVAL_S = 15.0
MAX_QUEUED_MUTATIONS = 1000


class SyncConnection:
    """One websocket client. Also the ``SessionSink`` that live queries deliver snapshots to."""

    def __init__(self, websocket: WebSocket, services: Services) -> None:
        self.websocket = websocket
        self.services = services
        self.protocol = ServerSession()
        self.identity: dict[str, Any] | None = None
        self._outbox: collections.deque[bytes] = collections.deque()
        self._snapshot: tuple[int, Mapping[int, QueryOutcome]] | None = None
        self._static: dict[int, QueryOutcome] = {}  # queries that failed before running
        self._awaiting: set[int] = set()  # added queries whose first result is not sent yet
        self._min_ts = 0  # a Transition after a MutationResponse must reach its commit ts
        self._wake = asyncio.Event()
        self._mutations: asyncio.Queue[MutationRequested] = asyncio.Queue()
        self._closed = False
        self._last_send = time.monotonic()
        self._tasks: list[asyncio.Task[Any]] = []
        self._actions: set[asyncio.Task[None]] = set()
        self.is_admin = False
        self._expiry: asyncio.Task[None] | None = None

    # -- SessionSink -------------------------------------------------------------------------

    def deliver(self, ts: int, outcomes: Mapping[int, QueryOutcome]) -> None:
        self._snapshot = (ts, outcomes)
        self._wake.set()

    # -- main loop ---------------------------------------------------------------------------

    async def serve(self) -> None:
        await self.websocket.accept()
        self.services.sessions.add(self)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._sender()),
            loop.create_task(self._mutation_worker()),
            loop.create_task(self._pinger()),
        ]
        try:
            await self._receive_loop()
        finally:
            self._closed = True
            self.services.sessions.discard(self)
            self.services.live.remove_session(self)
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

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
            try:
                events = self.protocol.receive(data, now_ms=time.time_ns() // 1_000_000)
            except SessionError as exc:
                log.warning(
                    "closing sync session %s: %s: %s", self.protocol.session_id, exc.code, exc
                )
                await self._close_with(exc.final_message, exc.close_code or 1000, exc.close_reason)
                return
            for event in events:
                if not await self._handle(event):
                    return

    async def _handle(self, event: Any) -> bool:
        """Act on one protocol event; False when the connection must end."""
        live = self.services.live
        if isinstance(event, QueriesChanged):
            for query_id in event.removed:
                self._static.pop(query_id, None)
                self._awaiting.discard(query_id)
                live.remove(self, query_id)
            for spec in event.added:
                self._add_query(spec.query_id, spec.udf_path, spec.args, spec.journal)
            live.request_update(self)
        elif isinstance(event, MutationRequested):
            if self._mutations.qsize() >= MAX_QUEUED_MUTATIONS:
                log.warning("session %s queued too many mutations", self.protocol.session_id)
                await self._close_with(None, 1013, "TooManyConcurrentRequests")
                return False
            self._mutations.put_nowait(event)
        elif isinstance(event, ActionRequested):
            # Actions run concurrently and to completion even if the socket drops.
            task = asyncio.get_running_loop().create_task(self._run_action(event))
            self._actions.add(task)
            task.add_done_callback(self._actions.discard)
        elif isinstance(event, AuthenticateRequested):
            return await self._authenticate(event)
        return True

    def _add_query(
        self, query_id: int, udf_path: str, args: dict[str, Any], journal: str | None
    ) -> None:
        self._static.pop(query_id, None)
        self._awaiting.add(query_id)
        try:
            spec = self.services.registry.resolve(
                udf_path, kind=FunctionKind.QUERY, allow_internal=self.is_admin
            )
        except FunctionNotFound as exc:
            self._static[query_id] = QueryFailure(exc.message)
            return
        self.services.live.add(self, query_id, spec, args, identity=self.identity, journal=journal)

    async def _authenticate(self, event: AuthenticateRequested) -> bool:
        try:
            credentials = Credentials.from_authenticate(
                event.token_type, event.value, event.acting_as
            )
            principal = await self.services.auth.authenticate(credentials)
        except AuthenticationError as exc:
            # Never a FatalError here: it kills JS clients (PROTOCOL.md §7).
            log.info("session %s: AuthError: %s", self.protocol.session_id, exc.message)
            frame = self.protocol.auth_error_message(exc.message, attempted=True)
            await self._close_with(frame, 1000, "")
            return False
        self.identity = principal.identity
        self.is_admin = principal.is_admin
        self._watch_expiry(principal.expires_at)
        self.protocol.confirm_identity()
        live = self.services.live
        for query_id, spec in list(self.protocol.queries.items()):
            live.remove(self, query_id)
            self._add_query(query_id, spec.udf_path, spec.args, spec.journal)
        live.request_update(self)
        return True

    def _watch_expiry(self, expires_at: float | None) -> None:
        """When the token in force expires, tell the client (AuthError, not attempted) so it
        fetches a fresh one, and close, as Convex does with TokenExpired."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if expires_at is None:
            return
        version = self.protocol.authenticates_received

        async def expire() -> None:
            await asyncio.sleep(max(0.0, expires_at - time.time()))
            if self.protocol.authenticates_received != version or self._closed:
                return
            frame = self.protocol.auth_error_message("TokenExpired", attempted=False)
            await self._close_with(frame, 1000, "")

        self._expiry = asyncio.get_running_loop().create_task(expire())
        self._tasks.append(self._expiry)

    # -- mutations and actions ---------------------------------------------------------------

    async def _mutation_worker(self) -> None:
        services = self.services
        while True:
            request = await self._mutations.get()
            try:
                spec = services.registry.resolve(
                    request.udf_path, kind=FunctionKind.MUTATION, allow_internal=self.is_admin
                )
            except FunctionNotFound as exc:
                frame = self.protocol.mutation_response(
                    request.request_id, QueryFailure(exc.message)
                )
                self._send_then_transition(frame, 0)
                continue
            session_id = self.protocol.session_id
            key = None if session_id is None else (session_id, request.request_id)
            # Shielded: a dropped socket must not abandon a mutation half-way; a resend with the
            # same (session, request) id waits for this very execution.
            task = asyncio.ensure_future(
                services.executor.run_mutation(
                    spec, request.args, identity=self.identity, idempotency_key=key
                )
            )
            result = await asyncio.shield(task)
            outcome = outcome_of(result)
            frame = self.protocol.mutation_response(
                request.request_id, outcome, ts=result.ts if result.success else None
            )
            self._send_then_transition(frame, result.ts)

    def _send_then_transition(self, frame: bytes, min_ts: int) -> None:
        self._outbox.append(frame)
        self._min_ts = max(self._min_ts, min_ts)
        self.services.live.request_update(self)
        self._wake.set()

    async def _run_action(self, event: ActionRequested) -> None:
        try:
            spec = self.services.registry.resolve(
                event.udf_path, kind=FunctionKind.ACTION, allow_internal=self.is_admin
            )
            result = await self.services.run_action(spec, event.args, identity=self.identity)
            outcome = outcome_of(result)
        except FunctionNotFound as exc:
            outcome = QueryFailure(exc.message)
        self._outbox.append(self.protocol.action_response(event.request_id, outcome))
        self._wake.set()

    # -- sending -----------------------------------------------------------------------------

    async def _send(self, frame: bytes) -> None:
        self._last_send = time.monotonic()
        await self.websocket.send({"type": "websocket.send", "text": frame.decode("utf-8")})

    async def _pinger(self) -> None:
        """Queue a Ping whenever nothing went out for PING_INTERVAL_S (JS needs a text frame
        at least every 60 s, Rust any frame every 30 s)."""
        while True:
            idle = time.monotonic() - self._last_send
            if idle < PING_INTERVAL_S:
                await asyncio.sleep(PING_INTERVAL_S - idle)
                continue
            self._outbox.append(messages.ping())
            self._wake.set()
            await asyncio.sleep(PING_INTERVAL_S)

    async def _sender(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._outbox:
                    await self._send(self._outbox.popleft())
                snapshot = self._snapshot
                if snapshot is None or snapshot[0] < self._min_ts:
                    continue
                ts, outcomes = snapshot
                if self._static:
                    outcomes = {**outcomes, **self._static}
                if self._awaiting and not self._awaiting <= outcomes.keys():
                    # A Transition reports the current query set and identity, so it must carry
                    # a result for every query added (or re-added for a new identity) since:
                    # hold this one; the live loop delivers again once they have run.
                    continue
                self._snapshot = None
                self._awaiting.clear()
                frame = self.protocol.build_transition(ts, outcomes, server_ts=time.time_ns())
                await self._send(frame)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            log.debug("sync sender stopped: %s", exc)

    async def _close_with(self, final: bytes | None, code: int, reason: str) -> None:
        for task in self._tasks[:1]:
            task.cancel()
        with contextlib.suppress(Exception):
            if final is not None:
                await self._send(final)
            await self.websocket.close(code=code, reason=reason or None)


async def sync_endpoint(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    await SyncConnection(websocket, services).serve()
