"""Convex values and documents survive a real BSON encode/decode exactly; foreign BSON reads."""

from __future__ import annotations

import datetime
import math
import struct
import uuid

import bson
import pytest
from bson.binary import Binary
from bson.code import Code
from bson.decimal128 import Decimal128
from bson.int64 import Int64 as BsonInt64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp
from hypothesis import given, settings, strategies as st

from reactor.storage.mongo.bson_values import (
    decode_document,
    decode_document_id,
    encode_document,
    from_bson,
    reactor_ts,
    to_bson,
)
from schema.errors import ValidationError
from schema.ordering import encode_value
from schema.values import Int64, Value


def same(a: Value, b: Value) -> bool:
    """Equal as Convex values: same types (Int64 vs float), float bits, key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def through_bson(value: Value) -> Value:
    """Encode as a stored field, decode with PyMongo's defaults, read back."""
    return from_bson(bson.decode(bson.encode({"v": to_bson(value)}))["v"], strict=True)


field_names = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=8
).filter(lambda s: not s.startswith("$"))
nan_bits = st.integers(0, (1 << 52) - 1).map(
    lambda m: struct.unpack("<d", struct.pack("<Q", 0x7FF0_0000_0000_0001 | m))[0]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    nan_bits,
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, float(2**53), 1e308]),
    st.integers(-(1 << 63), (1 << 63) - 1).map(Int64),
    st.sampled_from([Int64(0), Int64(-(1 << 63)), Int64((1 << 63) - 1), Int64(1 << 31)]),
    st.text(max_size=12),
    st.binary(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(field_names, inner, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_values_round_trip_exactly(value: Value) -> None:
    back = through_bson(value)
    assert same(back, value), (value, back)
    assert encode_value(back) == encode_value(value)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(field_names.filter(lambda s: not s.startswith("_")), values, max_size=5),
    st.floats(0, 1e13),
    st.integers(1, (1 << 63) - 1),
)
def test_documents_round_trip_and_carry_the_commit_ts(
    fields: dict[str, Value], creation: float, ts: int
) -> None:
    doc = {"_id": "k57abc", "_creationTime": creation, **fields}
    stored = bson.decode(bson.encode(encode_document(doc, ts=ts)))
    assert reactor_ts(stored) == ts
    assert type(stored["_rx"]["ts"]) is BsonInt64
    assert same(decode_document(stored, strict=True), doc)


def test_int64_and_float_stay_distinct_in_bson() -> None:
    stored = bson.decode(bson.encode({"i": to_bson(Int64(5)), "f": to_bson(5.0), "p": to_bson(5)}))
    assert type(stored["i"]) is BsonInt64
    assert type(stored["f"]) is float
    assert type(stored["p"]) is float  # a plain int is a float64
    assert type(from_bson(stored["i"])) is Int64


def test_bytes_are_binary_subtype_zero() -> None:
    raw = bson.encode({"b": to_bson(b"\x00\xff")})
    # element: type 0x05, "b\0", int32 length 2, subtype 0x00, payload
    assert b"\x05b\x00\x02\x00\x00\x00\x00\x00\xff" in raw
    assert bson.decode(raw)["b"] == b"\x00\xff"


def test_encode_rejects_non_convex_values_and_reserved_rx() -> None:
    with pytest.raises(ValidationError):
        to_bson({"a": {1, 2}})
    with pytest.raises(ValidationError):
        encode_document({"_id": "x", "_creationTime": 1.0, "_rx": 1})


def test_documents_without_rx_have_no_reactor_ts() -> None:
    assert reactor_ts({"_id": "x"}) is None
    assert reactor_ts({"_id": "x", "_rx": {"ts": True}}) is None
    assert reactor_ts(None) is None


def test_foreign_bson_reads_leniently() -> None:
    oid = ObjectId("65a1b2c3d4e5f60718293a4b")
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, 678000)
    raw = bson.decode(
        bson.encode(
            {
                "_id": oid,
                "n32": 7,
                "n64": BsonInt64(1 << 40),
                "uuid": Binary(uuid.UUID(int=1).bytes, 4),
                "oid": oid,
                "when": when,
                "dec": Decimal128("1.5"),
                "ts": Timestamp(3, 4),
                "re": Regex("^a", "i"),
                "code": Code("f()"),
                "lo": MinKey(),
                "hi": MaxKey(),
                "_rx": {"ts": BsonInt64(9)},
            }
        )
    )
    doc = decode_document(raw)
    assert doc["_id"] == "65a1b2c3d4e5f60718293a4b"
    assert doc["_creationTime"] == float(int(oid.generation_time.timestamp()) * 1000)
    assert same(doc["n32"], 7.0)
    assert same(doc["n64"], Int64(1 << 40))
    assert doc["uuid"] == uuid.UUID(int=1).bytes
    assert doc["oid"] == str(oid)
    assert doc["when"] == when.replace(tzinfo=datetime.UTC).timestamp() * 1000
    assert doc["dec"] == 1.5
    assert same(doc["ts"], Int64((3 << 32) | 4))
    assert doc["re"] == "^a" and doc["code"] == "f()" and type(doc["code"]) is str
    assert doc["lo"] is None and doc["hi"] is None
    assert "_rx" not in doc
    with pytest.raises(ValidationError):
        decode_document(raw, strict=True)


def test_non_string_ids_and_missing_creation_time() -> None:
    assert decode_document_id("k1") == "k1"
    assert decode_document_id(7) == "7.0"
    assert decode_document_id(BsonInt64(7)) == '{"$integer":"BwAAAAAAAAA="}'
    assert decode_document({"_id": "k1", "a": 1})["_creationTime"] == 0.0
    assert decode_document({"_id": "k1", "_creationTime": BsonInt64(12)})["_creationTime"] == 12.0
    assert list(decode_document({"b": 1, "_id": "k", "a": 2})) == ["_id", "_creationTime", "b", "a"]
