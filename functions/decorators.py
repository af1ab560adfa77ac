"""``@query``, ``@mutation``, ``@action``, their ``internal_*`` twins and ``@http_action``.

Owns ``FunctionSpec`` (what a decorator turns an async handler into), its kind and visibility,
and how one call is invoked: validate the arguments, await the handler, validate the result. It
does not build contexts, pick transactions or retry (the runtime's executor does), and it does
not assign paths (``functions.registry`` does, when an app is loaded).
"""

from __future__ import annotations

import copy
import enum
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeAlias, overload

from functions import deployment_env
from functions.paths import function_name_problem
from schema.validators import ResolveIdTable, Validator, validate_args, validate_returns

__all__ = [
    "ArgsValidators",
    "FunctionDecorator",
    "FunctionKind",
    "FunctionSpec",
    "Handler",
    "Visibility",
    "action",
    "http_action",
    "internal_action",
    "internal_mutation",
    "internal_query",
    "mutation",
    "query",
]

Handler: TypeAlias = Callable[..., Awaitable[Any]]
ArgsValidators: TypeAlias = "Mapping[str, Validator] | Validator"


class FunctionKind(enum.Enum):
    """What a function may do; the value is Convex's name for it in messages."""

    QUERY = "Query"
    MUTATION = "Mutation"
    ACTION = "Action"
    HTTP_ACTION = "HttpAction"


class Visibility(enum.Enum):
    """Public functions are callable by clients; internal ones only by the backend itself."""

    PUBLIC = "public"
    INTERNAL = "internal"


