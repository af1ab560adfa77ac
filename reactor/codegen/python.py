"""The Python half of ``reactor codegen``: a typed module for ``client_sdk`` callers.

Owns the mapping of validators to Python types (``TypedDict`` per object, ``NotRequired`` for
``v.optional`` fields, ``Literal``, ``Int64``...) and the text of the module: one ``<Table>Doc``
per table, one ``<Path>Args``/``<Path>Returns`` per function, and an ``api``/``internal``
namespace of ``client_sdk.references`` objects that ``ReactorClient.query`` & co. accept, so
mypy checks arguments and results. It does not load apps or touch files.
"""

from __future__ import annotations

import json
import keyword
import re

from reactor.codegen.api_tree import ApiBranch, ApiFunction, api_tree, document_validator
from reactor.errors import CodegenError
from schema.tables import SchemaDefinition
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

__all__ = ["python_module"]

_REFERENCE_CLASSES = {
    "query": "QueryReference",
    "mutation": "MutationReference",
    "action": "ActionReference",
}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _camel(text: str) -> str:
    """``"admin/team_members"`` -> ``"AdminTeamMembers"``."""
    words = re.split(r"[^A-Za-z0-9]+", text)
    return "".join(word[:1].upper() + word[1:] for word in words if word)


def _attribute(name: str) -> str:
    """A Python attribute for an API name (``class`` -> ``class_``, as Convex escapes)."""
    return f"{name}_" if keyword.iskeyword(name) or name in ("api", "internal") else name


class _Writer:
    """Collects the TypedDict definitions one module needs, each under a unique name."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.names: set[str] = set()
        self.imports: set[str] = set()
        # An object met twice (a table's document in a returns=) is one TypedDict.
        self.known: dict[frozenset[tuple[str, Validator]], str] = {}

    def unique(self, base: str) -> str:
        name, n = base, 2
        while name in self.names:
            name, n = f"{base}{n}", n + 1
        self.names.add(name)
        return name

    def type_of(self, validator: Validator, name: str) -> str:
        """The annotation for ``validator``; objects become TypedDicts named after ``name``."""
        if isinstance(validator, OptionalV):
            return self.type_of(validator.inner, name)
        if isinstance(validator, (StringV, IdV)):
            return "str"
        if isinstance(validator, Float64V):
            return "float"
        if isinstance(validator, Int64V):
            self.imports.add("Int64")
            return "Int64"
        if isinstance(validator, BooleanV):
            return "bool"
        if isinstance(validator, NullV):
            return "None"
        if isinstance(validator, BytesV):
            return "bytes"
        if isinstance(validator, AnyV):
            self.imports.add("Any")
            return "Any"
        if isinstance(validator, LiteralV):
            return self._literal(validator.value)
        if isinstance(validator, ArrayV):
            return f"list[{self.type_of(validator.item, name + 'Item')}]"
        if isinstance(validator, RecordV):
            keys = self.type_of(validator.keys, name + "Key")
            return f"dict[{keys}, {self.type_of(validator.values, name + 'Value')}]"
        if isinstance(validator, UnionV):
            members = []
            for i, member in enumerate(validator.members):
                member_type = self.type_of(member, f"{name}{i + 1}")
                if member_type not in members:
                    members.append(member_type)
            return " | ".join(members)
        if isinstance(validator, ObjectV):
            known = self.known.get(frozenset(validator.fields.items()))
            return known if known is not None else self.typed_dict(name, validator.fields)
        raise CodegenError(f"No Python type for the validator {validator!r}")

    def _literal(self, value: str | bool | float | Int64) -> str:
        if isinstance(value, Int64):
            self.imports.add("Int64")
            return "Int64"  # typing.Literal cannot hold an Int64
        if isinstance(value, float):
            return "float"  # nor a float
        self.imports.add("Literal")
        shown = json.dumps(value) if isinstance(value, str) else repr(value)
        return f"Literal[{shown}]"

    def typed_dict(self, base: str, fields: dict[str, Validator], doc: str = "") -> str:
        name = self.unique(base)
        self.known.setdefault(frozenset(fields.items()), name)
        entries = []
        for field, validator in fields.items():
            annotation = self.type_of(validator, name + _camel(field))
            if validator.is_optional:
                self.imports.add("NotRequired")
                annotation = f"NotRequired[{annotation}]"
            entries.append((field, annotation))
        self.imports.add("TypedDict")
        if all(_IDENTIFIER.fullmatch(f) and not keyword.iskeyword(f) for f, _ in entries):
            lines = [f"class {name}(TypedDict):"]
            if doc:
                lines.append(f'    """{doc}"""')
                if entries:
                    lines.append("")
            lines += [f"    {field}: {annotation}" for field, annotation in entries]
            if not doc and not entries:
                lines.append("    pass")
            self.blocks.append("\n".join(lines))
        else:
            # Field names Python cannot spell as attributes need the functional syntax.
            body = "".join(f"\n        {json.dumps(f)}: {a}," for f, a in entries)
            self.blocks.append(f'{name} = TypedDict(\n    "{name}",\n    {{{body}\n    }},\n)')
        return name


def _function_types(writer: _Writer, function: ApiFunction) -> tuple[str, str]:
    """The (args, returns) type arguments of a function's reference."""
    base = _camel(function.module) + _camel(function.name)
    if function.args is None:
        writer.imports.add("AnyArgs")
        args = "AnyArgs"
    elif isinstance(function.args, ObjectV):
        doc = f"The arguments of ``{function.path}``."
        if not function.args.fields:
            writer.imports.add("NoArgs")
            args = "NoArgs"
        else:
            args = writer.typed_dict(base + "Args", function.args.fields, doc)
    else:
        args = writer.type_of(function.args, base + "Args")
    if function.returns is None:
        writer.imports.add("Any")
        returns = "Any"
    else:
        returns = writer.type_of(function.returns, base + "Returns")
    return args, returns


