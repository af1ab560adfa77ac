"""The Convex value model in Python and its JSON wire encodings.

Owns: ``Int64``, the mapping of Python objects to Convex values, the "convex encoded JSON" wire
form (``$integer``, ``$bytes``, ``$float``), the "clean JSON" export form, and the structural
limits every stored value obeys. It does not own ordering of values (``reactor.core.index_keys``) or
validators (``schema.validators``).
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Mapping
from typing import Any, TypeAlias

import msgspec

from schema.errors import ValidationError

__all__ = [
    "MAX_ARRAY_LEN",
    "MAX_DOCUMENT_SIZE",
    "MAX_FIELDS",
    "MAX_NESTING",
    "Int64",
    "JsonValue",
    "Value",
    "check_field_name",
    "check_value",
    "convex_to_json",
    "dumps",
    "json_to_convex",
    "loads",
    "to_clean_json",
    "type_name",
    "value_size",
]

MAX_DOCUMENT_SIZE = 1 << 20
MAX_NESTING = 16
MAX_ARRAY_LEN = 8192
MAX_FIELDS = 1024
MAX_NESTED_KEY_LEN = 1024
MAX_TOP_LEVEL_KEY_LEN = 64

_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_F53 = 1 << 53


class Int64(int):
    """A Convex int64 (JS ``bigint``). Plain Python ``int`` values travel as float64."""

    __slots__ = ()

    def __new__(cls, value: int = 0) -> Int64:
        number = int.__new__(cls, value)
        if not _I64_MIN <= number <= _I64_MAX:
            raise ValidationError(f"Int64 out of range: {int(number)}")
        return number

    def __repr__(self) -> str:
        return f"Int64({int(self)})"


Value: TypeAlias = Any  # None | bool | float | Int64 | str | bytes | list[Value] | dict[str, Value]
JsonValue: TypeAlias = Any


def type_name(value: Value) -> str:
    """The Convex name of a Python value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Int64):
        return "bigint"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str, path: str) -> bytes:
    if not isinstance(text, str):
        raise ValidationError(f"{what} must hold a base64 string", path=path)
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"{what} holds invalid base64", path=path) from exc


def _int_as_float(value: int, path: str) -> float:
    if not -_F53 <= value <= _F53:
        raise ValidationError(
            f"Integer {value} is outside the safe float64 range; use Int64 for int64 values",
            path=path,
        )
    return float(value)


class _Slow(Exception):
    """Raised by the fast converters where only the general one can answer (or name the path of
    an error): the caller starts over with it."""


