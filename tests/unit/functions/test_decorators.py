"""@query/@mutation/...: declaration forms, handler checks, and invoke's validation."""

from __future__ import annotations

from typing import Any

import pytest

from functions import (
    FunctionKind,
    FunctionSpec,
    Visibility,
    action,
    http_action,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
)
from schema import v
from schema.errors import ArgumentValidationError, ReturnValidationError
from schema.ids import encode_id
from schema.values import Int64

pytestmark = pytest.mark.anyio

ID_TABLE_10001 = encode_id(10_001, bytes(16))


class FakeDb:
    def table_of_id(self, id: str) -> str | None:
        return "tasks" if id == ID_TABLE_10001 else None


class FakeCtx:
    db = FakeDb()


class TestDeclaration:
    def test_bare(self) -> None:
        @query
        async def list_tasks(ctx: Any) -> list[Any]:
            """Lists tasks."""
            return []

        assert isinstance(list_tasks, FunctionSpec)
        assert list_tasks.kind is FunctionKind.QUERY
        assert list_tasks.visibility is Visibility.PUBLIC and list_tasks.is_public
        assert list_tasks.args is None and list_tasks.returns is None
        assert list_tasks.name is None and list_tasks.path is None
        assert list_tasks.__name__ == "list_tasks" and list_tasks.__doc__ == "Lists tasks."
        assert list_tasks.__module__ == __name__

    def test_called_with_options(self) -> None:
        @mutation(args={"owner": v.string()}, returns=v.string(), name="create")
        async def create_task(ctx: Any, owner: str) -> str:
            return owner

        assert create_task.kind is FunctionKind.MUTATION
        assert create_task.args == {"owner": v.string()}
        assert create_task.returns == v.string() and create_task.name == "create"

    def test_called_without_options_and_plain_call(self) -> None:
        async def handler(ctx: Any) -> None:
            return None

        assert query()(handler).kind is FunctionKind.QUERY
        assert action(handler).kind is FunctionKind.ACTION

    @pytest.mark.parametrize(
        ("decorator", "kind", "visibility"),
        [
            (query, FunctionKind.QUERY, Visibility.PUBLIC),
            (mutation, FunctionKind.MUTATION, Visibility.PUBLIC),
            (action, FunctionKind.ACTION, Visibility.PUBLIC),
            (internal_query, FunctionKind.QUERY, Visibility.INTERNAL),
            (internal_mutation, FunctionKind.MUTATION, Visibility.INTERNAL),
            (internal_action, FunctionKind.ACTION, Visibility.INTERNAL),
            (http_action, FunctionKind.HTTP_ACTION, Visibility.PUBLIC),
        ],
    )
    def test_every_decorator(self, decorator: Any, kind: Any, visibility: Any) -> None:
        async def handler(ctx: Any, *rest: Any) -> None:
            return None

        spec = decorator(handler)
        assert (spec.kind, spec.visibility) == (kind, visibility)
        assert decorator()(handler).kind is kind
        assert spec.is_internal is (visibility is Visibility.INTERNAL)
        assert repr(decorator) == f"<function decorator {decorator.__name__}>"

    def test_object_with_async_call(self) -> None:
        class Handler:
            async def __call__(self, ctx: Any) -> int:
                return 1

        spec = query(Handler())
        assert spec.__name__ == "Handler"

    def test_non_async_handlers_are_rejected(self) -> None:
        def sync(ctx: Any) -> None:
            return None

        async def agen(ctx: Any) -> Any:
            yield 1

        with pytest.raises(TypeError, match="@query handler .*sync is not async.*async def sync"):
            query(sync)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="@internal_mutation handler .* is not async"):
            internal_mutation(args={})(sync)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="is an async generator"):
            query(agen)
        with pytest.raises(TypeError, match="@http_action handler"):
            http_action(sync)  # type: ignore[arg-type]

    def test_option_misuse(self) -> None:
        with pytest.raises(TypeError, match="pass validators by keyword"):
            query({"owner": v.string()})  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="maps argument names to validators"):
            query(args={"owner": str})  # type: ignore[dict-item]
        with pytest.raises(TypeError, match="dict of validators or a validator"):
            query(args=[v.string()])  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="returns=...\\) expects a validator"):
            query(returns=str)  # type: ignore[call-overload]
        with pytest.raises(ValueError, match="not an identifier"):
            query(name="bad-name")
        with pytest.raises(ValueError, match="longer than 64"):
            query(name="x" * 65)

    def test_decorating_twice_is_rejected(self) -> None:
        @query
        async def once(ctx: Any) -> None:
            return None

        with pytest.raises(TypeError, match="already a function"):
            mutation(once)


