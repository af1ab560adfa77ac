"""The errors the function layer adds to the tree rooted in ``schema.errors``.

Owns ``AppError`` (the name apps use for ``schema.errors.UserError``: its ``data`` reaches the
client) and the function-layer subclasses of ``FunctionError``. It does not decide how an error
is shown to a client (the executor does).

    FunctionError                       (schema.errors)
    ├── FunctionNotFound                (schema.errors)
    │   └── InvalidFunctionPath         (also a ValueError: a malformed path string)
    ├── UserError = AppError            (schema.errors)
    ├── FunctionDefinitionError         (duplicate paths, bad export names)
    ├── ModuleLoadError                 (an app module failed to import; ``file`` names it)
    └── QueryNotUnique                  (``.unique()`` found more than one document)
"""

from __future__ import annotations

from schema.errors import FunctionError, FunctionNotFound, UserError

__all__ = [
    "AppError",
    "FunctionDefinitionError",
    "InvalidFunctionPath",
    "ModuleLoadError",
    "QueryNotUnique",
]

AppError = UserError
"""Raise ``AppError(data)`` in a function to fail it with ``data`` sent to the client
(Convex's ``ConvexError``): ``raise AppError({"code": "EMPTY_TITLE"})``."""


class InvalidFunctionPath(FunctionNotFound, ValueError):
    """A function path (or name) that is not well formed, so no function can have it."""

    code = "InvalidFunctionPath"


class FunctionDefinitionError(FunctionError):
    """An app defines functions the registry cannot accept (e.g. two at one path)."""

    code = "FunctionDefinitionError"


class ModuleLoadError(FunctionError):
    """Importing an app module failed; ``file`` is the module's file, when there is one."""

    code = "ModuleLoadError"

    def __init__(self, message: str, *, file: str | None = None) -> None:
        super().__init__(message)
        self.file = file


class QueryNotUnique(FunctionError):
    """``.unique()`` matched more than one document."""

    code = "QueryNotUnique"
