"""The HTTP router an app's ``http.py`` builds: which ``@http_action`` serves a request.

Owns route declaration and its validation (``http = http_router()``, then
``http.route(path=... | path_prefix=..., method=..., handler=...)``) and the lookup rule: an exact
path first, else the longest matching prefix; HEAD is served by the GET route with the body
dropped. It does not parse requests, build responses or add CORS headers (Convex adds none: the
handler sets them and the app routes OPTIONS itself); the runtime's HTTP server does the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from functions.decorators import FunctionKind, FunctionSpec
from functions.errors import ModuleLoadError

__all__ = [
    "RESERVED_PATH_PREFIX",
    "ROUTABLE_METHODS",
    "HttpRouter",
    "Route",
    "RouteMatch",
    "find_http_router",
    "load_http_router",
    "http_router",
]

ROUTABLE_METHODS = ("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
"""The methods a route may name; HEAD requests go to the GET route."""

RESERVED_PATH_PREFIX = "/.files/"
"""Paths under this prefix belong to the backend: they cannot be routed and never match."""


@dataclass(frozen=True)
class Route:
    """One declared route: exactly one of ``path`` and ``path_prefix`` is set."""

    method: str
    handler: FunctionSpec
    path: str | None = None
    path_prefix: str | None = None

    @property
    def is_prefix(self) -> bool:
        return self.path_prefix is not None

    @property
    def pattern(self) -> str:
        """``"/hook"`` for a path, ``"/files/*"`` for a prefix (as Convex lists them)."""
        return self.path if self.path is not None else f"{self.path_prefix}*"

    def __str__(self) -> str:
        return f"{self.method} {self.pattern}"


@dataclass(frozen=True)
class RouteMatch:
    """The result of ``HttpRouter.lookup``; unpacks as ``handler, route``.

    Attributes:
        handler: the HTTP action to run.
        route: the route that matched.
        drop_body: the request was HEAD, served by the GET route: send the handler's status and
            headers without its body.
    """

    handler: FunctionSpec
    route: Route
    drop_body: bool = False

    def __iter__(self) -> Iterator[Any]:
        return iter((self.handler, self.route))


def _check_method(method: Any) -> str:
    if not isinstance(method, str):
        raise TypeError(f"route(method=...) must be a string, got {type(method).__name__}")
    upper = method.upper()
    if upper == "HEAD":
        raise ValueError(
            "route(method='HEAD'): HEAD requests are served by the GET route; route GET instead"
        )
    if upper not in ROUTABLE_METHODS:
        raise ValueError(
            f"route(method={method!r}): not a routable HTTP method; use one of "
            f"{', '.join(ROUTABLE_METHODS)}"
        )
    return upper


def _check_handler(handler: Any) -> FunctionSpec:
    if not isinstance(handler, FunctionSpec):
        raise TypeError(f"route(handler=...) must be an @http_action function, got {handler!r}")
    if handler.kind is not FunctionKind.HTTP_ACTION:
        raise TypeError(
            f"route(handler=...) must be an @http_action function, got {handler!r} "
            f"(a {handler.kind.value})"
        )
    return handler


def _check_path(option: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"route({option}=...) must be a string, got {type(value).__name__}")
    if not value.startswith("/"):
        raise ValueError(f"route({option}={value!r}): it must start with '/'")
    if "?" in value or "#" in value:
        raise ValueError(
            f"route({option}={value!r}): routes match the URL path only, without '?' or '#'"
        )
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError(f"route({option}={value!r}): it contains whitespace or control characters")
    if _is_reserved(value) or value == RESERVED_PATH_PREFIX.rstrip("/"):
        raise ValueError(
            f"route({option}={value!r}): paths under {RESERVED_PATH_PREFIX} are reserved"
        )
    return value


def _is_reserved(path: str) -> bool:
    return path.startswith(RESERVED_PATH_PREFIX)


class HttpRouter:
    """Routes ``(method, path)`` to HTTP actions.

    Invariant: at most one route per ``(path, method)`` and per ``(path_prefix, method)``; an
    exact path and a prefix may coexist (the exact path wins where both match).
    """

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], Route] = {}
        self._prefixes: dict[tuple[str, str], Route] = {}

    def route(
        self,
        *,
        path: str | None = None,
        path_prefix: str | None = None,
        method: str,
        handler: FunctionSpec,
    ) -> Route:
        """Declare a route and return it.

        Args:
            path: an exact URL path, starting with ``/``.
            path_prefix: a prefix starting and ending with ``/``; matches every path under it.
            method: GET, POST, PUT, DELETE, OPTIONS or PATCH, any case (stored upper case).
            handler: an ``@http_action`` function.

        Raises:
            ValueError: not exactly one of ``path``/``path_prefix``, a malformed or reserved
                path (under ``/.files/``), an unroutable method, or a duplicate route.
            TypeError: a wrong type, or a handler that is not an ``@http_action``.
        """
        if (path is None) == (path_prefix is None):
            raise ValueError("route() takes exactly one of path= or path_prefix=")
        upper = _check_method(method)
        spec = _check_handler(handler)
        if path is not None:
            checked = _check_path("path", path)
            table, route = self._exact, Route(upper, spec, path=checked)
        else:
            checked = _check_path("path_prefix", path_prefix)
            if not checked.endswith("/"):
                raise ValueError(f"route(path_prefix={checked!r}): it must end with '/'")
            table, route = self._prefixes, Route(upper, spec, path_prefix=checked)
        existing = table.get((checked, upper))
        if existing is not None:
            kind = "path prefix" if route.is_prefix else "path"
            raise ValueError(
                f"Duplicate route: {kind} {checked!r} for method {upper} is already routed to "
                f"{existing.handler!r}"
            )
        table[(checked, upper)] = route
        return route

    def lookup(self, method: str, path: str) -> RouteMatch | None:
        """The route serving ``method`` on ``path`` (the URL path, without the query string).

        An exact path wins; otherwise the longest prefix that ``path`` starts with. HEAD looks
        up GET and sets ``drop_body``. Returns None when nothing matches (the server answers
        404 "No HttpAction routed for ..."), for unroutable methods and for reserved paths.
        """
        upper = method.upper()
        drop_body = upper == "HEAD"
        if drop_body:
            upper = "GET"
        if upper not in ROUTABLE_METHODS or _is_reserved(path):
            return None
        route = self._exact.get((path, upper))
        if route is None:
            best = -1
            for (prefix, routed_method), candidate in self._prefixes.items():
                if routed_method == upper and len(prefix) > best and path.startswith(prefix):
                    best, route = len(prefix), candidate
        if route is None:
            return None
        return RouteMatch(route.handler, route, drop_body)

    def routes(self) -> list[Route]:
        """Every route in lookup precedence: exact paths (sorted), then prefixes, longest first."""
        order = {method: i for i, method in enumerate(ROUTABLE_METHODS)}
        exact = sorted(self._exact.values(), key=lambda r: (r.path or "", order[r.method]))
        prefixes = sorted(
            self._prefixes.values(),
            key=lambda r: (-len(r.path_prefix or ""), r.path_prefix or "", order[r.method]),
        )
        return exact + prefixes

    def __len__(self) -> int:
        return len(self._exact) + len(self._prefixes)

    def __repr__(self) -> str:
        return f"<HttpRouter {[str(route) for route in self.routes()]}>"


def http_router() -> HttpRouter:
    """A new, empty router; ``http.py`` does ``http = http_router()`` and routes on it."""
    return HttpRouter()


def find_http_router(module: ModuleType) -> HttpRouter:
    """The router an imported ``http.py`` serves.

    The module-level variable ``http`` when it is an ``HttpRouter`` (``import http`` of the
    standard library does not count); otherwise the only ``HttpRouter`` among its globals.

    Raises:
        ModuleLoadError: the module holds no router, or several and none named ``http``.
    """
    file = getattr(module, "__file__", None)
    named = getattr(module, "http", None)
    if isinstance(named, HttpRouter):
        return named
    found: dict[int, tuple[str, HttpRouter]] = {}
    for attribute, value in vars(module).items():
        if isinstance(value, HttpRouter):
            found.setdefault(id(value), (attribute, value))
    if len(found) == 1:
        return next(iter(found.values()))[1]
    if not found:
        raise ModuleLoadError(
            "http.py must define its routes on `http = http_router()` at module level", file=file
        )
    names = ", ".join(sorted(attribute for attribute, _ in found.values()))
    raise ModuleLoadError(
        f"http.py defines several routers ({names}); name the one to serve `http`", file=file
    )


def load_http_router(app: Any) -> HttpRouter | None:
    """The router of a loaded app's ``http.py``, or None when it has none."""
    if app.declared is not None:
        return app.declared.http_router  # type: ignore[no-any-return]
    if "http" not in app.special_files:
        return None
    return find_http_router(app.import_module("http"))
