"""The byte encoding of Convex values must order exactly like the Convex total order."""

from __future__ import annotations

import collections
import copy
import enum
import functools
import math
import pickle
import struct
import types
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from schema.ordering import (
    UNDEFINED,
    compare_values,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
    key_prefix_end,
    key_successor,
    prefix_successor,
)
from schema.values import Int64

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1

# -- a reference order over Python values, written from CONVEX_SEMANTICS §4.1, not the encoding --


def _bits(x: float) -> int:
    return int.from_bytes(struct.pack(">d", x), "big")


def _float_key(x: float) -> tuple[int, int]:
    """IEEE 754 totalOrder: by signed magnitude, -0.0 before 0.0, NaNs outermost by payload."""
    bits = _bits(x)
    magnitude = bits & ((1 << 63) - 1)
    return (-magnitude, 0) if bits >> 63 else (magnitude, 1)


def _rank(v: Any) -> int:
    if v is UNDEFINED:
        return 0
    if v is None:
        return 1
    if isinstance(v, bool):
        return 4
    if isinstance(v, Int64):
        return 2
    if isinstance(v, (int, float)):
        return 3
    if isinstance(v, str):
        return 5
    if isinstance(v, bytes):
        return 6
    if isinstance(v, list):
        return 7
    assert isinstance(v, dict)
    return 8


