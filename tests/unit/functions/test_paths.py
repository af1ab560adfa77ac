"""Function path canonicalisation (PROTOCOL.md §3.3) and /api/run URL tails."""

from __future__ import annotations

from typing import Any

import pytest

from functions import InvalidFunctionPath, query
from functions.paths import (
    canonicalize,
    check_function_name,
    check_module_path,
    path_from_run_url,
    reference_path,
    split_path,
)
from schema.errors import FunctionNotFound


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("messages", "messages:default"),
        ("messages:default", "messages:default"),
        ("messages.js", "messages:default"),
        ("messages.js:default", "messages:default"),
        ("messages:list", "messages:list"),
        ("messages.js:list", "messages:list"),
        ("dir/sub/mod:fn", "dir/sub/mod:fn"),
        ("dir/sub/mod.js:fn", "dir/sub/mod:fn"),
        ("dir/sub/mod", "dir/sub/mod:default"),
        ("v1.2/api:_private9", "v1.2/api:_private9"),
        ("2fa:check", "2fa:check"),
        ("m.js.js:f", "m.js:f"),  # only one .js is stripped, as the JS client does
    ],
)
def test_canonicalize(given: str, canonical: str) -> None:
    assert canonicalize(given) == canonical


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("", "module path is empty"),
        (":list", "module path is empty"),
        ("messages:", "function name is empty"),
        ("messages:li st", "not an identifier"),
        ("messages:9lives", "not an identifier"),
        ("messages:" + "x" * 65, "longer than 64"),
        ("dir//mod:f", "empty component"),
        ("/mod:f", "empty component"),
        ("dir/mod/:f", "empty component"),
        ("my-module:f", "may only contain letters"),
        ("../etc/passwd:f", "starts with a period"),
        ("a:b:c", "may only contain letters"),
        ("mod.js", None),
    ],
)
def test_malformed_paths(given: str, problem: str | None) -> None:
    if problem is None:
        assert split_path(given) == ("mod", "default")
        return
    with pytest.raises(InvalidFunctionPath, match=problem) as info:
        canonicalize(given)
    assert isinstance(info.value, FunctionNotFound) and isinstance(info.value, ValueError)
    assert f"Invalid function path {given!r}" in str(info.value)


def test_canonical_paths_are_remembered_within_a_bound() -> None:
    from functions import paths

    paths._canonical.clear()
    for _ in range(2):  # answered the same from the cache
        assert canonicalize("dir/mod.js:fn") == "dir/mod:fn"
        with pytest.raises(InvalidFunctionPath):
            canonicalize("dir//mod:fn")  # refused each time: never remembered
    assert paths._canonical == {"dir/mod.js:fn": "dir/mod:fn"}
    for i in range(paths._CANONICAL_CACHE + 10):
        canonicalize(f"m{i}:f")
    assert len(paths._canonical) <= paths._CANONICAL_CACHE


def test_non_string_paths() -> None:
    with pytest.raises(InvalidFunctionPath, match="expected a string, got int"):
        canonicalize(3)


def test_split_path() -> None:
    assert split_path("admin/users.js") == ("admin/users", "default")
    assert split_path("admin/users:remove") == ("admin/users", "remove")


def test_name_and_module_checks() -> None:
    assert check_function_name("list") == "list"
    assert check_module_path("a/b") == "a/b"
    with pytest.raises(InvalidFunctionPath, match="Invalid function name"):
        check_function_name("a.b")
    with pytest.raises(InvalidFunctionPath, match="Invalid module path"):
        check_module_path("a b")
    with pytest.raises(InvalidFunctionPath, match="strings, got NoneType"):
        check_module_path(None)
    with pytest.raises(InvalidFunctionPath, match="strings, got int"):
        check_function_name(1)


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("/api/run/messages/list", "messages:list"),
        ("/api/run/messages/default", "messages:default"),
        ("/api/run/dir/sub/module/function", "dir/sub/module:function"),
        ("dir/module/function", "dir/module:function"),
        ("/api/run/messages/list/", "messages:list"),
        ("/api/run/messages:list", "messages:list"),
        ("/api/run/messages.js:default", "messages:default"),
    ],
)
def test_run_urls(url: str, canonical: str) -> None:
    assert path_from_run_url(url) == canonical


@pytest.mark.parametrize("url", ["/api/run/messages", "/api/run/", "/api/run/a//b", "x/bad-name"])
def test_bad_run_urls(url: str) -> None:
    with pytest.raises(InvalidFunctionPath):
        path_from_run_url(url)


def test_reference_path() -> None:
    @query
    async def listed(ctx: Any) -> None:
        return None

    assert reference_path("tasks") == "tasks:default"
    with pytest.raises(InvalidFunctionPath, match="is not registered"):
        reference_path(listed)
    listed.path = "tasks:listed"
    assert reference_path(listed) == "tasks:listed"
    with pytest.raises(TypeError, match="path string or a registered function"):
        reference_path(42)
