"""The ``_system/frontend/*`` functions the dashboard reads and writes through.

Owns their paths, arguments and result shapes (docs/dashboard.md lists them): tables with
their indexes and document counts, a page of a table's documents in any index's order with a
field filter, one document by id, the app's functions with their validators, and the
mutations inserting, replacing and deleting documents. Queries read through ``ctx.db``, so
their read sets are tracked and the dashboard's views are live. Who may call them (the admin
key only) is ``system_functions``' rule, not theirs.
"""

from __future__ import annotations

from typing import Any, Protocol

from functions.context import MutationCtx, QueryCtx
from functions.decorators import FunctionSpec
from functions.registry import Registry
from reactor.core.system_tables import is_system_table
from reactor.operations import dashboard_platform
from reactor.operations.cli_functions import CliDeployment, table_names
from reactor.operations.dashboard_platform import PlatformDeployment
from reactor.operations.system_functions import SystemFunctions
from schema import v
from schema.errors import UserError, ValidationError
from schema.validators import Validator

__all__ = ["COUNT_LIMIT", "PAGE_LIMIT", "FrontendDeployment", "describe_function", "register"]

PREFIX = "_system/frontend"
# Counting reads every document (Reactor keeps no per-table counters): past this many the
# dashboard shows "10000+" rather than fail on the read limit of one execution.
COUNT_LIMIT = 10_000
PAGE_LIMIT = 1_000
BY_CREATION_TIME = "by_creation_time"
SYSTEM_FIELDS = ("_id", "_creationTime")


class FrontendDeployment(CliDeployment, PlatformDeployment, Protocol):
    """What these functions read of the deployment (``served``, what ``table_names`` reads,
    and what ``dashboard_platform``'s functions read)."""


def describe_function(spec: FunctionSpec) -> dict[str, Any]:
    """A function as the Functions page lists it: path, kind, visibility and the Convex JSON
    of its argument and return validators (``None`` when it declares none)."""
    return {
        "path": spec.path or "",
        "kind": _KINDS[spec.kind.value],
        "visibility": spec.visibility.value,
        "args": _args_json(spec.args),
        "returns": None if spec.returns is None else spec.returns.to_json(),
    }


_KINDS = {"Query": "query", "Mutation": "mutation", "Action": "action", "HttpAction": "httpAction"}


def _args_json(args: Any) -> dict[str, Any] | None:
    if args is None:
        return None
    if isinstance(args, Validator):
        return args.to_json()
    return v.object(dict(args)).to_json()