def _cmp(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def _cmp_seq(xs: list[Any], ys: list[Any]) -> int:
    for x, y in zip(xs, ys, strict=False):
        order = reference_compare(x, y)
        if order:
            return order
    return _cmp(len(xs), len(ys))


def reference_compare(a: Any, b: Any) -> int:
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return _cmp(ra, rb)
    if ra in (0, 1):
        return 0
    if ra == 2 or ra == 4:
        return _cmp(a, b)
    if ra == 3:
        return _cmp(_float_key(float(a)), _float_key(float(b)))
    if ra == 5:
        return _cmp(a.encode("utf-8"), b.encode("utf-8"))
    if ra == 6:
        return _cmp(a, b)
    if ra == 7:
        return _cmp_seq(a, b)
    # Objects: (key, value) pairs in key order, compared pairwise; a missing field is absent.
    pa = sorted(((k.encode(), v) for k, v in a.items() if v is not UNDEFINED), key=lambda p: p[0])
    pb = sorted(((k.encode(), v) for k, v in b.items() if v is not UNDEFINED), key=lambda p: p[0])
    for (ka, va), (kb, vb) in zip(pa, pb, strict=False):
        order = _cmp(ka, kb) or reference_compare(va, vb)
        if order:
            return order
    return _cmp(len(pa), len(pb))


def same(a: Any, b: Any) -> bool:
    """Equal with the same Python types and float bits (so NaN, -0.0 and Int64 are checked)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return _bits(a) == _bits(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b) or a is b


def stored(v: Any) -> Any:
    """What decoding gives back: plain ints are float64, missing object fields are absent."""
    if type(v) is int:
        return float(v)
    if isinstance(v, list):
        return [stored(x) for x in v]
    if isinstance(v, dict):
        return {k: stored(x) for k, x in v.items() if x is not UNDEFINED}
    return v


# -- strategies ---------------------------------------------------------------------------------

_INT_EDGES = [0, 1, -1, 255, -255, 256, -256, 65535, -65535, 65536, -65536]
_INT_EDGES += [(1 << 32) - 1, -((1 << 32) - 1), 1 << 32, -(1 << 32), I64_MIN, I64_MAX, I64_MIN + 1]
int64s = st.one_of(st.integers(I64_MIN, I64_MAX), st.sampled_from(_INT_EDGES)).map(Int64)
floats = st.one_of(
    st.floats(),
    st.integers(0, (1 << 64) - 1).map(lambda b: struct.unpack(">d", b.to_bytes(8, "big"))[0]),
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, -math.nan, 5e-324, -5e-324]),
)
plain_ints = st.integers(-(1 << 53), 1 << 53)
texts = st.text(
    st.sampled_from("\x00\x01a\x7f\xff\u0800\U0001f600") | st.characters(codec="utf-8"),
    max_size=5,
)
binaries = st.binary(max_size=5) | st.lists(st.sampled_from([b"\x00", b"\xff", b"a"])).map(b"".join)
scalars = st.one_of(st.none(), st.booleans(), int64s, floats, plain_ints, texts, binaries)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4)


values = st.recursive(scalars, _containers, max_leaves=8)
# A few small values that collide often, so pairs share long prefixes and ties happen.
small_scalars = st.sampled_from(
    [None, False, True, Int64(0), Int64(-1), Int64(256), 0.0, -0.0, 1, 1.0, math.nan, "", "a"]
    + ["a\x00", "a\x00b", "ab", b"", b"\x00", b"\x00\xff", b"\xff"]
)
small_values = st.recursive(
    small_scalars,
    lambda c: (
        st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["", "a", "a\x00", "b"]), c)
    ),
    max_leaves=5,
)
key_values = st.one_of(st.just(UNDEFINED), values)
small_key_values = st.one_of(st.just(UNDEFINED), small_values)
keys = st.lists(key_values, max_size=4)
small_keys = st.lists(small_key_values, max_size=4)


def _cmp_tuples(xs: list[Any], ys: list[Any]) -> int:
    return _cmp_seq(xs, ys)


# -- the order ----------------------------------------------------------------------------------


class TestOrder:
    def test_type_order(self) -> None:
        chain = [
            UNDEFINED,
            None,
            Int64(I64_MIN),
            Int64(-1),
            Int64(0),
            Int64(I64_MAX),
            -math.nan,
            -math.inf,
            -1.0,
            -0.0,
            0.0,
            1,
            math.inf,
            math.nan,
            False,
            True,
            "",
            "\x00",
            "a",
            b"",
            b"\x00",
            [],
            [None],
            {},
        ]
        encoded = [encode_value(v) for v in chain]
        assert encoded == sorted(encoded)
        assert len(set(encoded)) == len(encoded)
        for a, b in zip(chain, chain[1:], strict=False):
            assert compare_values(a, b) == -1
            assert compare_values(b, a) == 1

    @pytest.mark.parametrize(
        "smaller, larger",
        [
            ([], [None]),
            ([None], [Int64(1)]),
            ([None], [1]),
            ([1], [1, 2]),
            ([], [[]]),
            (["a"], ["a", None]),
            (["a"], ["a\x00"]),
            ({}, {"a": None}),
            ({"a": 1}, {"a": 1, "b": 1}),
            ({"a": 1, "b": 1}, {"b": 1}),  # first keys differ: "a" < "b" wins over length
            ("a", "a\x00"),
            ("a\x00", "a\x01"),
            ("a\x01", "b"),
            ("z", "é"),
            (b"a", b"a\x00"),
            (b"a\x00", b"a\x00\x00"),
            (b"a\x00\xff", b"a\x01"),
            (Int64(I64_MAX), -math.inf),
            (math.inf, False),
        ],
    )
    def test_pairs(self, smaller: Any, larger: Any) -> None:
        assert encode_value(smaller) < encode_value(larger)
        assert compare_values(smaller, larger) == -1
        assert compare_values(larger, smaller) == 1

    def test_int64_tags_by_width(self) -> None:
        tags = {
            I64_MIN: 0x04,
            -(1 << 32): 0x04,
            -((1 << 32) - 1): 0x05,
            -65536: 0x05,
            -65535: 0x06,
            -256: 0x06,
            -255: 0x07,
            -1: 0x07,
            0: 0x08,
            1: 0x09,
            255: 0x09,
            256: 0x0A,
            65535: 0x0A,
            65536: 0x0B,
            (1 << 32) - 1: 0x0B,
            1 << 32: 0x0C,
            I64_MAX: 0x0C,
        }
        for number, tag in tags.items():
            assert encode_value(Int64(number))[0] == tag, number
        edges = sorted(set(_INT_EDGES))
        encoded = [encode_value(Int64(n)) for n in edges]
        assert encoded == sorted(encoded)

    def test_documented_layout(self) -> None:
        assert encode_value(UNDEFINED) == b"\x01"
        assert encode_value(None) == b"\x03"
        assert encode_value(Int64(0)) == b"\x08"
        assert encode_value(Int64(1)) == b"\x09\x01"
        assert encode_value(Int64(-1)) == b"\x07\xfe"
        assert encode_value(1.0) == b"\x0d" + struct.pack(">d", -1.0)
        assert encode_value(0.0) == b"\x0d\x80" + bytes(7)
        assert encode_value(-0.0) == b"\x0d\x7f" + b"\xff" * 7
        assert encode_value(False) == b"\x0e"
        assert encode_value(True) == b"\x0f"
        assert encode_value("a\x00b") == b"\x10a\x00\xffb\x00"
        assert encode_value(b"\x00") == b"\x11\x00\xff\x00"
        assert encode_value([None, "x"]) == b"\x12\x03\x10x\x00\x00"
        assert encode_value({"b": True, "a": None}) == b"\x15\x10a\x00\x03\x10b\x00\x0f\x00"

    def test_plain_int_is_float64_and_bool_is_not_a_number(self) -> None:
        assert encode_value(3) == encode_value(3.0)
        assert compare_values(3, 3.0) == 0
        assert compare_values(Int64(3), 3.0) == -1
        assert compare_values(True, 2.0) == 1
        assert compare_values(False, 0) == 1
        assert encode_value(True) != encode_value(1)

    @settings(max_examples=400, deadline=None)
    @given(values, values)
    def test_encoding_order_is_the_reference_order(self, a: Any, b: Any) -> None:
        expected = reference_compare(a, b)
        ea, eb = encode_value(a), encode_value(b)
        assert _cmp(ea, eb) == expected
        assert compare_values(a, b) == expected
        assert compare_values(b, a) == -expected

    @settings(max_examples=400, deadline=None)
    @given(small_values, small_values)
    def test_encoding_order_on_colliding_values(self, a: Any, b: Any) -> None:
        expected = reference_compare(a, b)
        assert _cmp(encode_value(a), encode_value(b)) == expected
        assert compare_values(a, b) == expected

    @settings(max_examples=200, deadline=None)
    @given(floats, floats)
    def test_float_fast_path(self, a: float, b: float) -> None:
        expected = reference_compare(a, b)
        assert compare_values(a, b) == expected
        if not (math.isnan(a) or math.isnan(b)) and a != b:
            assert expected == _cmp(a, b)

    @settings(max_examples=300, deadline=None)
    @given(small_keys, small_keys)
    def test_keys_compare_like_tuples(self, xs: list[Any], ys: list[Any]) -> None:
        assert _cmp(encode_key(xs), encode_key(ys)) == _cmp_tuples(xs, ys)

    @settings(max_examples=200, deadline=None)
    @given(keys, keys)
    def test_random_keys_compare_like_tuples(self, xs: list[Any], ys: list[Any]) -> None:
        assert _cmp(encode_key(xs), encode_key(ys)) == _cmp_tuples(xs, ys)


# -- decoding -----------------------------------------------------------------------------------


class TestDecode:
    @settings(max_examples=300, deadline=None)
    @given(keys)
    def test_round_trip(self, xs: list[Any]) -> None:
        decoded = decode_key(encode_key(xs))
        assert same(decoded, [stored(x) for x in xs])

    @settings(max_examples=200, deadline=None)
    @given(values)
    def test_round_trip_one_value(self, value: Any) -> None:
        assert same(decode_value(encode_value(value)), stored(value))

    def test_types_restored(self) -> None:
        decoded = decode_key(encode_key([Int64(5), 5, 5.0, b"5", "5", [Int64(-300)], {"x": 1}]))
        assert [type(v) for v in decoded] == [Int64, float, float, bytes, str, list, dict]
        assert type(decoded[5][0]) is Int64 and decoded[5][0] == -300
        assert decoded[6] == {"x": 1.0}

    def test_nan_bits_survive(self) -> None:
        nan = struct.unpack(">d", bytes.fromhex("fff8000000000123"))[0]
        (back,) = decode_key(encode_value(nan))
        assert _bits(back) == _bits(nan)

    @pytest.mark.parametrize(
        "data, message",
        [
            (b"\x02", "Unknown tag 0x02"),
            (b"\x16", "Unknown tag 0x16"),
            (b"\x10abc", "Unterminated"),
            (b"\x10a\x00\xffbc", "Unterminated"),
            (b"\x11\x00\xff", "Unterminated"),
            (b"\x0d\x00", "Truncated"),
            (b"\x0a\x01", "Truncated"),
            (b"\x12\x03", "Truncated"),
            (b"\x15\x10a\x00", "Truncated"),
            (b"\x15\x03\x03\x00", "not a string"),
            (b"\x10\xff\x00", "Invalid UTF-8"),
            (b"\x0c\xff\xff\xff\xff\xff\xff\xff\xff", "out of range"),
            (b"\x04\x00\x00\x00\x00\x00\x00\x00\x00", "out of range"),
        ],
    )
    def test_malformed(self, data: bytes, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            decode_key(data)

    def test_decode_value_wants_exactly_one(self) -> None:
        with pytest.raises(ValueError, match="Empty key"):
            decode_value(b"")
        with pytest.raises(ValueError, match="Trailing bytes"):
            decode_value(b"\x03\x03")
        assert decode_key(b"") == []


# -- successors and ranges ----------------------------------------------------------------------


class TestSuccessors:
    def test_prefix_successor_examples(self) -> None:
        assert prefix_successor(b"ab") == b"ac"
        assert prefix_successor(b"a\xff\xff") == b"b"
        assert prefix_successor(b"\xff\xff") is None
        assert prefix_successor(b"") is None

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=4), st.binary(max_size=4))
    def test_prefix_successor_is_the_least_upper_bound(self, prefix: bytes, other: bytes) -> None:
        successor = prefix_successor(prefix)
        extended = prefix + other
        if successor is None:
            assert prefix.strip(b"\xff") == b""
            # Every string from the prefix on starts with it (the prefix is all 0xFF).
            assert other < prefix or other.startswith(prefix)
            return
        assert extended < successor
        assert not successor.startswith(prefix)
        # Nothing below the successor but at or above the prefix escapes the prefix.
        if prefix <= other < successor:
            assert other.startswith(prefix)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=4), st.binary(max_size=5))
    def test_key_successor_is_immediate(self, key: bytes, other: bytes) -> None:
        successor = key_successor(key)
        assert key < successor
        assert not key < other < successor

    @settings(max_examples=300, deadline=None)
    @given(small_keys, small_keys, small_keys)
    def test_key_prefix_end_bounds_exactly_the_extensions(
        self, prefix: list[Any], rest: list[Any], other: list[Any]
    ) -> None:
        start = encode_key(prefix)
        end = key_prefix_end(start)
        assert start <= encode_key(prefix + rest) < end
        inside = start <= encode_key(other) < end
        is_extension = len(other) >= len(prefix) and (
            _cmp_tuples(other[: len(prefix)], prefix) == 0
        )
        assert inside == is_extension

    def test_prefix_successor_is_not_a_value_prefix_range(self) -> None:
        # The documented trap: byte-prefix ranges of an encoded string also hold "a\x00...".
        start = encode_value("a")
        longer = encode_key(["a\x00", Int64(1)])
        assert start <= longer < prefix_successor(start)  # type: ignore[operator]
        assert not start <= longer < key_prefix_end(start)
        assert start <= encode_key(["a", Int64(1)]) < key_prefix_end(start)


# -- values accepted ----------------------------------------------------------------------------


class TestValues:
    def test_undefined_is_a_falsy_singleton(self) -> None:
        assert repr(UNDEFINED) == "UNDEFINED"
        assert not UNDEFINED
        assert copy.copy(UNDEFINED) is UNDEFINED
        assert copy.deepcopy([UNDEFINED])[0] is UNDEFINED
        assert pickle.loads(pickle.dumps(UNDEFINED)) is UNDEFINED

    def test_undefined_fields_are_absent(self) -> None:
        assert encode_value({"a": UNDEFINED, "b": 1}) == encode_value({"b": 1})
        assert compare_values({"a": UNDEFINED}, {}) == 0

    def test_look_alike_types(self) -> None:
        class Text(str):
            pass

        class Number(float):
            pass

        assert encode_value(Text("hi")) == encode_value("hi")
        assert encode_value(Number(2.5)) == encode_value(2.5)
        assert encode_value(bytearray(b"\x00a")) == encode_value(b"\x00a")
        assert encode_value(memoryview(b"xy")) == encode_value(b"xy")
        assert encode_value((1, "a")) == encode_value([1, "a"])
        assert encode_value({Text("k"): 1}) == encode_value({"k": 1})
        assert compare_values(bytearray(b"a"), b"b") == -1
        assert compare_values((1,), [1.0]) == 0
        assert compare_values(Text("b"), "a") == 1

    def test_subclasses_of_numbers_and_containers(self) -> None:
        class Big(Int64):
            pass

        class Level(enum.IntEnum):
            HIGH = 3

        class Items(list):  # type: ignore[type-arg]
            pass

        ordered = collections.OrderedDict([("b", 1), ("a", 2)])
        assert encode_value(Big(5)) == encode_value(Int64(5))
        assert encode_value(Level.HIGH) == encode_value(3.0)
        assert encode_value(Items([1])) == encode_value([1])
        assert encode_value(ordered) == encode_value({"a": 2, "b": 1})
        assert encode_value(types.MappingProxyType({"a": 1})) == encode_value({"a": 1})
        assert compare_values(Big(5), Int64(6)) == -1
        assert compare_values(Level.HIGH, 3.0) == 0
        assert compare_values(memoryview(b"a"), b"a") == 0
        assert compare_values(Items([1]), [Int64(1)]) == 1
        assert compare_values(types.MappingProxyType({"a": 1}), ordered) == -1

    @pytest.mark.parametrize("bad", [{1, 2}, object(), 1j, [object()]])
    def test_non_values_are_rejected(self, bad: Any) -> None:
        with pytest.raises(TypeError, match="is not a Convex value"):
            encode_value(bad)

    def test_lone_surrogates_are_rejected(self) -> None:
        with pytest.raises(ValueError, match="surrogates not allowed"):
            encode_value("\ud800")

    def test_non_string_keys_are_rejected(self) -> None:
        with pytest.raises(TypeError, match="Object keys must be strings"):
            encode_value({1: "x"})
        with pytest.raises(TypeError, match="Object keys must be strings, got int"):
            encode_value({"a": 1, 2: "x"})
        with pytest.raises(TypeError, match="is not a Convex value"):
            compare_values(object(), object())

    def test_sorting_with_compare_values(self) -> None:
        mixed = [{"a": 1}, [2], b"x", "x", True, 1.5, Int64(7), None, UNDEFINED, -0.0, 0.0]
        ordered = sorted(mixed, key=functools.cmp_to_key(compare_values))
        assert ordered == sorted(mixed, key=encode_value)
        assert [_rank(v) for v in ordered] == sorted(_rank(v) for v in mixed)
