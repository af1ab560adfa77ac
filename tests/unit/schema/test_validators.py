"""Unit tests for schema.validators: every validator accepting, rejecting and converting."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest
from hypothesis import given, strategies as st

from schema.errors import (
    ArgumentValidationError,
    ReturnValidationError,
    SchemaError,
    ValidationError,
)
from schema.ids import encode_id
from schema.validators import (
    AnyV,
    ArrayV,
    BooleanV,
    BytesV,
    Float64V,
    IdV,
    Int64V,
    LiteralV,
    NullV,
    ObjectV,
    OptionalV,
    RecordV,
    StringV,
    UnionV,
    Validator,
    v,
    validate_args,
    validate_returns,
)
from schema.values import MAX_ARRAY_LEN, Int64, check_value

TASK_ID = encode_id(10001, bytes(16))
USER_ID = encode_id(10002, bytes(range(16)))
TABLES = {TASK_ID: "tasks", USER_ID: "users"}


def resolve(document_id: str) -> str | None:
    return TABLES.get(document_id)


def rejects(validator: Validator, value: Any, match: str, *, path: str = "$") -> ValidationError:
    with pytest.raises(ValidationError, match=match) as info:
        validator.validate(value)
    assert info.value.path == path
    return info.value


class TestString:
    def test_accepts_str(self) -> None:
        assert v.string().validate("hello") == "hello"
        assert v.string().validate("") == ""

    @pytest.mark.parametrize(
        ("value", "got"),
        [(1, "number"), (1.5, "number"), (True, "boolean"), (None, "null"), (b"x", "bytes")],
    )
    def test_rejects_other_types(self, value: Any, got: str) -> None:
        error = rejects(v.string(), value, f"Expected `string`, got `{got}`")
        assert str(error) == f"Expected `string`, got `{got}`"


class TestNumber:
    def test_float_unchanged(self) -> None:
        assert v.number().validate(2.5) == 2.5

    def test_int_becomes_float(self) -> None:
        result = v.number().validate(3)
        assert result == 3.0
        assert type(result) is float

    def test_special_floats(self) -> None:
        assert math.isnan(v.number().validate(float("nan")))
        assert v.number().validate(float("-inf")) == float("-inf")

    def test_float64_is_an_alias(self) -> None:
        assert v.float64() == v.number()
        assert isinstance(v.float64(), Float64V)

    def test_bool_is_not_a_number(self) -> None:
        rejects(v.number(), True, "Expected `number`, got `boolean`")

    def test_int64_is_not_a_number(self) -> None:
        rejects(v.number(), Int64(3), "Expected `number`, got `bigint`")

    def test_unsafe_int_rejected(self) -> None:
        rejects(v.number(), 2**53 + 1, "outside the safe float64 range")
        assert v.number().validate(2**53) == float(2**53)

    def test_string_rejected(self) -> None:
        rejects(v.number(), "1", "Expected `number`, got `string`")


class TestInt64:
    def test_int64_unchanged(self) -> None:
        assert v.int64().validate(Int64(7)) == Int64(7)

    def test_plain_int_becomes_int64(self) -> None:
        result = v.int64().validate(7)
        assert type(result) is Int64
        assert result == 7

    def test_bigint_is_an_alias(self) -> None:
        assert v.bigint() == v.int64()
        assert isinstance(v.bigint(), Int64V)

    @pytest.mark.parametrize("value", [5.0, 0.5, float("nan")])
    def test_floats_rejected_clearly(self, value: float) -> None:
        error = rejects(v.int64(), value, "floats are never converted to int64")
        assert "Expected `bigint`, got `number`" in error.detail

    def test_bool_rejected(self) -> None:
        rejects(v.int64(), False, "Expected `bigint`, got `boolean`")

    def test_out_of_range(self) -> None:
        v.int64().validate(2**63 - 1)
        v.int64().validate(-(2**63))
        error = rejects(v.object({"n": v.int64()}), {"n": 2**63}, "out of range", path="$.n")
        assert "- at `$.n`" in str(error)


class TestBooleanNullBytes:
    def test_boolean(self) -> None:
        assert v.boolean().validate(True) is True
        assert v.boolean().validate(False) is False
        rejects(v.boolean(), 1, "Expected `boolean`, got `number`")

    def test_null(self) -> None:
        assert v.null().validate(None) is None
        rejects(v.null(), 0, "Expected `null`, got `number`")
        rejects(v.null(), "", "Expected `null`, got `string`")

    def test_bytes(self) -> None:
        assert v.bytes().validate(b"\x00\x01") == b"\x00\x01"
        result = v.bytes().validate(bytearray(b"ab"))
        assert result == b"ab"
        assert type(result) is bytes
        assert v.bytes().validate(memoryview(b"cd")) == b"cd"
        rejects(v.bytes(), "ab", "Expected `bytes`, got `string`")


class TestAny:
    @pytest.mark.parametrize(
        "value",
        [None, True, 1.5, Int64(3), "s", b"b", [1, "a"], {"a": {"b": [None]}}],
    )
    def test_accepts_convex_values_unchanged(self, value: Any) -> None:
        assert v.any().validate(value) == value

    def test_plain_int_stays_plain(self) -> None:
        result = v.any().validate(3)
        assert type(result) is int

    def test_rejects_non_convex_values(self) -> None:
        rejects(v.any(), {1, 2}, "not a supported Convex value")
        rejects(v.any(), {"a": object()}, "not a supported Convex value", path="$.a")
        rejects(v.any(), {"$bad": 1}, "starts with '\\$'")

    def test_rejects_deep_nesting(self) -> None:
        value: Any = 1.0
        for _ in range(20):
            value = [value]
        with pytest.raises(ValidationError, match="nested more than"):
            v.any().validate(value)


class TestId:
    def test_accepts_valid_id(self) -> None:
        assert v.id("tasks").validate(TASK_ID) == TASK_ID

    def test_resolver_confirms_table(self) -> None:
        assert v.id("tasks").validate(TASK_ID, resolve_id_table=resolve) == TASK_ID

    def test_resolver_rejects_other_table(self) -> None:
        with pytest.raises(ValidationError, match=r'does not match validator v\.id\("tasks"\)'):
            v.id("tasks").validate(USER_ID, resolve_id_table=resolve)
        with pytest.raises(ValidationError, match="belongs to table `users`"):
            v.id("tasks").validate(USER_ID, resolve_id_table=resolve)

    def test_resolver_unknown_table(self) -> None:
        with pytest.raises(ValidationError, match="belongs to no known table"):
            v.id("tasks").validate(TASK_ID, resolve_id_table=lambda _: None)

    def test_malformed_id(self) -> None:
        error = rejects(v.id("tasks"), "not-an-id", r'v\.id\("tasks"\)')
        assert "Invalid ID" in error.detail

    def test_tampered_checksum(self) -> None:
        bad = TASK_ID[:-1] + ("0" if TASK_ID[-1] != "0" else "1")
        rejects(v.id("tasks"), bad, "Invalid ID")

    def test_non_string(self) -> None:
        rejects(v.id("tasks"), 12, "expected an id string, got `number`")

    def test_path_in_nested_object(self) -> None:
        validator = v.object({"owner": v.id("users")})
        with pytest.raises(ValidationError) as info:
            validator.validate({"owner": TASK_ID}, resolve_id_table=resolve)
        assert info.value.path == "$.owner"

    def test_bad_table_argument(self) -> None:
        with pytest.raises(TypeError):
            v.id("")
        with pytest.raises(TypeError):
            v.id(3)  # type: ignore[arg-type]


class TestLiteral:
    def test_string_literal(self) -> None:
        assert v.literal("todo").validate("todo") == "todo"
        rejects(v.literal("todo"), "done", "Expected the literal 'todo', got 'done'")

    def test_number_literal_accepts_int_and_float(self) -> None:
        assert v.literal(1).value == 1.0
        assert type(v.literal(1).value) is float
        result = v.literal(1).validate(1)
        assert result == 1.0 and type(result) is float
        assert v.literal(1.0).validate(1.0) == 1.0

    def test_int64_literal_is_type_exact(self) -> None:
        assert v.literal(Int64(1)).validate(Int64(1)) == Int64(1)
        rejects(v.literal(Int64(1)), 1.0, "Expected the literal Int64\\(1\\), got 1.0")
        rejects(v.literal(Int64(1)), 1, "Expected the literal Int64\\(1\\)")
        rejects(v.literal(1.0), Int64(1), "Expected the literal 1.0")

    def test_bool_literal_is_not_a_number(self) -> None:
        assert v.literal(True).validate(True) is True
        rejects(v.literal(True), 1, "Expected the literal True, got 1")
        rejects(v.literal(1), True, "Expected the literal 1.0, got True")
        rejects(v.literal(False), 0.0, "Expected the literal False")

    def test_nan_literal(self) -> None:
        assert math.isnan(v.literal(float("nan")).validate(float("nan")))

    def test_non_scalar_value(self) -> None:
        rejects(v.literal("a"), ["a"], "Expected the literal 'a', got `array`")

    @pytest.mark.parametrize("bad", [None, [1], {"a": 1}, b"x"])
    def test_unsupported_literal_types(self, bad: Any) -> None:
        with pytest.raises(TypeError, match="v.literal"):
            v.literal(bad)

    def test_unsafe_int_literal(self) -> None:
        with pytest.raises(TypeError, match="Int64"):
            v.literal(2**60)


class TestArray:
    def test_items_validated_and_converted(self) -> None:
        assert v.array(v.number()).validate([1, 2.5]) == [1.0, 2.5]

    def test_tuple_becomes_list(self) -> None:
        assert v.array(v.string()).validate(("a", "b")) == ["a", "b"]

    def test_path_of_bad_item(self) -> None:
        error = rejects(
            v.object({"tags": v.array(v.string())}),
            {"tags": ["a", "b", 3]},
            "Expected `string`, got `number`",
            path="$.tags[2]",
        )
        assert str(error) == "Expected `string`, got `number` - at `$.tags[2]`"

    def test_not_an_array(self) -> None:
        rejects(v.array(v.string()), "abc", "Expected `array`, got `string`")
        rejects(v.array(v.string()), {"a": 1}, "Expected `array`, got `object`")

    def test_too_long(self) -> None:
        rejects(v.array(v.null()), [None] * (MAX_ARRAY_LEN + 1), "more than the limit")

    def test_optional_item_is_a_schema_error(self) -> None:
        with pytest.raises(SchemaError, match="only for object fields"):
            v.array(v.optional(v.string()))

    def test_non_validator_item(self) -> None:
        with pytest.raises(TypeError, match="expects a validator"):
            v.array("string")  # type: ignore[arg-type]


class TestObject:
    validator = v.object(
        {
            "title": v.string(),
            "done": v.boolean(),
            "notes": v.optional(v.string()),
        }
    )

    def test_accepts_and_copies(self) -> None:
        doc = {"title": "t", "done": False}
        result = self.validator.validate(doc)
        assert result == doc
        assert result is not doc

    def test_optional_field_present(self) -> None:
        doc = {"title": "t", "done": True, "notes": "n"}
        assert self.validator.validate(doc) == doc

    def test_optional_none_is_null_not_absent(self) -> None:
        rejects(
            self.validator,
            {"title": "t", "done": True, "notes": None},
            "Expected `string`, got `null`",
            path="$.notes",
        )

    def test_missing_required(self) -> None:
        rejects(self.validator, {"title": "t"}, "Object is missing the required field `done`")

    def test_extra_field(self) -> None:
        error = rejects(
            self.validator,
            {"title": "t", "done": True, "x": 1},
            "Object contains extra field `x` that is not in the validator",
        )
        assert error.path == "$"

    def test_not_an_object(self) -> None:
        rejects(self.validator, ["t"], "Expected `object`, got `array`")
        rejects(self.validator, None, "Expected `object`, got `null`")

    def test_non_string_key(self) -> None:
        rejects(v.object({}), {1: "a"}, "Field names must be strings")

    def test_nested_path(self) -> None:
        validator = v.object({"a": v.object({"b": v.array(v.object({"c": v.int64()}))})})
        error = rejects(
            validator,
            {"a": {"b": [{"c": 1}, {"c": 2.0}]}},
            "floats are never converted",
            path="$.a.b[1].c",
        )
        assert str(error).endswith("- at `$.a.b[1].c`")

    def test_nested_conversion(self) -> None:
        validator = v.object({"a": v.object({"n": v.number(), "i": v.int64()})})
        result = validator.validate({"a": {"n": 1, "i": 2}})
        assert result == {"a": {"n": 1.0, "i": Int64(2)}}
        assert type(result["a"]["n"]) is float
        assert type(result["a"]["i"]) is Int64

    def test_empty_object(self) -> None:
        assert v.object({}).validate({}) == {}

    def test_invalid_field_names(self) -> None:
        with pytest.raises(SchemaError, match="starts with '\\$'"):
            v.object({"$x": v.string()})
        with pytest.raises(SchemaError, match="non-empty"):
            v.object({"": v.string()})

    def test_underscore_fields_allowed_in_nested_objects(self) -> None:
        assert v.object({"_meta": v.string()}).validate({"_meta": "x"}) == {"_meta": "x"}

    def test_definition_errors(self) -> None:
        with pytest.raises(TypeError):
            v.object([("a", v.string())])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="field 'a'"):
            v.object({"a": str})  # type: ignore[dict-item]

    def test_builder_copies_fields(self) -> None:
        fields: dict[str, Validator] = {"a": v.string()}
        validator = v.object(fields)
        fields["b"] = v.string()
        assert list(validator.fields) == ["a"]


class TestRecord:
    def test_string_keys(self) -> None:
        validator = v.record(v.string(), v.number())
        assert validator.validate({"a": 1, "b": 2.5}) == {"a": 1.0, "b": 2.5}

    def test_value_path(self) -> None:
        rejects(
            v.record(v.string(), v.number()),
            {"a": 1, "b": "x"},
            "Expected `number`, got `string`",
            path="$.b",
        )

    def test_literal_keys(self) -> None:
        validator = v.record(v.union(v.literal("x"), v.literal("y")), v.boolean())
        assert validator.validate({"x": True}) == {"x": True}
        rejects(validator, {"z": True}, "Expected `'x' | 'y'`", path="$.z")

    def test_id_keys(self) -> None:
        validator = v.record(v.id("tasks"), v.string())
        assert validator.validate({TASK_ID: "a"}, resolve_id_table=resolve) == {TASK_ID: "a"}
        with pytest.raises(ValidationError, match="belongs to table `users`"):
            validator.validate({USER_ID: "a"}, resolve_id_table=resolve)

    def test_reserved_keys(self) -> None:
        validator = v.record(v.string(), v.null())
        rejects(validator, {"_x": None}, "must not start with `_`")
        rejects(validator, {"": None}, "non-empty")
        rejects(validator, {"$x": None}, "starts with '\\$'")

    def test_not_an_object(self) -> None:
        rejects(v.record(v.string(), v.null()), [], "Expected `object`, got `array`")

    @pytest.mark.parametrize(
        "keys",
        [v.number(), v.int64(), v.any(), v.literal(1), v.union(v.string(), v.number())],
    )
    def test_keys_must_be_string_like(self, keys: Validator) -> None:
        with pytest.raises(SchemaError, match="keys must be"):
            v.record(keys, v.string())

    def test_optional_parts_rejected(self) -> None:
        with pytest.raises(SchemaError):
            v.record(v.string(), v.optional(v.string()))
        with pytest.raises(SchemaError):
            v.record(v.optional(v.string()), v.string())


class TestUnion:
    def test_first_matching_member_wins(self) -> None:
        assert type(v.union(v.int64(), v.number()).validate(1)) is Int64
        assert type(v.union(v.number(), v.int64()).validate(1)) is float

    def test_scalar_summary(self) -> None:
        error = rejects(
            v.union(v.string(), v.number()), True, "Expected `string | number`, got `boolean`"
        )
        assert error.detail == "Expected `string | number`, got `boolean`"

    def test_literal_summary_shows_value(self) -> None:
        status = v.union(v.literal("todo"), v.literal("done"))
        assert status.validate("done") == "done"
        rejects(status, "other", "Expected `'todo' | 'done'`, got `string` 'other'")

    def test_single_fitting_member_reports_its_own_error(self) -> None:
        validator = v.union(v.null(), v.object({"a": v.string()}))
        rejects(validator, {"a": 1}, "Expected `string`, got `number`", path="$.a")
        rejects(validator, {}, "missing the required field `a`", path="$")

    def test_discriminated_union(self) -> None:
        shape = v.union(
            v.object({"kind": v.literal("circle"), "r": v.number()}),
            v.object({"kind": v.literal("square"), "side": v.number()}),
        )
        assert shape.validate({"kind": "square", "side": 2}) == {"kind": "square", "side": 2.0}
        rejects(shape, {"kind": "square", "side": "x"}, "Expected `number`", path="$.side")
        rejects(shape, {"kind": "circle"}, "missing the required field `r`")
        rejects(
            shape,
            {"kind": "hexagon"},
            "Expected `{kind: 'circle', ...} | {kind: 'square', ...}`, got `object`",
        )

    def test_several_fitting_members_are_listed(self) -> None:
        validator = v.union(v.object({"a": v.string()}), v.object({"b": v.string()}))
        error = rejects(validator, {"c": 1}, "does not match any member of the union")
        assert "extra field `c`" in error.detail

    def test_nested_path(self) -> None:
        validator = v.object({"items": v.array(v.union(v.string(), v.null()))})
        rejects(validator, {"items": ["a", None, 3]}, "string | null", path="$.items[2]")

    @pytest.mark.parametrize(
        ("member", "value", "match", "path"),
        [
            (v.int64(), 5.0, "floats are never converted", "$"),
            (v.number(), 2**60, "outside the safe float64 range", "$"),
            (v.any(), {1, 2}, "not a supported Convex value", "$"),
            (v.id("tasks"), "bad", "Invalid ID", "$"),
            (v.array(v.string()), [1], "Expected `string`", "$[0]"),
            (v.record(v.string(), v.string()), {"a": 1}, "Expected `string`", "$.a"),
            (v.union(v.string(), v.array(v.null())), [1], "Expected `null`", "$[0]"),
        ],
    )
    def test_fitting_member_error_wins(
        self, member: Validator, value: Any, match: str, path: str
    ) -> None:
        rejects(v.union(v.null(), member), value, match, path=path)

    @pytest.mark.parametrize(
        ("member", "described"),
        [
            (v.array(v.string()), "array"),
            (v.record(v.string(), v.string()), "record"),
            (v.object({"a": v.string()}), "object"),
            (v.id("tasks"), 'v.id("tasks")'),
            (v.union(v.boolean(), v.bytes()), "boolean | bytes"),
        ],
    )
    def test_summary_describes_members(self, member: Validator, described: str) -> None:
        rejects(v.union(member, v.null()), 5.0, f"Expected `{described} | null`, got `number`")

    def test_optional_member_built_directly(self) -> None:
        union = UnionV((OptionalV(v.array(v.string())), v.null()))
        rejects(union, [1], "Expected `string`", path="$[0]")
        rejects(union, 1.0, "Expected `array | null`")

    def test_definition_errors(self) -> None:
        with pytest.raises(TypeError):
            v.union()
        with pytest.raises(SchemaError):
            v.union(v.string(), v.optional(v.number()))
        with pytest.raises(TypeError):
            v.union(v.string(), "number")  # type: ignore[arg-type]


class TestOptional:
    def test_is_optional(self) -> None:
        assert v.optional(v.string()).is_optional
        assert not v.string().is_optional

    def test_idempotent(self) -> None:
        once = v.optional(v.string())
        assert v.optional(once) is once

    def test_outside_an_object_validates_inner(self) -> None:
        assert v.optional(v.number()).validate(2) == 2.0
        rejects(v.optional(v.number()), "x", "Expected `number`")

    def test_optional_union(self) -> None:
        validator = v.object({"a": v.optional(v.union(v.string(), v.null()))})
        assert validator.validate({}) == {}
        assert validator.validate({"a": None}) == {"a": None}


class TestReprAndJson:
    @pytest.mark.parametrize(
        ("validator", "text", "json"),
        [
            (v.string(), "v.string()", {"type": "string"}),
            (v.number(), "v.number()", {"type": "number"}),
            (v.int64(), "v.int64()", {"type": "bigint"}),
            (v.boolean(), "v.boolean()", {"type": "boolean"}),
            (v.null(), "v.null()", {"type": "null"}),
            (v.bytes(), "v.bytes()", {"type": "bytes"}),
            (v.any(), "v.any()", {"type": "any"}),
            (v.id("tasks"), 'v.id("tasks")', {"type": "id", "tableName": "tasks"}),
            (v.literal("a"), "v.literal('a')", {"type": "literal", "value": "a"}),
            (v.literal(2), "v.literal(2.0)", {"type": "literal", "value": 2.0}),
            (v.literal(True), "v.literal(True)", {"type": "literal", "value": True}),
            (
                v.literal(Int64(1)),
                "v.literal(Int64(1))",
                {"type": "literal", "value": {"$integer": "AQAAAAAAAAA="}},
            ),
            (
                v.array(v.string()),
                "v.array(v.string())",
                {"type": "array", "value": {"type": "string"}},
            ),
            (
                v.union(v.string(), v.null()),
                "v.union(v.string(), v.null())",
                {"type": "union", "value": [{"type": "string"}, {"type": "null"}]},
            ),
            (
                v.record(v.string(), v.number()),
                "v.record(v.string(), v.number())",
                {
                    "type": "record",
                    "keys": {"type": "string"},
                    "values": {"fieldType": {"type": "number"}, "optional": False},
                },
            ),
            (
                v.object({"a": v.string(), "b": v.optional(v.int64())}),
                "v.object({'a': v.string(), 'b': v.optional(v.int64())})",
                {
                    "type": "object",
                    "value": {
                        "a": {"fieldType": {"type": "string"}, "optional": False},
                        "b": {"fieldType": {"type": "bigint"}, "optional": True},
                    },
                },
            ),
        ],
    )
    def test_repr_and_json(self, validator: Validator, text: str, json: dict[str, Any]) -> None:
        assert repr(validator) == text
        assert validator.to_json() == json
        msgspec.json.encode(validator.to_json())

    def test_optional_json_is_inner(self) -> None:
        assert v.optional(v.string()).to_json() == {"type": "string"}
        assert repr(v.optional(v.string())) == "v.optional(v.string())"

    def test_builder_repr(self) -> None:
        assert repr(v) == "v"


class TestStructs:
    def test_types(self) -> None:
        assert isinstance(v.string(), StringV)
        assert isinstance(v.number(), Float64V)
        assert isinstance(v.int64(), Int64V)
        assert isinstance(v.boolean(), BooleanV)
        assert isinstance(v.null(), NullV)
        assert isinstance(v.bytes(), BytesV)
        assert isinstance(v.any(), AnyV)
        assert isinstance(v.id("t"), IdV)
        assert isinstance(v.literal("a"), LiteralV)
        assert isinstance(v.array(v.any()), ArrayV)
        assert isinstance(v.object({}), ObjectV)
        assert isinstance(v.record(v.string(), v.any()), RecordV)
        assert isinstance(v.union(v.any()), UnionV)
        assert isinstance(v.optional(v.any()), OptionalV)

    def test_structural_equality_and_hash(self) -> None:
        a = v.object({"x": v.array(v.id("t")), "y": v.optional(v.literal(1))})
        b = v.object({"x": v.array(v.id("t")), "y": v.optional(v.literal(1))})
        assert a == b
        assert hash(a) == hash(b)
        assert a != v.object({"x": v.array(v.id("u")), "y": v.optional(v.literal(1))})
        assert v.string() != v.number()  # type: ignore[comparison-overlap]
        assert {v.union(v.string(), v.null()), v.union(v.string(), v.null())} == {
            v.union(v.string(), v.null())
        }

    def test_frozen(self) -> None:
        with pytest.raises(AttributeError):
            v.id("t").table = "u"  # type: ignore[misc]

    def test_base_validator_is_abstract(self) -> None:
        with pytest.raises(NotImplementedError):
            Validator().validate(1)
        with pytest.raises(NotImplementedError):
            Validator().to_json()
        assert Validator().describe() == "Validator()"


class TestValidateArgs:
    def test_none_passes_args_through(self) -> None:
        args = {"a": 1, "b": [1]}
        assert validate_args(None, args, function="m:f") is args

    def test_none_still_requires_an_object(self) -> None:
        with pytest.raises(ArgumentValidationError, match="got `array`"):
            validate_args(None, [1], function="m:f")

    def test_dict_of_validators(self) -> None:
        result = validate_args(
            {"n": v.number(), "s": v.optional(v.string())}, {"n": 1}, function="m:f"
        )
        assert result == {"n": 1.0}

    def test_object_validator(self) -> None:
        assert validate_args(v.object({"n": v.int64()}), {"n": 1}, function="m:f") == {
            "n": Int64(1)
        }

    def test_any_validator_returns_a_dict(self) -> None:
        from types import MappingProxyType

        result = validate_args(v.any(), MappingProxyType({"a": 1.0}), function="m:f")
        assert result == {"a": 1.0} and type(result) is dict

    def test_error_names_function_and_path(self) -> None:
        with pytest.raises(ArgumentValidationError) as info:
            validate_args({"author": v.string()}, {"author": 1}, function="messages:send")
        error = info.value
        assert error.path == "$.author"
        assert error.function == "messages:send"
        assert error.code == "ArgumentValidationError"
        assert str(error) == (
            "ArgumentValidationError for messages:send: Expected `string`, got `number` "
            "- at `$.author`"
        )

    def test_extra_and_missing_args(self) -> None:
        with pytest.raises(ArgumentValidationError, match="extra field `x`"):
            validate_args({}, {"x": 1}, function="m:f")
        with pytest.raises(ArgumentValidationError, match="missing the required field `y`"):
            validate_args({"y": v.null()}, {}, function="m:f")

    def test_id_resolution(self) -> None:
        validators = {"id": v.id("tasks")}
        validate_args(validators, {"id": TASK_ID}, function="m:f", resolve_id_table=resolve)
        with pytest.raises(ArgumentValidationError, match="belongs to table `users`"):
            validate_args(validators, {"id": USER_ID}, function="m:f", resolve_id_table=resolve)

    def test_non_validator_in_dict(self) -> None:
        with pytest.raises(TypeError, match="Argument 'a' of m:f"):
            validate_args({"a": "string"}, {"a": "x"}, function="m:f")  # type: ignore[dict-item]


class TestValidateReturns:
    def test_none_is_unchecked(self) -> None:
        value = object()
        assert validate_returns(None, value) is value

    def test_converts(self) -> None:
        assert validate_returns(v.array(v.int64()), [1, 2]) == [Int64(1), Int64(2)]

    def test_error(self) -> None:
        with pytest.raises(ReturnValidationError, match="for m:f: Expected `null`") as info:
            validate_returns(v.null(), {"a": 1}, function="m:f")
        assert info.value.path == "$"
        with pytest.raises(ReturnValidationError, match="^Expected `string`.*at `\\$\\[0\\]`$"):
            validate_returns(v.array(v.string()), [1])


# -- property tests ------------------------------------------------------------------------

_names = st.text(alphabet="abcdefghij_XYZ0123", min_size=1, max_size=6).filter(
    lambda name: not name.startswith("_")
)
_leaves = st.sampled_from(
    [
        (v.string(), st.text(max_size=5)),
        (v.number(), st.floats(allow_nan=False) | st.integers(-(2**53), 2**53)),
        (v.int64(), st.integers(-(2**63), 2**63 - 1)),
        (v.boolean(), st.booleans()),
        (v.null(), st.none()),
        (v.bytes(), st.binary(max_size=5)),
        (v.any(), st.just({"nested": [1, "x"]})),
        (v.literal("k"), st.just("k")),
        (v.literal(Int64(5)), st.just(Int64(5))),
    ]
)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    arrays = children.map(lambda c: (v.array(c[0]), st.lists(c[1], max_size=3)))
    objects = st.dictionaries(_names, children, max_size=3).map(
        lambda fields: (
            v.object({name: c[0] for name, c in fields.items()}),
            st.fixed_dictionaries({name: c[1] for name, c in fields.items()}),
        )
    )
    records = children.map(
        lambda c: (v.record(v.string(), c[0]), st.dictionaries(_names, c[1], max_size=3))
    )
    unions = st.tuples(children, children).map(
        lambda pair: (v.union(pair[0][0], pair[1][0]), st.one_of(pair[0][1], pair[1][1]))
    )
    return st.one_of(arrays, objects, records, unions)


_validator_and_value = st.recursive(_leaves, _extend, max_leaves=8).flatmap(
    lambda c: st.tuples(st.just(c[0]), c[1])
)


def _has_plain_int(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, (bool, Int64)):
        return True
    if isinstance(value, list):
        return any(_has_plain_int(item) for item in value)
    if isinstance(value, dict):
        return any(_has_plain_int(item) for item in value.values())
    return False


@given(_validator_and_value)
def test_matching_values_validate_to_canonical_form(pair: tuple[Validator, Any]) -> None:
    validator, value = pair
    result = validator.validate(value)
    check_value(result)
    assert validator.validate(result) == result
    if "v.any()" not in repr(validator):
        assert not _has_plain_int(result)
    msgspec.json.encode(validator.to_json())


@given(st.integers(-(2**53), 2**53))
def test_numbers_and_int64_from_plain_ints(number: int) -> None:
    as_float = v.number().validate(number)
    as_int64 = v.int64().validate(number)
    assert type(as_float) is float and as_float == number
    assert type(as_int64) is Int64 and as_int64 == number


_scalars = st.one_of(
    st.text(max_size=3),
    st.booleans(),
    st.floats(allow_nan=False),
    st.integers(-5, 5),
    st.integers(-5, 5).map(Int64),
)


def _convex_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Int64):
        return "bigint"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


@given(_scalars, _scalars)
def test_literal_matches_only_same_type_and_value(literal: Any, value: Any) -> None:
    validator = v.literal(literal)
    same = _convex_type(literal) == _convex_type(value) and literal == value
    if same:
        assert validator.validate(value) == literal
    else:
        with pytest.raises(ValidationError):
            validator.validate(value)


class _Float(float):
    pass


class _Str(str):
    pass


FIELD_VALIDATORS = [
    v.float64(),
    v.string(),
    v.boolean(),
    v.bytes(),
    v.int64(),
    v.optional(v.float64()),
    v.optional(v.string()),
    v.null(),
    v.any(),
]
FIELD_VALUES: list[Any] = [
    1.5,
    3,
    True,
    "s",
    b"b",
    bytearray(b"b"),
    Int64(2),
    None,
    _Float(1.0),
    _Str("x"),
    [1.0],
]


@pytest.mark.parametrize("validator", FIELD_VALIDATORS, ids=repr)
@pytest.mark.parametrize("value", FIELD_VALUES, ids=repr)
def test_object_fields_are_checked_as_their_validator_checks_them(
    validator: Any, value: Any
) -> None:
    # An object's field of an exact scalar type skips the call (and its path): same answer.
    def outcome(check: Any) -> Any:
        try:
            result = check()
        except ValidationError as exc:
            return ("raised", str(exc), exc.path)
        return ("returned", type(result), result)

    direct = outcome(lambda: validator.validate(value, "$.f"))
    in_object = outcome(lambda: v.object({"f": validator}).validate({"f": value}))
    if direct[0] == "returned":
        assert in_object == ("returned", dict, {"f": value if direct[2] is value else direct[2]})
        assert type(in_object[2]["f"]) is direct[1]
    else:
        assert in_object == direct
