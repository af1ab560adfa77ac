"""A `reactor serve` subprocess of the hardening tests' app (``guard_app``), shared by
``tests/server`` and ``tests/fuzz``: its URLs, admin key and memory figures from /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = Path(__file__).resolve().parent / "guard_app"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GuardServer:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, site_port: int, tmp: Path):
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"
        self.site_url = f"http://127.0.0.1:{site_port}"
        self.log_path = tmp / "server.log"
        self.admin_key_file = tmp / "admin_key"

    @property
    def admin_key(self) -> str:
        return self.admin_key_file.read_text().strip()

    def status(self, field: str) -> int:
        """A /proc/<pid>/status memory figure (``VmRSS``, ``VmHWM``) in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == field:
                number, unit = value.split()
                assert unit == "kB"
                return int(number) * 1024
        raise AssertionError(f"no {field} in /proc/{self.proc.pid}/status")

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return "<no log>"

    def assert_alive(self) -> None:
        assert self.proc.poll() is None, f"server exited:\n{self.log_tail()}"


@contextmanager
def guard_server(tmp: Path, **env: str) -> Iterator[GuardServer]:
    """``reactor serve guard_app`` with ``REACTOR_*`` settings from ``env``, stopped on exit."""
    port, site_port = free_port(), free_port()
    cmd = [
        sys.executable,
        "-m",
        "reactor",
        "serve",
        str(APP_DIR),
        "--port",
        str(port),
        "--http-port",
        str(site_port),
        "--data",
        str(tmp / "data"),
        "--admin-key-file",
        str(tmp / "admin_key"),
        "--log-level",
        "warning",
    ]
    with open(tmp / "server.log", "ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=dict(os.environ, PYTHONUNBUFFERED="1", **env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    server = GuardServer(proc, port, site_port, tmp)
    try:
        deadline = time.monotonic() + 30
        while True:
            server.assert_alive()
            try:
                if (
                    httpx.get(server.url + "/version", timeout=2).status_code == 200
                    and httpx.get(server.site_url + "/hello", timeout=2).status_code == 200
                    and server.admin_key_file.exists()
                    and server.admin_key
                ):
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"server not ready:\n{server.log_tail()}"
            time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"<{self.status} {self.headers.get('content-type')} {self.body[:300]!r}>"


class ConnectionReset(AssertionError):
    pass


class KeepAliveConnection:
    """One HTTP/1.1 connection, kept across requests, so a test sees whether the server closed
    or reset it (httpx would silently open another)."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        import h11

        self._h11 = h11
        host, _, port = url.removeprefix("http://").partition(":")
        self.host = host
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        self.conn = h11.Connection(our_role=h11.CLIENT)

    def close(self) -> None:
        self.sock.close()

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: list[tuple[str, str]] | list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
        body: bytes = b"",
    ) -> Response:
        h11 = self._h11
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        elif self.conn.our_state is not h11.IDLE:
            raise ConnectionReset(f"connection not reusable: {self.conn.states}")
        all_headers = [(b"host", self.host.encode()), *((_b(k), _b(v)) for k, v in headers)]
        if body or method in ("POST", "PUT", "PATCH"):
            all_headers.append((b"content-length", str(len(body)).encode()))
        out = self.conn.send(h11.Request(method=method, target=target, headers=all_headers))
        assert out is not None
        if body:
            out += self.conn.send(h11.Data(data=body)) or b""
        out += self.conn.send(h11.EndOfMessage()) or b""
        try:
            self.sock.sendall(out)
        except OSError as exc:
            raise ConnectionReset(f"sending {method} {target}: {exc!r}") from exc
        status, response_headers, chunks = 0, {}, []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = self.sock.recv(65536)
                except OSError as exc:
                    raise ConnectionReset(f"reading {method} {target}: {exc!r}") from exc
                if not data:
                    raise ConnectionReset(f"connection closed before the answer to {target}")
                self.conn.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                response_headers = {k.decode(): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return Response(status, response_headers, b"".join(chunks))


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")
