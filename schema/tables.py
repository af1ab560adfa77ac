"""Table, index and schema definitions, and validation of user documents against them.

Owns ``define_table``/``define_schema``, the naming rules for tables, indexes and top-level
document fields (no leading ``_``: ``_id`` and ``_creationTime`` belong to the runtime), the
built-in indexes ``by_id``/``by_creation_time``, and ``validate_document`` for schemaful and
schemaless apps. It does not build index keys, assign table numbers or add system fields
(``reactor`` does).

Decisions: with a schema, writing to a table it does not declare is a ``SchemaError`` unless
``strict_table_name_types=False`` (Convex's flag is type-only; in Python it is the runtime
switch), in which case undeclared tables are checked structurally, as with no schema at all.
``schema_validation=False`` skips the document validators but keeps the structural checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from schema.errors import SchemaError, ValidationError
from schema.validators import (
    AnyV,
    BooleanV,
    BytesV,
    Float64V,
    IdV,
    Int64V,
    LiteralV,
    NullV,
    ObjectV,
    OptionalV,
    ResolveIdTable,
    StringV,
    UnionV,
    Validator,
    v,
)
from schema.values import (
    MAX_DOCUMENT_SIZE,
    MAX_FIELDS,
    Value,
    check_field_name,
    check_value,
    value_size,
)

__all__ = [
    "BUILTIN_INDEXES",
    "MAX_INDEXES_PER_TABLE",
    "MAX_INDEX_FIELDS",
    "MAX_NAME_LEN",
    "MAX_TABLES",
    "DocumentValidationError",
    "SchemaDefinition",
    "TableDefinition",
    "check_document",
    "check_table_name",
    "define_schema",
    "define_table",
    "index_fields",
    "validate_document",
]

MAX_NAME_LEN = 64
MAX_TABLES = 10_000
# Convex appends `_creationTime` to every user index and counts it toward the 16-field limit,
# so a user index names at most 15 fields.
MAX_INDEX_FIELDS = 16
MAX_INDEXES_PER_TABLE = 64  # the code constant; Convex's docs say 32
BUILTIN_INDEXES: Mapping[str, tuple[str, ...]] = {"by_id": (), "by_creation_time": ()}

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


class DocumentValidationError(ValidationError, SchemaError):
    """A document breaks its table's schema; it is both a validation and a schema error."""

    code = "SchemaEnforcementError"

    def __init__(self, message: str, *, path: str = "$", table: str = "") -> None:
        super().__init__(message, path=path)
        self.table = table


def _check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str):
        raise SchemaError(f"{kind} names must be strings, got {name!r}")
    if name.startswith("_"):
        raise SchemaError(
            f"{kind} name `{name}` is invalid: names starting with `_` are reserved for the system"
        )
    if not name or len(name) > MAX_NAME_LEN:
        raise SchemaError(f"{kind} name `{name}` must be 1 to {MAX_NAME_LEN} characters long")
    if not _NAME_RE.match(name):
        raise SchemaError(
            f"{kind} name `{name}` is invalid: use letters, digits and `_`, starting with a letter"
        )
    return name


def check_table_name(name: Any) -> str:
    """Return ``name`` if it is a valid user table name, else raise ``SchemaError``."""
    return _check_name("Table", name)


def _check_top_level_fields(validator: Validator) -> None:
    """A table's documents are objects whose own fields never start with ``_``."""
    if isinstance(validator, AnyV):
        return
    if isinstance(validator, UnionV):
        for member in validator.members:
            _check_top_level_fields(member)
        return
    if not isinstance(validator, ObjectV):
        raise SchemaError(
            "A table's document validator must be v.object(...), a v.union(...) of objects "
            f"or v.any(), got {validator!r}"
        )
    for name in validator.fields:
        if name.startswith("_"):
            raise SchemaError(
                f"Field `{name}` is invalid: top-level fields starting with `_` are reserved "
                "for system fields (_id, _creationTime)"
            )
        try:
            check_field_name(name, "$", top_level=True)
        except ValidationError as exc:
            raise SchemaError(exc.detail) from None