def _to_json_fast(value: Value) -> JsonValue:
    """``convex_to_json`` for the exact common types, without building error paths."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is float:
        if value - value == 0.0 and (value != 0.0 or math.copysign(1.0, value) > 0):
            return value
        return {"$float": _b64(struct.pack("<d", value))}
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _Slow
            item_kind = type(item)
            if item_kind is str or (
                item_kind is float
                and item - item == 0.0
                and (item != 0.0 or math.copysign(1.0, item) > 0)
            ):
                out[key] = item
            else:
                out[key] = _to_json_fast(item)
        return out
    if kind is list:
        return [_to_json_fast(item) for item in value]
    if kind is Int64:
        return {"$integer": _b64(struct.pack("<q", value))}
    if kind is int and -_F53 <= value <= _F53:
        return float(value)
    if kind is bytes:
        return {"$bytes": _b64(value)}
    raise _Slow


def convex_to_json(value: Value, path: str = "$") -> JsonValue:
    """Encode a Python Convex value as convex encoded JSON (a JSON-able Python object).

    Plain ``int`` becomes a float (as the official clients do); floats that JSON cannot carry
    (NaN, ±Infinity, -0.0) become ``{"$float": ...}``.
    """
    try:
        return _to_json_fast(value)
    except _Slow:
        return _convex_to_json(value, path)


def _convex_to_json(value: Value, path: str) -> JsonValue:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Int64):
        return {"$integer": _b64(struct.pack("<q", value))}
    if isinstance(value, int):
        return _int_as_float(value, path)
    if isinstance(value, float):
        if math.isfinite(value) and not (value == 0.0 and math.copysign(1.0, value) < 0):
            return value
        return {"$float": _b64(struct.pack("<d", value))}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": _b64(bytes(value))}
    if isinstance(value, (list, tuple)):
        return [_convex_to_json(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(
                    f"Object keys must be strings, got {type_name(key)}", path=path
                )
            out[key] = _convex_to_json(item, f"{path}.{key}")
        return out
    raise ValidationError(f"{type(value).__name__} is not a supported Convex value", path=path)


def _from_json_fast(obj: JsonValue) -> Value:
    """``json_to_convex`` for the exact JSON types, without building error paths."""
    kind = type(obj)
    if kind is str or kind is float or kind is bool or obj is None:
        return obj
    if kind is dict:
        out = {}
        for key, item in obj.items():
            if key.startswith("$"):
                if len(obj) != 1:
                    raise _Slow
                try:
                    return _decode_special(key, item, "$")
                except ValidationError:
                    raise _Slow from None
            item_kind = type(item)
            out[key] = item if item_kind is str or item_kind is float else _from_json_fast(item)
        return out
    if kind is list:
        return [_from_json_fast(item) for item in obj]
    if kind is int:
        return float(obj)
    raise _Slow


def json_to_convex(obj: JsonValue, path: str = "$") -> Value:
    """Decode convex encoded JSON into Python values; rejects malformed ``$`` objects."""
    try:
        return _from_json_fast(obj)
    except _Slow:
        return _json_to_convex(obj, path)


def _json_to_convex(obj: JsonValue, path: str) -> Value:
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)):
        return float(obj)
    if isinstance(obj, list):
        return [_json_to_convex(item, f"{path}[{i}]") for i, item in enumerate(obj)]
    if isinstance(obj, dict):
        if len(obj) == 1:
            (key,) = obj
            if key.startswith("$"):
                return _decode_special(key, obj[key], path)
        out = {}
        for key, item in obj.items():
            if key.startswith("$"):
                raise ValidationError(f"Field name {key!r} starts with '$'", path=path)
            out[key] = _json_to_convex(item, f"{path}.{key}")
        return out
    raise ValidationError(f"Unsupported JSON value of type {type(obj).__name__}", path=path)


def _decode_special(key: str, payload: Any, path: str) -> Value:
    if key == "$integer":
        raw = _unb64(payload, "$integer", path)
        if len(raw) != 8:
            raise ValidationError("$integer must hold exactly 8 bytes", path=path)
        return Int64(struct.unpack("<q", raw)[0])
    if key == "$float":
        raw = _unb64(payload, "$float", path)
        if len(raw) != 8:
            raise ValidationError("$float must hold exactly 8 bytes", path=path)
        number: float = struct.unpack("<d", raw)[0]
        if math.isfinite(number) and not (number == 0.0 and math.copysign(1.0, number) < 0):
            raise ValidationError(
                f"Float {number} should be encoded as a number, not as $float", path=path
            )
        return number
    if key == "$bytes":
        return _unb64(payload, "$bytes", path)
    raise ValidationError(f"Field name {key!r} starts with '$'", path=path)


def to_clean_json(value: Value) -> JsonValue:
    """Export a value as "clean JSON": int64 as decimal strings, bytes as base64 strings."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Int64):
        return str(int(value))
    if isinstance(value, (int, float)):
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return number
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _b64(bytes(value))
    if isinstance(value, (list, tuple)):
        return [to_clean_json(item) for item in value]
    if isinstance(value, Mapping):
        return {key: to_clean_json(item) for key, item in value.items()}
    raise ValidationError(f"{type(value).__name__} is not a supported Convex value")


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def dumps(value: Value) -> bytes:
    """Serialise a Convex value as encoded JSON bytes (floats always with a decimal point)."""
    return _encoder.encode(convex_to_json(value))


def loads(data: bytes | str) -> Value:
    """Parse encoded JSON bytes back into a Convex value."""
    return json_to_convex(_decoder.decode(data))


