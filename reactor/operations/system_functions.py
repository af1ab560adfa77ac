"""Built-in system functions: trusted functions at ``_system/...`` paths, run in the server.

Owns the registry of system functions (``SystemFunctions``), who may call them (only a caller
holding the deployment's admin key), and ``SystemRouter``, the ``FunctionRunner`` that runs
them in the server's own process (never on the app's runner processes) while every other call
goes to the app's runner. It does not define the functions themselves (``cli_functions`` and
the other modules that register into it) nor speak any transport: HTTP (``/api/query``,
``/api/mutation``, ``/api/action``, ``/api/function``, ``/api/run/...``) and the sync websocket
resolve paths through ``Deployment.resolve``, and calls then run through the ``Executor`` like
app functions do, so system queries are real queries: read-set tracked, cached and LIVE over
the websocket, and system mutations commit with the same OCC checks.

How to add a system function (in your own module under ``reactor/operations/``)::

    from functions.context import QueryCtx
    from reactor.operations.system_functions import SystemFunctions
    from schema import v

    def register(functions: SystemFunctions, deployment: MyNeeds) -> None:
        @functions.query("_system/frontend/tableSize", args={"table": v.string()})
        async def table_size(ctx: QueryCtx, *, table: str) -> int:
            return len(await ctx.db.query(table).collect())  # reads tracked: live

Then call ``register(self.system_functions, self)`` in ``Deployment._system_functions``
(``reactor/server/deployment.py``), the one place that lists the registered modules.
``MyNeeds`` is a ``typing.Protocol`` naming only the deployment attributes your functions use
(``Deployment`` satisfies it structurally; operations never imports the server).

Handlers get the ordinary contexts (``QueryCtx``, ``MutationCtx``, ``ActionCtx``): ``ctx.db``
reads user tables and, through ``ctx.db.system``, the system tables. Arguments are validated
against ``args=`` as for app functions. Paths must start with ``_system/``; a path without
``:name`` is ``:default`` (``_system/cli/tables`` is ``_system/cli/tables:default``).
Limitation: an action's ``ctx.run_query``/``ctx.run_mutation`` resolves app functions only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from functions.decorators import (
    ArgsValidators,
    FunctionKind,
    FunctionSpec,
    Handler,
    Visibility,
)
from functions.paths import FunctionPath, canonicalize
from functions.registry import Registry
from reactor.engine.invocation import (
    ActionServices,
    FunctionResult,
    HttpCall,
    HttpReply,
    MutationBatch,
    MutationCall,
)
from reactor.engine.runner import FunctionRunner
from schema.errors import FunctionNotFound
from schema.validators import Validator

__all__ = ["SYSTEM_PREFIX", "SystemFunctions", "SystemRouter", "is_system_path"]

SYSTEM_PREFIX = "_system/"


def is_system_path(path: str) -> bool:
    """True for a path naming a system function (``_system/...``), canonical or not."""
    return path.startswith(SYSTEM_PREFIX)


class SystemFunctions:
    """The registry of system functions. Modules add functions with ``query``, ``mutation``,
    ``action`` (decorators taking the full path) or ``add``; transports find them with
    ``resolve``, which refuses every caller without the admin key."""

    def __init__(self) -> None:
        self.registry = Registry()

    def __len__(self) -> int:
        return len(self.registry)

    def __contains__(self, path: object) -> bool:
        return path in self.registry

    def add(self, path: str, spec: FunctionSpec) -> FunctionSpec:
        """File ``spec`` at ``path`` and return the stored spec (its ``path`` canonical).

        Raises:
            ValueError: ``path`` does not start with ``_system/``.
            FunctionDefinitionError: another system function already has this path.
        """
        if not is_system_path(path):
            raise ValueError(f"System function paths start with {SYSTEM_PREFIX!r}, got {path!r}")
        if spec.kind is FunctionKind.HTTP_ACTION:
            raise ValueError(f"{path}: system functions cannot be HTTP actions (add a route)")
        return self.registry.add(path, spec)

    def query(
        self, path: str, *, args: ArgsValidators | None = None, returns: Validator | None = None
    ) -> Callable[[Handler], FunctionSpec]:
        """Decorator: register ``async def handler(ctx: QueryCtx, **args)`` at ``path``."""
        return self._decorator(path, FunctionKind.QUERY, args, returns)

    def mutation(
        self, path: str, *, args: ArgsValidators | None = None, returns: Validator | None = None
    ) -> Callable[[Handler], FunctionSpec]:
        """Decorator: register ``async def handler(ctx: MutationCtx, **args)`` at ``path``."""
        return self._decorator(path, FunctionKind.MUTATION, args, returns)

    def action(
        self, path: str, *, args: ArgsValidators | None = None, returns: Validator | None = None
    ) -> Callable[[Handler], FunctionSpec]:
        """Decorator: register ``async def handler(ctx: ActionCtx, **args)`` at ``path``."""
        return self._decorator(path, FunctionKind.ACTION, args, returns)

    def _decorator(
        self,
        path: str,
        kind: FunctionKind,
        args: ArgsValidators | None,
        returns: Validator | None,
    ) -> Callable[[Handler], FunctionSpec]:
        def register(handler: Handler) -> FunctionSpec:
            spec = FunctionSpec(
                handler, kind=kind, visibility=Visibility.PUBLIC, args=args, returns=returns
            )
            return self.add(path, spec)

        return register

    def resolve(self, path: str, *, kind: FunctionKind | None, is_admin: bool) -> FunctionSpec:
        """The system function a caller named.

        Raises:
            FunctionNotFound: the caller lacks the admin key (whether or not the function
                exists, so nothing leaks; the message holds Convex's "You do not have
                permission to perform this operation", which the CLI reports and exits on),
                there is no such system function, or its kind is not ``kind``.
        """
        if not is_admin:
            raise FunctionNotFound(
                f"Could not find public function for '{canonicalize(path)}'. You do not have "
                "permission to perform this operation: system functions (_system/...) can only "
                "be called with the deployment's admin key."
            )
        return self.registry.resolve(path, kind=kind, allow_internal=True)

    def over(self, app: Registry) -> Registry:
        """A registry that finds ``_system/`` paths here and every other path in ``app`` (what
        the live queries re-bind to after a reload)."""
        return _Overlay(self.registry, app)


class _Overlay(Registry):
    """Read-only lookups across the system registry and an app's registry."""

    def __init__(self, system: Registry, app: Registry) -> None:
        super().__init__()
        self._system = system
        self._app = app

    def _part(self, path: str) -> Registry:
        return self._system if is_system_path(path) else self._app

    def add(self, path: str, spec: FunctionSpec, *, origin: str | None = None) -> FunctionSpec:
        raise TypeError("a registry overlay is read-only")

    def get(self, path: str) -> FunctionSpec | None:
        return self._part(path).get(path)

    def resolve(
        self, path: str, *, kind: FunctionKind | None = None, allow_internal: bool = False
    ) -> FunctionSpec:
        return self._part(path).resolve(path, kind=kind, allow_internal=allow_internal)

    def paths(self) -> list[FunctionPath]:
        return sorted([*self._system.paths(), *self._app.paths()])

    def items(self) -> Iterator[tuple[FunctionPath, FunctionSpec]]:
        return iter(sorted([*self._system.items(), *self._app.items()]))

    def __len__(self) -> int:
        return len(self._system) + len(self._app)


class SystemRouter:
    """The deployment's ``FunctionRunner``: ``_system/`` paths run on ``system`` (an in-process
    ``Invoker`` over the system registry), everything else on ``app`` (the runner pools, or
    the in-process app invoker)."""

    def __init__(self, app: FunctionRunner, system: FunctionRunner) -> None:
        self.app = app
        self.system = system

    def _for(self, path: str) -> FunctionRunner:
        return self.system if is_system_path(path) else self.app

    async def query(
        self,
        path: str,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None,
        ts: int,
        journal: str | None,
    ) -> FunctionResult:
        return await self._for(path).query(path, args, identity=identity, ts=ts, journal=journal)

    async def mutation(
        self,
        path: str,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None,
        ts: int,
        job_id: str | None,
        urgent: bool = False,
        hot: frozenset[str] | None = None,
    ) -> FunctionResult:
        return await self._for(path).mutation(
            path, args, identity=identity, ts=ts, job_id=job_id, urgent=urgent, hot=hot
        )

    def has_room(self, path: str) -> bool:
        return self._for(path).has_room(path)

    async def room(self, path: str) -> None:
        await self._for(path).room(path)

    async def mutation_batch(
        self, calls: list[MutationCall], *, ts: int, hot: frozenset[str] | None = None
    ) -> MutationBatch:
        """Runs on the runner of the first call's path: a batch is of one function."""
        return await self._for(calls[0].path).mutation_batch(calls, ts=ts, hot=hot)

    async def action(
        self,
        path: str,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None,
        services: ActionServices,
    ) -> FunctionResult:
        return await self._for(path).action(path, args, identity=identity, services=services)

    async def http_action(
        self,
        call: HttpCall,
        *,
        identity: dict[str, Any] | None,
        auth_error: tuple[str, str] | None,
        services: ActionServices,
    ) -> HttpReply:
        return await self.app.http_action(
            call, identity=identity, auth_error=auth_error, services=services
        )
