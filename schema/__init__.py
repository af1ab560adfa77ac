"""Reactor's data model: Convex values, validators (``v``), tables, schemas and the error root.

This package is layer 0: it depends on msgspec and the standard library only. It re-exports the
names app code needs; the submodules (``values``, ``ids``, ``validators``, ``tables``,
``errors``) hold the rest.
"""

from __future__ import annotations

from schema.errors import (
    ArgumentValidationError,
    ReactorError,
    ReturnValidationError,
    SchemaError,
    ValidationError,
)
from schema.tables import (
    DocumentValidationError,
    SchemaDefinition,
    TableDefinition,
    define_schema,
    define_table,
)
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
from schema.values import Int64

__all__ = [
    "AnyV",
    "ArgumentValidationError",
    "ArrayV",
    "BooleanV",
    "BytesV",
    "DocumentValidationError",
    "Float64V",
    "IdV",
    "Int64",
    "Int64V",
    "LiteralV",
    "NullV",
    "ObjectV",
    "OptionalV",
    "ReactorError",
    "RecordV",
    "ReturnValidationError",
    "SchemaDefinition",
    "SchemaError",
    "StringV",
    "TableDefinition",
    "UnionV",
    "ValidationError",
    "Validator",
    "define_schema",
    "define_table",
    "v",
    "validate_args",
    "validate_returns",
]
