"""The sync endpoint's fan-out path on a real uvicorn with ``reactor serve``'s websocket protocol:
frames written straight to the transport (and through ASGI when the client negotiated
permessage-deflate), every session of a shared query getting its Transition, the lean protocol
dropping the handshake and using its light inbox, and text frames framed as RFC 6455 says."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import websockets
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from reactor.server import sync_endpoint
from reactor.server.app import create_app
from reactor.server.sync_endpoint import FrameWriter, text_frame
from reactor.server.ws_protocol import Inbox, LeanWebSocketProtocol
from reactor.testing import write_app

pytestmark = pytest.mark.anyio

APP = {
    "board.py": """
        from functions import mutation, query

        @query
        async def items(ctx):
            return [doc["n"] for doc in await ctx.db.query("items").collect()]

        @mutation
        async def add(ctx, n: float):
            await ctx.db.insert("items", {"n": n})
    """
}


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    """Uvicorn configured as ``reactor serve`` configures its websockets."""
    app_dir = write_app(tmp_path / "app", APP)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(app_dir, data_dir=tmp_path / "data"),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            ws=LeanWebSocketProtocol,
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        yield f"ws://127.0.0.1:{port}/api/1.48.0/sync", server
    finally:
        server.should_exit = True
        await task


def message(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})


def connect() -> str:
    """A new session's Connect."""
    return message(
        "Connect",
        sessionId=str(uuid.uuid4()),
        connectionCount=0,
        lastCloseReason="InitialConnect",
        clientTs=0,
    )


async def subscribe(ws: Any) -> list[float]:
    await ws.send(connect())
    await ws.send(
        message(
            "ModifyQuerySet",
            baseVersion=0,
            newVersion=1,
            modifications=[{"type": "Add", "queryId": 0, "udfPath": "board:items", "args": [{}]}],
        )
    )
    return await next_value(ws)


async def next_value(ws: Any) -> list[float]:
    while True:
        data = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if data["type"] == "Transition" and data["modifications"]:
            value: list[float] = data["modifications"][0]["value"]
            return value


async def test_a_shared_query_reaches_every_session_directly_and_through_asgi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct: list[int] = []
    real_write = FrameWriter.write

    def counting_write(self: FrameWriter, payload: bytes) -> bool:
        direct.append(len(payload))
        return real_write(self, payload)

    monkeypatch.setattr(FrameWriter, "write", counting_write)
    async with serving(tmp_path) as (url, server):
        plain = [await websockets.connect(url, compression=None) for _ in range(20)]
        deflated = [await websockets.connect(url, compression="deflate") for _ in range(3)]
        try:
            for ws in [*plain, *deflated]:
                assert await subscribe(ws) == []
            assert len(direct) == len(plain)  # the deflate sessions' frames went through ASGI
            writer = plain[0]
            await writer.send(
                message("Mutation", requestId=0, udfPath="board:add", args=[{"n": 1}])
            )
            for ws in [*plain, *deflated]:
                assert await next_value(ws) == [1]
            # Every plain session's Transition, and the writer's response, went out directly
            # (the writer may get one more, empty, Transition: the one after its response).
            assert len(direct) in (2 * len(plain) + 1, 2 * len(plain) + 2)
            protocols = [
                p for p in server.server_state.connections if isinstance(p, LeanWebSocketProtocol)
            ]
            assert len(protocols) == len(plain) + len(deflated)
            for protocol in protocols:  # the lean protocol keeps no handshake after accepting
                assert protocol.request is None and protocol.response is None
                assert isinstance(protocol.queue, Inbox)
        finally:
            await asyncio.gather(*(ws.close() for ws in [*plain, *deflated]))


