"""Streaming export for connectors (Fivetran, Airbyte): Convex's ``json_schemas``,
``list_snapshot`` and ``document_deltas``, as pages of documents.

Owns the pages and their cursors: ``list_snapshot`` walks every user table (or one) at ONE
snapshot timestamp (MVCC reads of the ``by_creation_time`` index), so the pages of one walk
are a consistent snapshot however many commits land between them; ``document_deltas`` reads
the document log after a timestamp cursor, whole commits per page, deletes included. Both
refuse timestamps older than the retention window (``pruned_through``) with a clear error:
the versions they would need may be gone. It does not speak HTTP
(``reactor.server.connector_routes``) or check the admin key.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from reactor.core.index_keys import BY_CREATION_TIME, index_id
from reactor.core.persistence import DocumentLogEntry, Persistence
from reactor.errors import StreamingExportError
from reactor.platform.retention import PRUNED_THROUGH
from schema.ordering import Order
from schema.tables import SchemaDefinition
from schema.values import convex_to_json, loads, to_clean_json

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "DocumentHistory",
    "HeldSnapshots",
    "Page",
    "ValueFormat",
    "document_deltas",
    "json_schemas",
    "list_snapshot",
    "parse_format",
]

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000


@runtime_checkable
class DocumentHistory(Protocol):
    """An engine that keeps document versions (MVCC reads at any retained timestamp) and can
    list the versions written after a timestamp: the embedded SQLite engine. MongoDB keeps
    one version per document, so it cannot continue a snapshot walk across commits or list
    deltas."""

    async def load_documents(
        self, after_ts: int, until_ts: int, *, table: str | None, limit: int
    ) -> tuple[list[tuple[int, DocumentLogEntry]], bool]: ...


@runtime_checkable
class HeldSnapshots(Protocol):
    """An engine without older versions that keeps the snapshot sessions it opened a while
    (MongoDB): ``visible_reactor_ts(ts)`` is what the one for ``ts`` holds, None when gone."""

    def visible_reactor_ts(self, ts: int) -> int | None: ...


ValueFormat = str  # "json" (Convex's clean JSON, the default) or "convex_json" (encoded)
_FORMATS = {"json": "json", "convex_json": "convex_json", "convex_encoded_json": "convex_json"}


def parse_format(raw: str | None) -> ValueFormat:
    """The value format a request asked for.

    Raises:
        StreamingExportError: an unknown format.
    """
    if raw is None or raw == "":
        return "json"
    found = _FORMATS.get(raw)
    if found is None:
        raise StreamingExportError(
            "InvalidFormat", f"Unsupported format {raw[:50]!r}: use 'json' or 'convex_json'"
        )
    return found


@dataclass(slots=True)
class Page:
    """One answer: ``values`` (documents with ``_table``, ``_component``, ``_ts`` and, for
    deltas, ``_deleted``), whether ``has_more`` pages follow, the cursor to continue from and,
    for a snapshot walk, its ``snapshot`` timestamp."""

    values: list[dict[str, Any]]
    has_more: bool
    cursor: str | int | None
    snapshot: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"values": self.values, "hasMore": self.has_more}
        out["cursor"] = self.cursor
        if self.snapshot is not None:
            out["snapshot"] = self.snapshot
        return out


def _export(raw: bytes, fmt: ValueFormat) -> dict[str, Any]:
    value = loads(raw)
    exported = convex_to_json(value) if fmt == "convex_json" else to_clean_json(value)
    assert isinstance(exported, dict)
    return exported


async def _pruned_through(persistence: Persistence) -> int:
    return int(await persistence.get_global(PRUNED_THROUGH) or 0)


async def _check_ts(persistence: Persistence, ts: int, published: int, what: str) -> None:
    if ts > published:
        raise StreamingExportError(
            "InvalidTimestamp", f"{what} {ts} is in the future (the latest commit is {published})"
        )
    pruned = await _pruned_through(persistence)
    if ts < pruned:
        raise StreamingExportError(
            "OutOfRetention",
            f"{what} {ts} is older than the retention window: versions superseded at or "
            f"before {pruned} are pruned. Start again with a new list_snapshot.",
        )


def _check_table(table: str | None, tables: Sequence[str]) -> None:
    if table is not None and table not in tables:
        raise StreamingExportError(
            "TableNotFound", f"Table {table!r} not found (tables: {', '.join(tables) or 'none'})"
        )


def _page_size(size: int | None) -> int:
    if size is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise StreamingExportError(
            "InvalidPageSize", f"pageSize must be between 1 and {MAX_PAGE_SIZE}, got {size}"
        )
    return size


def _encode_cursor(table: str, key: bytes) -> str:
    return json.dumps({"table": table, "key": base64.b64encode(key).decode()})


def _decode_cursor(cursor: str, tables: Sequence[str]) -> tuple[str, bytes]:
    try:
        raw = json.loads(cursor)
        table, key = raw["table"], base64.b64decode(raw["key"], validate=True)
        if not isinstance(table, str):
            raise TypeError("table")
    except (ValueError, TypeError, KeyError) as exc:
        raise StreamingExportError(
            "InvalidCursor",
            f"Invalid list_snapshot cursor {cursor[:100]!r}: pass back the "
            "cursor of the previous page unchanged",
        ) from exc
    if table not in tables:
        raise StreamingExportError("InvalidCursor", f"The cursor names an unknown table {table!r}")
    return table, key


async def list_snapshot(
    persistence: Persistence,
    tables: Sequence[str],
    *,
    published: int,
    snapshot: int | None,
    cursor: str | None,
    table: str | None,
    fmt: ValueFormat,
    page_size: int | None = None,
) -> Page:
    """One page of the snapshot walk at ``snapshot`` (the latest commit when None: the answer
    names it; pass it back with the cursor for the next page).

    Raises:
        StreamingExportError: a snapshot in the future or out of retention, an unknown table,
            a malformed cursor or page size.
    """
    ts = published if snapshot is None else snapshot
    await _check_ts(persistence, ts, published, "snapshot")
    _check_table(table, tables)
    if cursor is not None and snapshot is None:
        raise StreamingExportError(
            "InvalidCursor", "A list_snapshot cursor needs the snapshot it was taken at"
        )
    limit = _page_size(page_size)
    if ts == published or isinstance(persistence, DocumentHistory):
        return await _walk(persistence, tables, ts, cursor, table, fmt, limit)
    # MongoDB keeps one version of each document: an older snapshot is readable only through
    # the snapshot session this process opened for it (kept a while after newer commits).
    # Checked before and after the page, so a session retired meanwhile cannot slip newer
    # data into the walk: refused rather than inconsistent.
    sessions = persistence if isinstance(persistence, HeldSnapshots) else None
    held = None if sessions is None else sessions.visible_reactor_ts(ts)
    if sessions is not None and held is not None:
        page = await _walk(persistence, tables, ts, cursor, table, fmt, limit)
        if sessions.visible_reactor_ts(ts) == held:
            return page
    raise StreamingExportError(
        "NotSupported",
        f"{type(persistence).__name__} keeps no older document versions, and this server no "
        f"longer holds the snapshot {ts} (commits have landed since, up to {published}): "
        "walk the snapshot again, with a larger pageSize, or faster",
    )


async def _walk(
    persistence: Persistence,
    tables: Sequence[str],
    ts: int,
    cursor: str | None,
    table: str | None,
    fmt: ValueFormat,
    limit: int,
) -> Page:
    walk = [table] if table is not None else sorted(tables)
    start_key = b""
    if cursor is not None:
        current, last_key = _decode_cursor(cursor, walk)
        walk = walk[walk.index(current) :]
        start_key = last_key + b"\x00"  # just after the last key returned
    values: list[dict[str, Any]] = []
    next_cursor: str | None = cursor
    for position, name in enumerate(walk):
        want = limit - len(values)
        rows = await persistence.scan(
            index_id(name, BY_CREATION_TIME), start_key, None, ts, Order.ASC, want + 1
        )
        for row in rows[:want]:
            document = _export(row.value, fmt)
            document.update({"_table": name, "_component": "", "_ts": ts})
            values.append(document)
            next_cursor = _encode_cursor(name, row.key)
        if len(rows) > want:
            return Page(values, True, next_cursor, ts)
        start_key = b""
        if len(values) == limit and position + 1 < len(walk):
            # Full, and tables remain: the next page resumes after this table's last row
            # (nothing), then walks on into the next table.
            return Page(values, True, next_cursor, ts)
    return Page(values, False, next_cursor, ts)


async def document_deltas(
    persistence: Persistence,
    tables: Sequence[str],
    *,
    published: int,
    cursor: int | None,
    table: str | None,
    fmt: ValueFormat,
    page_size: int | None = None,
) -> Page:
    """The document versions written after ``cursor`` (a timestamp: the ``snapshot`` of a
    finished list_snapshot walk, or the ``cursor`` of the previous deltas page), whole commits
    in commit order; a delete is ``{_id, _table, _ts, _deleted: true}``.

    Raises:
        StreamingExportError: no cursor, a cursor in the future or out of retention, an
            unknown table, an engine that keeps no document history.
    """
    if cursor is None:
        raise StreamingExportError(
            "DocumentDeltasCursorRequired",
            "/api/document_deltas requires a cursor: the snapshot of a list_snapshot walk",
        )
    await _check_ts(persistence, cursor, published, "cursor")
    _check_table(table, tables)
    if not isinstance(persistence, DocumentHistory):
        raise StreamingExportError(
            "NotSupported",
            f"document_deltas needs a storage engine that keeps document history; "
            f"{type(persistence).__name__} does not",
        )
    entries, more = await persistence.load_documents(
        cursor, published, table=table, limit=_page_size(page_size)
    )
    values: list[dict[str, Any]] = []
    for ts, entry in entries:
        if entry.value is None:
            document: dict[str, Any] = {"_id": entry.id, "_deleted": True}
        else:
            document = _export(entry.value, fmt)
            document["_deleted"] = False
        document.update({"_table": entry.table, "_component": "", "_ts": ts})
        values.append(document)
    next_cursor = entries[-1][0] if more else published
    return Page(values, more, next_cursor)


# -- JSON Schemas --------------------------------------------------------------------------

_SYSTEM_FIELDS: dict[str, dict[str, Any]] = {
    "_id": {"type": "string", "$description": "Id of this document"},
    "_creationTime": {"type": "number", "$description": "Creation time, ms since the epoch"},
}
_DELTA_FIELDS: dict[str, dict[str, Any]] = {
    "_table": {"type": "string"},
    "_component": {"type": "string"},
    "_ts": {"type": "integer"},
    "_deleted": {"type": "boolean"},
}


def json_schemas(
    tables: Sequence[str],
    schema: SchemaDefinition | None,
    *,
    delta_schema: bool,
    fmt: ValueFormat,
) -> dict[str, Any]:
    """Each user table's documents as JSON Schema, from the app's schema where it defines the
    table (any object otherwise); ``delta_schema`` adds the fields the two listing routes
    add."""
    out: dict[str, Any] = {}
    for name in sorted(tables):
        definition = None if schema is None else schema.tables.get(name)
        if definition is None:
            described: dict[str, Any] = {"type": "object", "additionalProperties": True}
        else:
            described = _json_schema(definition.document_validator.to_json(), fmt)
        _add_fields(described, delta_schema)
        out[name] = described
    return out


def _add_fields(described: dict[str, Any], delta_schema: bool) -> None:
    extra = {**_SYSTEM_FIELDS, **(_DELTA_FIELDS if delta_schema else {})}
    if "anyOf" in described:  # a union of object shapes: each member gets them
        for member in described["anyOf"]:
            _add_fields(member, delta_schema)
        return
    described.setdefault("properties", {}).update(extra)
    required = described.setdefault("required", [])
    required.extend(name for name in ("_id", "_creationTime") if name not in required)


def _json_schema(validator: Mapping[str, Any], fmt: ValueFormat) -> dict[str, Any]:
    """A Convex validator's JSON (``Validator.to_json``) as JSON Schema for ``fmt``."""
    kind = validator["type"]
    if kind == "string":
        return {"type": "string"}
    if kind == "number":
        if fmt == "convex_json":
            return {"type": "number"}
        return {
            "anyOf": [
                {"type": "number"},
                {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]},
            ]
        }
    if kind == "bigint":
        if fmt == "convex_json":
            return {
                "type": "object",
                "properties": {"$integer": {"type": "string"}},
                "$description": "int64, little-endian base64",
            }
        return {"type": "string", "$description": "int64 as a decimal string"}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "null":
        return {"type": "null"}
    if kind == "bytes":
        if fmt == "convex_json":
            return {"type": "object", "properties": {"$bytes": {"type": "string"}}}
        return {"type": "string", "$description": "bytes, base64"}
    if kind == "id":
        return {"type": "string", "$description": f"Id({validator['tableName']})"}
    if kind == "literal":
        return {"const": validator["value"]}
    if kind == "array":
        return {"type": "array", "items": _json_schema(validator["value"], fmt)}
    if kind == "object":
        fields = validator["value"]
        return {
            "type": "object",
            "properties": {name: _json_schema(f["fieldType"], fmt) for name, f in fields.items()},
            "required": [name for name, f in fields.items() if not f["optional"]],
            "additionalProperties": False,
        }
    if kind == "record":
        return {
            "type": "object",
            "additionalProperties": _json_schema(validator["values"]["fieldType"], fmt),
        }
    if kind == "union":
        return {"anyOf": [_json_schema(member, fmt) for member in validator["value"]]}
    return {}  # any
