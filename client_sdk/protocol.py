"""The client side of the sync protocol as a sans-I/O state machine (websockets-style).

Owns the glue between the three pure cores (``local_state``, ``remote_query_set``,
``request_manager``) for the whole life of a client: the stable ``sessionId``, the connection
count and last close reason reported in ``Connect``, the largest timestamp observed, the restart
sequence on every new socket (``Connect``, ``Authenticate``, ``ModifyQuerySet`` 0 → 1, every
in-flight mutation), transition-chunk reassembly, and the latest result of each live query across
reconnects (so subscribers only hear about real changes). Text comes in through
:meth:`ClientProtocol.receive_text`; JSON text to write comes out of
:meth:`ClientProtocol.data_to_send`; what callers must react to comes out of
:meth:`ClientProtocol.events_received`. It does not own sockets, timers, backoff or futures
(``connection``, ``client``), and it never decodes values.
"""

from __future__ import annotations

import enum
import logging

import msgspec

from client_sdk.errors import ProtocolMismatch
from client_sdk.local_state import AuthToken, LocalSyncState
from client_sdk.remote_query_set import RemoteQuerySet
from client_sdk.request_manager import RequestManager
from reactor.sync.messages import (
    ActionResponse,
    AuthError,
    ClientMessage,
    Connect,
    FatalError,
    FunctionResult,
    MutationResponse,
    Ping,
    QueryFailed,
    QueryId,
    QueryUpdated,
    RequestId,
    ServerMessage,
    SessionId,
    StateVersion,
    Timestamp,
    Transition,
    TransitionChunk,
    UnknownMessage,
    encode_client_message,
    parse_server_message,
)
from schema.errors import InvalidMessage
from schema.values import JsonValue

__all__ = [
    "ACTION_LOST_MESSAGE",
    "ClientProtocol",
    "ConnectionState",
    "Event",
    "QueryResultChanged",
    "ReconnectNeeded",
    "RequestCompleted",
    "RequestLost",
]

logger = logging.getLogger(__name__)
function_logger = logging.getLogger("client_sdk.function_logs")

ACTION_LOST_MESSAGE = "Connection lost while action was in flight"


class ConnectionState(enum.Enum):
    CLOSED = "closed"  # no socket; messages produced now are dropped and replayed by restart
    OPEN = "open"  # Connect sent; messages go out in order
    CLOSING = "closing"  # a protocol violation was seen; waiting for connection_lost()


class QueryResultChanged(msgspec.Struct, frozen=True):
    """A live query has a result different from the last one reported."""

    query_id: QueryId
    result: FunctionResult


class RequestCompleted(msgspec.Struct, frozen=True):
    """A mutation or action resolved with ``result``."""

    request_id: RequestId
    result: FunctionResult


class RequestLost(msgspec.Struct, frozen=True):
    """A request can no longer resolve; the caller should raise ``ConnectionLost(message)``."""

    request_id: RequestId
    message: str


class ReconnectNeeded(msgspec.Struct, frozen=True):
    """The socket must be dropped; pass ``reason`` to :meth:`ClientProtocol.connection_lost`."""

    reason: str


Event = QueryResultChanged | RequestCompleted | RequestLost | ReconnectNeeded


