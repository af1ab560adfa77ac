"""The total order of Convex values and its order-preserving byte encoding.

Owns ``UNDEFINED`` (a missing field), the tag scheme of CONVEX_SEMANTICS §4.1 (memcmp of two
encodings equals the Convex order undefined < null < int64 < float64 < boolean < string < bytes
< array < object), its exact inverse, and byte-string successors for building key ranges. It does
not own index layout (which fields make a key) or intervals over keys (``reactor.core.intervals``).

Layout, one tag byte then a payload:

=========  ==================================================================================
``0x01``   undefined
``0x03``   null
``0x04``   int64 <= -2**32 (8-byte one's-complement payload); ``0x05``/``0x06``/``0x07``: 4/2/1
           bytes for smaller magnitudes; ``0x08`` zero (no payload); ``0x09``/``0x0A``/``0x0B``/
           ``0x0C``: positive, 1/2/4/8 big-endian bytes. Wider magnitude means a tag further
           from ``0x08``, so tags alone order values of different widths.
``0x0D``   float64, 8 bytes: IEEE bits with all bits flipped when negative, else the sign bit set
           (-NaN < -inf < ... < -0.0 < 0.0 < ... < inf < NaN; NaNs by bit pattern)
``0x0E``   false; ``0x0F`` true
``0x10``   string: UTF-8, ``0x00`` escaped as ``0x00 0xFF``, then a ``0x00`` terminator
``0x11``   bytes, escaped and terminated like strings
``0x12``   array: each element's encoding, then ``0x00``
``0x15``   object: for each field in key order, the key encoded as a string then its value;
           then ``0x00``. Fields holding ``UNDEFINED`` are absent, as in Convex.
=========  ==================================================================================

Every tag is in ``0x01..0x15``, so the ``0x00`` that ends an array or object sorts a shorter
container first, and a string terminator (``0x00``) followed by any tag sorts before the escape
``0x00 0xFF``. The encoding is *not* prefix-free at the byte level: ``encode_value("a")`` is a
proper prefix of ``encode_value("a\\x00")``. Concatenations still compare like tuples, but the
keys whose leading values are exactly ``P`` span ``[P, key_prefix_end(P))``, **not**
``[P, prefix_successor(P))`` (the latter also holds the keys of ``"a\\x00..."``).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from schema.values import Int64

__all__ = [
    "UNDEFINED",
    "Order",
    "compare_values",
    "decode_key",
    "decode_value",
    "encode_key",
    "encode_value",
    "key_prefix_end",
    "key_successor",
    "prefix_successor",
]


class Order(enum.Enum):
    """The direction of an index scan: ascending or descending key order."""

    ASC = "asc"
    DESC = "desc"


class _Undefined:
    """The one value of a missing field; falsy, and a singleton across copy and pickle."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        # A string makes copy/deepcopy return the object itself and pickle store a reference
        # to this module's global, so ``x is UNDEFINED`` survives both.
        return "UNDEFINED"


UNDEFINED: Any = _Undefined()

_UNDEFINED_TYPE = _Undefined
_NONE_TYPE = type(None)

_TAG_UNDEFINED = 0x01
_TAG_NULL = 0x03
_TAG_INT_ZERO = 0x08
_TAG_FLOAT = 0x0D
_TAG_FALSE = 0x0E
_TAG_TRUE = 0x0F
_TAG_STRING = 0x10
_TAG_BYTES = 0x11
_TAG_ARRAY = 0x12
_TAG_OBJECT = 0x15

_ENC_UNDEFINED = b"\x01"
_ENC_NULL = b"\x03"
_ENC_ZERO = b"\x08"
_ENC_FALSE = b"\x0e"
_ENC_TRUE = b"\x0f"

_SIGN = 1 << 63
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_ALL_BITS = (1 << 64) - 1

_pack_d = struct.Struct(">d").pack
_unpack_d = struct.Struct(">d").unpack_from
_unpack_q = struct.Struct(">Q").unpack
_unpack_q_from = struct.Struct(">Q").unpack_from
_pack_bq = struct.Struct(">BQ").pack
_pack_bi = struct.Struct(">BI").pack
_pack_bh = struct.Struct(">BH").pack
_pack_bd = struct.Struct(">Bd").pack
_FLIP = bytes(range(255, -1, -1))  # bytes.translate table that inverts every bit
_TAG_FLOAT_FLIPPED = 0xFF ^ 0x0D


