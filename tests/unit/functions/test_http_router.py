"""HTTP router: route validation, exact-then-longest-prefix lookup, HEAD via GET, discovery."""

from __future__ import annotations

import http as stdlib_http
import types
from typing import Any

import pytest

from functions import ModuleLoadError, action, http_action, mutation
from functions.http_router import (
    ROUTABLE_METHODS,
    HttpRouter,
    Route,
    RouteMatch,
    find_http_router,
    http_router,
)


@http_action
async def hook(ctx: Any, request: Any) -> str:
    return "hook"


@http_action
async def files(ctx: Any, request: Any) -> str:
    return "files"


@http_action
async def images(ctx: Any, request: Any) -> str:
    return "images"


@http_action
async def fallback(ctx: Any, request: Any) -> str:
    return "fallback"


@mutation
async def a_mutation(ctx: Any) -> None: ...


@action
async def an_action(ctx: Any) -> None: ...


def handler_of(router: HttpRouter, method: str, path: str) -> Any:
    match = router.lookup(method, path)
    return None if match is None else match.handler


class TestRoute:
    def test_exact_path(self) -> None:
        router = http_router()
        route = router.route(path="/hook", method="POST", handler=hook)
        assert route == Route("POST", hook, path="/hook")
        assert not route.is_prefix and route.pattern == "/hook" and str(route) == "POST /hook"
        assert router.lookup("POST", "/hook") == RouteMatch(hook, route, drop_body=False)
        assert router.lookup("POST", "/hook/") is None
        assert router.lookup("POST", "/hoo") is None
        assert router.lookup("GET", "/hook") is None

    def test_match_unpacks_as_handler_and_route(self) -> None:
        router = http_router()
        route = router.route(path="/hook", method="POST", handler=hook)
        match = router.lookup("POST", "/hook")
        assert match is not None
        handler, matched = match
        assert handler is hook and matched is route

    @pytest.mark.parametrize("method", ["get", "Get", "GET"])
    def test_methods_are_case_insensitive_and_stored_upper(self, method: str) -> None:
        router = http_router()
        assert router.route(path="/a", method=method, handler=hook).method == "GET"
        assert handler_of(router, "get", "/a") is hook
        assert handler_of(router, "GET", "/a") is hook

    @pytest.mark.parametrize("method", ROUTABLE_METHODS)
    def test_every_routable_method(self, method: str) -> None:
        router = http_router()
        router.route(path="/a", method=method, handler=hook)
        assert handler_of(router, method, "/a") is hook
        others = [other for other in ROUTABLE_METHODS if other != method]
        assert all(router.lookup(other, "/a") is None for other in others)

    def test_prefix(self) -> None:
        router = http_router()
        route = router.route(path_prefix="/files/", method="GET", handler=files)
        assert route.is_prefix and route.pattern == "/files/*" and str(route) == "GET /files/*"
        assert handler_of(router, "GET", "/files/") is files
        assert handler_of(router, "GET", "/files/a/b.txt") is files
        assert router.lookup("GET", "/files") is None  # the prefix ends with '/'
        assert router.lookup("GET", "/filesystem") is None
        assert router.lookup("POST", "/files/a") is None

    def test_longest_prefix_wins_whatever_the_order(self) -> None:
        router = http_router()
        router.route(path_prefix="/files/images/", method="GET", handler=images)
        router.route(path_prefix="/", method="GET", handler=fallback)
        router.route(path_prefix="/files/", method="GET", handler=files)
        assert handler_of(router, "GET", "/files/images/cat.png") is images
        assert handler_of(router, "GET", "/files/images/") is images
        assert handler_of(router, "GET", "/files/images") is files
        assert handler_of(router, "GET", "/files/doc.txt") is files
        assert handler_of(router, "GET", "/other") is fallback
        assert handler_of(router, "GET", "/") is fallback

    def test_exact_path_beats_any_prefix(self) -> None:
        router = http_router()
        router.route(path_prefix="/files/", method="GET", handler=files)
        router.route(path="/files/special", method="GET", handler=hook)
        router.route(path="/files/", method="GET", handler=fallback)
        assert handler_of(router, "GET", "/files/special") is hook
        assert handler_of(router, "GET", "/files/") is fallback
        assert handler_of(router, "GET", "/files/special/x") is files

    def test_prefix_for_another_method_does_not_shadow(self) -> None:
        router = http_router()
        router.route(path_prefix="/api/v1/", method="POST", handler=images)
        router.route(path_prefix="/api/", method="GET", handler=files)
        assert handler_of(router, "GET", "/api/v1/x") is files
        assert handler_of(router, "POST", "/api/v1/x") is images
        assert router.lookup("POST", "/api/x") is None

    def test_same_path_with_different_methods(self) -> None:
        router = http_router()
        router.route(path="/a", method="GET", handler=hook)
        router.route(path="/a", method="POST", handler=files)
        router.route(path="/a", method="OPTIONS", handler=fallback)
        assert handler_of(router, "GET", "/a") is hook
        assert handler_of(router, "POST", "/a") is files
        assert handler_of(router, "OPTIONS", "/a") is fallback

    def test_no_routes(self) -> None:
        assert http_router().lookup("GET", "/") is None
        assert len(http_router()) == 0


