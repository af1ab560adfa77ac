"""Convex values and documents as BSON, both ways, for the MongoDB engine.

Owns the one mapping between the Convex value model (``schema.values``) and what PyMongo's
``bson`` encodes and decodes, and the stored shape of a document. The engine's writer, its
reader and the change-stream consumer (``reactor.storage.mongo.change_stream``) all go through here,
so the index keys the consumer computes from change events are the keys reads recorded.
Pure: no I/O, no client.

Values written by Reactor round-trip exactly:

==================  ==========================  =================================================
Convex              Python (``schema.values``)  BSON
==================  ==========================  =================================================
null                ``None``                    null
int64               ``Int64``                   int64 (``bson.int64.Int64``)
float64             ``float`` (plain ``int``    double, NaN payloads, ±inf and -0.0 kept bit
                    is stored as float64)       for bit
boolean             ``bool``                    bool
string              ``str``                     string
bytes               ``bytes``                   binary subtype 0 (PyMongo decodes it to ``bytes``)
array               ``list``                    array
object              ``dict``                    embedded document, field order kept
==================  ==========================  =================================================

Values written by other programs are read leniently (``strict=False``, the default): BSON
int32 is a float64 (a JS number), int64 an ``Int64``, other binary subtypes and ``UUID`` their
bytes, ``ObjectId`` its 24-hex-digit string, a datetime its milliseconds since the epoch
(float64), ``Decimal128`` the nearest float64, a BSON timestamp the ``Int64``
``(seconds << 32) | increment``, regular expressions and code their source text,
MinKey/MaxKey null, a DBRef its ``{"$ref", "$id"[, "$db"]}`` object. ``strict=True`` rejects
all of those.

Stored document (one MongoDB collection per Convex table, same name)::

    {"_id": <Convex id string>, "_creationTime": <double, ms>, <user fields...>,
     "_rx": {"ts": <int64 commit ts>}}

``_rx`` is Reactor's metadata, absent on documents written by other programs; user fields
never start with ``_`` (``schema.tables``), so it cannot collide. Reading a document drops
``_rx``; a non-string ``_id`` (another program's ObjectId, number...) reads as the string of
``decode_document_id``, and a missing or non-numeric ``_creationTime`` as the ObjectId's
generation time in ms, else 0.0.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Mapping
from typing import Any

from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64 as BsonInt64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

from schema.errors import ValidationError
from schema.values import Int64, dumps

__all__ = [
    "CREATION_TIME_FIELD",
    "ID_FIELD",
    "RX_FIELD",
    "decode_document",
    "decode_document_id",
    "encode_document",
    "from_bson",
    "reactor_ts",
    "to_bson",
]

ID_FIELD = "_id"
CREATION_TIME_FIELD = "_creationTime"
RX_FIELD = "_rx"

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def to_bson(value: Any, path: str = "$") -> Any:
    """A Convex value as Python that ``bson`` encodes faithfully (see the module table)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if isinstance(value, Int64):
            return BsonInt64(int(value))
        return float(value)  # a plain int is a float64 (schema.values)
    if isinstance(value, float):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return [to_bson(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(
                    f"Object keys must be strings, got {type(key).__name__}", path=path
                )
            out[key] = to_bson(item, f"{path}.{key}")
        return out
    raise ValidationError(f"{type(value).__name__} is not a supported Convex value", path=path)


def from_bson(value: Any, *, strict: bool = False, path: str = "$") -> Any:
    """A value decoded by ``bson`` as a Convex value (lenient for foreign types by default)."""
    kind = type(value)
    if value is None or kind is bool or kind is str or kind is float:
        return value
    if isinstance(value, int):
        if isinstance(value, BsonInt64):
            return Int64(int(value))
        if isinstance(value, Int64):
            return value
        # BSON int32 (or a plain int): a JS number. Beyond int32 range only from hand-built
        # input, where float64 is what a plain int means anyway.
        return float(value)
    if isinstance(value, bytes):
        if isinstance(value, Binary) and value.subtype != 0 and strict:
            raise ValidationError(
                f"Binary subtype {value.subtype} is not a Convex value", path=path
            )
        return bytes(value)
    if isinstance(value, list):
        return [from_bson(item, strict=strict, path=f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        return {
            str(key): from_bson(item, strict=strict, path=f"{path}.{key}")
            for key, item in value.items()
        }
    if strict:
        raise ValidationError(f"BSON {type(value).__name__} is not a Convex value", path=path)
    return _foreign(value, path)


def _foreign(value: Any, path: str) -> Any:
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, tuple):
        return [from_bson(item, path=f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:  # PyMongo's default: naive UTC
            value = value.replace(tzinfo=datetime.UTC)
        delta = value - _EPOCH
        return float((delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000)
    if isinstance(value, DatetimeMS):
        return float(int(value))
    if isinstance(value, Decimal128):
        return float(value.to_decimal())
    if isinstance(value, Timestamp):
        bits = (value.time << 32) | value.inc
        return Int64(bits - (1 << 64) if bits >= 1 << 63 else bits)  # two's complement
    if isinstance(value, Regex):
        pattern = value.pattern
        return pattern if isinstance(pattern, str) else bytes(pattern).decode("utf-8", "replace")
    if isinstance(value, re.Pattern):
        return str(value.pattern)
    if isinstance(value, Code):
        return str(value)
    if isinstance(value, (MinKey, MaxKey)):
        return None
    if isinstance(value, DBRef):
        return from_bson(dict(value.as_doc()), path=path)
    return str(value)


def encode_document(doc: Mapping[str, Any], *, ts: int | None = None) -> dict[str, Any]:
    """The stored form of a Convex document; ``ts`` stamps ``_rx`` (a Reactor commit)."""
    out: dict[str, Any] = {
        ID_FIELD: doc[ID_FIELD],
        CREATION_TIME_FIELD: float(doc[CREATION_TIME_FIELD]),
    }
    for key, item in doc.items():
        if key in (ID_FIELD, CREATION_TIME_FIELD):
            continue
        if key == RX_FIELD:
            raise ValidationError(f"Field {RX_FIELD!r} is reserved for the system")
        out[key] = to_bson(item, f"$.{key}")
    if ts is not None:
        out[RX_FIELD] = {"ts": BsonInt64(ts)}
    return out


def decode_document_id(raw: Any) -> str:
    """The Convex id of a stored ``_id``: strings as they are, ObjectIds as 24 hex digits,
    anything else (another program's numbers, UUIDs...) as its Convex JSON text."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, ObjectId):
        return str(raw)
    return dumps(from_bson(raw)).decode("utf-8")


def _creation_time(raw: Any, raw_id: Any) -> float:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, (datetime.datetime, DatetimeMS, Decimal128)):
        return float(_foreign(raw, "$"))
    if isinstance(raw_id, ObjectId):
        return float(_foreign(raw_id.generation_time, "$"))
    return 0.0


def decode_document(raw: Mapping[str, Any], *, strict: bool = False) -> dict[str, Any]:
    """A stored (BSON-decoded) document as a Convex document: ``_id`` and ``_creationTime``
    first, then the user fields in stored order, ``_rx`` dropped."""
    raw_id = raw.get(ID_FIELD)
    doc: dict[str, Any] = {
        ID_FIELD: decode_document_id(raw_id),
        CREATION_TIME_FIELD: _creation_time(raw.get(CREATION_TIME_FIELD), raw_id),
    }
    for key, item in raw.items():
        if key in (ID_FIELD, CREATION_TIME_FIELD, RX_FIELD):
            continue
        doc[str(key)] = from_bson(item, strict=strict, path=f"$.{key}")
    return doc


def reactor_ts(raw: Mapping[str, Any] | None) -> int | None:
    """The commit ts Reactor stamped on a stored document (``_rx.ts``), if any."""
    if not isinstance(raw, Mapping):
        return None
    rx = raw.get(RX_FIELD)
    if not isinstance(rx, Mapping):
        return None
    ts = rx.get("ts")
    if isinstance(ts, int) and not isinstance(ts, bool) and ts > 0:
        return int(ts)
    return None