def _float_bits(value: float) -> int:
    """The float's bits as an unsigned integer whose order is the float total order."""
    bits: int = _unpack_q(_pack_d(value))[0]
    return bits ^ _ALL_BITS if bits & _SIGN else bits | _SIGN


def _encode_int64(value: int) -> bytes:
    if value > 0:
        if value < 0x100:
            return bytes((0x09, value))
        if value < 0x10000:
            return _pack_bh(0x0A, value)
        if value < 0x100000000:
            return _pack_bi(0x0B, value)
        return _pack_bq(0x0C, value)
    if value == 0:
        return _ENC_ZERO
    # One's complement of the magnitude in the narrowest width: larger magnitudes get smaller
    # payloads, and widths are ordered by tag.
    magnitude = -value
    if magnitude < 0x100:
        return bytes((0x07, 0xFF - magnitude))
    if magnitude < 0x10000:
        return _pack_bh(0x06, 0xFFFF - magnitude)
    if magnitude < 0x100000000:
        return _pack_bi(0x05, 0xFFFFFFFF - magnitude)
    return _pack_bq(0x04, _ALL_BITS - magnitude)


def encode_value(value: Any, /) -> bytes:
    """Encode one Convex value so that bytes order equals the Convex total order.

    A plain ``int`` is a float64 (``Int64`` is int64); ``bool`` is a boolean, not a number;
    ``tuple`` is an array and any ``Mapping`` an object.

    Raises:
        TypeError: the value (or a nested one) is not a Convex value, or an object key is not
            a string.
        ValueError: a string holds a lone surrogate (``UnicodeEncodeError``).
        OverflowError: a plain ``int`` too large for a float64.
    """
    kind = type(value)
    if kind is str:
        # One-character ``in`` is a memchr; ``b"\x00" in data`` would be several times slower.
        if "\x00" in value:
            return b"\x10%b\x00" % value.encode().replace(b"\x00", b"\x00\xff")
        return b"\x10%b\x00" % value.encode()
    if kind is float:
        # Positive: negating sets exactly the sign bit. Negative: flip every bit, the tag packed
        # pre-flipped. Zeros and NaNs (sign not visible to ``<``/``>``) go through the bits.
        if value > 0.0:
            return _pack_bd(_TAG_FLOAT, -value)
        if value < 0.0:
            return _pack_bd(_TAG_FLOAT_FLIPPED, value).translate(_FLIP)
        return _pack_bq(_TAG_FLOAT, _float_bits(value))
    if kind is Int64:
        return _encode_int64(value)
    if kind is int:
        return encode_value(float(value))
    if value is None:
        return _ENC_NULL
    if kind is bool:
        return _ENC_TRUE if value else _ENC_FALSE
    if value is UNDEFINED:
        return _ENC_UNDEFINED
    if kind is bytes:
        if 0 in value:
            value = value.replace(b"\x00", b"\x00\xff")
        return b"\x11%b\x00" % value
    if kind is list or kind is tuple:
        return b"\x12%b\x00" % b"".join([encode_value(item) for item in value])
    if kind is dict:
        return _encode_object(value)
    return _encode_other(value)


def _encode_object(value: Mapping[Any, Any]) -> bytes:
    parts = [b"\x15"]
    try:
        keys = sorted(value)  # str order is code point order, which is UTF-8 byte order
    except TypeError:
        keys = list(value)  # mixed key types: the loop reports the first non-string
    for key in keys:
        if type(key) is not str and not isinstance(key, str):
            raise TypeError(f"Object keys must be strings, got {type(key).__name__}")
        item = value[key]
        if item is UNDEFINED:
            continue
        parts.append(encode_value(str(key)))
        parts.append(encode_value(item))
    parts.append(b"\x00")
    return b"".join(parts)


