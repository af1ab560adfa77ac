"""What the client wants the server to know: its subscribed queries and its identity.

Owns the local query set (query id ↔ (udf path, encoded args), subscriber counts, the last
journal of each query), the query-set version this client has announced, the auth token and
identity version, and the ``ModifyQuerySet`` / ``Authenticate`` messages that change them,
including the pair that re-announces everything on a new socket (:meth:`LocalSyncState.restart`).
It does not own query results or server versions (``remote_query_set``), requests
(``request_manager``) or whether a socket is open (``protocol``): messages it returns while the
socket is down are simply dropped by the caller, because ``restart`` re-sends the whole state.

Invariants: query ids are never reused for the life of the client, so a late result for a removed
query can never be mistaken for a new one; identical ``(udf_path, args)`` subscriptions share one
query id; ``query_set_version`` increases by exactly one per ``ModifyQuerySet``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import msgspec

from client_sdk.calls import decode_args
from reactor.sync.messages import Add, Authenticate, ModifyQuerySet, QueryId, Remove
from schema.values import JsonValue

__all__ = ["AuthToken", "LocalQuery", "LocalSyncState", "query_key"]

_key_encoder = msgspec.json.Encoder(order="sorted")


def query_key(udf_path: str, args: JsonValue) -> str:
    """The identity of a query: its path and its encoded args with object keys sorted."""
    return udf_path + "\x00" + _key_encoder.encode(args).decode("utf-8")


class AuthToken(msgspec.Struct, frozen=True):
    """``token_type`` is ``"User"`` (a JWT) or ``"Admin"`` (an admin key)."""

    token_type: Literal["User", "Admin"]
    value: str


class LocalQuery(msgspec.Struct):
    query_id: QueryId
    udf_path: str
    args: JsonValue
    key: str
    subscribers: int = 1
    journal: str | None = None


class LocalSyncState:
    """The client's desired query set and identity (see the module docstring for invariants)."""

    def __init__(self) -> None:
        self._next_query_id = 0
        self._query_set_version = 0
        self._identity_version = 0
        self._auth: AuthToken | None = None
        self._by_id: dict[QueryId, LocalQuery] = {}
        self._by_key: dict[str, QueryId] = {}

    @property
    def query_set_version(self) -> int:
        """The ``newVersion`` of the last ``ModifyQuerySet`` produced."""
        return self._query_set_version

    @property
    def identity_version(self) -> int:
        """The number of ``Authenticate`` messages produced since the last restart."""
        return self._identity_version

    @property
    def auth(self) -> AuthToken | None:
        return self._auth

    def subscribe(self, udf_path: str, args: JsonValue) -> tuple[QueryId, ModifyQuerySet | None]:
        """Add one subscriber to the query ``(udf_path, args)``.

        Args:
            udf_path: the function path, sent as given.
            args: the encoded argument object (``convex_to_json`` output).

        Returns:
            The query id, and the ``ModifyQuerySet`` to send when the query is new (``None``
            when an identical query already exists and its id is shared).
        """
        key = query_key(udf_path, args)
        existing = self._by_key.get(key)
        if existing is not None:
            self._by_id[existing].subscribers += 1
            return existing, None
        query_id = QueryId(self._next_query_id)
        self._next_query_id += 1
        query = LocalQuery(query_id, udf_path, args, key)
        self._by_id[query_id] = query
        self._by_key[key] = query_id
        return query_id, self._modify((Add(query_id, udf_path, decode_args(args)),))

    def unsubscribe(self, query_id: QueryId) -> ModifyQuerySet | None:
        """Drop one subscriber; returns the ``Remove`` to send once the last one has gone.

        Unknown ids are ignored (returns ``None``), so a double unsubscribe is harmless.
        """
        query = self._by_id.get(query_id)
        if query is None:
            return None
        query.subscribers -= 1
        if query.subscribers > 0:
            return None
        del self._by_id[query_id]
        del self._by_key[query.key]
        return self._modify((Remove(query_id),))

    def has_query(self, query_id: QueryId) -> bool:
        return query_id in self._by_id

    def query(self, query_id: QueryId) -> LocalQuery | None:
        return self._by_id.get(query_id)

    def queries(self) -> Iterator[LocalQuery]:
        """The live queries in id order."""
        return iter(sorted(self._by_id.values(), key=lambda q: q.query_id))

    def save_journal(self, query_id: QueryId, journal: str | None) -> None:
        """Remember the journal of a query's latest result; ignored for unknown ids."""
        query = self._by_id.get(query_id)
        if query is not None:
            query.journal = journal

    def set_auth(self, token: AuthToken | None) -> Authenticate:
        """Change the identity; returns the ``Authenticate`` to send.

        ``None`` logs out (``tokenType: "None"``). The identity version counts the
        ``Authenticate`` messages sent on the current socket.
        """
        self._auth = token
        message = self._authenticate(self._identity_version)
        self._identity_version += 1
        return message

    def restart(self) -> tuple[Authenticate | None, ModifyQuerySet]:
        """Re-announce everything on a new socket, where both versions start again at 0.

        Returns:
            The ``Authenticate`` to send first (``None`` without auth), then the
            ``ModifyQuerySet`` 0 → 1 re-adding every live query with its id and last journal.
            The caller sends them right after ``Connect``, in that order.
        """
        auth = None
        self._identity_version = 0
        if self._auth is not None:
            auth = self._authenticate(0)
            self._identity_version = 1
        adds = tuple(
            Add(q.query_id, q.udf_path, decode_args(q.args), q.journal) for q in self.queries()
        )
        self._query_set_version = 1
        return auth, ModifyQuerySet(0, 1, adds)

    def _authenticate(self, base_version: int) -> Authenticate:
        if self._auth is None:
            return Authenticate("None", None, base_version)
        return Authenticate(self._auth.token_type, self._auth.value, base_version)

    def _modify(self, modifications: tuple[Add | Remove, ...]) -> ModifyQuerySet:
        base = self._query_set_version
        self._query_set_version += 1
        return ModifyQuerySet(base, base + 1, modifications)
