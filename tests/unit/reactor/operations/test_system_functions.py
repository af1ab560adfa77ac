"""SystemFunctions: registration rules, the admin-only resolve, the registry overlay live queries
re-bind to, and SystemRouter sending `_system/` paths to the system runner only."""

from __future__ import annotations

from typing import Any

import pytest

from functions.decorators import FunctionKind, http_action, query
from functions.errors import FunctionDefinitionError
from functions.registry import Registry
from reactor.engine.invocation import (
    ActionServices,
    FunctionResult,
    HttpCall,
    HttpReply,
    MutationBatch,
    MutationCall,
)
from reactor.operations.system_functions import SystemFunctions, SystemRouter, is_system_path
from schema import v
from schema.errors import FunctionNotFound


async def handler(ctx: Any) -> str:
    return "ok"


def functions() -> SystemFunctions:
    system = SystemFunctions()
    system.query("_system/test/hello", args={"name": v.optional(v.string())})(handler)
    system.mutation("_system/test:write")(handler)
    return system


def test_paths_are_canonical_and_must_be_under_system() -> None:
    system = functions()
    assert "_system/test/hello:default" in system and "_system/test:write" in system
    assert len(system) == 2
    assert system.registry.get("_system/test/hello").path == "_system/test/hello:default"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="System function paths start with '_system/'"):
        system.query("cli/tables")(handler)
    with pytest.raises(ValueError, match="cannot be HTTP actions"):
        system.add("_system/test:http", http_action(handler))
    with pytest.raises(FunctionDefinitionError, match="Two functions have the path"):
        system.query("_system/test/hello")(query(handler).handler)
    assert is_system_path("_system/x") and not is_system_path("messages:list")


def test_only_the_admin_resolves_them() -> None:
    system = functions()
    spec = system.resolve("_system/test/hello", kind=FunctionKind.QUERY, is_admin=True)
    assert spec.kind is FunctionKind.QUERY
    with pytest.raises(FunctionNotFound, match="You do not have permission") as refused:
        system.resolve("_system/test/hello", kind=FunctionKind.QUERY, is_admin=False)
    assert "'_system/test/hello:default'" in refused.value.message
    # The same answer whether or not the function exists: nothing leaks to a non-admin.
    with pytest.raises(FunctionNotFound, match="You do not have permission"):
        system.resolve("_system/nope", kind=None, is_admin=False)
    with pytest.raises(FunctionNotFound, match="Could not find function for '_system/nope"):
        system.resolve("_system/nope", kind=None, is_admin=True)
    with pytest.raises(FunctionNotFound, match="as Mutation, but it is defined as Query"):
        system.resolve("_system/test/hello", kind=FunctionKind.MUTATION, is_admin=True)


def test_the_overlay_finds_both_kinds_of_path_and_is_read_only() -> None:
    system = functions()
    app = Registry()
    app.add("messages:list", query(handler))
    overlay = system.over(app)
    assert overlay.get("_system/test/hello") is system.registry.get("_system/test/hello")
    assert overlay.get("messages:list") is app.get("messages:list")
    assert overlay.get("messages:nope") is None and overlay.get("_system/nope") is None
    assert len(overlay) == 3
    assert overlay.paths() == ["_system/test/hello:default", "_system/test:write", "messages:list"]
    assert overlay.resolve("messages:list").path == "messages:list"
    with pytest.raises(TypeError, match="read-only"):
        overlay.add("x:y", query(handler))


class Recorder:
    """A FunctionRunner that records the paths it ran."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def query(self, path: str, args: dict[str, Any], **_: Any) -> FunctionResult:
        self.paths.append(path)
        return FunctionResult(True)

    async def mutation(self, path: str, args: dict[str, Any], **_: Any) -> FunctionResult:
        self.paths.append(path)
        return FunctionResult(True)

    def has_room(self, path: str) -> bool:
        self.paths.append(path)
        return True

    async def room(self, path: str) -> None:
        self.paths.append(path)

    async def mutation_batch(self, calls: list[MutationCall], **_: Any) -> MutationBatch:
        self.paths.extend(call.path for call in calls)
        return MutationBatch([], None)

    async def action(self, path: str, args: dict[str, Any], **_: Any) -> FunctionResult:
        self.paths.append(path)
        return FunctionResult(True)

    async def http_action(self, call: HttpCall, **_: Any) -> HttpReply:
        self.paths.append(call.path)
        return HttpReply()


@pytest.mark.anyio
async def test_the_router_runs_system_paths_on_the_system_runner_only() -> None:
    app, system = Recorder(), Recorder()
    router = SystemRouter(app, system)
    services: ActionServices = None  # type: ignore[assignment]
    await router.query("_system/cli/tables:default", {}, identity=None, ts=1, journal=None)
    await router.query("messages:list", {}, identity=None, ts=1, journal=None)
    await router.mutation("_system/test:write", {}, identity=None, ts=1, job_id=None)
    await router.mutation("messages:send", {}, identity=None, ts=1, job_id=None)
    await router.mutation_batch([MutationCall("_system/test:write", {})] * 2, ts=1)
    await router.mutation_batch([MutationCall("messages:send", {})], ts=1)
    await router.action("_system/test:act", {}, identity=None, services=services)
    await router.action("messages:act", {}, identity=None, services=services)
    call = HttpCall("GET", "/_system/hook", b"", [], b"")
    await router.http_action(call, identity=None, auth_error=None, services=services)
    assert system.paths == [
        "_system/cli/tables:default",
        "_system/test:write",
        "_system/test:write",
        "_system/test:write",
        "_system/test:act",
    ]
    assert app.paths == [
        "messages:list",
        "messages:send",
        "messages:send",
        "messages:act",
        "/_system/hook",
    ]