def check_field_name(name: Any, path: str, *, top_level: bool) -> None:
    """Reject field names Convex rejects: non-strings, ``$`` prefixes, non-printable ASCII."""
    if not isinstance(name, str):
        raise ValidationError(f"Field names must be strings, got {type_name(name)}", path=path)
    limit = MAX_TOP_LEVEL_KEY_LEN if top_level else MAX_NESTED_KEY_LEN
    if name.startswith("$"):
        raise ValidationError(f"Field name {name!r} starts with '$', which is reserved", path=path)
    if len(name) > limit:
        raise ValidationError(f"Field name {name[:20]!r}... is longer than {limit}", path=path)
    # Printable ASCII is exactly 32..126: ``isprintable`` rejects the controls and DEL.
    if not (name.isascii() and name.isprintable()):
        raise ValidationError(
            f"Field name {name!r} must contain only printable ASCII characters", path=path
        )


def _check_fast(value: Value, depth: int) -> None:
    """``check_value`` for the exact common types; raises ``_Slow`` on anything it cannot
    pass (the general check then names the problem and its path)."""
    if depth > MAX_NESTING:
        raise _Slow
    kind = type(value)
    if kind is str or kind is float or kind is bool or value is None:
        return
    if kind is dict:
        if len(value) > MAX_FIELDS:
            raise _Slow
        for key, item in value.items():
            if (
                type(key) is not str
                or key.startswith("$")
                or len(key) > MAX_NESTED_KEY_LEN
                or not (key.isascii() and key.isprintable())
            ):
                raise _Slow
            _check_fast(item, depth + 1)
        return
    if kind is list:
        if len(value) > MAX_ARRAY_LEN:
            raise _Slow
        for item in value:
            _check_fast(item, depth + 1)
        return
    if kind is Int64 or kind is bytes or (kind is int and -_F53 <= value <= _F53):
        return
    raise _Slow


def check_value(value: Value, path: str = "$", *, depth: int = 0) -> None:
    """Check a value against Convex's structural limits (types, names, nesting, lengths)."""
    try:
        _check_fast(value, depth)
    except _Slow:
        _check_value(value, path, depth=depth)


def _check_value(value: Value, path: str, *, depth: int) -> None:
    if depth > MAX_NESTING:
        raise ValidationError(f"Value is nested more than {MAX_NESTING} levels deep", path=path)
    if value is None or isinstance(value, (bool, float, str, bytes)):
        return
    if isinstance(value, int):
        if not isinstance(value, Int64):
            _int_as_float(value, path)
        return
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_ARRAY_LEN:
            raise ValidationError(
                f"Array has {len(value)} elements, more than the limit {MAX_ARRAY_LEN}", path=path
            )
        for i, item in enumerate(value):
            _check_value(item, f"{path}[{i}]", depth=depth + 1)
        return
    if isinstance(value, Mapping):
        if len(value) > MAX_FIELDS:
            raise ValidationError(
                f"Object has {len(value)} fields, more than the limit {MAX_FIELDS}", path=path
            )
        for key, item in value.items():
            check_field_name(key, path, top_level=False)
            _check_value(item, f"{path}.{key}", depth=depth + 1)
        return
    raise ValidationError(f"{type(value).__name__} is not a supported Convex value", path=path)


def value_size(value: Value) -> int:
    """An estimate of a value's stored size in bytes (for the 1 MiB document limit)."""
    kind = type(value)
    if kind is float:
        return 9
    if kind is str:
        return (len(value) if value.isascii() else len(value.encode("utf-8"))) + 2
    if kind is dict:
        size = 2
        for key, item in value.items():
            item_kind = type(item)
            if item_kind is float:
                size += len(key) + 10
            elif item_kind is str and item.isascii():
                size += len(key) + 3 + len(item)
            else:
                size += len(key) + 1 + value_size(item)
        return size
    return _value_size(value)


def _value_size(value: Value) -> int:
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, (int, float)):
        return 9
    if isinstance(value, str):
        return len(value.encode("utf-8")) + 2
    if isinstance(value, (bytes, bytearray)):
        return len(value) + 2
    if isinstance(value, (list, tuple)):
        return 2 + sum(value_size(item) for item in value)
    if isinstance(value, Mapping):
        return 2 + sum(len(k) + 1 + value_size(item) for k, item in value.items())
    return 0