def _check_index_field(index: str, field: Any) -> str:
    if not isinstance(field, str) or not field:
        raise SchemaError(f"Index `{index}`: field paths must be non-empty strings, got {field!r}")
    if field.startswith("_"):
        raise SchemaError(
            f"Index `{index}`: field `{field}` is invalid: fields starting with `_` are "
            "reserved (_creationTime and _id are appended to every index automatically)"
        )
    for depth, part in enumerate(field.split(".")):
        if not part:
            raise SchemaError(f"Index `{index}`: field path `{field}` has an empty component")
        try:
            check_field_name(part, "$", top_level=depth == 0)
        except ValidationError as exc:
            raise SchemaError(f"Index `{index}`: field path `{field}`: {exc.detail}") from None
    return field


class TableDefinition(msgspec.Struct, frozen=True):
    """One table: its document validator and its user indexes (name → field paths).

    Immutable: ``index()`` returns a new definition. Built-in indexes are not listed.
    """

    document_validator: Validator
    indexes: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)

    def index(self, name: str, fields: Sequence[str]) -> TableDefinition:
        """Return a copy of this table with one more index.

        Args:
            name: an identifier (letters, digits, ``_``; starts with a letter; ≤ 64 chars),
                not ``by_id`` or ``by_creation_time``.
            fields: field paths (``"author"``, ``"address.city"``), 1 to 15 of them, unique,
                none starting with ``_``.

        Raises:
            SchemaError: a rule above is broken or the index name is already taken.
        """
        _check_name("Index", name)
        if name in BUILTIN_INDEXES:
            raise SchemaError(f"Index name `{name}` is reserved for a built-in index")
        if name in self.indexes:
            raise SchemaError(f"Duplicate index name `{name}`")
        if len(self.indexes) >= MAX_INDEXES_PER_TABLE:
            raise SchemaError(f"A table can have at most {MAX_INDEXES_PER_TABLE} indexes")
        if isinstance(fields, str) or not isinstance(fields, Sequence):
            raise SchemaError(f"Index `{name}`: fields must be a list of field paths")
        if not fields:
            raise SchemaError(f"Index `{name}` must have at least one field")
        if len(fields) > MAX_INDEX_FIELDS - 1:
            raise SchemaError(
                f"Index `{name}` has {len(fields)} fields; at most {MAX_INDEX_FIELDS - 1} are "
                f"allowed (_creationTime is appended and counts toward the limit of "
                f"{MAX_INDEX_FIELDS})"
            )
        checked = tuple(_check_index_field(name, field) for field in fields)
        if len(set(checked)) != len(checked):
            duplicate = next(f for f in checked if checked.count(f) > 1)
            raise SchemaError(f"Index `{name}` lists the field `{duplicate}` more than once")
        return TableDefinition(self.document_validator, {**self.indexes, name: checked})

    def to_json(self) -> dict[str, Any]:
        """Convex's table descriptor (the ``tables`` entries of a schema JSON)."""
        return {
            "indexes": [
                {"indexDescriptor": name, "fields": list(fields)}
                for name, fields in self.indexes.items()
            ],
            "searchIndexes": [],
            "vectorIndexes": [],
            "documentType": self.document_validator.to_json(),
        }


def define_table(fields: Mapping[str, Validator] | Validator) -> TableDefinition:
    """Define a table from a dict of field validators or one document validator.

    Raises:
        SchemaError: a top-level field starts with ``_``, or the validator cannot describe a
            document (it must be an object, a union of objects, or ``v.any()``).
    """
    if isinstance(fields, Validator):
        validator: Validator = fields
    elif isinstance(fields, Mapping):
        validator = v.object(fields)
    else:
        raise TypeError(
            f"define_table() expects a dict of validators or a validator, got {fields!r}"
        )
    _check_top_level_fields(validator)
    return TableDefinition(validator)


def _where(table: str) -> str:
    return f" in table `{table}`" if table else ""


