"""`reactor dev` reloads functions when a file changes and re-runs live queries under them."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]

GREETING = """
from functions import query

@query
async def hello(ctx):
    return {word!r}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    app = tmp_path / "app"
    app.mkdir()
    (app / "greeting.py").write_text(textwrap.dedent(GREETING.format(word="hello")))
    port = free_port()
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reactor",
            "dev",
            str(app),
            "--port",
            str(port),
            "--data",
            str(tmp_path / "data"),
            "--http-port",
            "0",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError((tmp_path / "server.log").read_text()) from None
            time.sleep(0.05)
    try:
        yield port, app
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


async def test_editing_a_function_pushes_the_new_result(dev_server: tuple[int, Path]) -> None:
    port, app = dev_server
    async with websockets.connect(f"ws://127.0.0.1:{port}/api/sync") as ws:
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
                        {"type": "Add", "queryId": 0, "udfPath": "greeting:hello", "args": [{}]}
                    ],
                }
            )
        )
        values: list[Any] = []

        async def next_value() -> Any:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                for mod in message.get("modifications", []):
                    if mod["type"] == "QueryUpdated":
                        return mod["value"]

        values.append(await next_value())
        time.sleep(0.05)  # distinct mtime
        (app / "greeting.py").write_text(textwrap.dedent(GREETING.format(word="bonjour")))
        values.append(await next_value())
        assert values == ["hello", "bonjour"]
