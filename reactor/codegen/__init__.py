"""``reactor codegen``: typed frontends for a Python app, in TypeScript and in Python.

Reads a loaded app (``functions.loader.App``: its registry and schema) and renders Convex's
``_generated`` files (``api.js``, ``api.d.ts``, ``dataModel.d.ts``) and a typed Python module
for ``client_sdk``; ``files`` writes them only when they change and finds stale ones. A pure
part of ``reactor/``: it imports ``schema``, ``functions`` and ``reactor.errors`` only.
"""

from __future__ import annotations

from pathlib import Path

from functions.loader import App
from reactor.codegen.api_tree import ApiFunction, api_functions, api_tree
from reactor.codegen.files import stale_files, write_files
from reactor.codegen.python import python_module
from reactor.codegen.typescript import typescript_files, validator_type

__all__ = [
    "ApiFunction",
    "api_functions",
    "api_tree",
    "generated_files",
    "python_module",
    "stale_files",
    "typescript_files",
    "validator_type",
    "write_files",
]


def generated_files(
    app: App, *, out: Path | None = None, python: Path | None = None
) -> dict[Path, str]:
    """Every file ``reactor codegen`` would write for ``app``: path -> contents.

    Args:
        app: the loaded app.
        out: the directory of the TypeScript files (``api.js``, ``api.d.ts``,
            ``dataModel.d.ts``), or None for none.
        python: the path of the typed Python module, or None for none.

    Raises:
        CodegenError: the app's API or schema cannot be described.
    """
    functions = api_functions(app.registry)
    files: dict[Path, str] = {}
    if out is not None:
        for name, text in typescript_files(functions, app.schema).items():
            files[out / name] = text
    if python is not None:
        files[python] = python_module(functions, app.schema)
    return files