def _check_top_level_names(doc: Any, table: str) -> Mapping[str, Value]:
    if not isinstance(doc, Mapping):
        raise DocumentValidationError(
            f"A document{_where(table)} must be an object, got `{type(doc).__name__}`",
            table=table,
        )
    for name in doc:
        try:
            check_field_name(name, "$", top_level=True)
        except ValidationError as exc:
            raise DocumentValidationError(
                f"Invalid document{_where(table)}: {exc.detail}", table=table
            ) from None
        if name.startswith("_"):
            raise DocumentValidationError(
                f"Invalid document{_where(table)}: field `{name}` starts with `_`, which is "
                "reserved for system fields",
                table=table,
            )
    return doc


_SCALARS = (StringV, Float64V, Int64V, BooleanV, NullV, BytesV, IdV, LiteralV)


def _scalar(validator: Validator) -> bool:
    if isinstance(validator, _SCALARS):
        return True
    if isinstance(validator, OptionalV):
        return _scalar(validator.inner)
    if isinstance(validator, UnionV):
        return all(_scalar(member) for member in validator.members)
    return False


def _valid_top_level_name(name: Any) -> bool:
    if not isinstance(name, str) or name.startswith("_"):
        return False
    try:
        check_field_name(name, "$", top_level=True)
    except ValidationError:
        return False
    return True


def _flat(validator: Validator) -> bool:
    """Whether everything ``validator`` returns is an object of at most ``MAX_FIELDS`` valid,
    non-reserved top-level fields holding canonical scalars: such a result passes
    ``check_document``'s name and value checks by construction (only its size is left)."""
    if isinstance(validator, UnionV):
        return all(_flat(member) for member in validator.members)
    if not isinstance(validator, ObjectV) or len(validator.fields) > MAX_FIELDS:
        return False
    return all(
        _valid_top_level_name(name) and _scalar(field) for name, field in validator.fields.items()
    )


# id(validator) -> (validator, _flat(validator)); the validator is kept so its id stays unique.
_FLAT: dict[int, tuple[Validator, bool]] = {}


def _is_flat(validator: Validator) -> bool:
    entry = _FLAT.get(id(validator))
    if entry is None or entry[0] is not validator:
        if len(_FLAT) >= 4096:
            _FLAT.clear()
        entry = _FLAT[id(validator)] = (validator, _flat(validator))
    return entry[1]


def _check_size(mapping: Mapping[str, Value], table: str) -> None:
    size = value_size(mapping)
    if size > MAX_DOCUMENT_SIZE:
        raise DocumentValidationError(
            f"Document{_where(table)} is {size} bytes, more than the limit of {MAX_DOCUMENT_SIZE}",
            table=table,
        )


def check_document(doc: Any, *, table: str = "") -> dict[str, Value]:
    """Structural checks every stored user document passes, schema or not.

    The document must be an object whose top-level fields are valid and do not start with
    ``_``, whose values are Convex values within the nesting, length and 1 MiB size limits.

    Returns:
        The document itself (as a dict), unconverted.

    Raises:
        DocumentValidationError: naming the offending path.
    """
    mapping = _check_top_level_names(doc, table)
    try:
        check_value(mapping)
    except ValidationError as exc:
        raise DocumentValidationError(
            f"Invalid document{_where(table)}: {exc.detail}", path=exc.path, table=table
        ) from None
    _check_size(mapping, table)
    return mapping if isinstance(mapping, dict) else dict(mapping)