class ClientProtocol:
    """One client session (one ``sessionId``) over any number of successive sockets.

    Drive it like this: on a new socket call :meth:`connection_opened`; feed each text frame
    to :meth:`receive_text`; after every call, write :meth:`data_to_send` in order and handle
    :meth:`events_received`; when the socket ends (or a :class:`ReconnectNeeded` event asks
    for it to end) call :meth:`connection_lost`, then reconnect.
    """

    def __init__(self, session_id: SessionId) -> None:
        self.session_id = session_id
        self._local = LocalSyncState()
        self._requests = RequestManager()
        self._remote = RemoteQuerySet()
        self._state = ConnectionState.CLOSED
        self._connection_count = 0
        self._last_close_reason = "InitialConnect"
        self._max_observed_ts: Timestamp | None = None
        self._latest: dict[QueryId, FunctionResult] = {}
        self._outbox: list[str] = []
        self._events: list[Event] = []
        self._transitions_on_socket = 0
        self._chunks: list[str] = []
        self._chunk_id: str | None = None

    # ---------------------------------------------------------------- read-only state

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def is_open(self) -> bool:
        return self._state is ConnectionState.OPEN

    @property
    def has_synced(self) -> bool:
        """Whether a Transition has been applied on the current socket (False when closed)."""
        return self._transitions_on_socket > 0

    @property
    def connection_count(self) -> int:
        """The number of sockets opened so far (the next ``Connect`` reports this)."""
        return self._connection_count

    @property
    def last_close_reason(self) -> str:
        return self._last_close_reason

    @property
    def max_observed_timestamp(self) -> Timestamp | None:
        return self._max_observed_ts

    @property
    def remote_version(self) -> StateVersion:
        return self._remote.version

    @property
    def local_state(self) -> LocalSyncState:
        return self._local

    @property
    def request_manager(self) -> RequestManager:
        return self._requests

    def current_result(self, query_id: QueryId) -> FunctionResult | None:
        """The latest result of a live query, kept across reconnects; ``None`` until one."""
        return self._latest.get(query_id)

    # ---------------------------------------------------------------- output

    def data_to_send(self) -> list[str]:
        """Take the JSON texts to write, in order. Empty unless a socket is open."""
        out, self._outbox = self._outbox, []
        return out

    def events_received(self) -> list[Event]:
        """Take the events produced since the last call, in order."""
        out, self._events = self._events, []
        return out

    # ---------------------------------------------------------------- socket lifecycle

    def connection_opened(self, *, client_ts_ms: int | None = None) -> None:
        """A new socket is open: queue the restart sequence.

        Queues ``Connect`` (same sessionId, connection count, last close reason, largest
        observed ts), then ``Authenticate`` (if authenticated), then ``ModifyQuerySet`` 0 → 1
        re-adding every live query, then every in-flight mutation (and never-sent action).
        The remote version restarts at ``{0, 0, 0}``. Next: :meth:`data_to_send`.
        """
        if self._state is not ConnectionState.CLOSED:
            raise RuntimeError("connection_opened() called before connection_lost()")
        self._state = ConnectionState.OPEN
        self._remote = RemoteQuerySet()
        self._transitions_on_socket = 0
        self._reset_chunks()
        self._send(
            Connect(
                self.session_id,
                self._connection_count,
                self._last_close_reason,
                self._max_observed_ts,
                client_ts_ms,
            )
        )
        self._connection_count += 1
        auth, query_set = self._local.restart()
        if auth is not None:
            self._send(auth)
        self._send(query_set)
        for request in self._requests.restart():
            self._send(request)

    def connection_lost(self, reason: str) -> None:
        """The socket is gone (or must go): ``reason`` becomes the next ``lastCloseReason``.

        Unsent output is discarded (the restart replays what matters). Actions that were sent
        on the socket fail with :class:`RequestLost`; mutations wait to be resent. Calling it
        again while closed only updates the reason (e.g. after a failed connection attempt).
        Next: reconnect, then :meth:`connection_opened`.
        """
        self._last_close_reason = reason
        if self._state is ConnectionState.CLOSED:
            return
        self._state = ConnectionState.CLOSED
        self._transitions_on_socket = 0
        self._outbox.clear()
        self._reset_chunks()
        for request_id in self._requests.connection_lost():
            self._events.append(RequestLost(request_id, ACTION_LOST_MESSAGE))

    def shutdown(self, message: str = "Client closed") -> None:
        """The client is closing for good: fail every in-flight request with ``message``."""
        for request_id in self._requests.remove_all():
            self._events.append(RequestLost(request_id, message))
        self.connection_lost("ClientClosed")

    # ---------------------------------------------------------------- caller requests

    def subscribe(self, udf_path: str, args: JsonValue) -> QueryId:
        """Add a subscriber to ``(udf_path, encoded args)``; identical queries share an id."""
        query_id, message = self._local.subscribe(udf_path, args)
        if message is not None:
            self._send(message)
        return query_id

    def unsubscribe(self, query_id: QueryId) -> None:
        """Drop one subscriber; the query is removed from the server with the last one."""
        message = self._local.unsubscribe(query_id)
        if message is not None:
            self._latest.pop(query_id, None)
            self._send(message)

    def send_mutation(self, udf_path: str, args: JsonValue) -> RequestId:
        """Queue a mutation (sent now if a socket is open, else on the next restart)."""
        message = self._requests.add_mutation(udf_path, args, sent=self.is_open)
        self._send(message)
        return RequestId(message.request_id)

    def send_action(self, udf_path: str, args: JsonValue) -> RequestId:
        """Queue an action (sent now if a socket is open, else on the next restart)."""
        message = self._requests.add_action(udf_path, args, sent=self.is_open)
        self._send(message)
        return RequestId(message.request_id)

    def set_auth(self, token: AuthToken | None) -> None:
        """Authenticate as ``token`` (``None`` logs out); re-sent on every new socket."""
        self._send(self._local.set_auth(token))

    # ---------------------------------------------------------------- input

    def receive_text(self, data: str | bytes) -> None:
        """Handle one text frame from the server.

        Ignored unless the socket is open. A protocol violation (bad JSON, a malformed known
        message, a Transition that does not chain) or a ``FatalError`` / ``AuthError`` produces
        a :class:`ReconnectNeeded` event and stops all further processing on this socket.
        Unknown message types are logged and ignored. Next: :meth:`events_received`.
        """
        if self._state is not ConnectionState.OPEN:
            return
        try:
            self._handle(parse_server_message(data))
        except ProtocolMismatch as exc:
            logger.warning("Sync protocol error, reconnecting: %s", exc)
            self._reconnect(exc.close_reason)
        except InvalidMessage as exc:  # a malformed server message
            logger.warning("Sync protocol error, reconnecting: %s", exc)
            self._reconnect("ProtocolError")

    def _handle(self, message: ServerMessage) -> None:
        if isinstance(message, Transition):
            self._apply_transition(message)
        elif isinstance(message, (MutationResponse, ActionResponse)):
            self._apply_response(message)
        elif isinstance(message, Ping):
            pass  # keepalive only; the connection's inactivity timer saw the frame
        elif isinstance(message, TransitionChunk):
            self._apply_chunk(message)
        elif isinstance(message, FatalError):
            logger.error("Server sent FatalError: %s", message.error)
            self._reconnect(f"FatalError: {message.error}")
        elif isinstance(message, AuthError):
            logger.warning("Server rejected authentication: %s", message.error)
            self._reconnect(f"AuthError: {message.error}")
        else:
            assert isinstance(message, UnknownMessage)
            logger.warning("Ignoring server message of unknown type %r", message.type)

    def _apply_transition(self, transition: Transition) -> None:
        touched = self._remote.transition(transition)  # raises on a broken chain
        self._transitions_on_socket += 1
        self._observe(Timestamp(transition.end_version.ts))
        for mod in transition.modifications:
            if isinstance(mod, (QueryUpdated, QueryFailed)):
                self._local.save_journal(mod.query_id, mod.journal)
                query = self._local.query(mod.query_id)
                if query is not None:
                    _log_function_lines("Q", query.udf_path, mod.log_lines)
        for query_id in dict.fromkeys(touched):
            result = self._remote.result(query_id)
            # A QueryRemoved for a live query keeps its last result: nothing new to report.
            if result is None or not self._local.has_query(query_id):
                continue
            if self._latest.get(query_id) != result:
                self._latest[query_id] = result
                self._events.append(QueryResultChanged(query_id, result))
        # After the query results, so a resolved mutation's caller already sees its write.
        end_ts = Timestamp(transition.end_version.ts)
        for request_id, result in self._requests.remove_completed(end_ts):
            self._events.append(RequestCompleted(request_id, result))

    def _apply_response(self, response: MutationResponse | ActionResponse) -> None:
        path = self._requests.udf_path(response.request_id)
        if path is not None:
            kind = "M" if isinstance(response, MutationResponse) else "A"
            _log_function_lines(kind, path, response.log_lines)
        if isinstance(response, MutationResponse) and response.ts is not None:
            self._observe(response.ts)
        result = self._requests.on_response(response)
        if result is not None:
            self._events.append(RequestCompleted(response.request_id, result))

    def _apply_chunk(self, chunk: TransitionChunk) -> None:
        if chunk.part_number == 0 and not self._chunks:
            self._chunk_id = chunk.transition_id
        elif chunk.transition_id != self._chunk_id or chunk.part_number != len(self._chunks):
            raise ProtocolMismatch(
                f"TransitionChunk {chunk.transition_id!r} part {chunk.part_number} arrived out "
                f"of order (expected part {len(self._chunks)} of {self._chunk_id!r})"
            )
        self._chunks.append(chunk.chunk)
        if len(self._chunks) < chunk.total_parts:
            return
        text = "".join(self._chunks)
        self._reset_chunks()
        message = parse_server_message(text)
        if not isinstance(message, Transition):
            raise ProtocolMismatch("Reassembled TransitionChunks are not a Transition")
        self._apply_transition(message)

    # ---------------------------------------------------------------- helpers

    def _send(self, message: ClientMessage) -> None:
        if self._state is ConnectionState.OPEN:
            self._outbox.append(encode_client_message(message))

    def _reconnect(self, reason: str) -> None:
        self._state = ConnectionState.CLOSING
        self._outbox.clear()
        self._events.append(ReconnectNeeded(reason))

    def _observe(self, ts: Timestamp) -> None:
        if self._max_observed_ts is None or ts > self._max_observed_ts:
            self._max_observed_ts = ts

    def _reset_chunks(self) -> None:
        self._chunks = []
        self._chunk_id = None


def _log_function_lines(kind: str, udf_path: str, lines: tuple[str, ...]) -> None:
    for line in lines:
        function_logger.info("[CONVEX %s(%s)] %s", kind, udf_path, line)