def register(functions: SystemFunctions, deployment: FrontendDeployment) -> None:
    """Add the dashboard's system functions to ``functions`` (with ``dashboard_platform``'s:
    scheduled jobs, crons, files, schema)."""
    dashboard_platform.register(functions, deployment)

    def indexes_of(table: str) -> list[dict[str, Any]]:
        schema = deployment.served.schema
        definition = None if schema is None else schema.tables.get(table)
        if definition is None:
            return []
        return [
            {"name": name, "fields": list(fields)} for name, fields in definition.indexes.items()
        ]

    def user_table(table: str) -> str:
        if is_system_table(table):
            raise UserError(f"{table} is a system table: the dashboard edits user tables only")
        return table

    @functions.query(f"{PREFIX}/tables:list", args={})
    async def list_tables(ctx: QueryCtx) -> list[dict[str, Any]]:
        """Every user table with its indexes (counts are ``tables:count``, one per table, so
        a write re-runs only its own table's count)."""
        return [{"name": name, "indexes": indexes_of(name)} for name in table_names(deployment)]

    @functions.query(f"{PREFIX}/tables:count", args={"table": v.string()})
    async def count(ctx: QueryCtx, *, table: str) -> dict[str, Any]:
        docs = await ctx.db.query(user_table(table)).take(COUNT_LIMIT + 1)
        return {"count": float(min(len(docs), COUNT_LIMIT)), "capped": len(docs) > COUNT_LIMIT}

    @functions.query(
        f"{PREFIX}/documents:page",
        args={
            "table": v.string(),
            "index": v.optional(v.string()),
            "order": v.optional(v.union(v.literal("asc"), v.literal("desc"))),
            "filter": v.optional(v.object({"field": v.string(), "value": v.any()})),
            "limit": v.optional(v.float64()),
        },
    )
    async def page(
        ctx: QueryCtx,
        *,
        table: str,
        index: str | None = None,
        order: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: float | None = None,
    ) -> dict[str, Any]:
        """The first ``limit`` documents (at most PAGE_LIMIT) in the order of ``index``
        (by creation time by default), those whose field equals ``filter.value`` when
        ``filter`` is given (``field`` may be a dotted path)."""
        size = 100 if limit is None else int(limit)
        if not 1 <= size <= PAGE_LIMIT:
            raise UserError(f"`limit` must be between 1 and {PAGE_LIMIT}, got {limit}")
        query = ctx.db.query(user_table(table))
        if index is not None and index not in (BY_CREATION_TIME, "by_id"):
            if index not in {i["name"] for i in indexes_of(table)}:
                raise UserError(f"Table {table} has no index {index!r}")
            query = query.with_index(index)
        query = query.order(order or "desc")
        if filter is not None:
            field, value = filter["field"], filter["value"]
            query = query.filter(lambda q: q.eq(q.field(field), value))
        docs = await query.take(size + 1)
        return {"documents": docs[:size], "isDone": len(docs) <= size}

    @functions.query(f"{PREFIX}/documents:get", args={"id": v.string()})
    async def get(ctx: QueryCtx, *, id: str) -> dict[str, Any] | None:
        """The document ``id`` names (in any user table) and its table, or None."""
        table = ctx.db.table_of_id(id)
        if table is None or is_system_table(table):
            return None
        document = await ctx.db.get(id)
        return None if document is None else {"table": table, "document": document}

    @functions.mutation(
        f"{PREFIX}/documents:insert", args={"table": v.string(), "document": v.any()}
    )
    async def insert(ctx: MutationCtx, *, table: str, document: Any) -> str:
        fields = _fields(document)
        id: str = await _checked(ctx.db.insert(user_table(table), fields))
        return id

    @functions.mutation(f"{PREFIX}/documents:replace", args={"id": v.string(), "document": v.any()})
    async def replace(ctx: MutationCtx, *, id: str, document: Any) -> None:
        """Replace a document's fields (its ``_id`` and ``_creationTime`` stay; giving other
        values for them is refused). Validated against the schema: nothing is written if it
        does not match, and the error names the path at fault."""
        table = ctx.db.table_of_id(id)
        current = None if table is None or is_system_table(table) else await ctx.db.get(id)
        if current is None:
            raise UserError({"message": f"No document {id}", "path": "$"})
        fields = _fields(document)
        for name in SYSTEM_FIELDS:
            if name in document and document[name] != current[name]:
                raise UserError({"message": f"{name} cannot be changed", "path": f"$.{name}"})
        await _checked(ctx.db.replace(id, fields))

    @functions.mutation(f"{PREFIX}/documents:remove", args={"ids": v.array(v.string())})
    async def remove(ctx: MutationCtx, *, ids: list[str]) -> float:
        """Delete documents by id; returns how many existed."""
        deleted = 0
        for id in ids:
            table = ctx.db.table_of_id(id)
            if table is None or is_system_table(table):
                raise UserError(f"{id!r} is not the id of a document in a user table")
            if await ctx.db.get(id) is not None:
                await ctx.db.delete(id)
                deleted += 1
        return float(deleted)

    @functions.query(f"{PREFIX}/functions:list", args={})
    async def list_functions(ctx: QueryCtx) -> list[dict[str, Any]]:
        registry: Registry = deployment.served.registry
        return [describe_function(spec) for _, spec in registry.items()]

    del list_tables, count, page, get, insert, replace, remove, list_functions


def _fields(document: Any) -> dict[str, Any]:
    """The user fields of a document the dashboard sent (system fields dropped)."""
    if not isinstance(document, dict):
        raise UserError(
            {"message": f"A document must be an object, got {type(document).__name__}", "path": "$"}
        )
    return {k: value for k, value in document.items() if k not in SYSTEM_FIELDS}


async def _checked(write: Any) -> Any:
    """Await a write; a schema refusal becomes a UserError whose data names the path (so the
    dashboard can show it), and nothing is written (the mutation fails as a whole)."""
    try:
        return await write
    except ValidationError as exc:
        raise UserError(
            {"message": exc.message, "path": exc.path, "code": exc.code}, message=exc.message
        ) from exc
