"""Registry: filing under canonical paths, duplicates, and Convex's resolution errors."""

from __future__ import annotations

from typing import Any

import pytest

from functions import (
    FunctionDefinitionError,
    FunctionKind,
    FunctionPath,
    InvalidFunctionPath,
    Registry,
    http_action,
    internal_mutation,
    mutation,
    query,
)
from schema.errors import FunctionNotFound


@query
async def list_messages(ctx: Any) -> list[Any]:
    return []


@mutation
async def send(ctx: Any, body: str) -> None:
    return None


@internal_mutation
async def purge(ctx: Any) -> None:
    return None


@query
async def default_query(ctx: Any) -> str:
    return "default"


@http_action
async def webhook(ctx: Any, request: Any) -> None:
    return None


@pytest.fixture
def registry() -> Registry:
    # Each test gets fresh specs: the registry sets `path` on the objects it files.
    registry = Registry()
    for path, spec in [
        ("messages:list", list_messages),
        ("messages:send", send),
        ("messages:purge", purge),
        ("messages", default_query),
        ("hooks:webhook", webhook),
    ]:
        spec.path = None
        registry.add(path, spec)
    return registry


def test_add_sets_the_canonical_path(registry: Registry) -> None:
    assert default_query.path == "messages:default"
    assert list_messages.path == "messages:list"
    assert registry.paths() == [
        "hooks:webhook",
        "messages:default",
        "messages:list",
        "messages:purge",
        "messages:send",
    ]
    assert len(registry) == 5 and "messages.js" in registry and "nope:x" not in registry
    assert 3 not in registry
    assert [spec.path for spec in registry] == registry.paths()
    assert dict(registry.items())[FunctionPath("messages:send")] is send
    assert repr(registry) == "<Registry 5 functions>"


@pytest.mark.parametrize(
    "spelling", ["messages", "messages:default", "messages.js", "messages.js:default"]
)
def test_default_export_spellings(registry: Registry, spelling: str) -> None:
    assert registry.resolve(spelling) is default_query
    assert registry.resolve(spelling, kind=FunctionKind.QUERY) is default_query


def test_not_found_text(registry: Registry) -> None:
    with pytest.raises(FunctionNotFound) as info:
        registry.resolve("messages:lis")
    assert str(info.value) == "Could not find public function for 'messages:lis'."
    with pytest.raises(FunctionNotFound, match="for 'other:default'"):
        registry.resolve("other.js")


def test_kind_mismatch_text(registry: Registry) -> None:
    with pytest.raises(FunctionNotFound) as info:
        registry.resolve("messages:send", kind=FunctionKind.QUERY)
    assert str(info.value) == (
        "Trying to execute messages:send as Query, but it is defined as Mutation."
    )
    with pytest.raises(FunctionNotFound, match="as Action, but it is defined as Query"):
        registry.resolve("messages:list", kind=FunctionKind.ACTION)


def test_internal_functions_look_missing_to_clients(registry: Registry) -> None:
    with pytest.raises(FunctionNotFound) as info:
        registry.resolve("messages:purge", kind=FunctionKind.QUERY)
    assert str(info.value) == "Could not find public function for 'messages:purge'."
    with pytest.raises(FunctionNotFound, match="Could not find public function"):
        registry.resolve("messages:purge")
    assert registry.resolve("messages:purge", allow_internal=True) is purge
    assert registry.resolve("messages:purge", kind=FunctionKind.MUTATION, allow_internal=True)
    with pytest.raises(FunctionNotFound, match="Could not find function for 'messages:nope'"):
        registry.resolve("messages:nope", allow_internal=True)


def test_http_actions_are_not_callable_by_path(registry: Registry) -> None:
    with pytest.raises(FunctionNotFound, match="Could not find public function"):
        registry.resolve("hooks:webhook")
    with pytest.raises(FunctionNotFound, match="defined as HttpAction"):
        registry.resolve("hooks:webhook", kind=FunctionKind.ACTION)
    assert registry.resolve("hooks:webhook", kind=FunctionKind.HTTP_ACTION) is webhook


def test_malformed_paths_are_not_found(registry: Registry) -> None:
    with pytest.raises(InvalidFunctionPath, match="Invalid function path 'messages:'"):
        registry.resolve("messages:")
    assert registry.get("messages:") is None
    assert registry.get("messages.js:list") is list_messages


def test_duplicates(registry: Registry) -> None:
    @query
    async def other(ctx: Any) -> None:
        return None

    with pytest.raises(
        FunctionDefinitionError, match="Two functions have the path 'messages:list'"
    ):
        registry.add("messages.js:list", other, origin="messages.py: other")
    assert registry.add("messages:list", list_messages) is list_messages  # same spec: no-op


def test_aliases_get_their_own_path(registry: Registry) -> None:
    alias = registry.add("messages:all", list_messages)
    assert alias is not list_messages and alias.handler is list_messages.handler
    assert alias.path == "messages:all" and list_messages.path == "messages:list"
    assert registry.add("messages:all", list_messages) is alias  # re-adding the alias: no-op


def test_add_export(registry: Registry) -> None:
    @query(name="renamed")
    async def original(ctx: Any) -> None:
        return None

    stored = registry.add_export("admin/users", "original", original)
    assert stored.path == "admin/users:renamed"
    with pytest.raises(FunctionDefinitionError, match="is not an identifier"):
        registry.add_export("admin", "ünïcode", send, origin="admin.py: ünïcode")
    with pytest.raises(FunctionDefinitionError, match="may only contain"):
        registry.add_export("bad-module", "f", send)
    with pytest.raises(TypeError, match="expects a FunctionSpec"):
        registry.add("x:y", object())  # type: ignore[arg-type]
