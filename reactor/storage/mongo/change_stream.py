"""The MongoDB change stream turned into change-feed events: a pure (sans-I/O) consumer.

Owns turning MongoDB change events (documented format, as PyMongo yields them) into the events
the SQLite engine publishes (the written index keys of each commit, old and new, with their
element-boundary prefixes: ``Transaction.prepare_commit``), grouping a MongoDB transaction into
one commit, giving each commit a strictly increasing timestamp, deciding what to do on stream
errors, and the resume point the caller persists. It opens nothing and awaits nothing: the
engine feeds it events and acts on what it returns.

The contract the MongoDB engine follows
---------------------------------------

* One change stream per process, on the database (``db.watch``), opened with
  ``consumer.watch_options(...)``: ``full_document="whenAvailable"`` and
  ``full_document_before_change="whenAvailable"``, plus ``resume_after``/``start_after`` from
  the persisted resume point or, on the very first start, ``start_at_operation_time``.
  ``fullDocument`` of an update must be the post-image *at the event* (never ``updateLookup``,
  which may be a later version).
* One collection per Convex table, same name (system tables such as ``_scheduled_functions``
  and ``_storage`` included); documents stored as ``reactor.storage.mongo.bson_values`` describes,
  each Reactor commit stamping ``_rx: {"ts": <commit ts>}`` on the documents it writes. Table
  collections are created with ``changeStreamPreAndPostImages: {enabled: true}`` so events
  carry ``fullDocumentBeforeChange``; without pre-images, invalidation stays correct but coarser.
* Collections whose name starts with ``_reactor_`` (sequence, resume point, jobs...) and
  MongoDB's ``system.*`` collections are not tables; their events carry nothing to invalidate.
  The one exception is ``_reactor_commits``: when a Reactor commit's transaction also inserts
  ``{"_id": <ts>, "ts": <ts>, ...}`` there, that ts is the commit's (this covers delete-only
  commits, whose events carry no ``_rx``). Everything else in that document is ignored.
* The engine publishes from this feed only (not also in-process), so commits of every process
  and writes of other programs reach ``WriteLog.append`` and ``SubscriptionManager.advance``
  once each, in stream order; and it takes query snapshot timestamps from the feed's last ts,
  so a query that ran before a commit was processed is caught as "born invalid".

Reading the stream
------------------

``receive(event)`` for each event, ``flush(stream.resume_token)`` whenever ``try_next()``
returns None (the end of a batch: a pending transaction is emitted and the post-batch resume
token recorded), ``on_error(exc)`` when the stream raises. After acting on the returned events,
persist ``checkpoint`` (``ResumePoint.to_document()``); it only ever names a point before which
everything was emitted.

Events
------

* ``Commit``: the write keys and prefixes of one MongoDB transaction (or one standalone
  write), shaped as ``CommitRequest.write_keys``/``write_prefixes``, for
  ``WriteLog.append(ts, write_keys, table, prefixes)`` and ``SubscriptionManager.advance``.
  Old keys come from the pre-image, new ones from the post-image (or ``fullDocument``).
  **When an image is unknown** (an update or delete without pre-image, an update without
  post-image), the keys that cannot be computed are replaced by naming their index in
  ``unknown_indexes``: the engine must treat every read of those indexes as hit (invalidate
  every subscription holding an interval on them, and fail OCC for transactions that read
  them), e.g. by ``LiveQueries.invalidate_all()`` when it has nothing finer. The ``by_id`` key
  is always known (the event's ``documentKey``). An update's ``updateDescription`` narrows
  this: an index none of whose fields (nor ``_creationTime``) were touched keeps its key, so
  the known image gives it exactly. Correctness (never miss an invalidation) beats precision.
* ``InvalidateAll``: every live subscription must re-run — ``drop``, ``rename`` or
  ``dropDatabase`` touching a table, ``invalidate``, an unknown operation type, and on
  ``on_error``: ``ChangeStreamHistoryLost`` (286), an unusable resume token (260, 280, legacy
  40576/136) or an event too large to read (10334). With ``reopen`` set the stream is closed
  or unusable: reopen it with ``watch_options()`` (after ``invalidate``: ``start_after`` the
  token; after an error: from now, ``resume_token=None``) *before* re-running the queries, so
  no write falls between their reads and the new stream.
* ``TokenAdvanced``: nothing to invalidate (writes to ``_reactor_*`` collections, DDL that
  changes no data, a post-batch resume token); persist the token.
* ``Retry``: a transient error (network, elections, the server's resumable codes and labels):
  reopen with ``watch_options()`` after ``delay_s``. Other errors are re-raised.

Timestamps strictly increase in stream order: a Reactor commit keeps its ``_rx.ts`` (or
``_reactor_commits`` ts), other writes take ``clusterTime`` as ``seconds * 10**9 + increment``
(else ``wallTime``, else ``clock_ns()``), and either is raised to ``last + 1`` if it would not
be after the last emitted one.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from bson.timestamp import Timestamp
from pymongo.errors import ConnectionFailure, OperationFailure

from reactor.core.index_keys import (
    BY_CREATION_TIME,
    BY_ID,
    id_key,
    index_id,
    index_key_prefixes,
)
from reactor.storage.mongo.bson_values import (
    CREATION_TIME_FIELD,
    RX_FIELD,
    decode_document,
    decode_document_id,
    reactor_ts,
)
from schema.errors import StorageError

__all__ = [
    "COMMITS_COLLECTION",
    "UNKNOWN",
    "ChangeStreamConsumer",
    "Commit",
    "DocumentChange",
    "FeedEvent",
    "InvalidateAll",
    "ResumePoint",
    "Retry",
    "TokenAdvanced",
    "is_table_collection",
]

COMMITS_COLLECTION = "_reactor_commits"
SYSTEM_PREFIX = "_reactor_"

HISTORY_LOST = 286  # ChangeStreamHistoryLost
_RESTART_CODES = {
    HISTORY_LOST: "change stream history lost",
    280: "change stream resume token not found",  # ChangeStreamFatalError
    260: "invalid resume token",  # InvalidResumeToken
    40576: "change stream history lost",  # before 4.2
    136: "change stream history lost",  # CappedPositionLost
    10334: "change event too large",  # BSONObjectTooLarge
}
# The change-streams driver specification's resumable codes (servers before 4.4 do not label).
_RESUMABLE_CODES = frozenset(
    {6, 7, 43, 63, 89, 91, 133, 150, 189, 234, 262, 9001, 10107, 11600, 11602, 13388, 13435, 13436}
)
_DATA_OPS = frozenset({"insert", "update", "replace", "delete"})
_NO_DATA_OPS = frozenset(
    {
        "create",
        "createIndexes",
        "dropIndexes",
        "modify",
        "shardCollection",
        "refineCollectionShardKey",
        "reshardCollection",
        "createSearchIndex",
        "updateSearchIndex",
        "dropSearchIndex",
        "endOfTransaction",
    }
)


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        return False


UNKNOWN: Any = _Unknown()
"""An image (document version) the change event does not carry."""

Token: TypeAlias = Mapping[str, Any]


# -- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DocumentChange:
    """One document written by a commit: ``old``/``new`` are the Convex document, ``None``
    (absent: inserted / deleted) or ``UNKNOWN`` (the event did not carry it)."""

    table: str
    id: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class Commit:
    ts: int
    write_keys: dict[str, list[bytes]]
    prefixes: dict[str, list[bytes]]
    table: str | None  # the first table written (``WriteLog.append``'s table)
    document_ids: tuple[str, ...]
    resume_token: Token | None
    unknown_indexes: frozenset[str] = frozenset()
    changes: tuple[DocumentChange, ...] = ()
    reactor_ts: int | None = None  # the ts a Reactor process stamped; None: another program


@dataclass(frozen=True, slots=True)
class InvalidateAll:
    reason: str
    resume_token: Token | None
    ts: int  # a fresh feed ts: every snapshot at or before it is stale
    reopen: bool = False  # the stream is closed or unusable: reopen with watch_options()


@dataclass(frozen=True, slots=True)
class TokenAdvanced:
    resume_token: Token


@dataclass(frozen=True, slots=True)
class Retry:
    reason: str
    delay_s: float
    attempt: int


FeedEvent: TypeAlias = Commit | InvalidateAll | TokenAdvanced | Retry


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where to reopen: after ``token`` (``start_after`` when it is an invalidate event's)."""

    token: Token
    start_after: bool = False

    def watch_options(self) -> dict[str, Any]:
        return {"start_after" if self.start_after else "resume_after": dict(self.token)}

    def to_document(self) -> dict[str, Any]:
        return {"token": dict(self.token), "start_after": self.start_after}

    @classmethod
    def from_document(cls, doc: Mapping[str, Any] | None) -> ResumePoint | None:
        if not doc or not isinstance(doc.get("token"), Mapping):
            return None
        return cls(dict(doc["token"]), bool(doc.get("start_after", False)))


