"""The TypeScript half of ``reactor codegen``: Convex's ``_generated`` files for a Python app.

Owns the mapping of validators to TypeScript types (Convex's ``validatorToType``: ``v.int64()``
is ``bigint``, ``v.bytes()`` ``ArrayBuffer``, ``v.id("t")`` ``Id<"t">``...) and the text of
``api.js``, ``api.d.ts`` and ``dataModel.d.ts`` as Convex's static codegen writes them, so a
frontend written for Convex type-checks unchanged. It does not load apps or touch files.
"""

from __future__ import annotations

import json
import math
import re

from reactor.codegen.api_tree import ApiBranch, ApiFunction, api_tree, document_validator
from reactor.errors import CodegenError
from schema.tables import SchemaDefinition, TableDefinition
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
)
from schema.values import Int64

__all__ = ["api_dts", "api_js", "data_model_dts", "typescript_files", "validator_type"]

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_SYSTEM_INDEXES = {"by_id": ("_id",), "by_creation_time": ("_creationTime",)}


def _header(description: str) -> str:
    return (
        "/* eslint-disable */\n"
        "/**\n"
        f" * {description}\n"
        " *\n"
        " * THIS CODE IS AUTOMATICALLY GENERATED.\n"
        " *\n"
        " * To regenerate, run `reactor codegen`.\n"
        " * @module\n"
        " */\n"
    )


def _key(name: str) -> str:
    """A property name: bare when it is an identifier, else a quoted string."""
    return name if _IDENTIFIER.fullmatch(name) else json.dumps(name)


def _literal(value: str | bool | float | Int64) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Int64):
        return f"{int(value)}n"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return "number"  # TypeScript has no literal type for NaN or ±Infinity
        return str(int(value)) if value.is_integer() else repr(value)
    return json.dumps(value)


def validator_type(validator: Validator) -> str:
    """The TypeScript type of the values ``validator`` accepts, as Convex's codegen writes it.

    Raises:
        CodegenError: an unknown validator node.
    """
    if isinstance(validator, OptionalV):
        return validator_type(validator.inner)
    if isinstance(validator, StringV):
        return "string"
    if isinstance(validator, Float64V):
        return "number"
    if isinstance(validator, Int64V):
        return "bigint"
    if isinstance(validator, BooleanV):
        return "boolean"
    if isinstance(validator, NullV):
        return "null"
    if isinstance(validator, BytesV):
        return "ArrayBuffer"
    if isinstance(validator, AnyV):
        return "any"
    if isinstance(validator, IdV):
        return f"Id<{json.dumps(validator.table)}>"
    if isinstance(validator, LiteralV):
        return _literal(validator.value)
    if isinstance(validator, ArrayV):
        return f"Array<{validator_type(validator.item)}>"
    if isinstance(validator, RecordV):
        return f"Record<{validator_type(validator.keys)}, {validator_type(validator.values)}>"
    if isinstance(validator, UnionV):
        return " | ".join(validator_type(member) for member in validator.members)
    if isinstance(validator, ObjectV):
        return _object_type(validator.fields)
    raise CodegenError(f"No TypeScript type for the validator {validator!r}")


def _object_type(fields: dict[str, Validator]) -> str:
    if not fields:
        return "{}"
    parts = [
        f"{_key(name)}{'?' if field.is_optional else ''}: {validator_type(field)}"
        for name, field in fields.items()
    ]
    return "{ " + "; ".join(parts) + " }"


def _reference(function: ApiFunction) -> str:
    args = "any" if function.args is None else validator_type(function.args)
    returns = "any" if function.returns is None else validator_type(function.returns)
    return f'FunctionReference<"{function.kind}", "{function.visibility}", {args}, {returns}>'


def _tree_lines(tree: ApiBranch, indent: str) -> list[str]:
    lines = []
    for name in sorted(tree):
        node = tree[name]
        if isinstance(node, ApiFunction):
            lines.append(f"{indent}{_key(name)}: {_reference(node)};")
        else:
            lines.append(f"{indent}{_key(name)}: {{")
            lines.extend(_tree_lines(node, indent + "  "))
            lines.append(f"{indent}}};")
    return lines


def _api_comment(name: str, visibility: str) -> str:
    return (
        "/**\n"
        f" * A utility for referencing Convex functions in your app's {visibility} API.\n"
        " *\n"
        " * Usage:\n"
        " * ```js\n"
        f" * const myFunctionReference = {name}.myModule.myFunction;\n"
        " * ```\n"
        " */\n"
    )


def api_dts(functions: list[ApiFunction]) -> str:
    """``api.d.ts``: ``api`` and ``internal`` typed function by function (Convex's static API).

    Raises:
        CodegenError: the function paths cannot form an API tree (``api_tree.api_tree``).
    """
    out = [
        _header("Generated `api` utility."),
        'import type { FunctionReference } from "convex/server";\n'
        'import type { GenericId as Id } from "convex/values";\n',
    ]
    for name, visibility in (("api", "public"), ("internal", "internal")):
        tree = api_tree(functions, visibility)
        body = _tree_lines(tree, "  ")
        out.append(
            _api_comment(name, visibility)
            + f"export declare const {name}: {{"
            + ("\n" + "\n".join(body) + "\n" if body else "")
            + "};\n"
        )
    out.append("export declare const components: {};\n")
    return "\n".join(out)


def api_js() -> str:
    """``api.js``: at run time every reference is ``anyApi``'s (a path, checked by the server)."""
    return (
        _header("Generated `api` utility.")
        + '\nimport { anyApi, componentsGeneric } from "convex/server";\n\n'
        + _api_comment("api", "public")
        + "export const api = anyApi;\n"
        + "export const internal = anyApi;\n"
        + "export const components = componentsGeneric();\n"
    )


