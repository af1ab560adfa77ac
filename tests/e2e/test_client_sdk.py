"""Our client_sdk against the real server: calls, subscriptions, errors, and a reconnect that
resubscribes and never double-applies a mutation."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from typing import TYPE_CHECKING

import pytest

from client_sdk import AsyncReactorClient, HttpReactorClient, ReactorClient
from schema.errors import FunctionFailed
from schema.values import Int64

if TYPE_CHECKING:  # conftest is pytest's to import; its classes serve as types only
    from .conftest import ReactorServer

pytestmark = pytest.mark.anyio


class Proxy:
    """A TCP relay in front of the server whose live connections can be cut at will."""

    def __init__(self, port: int) -> None:
        self.target_port = port
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def cut(self) -> None:
        for writer in list(self.writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self.writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


async def test_async_client_calls_and_subscription_updates(server_url: str) -> None:
    channel = f"sdk-{uuid.uuid4().hex[:8]}"
    async with AsyncReactorClient(server_url) as client, AsyncReactorClient(server_url) as other:
        subscription = client.subscribe("messages:bodies", {"channel": channel})
        assert await asyncio.wait_for(subscription.__anext__(), 10) == []
        await other.mutation("messages:send", {"channel": channel, "body": "one"})
        assert await asyncio.wait_for(subscription.__anext__(), 10) == ["one"]
        # Read-your-writes: once our own mutation resolves, a query already reflects it.
        await client.mutation("messages:send", {"channel": channel, "body": "two"})
        assert sorted(await client.query("messages:bodies", {"channel": channel})) == ["one", "two"]
        await subscription.aclose()


async def test_async_client_errors_and_values(server_url: str) -> None:
    async with AsyncReactorClient(server_url) as client:
        with pytest.raises(FunctionFailed) as info:
            await client.mutation("errors:mutation_app_error", {"channel": "x"})
        assert info.value.data is not None
        with pytest.raises(FunctionFailed, match="Server Error"):
            await client.query("errors:query_crash")
        echoed = await client.query(
            "echo:typed", {"n": Int64(2**62), "b": b"\x00\xff", "f": float("inf")}
        )
        assert isinstance(echoed, dict)
        with pytest.raises(FunctionFailed, match="Could not find public function"):
            await client.query("errors:secret")


def test_sync_client_and_http_client(server_url: str) -> None:
    name = f"sync-{uuid.uuid4().hex[:8]}"
    with ReactorClient(server_url) as client:
        values = client.subscribe("counter:get", {"name": name})
        assert next(values) == 0.0

        def bump() -> None:
            with HttpReactorClient(server_url) as http:
                http.mutation("counter:increment", {"name": name})

        thread = threading.Thread(target=bump)
        thread.start()
        assert next(values) == 1.0
        thread.join()
        values.close()
        assert client.query("counter:get", {"name": name}) == 1.0


async def test_reconnect_resubscribes_and_never_double_applies(
    reactor_server: ReactorServer,
) -> None:
    proxy = Proxy(reactor_server.port)
    await proxy.start()
    name = f"drop-{uuid.uuid4().hex[:8]}"
    try:
        async with AsyncReactorClient(f"http://127.0.0.1:{proxy.port}") as client:
            values = client.subscribe("counter:get", {"name": name})
            assert await asyncio.wait_for(values.__anext__(), 10) == 0.0
            mutation = asyncio.ensure_future(
                client.mutation("counter:slow_increment", {"name": name, "delay": 0.4})
            )
            await asyncio.sleep(0.15)  # the mutation is running on the server
            proxy.cut()
            assert await asyncio.wait_for(mutation, 20) == 1.0
            # The subscription survived the reconnect and reflects exactly one increment.
            latest = await asyncio.wait_for(values.__anext__(), 10)
            assert latest == 1.0
            await client.mutation("counter:increment", {"name": name})
            assert await asyncio.wait_for(values.__anext__(), 10) == 2.0
        async with AsyncReactorClient(reactor_server.url) as direct:
            assert await direct.query("counter:get", {"name": name}) == 2.0
    finally:
        await proxy.stop()
