"""Index keys of documents and key ranges of index queries, as order-preserving bytes.

An index key is the encoding of the indexed field values (a missing field is ``UNDEFINED``),
then ``_creationTime``, then ``_id`` (CONVEX_SEMANTICS §4.2). ``by_id`` keys are the encoded
id alone. This module turns an ``IndexRange`` into a half-open byte interval; it does not scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from functions.store import IndexRange
from reactor.core.intervals import Interval
from schema.errors import ValidationError
from schema.ordering import UNDEFINED, encode_key, encode_value, key_prefix_end

__all__ = [
    "BY_CREATION_TIME",
    "BY_ID",
    "field_value",
    "id_key",
    "index_id",
    "index_key",
    "index_key_prefixes",
    "range_interval",
]

BY_ID = "by_id"
BY_CREATION_TIME = "by_creation_time"


def index_id(table: str, index: str) -> str:
    return f"{table}.{index}"


def field_value(doc: dict[str, Any], path: str) -> Any:
    """The value at a dotted field path, or ``UNDEFINED`` when any step is missing."""
    if "." not in path:
        return doc.get(path, UNDEFINED)
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return UNDEFINED
        value = value[part]
    return value


def id_key(document_id: str) -> bytes:
    return encode_value(document_id)


def index_key(doc: dict[str, Any], fields: Sequence[str]) -> bytes:
    values = [field_value(doc, f) for f in fields]
    values.append(doc["_creationTime"])
    values.append(doc["_id"])
    return encode_key(values)


def index_key_prefixes(doc: dict[str, Any], fields: Sequence[str]) -> tuple[bytes, list[bytes]]:
    """The index key and its proper prefixes at element boundaries (for the write log)."""
    parts = [encode_value(field_value(doc, f)) for f in fields]
    parts.append(encode_value(doc["_creationTime"]))
    prefixes = []
    key = b""
    for part in parts:
        key += part
        prefixes.append(key)
    return key + encode_value(doc["_id"]), prefixes


def _check_next_field(
    fields: Sequence[str], position: int, name: str, what: str, index: str
) -> None:
    """Index ranges constrain the index's fields in order: ``name`` must be the next one."""
    if position < len(fields) and fields[position] == name:
        return
    reason = (
        f"the next indexed field is {fields[position]!r}"
        if position < len(fields)
        else "all of its fields are already constrained"
    )
    raise ValidationError(f"Index {index} cannot be queried with {what}: {reason}")


def range_interval(rng: IndexRange, fields: Sequence[str], *, index: str) -> Interval:
    """The byte interval of an index range over an index with the given user fields.

    The eq fields must be a prefix of the index fields, and bounds must be on the next field.
    """
    parts = []
    position = 0
    count = len(fields)
    for name, value in rng.eq:
        if position >= count or fields[position] != name:
            _check_next_field(fields, position, name, f"eq({name!r})", index)
        parts.append(encode_value(value))
        position += 1
    start = prefix = b"".join(parts)
    # Not prefix_successor: "a" encodes as a byte prefix of "a\x00"; P + 0xFF bounds exactly
    # the keys whose values extend P (schema.ordering.key_prefix_end).
    end = key_prefix_end(start) if start else None
    if rng.lower is None and rng.upper is None:
        return Interval(start, end)
    for bound, is_lower in ((rng.lower, True), (rng.upper, False)):
        if bound is None:
            continue
        _check_next_field(fields, position, bound.field, f"a range on {bound.field!r}", index)
        key = prefix + encode_value(bound.value)
        if is_lower:
            start = max(start, key if bound.inclusive else key_prefix_end(key))
        else:
            candidate = key_prefix_end(key) if bound.inclusive else key
            if end is None or candidate < end:
                end = candidate
    if end is not None and end < start:
        end = start
    return Interval(start, end)