def _field_paths(validator: Validator) -> list[list[str]]:
    """Convex's ``extractFieldPaths``: every (nested) field path a filter or index may name."""
    if isinstance(validator, OptionalV):
        return _field_paths(validator.inner)
    if isinstance(validator, ObjectV):
        paths: list[list[str]] = []
        for name, field in validator.fields.items():
            paths.append([name])
            paths.extend([name, *sub] for sub in _field_paths(field) if sub)
        return paths
    if isinstance(validator, UnionV):
        return [path for member in validator.members for path in _field_paths(member)]
    if isinstance(validator, RecordV):
        return [["${string}"]]
    return [[]]


def _string_union(items: list[str]) -> str:
    if not items:
        return "never"
    return " | ".join(f"`{item}`" if "${" in item else json.dumps(item) for item in items)


def _table_lines(table: str, definition: TableDefinition) -> list[str]:
    document = document_validator(table, definition.document_validator, system_first=False)
    paths = sorted({".".join(path) for path in _field_paths(document)} - {""})
    lines = [
        f"  {_key(table)}: {{",
        f"    document: {validator_type(document)};",
        f"    fieldPaths: {_string_union(paths)};",
        "    indexes: {",
    ]
    indexes: dict[str, tuple[str, ...]] = dict(_SYSTEM_INDEXES)
    for name, fields in definition.indexes.items():
        # Every user index ends with _creationTime, which a range may name after the fields.
        indexes[name] = (*fields, "_creationTime")
    for name, fields in indexes.items():
        lines.append(f"      {_key(name)}: {json.dumps(list(fields))};")
    lines += ["    };", "    searchIndexes: {};", "    vectorIndexes: {};", "  };"]
    return lines


_TYPE_DOCS = """
/**
 * The names of all of your Convex tables.
 */
export type TableNames = TableNamesInDataModel<DataModel>;

/**
 * The type of a document stored in Convex.
 *
 * @typeParam TableName - A string literal type of the table name (like "users").
 */
export type Doc<TableName extends TableNames> = DocumentByName<DataModel, TableName>;

/**
 * An identifier for a document in Convex.
 *
 * Convex documents are uniquely identified by their `Id`, which is accessible
 * on the `_id` field. To learn more, see [Document IDs](https://docs.convex.dev/using/document-ids).
 *
 * Documents can be loaded using `db.get(tableName, id)` in query and mutation functions.
 *
 * IDs are just strings at runtime, but this type can be used to distinguish them from other
 * strings when type checking.
 *
 * @typeParam TableName - A string literal type of the table name (like "users").
 */
export type Id<TableName extends TableNames | SystemTableNames> = GenericId<TableName>;
"""

_DATA_MODEL_DOC = """/**
 * A type describing your Convex data model.
 *
 * This type includes information about what tables you have, the type of
 * documents stored in those tables, and the indexes defined on them.
 *
 * This type is used to parameterize methods like `queryGeneric` and
 * `mutationGeneric` to make them type-safe.
 */
"""

_NO_SCHEMA = """import type { AnyDataModel } from "convex/server";
import type { GenericId } from "convex/values";

/**
 * No `schema.py` file found!
 *
 * This generated code has permissive types like `Doc = any` because
 * Reactor doesn't know your schema. Add a `schema.py` defining
 * `schema = define_schema({...})` for more type safety, then rerun
 * `reactor codegen`.
 */

/**
 * The names of all of your Convex tables.
 */
export type TableNames = string;

/**
 * The type of a document stored in Convex.
 */
export type Doc = any;

/**
 * An identifier for a document in Convex.
 */
export type Id<TableName extends TableNames = TableNames> = GenericId<TableName>;

"""


def data_model_dts(schema: SchemaDefinition | None) -> str:
    """``dataModel.d.ts``: ``DataModel``, ``TableNames``, ``Doc<"t">`` and ``Id<"t">``.

    ``Id`` also accepts the system tables (``Id<"_storage">``, ``Id<"_scheduled_functions">``).

    Raises:
        CodegenError: a table's document validator is neither an object, a union of objects
            nor ``v.any()``.
    """
    header = _header("Generated data model types.")
    if schema is None:
        return (
            header + "\n" + _NO_SCHEMA + _DATA_MODEL_DOC + "export type DataModel = AnyDataModel;\n"
        )
    lines = []
    for table in sorted(schema.tables):
        lines.extend(_table_lines(table, schema.tables[table]))
    model = "export type DataModel = {\n" + "\n".join(lines) + ("\n" if lines else "") + "}"
    if not schema.schema_validation:
        model += " & AnyDataModel"
    return (
        header
        + "\nimport type {\n  AnyDataModel,\n  DocumentByName,\n  SystemTableNames,\n"
        + '  TableNamesInDataModel,\n} from "convex/server";\n'
        + 'import type { GenericId } from "convex/values";\n\n'
        + _DATA_MODEL_DOC
        + model
        + ";\n"
        + _TYPE_DOCS
    )


def typescript_files(
    functions: list[ApiFunction], schema: SchemaDefinition | None
) -> dict[str, str]:
    """File name -> contents of every TypeScript file ``reactor codegen`` writes.

    Raises:
        CodegenError: the app cannot be described (see ``api_dts`` and ``data_model_dts``).
    """
    return {
        "api.d.ts": api_dts(functions),
        "api.js": api_js(),
        "dataModel.d.ts": data_model_dts(schema),
    }
