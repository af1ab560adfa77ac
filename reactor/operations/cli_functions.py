"""The ``_system/cli/*`` functions the official ``convex`` CLI calls for ``data`` and ``env``.

Owns their paths, argument shapes and results, which follow what ``npx convex`` (the npm
package's ``src/cli/lib/data.ts`` and ``env.ts``) reads: ``_system/cli/tables`` and
``_system/cli/tableData`` are paginated (``{page, isDone, continueCursor}``),
``_system/cli/queryEnvironmentVariables`` lists ``{name, value}`` objects and its ``:get``
returns one or null. Changing variables is an HTTP route (``/api/update_environment_variables``),
not a function. It does not decide who may call them (``system_functions``: admin key only).
"""

from __future__ import annotations

from typing import Any, Protocol

from functions.context import QueryCtx
from functions.database import pagination_opts_validator
from functions.decorators import FunctionKind, FunctionSpec
from functions.http_router import HttpRouter
from reactor.core.system_tables import TableRegistry, is_system_table
from reactor.engine.served_app import ServedApp
from reactor.operations.system_functions import SystemFunctions
from schema import v
from schema.validators import Validator

__all__ = ["CliDeployment", "api_spec", "register", "table_names"]

_ANY = {"type": "any"}


class CliDeployment(Protocol):
    """What these functions read of the deployment."""

    @property
    def tables(self) -> TableRegistry: ...

    @property
    def served(self) -> ServedApp: ...

    @property
    def http_router(self) -> HttpRouter | None: ...


def table_names(deployment: CliDeployment) -> list[str]:
    """The user tables: every table ever written to, and every table the schema defines."""
    names = {name for name in deployment.tables.numbers() if not is_system_table(name)}
    schema = deployment.served.schema
    if schema is not None:
        names.update(schema.tables)
    return sorted(names)


def api_spec(deployment: CliDeployment) -> list[dict[str, Any]]:
    """The app's functions as Convex's ``_system/cli/modules:apiSpec`` lists them (the CLI
    prints them when ``run`` names a missing function): ``identifier`` is
    ``"<module>.js:<name>"`` as in Convex, ``args``/``returns`` Convex validator JSON."""
    out: list[dict[str, Any]] = []
    for path, spec in deployment.served.registry.items():
        if spec.kind is FunctionKind.HTTP_ACTION:
            continue
        module, _, name = path.rpartition(":")
        out.append(
            {
                "identifier": f"{module}.js:{name}",
                "functionType": spec.kind.value,
                "visibility": {"kind": "internal" if spec.is_internal else "public"},
                "args": _args_json(spec),
                "returns": _ANY if spec.returns is None else spec.returns.to_json(),
            }
        )
    router = deployment.http_router
    for route in [] if router is None else router.routes():
        out.append({"functionType": "HttpAction", "method": route.method, "path": route.pattern})
    return out


def _args_json(spec: FunctionSpec) -> dict[str, Any]:
    if spec.args is None:
        return _ANY
    if isinstance(spec.args, Validator):
        return spec.args.to_json()
    return v.object(dict(spec.args)).to_json()


def register(functions: SystemFunctions, deployment: CliDeployment) -> None:
    """Add the CLI's system functions to ``functions``."""

    @functions.query("_system/cli/tables", args={"paginationOpts": pagination_opts_validator})
    async def tables(ctx: QueryCtx, *, paginationOpts: dict[str, Any]) -> dict[str, Any]:
        # Every table in one page: the CLI asks for 10,000 at a time, and a deployment has
        # far fewer tables than that.
        page = [{"name": name} for name in table_names(deployment)]
        return {"page": page, "isDone": True, "continueCursor": "end"}

    @functions.query(
        "_system/cli/tableData",
        args={
            "table": v.string(),
            "order": v.union(v.literal("asc"), v.literal("desc")),
            "paginationOpts": pagination_opts_validator,
        },
    )
    async def table_data(
        ctx: QueryCtx, *, table: str, order: str, paginationOpts: dict[str, Any]
    ) -> dict[str, Any]:
        db = ctx.db.system if is_system_table(table) else ctx.db
        return await db.query(table).order(order).paginate(paginationOpts)

    @functions.query(
        "_system/cli/modules:apiSpec",
        args={"componentId": v.optional(v.union(v.string(), v.null()))},
    )
    async def modules_api_spec(
        ctx: QueryCtx, *, componentId: str | None = None
    ) -> list[dict[str, Any]]:
        return api_spec(deployment)

    @functions.query("_system/cli/queryEnvironmentVariables", args={})
    async def environment_variables(ctx: QueryCtx) -> list[dict[str, str]]:
        values = _user_values(ctx)
        return [{"name": name, "value": values[name]} for name in sorted(values)]

    @functions.query("_system/cli/queryEnvironmentVariables:get", args={"name": v.string()})
    async def environment_variable(ctx: QueryCtx, *, name: str) -> dict[str, str] | None:
        value = _user_values(ctx).get(name)
        return None if value is None else {"name": name, "value": value}


def _user_values(ctx: QueryCtx) -> dict[str, str]:
    """The variables set on the deployment (not the system ones, ``CONVEX_CLOUD_URL``...),
    as Convex's ``_environment_variables`` table holds them."""
    env = ctx.env
    user_values = getattr(env, "user_values", None)
    if isinstance(user_values, dict):
        return user_values
    return dict(env)
