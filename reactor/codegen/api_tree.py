"""What code generation reads from a loaded app: its callable functions, as an API tree.

Owns the list of an app's callable functions (module path, name, kind, visibility, argument and
return validators), the nested tree ``api.<folder>.<module>.<name>`` that Convex's generated
``api`` object has, and the errors for apps whose paths cannot form that tree. It does not
render any language (``reactor.codegen.typescript``, ``reactor.codegen.python``) or write files
(``reactor.codegen.files``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from functions.decorators import FunctionKind, Visibility
from functions.paths import split_path
from functions.registry import Registry
from reactor.errors import CodegenError
from schema.validators import AnyV, Float64V, IdV, ObjectV, OptionalV, UnionV, Validator

__all__ = ["ApiBranch", "ApiFunction", "api_functions", "api_tree", "document_validator"]


@dataclass(frozen=True)
class ApiFunction:
    """One function a client can reference (HTTP actions are routed, not referenced).

    Attributes:
        module: the module path, ``"tasks"`` or ``"admin/users"``.
        name: the export name, ``"list"``.
        kind: ``"query"``, ``"mutation"`` or ``"action"`` (Convex's lower-case ``udfType``).
        visibility: ``"public"`` or ``"internal"``.
        args: the argument object's validator (a dict of fields becomes ``v.object``); None
            when the function declares no ``args=`` (any object is accepted).
        returns: the ``returns=`` validator, or None (the result is untyped).
    """

    module: str
    name: str
    kind: str
    visibility: str
    args: Validator | None
    returns: Validator | None

    @property
    def path(self) -> str:
        return f"{self.module}:{self.name}"


ApiBranch: TypeAlias = "dict[str, ApiBranch | ApiFunction]"
"""A level of the API tree: a name -> a deeper level or a function."""

_KINDS = {
    FunctionKind.QUERY: "query",
    FunctionKind.MUTATION: "mutation",
    FunctionKind.ACTION: "action",
}


def _args_validator(spec_args: Mapping[str, Validator] | Validator | None) -> Validator | None:
    if spec_args is None or isinstance(spec_args, Validator):
        return spec_args
    # The decorator accepted a mapping of names to validators: the object those fields form.
    return ObjectV(dict(spec_args))


def api_functions(registry: Registry) -> list[ApiFunction]:
    """Every query, mutation and action of ``registry``, sorted by path.

    Raises:
        CodegenError: a function's ``args=`` is a validator that cannot describe an argument
            object (Convex accepts only an object validator or ``v.any()`` there).
    """
    found = []
    for path, spec in registry.items():
        kind = _KINDS.get(spec.kind)
        if kind is None:
            continue
        module, name = split_path(path)
        args = _args_validator(spec.args)
        if args is not None and isinstance(args, OptionalV):
            raise CodegenError(f"{path}: args=v.optional(...) cannot describe an argument object")
        found.append(
            ApiFunction(
                module=module,
                name=name,
                kind=kind,
                visibility="public" if spec.visibility is Visibility.PUBLIC else "internal",
                args=args,
                returns=spec.returns,
            )
        )
    return found


def api_tree(functions: Iterable[ApiFunction], visibility: str) -> ApiBranch:
    """The nested ``api`` (``visibility="public"``) or ``internal`` object.

    ``admin/users:list`` is ``tree["admin"]["users"]["list"]``. A module ``x.py`` beside a
    folder ``x/`` shares the level ``x`` with the folder's modules, as in Convex.

    Raises:
        CodegenError: a function and a module or folder would have the same place in the tree
            (``x:y`` and ``x/y:z``), which Convex calls an ambiguous function name.
    """
    root: ApiBranch = {}
    for function in functions:
        if function.visibility != visibility:
            continue
        level = root
        for component in function.module.split("/"):
            below = level.setdefault(component, {})
            if isinstance(below, ApiFunction):
                raise CodegenError(
                    f"Ambiguous function name: {below.path} and the module path of "
                    f"{function.path} both are `{component}` at one level of the API"
                )
            level = below
        existing = level.get(function.name)
        if existing is not None:
            other = existing.path if isinstance(existing, ApiFunction) else "a module"
            raise CodegenError(
                f"Ambiguous function name: {function.path} and {other} both are "
                f"`{function.name}` at one level of the API"
            )
        level[function.name] = function
    return root


def document_validator(table: str, document: Validator, *, system_first: bool) -> Validator:
    """``document`` (a table's validator) with ``_id`` and ``_creationTime`` added, as Convex's
    documents have them: before the table's own fields, or after them (``system_first``).

    Raises:
        CodegenError: the validator is not an object, a union of objects or ``v.any()``.
    """

    def with_system_fields(validator: Validator) -> Validator:
        if not isinstance(validator, ObjectV):
            raise CodegenError(
                f"Table {table}: system fields can only be added to object validators, "
                f"got {validator!r}"
            )
        system = {"_id": IdV(table), "_creationTime": Float64V()}
        if system_first:
            return ObjectV({**system, **validator.fields})
        return ObjectV({**validator.fields, **system})

    if isinstance(document, AnyV):
        return document
    if isinstance(document, UnionV):
        return UnionV(tuple(with_system_fields(member) for member in document.members))
    return with_system_fields(document)