def _encode_other(value: Any) -> bytes:
    """Subclasses and look-alikes of the exact types ``encode_value`` handles inline."""
    if isinstance(value, Int64):
        return _encode_int64(value)
    if isinstance(value, (int, float)):
        return encode_value(float(value))
    if isinstance(value, str):
        return encode_value(str(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return encode_value(bytes(value))
    if isinstance(value, (list, tuple)):
        return encode_value(list(value))
    if isinstance(value, Mapping):
        return _encode_object(value)
    raise TypeError(f"{type(value).__name__} is not a Convex value")


def encode_key(values: Sequence[Any], /) -> bytes:
    """Encode a tuple of values; the results compare like the tuples (shorter prefix first)."""
    return b"".join([encode_value(value) for value in values])


# -- decoding ---------------------------------------------------------------------------------


def _decode_escaped(data: bytes, pos: int) -> tuple[bytes, int]:
    """The unescaped payload of a string/bytes starting at ``pos`` and the index after it."""
    find = data.find
    end = find(b"\x00", pos)
    if end < 0:
        raise ValueError(f"Unterminated string or bytes at offset {pos - 1}")
    if end + 1 >= len(data) or data[end + 1] != 0xFF:
        return data[pos:end], end + 1
    parts = []
    while True:
        if end < 0:
            raise ValueError(f"Unterminated string or bytes at offset {pos - 1}")
        if end + 1 < len(data) and data[end + 1] == 0xFF:
            parts.append(data[pos : end + 1])
            pos = end + 2
            end = find(b"\x00", pos)
            continue
        parts.append(data[pos:end])
        return b"".join(parts), end + 1


def _need(data: bytes, pos: int, size: int) -> None:
    if pos + size > len(data):
        raise ValueError(f"Truncated key: need {size} bytes at offset {pos}")


def _decode_one(data: bytes, pos: int) -> tuple[Any, int]:
    tag = data[pos]
    pos += 1
    if tag == _TAG_STRING:
        raw, pos = _decode_escaped(data, pos)
        try:
            return raw.decode(), pos
        except UnicodeDecodeError as exc:
            raise ValueError(f"Invalid UTF-8 in string ending at offset {pos}") from exc
    if tag == _TAG_FLOAT:
        _need(data, pos, 8)
        bits = _unpack_q_from(data, pos)[0]
        bits = bits ^ _SIGN if bits & _SIGN else bits ^ _ALL_BITS
        return _unpack_d(bits.to_bytes(8, "big"))[0], pos + 8
    if 0x04 <= tag <= 0x0C:
        if tag == _TAG_INT_ZERO:
            return Int64(0), pos
        width = 1 << (tag - 0x09 if tag > _TAG_INT_ZERO else 0x07 - tag)
        _need(data, pos, width)
        payload = int.from_bytes(data[pos : pos + width], "big")
        if tag < _TAG_INT_ZERO:
            payload = payload + 1 - (1 << (8 * width))
        if not _I64_MIN <= payload <= _I64_MAX:
            raise ValueError(f"Int64 out of range at offset {pos - 1}")
        return Int64(payload), pos + width
    if tag == _TAG_NULL:
        return None, pos
    if tag == _TAG_UNDEFINED:
        return UNDEFINED, pos
    if tag == _TAG_FALSE:
        return False, pos
    if tag == _TAG_TRUE:
        return True, pos
    if tag == _TAG_BYTES:
        return _decode_escaped(data, pos)
    if tag == _TAG_ARRAY:
        items: list[Any] = []
        while True:
            _need(data, pos, 1)
            if data[pos] == 0:
                return items, pos + 1
            item, pos = _decode_one(data, pos)
            items.append(item)
    if tag == _TAG_OBJECT:
        obj: dict[str, Any] = {}
        while True:
            _need(data, pos, 1)
            if data[pos] == 0:
                return obj, pos + 1
            if data[pos] != _TAG_STRING:
                raise ValueError(f"Object key at offset {pos} is not a string")
            key, pos = _decode_one(data, pos)
            _need(data, pos, 1)
            obj[key], pos = _decode_one(data, pos)
    raise ValueError(f"Unknown tag 0x{tag:02x} at offset {pos - 1}")


def decode_key(data: bytes, /) -> list[Any]:
    """Decode a concatenation of encoded values (the inverse of ``encode_key``).

    Int64 comes back as ``Int64``, float64 as ``float`` (a plain ``int`` does not survive
    encoding as one), arrays as ``list`` and objects as ``dict``.

    Raises:
        ValueError: the bytes are not a concatenation of valid encodings.
    """
    values = []
    pos = 0
    size = len(data)
    while pos < size:
        value, pos = _decode_one(data, pos)
        values.append(value)
    return values


def decode_value(data: bytes, /) -> Any:
    """Decode exactly one encoded value (the inverse of ``encode_value``).

    Raises:
        ValueError: the bytes are not exactly one valid encoding.
    """
    if not data:
        raise ValueError("Empty key holds no value")
    value, pos = _decode_one(data, 0)
    if pos != len(data):
        raise ValueError(f"Trailing bytes after the value at offset {pos}")
    return value


# -- comparison -------------------------------------------------------------------------------

_RANKS: dict[type, int] = {
    _UNDEFINED_TYPE: 0,
    _NONE_TYPE: 1,
    Int64: 2,
    int: 3,
    float: 3,
    bool: 4,
    str: 5,
    bytes: 6,
    list: 7,
    tuple: 7,
    dict: 8,
}


def _rank(value: Any) -> int:
    rank = _RANKS.get(type(value))
    if rank is not None:
        return rank
    # ``bool`` cannot be subclassed, so every remaining value is a subclass or a look-alike.
    if isinstance(value, Int64):
        return 2
    if isinstance(value, (int, float)):
        return 3
    if isinstance(value, str):
        return 5
    if isinstance(value, (bytes, bytearray, memoryview)):
        return 6
    if isinstance(value, (list, tuple)):
        return 7
    if isinstance(value, Mapping):
        return 8
    raise TypeError(f"{type(value).__name__} is not a Convex value")


def compare_values(a: Any, b: Any, /) -> int:
    """Compare two values in the Convex total order: -1, 0 or 1.

    Agrees with comparing ``encode_value(a)`` and ``encode_value(b)``; same-type scalars take a
    fast path that encodes nothing.

    Raises:
        TypeError: either argument is not a Convex value.
    """
    kind = type(a)
    if kind is type(b):
        if kind is str or kind is Int64 or kind is bytes or kind is bool:
            order: int = (a > b) - (a < b)
            return order
        if kind is float:
            if a < b:
                return -1
            if a > b:
                return 1
            # Equal (maybe 0.0 vs -0.0) or unordered (NaN): the bit order decides.
            x, y = _float_bits(a), _float_bits(b)
            return (x > y) - (x < y)
    rank_a, rank_b = _rank(a), _rank(b)
    if rank_a != rank_b:
        return -1 if rank_a < rank_b else 1
    if rank_a <= 1:
        return 0
    if rank_a == 3:
        x, y = _float_bits(float(a)), _float_bits(float(b))
        return (x > y) - (x < y)
    ea, eb = encode_value(a), encode_value(b)
    return (ea > eb) - (ea < eb)


# -- successors -------------------------------------------------------------------------------


def prefix_successor(prefix: bytes, /) -> bytes | None:
    """The smallest byte string greater than every byte string that starts with ``prefix``.

    ``None`` when there is none (``prefix`` is empty or all ``0xFF``). Beware: for a prefix made
    of whole encoded values use ``key_prefix_end`` (see the module docstring).
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


def key_prefix_end(prefix: bytes, /) -> bytes:
    """The exclusive end of the keys whose leading values are exactly those encoded in ``prefix``.

    ``prefix`` must be a concatenation of whole encodings (``encode_key`` output). Every key
    that continues it adds a tag byte ``<= 0x15``, while keys whose last string or bytes merely
    continue past an escaped ``0x00`` add ``0xFF``; so ``prefix + b"\\xff"`` separates them.
    It is also the right exclusive *start* for "greater than these values".
    """
    return prefix + b"\xff"


def key_successor(key: bytes, /) -> bytes:
    """The immediate successor of ``key``: ``[key, key_successor(key))`` holds ``key`` alone."""
    return key + b"\x00"
