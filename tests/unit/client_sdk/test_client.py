"""The websocket clients against the scripted fake server of ``conftest.py`` (127.0.0.1)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from client_sdk import (
    AsyncReactorClient,
    ConnectionLost,
    FunctionFailed,
    Int64,
    ReactorClient,
)
from client_sdk.urls import CLIENT_HEADER

pytestmark = pytest.mark.anyio


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.005)


async def synced(client: AsyncReactorClient) -> AsyncReactorClient:
    """Wait until the client's socket is open and has had its first Transition."""
    await client.connect()
    await eventually(lambda: client.is_connected and client.protocol.has_synced)
    return client


def fast_client(server: Any, **options: Any) -> AsyncReactorClient:
    options.setdefault("backoff_initial_s", 0.01)
    options.setdefault("backoff_max_s", 0.05)
    return AsyncReactorClient(server.url, **options)


async def test_connect_handshake(fake_server: Any) -> None:
    async with fast_client(fake_server) as client:
        await eventually(lambda: bool(fake_server.messages("ModifyQuerySet")))
        conn = fake_server.conns[0]
        assert conn.path == "/api/sync"
        assert conn.header("Convex-Client") == CLIENT_HEADER
        connect, modify = conn.received[:2]
        assert connect["type"] == "Connect"
        assert uuid.UUID(connect["sessionId"]).version == 4
        assert connect["sessionId"] == client.session_id
        assert connect["connectionCount"] == 0
        assert connect["lastCloseReason"] == "InitialConnect"
        assert "maxObservedTimestamp" not in connect
        assert isinstance(connect["clientTs"], int)
        assert modify == {
            "type": "ModifyQuerySet",
            "baseVersion": 0,
            "newVersion": 1,
            "modifications": [],
        }
        await eventually(lambda: client.protocol.has_synced)
        assert client.is_connected


async def test_subscribe_query_mutation_round_trip(fake_server: Any) -> None:
    async with fast_client(fake_server) as client:
        subscription = client.subscribe("counter:get")
        assert await subscription.__anext__() == 0.0
        assert await client.mutation("counter:increment", {"by": 2}) == 2.0
        # The mutation resolved after a Transition at its ts: the subscription has it already.
        assert await asyncio.wait_for(subscription.__anext__(), 1) == 2.0
        assert await client.query("counter:get") == 2.0
        mutation = fake_server.messages("Mutation")[0]
        assert mutation["args"] == [{"by": 2.0}]
        assert mutation["udfPath"] == "counter:increment"
        await subscription.aclose()
        with pytest.raises(StopAsyncIteration):
            await subscription.__anext__()


async def test_async_iteration_and_context_managers(fake_server: Any) -> None:
    async with fast_client(fake_server) as client:
        seen = []
        async with client.subscribe("counter:get") as subscription:
            async for value in subscription:
                seen.append(value)
                if value == 2.0:
                    break
                await client.mutation("counter:increment")
        assert seen == [0.0, 1.0, 2.0]
        assert subscription.closed
        assert not client.protocol.local_state.has_query(subscription.query_id)


async def test_values_round_trip(fake_server: Any) -> None:
    async with fast_client(fake_server) as client:
        args = {"i": Int64(5), "b": b"\x00\x01", "f": float("inf"), "n": None, "l": [1, "x"]}
        echoed = await client.query("echo:args", args)
        assert echoed == {"i": 5, "b": b"\x00\x01", "f": float("inf"), "n": None, "l": [1.0, "x"]}
        assert isinstance(echoed["i"], Int64)
        adds = [m for q in fake_server.messages("ModifyQuerySet") for m in q["modifications"]]
        assert adds[0]["args"][0]["i"] == {"$integer": "BQAAAAAAAAA="}


async def test_one_shot_query_removes_its_query(fake_server: Any) -> None:
    async with fast_client(fake_server) as client:
        await synced(client)
        assert await client.query("counter:get") == 0.0
        await eventually(lambda: len(fake_server.messages("ModifyQuerySet")) == 3)
        add, remove = fake_server.messages("ModifyQuerySet")[1:]
        assert add["modifications"][0]["type"] == "Add"
        assert remove["modifications"] == [
            {"type": "Remove", "queryId": add["modifications"][0]["queryId"]}
        ]
        assert (remove["baseVersion"], remove["newVersion"]) == (2, 3)


