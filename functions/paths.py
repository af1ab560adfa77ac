"""Function paths: parsing, validation and canonicalisation (PROTOCOL.md §3.3).

Owns the one canonical spelling of a function's identity, ``"module:name"`` (``"dir/sub/mod:fn"``,
no ``.js``, the default export named ``"default"``), the rules for valid module and function
names, and the mapping of ``/api/run/...`` URL tails and function references to that form. It
does not know which functions exist (``functions.registry``).
"""

from __future__ import annotations

import re
from typing import Any, NewType

from functions.errors import InvalidFunctionPath

__all__ = [
    "DEFAULT_EXPORT",
    "MAX_FUNCTION_NAME_LEN",
    "FunctionPath",
    "canonicalize",
    "check_function_name",
    "check_module_path",
    "function_name_problem",
    "join_path",
    "module_path_problem",
    "path_from_run_url",
    "reference_path",
    "split_path",
]

FunctionPath = NewType("FunctionPath", str)
"""A canonical function path, ``"module:name"``."""

DEFAULT_EXPORT = "default"
MAX_FUNCTION_NAME_LEN = 64

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMPONENT = re.compile(r"[A-Za-z0-9_.]+")
_RUN_PREFIX = "/api/run/"


def function_name_problem(name: Any) -> str | None:
    """Why ``name`` is not a valid function (export) name, or None when it is."""
    if not isinstance(name, str):
        return f"function names are strings, got {type(name).__name__}"
    if not name:
        return "the function name is empty"
    if len(name) > MAX_FUNCTION_NAME_LEN:
        return f"function name {name[:20]!r}... is longer than {MAX_FUNCTION_NAME_LEN} characters"
    if not _IDENTIFIER.fullmatch(name):
        return (
            f"function name {name!r} is not an identifier (letters, digits and underscores, "
            "not starting with a digit)"
        )
    return None


def module_path_problem(module: Any) -> str | None:
    """Why ``module`` is not a valid module path (``"dir/sub/mod"``), or None when it is."""
    if not isinstance(module, str):
        return f"module paths are strings, got {type(module).__name__}"
    if not module:
        return "the module path is empty"
    for component in module.split("/"):
        if not component:
            return f"module path {module!r} has an empty component"
        if not _COMPONENT.fullmatch(component):
            return (
                f"module path component {component!r} may only contain letters, digits, "
                "underscores and periods"
            )
        if component.startswith("."):
            return f"module path component {component!r} starts with a period"
    return None


def check_function_name(name: Any) -> str:
    """Return ``name`` if it is a valid function name.

    Raises:
        InvalidFunctionPath: it is not (also a ``ValueError``).
    """
    problem = function_name_problem(name)
    if problem is not None:
        raise InvalidFunctionPath(f"Invalid function name: {problem}.")
    return name  # type: ignore[no-any-return]


def check_module_path(module: Any) -> str:
    """Return ``module`` if it is a valid module path (without ``.js``).

    Raises:
        InvalidFunctionPath: it is not (also a ``ValueError``).
    """
    problem = module_path_problem(module)
    if problem is not None:
        raise InvalidFunctionPath(f"Invalid module path: {problem}.")
    return module  # type: ignore[no-any-return]


def split_path(path: Any) -> tuple[str, str]:
    """Parse any accepted spelling of a path into ``(module, name)``.

    ``"m"``, ``"m:default"``, ``"m.js"`` and ``"m.js:default"`` all give ``("m", "default")``.
    The split is at the last ``:``; one trailing ``.js`` is removed from the module.

    Raises:
        InvalidFunctionPath: the path is not a string or is malformed; the message quotes it.
    """
    if not isinstance(path, str):
        raise InvalidFunctionPath(
            f"Invalid function path: expected a string, got {type(path).__name__}."
        )
    module, colon, name = path.rpartition(":")
    if not colon:
        module, name = path, DEFAULT_EXPORT
    if module.endswith(".js"):
        module = module[:-3]
    problem = module_path_problem(module) or function_name_problem(name)
    if problem is not None:
        shown = path if len(path) <= 200 else path[:200] + "..."
        raise InvalidFunctionPath(f"Invalid function path {shown!r}: {problem}.")
    return module, name


def join_path(module: str, name: str) -> FunctionPath:
    """The canonical path of export ``name`` of ``module`` (both already valid)."""
    return FunctionPath(f"{module}:{name}")


def canonicalize(path: Any) -> FunctionPath:
    """The canonical ``"module:name"`` form of a client-supplied path.

    Raises:
        InvalidFunctionPath: the path is malformed (a ``FunctionNotFound`` and a ``ValueError``).
    """
    if type(path) is str:
        known = _canonical.get(path)
        if known is not None:
            return known
    module, name = split_path(path)
    canonical = join_path(module, name)
    if type(path) is str:
        if len(_canonical) >= _CANONICAL_CACHE:
            _canonical.clear()  # a client naming endless paths cannot grow it
        _canonical[path] = canonical
    return canonical


# Valid paths already canonicalized: every call names one, and clients name few.
_canonical: dict[str, FunctionPath] = {}
_CANONICAL_CACHE = 4096


def path_from_run_url(url_path: str) -> FunctionPath:
    """Map the tail of ``POST /api/run/dir/module/function`` to ``"dir/module:function"``.

    Accepts the whole URL path (``"/api/run/messages/list"``) or just the tail after
    ``/api/run/`` (``"messages/list"``). A tail that already holds a ``:`` is parsed as a path.
    The last segment is the function name, so the default export is ``.../module/default``.

    Raises:
        InvalidFunctionPath: fewer than two segments, or a malformed module or name.
    """
    tail = url_path[len(_RUN_PREFIX) :] if url_path.startswith(_RUN_PREFIX) else url_path
    tail = tail.strip("/")
    if ":" in tail:
        return canonicalize(tail)
    module, slash, name = tail.rpartition("/")
    if not slash:
        raise InvalidFunctionPath(
            f"Invalid /api/run path {url_path!r}: expected /api/run/<module path>/<function name>."
        )
    return canonicalize(f"{module}:{name}")


def reference_path(reference: Any) -> FunctionPath:
    """The canonical path of a function reference: a path string or a registered function.

    Apps pass references to the scheduler and to ``ctx.run_query`` either as ``"tasks:add"``
    or as the decorated object itself (``tasks.add``), whose ``path`` the registry set.

    Raises:
        InvalidFunctionPath: a malformed string, or a function the registry never registered.
        TypeError: anything else.
    """
    if isinstance(reference, str):
        return canonicalize(reference)
    path = getattr(reference, "path", None)
    if path is None and hasattr(reference, "kind"):
        raise InvalidFunctionPath(
            f"Function {getattr(reference, '__qualname__', reference)!r} is not registered: "
            "only functions exported by an app module have a path."
        )
    if not isinstance(path, str):
        raise TypeError(
            f"Expected a function path string or a registered function, got {reference!r}"
        )
    return canonicalize(path)
