"""The value model's conversions and structural checks: the fast paths (exact built-in types,
no error paths built) answer exactly what the general code answers, results and errors alike.

``convex_to_json``, ``json_to_convex``, ``check_value`` and ``value_size`` first try a fast
version and fall back to the general one (``_convex_to_json`` ...) for anything it does not
handle, which also names the path of an error. Each case here is run through both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from schema import values
from schema.errors import ValidationError
from schema.values import (
    MAX_ARRAY_LEN,
    MAX_FIELDS,
    MAX_NESTING,
    Int64,
    check_field_name,
    check_value,
    convex_to_json,
    dumps,
    json_to_convex,
    loads,
    value_size,
)


class Str(str):
    pass


class Flt(float):
    pass


def _nested(depth: int, leaf: Any = 1.0) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def _nested_list(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


# Python values: valid ones of every kind, then ones the checks reject, deep inside too.
PYTHON_VALUES: list[Any] = [
    None,
    True,
    False,
    0.0,
    -0.0,
    1.5,
    math.inf,
    -math.inf,
    math.nan,
    7,
    -(1 << 53),
    1 << 53,
    (1 << 53) + 1,
    Int64(-5),
    Int64((1 << 63) - 1),
    "text",
    "ünïcödé ✓",
    Str("sub"),
    Flt(2.5),
    b"\x00bytes",
    bytearray(b"ba"),
    memoryview(b"mv"),
    [],
    [1, 2.0, "x", None, [True]],
    (1, "tuple"),
    {},
    {"a": 1, "b": {"c": [1.0, {"d": Int64(3)}]}, "e": b"z"},
    {"a": [1.0, (2, 3)], "b": bytearray(b"q")},
    {"$bad": 1.0},
    {"ok": {"$bad": 1.0}},
    {"a": {"ctl\x01": 1.0}},
    {"a": {"ü": 1.0}},
    {"a": {"x" * 1025: 1.0}},
    {"a": {"x" * 1024: 1.0}},
    {1: "non-string key"},
    {"a": {2: "deep non-string key"}},
    {"a": [1.0, {"b": object()}]},
    {"a": {"b": 1 << 60}},
    _nested(MAX_NESTING),
    _nested(MAX_NESTING + 1),
    _nested_list(MAX_NESTING),
    _nested_list(MAX_NESTING + 1),
    {"a": [0.0] * (MAX_ARRAY_LEN + 1)},
    {"a": {f"k{i}": 1.0 for i in range(MAX_FIELDS + 1)}},
    {f"k{i}": 1.0 for i in range(MAX_FIELDS)},
    {"a": Str("s"), Str("k"): Flt(1.0)},
    {"a": math.nan, "b": [-0.0, math.inf]},
    {"s": "\ud800"},
]

# JSON as it arrives: plain and encoded values, then malformed ``$`` objects.
JSON_VALUES: list[Any] = [
    None,
    True,
    1,
    2.5,
    "s",
    [1, [2, {"a": 3}]],
    {"a": {"b": [1, 2.0]}},
    {"$integer": "AQAAAAAAAAA="},
    {"$float": "AAAAAAAA+H8="},
    {"$bytes": "AAE="},
    {"a": [{"$integer": "AQAAAAAAAAA="}, {"$bytes": ""}]},
    {"$integer": "AQ=="},
    {"$float": "AAAAAAAA8D8="},
    {"a": {"$float": "AAAAAAAA8D8="}},
    {"$bytes": "not base64!"},
    {"$unknown": 1},
    {"a": 1, "$b": 2},
    {"a": {"x": 1, "$y": 2}},
    {"a": [1, {"$integer": 5}]},
    (1, 2),
    {"a": object()},
]


def _outcome(function: Callable[..., Any], *args: Any) -> Any:
    """What a call returns, or the type, message and path of what it raises."""
    try:
        result = function(*args)
    except ValidationError as exc:
        return ("raised", type(exc), str(exc), exc.path)
    except Exception as exc:  # the general code's own exceptions must match too
        return ("raised", type(exc), str(exc))
    return ("returned", result)


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaNs equal and types compared too (1 and 1.0 differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
        )
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@pytest.mark.parametrize("value", PYTHON_VALUES, ids=range(len(PYTHON_VALUES)))
def test_convex_to_json_answers_as_the_general_conversion(value: Any) -> None:
    fast = _outcome(convex_to_json, value)
    general = _outcome(values._convex_to_json, value, "$")
    assert _same(fast, general)


@pytest.mark.parametrize("value", PYTHON_VALUES, ids=range(len(PYTHON_VALUES)))
def test_check_value_answers_as_the_general_check(value: Any) -> None:
    fast = _outcome(check_value, value)
    general = _outcome(lambda v: values._check_value(v, "$", depth=0), value)
    assert fast == general


@pytest.mark.parametrize("value", PYTHON_VALUES, ids=range(len(PYTHON_VALUES)))
def test_value_size_answers_as_the_general_estimate(value: Any) -> None:
    def general(value: Any) -> int:
        # The original recursive definition, for comparison at every level.
        if value is None or isinstance(value, bool):
            return 1
        if isinstance(value, (int, float)):
            return 9
        if isinstance(value, str):
            return len(value.encode("utf-8")) + 2
        if isinstance(value, (bytes, bytearray)):
            return len(value) + 2
        if isinstance(value, (list, tuple)):
            return 2 + sum(general(item) for item in value)
        if isinstance(value, dict):
            return 2 + sum(len(k) + 1 + general(item) for k, item in value.items())
        return 0

    assert _outcome(value_size, value) == _outcome(general, value)


@pytest.mark.parametrize("value", JSON_VALUES, ids=range(len(JSON_VALUES)))
def test_json_to_convex_answers_as_the_general_conversion(value: Any) -> None:
    fast = _outcome(json_to_convex, value)
    general = _outcome(values._json_to_convex, value, "$")
    assert _same(fast, general)


def test_errors_deep_inside_still_name_their_path() -> None:
    with pytest.raises(ValidationError) as bad_name:
        check_value({"a": [{"b": {"$c": 1.0}}]})
    assert bad_name.value.path == "$.a[0].b"
    with pytest.raises(ValidationError) as too_deep:
        check_value(_nested(MAX_NESTING + 1))
    assert too_deep.value.path == "$" + ".a" * (MAX_NESTING + 1)
    with pytest.raises(ValidationError) as big_int:
        convex_to_json({"a": [1.0, 1 << 60]})
    assert big_int.value.path == "$.a[1]"
    with pytest.raises(ValidationError) as bad_special:
        json_to_convex({"a": [{"$float": "AAAAAAAA8D8="}]})
    assert bad_special.value.path == "$.a[0]"


def test_stored_documents_round_trip() -> None:
    doc = {
        "_id": "abc",
        "_creationTime": 1.7e12,
        "n": 1.0,
        "nested": {"list": [Int64(1), b"\x00", -0.0, math.inf, "s"]},
    }
    back = loads(dumps(doc))
    assert _same(back, doc)


@pytest.mark.parametrize(
    "name", ["ok", "a b", "~", "x" * 64, "", "\x7f", "\x1f", "é", "tab\t", "$x", "x" * 65]
)
def test_field_names_are_printable_ascii(name: str) -> None:
    printable = all(32 <= ord(ch) <= 126 for ch in name)
    allowed = printable and not name.startswith("$") and len(name) <= 64
    outcome = _outcome(lambda n: check_field_name(n, "$", top_level=True), name)
    assert (outcome[0] == "returned") == allowed