async def test_identical_subscriptions_share_a_query(fake_server: Any) -> None:
    async with fast_client(fake_server) as client:
        await synced(client)
        first = client.subscribe("echo:args", {"a": 1, "b": 2})
        second = client.subscribe("echo:args", {"b": 2, "a": 1})
        assert first.query_id == second.query_id
        assert await first.__anext__() == {"a": 1.0, "b": 2.0}
        assert await second.__anext__() == {"a": 1.0, "b": 2.0}
        third = client.subscribe("echo:args", {"a": 1, "b": 2})
        assert await asyncio.wait_for(third.__anext__(), 1) == {"a": 1.0, "b": 2.0}
        await first.aclose()
        await third.aclose()
        await asyncio.sleep(0.05)
        assert len(fake_server.messages("ModifyQuerySet")) == 2  # one Add, no Remove yet
        await second.aclose()
        await eventually(lambda: len(fake_server.messages("ModifyQuerySet")) == 3)


async def test_query_errors(fake_server: Any) -> None:
    async with fast_client(fake_server) as client:
        with pytest.raises(FunctionFailed, match="boom") as plain:
            await client.query("fail:plain")
        assert plain.value.has_data is False
        with pytest.raises(FunctionFailed, match="nope") as convex:
            await client.query("fail:convex")
        assert convex.value.data == {"code": 7.0}


async def test_failed_query_subscription_stays_live(fake_server: Any) -> None:
    async with fast_client(fake_server) as client:
        subscription = client.subscribe("counter:failWhenOdd")
        assert await subscription.__anext__() == 0.0
        await client.mutation("counter:increment")
        with pytest.raises(FunctionFailed, match="odd"):
            await asyncio.wait_for(subscription.__anext__(), 1)
        await client.mutation("counter:increment")
        assert await asyncio.wait_for(subscription.__anext__(), 1) == 2.0
        await subscription.aclose()


async def test_mutation_errors(fake_server: Any) -> None:
    async with fast_client(fake_server) as client:
        with pytest.raises(FunctionFailed, match="ConvexError: bad") as info:
            await client.mutation("fail:convex")
        assert info.value.data == {"reason": "bad", "n": Int64(5)}
        with pytest.raises(FunctionFailed) as null:
            await client.mutation("fail:nulldata")
        assert null.value.data is None and null.value.has_data is True
        with pytest.raises(FunctionFailed, match="Server Error") as plain:
            await client.mutation("fail:other")
        assert plain.value.has_data is False


async def test_actions(fake_server: Any) -> None:
    async with fast_client(fake_server) as client:
        assert await client.action("act:echo", {"x": 1}) == {"echo": {"x": 1.0}}
        with pytest.raises(FunctionFailed, match="action failed"):
            await client.action("fail:action")


async def test_bad_arguments_send_nothing(fake_server: Any) -> None:
    async with fast_client(fake_server) as client:
        with pytest.raises(TypeError):
            await client.mutation("m:x", [1])  # type: ignore[call-overload]
        with pytest.raises(TypeError):
            client.subscribe("", {})
        assert len(client.protocol.request_manager) == 0


async def test_mutation_resent_after_drop_with_same_ids(fake_server: Any) -> None:
    """The scripted reconnect: drop after a Mutation arrives, before answering it."""
    dropped: list[dict[str, Any]] = []

    async def drop_first_mutation(conn: Any, message: dict[str, Any]) -> bool:
        if message["type"] == "Mutation" and not dropped:
            dropped.append(message)
            conn.abort()
            return True
        return False

    fake_server.intercept = drop_first_mutation
    async with fast_client(fake_server) as client:
        subscription = client.subscribe("counter:get")
        assert await subscription.__anext__() == 0.0
        last_ts_seen = fake_server.conns[0].sent_version["ts"]
        assert await asyncio.wait_for(client.mutation("counter:increment", {"by": 5}), 5) == 5.0
        assert await asyncio.wait_for(subscription.__anext__(), 1) == 5.0

        first, second = fake_server.conns[:2]
        old_connect, new_connect = first.received[0], second.received[0]
        assert new_connect["sessionId"] == old_connect["sessionId"] == client.session_id
        assert new_connect["connectionCount"] == 1
        assert new_connect["lastCloseReason"] == "closed with code 1006"
        assert new_connect["maxObservedTimestamp"] == last_ts_seen
        # Connect, then the query set re-adding the same query id, then the same mutation.
        assert [m["type"] for m in second.received[:3]] == ["Connect", "ModifyQuerySet", "Mutation"]
        readd = second.received[1]
        assert (readd["baseVersion"], readd["newVersion"]) == (0, 1)
        assert [m["queryId"] for m in readd["modifications"]] == [subscription.query_id]
        assert second.received[2] == dropped[0]
        assert fake_server.executions == [(client.session_id, dropped[0]["requestId"])]
        await subscription.aclose()


