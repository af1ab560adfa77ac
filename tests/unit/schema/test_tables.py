"""Unit tests for schema.tables: table/index/schema definitions and document validation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, strategies as st

import schema
from schema import (
    Int64,
    ReactorError,
    SchemaDefinition,
    SchemaError,
    TableDefinition,
    ValidationError,
    define_schema,
    define_table,
    v,
)
from schema.ids import encode_id
from schema.tables import (
    BUILTIN_INDEXES,
    MAX_INDEXES_PER_TABLE,
    DocumentValidationError,
    check_document,
    check_table_name,
    index_fields,
    validate_document,
)
from schema.validators import ObjectV
from schema.values import MAX_DOCUMENT_SIZE

TASK_ID = encode_id(10001, bytes(16))
USER_ID = encode_id(10002, bytes(range(16)))


def resolve(document_id: str) -> str | None:
    return {TASK_ID: "tasks", USER_ID: "users"}.get(document_id)


def app_schema(**options: Any) -> SchemaDefinition:
    return define_schema(
        {
            "tasks": define_table(
                {
                    "title": v.string(),
                    "owner": v.id("users"),
                    "priority": v.int64(),
                    "score": v.optional(v.number()),
                    "tags": v.optional(v.array(v.string())),
                }
            )
            .index("by_owner", ["owner"])
            .index("by_owner_priority", ["owner", "priority"]),
            "users": define_table(
                {"name": v.string(), "address": v.object({"city": v.string()})}
            ).index("by_city", ["address.city"]),
        },
        **options,
    )


class TestTableNames:
    @pytest.mark.parametrize("name", ["tasks", "T", "a1", "user_profiles", "x" * 64])
    def test_valid(self, name: str) -> None:
        assert check_table_name(name) == name
        assert name in define_schema({name: define_table({})}).tables

    @pytest.mark.parametrize(
        ("name", "match"),
        [
            ("_tasks", "reserved"),
            ("1tasks", "starting with a letter"),
            ("my-table", "letters, digits"),
            ("my table", "letters, digits"),
            ("tâches", "letters, digits"),
            ("", "1 to 64"),
            ("x" * 65, "1 to 64"),
        ],
    )
    def test_invalid(self, name: str, match: str) -> None:
        with pytest.raises(SchemaError, match=match) as info:
            define_schema({name: define_table({})})
        assert f"`{name}`" in str(info.value)

    def test_non_string(self) -> None:
        with pytest.raises(SchemaError, match="must be strings"):
            check_table_name(3)


class TestDefineTable:
    def test_from_dict(self) -> None:
        table = define_table({"a": v.string()})
        assert isinstance(table, TableDefinition)
        assert table.document_validator == v.object({"a": v.string()})
        assert table.indexes == {}

    def test_from_object_validator(self) -> None:
        validator = v.object({"a": v.string()})
        assert define_table(validator).document_validator is validator

    def test_union_of_objects_and_any(self) -> None:
        define_table(v.union(v.object({"a": v.string()}), v.object({"b": v.string()})))
        define_table(v.any())

    @pytest.mark.parametrize(
        "validator", [v.string(), v.array(v.any()), v.union(v.object({}), v.null())]
    )
    def test_non_document_validators(self, validator: Any) -> None:
        with pytest.raises(SchemaError, match="document validator must be"):
            define_table(validator)

    def test_system_field_names_rejected(self) -> None:
        with pytest.raises(SchemaError, match="`_id`.*reserved for system fields"):
            define_table({"_id": v.string()})
        with pytest.raises(SchemaError, match="`_owner`"):
            define_table(v.union(v.object({"ok": v.string()}), v.object({"_owner": v.string()})))

    def test_nested_underscore_fields_allowed(self) -> None:
        define_table({"meta": v.object({"_private": v.string()})})

    def test_top_level_field_too_long(self) -> None:
        with pytest.raises(SchemaError, match="longer than 64"):
            define_table({"f" * 65: v.string()})

    def test_bad_argument(self) -> None:
        with pytest.raises(TypeError):
            define_table("tasks")  # type: ignore[arg-type]


class TestIndexes:
    def test_chainable_and_ordered(self) -> None:
        base = define_table({"a": v.string(), "b": v.string()})
        table = base.index("by_a", ["a"]).index("by_b_a", ["b", "a"])
        assert list(table.indexes) == ["by_a", "by_b_a"]
        assert table.indexes["by_b_a"] == ("b", "a")
        assert base.indexes == {}, "index() returns a new definition"

    def test_nested_paths(self) -> None:
        table = define_table({"address": v.object({"city": v.string()})})
        assert table.index("by_city", ["address.city"]).indexes == {"by_city": ("address.city",)}

    def test_duplicate_name(self) -> None:
        table = define_table({"a": v.string()}).index("by_a", ["a"])
        with pytest.raises(SchemaError, match="Duplicate index name `by_a`"):
            table.index("by_a", ["a"])

    @pytest.mark.parametrize(
        ("name", "match"),
        [
            ("by_id", "reserved"),
            ("by_creation_time", "reserved"),
            ("_by_a", "reserved"),
            ("1st", "starting with a letter"),
            ("by-a", "letters, digits"),
            ("", "1 to 64"),
            ("i" * 65, "1 to 64"),
        ],
    )
    def test_bad_names(self, name: str, match: str) -> None:
        with pytest.raises(SchemaError, match=match):
            define_table({"a": v.string()}).index(name, ["a"])

    def test_name_of_64_chars(self) -> None:
        define_table({"a": v.string()}).index("i" * 64, ["a"])

    @pytest.mark.parametrize(
        ("fields", "match"),
        [
            ([], "at least one field"),
            (["a", "a"], "`a` more than once"),
            (["_creationTime"], "reserved"),
            (["_id"], "reserved"),
            (["a.", "b"], "empty component"),
            (["a..b"], "empty component"),
            ([""], "non-empty strings"),
            ([3], "non-empty strings"),
            (["$a"], "starts with '\\$'"),
            ("a", "list of field paths"),
        ],
    )
    def test_bad_fields(self, fields: Any, match: str) -> None:
        with pytest.raises(SchemaError, match=match):
            define_table({"a": v.string()}).index("by_x", fields)

    def test_field_limit_counts_creation_time(self) -> None:
        table = define_table({})
        table.index("wide", [f"f{i}" for i in range(15)])
        with pytest.raises(SchemaError, match="at most 15"):
            table.index("too_wide", [f"f{i}" for i in range(16)])

    def test_index_limit(self) -> None:
        table = define_table({})
        for i in range(MAX_INDEXES_PER_TABLE):
            table = table.index(f"i{i}", ["a"])
        with pytest.raises(SchemaError, match="at most"):
            table.index("one_more", ["a"])


class TestDefineSchema:
    def test_tables_and_flags(self) -> None:
        s = app_schema()
        assert list(s.tables) == ["tasks", "users"]
        assert s.schema_validation and s.strict_table_name_types
        loose = app_schema(schema_validation=False, strict_table_name_types=False)
        assert not loose.schema_validation and not loose.strict_table_name_types

    def test_rejects_non_table_definitions(self) -> None:
        with pytest.raises(TypeError, match="define_table"):
            define_schema({"tasks": {"a": v.string()}})  # type: ignore[dict-item]
        with pytest.raises(TypeError):
            define_schema([("tasks", define_table({}))])  # type: ignore[arg-type]

    def test_table_limit(self) -> None:
        table = define_table({})
        define_schema({f"t{i}": table for i in range(10_000)})
        with pytest.raises(SchemaError, match="at most 10000 tables"):
            define_schema({f"t{i}": table for i in range(10_001)})

    def test_copies_tables(self) -> None:
        tables = {"a": define_table({})}
        s = define_schema(tables)
        tables["b"] = define_table({})
        assert list(s.tables) == ["a"]

    def test_to_json(self) -> None:
        s = define_schema({"t": define_table({"a": v.string()}).index("by_a", ["a"])})
        assert s.to_json() == {
            "tables": [
                {
                    "tableName": "t",
                    "indexes": [{"indexDescriptor": "by_a", "fields": ["a"]}],
                    "searchIndexes": [],
                    "vectorIndexes": [],
                    "documentType": {
                        "type": "object",
                        "value": {"a": {"fieldType": {"type": "string"}, "optional": False}},
                    },
                }
            ],
            "schemaValidation": True,
        }


class TestValidateDocument:
    def test_converts(self) -> None:
        doc = {"title": "t", "owner": USER_ID, "priority": 1, "score": 2}
        result = app_schema().validate_document("tasks", doc, resolve_id_table=resolve)
        assert result == {"title": "t", "owner": USER_ID, "priority": Int64(1), "score": 2.0}
        assert type(result["priority"]) is Int64 and type(result["score"]) is float

    def test_mismatch_is_validation_and_schema_error(self) -> None:
        doc = {"title": "t", "owner": USER_ID, "priority": 1, "tags": ["a", 2]}
        with pytest.raises(DocumentValidationError) as info:
            app_schema().validate_document("tasks", doc)
        error = info.value
        assert isinstance(error, ValidationError) and isinstance(error, SchemaError)
        assert error.path == "$.tags[1]"
        assert error.table == "tasks"
        assert str(error) == (
            "Document for table `tasks` does not match the schema: "
            "Expected `string`, got `number` - at `$.tags[1]`"
        )

    def test_missing_and_extra_fields(self) -> None:
        s = app_schema()
        with pytest.raises(ValidationError, match="missing the required field `owner`"):
            s.validate_document("tasks", {"title": "t", "priority": 1})
        with pytest.raises(ValidationError, match="extra field `color`"):
            s.validate_document(
                "tasks", {"title": "t", "owner": USER_ID, "priority": 1, "color": "red"}
            )

    def test_int64_field_rejects_floats(self) -> None:
        with pytest.raises(ValidationError, match="floats are never converted") as info:
            app_schema().validate_document(
                "tasks", {"title": "t", "owner": USER_ID, "priority": 1.0}
            )
        assert info.value.path == "$.priority"

    def test_id_of_wrong_table(self) -> None:
        with pytest.raises(ValidationError, match="belongs to table `tasks`") as info:
            app_schema().validate_document(
                "tasks",
                {"title": "t", "owner": TASK_ID, "priority": 1},
                resolve_id_table=resolve,
            )
        assert info.value.path == "$.owner"

    def test_system_fields_rejected_clearly(self) -> None:
        with pytest.raises(DocumentValidationError, match="`_id` starts with `_`"):
            app_schema().validate_document(
                "tasks", {"_id": TASK_ID, "title": "t", "owner": USER_ID, "priority": 1}
            )

    def test_unknown_table(self) -> None:
        with pytest.raises(SchemaError, match="Table `notes` is not defined in the schema"):
            app_schema().validate_document("notes", {})

    def test_unknown_table_allowed_when_not_strict(self) -> None:
        s = app_schema(strict_table_name_types=False)
        assert s.validate_document("notes", {"n": 1}) == {"n": 1}
        with pytest.raises(SchemaError, match="reserved"):
            s.validate_document("_notes", {})
        with pytest.raises(DocumentValidationError):
            s.validate_document("notes", {"_x": 1})

    def test_schema_validation_off_checks_structure_only(self) -> None:
        s = app_schema(schema_validation=False)
        assert s.validate_document("tasks", {"anything": [1, "x"]}) == {"anything": [1, "x"]}
        with pytest.raises(DocumentValidationError, match="not a supported Convex value"):
            s.validate_document("tasks", {"a": {1, 2}})
        with pytest.raises(DocumentValidationError, match="reserved for system fields"):
            s.validate_document("tasks", {"_creationTime": 1.0})
        with pytest.raises(SchemaError, match="not defined"):
            s.validate_document("notes", {})

    def test_not_an_object(self) -> None:
        with pytest.raises(DocumentValidationError, match="must be an object"):
            app_schema().validate_document("tasks", ["a"])

    def test_size_limit(self) -> None:
        s = define_schema({"blobs": define_table({"data": v.bytes()})})
        s.validate_document("blobs", {"data": bytes(1000)})
        with pytest.raises(DocumentValidationError, match="more than the limit"):
            s.validate_document("blobs", {"data": bytes(MAX_DOCUMENT_SIZE)})

    def test_nesting_limit_under_any(self) -> None:
        value: Any = 1.0
        for _ in range(20):
            value = {"a": value}
        s = define_schema({"t": define_table(v.any())})
        with pytest.raises(DocumentValidationError, match="nested more than"):
            s.validate_document("t", {"deep": value})

    def test_error_tree(self) -> None:
        assert issubclass(DocumentValidationError, ReactorError)
        assert DocumentValidationError.code == "SchemaEnforcementError"


class TestIndexFields:
    def test_builtins(self) -> None:
        s = app_schema()
        assert s.index_fields("tasks", "by_creation_time") == ()
        assert s.index_fields("tasks", "by_id") == ()
        assert set(BUILTIN_INDEXES) == {"by_id", "by_creation_time"}

    def test_user_indexes(self) -> None:
        s = app_schema()
        assert s.index_fields("tasks", "by_owner_priority") == ("owner", "priority")
        assert s.index_fields("users", "by_city") == ("address.city",)

    def test_unknown_index(self) -> None:
        with pytest.raises(SchemaError, match="^Index tasks.by_x not found$"):
            app_schema().index_fields("tasks", "by_x")

    def test_unknown_table(self) -> None:
        with pytest.raises(SchemaError, match="not defined"):
            app_schema().index_fields("notes", "by_creation_time")
        loose = app_schema(strict_table_name_types=False)
        assert loose.index_fields("notes", "by_creation_time") == ()
        with pytest.raises(SchemaError, match="Index notes.by_x not found"):
            loose.index_fields("notes", "by_x")

    def test_table_lookup(self) -> None:
        s = app_schema(strict_table_name_types=False)
        assert s.table("tasks") is s.tables["tasks"]
        assert s.table("notes") is None


class TestWithoutSchema:
    def test_any_table_structural_checks(self) -> None:
        assert validate_document(None, "anything", {"n": 1, "s": "x"}) == {"n": 1, "s": "x"}
        with pytest.raises(SchemaError, match="reserved"):
            validate_document(None, "_system", {})
        with pytest.raises(DocumentValidationError, match="outside the safe float64 range"):
            validate_document(None, "t", {"n": 2**60})
        with pytest.raises(DocumentValidationError, match="reserved for system fields"):
            validate_document(None, "t", {"_id": "x"})

    def test_delegates_to_schema(self) -> None:
        with pytest.raises(SchemaError, match="not defined"):
            validate_document(app_schema(), "notes", {})
        doc = {"name": "a", "address": {"city": "b"}}
        assert validate_document(app_schema(), "users", doc) == doc

    def test_index_fields(self) -> None:
        assert index_fields(None, "t", "by_id") == ()
        assert index_fields(None, "t", "by_creation_time") == ()
        with pytest.raises(SchemaError, match="Index t.by_a not found"):
            index_fields(None, "t", "by_a")
        assert index_fields(app_schema(), "tasks", "by_owner") == ("owner",)

    def test_check_document_mapping(self) -> None:
        from types import MappingProxyType

        result = check_document(MappingProxyType({"a": 1.0}))
        assert result == {"a": 1.0} and type(result) is dict
        with pytest.raises(DocumentValidationError, match="longer than 64"):
            check_document({"f" * 65: 1.0})


@given(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,63}", fullmatch=True))
def test_generated_valid_table_names(name: str) -> None:
    assert check_table_name(name) == name


@given(st.text(max_size=70))
def test_table_names_accepted_only_if_identifier(name: str) -> None:
    valid = (
        0 < len(name) <= 64
        and name[0].isascii()
        and name[0].isalpha()
        and all(ch.isascii() and (ch.isalnum() or ch == "_") for ch in name)
    )
    if valid:
        check_table_name(name)
    else:
        with pytest.raises(SchemaError):
            check_table_name(name)


def test_package_exports() -> None:
    for name in schema.__all__:
        assert hasattr(schema, name), name
    assert schema.v is v


# Flat validators (objects of scalar fields) skip check_document's name and value checks, which
# their output passes by construction; everything else, and any validator whose field names
# were never checked (a TableDefinition built directly, as a manifest does), goes through them.
FLAT_CASES: list[tuple[Any, Any]] = [
    (v.object({"a": v.string(), "n": v.optional(v.union(v.number(), v.null()))}), {"a": "x"}),
    (v.object({"a": v.string()}), {"a": "x" * MAX_DOCUMENT_SIZE}),
    (v.object({"i": v.int64(), "b": v.bytes()}), {"i": 3, "b": bytearray(b"q")}),
    (v.union(v.object({"k": v.literal("a")}), v.object({"k": v.literal(1)})), {"k": 1}),
    (ObjectV({"$a": v.string()}), {"$a": "x"}),
    (ObjectV({"_a": v.string()}), {"_a": "x"}),
    (ObjectV({"é": v.string()}), {"é": "x"}),
    (v.object({"a": v.any()}), {"a": {"$b": 1.0}}),
    (v.object({"a": v.array(v.any())}), {"a": [{"b": 1 << 60}]}),
    (v.any(), {"a": {"ctl\x01": 1.0}}),
]


@pytest.mark.parametrize(("validator", "doc"), FLAT_CASES, ids=range(len(FLAT_CASES)))
def test_flat_validators_answer_as_the_full_checks(
    validator: Any, doc: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    table_schema = SchemaDefinition({"t": TableDefinition(validator)})

    def outcome() -> Any:
        try:
            return table_schema.validate_document("t", doc, names_checked=True)
        except ValidationError as exc:
            return (type(exc), str(exc), exc.path)

    fast = outcome()
    monkeypatch.setattr(schema.tables, "_is_flat", lambda validator: False)
    assert fast == outcome()
