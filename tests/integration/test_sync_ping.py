"""The websocket shell's timers and tasks on a real socket: a Ping after a quiet spell (JS needs a
text frame within 60 s), and a failed background task ending the connection with 1011."""

from __future__ import annotations

import asyncio
import json
import logging
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
from websockets.exceptions import ConnectionClosed

from reactor.engine.executor import Executor
from reactor.server import sync_endpoint as sync_server
from reactor.server.app import create_app
from reactor.sync.protocol import ServerSession
from reactor.testing import write_app

pytestmark = pytest.mark.anyio

APP = {
    "hello.py": """
        from functions import mutation, query

        @query
        async def hi(ctx):
            return "hi"

        @mutation
        async def touch(ctx):
            return None
    """
}


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[str]:
    """Uvicorn on a free port with the app above; yields the sync websocket URL."""
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
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        yield f"ws://127.0.0.1:{port}//api/1.48.0/sync"
    finally:
        server.should_exit = True
        await task


def connect() -> str:
    return json.dumps(
        {
            "type": "Connect",
            "sessionId": str(uuid.uuid4()),
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
        }
    )


def add_hi() -> str:
    return json.dumps(
        {
            "type": "ModifyQuerySet",
            "baseVersion": 0,
            "newVersion": 1,
            "modifications": [{"type": "Add", "queryId": 0, "udfPath": "hello:hi", "args": [{}]}],
        }
    )


def sync_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "reactor.sync" and r.levelno >= logging.ERROR]


async def test_ping_after_silence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sync_server, "PING_INTERVAL_S", 0.3)
    async with serving(tmp_path) as url:
        async with websockets.connect(url) as ws:
            await ws.send(connect())
            await ws.send(add_hi())
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert first["type"] == "Transition"
            assert first["modifications"][0]["value"] == "hi"
            started = time.monotonic()
            ping = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert ping == {"type": "Ping"}
            assert 0.2 <= time.monotonic() - started < 3
    # The client leaving and the server stopping cancel the session's tasks: nothing logged.
    assert sync_errors(caplog) == []


async def failing_mutation(self: Executor, *args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("mutation worker blew up")


def failing_transition(self: ServerSession, *args: Any, **kwargs: Any) -> bytes | None:
    raise RuntimeError("sender blew up")


@pytest.mark.parametrize(
    ("target", "name", "replacement", "task", "message"),
    [
        (
            Executor,
            "run_mutation",
            failing_mutation,
            "sync mutation worker",
            "mutation worker blew up",
        ),
        (ServerSession, "transition_for", failing_transition, "sync sender", "sender blew up"),
    ],
)
async def test_a_failed_task_is_logged_and_closes_with_1011(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    target: type,
    name: str,
    replacement: Any,
    task: str,
    message: str,
) -> None:
    async with serving(tmp_path) as url:
        async with websockets.connect(url) as ws:
            await ws.send(connect())
            await ws.send(add_hi())
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert first["type"] == "Transition"
            monkeypatch.setattr(target, name, replacement)
            await ws.send(
                json.dumps(
                    {"type": "Mutation", "requestId": 0, "udfPath": "hello:touch", "args": [{}]}
                )
            )
            with pytest.raises(ConnectionClosed) as closed:
                while True:  # a MutationResponse may come first (when the sender fails)
                    await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1011
            assert closed.value.rcvd.reason == "InternalServerError"
    errors = sync_errors(caplog)
    assert len(errors) == 1
    assert task in errors[0].getMessage()
    assert errors[0].exc_info is not None and str(errors[0].exc_info[1]) == message
