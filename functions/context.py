"""The ``ctx`` objects handlers receive: ``QueryCtx``, ``MutationCtx``, ``ActionCtx``, ``Auth``.

Owns what a context carries and ``ctx.auth`` (which records whether the caller's identity was
read, so the runtime can share a query result between callers whose identity it never read).
It does not own the database API (``functions.database``) or how contexts are built per call
(the runtime's executor), nor how the scheduler or ``run_*`` calls work (the runtime supplies
them).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from functions.database import DatabaseReader, DatabaseWriter, QueryJournal
from functions.store import DocumentStore

__all__ = [
    "ActionCtx",
    "Auth",
    "MutationCtx",
    "QueryCtx",
    "RunFunction",
    "Scheduler",
    "UserIdentity",
]

UserIdentity = dict[str, Any]
"""The identity claims of the caller (``subject``, ``issuer``, ``tokenIdentifier``, ...)."""

RunFunction = Callable[..., Awaitable[Any]]
"""``await ctx.run_query(reference, args=None)``.

The reference is ``"tasks:list"`` or ``tasks.list``.
"""


class Scheduler(Protocol):
    """``ctx.scheduler``: supplied by the runtime; writes go in the calling mutation's transaction.

    ``reference`` is a path string or a registered function (see ``paths.reference_path``).
    """

    async def run_after(
        self, delay_s: float, reference: Any, args: Mapping[str, Any] | None = None, /
    ) -> str: ...

    async def run_at(
        self, timestamp_ms: float, reference: Any, args: Mapping[str, Any] | None = None, /
    ) -> str: ...

    async def cancel(self, job_id: str, /) -> None: ...


class Auth:
    """``ctx.auth``: the caller's identity, and whether the function looked at it."""

    __slots__ = ("_identity", "was_read")

    def __init__(self, identity: Mapping[str, Any] | None = None) -> None:
        self._identity = None if identity is None else dict(identity)
        self.was_read = False

    async def get_user_identity(self) -> UserIdentity | None:
        """The caller's identity claims, or None when unauthenticated (each call, a fresh copy)."""
        self.was_read = True
        return None if self._identity is None else copy.deepcopy(self._identity)

    def __repr__(self) -> str:
        who = "anonymous" if self._identity is None else self._identity.get("subject", "?")
        return f"<Auth {who}{' read' if self.was_read else ''}>"


class QueryCtx:
    """What a query handler gets: read-only ``db`` and ``auth``.

    ``await ctx.run_query(reference, args)`` (supplied by the runtime) runs another query inside
    this query's transaction.
    """

    __slots__ = ("auth", "db", "env", "run_query", "storage")

    def __init__(
        self,
        db: DatabaseReader,
        auth: Auth | None = None,
        *,
        env: Mapping[str, str] | None = None,
        storage: Any = None,
        run_query: RunFunction | None = None,
    ) -> None:
        self.db = db
        self.auth = auth if auth is not None else Auth(None)
        self.env: Mapping[str, str] = env if env is not None else {}
        self.storage = storage
        self.run_query = run_query or _unavailable("run_query")

    @classmethod
    def for_store(
        cls,
        store: DocumentStore,
        *,
        identity: Mapping[str, Any] | None = None,
        journal: QueryJournal | None = None,
    ) -> QueryCtx:
        """A context over ``store`` (the call's transaction) for a caller with ``identity``."""
        return cls(DatabaseReader(store, journal=journal), Auth(identity))


class MutationCtx:
    """What a mutation handler gets: read-write ``db``, ``auth`` and ``scheduler``.

    ``ctx.run_query``/``ctx.run_mutation`` (supplied by the runtime) run another function inside
    this mutation's transaction: it sees this mutation's writes and its own writes commit with
    them; if a nested mutation raises, its writes are rolled back before the error reaches the
    caller.
    """

    __slots__ = ("auth", "db", "env", "run_mutation", "run_query", "scheduler", "storage")

    def __init__(
        self,
        db: DatabaseWriter,
        auth: Auth | None = None,
        scheduler: Scheduler | None = None,
        *,
        env: Mapping[str, str] | None = None,
        storage: Any = None,
        run_query: RunFunction | None = None,
        run_mutation: RunFunction | None = None,
    ) -> None:
        self.db = db
        self.auth = auth if auth is not None else Auth(None)
        self.scheduler = scheduler
        self.env: Mapping[str, str] = env if env is not None else {}
        self.storage = storage
        self.run_query = run_query or _unavailable("run_query")
        self.run_mutation = run_mutation or _unavailable("run_mutation")

    @classmethod
    def for_store(
        cls,
        store: DocumentStore,
        *,
        identity: Mapping[str, Any] | None = None,
        scheduler: Scheduler | None = None,
        journal: QueryJournal | None = None,
    ) -> MutationCtx:
        """A context over ``store`` (the mutation's transaction) for a caller with ``identity``."""
        return cls(DatabaseWriter(store, journal=journal), Auth(identity), scheduler)


class ActionCtx:
    """What an action handler gets: no ``db``; it calls queries and mutations instead.

    The runtime fills the slots: ``run_query``/``run_mutation``/``run_action`` run a function in
    its own transaction (``await ctx.run_query("tasks:list", {"owner": "a"})``); ``scheduler`` as
    in mutations; ``storage`` is the file storage handle of a later milestone.
    """

    __slots__ = ("auth", "env", "run_action", "run_mutation", "run_query", "scheduler", "storage")

    def __init__(
        self,
        *,
        auth: Auth | None = None,
        run_query: RunFunction | None = None,
        run_mutation: RunFunction | None = None,
        run_action: RunFunction | None = None,
        scheduler: Scheduler | None = None,
        storage: Any = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.auth = auth if auth is not None else Auth(None)
        self.env: Mapping[str, str] = env if env is not None else {}
        self.run_query = run_query or _unavailable("run_query")
        self.run_mutation = run_mutation or _unavailable("run_mutation")
        self.run_action = run_action or _unavailable("run_action")
        self.scheduler = scheduler
        self.storage = storage


def _unavailable(name: str) -> RunFunction:
    async def missing(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"ctx.{name} is not available in this context")

    return missing