class SchemaDefinition(msgspec.Struct, frozen=True):
    """An app's schema: table name → TableDefinition, plus Convex's two schema flags."""

    tables: dict[str, TableDefinition]
    schema_validation: bool = True
    strict_table_name_types: bool = True

    def table(self, name: str) -> TableDefinition | None:
        """The definition of table ``name``; None if undeclared but allowed.

        Raises:
            SchemaError: the table is undeclared and ``strict_table_name_types`` is on.
        """
        definition = self.tables.get(name)
        if definition is None:
            check_table_name(name)
            if self.strict_table_name_types:
                raise SchemaError(f"Table `{name}` is not defined in the schema")
        return definition

    def validate_document(
        self,
        table: str,
        doc: Any,
        *,
        resolve_id_table: ResolveIdTable | None = None,
        names_checked: bool = False,
    ) -> dict[str, Value]:
        """Validate a user document (without ``_id``/``_creationTime``) for ``table``.

        ``names_checked``: the caller has already checked that ``doc`` is a dict whose
        top-level field names are valid and not reserved (the checks are then not repeated).

        Returns:
            The document converted to canonical form (plain ints → float or Int64).

        Raises:
            SchemaError: ``table`` is not in the schema (and undeclared tables are not allowed).
            DocumentValidationError: the document does not match (a ValidationError with path).
        """
        definition = self.table(table)
        if definition is None or not self.schema_validation:
            return check_document(doc, table=table)
        # Reserved names first: `_id` in a document is a clearer error than "extra field".
        if not names_checked:
            _check_top_level_names(doc, table)
        try:
            converted = definition.document_validator.validate(
                doc, resolve_id_table=resolve_id_table
            )
        except ValidationError as exc:
            raise DocumentValidationError(
                f"Document for table `{table}` does not match the schema: {exc.detail}",
                path=exc.path,
                table=table,
            ) from None
        if _is_flat(definition.document_validator):
            # Names and values are valid by construction: only the size can still fail.
            _check_size(converted, table)
            return converted  # type: ignore[no-any-return]
        return check_document(converted, table=table)

    def index_fields(self, table: str, index: str) -> tuple[str, ...]:
        """The user field paths of ``table.index`` (``()`` for the built-in indexes).

        Raises:
            SchemaError: the table is not allowed, or it has no such index.
        """
        definition = self.table(table)
        if index in BUILTIN_INDEXES:
            return BUILTIN_INDEXES[index]
        if definition is None or index not in definition.indexes:
            raise SchemaError(f"Index {table}.{index} not found")
        return definition.indexes[index]

    def to_json(self) -> dict[str, Any]:
        """Convex's schema descriptor (as the CLI pushes it)."""
        return {
            "tables": [
                {"tableName": name, **table.to_json()} for name, table in self.tables.items()
            ],
            "schemaValidation": self.schema_validation,
        }


def define_schema(
    tables: Mapping[str, TableDefinition],
    *,
    schema_validation: bool = True,
    strict_table_name_types: bool = True,
) -> SchemaDefinition:
    """Define an app's schema.

    Args:
        tables: table name → ``define_table(...)``.
        schema_validation: check documents against their validators on every write.
        strict_table_name_types: reject writes to tables the schema does not declare.

    Raises:
        SchemaError: a table name is invalid, or there are more than 10,000 tables.
    """
    if not isinstance(tables, Mapping):
        raise TypeError(f"define_schema() expects a dict of tables, got {tables!r}")
    if len(tables) > MAX_TABLES:
        raise SchemaError(f"A schema can have at most {MAX_TABLES} tables")
    for name, definition in tables.items():
        check_table_name(name)
        if not isinstance(definition, TableDefinition):
            raise TypeError(
                f"Table `{name}` must be defined with define_table(...), got {definition!r}"
            )
    return SchemaDefinition(
        dict(tables),
        schema_validation=schema_validation,
        strict_table_name_types=strict_table_name_types,
    )


def validate_document(
    schema: SchemaDefinition | None,
    table: str,
    doc: Any,
    *,
    resolve_id_table: ResolveIdTable | None = None,
) -> dict[str, Value]:
    """Validate a user document whether or not the app has a schema.

    With ``schema=None`` any valid table name is allowed and documents are checked
    structurally only (plain ints stay plain ints: the value model stores them as float64).
    """
    if schema is not None:
        return schema.validate_document(table, doc, resolve_id_table=resolve_id_table)
    check_table_name(table)
    return check_document(doc, table=table)


def index_fields(schema: SchemaDefinition | None, table: str, index: str) -> tuple[str, ...]:
    """Like ``SchemaDefinition.index_fields``; with no schema only the built-ins exist."""
    if schema is not None:
        return schema.index_fields(table, index)
    check_table_name(table)
    if index in BUILTIN_INDEXES:
        return BUILTIN_INDEXES[index]
    raise SchemaError(f"Index {table}.{index} not found")