class TestInvoke:
    async def test_validates_args_and_passes_them_as_keywords(self) -> None:
        @query(args={"owner": v.string(), "limit": v.optional(v.int64())})
        async def list_for(ctx: Any, owner: str, limit: int = 10) -> dict[str, Any]:
            return {"owner": owner, "limit": limit}

        list_for.path = "tasks:listFor"
        assert await list_for.invoke(FakeCtx(), {"owner": "ann"}) == {"owner": "ann", "limit": 10}
        result = await list_for.invoke(FakeCtx(), {"owner": "ann", "limit": 5})
        assert type(result["limit"]) is Int64
        with pytest.raises(ArgumentValidationError, match="for tasks:listFor") as info:
            await list_for.invoke(FakeCtx(), {"owner": 3.0})
        assert info.value.path == "$.owner"
        with pytest.raises(ArgumentValidationError, match="extra field `other`"):
            await list_for.invoke(FakeCtx(), {"owner": "a", "other": 1.0})
        with pytest.raises(ArgumentValidationError, match="missing the required field `owner`"):
            await list_for.invoke(FakeCtx(), {})
        with pytest.raises(ArgumentValidationError, match="arguments to be an object"):
            await list_for.invoke(FakeCtx(), [1])  # type: ignore[arg-type]

    async def test_without_args_the_dict_passes_through(self) -> None:
        @mutation
        async def echo(ctx: Any, **args: Any) -> dict[str, Any]:
            return args

        assert await echo.invoke(None, {"a": 1, "b": [2]}) == {"a": 1, "b": [2]}

    async def test_whole_object_validator(self) -> None:
        @query(args=v.object({"n": v.number()}))
        async def double(ctx: Any, n: float) -> float:
            return n * 2

        assert await double.invoke(None, {"n": 2}) == 4.0
        with pytest.raises(ArgumentValidationError):
            await double.invoke(None, {"n": "x"})

    async def test_returns_is_validated(self) -> None:
        @query(returns=v.string())
        async def wrong(ctx: Any) -> Any:
            return 5.0

        @query(returns=v.null())
        async def nothing(ctx: Any) -> None:
            return None

        @query(returns=v.int64())
        async def count(ctx: Any) -> int:
            return 3

        wrong.path = "tasks:wrong"
        with pytest.raises(ReturnValidationError, match="ReturnValidationError for tasks:wrong"):
            await wrong.invoke(None, {})
        assert await nothing.invoke(None, {}) is None
        assert type(await count.invoke(None, {})) is Int64  # the validator's canonical form

    async def test_no_return_is_none(self) -> None:
        @mutation
        async def fire(ctx: Any) -> None:
            pass

        assert await fire.invoke(None, {}) is None

    async def test_id_args_are_checked_against_ctx_db(self) -> None:
        @query(args={"id": v.id("tasks")})
        async def by_id(ctx: Any, id: str) -> str:
            return id

        assert await by_id.invoke(FakeCtx(), {"id": ID_TABLE_10001}) == ID_TABLE_10001
        other = encode_id(10_002, bytes(16))
        with pytest.raises(ArgumentValidationError, match="belongs to no known table"):
            await by_id.invoke(FakeCtx(), {"id": other})
        # An explicit resolver overrides ctx.db's.
        assert await by_id.invoke(None, {"id": other}, resolve_id_table=lambda i: "tasks") == other

    async def test_handler_errors_propagate(self) -> None:
        @action
        async def fail(ctx: Any) -> None:
            raise KeyError("boom")

        with pytest.raises(KeyError, match="boom"):
            await fail.invoke(None, {})

    async def test_direct_call(self) -> None:
        @query(args={"x": v.number()})
        async def inc(ctx: Any, x: float) -> float:
            return x + 1

        assert await inc(None, x=1) == 2.0
        with pytest.raises(ArgumentValidationError):
            await inc(None, x="a")
        with pytest.raises(TypeError, match="takes its arguments by keyword"):
            inc(None, 1)  # type: ignore[unused-coroutine]  # raises before making one

    async def test_http_actions(self) -> None:
        @http_action
        async def hook(ctx: Any, request: Any) -> str:
            return f"got {request}"

        assert await hook.invoke_http(None, "req") == "got req"
        assert await hook(None, "req") == "got req"
        with pytest.raises(TypeError, match="is an HTTP action"):
            await hook.invoke(None, {})

        @query
        async def plain(ctx: Any) -> None:
            return None

        with pytest.raises(TypeError, match="not an HTTP action"):
            await plain.invoke_http(None, "req")

    def test_repr(self) -> None:
        @internal_query
        async def secret(ctx: Any) -> None:
            return None

        assert "internal Query" in repr(secret) and "secret" in repr(secret)
        secret.path = "admin:secret"
        assert repr(secret) == "<FunctionSpec internal Query admin:secret>"


def test_http_action_takes_no_options() -> None:
    with pytest.raises(TypeError, match="takes no args="):
        http_action(args={"a": v.string()})
