"""The query cache of subscribed queries and the loop that keeps them fresh.

Owns: one entry per distinct query (path, args, journal, and identity only if the query read
it) shared by every subscriber;
marking entries invalid when a commit writes inside their read set; re-running each invalid
entry once, at one timestamp; and handing every affected session a consistent snapshot (all of
its queries' outcomes valid at that one timestamp). Results leave through an injected
``encode`` (the sync server's wire outcome), so it knows nothing of the wire protocol; it does
not run functions itself (``reactor.engine.executor``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from functions.decorators import FunctionKind, FunctionSpec, query
from functions.registry import Registry
from reactor.core.persistence import PublishedCommit
from reactor.core.reads import ReadSet
from reactor.core.tasks import start_task, stop_task
from reactor.engine.execution_log import Caller
from reactor.engine.executor import Executor, FunctionResult
from reactor.engine.invocation import describe_failure
from reactor.engine.subscriptions import Subscription, SubscriptionManager
from schema.errors import FunctionNotFound
from schema.values import dumps

__all__ = ["Encode", "Entry", "LiveQueries", "Outcome", "SessionSink"]

log = logging.getLogger("reactor.engine.query_cache")


class Outcome(Protocol):
    """An encoded query result; equal fingerprints mean the client already has it."""

    @property
    def fingerprint(self) -> object: ...


# Turns a run into the outcome sessions receive (``reactor.server.outcomes.outcome_of``).
Encode = Callable[[FunctionResult], Outcome]


class SessionSink(Protocol):
    """A session receiving snapshots: all outcomes valid at ``ts``, by query id. The mapping
    may be shared with other sessions (those watching only the same query under the same id
    get the same one in a fan-out): read it, never modify it."""

    def deliver(self, ts: int, outcomes: Mapping[int, Any]) -> None: ...


# A query watched by more sessions re-runs at publication, not at the write: its fan-out would
# be ready when the commit is published and go out ahead of the mutation answers that the
# same publication releases, and its send time dwarfs the run time an early start saves.
EARLY_RUN_MAX_SESSIONS = 16


class Entry:
    __slots__ = (
        "args",
        "identity",
        "identity_key",
        "identity_read",
        "journal",
        "key",
        "outcome",
        "run_ts",
        "spec",
        "stale",
        "subscribers",
        "subscription",
        "ts",
        "valid_until",
    )

    def __init__(
        self,
        key: tuple[Any, ...],
        spec: FunctionSpec,
        args: dict[str, Any],
        identity: dict[str, Any] | None,
        journal: str | None,
    ) -> None:
        self.key = key
        self.spec = spec
        self.args = args
        self.identity = identity
        self.identity_key = _identity_key(identity)
        self.identity_read = False  # did the last run read ctx.auth? then it is not shared
        self.journal = journal
        self.outcome: Outcome | None = None
        self.ts = 0  # the snapshot the outcome was computed at
        self.run_ts = 0  # the snapshot of the latest run started
        self.valid_until: int | None = None  # the outcome holds for ts < this (None: for now)
        # The outcome holds at no ts (computed by code since reloaded, or past lost feed
        # events): no session gets a snapshot with it, until the re-run replaces it.
        self.stale = False
        self.subscription: Subscription[Entry] | None = None
        self.subscribers: dict[SessionSink, set[int]] = {}


def _identity_key(identity: dict[str, Any] | None) -> str | None:
    return None if identity is None else str(identity.get("tokenIdentifier", repr(identity)))


def _missing(path: str) -> FunctionSpec:
    """A stand-in for a query that a reload removed: it fails like an unknown function."""

    async def gone(ctx: Any, **args: Any) -> None:
        raise FunctionNotFound(f"Could not find public function for '{path}'.")

    return query(gone).with_path(path)


class LiveQueries:
    def __init__(
        self, executor: Executor, subscriptions: SubscriptionManager[Entry], *, encode: Encode
    ) -> None:
        self.executor = executor
        self.subscriptions = subscriptions
        self.encode = encode
        self._entries: dict[tuple[Any, ...], Entry] = {}
        # (path, args, journal) -> an entry other identities may share while it ignores ctx.auth
        self._shared: dict[tuple[Any, ...], Entry] = {}
        # (session, query id) -> the identity it subscribed with
        self._identities: dict[tuple[SessionSink, int], dict[str, Any] | None] = {}
        self._sessions: dict[SessionSink, dict[int, Entry]] = {}
        self._dirty: set[Entry] = set()
        self._pending: set[SessionSink] = set()
        self._running: set[Entry] = set()
        self._delivered: dict[SessionSink, int] = {}  # the ts of each session's last snapshot
        self._again: set[Entry] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.reruns = 0

    def __len__(self) -> int:
        return len(self._entries)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = start_task(self._run(), name="live-queries")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        for task in list(self._tasks):
            await stop_task(task)

    # -- called by the change feed's publisher ------------------------------------------------

    def on_commit(self, commit: PublishedCommit) -> None:
        ts = commit.ts
        for entry in self.subscriptions.advance(ts, commit.write_keys):
            entry.subscription = None
            entry.valid_until = ts
            if entry in self._running and entry.run_ts >= ts:
                continue  # the run under way (started when the commit was written) holds it
            self._dirty.add(entry)
        if self._dirty or self._pending:
            self._wake.set()  # re-runs, and sessions waiting for this commit's publication

    def on_written(self, ts: int, write_keys: Mapping[str, Sequence[bytes]]) -> None:
        """A commit at ``ts`` is written (readable) but not yet durable: start the re-runs of
        the live queries it invalidates now, at ``ts``, so they run during its fsync. Their
        outcomes reach sessions only once ``ts`` is published (``_deliver`` gives no snapshot
        past the published ts), and its publication then leaves them subscribed
        (``SubscriptionManager.advance``: their read sets hold it)."""
        if self._task is None:
            return
        for subscription in self.subscriptions.touched(write_keys):
            entry = subscription.owner
            if (
                0 < len(entry.subscribers) <= EARLY_RUN_MAX_SESSIONS
                and not entry.stale
                and entry not in self._running
            ):
                self._launch(entry, ts)

    # -- called by sessions ------------------------------------------------------------------

    def add(
        self,
        session: SessionSink,
        query_id: int,
        spec: FunctionSpec,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None = None,
        journal: str | None = None,
    ) -> None:
        """Subscribe ``session``'s ``query_id``; its first outcome comes in the next snapshot."""
        base = (spec.path, dumps(args), journal)
        key = (*base, _identity_key(identity))
        entry = self._entries.get(key)
        if entry is None:
            shared = self._shared.get(base)
            if shared is not None and not shared.identity_read and shared.subscribers:
                entry = shared  # its result does not depend on who asks
            else:
                entry = self._entries[key] = Entry(key, spec, args, identity, journal)
                self._shared.setdefault(base, entry)
                self._dirty.add(entry)
        entry.subscribers.setdefault(session, set()).add(query_id)
        if identity is not None:  # None is what a missing one reads as
            self._identities[session, query_id] = identity
        else:
            self._identities.pop((session, query_id), None)
        self._sessions.setdefault(session, {})[query_id] = entry
        self.request_update(session)

    def remove(self, session: SessionSink, query_id: int) -> None:
        entries = self._sessions.get(session)
        if not entries:
            return
        entry = entries.pop(query_id, None)
        self._identities.pop((session, query_id), None)
        if entry is None:
            return
        ids = entry.subscribers.get(session)
        if ids is not None:
            ids.discard(query_id)
            if not ids:
                del entry.subscribers[session]
        if not entry.subscribers:
            self._drop(entry)

    def remove_session(self, session: SessionSink) -> None:
        for query_id in list(self._sessions.get(session, {})):
            self.remove(session, query_id)
        self._sessions.pop(session, None)
        self._pending.discard(session)
        self._delivered.pop(session, None)

    def request_update(self, session: SessionSink) -> None:
        """Ask for a snapshot for ``session`` at (at least) the latest published commit."""
        self._pending.add(session)
        self._wake.set()

    def invalidate_all(self) -> None:
        """Re-run every live query (functions were reloaded, or the change feed lost events)."""
        now = self.executor.snapshot_ts()
        for entry in self._entries.values():
            entry.valid_until = now + 1
            entry.stale = True
            if entry.subscription is not None:
                self.subscriptions.unsubscribe(entry.subscription)
                entry.subscription = None
            self._dirty.add(entry)
        self._wake.set()

    def rebind(self, registry: Registry) -> None:
        """Point every entry at the reloaded function of its path, then re-run them all."""
        for entry in self._entries.values():
            path = entry.spec.path or ""
            spec = registry.get(path)
            if spec is None or spec.kind is not FunctionKind.QUERY:
                spec = _missing(path)
            entry.spec = spec
        self.invalidate_all()

    def _drop(self, entry: Entry) -> None:
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
        if self._shared.get(entry.key[:3]) is entry:
            del self._shared[entry.key[:3]]
        if entry.subscription is not None:
            self.subscriptions.unsubscribe(entry.subscription)
            entry.subscription = None
        self._dirty.discard(entry)
        self._again.discard(entry)

    # -- the update loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self._update()
            except Exception:
                log.exception("live query update failed")

    def _update(self) -> None:
        """Start a run of every invalid entry, then give each session that asked, or whose
        queries changed, the newest snapshot all of its queries' outcomes hold at.

        Runs go concurrently (bounded by the function runners), so a slow query delays only its
        own subscribers. Each outcome holds from the snapshot it was computed at until the
        first commit that wrote into its read set (``valid_until``; open while no commit has):
        a session gets a snapshot at the latest ts in all of those ranges, never before its
        previous one, or waits for the re-run that makes one exist. No await here: every
        commit at or below the published ts has already closed the ranges it ended.
        """
        published = self.executor.snapshot_ts()
        dirty, self._dirty = self._dirty, set()
        for entry in dirty:
            if not entry.subscribers:
                continue
            if entry in self._running:
                self._again.add(entry)  # invalidated while running: run again when it ends
                continue
            self._launch(entry, published)
        requested, self._pending = self._pending, set()
        self._deliver(requested, published)

    def _launch(self, entry: Entry, ts: int) -> None:
        self._running.add(entry)
        entry.run_ts = ts
        task = asyncio.get_running_loop().create_task(self._execute(entry, ts))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _deliver(self, sessions: Iterable[SessionSink], published: int) -> None:
        """Give each of ``sessions`` the newest snapshot all of its outcomes hold at (at most
        ``published``), or keep it pending until a re-run under way makes one exist."""
        # One snapshot mapping for all the sessions that watch just the same entry under the
        # same query id (the fan-out of a shared query): built once, held once.
        single: dict[tuple[int, Entry], dict[int, Any]] = {}
        last: tuple[int, Entry | None, dict[int, Any]] = (-1, None, {})  # the last one used
        entries_of, delivered = self._sessions, self._delivered  # looked up once per session
        for session in sessions:
            entries = entries_of.get(session, {})
            lower = delivered.get(session, 0)
            upper = published
            ready = True
            query_id = -1
            # The last pair stays at hand after the loop (read below for a single entry).
            for query_id, entry in entries.items():  # noqa: B007
                if entry.outcome is None or entry.stale:
                    ready = False  # its first run (or its re-run after a reload) has not ended
                    break
                if entry.ts > lower:
                    lower = entry.ts
                if entry.valid_until is not None and entry.valid_until <= upper:
                    upper = entry.valid_until - 1
            if not ready or lower > upper:
                self._pending.add(session)  # a re-run under way will make a snapshot exist
                continue
            if len(entries) == 1:  # ``query_id`` and ``entry``: its only pair
                if last[1] is entry and last[0] == query_id:
                    outcomes = last[2]
                else:
                    # Keyed by the entry itself (hashed by identity): no ``id()``, an audited
                    # call.
                    held = single.get((query_id, entry))
                    if held is None:
                        held = single[query_id, entry] = {query_id: entry.outcome}
                    outcomes = held
                    last = (query_id, entry, held)
            else:
                outcomes = {query_id: entry.outcome for query_id, entry in entries.items()}
            delivered[session] = upper
            try:
                session.deliver(upper, outcomes)
            except Exception:
                log.exception("delivering a snapshot failed")

    def _split(self, entry: Entry) -> None:
        """The query read ``ctx.auth``: subscribers with another identity get their own entry."""
        if self._shared.get(entry.key[:3]) is entry:
            del self._shared[entry.key[:3]]
        own = entry.identity_key
        self._resubscribe(entry, stays=lambda identity: _identity_key(identity) == own)

    def _resubscribe(
        self,
        entry: Entry,
        *,
        stays: Callable[[dict[str, Any] | None], bool] | None = None,
    ) -> None:
        """Move ``entry``'s subscribers (all, or those whose identity ``stays`` rejects) to the
        entry ``add`` gives them now for the same query, args and journal."""
        for session, query_ids in list(entry.subscribers.items()):
            for query_id in list(query_ids):
                identity = self._identities.get((session, query_id))
                if stays is not None and stays(identity):
                    continue
                self.remove(session, query_id)
                self.add(
                    session,
                    query_id,
                    entry.spec,
                    entry.args,
                    identity=identity,
                    journal=entry.journal,
                )

    async def _execute(self, entry: Entry, ts: int) -> None:
        self.reruns += 1
        try:
            result = await self.executor.run_query(
                entry.spec,
                entry.args,
                identity=entry.identity,
                ts=ts,
                journal=entry.journal,
                caller=Caller.WEBSOCKET,
                live_rerun=entry.outcome is not None,
            )
            self._settle(entry, result, ts)
        except Exception as exc:  # the runner itself failed: the query reports it
            self._settle(entry, describe_failure(entry.spec.path or "?", exc, dev=False), ts)
        finally:
            self._running.discard(entry)
            if entry in self._again:
                self._again.discard(entry)
                if entry.subscription is not None:
                    self.subscriptions.unsubscribe(entry.subscription)
                    entry.subscription = None
                self._dirty.add(entry)
                self._wake.set()
            # Its subscribers get their snapshot now, not a turn of the loop later (a session
            # still waiting on another query of its own stays pending until that one ends).
            self._pending.difference_update(entry.subscribers)
            self._deliver(list(entry.subscribers), self.executor.snapshot_ts())

    def _settle(self, entry: Entry, result: FunctionResult, ts: int) -> None:
        pinned = result.journal is not None and result.journal != entry.journal
        if pinned:
            entry.journal = result.journal
        entry.identity_read = result.identity_read
        if result.identity_read:
            self._split(entry)
        outcome = self.encode(result)
        previous = entry.outcome
        if previous is not None and previous.fingerprint == outcome.fingerprint:
            outcome = previous  # keep the identical object so sessions dedupe in O(1)
        entry.outcome = outcome
        entry.ts = ts
        entry.stale = False
        if not entry.subscribers:
            return
        if entry.subscription is not None:
            self.subscriptions.unsubscribe(entry.subscription)
        read_set = result.read_set if result.read_set is not None else ReadSet()
        entry.subscription = self.subscriptions.subscribe(entry, read_set, ts)
        entry.valid_until = None
        if entry.subscription is None:
            entry.valid_until = ts + 1  # a commit after ts already changed what it read
            self._dirty.add(entry)
            self._wake.set()  # re-run now: no later commit may come to wake the loop
        if pinned:
            self._rekey(entry)

    def _rekey(self, entry: Entry) -> None:
        """The run pinned a new journal: file the entry under it. Only subscribers that echo
        that journal join the page from now on; one without a journal gets a fresh first page."""
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
        if self._shared.get(entry.key[:3]) is entry:
            del self._shared[entry.key[:3]]
        path, args_key, _, identity_key = entry.key
        entry.key = (path, args_key, entry.journal, identity_key)
        if entry.key not in self._entries:
            self._entries[entry.key] = entry
            self._shared.setdefault(entry.key[:3], entry)
            return
        # Another entry already holds this very page: its subscribers move there.
        self._resubscribe(entry)
