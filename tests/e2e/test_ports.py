"""The two ports of `reactor serve`/`reactor dev` as real subprocesses: the HTTP-actions port
defaults to --port + 1 (so two servers on one machine don't collide) and is bound only when the
app has http.py routes (with `reactor dev`, as soon as a reload brings some)."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = Path(__file__).resolve().parent / "app"
READY_TIMEOUT = 20.0

HELLO = """
from functions import query


@query()
async def hello(ctx):
    return "hi"
"""

HTTP = """
from starlette.responses import PlainTextResponse

from functions import http_action
from functions.http_router import http_router


@http_action
async def ping(ctx, request):
    return PlainTextResponse("pong")


http = http_router()
http.route(path="/ping", method="GET", handler=ping)
"""


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_pair() -> int:
    """A port P with P and P + 1 both free."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < 65535 and _bindable(port) and _bindable(port + 1):
            return port
    raise AssertionError("no two consecutive free ports")


def refused(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        return False


class Server:
    def __init__(self, tmp: Path, command: str, app: Path, port: int, *extra: str) -> None:
        self.port = port
        self.log_path = tmp / f"server-{port}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "reactor",
                    command,
                    str(app),
                    "--port",
                    str(port),
                    "--data",
                    str(tmp / f"data-{port}"),
                    "--admin-key-file",
                    str(tmp / f"key-{port}"),
                    *extra,
                ],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise AssertionError(f"server not ready:\n{self.log()}") from None
                time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()


def small_app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "greeting.py").write_text(textwrap.dedent(HELLO))
    return app


def test_two_servers_with_different_ports_both_serve_http_actions(
    tmp_path: Path, servers: list[Server]
) -> None:
    first = free_port_pair()
    servers.append(Server(tmp_path, "serve", APP_DIR, first))
    second = free_port_pair()
    servers.append(Server(tmp_path, "serve", APP_DIR, second))
    for server in servers:
        assert server.proc.poll() is None, server.log()
        response = httpx.get(f"http://127.0.0.1:{server.port + 1}/hello", timeout=10)
        assert response.status_code == 200, server.log()
        assert response.text == "hello from an exact route"
        assert f"HTTP actions: http://127.0.0.1:{server.port + 1};" in server.log()


def test_an_app_without_http_py_does_not_bind_the_http_actions_port(
    tmp_path: Path, servers: list[Server]
) -> None:
    port = free_port_pair()
    server = Server(tmp_path, "serve", small_app(tmp_path), port)
    servers.append(server)
    assert (
        httpx.post(
            f"http://127.0.0.1:{port}/api/query", json={"path": "greeting:hello", "args": {}}
        ).json()["value"]
        == "hi"
    )
    assert refused(port + 1)
    assert "HTTP actions: none: no http.py routes;" in server.log()


def test_an_explicit_http_port_wins_and_zero_turns_it_off(
    tmp_path: Path, servers: list[Server]
) -> None:
    port, site = free_port_pair(), free_port_pair()
    servers.append(Server(tmp_path, "serve", APP_DIR, port, "--http-port", str(site)))
    assert httpx.get(f"http://127.0.0.1:{site}/hello", timeout=10).status_code == 200
    assert refused(port + 1)
    off = free_port_pair()
    servers.append(Server(tmp_path, "serve", APP_DIR, off, "--http-port", "0"))
    assert refused(off + 1)
    assert "HTTP actions: off;" in servers[-1].log()


def test_dev_starts_serving_http_actions_when_http_py_appears(
    tmp_path: Path, servers: list[Server]
) -> None:
    port = free_port_pair()
    app = small_app(tmp_path)
    server = Server(tmp_path, "dev", app, port)
    servers.append(server)
    assert refused(port + 1)
    (app / "http.py").write_text(textwrap.dedent(HTTP))
    deadline = time.monotonic() + 20
    while True:
        try:
            response = httpx.get(f"http://127.0.0.1:{port + 1}/ping", timeout=5)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
    assert response.status_code == 200 and response.text == "pong"
    assert "http.py has routes now: HTTP actions served on" in server.log()
