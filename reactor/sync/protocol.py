"""Sans-I/O state of one sync websocket connection: versions, query set, and Transitions.

Owns ``ServerSession`` (PROTOCOL.md §4.2, §5.1, §6.1, §7, §10) and with it every protocol rule:
the received query-set and identity versions, the set of subscribed queries, which results the
client already holds (for de-duplication), the chain of StateVersions the Transitions report,
and when a Transition may go out (which queries it must wait for, the commit ts it must reach).
It does no I/O, owns no clock and runs no functions: callers feed it text frames, times and
query snapshots, run the queries and mutations it asks for, and send the bytes it returns as
websocket text frames. Wire shapes live in ``reactor.sync.messages``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import msgspec

from reactor.errors import (
    IdentityVersionMismatch,
    InternalSessionError,
    MalformedClientMessage,
    QuerySetInconsistent,
    QuerySetVersionMismatch,
    SessionError,
)
from reactor.sync import messages
from reactor.sync.messages import INITIAL_VERSION, StateVersion, TokenType
from schema.errors import InvalidMessage

__all__ = [
    "ActionRequested",
    "AuthenticateRequested",
    "CallRefused",
    "Connected",
    "IdentityVersionMismatch",
    "InternalSessionError",
    "MalformedClientMessage",
    "MutationRequested",
    "QueriesChanged",
    "QueryFailure",
    "QueryOutcome",
    "QuerySetInconsistent",
    "QuerySetVersionMismatch",
    "QuerySpec",
    "QuerySuccess",
    "ServerSession",
    "SessionError",
    "SharedTransitions",
    "SessionEvent",
    "decode_frame",
    "final_message",
]


# --------------------------------------------------------------------------------------------
# Errors (defined in ``reactor.errors``): each says what the server must send last and how to
# close (PROTOCOL.md §2 "Real server close behaviour").
# --------------------------------------------------------------------------------------------


def final_message(error: SessionError) -> bytes | None:
    """The ``FatalError`` frame to send before closing for ``error``, or None to just close."""
    return messages.fatal_error(error.message) if error.sends_fatal_error else None


def decode_frame(data: str | bytes, /) -> messages.ClientMessage | messages.RefusedCall:
    """Decode one client frame (bounded by ``messages.scan_frame``); stateless and thread-safe.

    Raises:
        MalformedClientMessage: the frame cannot be read at all (not even a Mutation's or
            Action's ``requestId``). Send its ``final_message``, close, drop the session.
    """
    try:
        return messages.decode_client_message(data)
    except InvalidMessage as exc:
        raise MalformedClientMessage(exc.message) from exc


# --------------------------------------------------------------------------------------------
# Queries and their outcomes
# --------------------------------------------------------------------------------------------


class QuerySpec(msgspec.Struct, frozen=True):
    """One subscribed query. ``udf_path`` is as the client sent it (canonicalise before lookup)."""

    query_id: int
    udf_path: str
    args: dict[str, Any]
    journal: str | None = None
    component_path: str | None = None


@dataclass(frozen=True, slots=True)
class QuerySuccess:
    """A query's result: ``value_json`` is convex-encoded JSON bytes (None means JSON null).

    Build one per result and hand the same object to every session subscribed to the query:
    its encoded body is computed once and its ``fingerprint`` compares in O(1) when the
    ``value_json`` bytes object is shared (bytes equality is the fallback).
    """

    value_json: bytes | None
    log_lines: tuple[str, ...] = ()
    journal: str | None = None
    _body: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.log_lines) is not tuple:
            object.__setattr__(self, "log_lines", tuple(self.log_lines))

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        """Equal fingerprints mean the client already holds this result (no resend)."""
        return (True, self.value_json, self.log_lines, self.journal)

    def encode(self, query_id: int) -> bytes:
        """This result as a ``QueryUpdated`` modification for ``query_id``."""
        body = self._body
        if body is None:
            body = messages.query_updated_body(self.value_json, self.log_lines, self.journal)
            object.__setattr__(self, "_body", body)
        return messages.QUERY_UPDATED_HEAD % query_id + body


@dataclass(frozen=True, slots=True)
class QueryFailure:
    """A query that threw. ``error_data_json`` is given only for ConvexError (errorData present)."""

    message: str
    error_data_json: bytes | None = None
    log_lines: tuple[str, ...] = ()
    journal: str | None = None
    _body: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.log_lines) is not tuple:
            object.__setattr__(self, "log_lines", tuple(self.log_lines))

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        """Equal fingerprints mean the client already holds this result (no resend)."""
        return (False, self.message, self.error_data_json, self.log_lines, self.journal)

    def encode(self, query_id: int) -> bytes:
        """This failure as a ``QueryFailed`` modification for ``query_id``."""
        body = self._body
        if body is None:
            body = messages.query_failed_body(
                self.message, self.error_data_json, self.log_lines, self.journal
            )
            object.__setattr__(self, "_body", body)
        return messages.QUERY_FAILED_HEAD % query_id + body


QueryOutcome: TypeAlias = QuerySuccess | QueryFailure


class SharedTransitions:
    """Encoded Transition heads shared by the sessions of one fan-out.

    When one commit changes a query many sessions watch, most of them get the same Transition
    but for the per-session tail (``clientClockSkew``, ``serverTs``): same start and end
    versions, same modifications. ``head`` encodes that part once and hands the same bytes to
    every such session. It keeps only heads of the newest end ts it was asked for (older ones
    cannot recur once the fan-out moved on) and at most ``max_heads`` of them, filed by their
    versions and query ids with the outcomes they encode: a hit must hold the very same outcome
    objects (``is``; no ``id()``, an audited call, on this path). Not thread-safe: one per
    event loop.
    """

    __slots__ = (
        "_heads",
        "_pair",
        "fan_out",
        "_server_ts",
        "_server_ts_tail",
        "_ts",
        "max_heads",
    )

    def __init__(self, max_heads: int = 256) -> None:
        self.max_heads = max_heads
        self._ts = -1
        self._heads: dict[tuple[Any, ...], tuple[tuple[QueryOutcome | None, ...], bytes]] = {}
        self._server_ts = -1
        self._server_ts_tail = b""
        # What ``ServerSession.build_transition`` decided for the last session of a fan-out in
        # the common case: ((outcome, the one it replaces, ts, query id, whether the query is
        # in the set, query-set version, identity version, start version), end version, head,
        # whether the outcome is sent). Sessions in the same state as the one before reuse it,
        # end version object included.
        self.fan_out: tuple[Any, ...] | None = None
        # The last (held, new) outcome pair ``unchanged`` compared, and whether they are equal.
        self._pair: tuple[QueryOutcome | None, QueryOutcome | None, bool] = (None, None, False)

    def unchanged(self, held: QueryOutcome, outcome: QueryOutcome) -> bool:
        """Whether a client holding ``held`` already holds ``outcome`` (equal fingerprints),
        compared once for the sessions of a fan-out, which all hold the same previous one."""
        pair = self._pair
        if pair[0] is held and pair[1] is outcome:
            return pair[2]
        same = held is outcome or held.fingerprint == outcome.fingerprint
        self._pair = (held, outcome, same)
        return same

    def server_ts_tail(self, server_ts: int) -> bytes:
        """The end of a Transition after ``messages.transition_tail_prefix``: ``serverTs``'s
        number and the closing brace, encoded once for the sessions sent to at one time."""
        if server_ts != self._server_ts:
            self._server_ts_tail = b"%d}" % server_ts
            self._server_ts = server_ts
        return self._server_ts_tail

    def head_of_one(
        self, start: StateVersion, end: StateVersion, query_id: int, outcome: QueryOutcome
    ) -> bytes:
        """``head(start, end, [(query_id, outcome)])``, without building its list."""
        heads = self._heads
        if end.ts != self._ts or len(heads) >= self.max_heads:
            heads.clear()
            self._ts = end.ts
        key = (start, end, query_id)
        hit = heads.get(key)
        if hit is not None and hit[0][0] is outcome:
            return hit[1]
        data = messages.transition_head(start, end, (outcome.encode(query_id),))
        heads[key] = ((outcome,), data)
        return data

    def head(
        self,
        start: StateVersion,
        end: StateVersion,
        modifications: list[tuple[int, QueryOutcome | None]],
    ) -> bytes:
        """``messages.transition_head`` of ``modifications`` (query id and its outcome, or None
        for a ``QueryRemoved``, in the order they are sent), encoded once per distinct head."""
        heads = self._heads
        if end.ts != self._ts or len(heads) >= self.max_heads:
            heads.clear()
            self._ts = end.ts
        key = (start, end, *[query_id for query_id, _ in modifications])
        outcomes = tuple(outcome for _, outcome in modifications)
        hit = heads.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], outcomes, strict=True)):
            return hit[1]
        data = messages.transition_head(start, end, _encode_modifications(modifications))
        heads[key] = (outcomes, data)
        return data


_NO_IDS: frozenset[int] = frozenset()


def _ids(ids: set[int] | frozenset[int]) -> set[int]:
    """``ids`` itself when it is a set of its own, else a new set of the same ids."""
    return ids if isinstance(ids, set) else set(ids)


def _first(item: tuple[int, Any]) -> int:
    return int(item[0])


def _encode_modifications(
    modifications: list[tuple[int, QueryOutcome | None]],
) -> list[bytes]:
    return [
        messages.query_removed(query_id) if outcome is None else outcome.encode(query_id)
        for query_id, outcome in modifications
    ]


# --------------------------------------------------------------------------------------------
# Events returned by ServerSession.receive
# --------------------------------------------------------------------------------------------


class Connected(msgspec.Struct, frozen=True):
    """A ``Connect`` arrived. Nothing to send; remember ``session_id`` for mutation de-dupe.

    ``max_observed_ts`` is the largest ts this client has seen from any server (or None); the
    caller may check it against its latest ts (Convex closes with 1011 if it is ahead).
    """

    session_id: str
    max_observed_ts: int | None
    client_ts: int | None
    connection_count: int
    last_close_reason: str


class QueriesChanged(msgspec.Struct, frozen=True):
    """A ``ModifyQuerySet`` was applied (``added`` and ``removed`` may both be empty).

    The caller must start running every query in ``added`` (or, for one that cannot run, call
    ``ServerSession.fail_query``), stop running the ``removed`` ones, and pass the next snapshot
    of outcomes to ``ServerSession.transition_for`` and send what it returns; clients expect a
    Transition after every ModifyQuerySet, including the empty one JS sends on open.
    """

    added: list[QuerySpec]
    removed: list[int]
    query_set_version: int


class MutationRequested(msgspec.Struct, frozen=True):
    """Run the mutation (serially per connection; de-dupe on (session_id, request_id)), then send
    ``ServerSession.mutation_response(...)`` followed by the Transition ``transition_for`` gives
    for a snapshot at or after the commit ts."""

    request_id: int
    udf_path: str
    args: dict[str, Any]
    component_path: str | None = None


class ActionRequested(msgspec.Struct, frozen=True):
    """Run the action, then send ``ServerSession.action_response(...)``."""

    request_id: int
    udf_path: str
    args: dict[str, Any]
    component_path: str | None = None


class AuthenticateRequested(msgspec.Struct, frozen=True):
    """Validate the token (``value`` is None for ``token_type="None"``, a logout).

    On success the caller must call ``ServerSession.confirm_identity()``, re-run every query
    under the new identity and send what ``transition_for(...)`` returns. On failure it must send
    ``ServerSession.auth_error_message(error, attempted=True)`` and close the socket (no code,
    as for BadRequest). Never answer a bad token with FatalError: it kills JS clients.
    """

    token_type: TokenType
    value: str | None
    base_version: int
    acting_as: dict[str, Any] | None = None


class CallRefused(msgspec.Struct, frozen=True):
    """A ``Mutation`` or ``Action`` the server cannot read beyond its ``requestId`` (bad or
    oversized ``args``, values beyond Convex's limits, a frame too large or too deep).

    The connection stays open. For a Mutation, send ``mutation_response(request_id,
    QueryFailure(error))`` in order with the other mutations, then a Transition; for an
    Action, ``action_response(request_id, QueryFailure(error))``. The client then drops the
    call instead of resending it on every reconnect.
    """

    kind: Literal["Mutation", "Action"]
    request_id: int
    error: str


SessionEvent: TypeAlias = (
    Connected
    | QueriesChanged
    | MutationRequested
    | ActionRequested
    | AuthenticateRequested
    | CallRefused
)


class ServerSession:
    """Protocol state of one websocket connection; create a fresh one for every socket.

    Invariants (PROTOCOL.md §6.1, §10):

    * ``sent_version`` is the ``endVersion`` of the last Transition returned; it starts at
      ``{0, 0, 0}`` and never goes backwards, and the next Transition starts from it.
    * ``query_set_version`` is the last ``newVersion`` received (0 initially) and
      ``identity_version`` the number of confirmed Authenticates; the next Transition's
      ``endVersion`` reports both.
    * The client holds a result for exactly the query ids in ``_last_sent``. Queries added
      since the last Transition are "new" until an outcome is sent for them; removed ids the
      client holds a result for get a ``QueryRemoved`` in the next Transition.
    * A Transition reports the current query set and identity, so ``transition_for`` holds it
      until the snapshot carries an outcome for every query in ``_awaiting`` (added, or re-run
      for a new identity, since its last outcome went out) and reaches ``_min_ts`` (the
      largest ts of a mutation response sent): clients resolve a mutation only on a Transition
      at or after its commit ts. Queries in ``_unresolved`` could not run at all; their failure
      goes into every Transition until they are removed or re-resolved.

    After ``receive`` raises a ``SessionError`` the session is unusable: send its
    ``final_message`` (if any), close, and drop the session.
    """

    # Slots: thousands of sessions each keep one for their whole life, and a fan-out reads a
    # few of its fields per session (no per-instance dict to load).
    __slots__ = (
        "_awaiting",
        "_last_sent",
        "_min_ts",
        "_new",
        "_removed",
        "_skew_of_tail",
        "_skew_tail",
        "_transition_owed",
        "_unresolved",
        "authenticates_received",
        "client_clock_skew",
        "client_ts",
        "connection_count",
        "identity_version",
        "last_close_reason",
        "max_observed_ts",
        "queries",
        "query_set_version",
        "sent_version",
        "session_id",
    )

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.connection_count: int | None = None
        self.last_close_reason: str | None = None
        self.max_observed_ts: int | None = None
        self.client_ts: int | None = None
        self.client_clock_skew: int | None = None
        self.query_set_version = 0
        self.identity_version = 0
        self.authenticates_received = 0
        self.sent_version = INITIAL_VERSION
        self.queries: dict[int, QuerySpec] = {}
        # Query id sets, empty most of a session's life: the shared ``_NO_IDS`` until one is
        # needed (``_ids`` swaps in a set of its own), so an idle session holds none.
        self._new: set[int] | frozenset[int] = _NO_IDS
        self._removed: set[int] | frozenset[int] = _NO_IDS
        self._last_sent: dict[int, QueryOutcome] = {}
        self._transition_owed = False
        self._awaiting: set[int] | frozenset[int] = _NO_IDS
        self._unresolved: dict[int, QueryFailure] = {}
        self._min_ts = 0
        # This session's encoded ``clientClockSkew`` part of a Transition's tail, and the skew
        # it encodes (``_tail``).
        self._skew_tail: bytes | None = None
        self._skew_of_tail: int | None = None

    # ---- state the server reads ---------------------------------------------------------

    @property
    def pending_query_ids(self) -> frozenset[int]:
        """Queries added but not yet answered: pass an outcome for each to ``build_transition``."""
        return frozenset(self._new)

    @property
    def needs_transition(self) -> bool:
        """True when a Transition is owed: after a ModifyQuerySet, a confirmed identity or a
        mutation response, until ``build_transition`` is next called."""
        return self._transition_owed

    # ---- input --------------------------------------------------------------------------

    def receive(self, data: str | bytes, /, *, now_ms: int | None = None) -> list[SessionEvent]:
        """Process one text frame from the client and return what the caller must act on.

        Args:
            data: the frame's text (or its UTF-8 bytes).
            now_ms: the server's wall clock in Unix milliseconds when the frame arrived; used
                only for ``Connect`` to compute ``clientClockSkew = clientTs - now_ms``, which
                later Transitions report. Without it the field is omitted.

        Returns:
            Zero or one event (``Event`` telemetry yields none). See each event class for what
            the caller must do next.

        Raises:
            SessionError: the frame broke the protocol. Send ``exc.final_message`` if not None,
                then close with ``exc.close_code``/``exc.close_reason``, and drop the session.
        """
        return self.receive_message(decode_frame(data), now_ms=now_ms)

    def receive_message(
        self,
        message: messages.ClientMessage | messages.RefusedCall,
        /,
        *,
        now_ms: int | None = None,
    ) -> list[SessionEvent]:
        """``receive`` for a frame already decoded by ``decode_frame`` (which holds no state, so
        a server may run it elsewhere, e.g. off its event loop for a large frame).

        Returns and raises as ``receive`` does.
        """
        if isinstance(message, messages.ModifyQuerySet):
            return [self._modify_query_set(message)]
        if isinstance(message, messages.Mutation):
            return [
                MutationRequested(
                    message.request_id, message.udf_path, message.args, message.component_path
                )
            ]
        if isinstance(message, messages.Action):
            return [
                ActionRequested(
                    message.request_id, message.udf_path, message.args, message.component_path
                )
            ]
        if isinstance(message, messages.Connect):
            return [self._connect(message, now_ms)]
        if isinstance(message, messages.Authenticate):
            return [self._authenticate(message)]
        if isinstance(message, messages.RefusedCall):
            return [CallRefused(message.kind, message.request_id, message.error)]
        return []  # Event: telemetry only

    def _connect(self, message: messages.Connect, now_ms: int | None) -> Connected:
        # Like Convex, a Connect is not required first and a repeated one just overwrites.
        self.session_id = message.session_id
        self.connection_count = message.connection_count
        self.last_close_reason = message.last_close_reason
        self.max_observed_ts = message.max_observed_timestamp
        self.client_ts = message.client_ts
        if message.client_ts is not None and now_ms is not None:
            self.client_clock_skew = message.client_ts - now_ms
        return Connected(
            message.session_id,
            message.max_observed_timestamp,
            message.client_ts,
            message.connection_count,
            message.last_close_reason,
        )

    def _modify_query_set(self, message: messages.ModifyQuerySet) -> QueriesChanged:
        base, new = message.base_version, message.new_version
        if base != self.query_set_version:
            raise QuerySetVersionMismatch(
                f"Base version {base} passed up doesn't match the current version "
                f"{self.query_set_version}"
            )
        if new <= base:
            raise QuerySetInconsistent(
                f"ModifyQuerySet newVersion {new} must be greater than baseVersion {base}"
            )
        added: list[QuerySpec] = []
        removed: list[int] = []
        queries = self.queries
        new_ids, awaiting, removed_ids = _ids(self._new), _ids(self._awaiting), _ids(self._removed)
        self._new, self._awaiting, self._removed = new_ids, awaiting, removed_ids
        for modification in message.modifications:
            query_id = modification.query_id
            if isinstance(modification, messages.Add):
                if query_id in queries:
                    raise QuerySetInconsistent(f"Duplicate query ID: {query_id}")
                spec = QuerySpec(
                    query_id,
                    modification.udf_path,
                    modification.args,
                    modification.journal,
                    modification.component_path,
                )
                queries[query_id] = spec
                new_ids.add(query_id)
                awaiting.add(query_id)
                self._unresolved.pop(query_id, None)
                added.append(spec)
            else:
                if queries.pop(query_id, None) is None:
                    raise QuerySetInconsistent(f"Nonexistent query id: {query_id}")
                new_ids.discard(query_id)
                awaiting.discard(query_id)
                self._unresolved.pop(query_id, None)
                if query_id in self._last_sent:
                    removed_ids.add(query_id)
                removed.append(query_id)
        self.query_set_version = new
        self._transition_owed = True
        return QueriesChanged(added, removed, new)

    def _authenticate(self, message: messages.Authenticate) -> AuthenticateRequested:
        # Checked against Authenticates *received* (not confirmed) so that a caller validating
        # tokens asynchronously still sees the client's own numbering.
        if message.base_version != self.authenticates_received:
            raise IdentityVersionMismatch(
                f"Authenticate baseVersion {message.base_version} doesn't match the identity "
                f"version {self.authenticates_received}"
            )
        self.authenticates_received += 1
        return AuthenticateRequested(
            message.token_type, message.value, message.base_version, message.acting_as
        )

    def confirm_identity(self) -> None:
        """Record that the oldest unconfirmed Authenticate was validated and is now in force.

        The next Transition reports the bumped ``endVersion.identity``, which is how clients
        learn their token was accepted, so ``transition_for`` now waits for an outcome of every
        query in ``queries`` and forgets the ones ``fail_query`` recorded. The caller must then
        resolve every query in ``queries`` again under the new identity (``fail_query`` for each
        that cannot run), re-run the others and pass the next snapshot to ``transition_for``
        (unchanged results are still de-duplicated).

        Raises:
            RuntimeError: there is no unconfirmed Authenticate.
        """
        if self.identity_version >= self.authenticates_received:
            raise RuntimeError("confirm_identity() called without an unconfirmed Authenticate")
        self.identity_version += 1
        self._transition_owed = True
        self._awaiting = _ids(self._awaiting)
        self._awaiting.update(self.queries)
        self._unresolved.clear()

    def fail_query(self, query_id: int, failure: QueryFailure) -> None:
        """Record that a subscribed query cannot run at all (e.g. its function does not exist).

        Every Transition from ``transition_for`` then carries ``failure`` for it (de-duplicated
        like any outcome) until the query is removed, re-added, or the identity changes. Ids not
        in ``queries`` are ignored, as ``build_transition`` ignores stale outcomes. Next: pass
        the next snapshot to ``transition_for``; the query cache never delivers this query.
        """
        if query_id in self.queries:
            self._unresolved[query_id] = failure

    # ---- output -------------------------------------------------------------------------

    def transition_for(
        self,
        ts: int,
        outcomes: Mapping[int, QueryOutcome],
        *,
        server_ts: int | None = None,
        shared: SharedTransitions | None = None,
    ) -> bytes | None:
        """Decide whether a snapshot of query outcomes makes a Transition now, and encode it.

        A snapshot is held (None is returned) while its ``ts`` is below the commit ts of a
        mutation response already sent, or while it lacks an outcome for a query added (or
        re-run for a new identity) since that query's last outcome went out. Otherwise the
        outcomes recorded by ``fail_query`` are merged in and ``build_transition`` encodes it.

        Args:
            ts: the snapshot timestamp (ns) all ``outcomes`` are valid at.
            outcomes: query id → outcome, as the query cache delivered them.
            server_ts: optional ``serverTs`` (ns) to include.
            shared: where sessions of one fan-out share the encoded part of equal Transitions
                (``build_transition``).

        Returns:
            The Transition to send as a text frame (in order with every other frame), or None:
            keep waiting, and call ``transition_for`` again with the next snapshot (or with this
            one after the query set changed). A held snapshot may simply be superseded.
        """
        if ts < self._min_ts:
            return None
        if self._unresolved:
            outcomes = {**outcomes, **self._unresolved}
        if self._awaiting and not self._awaiting <= outcomes.keys():
            return None
        return self._transition(ts, outcomes, server_ts, shared)

    def build_transition(
        self,
        ts: int,
        outcomes: Mapping[int, QueryOutcome],
        *,
        server_ts: int | None = None,
        shared: SharedTransitions | None = None,
    ) -> bytes:
        """Encode the next Transition and advance ``sent_version`` to its ``endVersion``.

        Modifications, sorted by query id: ``QueryRemoved`` for removed ids the client held a
        result for; ``QueryUpdated``/``QueryFailed`` for every new query with an outcome in
        ``outcomes`` (always, even if equal to an older result) and for existing queries whose
        outcome's ``fingerprint`` differs from the last one sent. Queries without an entry in
        ``outcomes`` are left as they are (new ones stay pending); outcomes for ids not in the
        query set are ignored (stale results for removed queries). None of the waiting rules
        of ``transition_for`` (which is what a server calls) apply here.

        Args:
            ts: the snapshot timestamp (ns) the outcomes were computed at. It must never go
                backwards, so a ts smaller than ``sent_version.ts`` is replaced by it (the
                client only needs ``endVersion.ts >= start``; results are still sent). After a
                mutation response it must be >= the commit ts, or the mutation never resolves.
            outcomes: query id → outcome for the queries that (may have) changed.
            server_ts: optional ``serverTs`` (ns) to include.
            shared: when given, the part of the Transition before ``clientClockSkew`` comes
                from (and goes into) it, so sessions sending equal Transitions encode it once.

        Returns:
            The Transition as JSON bytes. Send it as a text frame, in order: never send two
            Transitions out of the order they were built.
        """
        return self._transition(ts, outcomes, server_ts, shared)

    def _transition(
        self,
        ts: int,
        outcomes: Mapping[int, QueryOutcome],
        server_ts: int | None,
        shared: SharedTransitions | None,
    ) -> bytes:
        """``build_transition``, with positional arguments (a fan-out calls it per session)."""
        start = self.sent_version
        if len(outcomes) == 1 and not (self._removed or self._new or self._awaiting):
            # A fan-out's case: one query's outcome and nothing added or removed since the last
            # Transition. The rules below, without their dict, loop and sort; and with
            # ``shared``, decided once for the sessions in the same state (``_fan_out``).
            ((query_id, outcome),) = outcomes.items()
            last_sent = self._last_sent
            previous = last_sent.get(query_id)
            member = query_id in self.queries
            qsv, identity = self.query_set_version, self.identity_version
            memo = None if shared is None else shared.fan_out
            head: bytes
            # Everything the Transition's head depends on (outcomes compare by identity first,
            # then by value: equal values encode the same).
            key = (outcome, previous, ts, query_id, member, qsv, identity, start)
            if memo is not None and memo[0] == key:
                end, head, changed = memo[1], memo[2], memo[3]
            else:
                end = StateVersion(qsv, identity, start.ts if ts < start.ts else ts)
                changed = member and (
                    previous is None
                    or not (
                        previous.fingerprint == outcome.fingerprint
                        if shared is None
                        else shared.unchanged(previous, outcome)
                    )
                )
                if shared is None:
                    modifications = (outcome.encode(query_id),) if changed else ()
                    head = messages.transition_head(start, end, modifications)
                else:
                    head = (
                        shared.head_of_one(start, end, query_id, outcome)
                        if changed
                        else shared.head(start, end, [])
                    )
                    shared.fan_out = (key, end, head, changed)
            if changed:
                last_sent[query_id] = outcome
            self.sent_version = end
            self._transition_owed = False
            if (
                shared is not None
                and server_ts is not None
                and server_ts == shared._server_ts
                and self._skew_tail is not None
                and self._skew_of_tail == self.client_clock_skew
            ):  # ``_tail``, inlined: the skew and the slice's serverTs already encoded
                return head + self._skew_tail + shared._server_ts_tail
            return head + self._tail(server_ts, shared)
        if ts < start.ts:
            ts = start.ts
        end = StateVersion(self.query_set_version, self.identity_version, ts)
        return self._build(start, end, outcomes, server_ts, shared)

    def _tail(self, server_ts: int | None, shared: SharedTransitions | None) -> bytes:
        """``messages.transition_tail`` of this session's clock skew and ``server_ts``."""
        if server_ts is None or shared is None:
            return messages.transition_tail(self.client_clock_skew, server_ts)
        skew = self.client_clock_skew
        prefix = self._skew_tail
        if prefix is None or self._skew_of_tail != skew:
            prefix = self._skew_tail = messages.transition_tail_prefix(skew)
            self._skew_of_tail = skew
        return prefix + shared.server_ts_tail(server_ts)

    def _build(
        self,
        start: StateVersion,
        end: StateVersion,
        outcomes: Mapping[int, QueryOutcome],
        server_ts: int | None,
        shared: SharedTransitions | None,
    ) -> bytes:
        """``build_transition``'s general case."""
        last_sent = self._last_sent
        # query id -> its new outcome, or None for a QueryRemoved
        modifications: dict[int, QueryOutcome | None] = {}
        if self._removed:
            for query_id in self._removed:
                modifications[query_id] = None
                del last_sent[query_id]
        self._removed = _NO_IDS
        if outcomes:
            if self._awaiting:
                awaiting = _ids(self._awaiting)
                awaiting.difference_update(outcomes)
                self._awaiting = awaiting or _NO_IDS
            queries, new = self.queries, self._new
            for query_id, outcome in outcomes.items():
                if query_id not in queries:
                    continue
                if query_id in new:
                    _ids(new).discard(query_id)  # a set of its own: it is not empty
                else:
                    previous = last_sent.get(query_id)
                    if previous is outcome or (
                        previous is not None and previous.fingerprint == outcome.fingerprint
                    ):
                        continue
                # Overrides a QueryRemoved for an id that was removed and re-added.
                modifications[query_id] = outcome
                last_sent[query_id] = outcome
        if len(modifications) > 1:
            items = sorted(modifications.items(), key=_first)
        else:
            items = list(modifications.items())
        if shared is not None:
            head = shared.head(start, end, items)
        else:
            head = messages.transition_head(start, end, _encode_modifications(items))
        data = head + self._tail(server_ts, shared)
        if not self._new:
            self._new = _NO_IDS
        self.sent_version = end
        self._transition_owed = False
        return data

    def mutation_response(
        self, request_id: int, outcome: QueryOutcome, *, ts: int | None = None
    ) -> bytes:
        """Encode the ``MutationResponse`` for a finished mutation.

        Args:
            request_id: the mutation's ``requestId``.
            outcome: ``QuerySuccess`` (its ``value_json`` is the result) or ``QueryFailure``
                (``error_data_json`` only for ConvexError). ``journal`` is not used.
            ts: the commit timestamp; required on success. A failure sends no ts, but one given
                (the snapshot it ran at) still bounds the next Transition.

        Returns:
            The frame to send. The caller must then ask for a fresh snapshot and send what
            ``transition_for`` returns (``needs_transition`` turns True): it holds every
            snapshot below ``ts``. A Transition is owed even for failures: Rust/Python clients
            wait for one before resolving a ConvexError.

        Raises:
            ValueError: a success without ``ts``.
        """
        self._transition_owed = True
        if ts is not None and ts > self._min_ts:
            self._min_ts = ts
        if isinstance(outcome, QuerySuccess):
            if ts is None:
                raise ValueError("A successful MutationResponse needs the commit ts")
            return messages.mutation_response_success(
                request_id, outcome.value_json, ts, outcome.log_lines
            )
        return messages.mutation_response_failure(
            request_id, outcome.message, outcome.error_data_json, outcome.log_lines
        )

    def action_response(self, request_id: int, outcome: QueryOutcome) -> bytes:
        """Encode the ``ActionResponse`` for a finished action (no Transition is required)."""
        if isinstance(outcome, QuerySuccess):
            return messages.action_response_success(
                request_id, outcome.value_json, outcome.log_lines
            )
        return messages.action_response_failure(
            request_id, outcome.message, outcome.error_data_json, outcome.log_lines
        )

    def auth_error_message(self, error: str, *, attempted: bool | None) -> bytes:
        """Encode an ``AuthError`` carrying the identity version the client last saw confirmed.

        Args:
            error: the message shown to the client.
            attempted: True when an Authenticate was rejected; False when an identity already
                in force became invalid (e.g. ``TokenExpired``); None omits the field.

        Returns:
            The frame to send as the last message; then close the socket without a code.
        """
        return messages.auth_error(error, self.sent_version.identity, attempted)

    def ping(self) -> bytes:
        """``{"type":"Ping"}``; send when nothing else went out for 15 s."""
        return messages.ping()