async def test_answered_mutation_resent_and_deduplicated(fake_server: Any) -> None:
    """MutationResponse arrives but the socket dies before the Transition."""
    state = {"dropped": False}

    async def answer_then_drop(conn: Any, message: dict[str, Any]) -> bool:
        if message["type"] == "Mutation" and not state["dropped"]:
            state["dropped"] = True
            await fake_server.answer_mutation(conn, message, transition=False)
            await asyncio.sleep(0.05)
            conn.abort()
            return True
        return False

    fake_server.intercept = answer_then_drop
    async with fast_client(fake_server) as client:
        result = await asyncio.wait_for(client.mutation("counter:increment"), 5)
        assert result == 1.0
        second = fake_server.conns[1]
        resent = [m for m in second.received if m["type"] == "Mutation"]
        assert [m["requestId"] for m in resent] == [0]
        # Executed once: the resend was answered from the (sessionId, requestId) record.
        assert len(fake_server.executions) == 1
        assert fake_server.state["count"] == 1.0


async def test_journals_are_resent(fake_server: Any) -> None:
    async with fast_client(fake_server) as client:
        subscription = client.subscribe("counter:get")
        fake_server.journals[subscription.query_id] = "page-2"
        await subscription.__anext__()
        fake_server.conns[0].abort()
        await eventually(
            lambda: len(fake_server.conns) == 2 and len(fake_server.conns[1].received) >= 2
        )
        add = fake_server.conns[1].received[1]["modifications"][0]
        assert add["journal"] == "page-2"
        await subscription.aclose()


async def test_action_in_flight_fails_on_drop(fake_server: Any) -> None:
    async def drop_on_action(conn: Any, message: dict[str, Any]) -> bool:
        if message["type"] == "Action":
            conn.abort()
            return True
        return False

    fake_server.intercept = drop_on_action
    async with fast_client(fake_server) as client:
        with pytest.raises(ConnectionLost, match="Connection lost while action was in flight"):
            await asyncio.wait_for(client.action("act:echo"), 5)
        # The action is not resent on the new socket.
        await eventually(lambda: len(fake_server.conns) == 2 and client.protocol.has_synced)
        assert [m["type"] for m in fake_server.conns[1].received] == ["Connect", "ModifyQuerySet"]


async def test_start_version_mismatch_reconnects(fake_server: Any) -> None:
    sent_bad: list[Any] = []

    async def bad_transition(conn: Any, message: dict[str, Any]) -> bool:
        if message["type"] == "Mutation" and not sent_bad:
            sent_bad.append(True)
            await conn.send(
                {
                    "type": "Transition",
                    "startVersion": {"querySet": 7, "identity": 0, "ts": "AAAAAAAAAAA="},
                    "endVersion": {"querySet": 8, "identity": 0, "ts": "AQAAAAAAAAA="},
                    "modifications": [],
                }
            )
            return True
        return False

    fake_server.intercept = bad_transition
    async with fast_client(fake_server) as client:
        assert await asyncio.wait_for(client.mutation("counter:increment"), 5) == 1.0
        assert fake_server.conns[1].received[0]["lastCloseReason"] == "StartVersionMismatch"


async def test_unknown_messages_are_ignored(fake_server: Any) -> None:
    async def chatter(conn: Any, message: dict[str, Any]) -> bool:
        if message["type"] == "ModifyQuerySet":
            await conn.send({"type": "BrandNewThing", "x": 1})
        return False

    fake_server.intercept = chatter
    async with fast_client(fake_server) as client:
        assert await client.query("counter:get") == 0.0
        assert len(fake_server.conns) == 1


async def test_fatal_error_reconnects(fake_server: Any) -> None:
    async def fatal_once(conn: Any, message: dict[str, Any]) -> bool:
        if message["type"] == "Connect" and conn.index == 0:
            await conn.send({"type": "FatalError", "error": "oops"})
            return True
        return False

    fake_server.intercept = fatal_once
    async with fast_client(fake_server) as client:
        assert await asyncio.wait_for(client.query("counter:get"), 5) == 0.0
        assert fake_server.conns[1].received[0]["lastCloseReason"] == "FatalError: oops"