class FunctionSpec:
    """A registered function: kind, visibility, handler and validators.

    ``path`` is None until the registry files the function under ``"module:name"``. The object
    stays awaitable-callable for tests: ``await tasks.add(ctx, text="x")`` is
    ``await tasks.add.invoke(ctx, {"text": "x"})``.
    """

    # Copied from the handler by functools.update_wrapper.
    __name__: str
    __qualname__: str

    def __init__(
        self,
        handler: Handler,
        *,
        kind: FunctionKind,
        visibility: Visibility,
        args: ArgsValidators | None = None,
        returns: Validator | None = None,
        name: str | None = None,
    ) -> None:
        self.handler = handler
        self.kind = kind
        self.visibility = visibility
        self.args = args
        self.returns = returns
        self.name = name
        self.path: str | None = None
        self.__name__ = self.__qualname__ = getattr(handler, "__name__", type(handler).__name__)
        functools.update_wrapper(self, handler)  # __name__, __doc__, __module__, __wrapped__

    @property
    def is_public(self) -> bool:
        return self.visibility is Visibility.PUBLIC

    @property
    def is_internal(self) -> bool:
        return self.visibility is Visibility.INTERNAL

    def with_path(self, path: str) -> FunctionSpec:
        """This function filed under ``path``: itself when unfiled, else a copy (an alias)."""
        if self.path is None or self.path == path:
            self.path = path
            return self
        alias = copy.copy(self)
        alias.path = path
        return alias

    def _display_name(self) -> str:
        return self.path or getattr(self, "__qualname__", None) or repr(self.handler)

    async def invoke(
        self,
        ctx: Any,
        args: Mapping[str, Any],
        *,
        resolve_id_table: ResolveIdTable | None = None,
    ) -> Any:
        """Run one call: validate ``args``, await ``handler(ctx, **args)``, validate the result.

        Args:
            ctx: the context the executor built (``QueryCtx``, ``MutationCtx``, ``ActionCtx``).
            args: the argument object the caller sent (a dict of Convex values).
            resolve_id_table: maps an id to its table for ``v.id(...)`` checks; by default the
                one of ``ctx.db`` when the context has a database.

        Returns:
            The handler's result (None when it returns nothing: Convex's ``null``).

        Raises:
            ArgumentValidationError: ``args`` do not match ``self.args``.
            ReturnValidationError: the result does not match ``self.returns``.
            TypeError: this is an HTTP action (use ``invoke_http``).
            Exception: whatever the handler raises, unchanged.
        """
        if self.kind is FunctionKind.HTTP_ACTION:
            raise TypeError(
                f"{self._display_name()} is an HTTP action; call invoke_http(ctx, request)"
            )
        if resolve_id_table is None:
            resolve_id_table = _resolver_of(ctx)
        function = self._display_name()
        validated = validate_args(
            self.args, args, function=function, resolve_id_table=resolve_id_table
        )
        result = await self.handler(ctx, **validated)
        if self.returns is not None:
            result = validate_returns(
                self.returns, result, function=function, resolve_id_table=resolve_id_table
            )
        return result

    async def invoke_http(self, ctx: Any, request: Any) -> Any:
        """Run an HTTP action: ``await handler(ctx, request)``; returns its response.

        ``functions.env`` reads ``ctx.env`` (the deployment's variables) while it runs."""
        if self.kind is not FunctionKind.HTTP_ACTION:
            raise TypeError(f"{self._display_name()} is a {self.kind.value}, not an HTTP action")
        with deployment_env.using(getattr(ctx, "env", None) or {}):
            return await self.handler(ctx, request)

    def __call__(self, ctx: Any, /, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        if self.kind is FunctionKind.HTTP_ACTION:
            return self.invoke_http(ctx, *args, **kwargs)
        if args:
            raise TypeError(
                f"{self._display_name()} takes its arguments by keyword: "
                f"{self.__name__}(ctx, name=value, ...)"
            )
        return self.invoke(ctx, kwargs)

    def __repr__(self) -> str:
        where = self.path or getattr(self, "__qualname__", "?")
        return f"<FunctionSpec {self.visibility.value} {self.kind.value} {where}>"


def _resolver_of(ctx: Any) -> ResolveIdTable | None:
    db = getattr(ctx, "db", None)
    resolver = getattr(db, "table_of_id", None)
    return resolver if callable(resolver) else None


def _is_async_callable(handler: Any) -> bool:
    if inspect.iscoroutinefunction(handler):
        return True
    # A callable object whose class defines ``async def __call__``.
    return not inspect.isroutine(handler) and inspect.iscoroutinefunction(type(handler).__call__)


def _check_handler(handler: Any, decorator: str) -> None:
    if isinstance(handler, FunctionSpec):
        raise TypeError(f"@{decorator} was applied to {handler!r}, which is already a function")
    if not callable(handler):
        raise TypeError(
            f"@{decorator} expects an async function, got {type(handler).__name__}; pass "
            f"validators by keyword: @{decorator}(args={{...}}, returns=...)"
        )
    if not _is_async_callable(handler):
        what = getattr(handler, "__qualname__", repr(handler))
        kind = "an async generator" if inspect.isasyncgenfunction(handler) else "not async"
        raise TypeError(
            f"@{decorator} handler {what} is {kind}: define it with "
            f"`async def {getattr(handler, '__name__', 'handler')}(ctx, ...)`"
        )


def _check_options(decorator: str, args: Any, returns: Any, name: Any) -> None:
    if args is not None and not isinstance(args, Validator):
        if not isinstance(args, Mapping):
            raise TypeError(
                f"@{decorator}(args=...) expects a dict of validators or a validator, got "
                f"{type(args).__name__}"
            )
        for key, validator in args.items():
            if not isinstance(key, str) or not isinstance(validator, Validator):
                raise TypeError(
                    f"@{decorator}(args=...) maps argument names to validators (v.string(), "
                    f"...); got {key!r}: {validator!r}"
                )
    if returns is not None and not isinstance(returns, Validator):
        raise TypeError(
            f"@{decorator}(returns=...) expects a validator (v.string(), ...), got {returns!r}"
        )
    if name is not None:
        problem = function_name_problem(name)
        if problem is not None:
            raise ValueError(f"@{decorator}(name=...): {problem}")


class FunctionDecorator:
    """One of ``query``, ``mutation``, ... : usable bare or called with options.

    ``@query`` on an ``async def handler(ctx, **args)`` gives a ``FunctionSpec``;
    ``@query(args={...}, returns=..., name="list")`` gives a decorator that does.
    """

    def __init__(self, kind: FunctionKind, visibility: Visibility, name: str) -> None:
        self.kind = kind
        self.visibility = visibility
        self.__name__ = self.__qualname__ = name

    @overload
    def __call__(self, handler: Handler, /) -> FunctionSpec: ...

    @overload
    def __call__(
        self,
        handler: None = None,
        /,
        *,
        args: ArgsValidators | None = None,
        returns: Validator | None = None,
        name: str | None = None,
    ) -> Callable[[Handler], FunctionSpec]: ...

    def __call__(
        self,
        handler: Handler | None = None,
        /,
        *,
        args: ArgsValidators | None = None,
        returns: Validator | None = None,
        name: str | None = None,
    ) -> FunctionSpec | Callable[[Handler], FunctionSpec]:
        if self.kind is FunctionKind.HTTP_ACTION and (args, returns, name) != (None, None, None):
            raise TypeError("@http_action takes no args=, returns= or name=: it gets the request")
        _check_options(self.__name__, args, returns, name)

        def build(function: Handler) -> FunctionSpec:
            _check_handler(function, self.__name__)
            return FunctionSpec(
                function,
                kind=self.kind,
                visibility=self.visibility,
                args=args,
                returns=returns,
                name=name,
            )

        return build if handler is None else build(handler)

    def __repr__(self) -> str:
        return f"<function decorator {self.__name__}>"


query = FunctionDecorator(FunctionKind.QUERY, Visibility.PUBLIC, "query")
mutation = FunctionDecorator(FunctionKind.MUTATION, Visibility.PUBLIC, "mutation")
action = FunctionDecorator(FunctionKind.ACTION, Visibility.PUBLIC, "action")
internal_query = FunctionDecorator(FunctionKind.QUERY, Visibility.INTERNAL, "internal_query")
internal_mutation = FunctionDecorator(
    FunctionKind.MUTATION, Visibility.INTERNAL, "internal_mutation"
)
internal_action = FunctionDecorator(FunctionKind.ACTION, Visibility.INTERNAL, "internal_action")
http_action = FunctionDecorator(FunctionKind.HTTP_ACTION, Visibility.PUBLIC, "http_action")
"""``@http_action`` on ``async def handler(ctx, request)``: routed by the app's ``http.py``; it
takes no validators (it receives the request and returns the response)."""