def is_table_collection(name: str) -> bool:
    """Whether a collection holds a Convex table (not ``_reactor_*``, not ``system.*``)."""
    return bool(name) and not name.startswith(SYSTEM_PREFIX) and not name.startswith("system.")


# -- grouping state --------------------------------------------------------------------------


@dataclass(slots=True)
class _Change:
    table: str
    id: str
    old: Any
    new: Any
    touched: set[str] | None  # paths that may differ between old and new; None: any


@dataclass(slots=True)
class _Group:
    key: Any
    token: Token | None = None
    changes: dict[tuple[str, str], _Change] = field(default_factory=dict)
    reactor_ts: int | None = None
    cluster_ns: int | None = None


def _hashable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple((k, _hashable(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _txn_key(event: Mapping[str, Any]) -> Any:
    """The (lsid, txnNumber) of a multi-document transaction's event, else None."""
    txn = event.get("txnNumber")
    lsid = event.get("lsid")
    if txn is None or lsid is None:
        return None
    return (_hashable(lsid), int(txn))


def _event_ns(event: Mapping[str, Any]) -> int | None:
    """The event's time in ns from ``clusterTime`` (else ``wallTime``), if it has one."""
    cluster = event.get("clusterTime")
    if isinstance(cluster, Timestamp):
        return cluster.time * 1_000_000_000 + min(cluster.inc, 999_999_999)
    wall = event.get("wallTime")
    if isinstance(wall, datetime.datetime):
        if wall.tzinfo is None:
            wall = wall.replace(tzinfo=datetime.UTC)
        delta = wall - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    return None


def _touched_paths(event: Mapping[str, Any]) -> set[str] | None:
    """Dotted paths an update event changed (None when it does not say)."""
    description = event.get("updateDescription")
    if not isinstance(description, Mapping):
        return None
    paths: set[str] = set()
    updated = description.get("updatedFields") or {}
    removed = description.get("removedFields") or []
    truncated = description.get("truncatedArrays") or []
    disambiguated = description.get("disambiguatedPaths") or {}
    paths.update(str(p) for p in updated)
    paths.update(str(p) for p in removed)
    for item in truncated:
        if not isinstance(item, Mapping) or "field" not in item:
            return None
        paths.add(str(item["field"]))
    for components in disambiguated.values():
        if isinstance(components, list):
            paths.add(".".join(str(c) for c in components))
    return paths


def _touches(touched: set[str] | None, fields: Sequence[str]) -> bool:
    """Whether a change to ``touched`` may change a key over ``fields`` (+ ``_creationTime``).

    Compared as dotted strings, which is conservative when field names contain dots."""
    if touched is None:
        return True
    for f in (*fields, CREATION_TIME_FIELD):
        for p in touched:
            if p == f or p.startswith(f + ".") or f.startswith(p + "."):
                return True
    return False


def _stamped_ts(event: Mapping[str, Any], op: str) -> int | None:
    """The ``_rx.ts`` this event itself wrote (not one left over from an earlier write)."""
    if op in ("insert", "replace"):
        return reactor_ts(event.get("fullDocument"))
    if op == "update":
        description = event.get("updateDescription")
        updated = description.get("updatedFields") if isinstance(description, Mapping) else None
        if not isinstance(updated, Mapping):
            return None
        if RX_FIELD in updated:
            return reactor_ts({RX_FIELD: updated[RX_FIELD]})
        if f"{RX_FIELD}.ts" in updated:
            return reactor_ts({RX_FIELD: {"ts": updated[f"{RX_FIELD}.ts"]}})
    return None


def _commit_record_ts(event: Mapping[str, Any]) -> int | None:
    doc = event.get("fullDocument")
    for value in (
        doc.get("ts") if isinstance(doc, Mapping) else None,
        (event.get("documentKey") or {}).get("_id"),
    ):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return int(value)
    return None


# -- the consumer ----------------------------------------------------------------------------


class ChangeStreamConsumer:
    """Change events in, ``FeedEvent``s out. See the module docstring for the contract."""

    def __init__(
        self,
        index_definitions: Callable[[str], Mapping[str, Sequence[str]]],
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        last_ts: int = 0,
        resume: ResumePoint | None = None,
        database: str | None = None,
        retry_base_s: float = 0.1,
        retry_cap_s: float = 10.0,
    ) -> None:
        self._indexes = index_definitions
        self._clock_ns = clock_ns
        self.last_ts = last_ts
        self.checkpoint: ResumePoint | None = resume
        self.database = database
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s
        self._attempt = 0
        self._group: _Group | None = None
        self._fragments: list[Mapping[str, Any]] = []

    # -- options for opening the stream -----------------------------------------------------

    def watch_options(self, *, start_at_operation_time: Timestamp | None = None) -> dict[str, Any]:
        """Keyword arguments for ``db.watch()``: images, and where to start."""
        options: dict[str, Any] = {
            "full_document": "whenAvailable",
            "full_document_before_change": "whenAvailable",
        }
        if self.checkpoint is not None:
            options.update(self.checkpoint.watch_options())
        elif start_at_operation_time is not None:
            options["start_at_operation_time"] = start_at_operation_time
        return options

    # -- input -------------------------------------------------------------------------------

    def receive(self, event: Mapping[str, Any]) -> list[FeedEvent]:
        """One change event (a document of the stream); returns what is now complete."""
        self._attempt = 0
        split = event.get("splitEvent")
        if isinstance(split, Mapping):
            self._fragments.append(event)
            if split.get("fragment") != split.get("of"):
                return []
            merged: dict[str, Any] = {}
            for fragment in self._fragments:
                merged.update(fragment)
            merged.pop("splitEvent", None)
            self._fragments = []
            event = merged
        op = event.get("operationType")
        token = event.get("_id")
        raw_ns = event.get("ns")
        ns: Mapping[str, Any] = raw_ns if isinstance(raw_ns, Mapping) else {}
        if self.database is not None and ns.get("db") not in (None, self.database):
            return [*self._emit(), *self._advance(token)]
        if op in _DATA_OPS:
            key = _txn_key(event)
            out: list[FeedEvent] = []
            if self._group is not None and (key is None or key != self._group.key):
                out += self._emit()
            if self._group is None:
                self._group = _Group(key)
            self._add(self._group, event, str(op), str(ns.get("coll") or ""))
            if key is None:
                out += self._emit()
            return out
        out = self._emit()
        if op in _NO_DATA_OPS:
            return [*out, *self._advance(token)]
        if op in ("drop", "rename"):
            names = [str(ns.get("coll") or "")]
            to = event.get("to")
            if isinstance(to, Mapping):
                names.append(str(to.get("coll") or ""))
            if not any(is_table_collection(n) for n in names):
                return [*out, *self._advance(token)]
        reopen = op == "invalidate"
        reason = (
            str(op)
            if op in ("drop", "rename", "dropDatabase", "invalidate")
            else (f"unknown change event {op!r}")
        )
        ts = self._next_ts(_event_ns(event))
        if isinstance(token, Mapping):
            self.checkpoint = ResumePoint(token, start_after=reopen)
        return [*out, InvalidateAll(reason, token, ts, reopen)]

    def flush(self, resume_token: Token | None = None) -> list[FeedEvent]:
        """The end of a batch: emit a pending transaction; record the post-batch token."""
        out = self._emit()
        if (
            resume_token is not None
            and not self._fragments
            and (self.checkpoint is None or dict(self.checkpoint.token) != dict(resume_token))
        ):
            out += self._advance(resume_token)
        return out

    def on_error(self, error: BaseException | int) -> list[FeedEvent]:
        """What to do about a stream error: restart from now and re-run everything, retry from
        the checkpoint after a delay, or (anything else) re-raise it."""
        code = error if isinstance(error, int) else getattr(error, "code", None)
        self._fragments = []
        if code in _RESTART_CODES:
            out = self._emit()
            self.checkpoint = None
            self._attempt = 0
            reason = f"{_RESTART_CODES[code]} (code {code})"
            return [*out, InvalidateAll(reason, None, self._next_ts(None), reopen=True)]
        if self._resumable(error, code):
            out = self._emit()
            self._attempt += 1
            delay = min(self._retry_cap_s, self._retry_base_s * 2 ** (self._attempt - 1))
            reason = str(error) if not isinstance(error, int) else f"code {error}"
            return [*out, Retry(reason, delay, self._attempt)]
        if isinstance(error, BaseException):
            raise error
        raise StorageError(f"The MongoDB change stream failed with error code {error}")

    @staticmethod
    def _resumable(error: BaseException | int, code: Any) -> bool:
        if isinstance(error, ConnectionFailure):
            return True
        if isinstance(error, OperationFailure):
            if error.has_error_label("NonResumableChangeStreamError"):
                return False
            if error.has_error_label("ResumableChangeStreamError"):
                return True
        return code in _RESUMABLE_CODES

    # -- grouping ----------------------------------------------------------------------------

    def _add(self, group: _Group, event: Mapping[str, Any], op: str, coll: str) -> None:
        token = event.get("_id")
        if isinstance(token, Mapping):
            group.token = token
        event_ns = _event_ns(event)
        if event_ns is not None:
            group.cluster_ns = max(group.cluster_ns or 0, event_ns)
        if not is_table_collection(coll):
            if coll == COMMITS_COLLECTION and op == "insert":
                stamped = _commit_record_ts(event)
                if stamped is not None:
                    group.reactor_ts = max(group.reactor_ts or 0, stamped)
            return
        stamped = _stamped_ts(event, op)
        if stamped is not None:
            group.reactor_ts = max(group.reactor_ts or 0, stamped)
        raw_key = (event.get("documentKey") or {}).get("_id")
        post = event.get("fullDocument")
        pre = event.get("fullDocumentBeforeChange")
        if raw_key is None:
            raw_key = (post or pre or {}).get("_id")
        doc_id = decode_document_id(raw_key)
        new: Any = UNKNOWN
        old: Any = UNKNOWN
        touched: set[str] | None = None
        if isinstance(pre, Mapping):
            old = decode_document(pre)
        if op == "insert":
            old = None
        if op == "delete":
            new = None
        elif isinstance(post, Mapping):
            new = decode_document(post)
        if op == "update":
            touched = _touched_paths(event)
        slot = (coll, doc_id)
        change = group.changes.get(slot)
        if change is None:
            group.changes[slot] = _Change(coll, doc_id, old, new, touched)
            return
        # A later write of the same document in one transaction: the first old image and the
        # last new one, as prepare_commit sees a transaction's writes.
        change.new = new
        if change.touched is not None and touched is not None:
            change.touched |= touched
        else:
            change.touched = None

    def _emit(self) -> list[FeedEvent]:
        group, self._group = self._group, None
        if group is None:
            return []
        changes = [c for c in group.changes.values() if c.old is not None or c.new is not None]
        if not changes:
            # Only _reactor_* writes (or an insert and delete of one document): nothing to
            # invalidate. A standalone event without a token has nothing to persist either.
            return self._advance(group.token)
        ts = self._next_ts(group.reactor_ts if group.reactor_ts is not None else group.cluster_ns)
        write_keys: dict[str, list[bytes]] = {}
        prefixes: dict[str, list[bytes]] = {}
        unknown: set[str] = set()
        for change in changes:
            self._keys(change, write_keys, prefixes, unknown)
        if group.token is not None:
            self.checkpoint = ResumePoint(group.token)
        ids = tuple(dict.fromkeys(c.id for c in changes))
        return [
            Commit(
                ts,
                write_keys,
                prefixes,
                changes[0].table,
                ids,
                group.token,
                frozenset(unknown),
                tuple(DocumentChange(c.table, c.id, c.old, c.new) for c in changes),
                group.reactor_ts,
            )
        ]

    def _keys(
        self,
        change: _Change,
        write_keys: dict[str, list[bytes]],
        prefixes: dict[str, list[bytes]],
        unknown: set[str],
    ) -> None:
        """The written keys of one document, as ``Transaction.prepare_commit`` computes them."""
        table = change.table
        write_keys.setdefault(index_id(table, BY_ID), []).append(id_key(change.id))
        indexes: dict[str, Sequence[str]] = {BY_CREATION_TIME: ()}
        for name, fields in self._indexes(table).items():
            if name not in (BY_ID, BY_CREATION_TIME):
                indexes[name] = tuple(fields)
        for name, fields in indexes.items():
            iid = index_id(table, name)
            keys = write_keys.setdefault(iid, [])
            index_prefixes = prefixes.setdefault(iid, [])
            old, new = change.old, change.new
            if old is UNKNOWN or new is UNKNOWN:
                known = new if old is UNKNOWN else old
                if not isinstance(known, dict) or _touches(change.touched, fields):
                    unknown.add(iid)
                    if isinstance(known, dict):
                        key, key_prefixes = index_key_prefixes(known, fields)
                        keys.append(key)
                        index_prefixes.extend(key_prefixes)
                    continue
                old = new = known  # no field of this index changed: its key did not either
            old_key = None
            if old is not None:
                old_key, old_prefixes = index_key_prefixes(old, fields)
                keys.append(old_key)
                index_prefixes.extend(old_prefixes)
            if new is not None:
                new_key, new_prefixes = index_key_prefixes(new, fields)
                if new_key != old_key:
                    keys.append(new_key)
                    index_prefixes.extend(new_prefixes)

    # -- time and tokens ---------------------------------------------------------------------

    def _next_ts(self, candidate: int | None) -> int:
        if candidate is None:
            candidate = self._clock_ns()
        self.last_ts = max(candidate, self.last_ts + 1)
        return self.last_ts

    def _advance(self, token: Any) -> list[FeedEvent]:
        if not isinstance(token, Mapping):
            return []
        self.checkpoint = ResumePoint(token)
        return [TokenAdvanced(token)]