async def test_auth_is_sent_before_queries(fake_server: Any) -> None:
    async with fast_client(fake_server) as client:
        client.set_auth("jwt-1")
        assert await client.query("counter:get") == 0.0
        auth = fake_server.messages("Authenticate")
        assert auth == [
            {"type": "Authenticate", "tokenType": "User", "baseVersion": 0, "value": "jwt-1"}
        ]
        fake_server.conns[0].abort()
        await eventually(
            lambda: len(fake_server.conns) == 2 and len(fake_server.conns[1].received) >= 3
        )
        assert [m["type"] for m in fake_server.conns[1].received[:3]] == [
            "Connect",
            "Authenticate",
            "ModifyQuerySet",
        ]
        client.set_admin_auth("key")
        await eventually(lambda: len(fake_server.messages("Authenticate", 1)) == 2)
        assert fake_server.messages("Authenticate", 1)[1]["baseVersion"] == 1


async def test_calls_made_while_disconnected_wait_for_the_socket(fake_server: Any) -> None:
    client = fast_client(fake_server)
    # Nothing is open yet: these queue and go out on the first socket.
    pending = asyncio.ensure_future(client.mutation("counter:increment"))
    assert await asyncio.wait_for(pending, 5) == 1.0
    await client.close()


async def test_close_fails_pending_and_ends_iterators(fake_server: Any) -> None:
    async def never_answer(conn: Any, message: dict[str, Any]) -> bool:
        return bool(message["type"] == "Mutation")

    fake_server.intercept = never_answer
    client = fast_client(fake_server)
    subscription = client.subscribe("counter:get")
    await subscription.__anext__()
    mutation = asyncio.ensure_future(client.mutation("counter:increment"))
    waiting = asyncio.ensure_future(subscription.__anext__())
    await eventually(lambda: bool(fake_server.messages("Mutation")))
    await client.close()
    with pytest.raises(ConnectionLost, match="Client closed"):
        await mutation
    with pytest.raises(StopAsyncIteration):
        await waiting
    await client.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await client.query("counter:get")
    with pytest.raises(RuntimeError, match="closed"):
        client.set_auth(None)


async def test_query_on_closing_client_raises_connection_lost(fake_server: Any) -> None:
    async def silent(conn: Any, message: dict[str, Any]) -> bool:
        return bool(message["type"] == "ModifyQuerySet")

    fake_server.intercept = silent
    client = fast_client(fake_server)
    query = asyncio.ensure_future(client.query("counter:get"))
    await eventually(lambda: len(fake_server.messages("ModifyQuerySet")) >= 1)
    await client.close()
    with pytest.raises(ConnectionLost, match="Client closed"):
        await query


async def test_other_clients_see_changes(fake_server: Any) -> None:
    async with fast_client(fake_server) as writer, fast_client(fake_server) as reader:
        subscription = reader.subscribe("counter:get")
        assert await subscription.__anext__() == 0.0
        await writer.mutation("counter:increment", {"by": 3})
        assert await asyncio.wait_for(subscription.__anext__(), 2) == 3.0
        assert writer.session_id != reader.session_id
        await subscription.aclose()


async def test_bound_to_one_loop(fake_server: Any) -> None:
    client = fast_client(fake_server)
    await client.connect()

    def in_other_loop() -> None:
        async def use() -> None:
            client.subscribe("counter:get")

        asyncio.run(use())

    with pytest.raises(RuntimeError, match="another event loop"):
        await asyncio.to_thread(in_other_loop)
    await client.close()


async def test_sync_facade(fake_server: Any) -> None:
    # The sync facade runs in a worker thread, since the fake server lives in this loop.
    def use_sync_client() -> list[Any]:
        seen: list[Any] = []
        with ReactorClient(fake_server.url, backoff_initial_s=0.01) as client:
            assert client.query("counter:get") == 0.0
            with client.subscribe("counter:get") as subscription:
                seen.append(next(subscription))
                seen.append(client.mutation("counter:increment", {"by": 4}))
                seen.append(next(subscription))
            with pytest.raises(StopIteration):
                next(subscription)
            seen.append(client.action("act:echo", {"k": "v"}))
            with pytest.raises(FunctionFailed, match="boom"):
                client.query("fail:plain")
            client.set_auth("t")
            client.set_admin_auth("k")
            # A round trip on the same ordered socket: the Authenticates went out before it.
            assert client.query("echo:args", {"after": "auth"}) == {"after": "auth"}
            left_open = client.subscribe("counter:get")
            assert client.session_id == client.async_client.session_id
        assert client.closed
        assert list(left_open) == []  # the client closed it
        left_open.close()
        client.close()
        with pytest.raises(RuntimeError, match="closed"):
            client.query("counter:get")
        return seen

    seen = await asyncio.to_thread(use_sync_client)
    assert seen == [0.0, 4.0, 4.0, {"echo": {"k": "v"}}]
    assert [m["value"] for m in fake_server.messages("Authenticate")] == ["t", "k"]