def _namespace(writer: _Writer, tree: ApiBranch, class_name: str, doc: str) -> list[str]:
    """The classes of one API namespace, innermost first; the last is ``class_name``."""
    blocks: list[str] = []
    lines = [f"class {class_name}:", f'    """{doc}"""', ""]
    for name in sorted(tree):
        node = tree[name]
        attribute = _attribute(name)
        if isinstance(node, ApiFunction):
            args, returns = _function_types(writer, node)
            reference = _REFERENCE_CLASSES[node.kind]
            writer.imports.add(reference)
            lines.append(
                f"    {attribute}: {reference}[[{args}], {returns}] = {reference}("
                f"{json.dumps(node.path)})"
            )
        else:
            inner = writer.unique(f"_{class_name.strip('_')}_{name}")
            blocks += _namespace(writer, node, inner, f"``{name}``")
            lines.append(f"    {attribute} = {inner}")
    if len(lines) == 3:
        lines.pop()
    blocks.append("\n".join(lines))
    return blocks


_HEADER = '''"""Generated typed API of a Reactor app, for ``client_sdk`` callers.

THIS CODE IS AUTOMATICALLY GENERATED. To regenerate, run ``reactor codegen --python``.

``client.query(api.tasks.list, {"owner": "ann"})`` is checked by mypy: the arguments against
``TasksListArgs``, the result as the function's ``returns=`` type (``Any`` without one).
"""

# fmt: off
# ruff: noqa: E501

from __future__ import annotations
'''


def python_module(functions: list[ApiFunction], schema: SchemaDefinition | None) -> str:
    """The text of the typed Python module.

    Raises:
        CodegenError: the app cannot be described (an ambiguous function name, a table whose
            document validator is not an object, a union of objects or ``v.any()``).
    """
    writer = _Writer()
    docs: list[str] = []
    if schema is not None:
        for table in sorted(schema.tables):
            document = document_validator(
                table, schema.tables[table].document_validator, system_first=True
            )
            base = _camel(table) + "Doc"
            if isinstance(document, ObjectV):
                docs.append(writer.typed_dict(base, document.fields, f"A document of ``{table}``."))
            else:
                alias = writer.unique(base)
                writer.blocks.append(f"{alias} = {writer.type_of(document, alias)}")
                docs.append(alias)
    namespaces = _namespace(
        writer, api_tree(functions, "public"), "api", "The app's public functions."
    )
    namespaces += _namespace(
        writer, api_tree(functions, "internal"), "internal", "Internal functions (admin key)."
    )
    typing_names = sorted(writer.imports & {"Any", "Literal", "NotRequired", "TypedDict"})
    sdk_names = sorted(writer.imports - set(typing_names) - {"Int64"})
    imports = [_HEADER]
    if typing_names:
        imports.append(f"from typing import {', '.join(typing_names)}\n")
    own = []
    if sdk_names:
        own.append(f"from client_sdk.references import {', '.join(sdk_names)}\n")
    if "Int64" in writer.imports:
        own.append("from schema.values import Int64\n")
    imports.append("".join(own))
    all_names = sorted({*docs, "api", "internal"})
    head = "\n".join(imports)
    head += "\n__all__ = [" + ", ".join(json.dumps(n) for n in all_names) + "]\n"
    return "\n\n\n".join([head.rstrip("\n"), *writer.blocks, *namespaces]) + "\n"