async def test_a_fan_out_sent_in_slices_reaches_every_session_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flusher sends a fan-out a few connections per turn of the event loop; every session
    still gets each change once, and the writer its response."""
    monkeypatch.setattr(sync_endpoint, "FLUSH_SLICE", 3)
    async with serving(tmp_path) as (url, _):
        sessions = [await websockets.connect(url, compression=None) for _ in range(10)]
        try:
            for ws in sessions:
                assert await subscribe(ws) == []
            for n in (1, 2):
                await sessions[0].send(
                    message("Mutation", requestId=n, udfPath="board:add", args=[{"n": n}])
                )
                for ws in sessions:
                    assert await next_value(ws) == list(range(1, n + 1))
        finally:
            await asyncio.gather(*(ws.close() for ws in sessions))


async def test_a_slice_carries_one_server_ts_and_counts_its_pushes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flusher reads the time once per slice: the Transitions of a slice carry the same
    ``serverTs``, taken before any of them was written (never after its receipt), and the
    slice's pushes reach ``reactor_push_latency_seconds`` as one observation of their count."""
    monkeypatch.setattr(sync_endpoint, "FLUSH_SLICE", 4)
    observed: list[int] = []
    async with serving(tmp_path) as (url, server):
        app: Any = server.config.app
        metrics = app.state.deployment.metrics
        real_observe = metrics.push_latency.observe

        def observe(amount: float, count: int = 1) -> None:
            observed.append(count)
            real_observe(amount, count)

        monkeypatch.setattr(metrics.push_latency, "observe", observe)
        sessions = [await websockets.connect(url, compression=None) for _ in range(12)]
        try:
            for ws in sessions:
                assert await subscribe(ws) == []
            observed.clear()
            before = metrics.push_latency.count
            await sessions[0].send(
                message("Mutation", requestId=1, udfPath="board:add", args=[{"n": 1}])
            )
            stamps: list[tuple[int, int]] = []
            for ws in sessions:
                while True:
                    data = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if data["type"] == "Transition" and data["modifications"]:
                        stamps.append((data["serverTs"], time.time_ns()))
                        break
            assert all(server_ts <= received for server_ts, received in stamps)
            # 12 sessions in slices of 4 (the writer's own Transition may go out alone).
            assert len({server_ts for server_ts, _ in stamps}) <= 4
            assert metrics.push_latency.count - before >= 12
            assert max(observed) > 1  # a slice is observed at once, with its count
        finally:
            await asyncio.gather(*(ws.close() for ws in sessions))


async def test_a_session_without_queries_gets_its_transition_with_the_response(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that only calls mutations gets each MutationResponse and the Transition that
    resolves it in one write (no snapshot of the query cache needed); one with a query still
    gets its Transition from the query cache, after the response."""
    writes: list[int] = []
    real_write = FrameWriter.write

    def counting_write(self: FrameWriter, payload: bytes, *more: bytes) -> bool:
        writes.append(1 + len(more))
        return real_write(self, payload, *more)

    monkeypatch.setattr(FrameWriter, "write", counting_write)
    async with serving(tmp_path) as (url, _):
        async with websockets.connect(url, compression=None) as ws:
            await ws.send(connect())
            for n in range(3):
                writes.clear()
                await ws.send(
                    message("Mutation", requestId=n, udfPath="board:add", args=[{"n": n}])
                )
                response = json.loads(await asyncio.wait_for(ws.recv(), 10))
                transition = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert response["type"] == "MutationResponse" and response["success"]
                assert transition["type"] == "Transition"
                assert transition["endVersion"]["ts"] == response["ts"]
                assert transition["modifications"] == []
                assert writes == [2]
            # With a query, the Transition comes from the query cache: a write of its own.
            assert await subscribe(ws) == [0, 1, 2]
            writes.clear()
            await ws.send(message("Mutation", requestId=9, udfPath="board:add", args=[{"n": 9}]))
            seen: set[str] = set()
            while seen != {"MutationResponse", "update"}:
                data = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if data["type"] == "Transition" and data["modifications"]:
                    assert data["modifications"][0]["value"] == [0, 1, 2, 9]
                    seen.add("update")
                elif data["type"] == "MutationResponse":
                    seen.add("MutationResponse")
            assert 2 not in writes


async def test_frames_queued_behind_a_full_socket_go_out_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the transport's buffer is full the sender task waits; what was queued meanwhile
    (mutation responses, then the latest Transition) follows in order once it drains."""
    async with serving(tmp_path) as (url, server):
        async with websockets.connect(url, compression=None, max_queue=None) as ws:
            assert await subscribe(ws) == []
            (protocol,) = [
                p for p in server.server_state.connections if isinstance(p, LeanWebSocketProtocol)
            ]
            protocol.pause_writing()  # as the transport does above its high-water mark
            for n in range(3):
                await ws.send(
                    message("Mutation", requestId=n, udfPath="board:add", args=[{"n": n}])
                )
            await asyncio.sleep(0.5)  # the mutations commit; their frames wait
            protocol.resume_writing()
            received: list[dict[str, Any]] = []
            while not received or received[-1].get("modifications", [{}])[-1].get("value") != [
                0,
                1,
                2,
            ]:
                received.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            responses = [m["requestId"] for m in received if m["type"] == "MutationResponse"]
            assert responses == [0, 1, 2]
            # Nothing was written while the socket was full: the first frame out is the first
            # response, and the Transitions held back were replaced by the latest one.
            assert received[0]["type"] == "MutationResponse"
            assert received[-1]["type"] == "Transition"


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frames_parse_as_rfc6455_frames(size: int) -> None:
    payload = (b"x" * size).replace(b"x", b"\xc3\xa9", 1)[:size] if size > 1 else b"x" * size
    reader = StreamReader()
    reader.feed_data(text_frame(payload))
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as done:
        next(parser)
    frame = done.value.value
    assert frame.opcode is Opcode.TEXT and frame.fin
    assert frame.data == payload
    assert reader.at_eof()
