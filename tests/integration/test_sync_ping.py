"""A protocol Ping goes out after a quiet spell (JS needs a text frame within 60 s)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from pathlib import Path

import pytest
import uvicorn
import websockets

from reactor.server import sync_endpoint as sync_server
from reactor.server.app import create_app
from reactor.testing import write_app

pytestmark = pytest.mark.anyio


async def test_ping_after_silence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync_server, "PING_INTERVAL_S", 0.3)
    app_dir = write_app(
        tmp_path / "app",
        {
            "hello.py": """
        from functions import query

        @query
        async def hi(ctx):
            return "hi"
    """
        },
    )
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
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        async with websockets.connect(f"ws://127.0.0.1:{port}//api/1.48.0/sync") as ws:
            await ws.send(
                json.dumps(
                    {
                        "type": "Connect",
                        "sessionId": str(uuid.uuid4()),
                        "connectionCount": 0,
                        "lastCloseReason": "InitialConnect",
                    }
                )
            )
            await ws.send(
                json.dumps(
                    {
                        "type": "ModifyQuerySet",
                        "baseVersion": 0,
                        "newVersion": 1,
                        "modifications": [
                            {"type": "Add", "queryId": 0, "udfPath": "hello:hi", "args": [{}]}
                        ],
                    }
                )
            )
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert first["type"] == "Transition"
            assert first["modifications"][0]["value"] == "hi"
            started = time.monotonic()
            ping = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert ping == {"type": "Ping"}
            assert 0.2 <= time.monotonic() - started < 3
    finally:
        server.should_exit = True
        await serving
