"""Convex validators (``v.string()``, ``v.object({...})``, ...) as frozen msgspec Structs.

Owns the validator nodes, the ``v`` builder, ``validate()`` (which checks a value and returns it
in its canonical Python form, raising ``ValidationError`` with a ``$.path``), the Convex JSON
descriptor of each validator, and the argument/return helpers used by the function layer. It
does not own table or index definitions, document-level rules such as reserved ``_`` fields, or
the structural value limits (``schema.tables`` and ``schema.values``).

Misuse of the builder (a non-validator where a validator is expected, an unsupported literal
type) raises ``TypeError``; a well-typed but meaningless definition (``v.optional`` inside an
array, record keys that are not strings) raises ``SchemaError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeAlias

import msgspec

from schema.errors import (
    ArgumentValidationError,
    ReturnValidationError,
    SchemaError,
    ValidationError,
)
from schema.ids import decode_id
from schema.values import (
    MAX_ARRAY_LEN,
    Int64,
    Value,
    check_field_name,
    check_value,
    convex_to_json,
    json_to_convex,
    type_name,
)

__all__ = [
    "AnyV",
    "ArrayV",
    "BooleanV",
    "BytesV",
    "Float64V",
    "IdV",
    "Int64V",
    "LiteralV",
    "NullV",
    "ObjectV",
    "OptionalV",
    "RecordV",
    "ResolveIdTable",
    "StringV",
    "UnionV",
    "Validator",
    "v",
    "validate_args",
    "field_from_json",
    "validate_returns",
    "validator_from_json",
]

ResolveIdTable: TypeAlias = Callable[[str], "str | None"]
"""Maps a document id to the name of the table it belongs to (None when unknown)."""

_F53 = 1 << 53


def _got(value: Any) -> str:
    return f"`{type_name(value)}`"


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool, int, float))


def _is_number(value: Any) -> bool:
    """A Convex float64 in Python: a float, or a plain int (not bool, not Int64)."""
    return isinstance(value, float) or (
        isinstance(value, int) and not isinstance(value, (bool, Int64))
    )


class Validator(msgspec.Struct, frozen=True):
    """Base of every validator node. Subclasses are immutable and compare by structure."""

    @property
    def is_optional(self) -> bool:
        """True only for ``v.optional(...)``, which marks an object field that may be absent."""
        return False

    def validate(
        self, value: Value, path: str = "$", *, resolve_id_table: ResolveIdTable | None = None
    ) -> Value:
        """Check ``value`` and return it in canonical form (plain ``int`` → float or Int64).

        Args:
            value: the Python value to check.
            path: where ``value`` sits, for error messages (``$`` is the root).
            resolve_id_table: maps an id to its table name; when given, ``v.id(t)`` also checks
                that the id belongs to table ``t``.

        Returns:
            The converted value (new lists and dicts for containers).

        Raises:
            ValidationError: the value does not match; ``path`` names the offending part.
        """
        return self._check(value, path, resolve_id_table)

    def _check(self, value: Value, path: str, resolve: ResolveIdTable | None) -> Value:
        raise NotImplementedError

    def _applies(self, value: Value) -> bool:
        """Whether ``value`` has the shape this validator is about (explains union failures)."""
        return False

    def to_json(self) -> dict[str, Any]:
        """The Convex JSON descriptor, e.g. ``{"type": "string"}``."""
        raise NotImplementedError

    def describe(self) -> str:
        """A short type description for error messages (``string``, ``'todo'``, ...)."""
        return repr(self)


class _Primitive(Validator, frozen=True):
    _json_type: ClassVar[str] = ""
    _builder: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        return {"type": self._json_type}

    def describe(self) -> str:
        return self._json_type

    def __repr__(self) -> str:
        return f"v.{self._builder}()"


class StringV(_Primitive, frozen=True):
    _json_type = "string"
    _builder = "string"

    def _check(self, value: Value, path: str, resolve: ResolveIdTable | None) -> Value:
        if not isinstance(value, str):
            raise ValidationError(f"Expected `string`, got {_got(value)}", path=path)
        return value


class Float64V(_Primitive, frozen=True):
    """``v.number()`` / ``v.float64()``: floats, and plain ints within ±2**53 (as floats)."""

    _json_type = "number"
    _builder = "number"

    def _check(self, value: Value, path: str, resolve: ResolveIdTable | None) -> Value:
        if isinstance(value, float):
            return value
        if not _is_number(value):
            raise ValidationError(f"Expected `number`, got {_got(value)}", path=path)
        if not -_F53 <= value <= _F53:
            raise ValidationError(
                f"Integer {value} is outside the safe float64 range; "
                "use v.int64() and Int64 for large integers",
                path=path,
            )
        return float(value)

    def _applies(self, value: Value) -> bool:
        return _is_number(value)


class Int64V(_Primitive, frozen=True):
    """``v.int64()`` / ``v.bigint()``: Int64, and plain ints (converted); never floats."""

    _json_type = "bigint"
    _builder = "int64"

    def _check(self, value: Value, path: str, resolve: ResolveIdTable | None) -> Value:
        if isinstance(value, Int64):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return Int64(value)
            except ValidationError as exc:
                raise ValidationError(exc.detail, path=path) from None
        if isinstance(value, float):
            raise ValidationError(
                f"Expected `bigint`, got `number` ({value!r}); floats are never converted to "
                "int64, pass an int or Int64",
                path=path,
            )
        raise ValidationError(f"Expected `bigint`, got {_got(value)}", path=path)

    def _applies(self, value: Value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)


class BooleanV(_Primitive, frozen=True):
    _json_type = "boolean"
    _builder = "boolean"

    def _check(self, value: Value, path: str, resolve: ResolveIdTable | None) -> Value:
        if not isinstance(value, bool):
            raise ValidationError(f"Expected `boolean`, got {_got(value)}", path=path)
        return value


class NullV(_Primitive, frozen=True):
    _json_type = "null"
    _builder = "null"

    def _check(self, value: Value, path: str, resolve: ResolveIdTable | None) -> Value:
        if value is not None:
            raise ValidationError(f"Expected `null`, got {_got(value)}", path=path)
        return None


class BytesV(_Primitive, frozen=True):
    """``v.bytes()``: bytes, bytearray or memoryview, returned as ``bytes``."""

    _json_type = "bytes"
    _builder = "bytes"

    def _check(self, value: Value, path: str, resolve: ResolveIdTable | None) -> Value:
        if isinstance(value, bytes):
            return value
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        raise ValidationError(f"Expected `bytes`, got {_got(value)}", path=path)


class AnyV(_Primitive, frozen=True):
    """``v.any()``: any Convex value, returned unchanged after the structural checks."""

    _json_type = "any"
    _builder = "any"

    def _check(self, value: Value, path: str, resolve: ResolveIdTable | None) -> Value:
        check_value(value, path)
        return value

    def _applies(self, value: Value) -> bool:
        return True


class IdV(Validator, frozen=True):
    """``v.id(table)``: a well-formed document id, of ``table`` when a resolver is given."""

    table: str

    def _check(self, value: Value, path: str, resolve: ResolveIdTable | None) -> Value:
        if not isinstance(value, str):
            raise ValidationError(
                f"Value does not match validator {self!r}: expected an id string, "
                f"got {_got(value)}",
                path=path,
            )
        try:
            decode_id(value)
        except ValidationError as exc:
            raise ValidationError(
                f"Value does not match validator {self!r}: {exc.detail}", path=path
            ) from None
        if resolve is not None:
            actual = resolve(value)
            if actual != self.table:
                where = "no known table" if actual is None else f"table `{actual}`"
                raise ValidationError(
                    f'Value does not match validator {self!r}: id "{value}" belongs to {where}',
                    path=path,
                )
        return value

    def _applies(self, value: Value) -> bool:
        return isinstance(value, str)

    def to_json(self) -> dict[str, Any]:
        return {"type": "id", "tableName": self.table}

    def __repr__(self) -> str:
        return f'v.id("{self.table}")'


class LiteralV(Validator, frozen=True):
    """``v.literal(x)``: exactly ``x``, type included (Int64(1) never matches 1.0).

    Plain int literals are stored as floats (``v.literal(1)`` is the number 1.0).
    """

    value: str | bool | float | Int64

    def _check(self, value: Value, path: str, resolve: ResolveIdTable | None) -> Value:
        expected = self.value
        if isinstance(expected, bool):
            if isinstance(value, bool) and value is expected:
                return value
        elif isinstance(expected, Int64):
            if isinstance(value, Int64) and value == expected:
                return value
        elif isinstance(expected, float):
            if _is_number(value) and (isinstance(value, float) or -_F53 <= value <= _F53):
                number = float(value)
                if number == expected or (math.isnan(number) and math.isnan(expected)):
                    return number
        elif isinstance(value, str) and value == expected:
            return value
        got = repr(value) if _is_scalar(value) else _got(value)
        raise ValidationError(f"Expected the literal {expected!r}, got {got}", path=path)

    def to_json(self) -> dict[str, Any]:
        return {"type": "literal", "value": convex_to_json(self.value)}

    def describe(self) -> str:
        return repr(self.value)

    def __repr__(self) -> str:
        return f"v.literal({self.value!r})"


class ArrayV(Validator, frozen=True):
    """``v.array(item)``: a list (or tuple) of items, returned as a new list."""

    item: Validator

    def _check(self, value: Value, path: str, resolve: ResolveIdTable | None) -> Value:
        if not isinstance(value, (list, tuple)):
            raise ValidationError(f"Expected `array`, got {_got(value)}", path=path)
        if len(value) > MAX_ARRAY_LEN:
            raise ValidationError(
                f"Array has {len(value)} elements, more than the limit {MAX_ARRAY_LEN}",
                path=path,
            )
        item = self.item
        return [item._check(element, f"{path}[{i}]", resolve) for i, element in enumerate(value)]

    def _applies(self, value: Value) -> bool:
        return isinstance(value, (list, tuple))

    def to_json(self) -> dict[str, Any]:
        return {"type": "array", "value": self.item.to_json()}

    def describe(self) -> str:
        return "array"

    def __repr__(self) -> str:
        return f"v.array({self.item!r})"


class OptionalV(Validator, frozen=True):
    """``v.optional(inner)``: marks an object field that may be absent.

    A present value is checked by ``inner``; ``None`` is null, not "absent". Outside an object
    it simply validates ``inner``. Its JSON is ``inner``'s (optionality lives on the field).
    """

    inner: Validator

    @property
    def is_optional(self) -> bool:
        return True

    def _check(self, value: Value, path: str, resolve: ResolveIdTable | None) -> Value:
        return self.inner._check(value, path, resolve)

    def _applies(self, value: Value) -> bool:
        return self.inner._applies(value)

    def to_json(self) -> dict[str, Any]:
        return self.inner.to_json()

    def describe(self) -> str:
        return self.inner.describe()

    def __repr__(self) -> str:
        return f"v.optional({self.inner!r})"


def _validate_fields(
    fields: Mapping[str, Validator], value: Value, path: str, resolve: ResolveIdTable | None
) -> dict[str, Value]:
    if type(value) is not dict and not isinstance(value, Mapping):
        raise ValidationError(f"Expected `object`, got {_got(value)}", path=path)
    for key in value:
        if key not in fields:
            check_field_name(key, path, top_level=False)
            raise ValidationError(
                f"Object contains extra field `{key}` that is not in the validator", path=path
            )
    out: dict[str, Value] = {}
    for name, validator in fields.items():
        if name in value:
            item = value[name]
            # What _check answers for these exact pairs, without building the field's path.
            inner = validator.inner if type(validator) is OptionalV else validator
            if _ACCEPTS.get(type(inner)) is type(item):
                out[name] = item
            else:
                out[name] = validator._check(item, f"{path}.{name}", resolve)
        elif not validator.is_optional:
            raise ValidationError(f"Object is missing the required field `{name}`", path=path)
    return out


# Validators that return a value of exactly this type unchanged (a fast path of objects).
_ACCEPTS: dict[type, type] = {
    Float64V: float,
    StringV: str,
    BooleanV: bool,
    BytesV: bytes,
    Int64V: Int64,
}


class ObjectV(Validator, frozen=True):
    """``v.object({...})``: exactly these fields; ``v.optional`` ones may be absent.

    The result lists fields in validator order. ``fields`` must not be mutated.
    """

    fields: dict[str, Validator]

    def _check(self, value: Value, path: str, resolve: ResolveIdTable | None) -> Value:
        return _validate_fields(self.fields, value, path, resolve)

    def _applies(self, value: Value) -> bool:
        # In a union of objects, a literal field (`kind: "a"`) that does not match rules
        # the member out: it is a discriminant, not the error to report.
        if not isinstance(value, Mapping):
            return False
        for name, field in self.fields.items():
            if isinstance(field, LiteralV):
                try:
                    field._check(value.get(name), name, None)
                except ValidationError:
                    return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "object",
            "value": {
                name: {"fieldType": field.to_json(), "optional": field.is_optional}
                for name, field in self.fields.items()
            },
        }

    def describe(self) -> str:
        tags = [f"{k}: {f.describe()}" for k, f in self.fields.items() if isinstance(f, LiteralV)]
        return f"{{{', '.join(tags)}, ...}}" if tags else "object"

    def __hash__(self) -> int:
        return hash((ObjectV, tuple(self.fields.items())))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name!r}: {field!r}" for name, field in self.fields.items())
        return f"v.object({{{inner}}})"


class RecordV(Validator, frozen=True):
    """``v.record(keys, values)``: an object with arbitrary (validated) keys.

    Keys must be non-empty field names that start with neither ``$`` nor ``_``.
    """

    keys: Validator
    values: Validator

    def _check(self, value: Value, path: str, resolve: ResolveIdTable | None) -> Value:
        if not isinstance(value, Mapping):
            raise ValidationError(f"Expected `object`, got {_got(value)}", path=path)
        out: dict[str, Value] = {}
        for key, item in value.items():
            check_field_name(key, path, top_level=False)
            if not key or key.startswith("_"):
                raise ValidationError(
                    f"Record key {key!r} is invalid: keys must be non-empty and must not "
                    "start with `_`",
                    path=path,
                )
            self.keys._check(key, f"{path}.{key}", resolve)
            out[key] = self.values._check(item, f"{path}.{key}", resolve)
        return out

    def _applies(self, value: Value) -> bool:
        return isinstance(value, Mapping)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "record",
            "keys": self.keys.to_json(),
            "values": {"fieldType": self.values.to_json(), "optional": False},
        }

    def describe(self) -> str:
        return "record"

    def __repr__(self) -> str:
        return f"v.record({self.keys!r}, {self.values!r})"


class UnionV(Validator, frozen=True):
    """``v.union(a, b, ...)``: the first member that accepts the value decides the result."""

    members: tuple[Validator, ...]

    def _check(self, value: Value, path: str, resolve: ResolveIdTable | None) -> Value:
        errors: list[ValidationError] = []
        for member in self.members:
            try:
                return member._check(value, path, resolve)
            except ValidationError as exc:
                errors.append(exc)
        # Members whose shape fits the value failed for a specific reason; when exactly one
        # did, its error (with its deeper path) says more than any summary.
        fitting = [
            (member, exc)
            for member, exc in zip(self.members, errors, strict=True)
            if member._applies(value)
        ]
        if len(fitting) == 1:
            raise fitting[0][1]
        if fitting:
            details = "; ".join(f"{member!r}: {exc}" for member, exc in fitting)
            raise ValidationError(
                f"Value does not match any member of the union ({details})", path=path
            )
        got = _got(value)
        if _is_scalar(value) and any(isinstance(m, LiteralV) for m in self.members):
            got = f"{got} {value!r}"
        raise ValidationError(f"Expected `{self.describe()}`, got {got}", path=path)

    def _applies(self, value: Value) -> bool:
        return any(member._applies(value) for member in self.members)

    def to_json(self) -> dict[str, Any]:
        return {"type": "union", "value": [member.to_json() for member in self.members]}

    def describe(self) -> str:
        return " | ".join(member.describe() for member in self.members)

    def __repr__(self) -> str:
        return f"v.union({', '.join(repr(member) for member in self.members)})"


def _require_validator(value: Any, where: str) -> Validator:
    if not isinstance(value, Validator):
        raise TypeError(f"{where} expects a validator such as v.string(), got {value!r}")
    return value


def _require_required(validator: Validator, where: str) -> Validator:
    _require_validator(validator, where)
    if validator.is_optional:
        raise SchemaError(f"{where} does not accept v.optional(...); it is only for object fields")
    return validator


def _is_string_key(validator: Validator) -> bool:
    if isinstance(validator, (StringV, IdV)):
        return True
    if isinstance(validator, LiteralV):
        return isinstance(validator.value, str)
    if isinstance(validator, UnionV):
        return all(_is_string_key(member) for member in validator.members)
    return False


class _Builder:
    """The ``v`` namespace: ``v.string()``, ``v.object({...})``, ..."""

    __slots__ = ()

    @staticmethod
    def string() -> StringV:
        return _STRING

    @staticmethod
    def number() -> Float64V:
        return _FLOAT64

    float64 = number

    @staticmethod
    def int64() -> Int64V:
        return _INT64

    bigint = int64

    @staticmethod
    def boolean() -> BooleanV:
        return _BOOLEAN

    @staticmethod
    def null() -> NullV:
        return _NULL

    @staticmethod
    def bytes() -> BytesV:
        return _BYTES

    @staticmethod
    def any() -> AnyV:
        return _ANY

    @staticmethod
    def id(table: str) -> IdV:
        if not isinstance(table, str) or not table:
            raise TypeError(f"v.id() expects a table name, got {table!r}")
        return IdV(table)

    @staticmethod
    def literal(value: str | bool | float | int) -> LiteralV:
        if isinstance(value, (str, bool, float, Int64)):
            return LiteralV(value)
        if isinstance(value, int):
            if not -_F53 <= value <= _F53:
                raise TypeError(
                    f"v.literal({value}) is outside the safe float64 range; use Int64({value})"
                )
            return LiteralV(float(value))
        raise TypeError(
            f"v.literal() expects a str, bool, float, int or Int64, got {type(value).__name__}"
        )

    @staticmethod
    def array(item: Validator) -> ArrayV:
        return ArrayV(_require_required(item, "v.array()"))

    @staticmethod
    def object(fields: Mapping[str, Validator]) -> ObjectV:
        if not isinstance(fields, Mapping):
            raise TypeError(f"v.object() expects a dict of validators, got {fields!r}")
        for name, field in fields.items():
            try:
                check_field_name(name, "$", top_level=False)
            except ValidationError as exc:
                raise SchemaError(f"Invalid field in v.object(): {exc.detail}") from None
            if not name:
                raise SchemaError("Invalid field in v.object(): field names must be non-empty")
            _require_validator(field, f"v.object() field {name!r}")
        return ObjectV(dict(fields))

    @staticmethod
    def record(keys: Validator, values: Validator) -> RecordV:
        _require_required(keys, "v.record() keys")
        _require_required(values, "v.record() values")
        if not _is_string_key(keys):
            raise SchemaError(
                f"v.record() keys must be v.string(), v.id(...) or string literals, got {keys!r}"
            )
        return RecordV(keys, values)

    @staticmethod
    def union(*members: Validator) -> UnionV:
        if not members:
            raise TypeError("v.union() needs at least one member")
        for member in members:
            _require_required(member, "v.union()")
        return UnionV(tuple(members))

    @staticmethod
    def optional(inner: Validator) -> OptionalV:
        _require_validator(inner, "v.optional()")
        return inner if isinstance(inner, OptionalV) else OptionalV(inner)

    def __repr__(self) -> str:
        return "v"


_STRING = StringV()
_FLOAT64 = Float64V()
_INT64 = Int64V()
_BOOLEAN = BooleanV()
_NULL = NullV()
_BYTES = BytesV()
_ANY = AnyV()

v = _Builder()
"""The validator builder, as in Convex: ``v.object({"body": v.string()})``."""


_PRIMITIVES: dict[str, Validator] = {
    "string": _STRING,
    "number": _FLOAT64,
    "float64": _FLOAT64,
    "bigint": _INT64,
    "int64": _INT64,
    "boolean": _BOOLEAN,
    "null": _NULL,
    "bytes": _BYTES,
    "any": _ANY,
}


def validator_from_json(descriptor: Any, path: str = "$") -> Validator:
    """The validator a Convex JSON descriptor describes: the inverse of ``to_json``.

    Raises:
        SchemaError: ``descriptor`` is not a validator descriptor; the message names the
            offending part by ``path``.
    """
    if not isinstance(descriptor, Mapping) or not isinstance(descriptor.get("type"), str):
        raise SchemaError(f"Not a validator descriptor at {path}: {descriptor!r:.200}")
    kind = descriptor["type"]
    primitive = _PRIMITIVES.get(kind)
    if primitive is not None:
        return primitive
    try:
        if kind == "id":
            return v.id(descriptor["tableName"])
        if kind == "literal":
            value = json_to_convex(descriptor["value"], f"{path}.value")
            if not isinstance(value, (str, bool, float, Int64)):
                raise SchemaError(f"A literal is a string, number or boolean at {path}")
            return LiteralV(value)
        if kind == "array":
            return v.array(validator_from_json(descriptor["value"], f"{path}.value"))
        if kind == "object":
            return v.object(
                {
                    name: field_from_json(field, f"{path}.{name}")
                    for name, field in descriptor["value"].items()
                }
            )
        if kind == "record":
            values = field_from_json(descriptor["values"], f"{path}.values")
            return v.record(validator_from_json(descriptor["keys"], f"{path}.keys"), values)
        if kind == "union":
            return v.union(
                *(
                    validator_from_json(member, f"{path}[{i}]")
                    for i, member in enumerate(descriptor["value"])
                )
            )
    except (KeyError, AttributeError, TypeError, ValidationError) as exc:
        raise SchemaError(f"Malformed {kind!r} validator descriptor at {path}: {exc}") from None
    raise SchemaError(f"Unknown validator type {kind!r} at {path}")


def field_from_json(field: Any, path: str = "$") -> Validator:
    """The validator of an object field's descriptor ``{"fieldType": ..., "optional": ...}``
    (optional fields come back wrapped in ``v.optional``).

    Raises:
        SchemaError: not a field descriptor; the message names ``path``.
    """
    if not isinstance(field, Mapping) or "fieldType" not in field:
        raise SchemaError(f"Not a field descriptor at {path}: {field!r:.200}")
    inner = validator_from_json(field["fieldType"], path)
    return v.optional(inner) if field.get("optional") else inner


def validate_args(
    validators: Mapping[str, Validator] | Validator | None,
    args: Any,
    *,
    function: str,
    resolve_id_table: ResolveIdTable | None = None,
) -> dict[str, Value]:
    """Validate a function's argument object.

    Args:
        validators: a dict of field validators (as ``args={...}`` in Convex), one validator for
            the whole object, or None to accept any argument object unchanged.
        args: the argument object the caller sent.
        function: the function path, named in the error (``"tasks:create"``).
        resolve_id_table: passed on to ``v.id`` checks.

    Returns:
        The converted arguments.

    Raises:
        ArgumentValidationError: ``args`` is not an object or does not match.
    """
    if type(args) is not dict and not isinstance(args, Mapping):
        raise ArgumentValidationError(
            f"Expected the arguments to be an object, got {_got(args)}", function=function
        )
    if validators is None:
        return args if isinstance(args, dict) else dict(args)
    try:
        if isinstance(validators, Validator):
            result = validators._check(args, "$", resolve_id_table)
        else:
            for name, field in validators.items():
                if not isinstance(field, Validator):
                    _require_validator(field, f"Argument {name!r} of {function}")
            result = _validate_fields(validators, args, "$", resolve_id_table)
    except ValidationError as exc:
        raise ArgumentValidationError(exc.detail, path=exc.path, function=function) from None
    return result if isinstance(result, dict) else dict(result)


def validate_returns(
    validator: Validator | None,
    value: Value,
    *,
    function: str = "",
    resolve_id_table: ResolveIdTable | None = None,
) -> Value:
    """Validate a function's return value; None means unchecked (returned unchanged).

    Raises:
        ReturnValidationError: the value does not match ``validator``.
    """
    if validator is None:
        return value
    try:
        return validator._check(value, "$", resolve_id_table)
    except ValidationError as exc:
        prefix = f"ReturnValidationError for {function}: " if function else ""
        raise ReturnValidationError(prefix + exc.detail, path=exc.path) from None
