"""Reactor's programming model: declaring functions, loading an app, and what handlers receive.

Layer 1: depends on ``schema`` only. Apps import the decorators, ``AppError`` and (for typing)
the context classes from here; the runtime uses ``load_app``, ``Registry``, ``FunctionSpec``,
the context constructors and the ``DocumentStore`` contract it must implement.
"""

from __future__ import annotations

import importlib.util as _importlib_util
import sys as _sys
from pathlib import Path as _Path


def _bind_sibling_schema() -> None:
    """Make ``schema`` the package next to this one, not an app's ``schema.py``.

    ``python -m reactor`` run inside an app directory puts that directory first on
    ``sys.path``, where the app's own ``schema.py`` would be found before the ``schema``
    package. Importing the package from its known location first keeps every later
    ``import schema`` (ours and the app's) pointing at the real one.
    """
    if "schema" in _sys.modules:
        return
    package = _Path(__file__).resolve().parent.parent / "schema"
    init = package / "__init__.py"
    found = _importlib_util.find_spec("schema")
    if not init.is_file() or (found is not None and found.origin == str(init)):
        return
    spec = _importlib_util.spec_from_file_location(
        "schema", init, submodule_search_locations=[str(package)]
    )
    assert spec is not None and spec.loader is not None
    module = _importlib_util.module_from_spec(spec)
    _sys.modules["schema"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del _sys.modules["schema"]
        raise


_bind_sibling_schema()

from functions.context import (  # noqa: E402
    ActionCtx,
    Auth,
    MutationCtx,
    QueryCtx,
    RunFunction,
    Scheduler,
    UserIdentity,
)
from functions.database import (  # noqa: E402
    DEFAULT_INDEX,
    MAX_PAGE_SIZE,
    DatabaseReader,
    DatabaseWriter,
    IndexRangeBuilder,
    Query,
    QueryInitializer,
    QueryJournal,
    QueryStream,
    pagination_opts_validator,
)
from functions.decorators import (  # noqa: E402
    ArgsValidators,
    FunctionDecorator,
    FunctionKind,
    FunctionSpec,
    Handler,
    Visibility,
    action,
    http_action,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
)
from functions.deployment_env import env  # noqa: E402
from functions.errors import (  # noqa: E402
    AppError,
    FunctionDefinitionError,
    InvalidFunctionPath,
    ModuleLoadError,
    QueryNotUnique,
)
from functions.filters import (  # noqa: E402
    Expression,
    FilterBuilder,
    Predicate,
    build_filter,
    compile_filter,
    filter_builder,
)
from functions.loader import SPECIAL_MODULES, App, load_app, package_name  # noqa: E402
from functions.paths import (  # noqa: E402
    DEFAULT_EXPORT,
    MAX_FUNCTION_NAME_LEN,
    FunctionPath,
    canonicalize,
    check_function_name,
    check_module_path,
    function_name_problem,
    join_path,
    module_path_problem,
    path_from_run_url,
    reference_path,
    split_path,
)
from functions.registry import Registry  # noqa: E402
from functions.store import (  # noqa: E402
    UNDEFINED,
    Bound,
    DocumentStore,
    IndexRange,
    Order,
    PaginationOptions,
    PaginationResult,
)

__all__ = [
    "DEFAULT_EXPORT",
    "DEFAULT_INDEX",
    "MAX_FUNCTION_NAME_LEN",
    "MAX_PAGE_SIZE",
    "SPECIAL_MODULES",
    "UNDEFINED",
    "ActionCtx",
    "App",
    "AppError",
    "ArgsValidators",
    "Auth",
    "Bound",
    "DatabaseReader",
    "DatabaseWriter",
    "DocumentStore",
    "Expression",
    "FilterBuilder",
    "FunctionDecorator",
    "FunctionDefinitionError",
    "FunctionKind",
    "FunctionPath",
    "FunctionSpec",
    "Handler",
    "IndexRange",
    "IndexRangeBuilder",
    "InvalidFunctionPath",
    "ModuleLoadError",
    "MutationCtx",
    "Order",
    "PaginationOptions",
    "PaginationResult",
    "Predicate",
    "Query",
    "QueryCtx",
    "QueryInitializer",
    "QueryJournal",
    "QueryNotUnique",
    "QueryStream",
    "Registry",
    "RunFunction",
    "Scheduler",
    "UserIdentity",
    "Visibility",
    "action",
    "build_filter",
    "canonicalize",
    "check_function_name",
    "check_module_path",
    "compile_filter",
    "env",
    "filter_builder",
    "function_name_problem",
    "http_action",
    "internal_action",
    "internal_mutation",
    "internal_query",
    "join_path",
    "load_app",
    "module_path_problem",
    "mutation",
    "package_name",
    "pagination_opts_validator",
    "path_from_run_url",
    "query",
    "reference_path",
    "split_path",
]