class TestHead:
    def test_head_is_served_by_get_without_body(self) -> None:
        router = http_router()
        route = router.route(path="/page", method="GET", handler=hook)
        assert router.lookup("HEAD", "/page") == RouteMatch(hook, route, drop_body=True)
        assert router.lookup("head", "/page") == RouteMatch(hook, route, drop_body=True)
        match = router.lookup("GET", "/page")
        assert match is not None and not match.drop_body

    def test_head_follows_prefix_routes(self) -> None:
        router = http_router()
        router.route(path_prefix="/files/", method="GET", handler=files)
        match = router.lookup("HEAD", "/files/x")
        assert match is not None and match.handler is files and match.drop_body

    def test_head_without_get_route(self) -> None:
        router = http_router()
        router.route(path="/page", method="POST", handler=hook)
        assert router.lookup("HEAD", "/page") is None

    def test_head_cannot_be_routed(self) -> None:
        with pytest.raises(ValueError, match="HEAD requests are served by the GET route"):
            http_router().route(path="/page", method="HEAD", handler=hook)


class TestValidation:
    @pytest.mark.parametrize("method", ["TRACE", "CONNECT", "FOO", ""])
    def test_unroutable_methods(self, method: str) -> None:
        with pytest.raises(ValueError, match="not a routable HTTP method; use one of GET, POST"):
            http_router().route(path="/a", method=method, handler=hook)

    def test_unroutable_methods_never_match(self) -> None:
        router = http_router()
        router.route(path_prefix="/", method="GET", handler=hook)
        assert router.lookup("TRACE", "/a") is None

    def test_method_must_be_a_string(self) -> None:
        with pytest.raises(TypeError, match="method=...\\) must be a string"):
            http_router().route(path="/a", method=None, handler=hook)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "kwargs",
        [{}, {"path": "/a", "path_prefix": "/a/"}],
    )
    def test_exactly_one_of_path_and_prefix(self, kwargs: dict[str, str]) -> None:
        with pytest.raises(ValueError, match="exactly one of path= or path_prefix="):
            http_router().route(method="GET", handler=hook, **kwargs)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"path": "a"}, "path='a'\\): it must start with '/'"),
            ({"path": ""}, "it must start with '/'"),
            ({"path_prefix": "a/"}, "path_prefix='a/'\\): it must start with '/'"),
            ({"path_prefix": "/a"}, "path_prefix='/a'\\): it must end with '/'"),
            ({"path": "/a?b=1"}, "without '\\?' or '#'"),
            ({"path": "/a#top"}, "without '\\?' or '#'"),
            ({"path": "/a b"}, "whitespace or control characters"),
            ({"path": "/a\x00"}, "whitespace or control characters"),
            ({"path": "/.files/x"}, "paths under /.files/ are reserved"),
            ({"path": "/.files"}, "paths under /.files/ are reserved"),
            ({"path_prefix": "/.files/"}, "paths under /.files/ are reserved"),
            ({"path_prefix": "/.files/images/"}, "paths under /.files/ are reserved"),
        ],
    )
    def test_bad_paths(self, kwargs: dict[str, str], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            http_router().route(method="GET", handler=hook, **kwargs)

    @pytest.mark.parametrize("kwargs", [{"path": 5}, {"path_prefix": b"/a/"}])
    def test_paths_must_be_strings(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(TypeError, match="must be a string"):
            http_router().route(method="GET", handler=hook, **kwargs)

    def test_paths_near_the_reserved_prefix_are_fine(self) -> None:
        router = http_router()
        router.route(path="/.filesx", method="GET", handler=hook)
        router.route(path_prefix="/.well-known/", method="GET", handler=files)
        assert handler_of(router, "GET", "/.filesx") is hook
        assert handler_of(router, "GET", "/.well-known/openid-configuration") is files

    def test_reserved_paths_never_match(self) -> None:
        router = http_router()
        router.route(path_prefix="/", method="GET", handler=fallback)
        assert router.lookup("GET", "/.files/abc") is None
        assert handler_of(router, "GET", "/.files") is fallback  # not under the prefix

    def test_duplicate_path(self) -> None:
        router = http_router()
        router.route(path="/hook", method="POST", handler=hook)
        with pytest.raises(ValueError, match="Duplicate route: path '/hook' for method POST"):
            router.route(path="/hook", method="post", handler=files)
        assert handler_of(router, "POST", "/hook") is hook

    def test_duplicate_prefix(self) -> None:
        router = http_router()
        router.route(path_prefix="/files/", method="GET", handler=files)
        with pytest.raises(ValueError, match="path prefix '/files/' for method GET is already"):
            router.route(path_prefix="/files/", method="GET", handler=files)

    def test_a_path_and_a_prefix_may_share_text(self) -> None:
        router = http_router()
        router.route(path="/files/", method="GET", handler=hook)
        router.route(path_prefix="/files/", method="GET", handler=files)
        assert len(router) == 2

    @pytest.mark.parametrize(
        ("handler", "match"),
        [
            (a_mutation, "must be an @http_action function, got .*Mutation.* \\(a Mutation\\)"),
            (an_action, "\\(a Action\\)"),
            (lambda ctx, request: None, "must be an @http_action function, got <function"),
            (None, "must be an @http_action function, got None"),
        ],
    )
    def test_handler_must_be_an_http_action(self, handler: Any, match: str) -> None:
        with pytest.raises(TypeError, match=match):
            http_router().route(path="/a", method="GET", handler=handler)


class TestRoutesListing:
    def test_routes_in_lookup_precedence(self) -> None:
        router = http_router()
        router.route(path_prefix="/", method="GET", handler=fallback)
        router.route(path="/z", method="POST", handler=hook)
        router.route(path="/a", method="POST", handler=hook)
        router.route(path="/a", method="GET", handler=hook)
        router.route(path_prefix="/files/images/", method="GET", handler=images)
        router.route(path_prefix="/files/", method="GET", handler=files)
        assert [str(route) for route in router.routes()] == [
            "GET /a",
            "POST /a",
            "POST /z",
            "GET /files/images/*",
            "GET /files/*",
            "GET /*",
        ]
        assert len(router) == 6
        assert "GET /files/*" in repr(router)


def module(**values: Any) -> types.ModuleType:
    made = types.ModuleType("_reactor_app_x.http")
    made.__file__ = "/app/http.py"
    vars(made).update(values)
    return made


class TestFindHttpRouter:
    def test_http_variable(self) -> None:
        router = http_router()
        assert find_http_router(module(http=router, other=HttpRouter())) is router

    def test_only_router_under_any_name(self) -> None:
        router = http_router()
        assert find_http_router(module(http=stdlib_http, routes=router, alias=router)) is router

    def test_none(self) -> None:
        with pytest.raises(ModuleLoadError, match="`http = http_router\\(\\)`") as info:
            find_http_router(module(http=stdlib_http))
        assert info.value.file == "/app/http.py"

    def test_several_without_http(self) -> None:
        with pytest.raises(ModuleLoadError, match="several routers \\(a, b\\)"):
            find_http_router(module(a=HttpRouter(), b=HttpRouter()))
