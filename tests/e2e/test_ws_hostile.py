"""Hostile websocket clients against a real ``reactor serve``: frames too large, too deep or
with numbers no float holds are refused with a clear answer (a failed response when the call's
requestId can be read, else a close frame with a code and reason) without stalling anyone else;
a client that never reads is closed 1008 ClientTooSlow with the server's memory bounded; a client
queueing more mutation bytes than the bound is closed 1013."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import websockets

if TYPE_CHECKING:
    from .conftest import ReactorServer

pytestmark = pytest.mark.anyio


def ws_url(server_url: str) -> str:
    return server_url.replace("http://", "ws://") + "/api/sync"


def connect_msg() -> str:
    return json.dumps(
        {
            "type": "Connect",
            "sessionId": str(uuid.uuid4()),
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
            "clientTs": 0,
        }
    )


def call(kind: str, request_id: int, path: str, args_json: str) -> str:
    return f'{{"type":"{kind}","requestId":{request_id},"udfPath":"{path}","args":[{args_json}]}}'


async def recv_until(
    ws: websockets.ClientConnection, predicate: Callable[[Any], bool], timeout: float = 20.0
) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if predicate(message):
                return message


class Bystander:
    """A client subscribed to a channel: ``round_trip`` sends a mutation and times until the
    Transition that shows it arrives (the push every subscriber waits for)."""

    def __init__(self, ws: websockets.ClientConnection, channel: str) -> None:
        self.ws = ws
        self.channel = channel
        self.request_id = 0

    @classmethod
    async def join(cls, ws: websockets.ClientConnection) -> Bystander:
        self = cls(ws, f"bystander-{uuid.uuid4().hex[:8]}")
        await ws.send(connect_msg())
        await ws.send(
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [
                        {
                            "type": "Add",
                            "queryId": 0,
                            "udfPath": "messages:bodies",
                            "args": [{"channel": self.channel}],
                        }
                    ],
                }
            )
        )
        await recv_until(ws, lambda m: m["type"] == "Transition")
        return self

    async def round_trip(self) -> float:
        self.request_id += 1
        body = f"b{self.request_id}"
        start = time.perf_counter()
        await self.ws.send(
            json.dumps(
                {
                    "type": "Mutation",
                    "requestId": self.request_id,
                    "udfPath": "messages:send",
                    "args": [{"channel": self.channel, "body": body}],
                }
            )
        )
        await recv_until(
            self.ws,
            lambda m: (
                m["type"] == "Transition"
                and any(body in json.dumps(x.get("value")) for x in m["modifications"])
            ),
        )
        return time.perf_counter() - start


@pytest.mark.parametrize(
    ("args_json", "fragment"),
    [
        ('{"channel":"h","body":"x","n":1' + "0" * 400 + "}", "too large for a float64"),
        ('{"channel":"h","body":"x","n":1e400}', "Number out of range"),
        ('{"channel":"h","body":' + "[" * 900 + "]" * 900 + "}", "levels deep"),
        ('{"channel":"h","body":' + "[" * 17 + "]" * 17 + "}", "nested more than 16 levels"),
        ('{"channel":"h","body":[' + ",".join(["0"] * 9000) + "]}", "more than the limit 8192"),
        ('{"channel":"h","body":"x",' + "", "not valid JSON"),
    ],
)
async def test_refused_calls_get_a_failed_response_and_the_socket_stays_open(
    server_url: str, args_json: str, fragment: str
) -> None:
    async with websockets.connect(ws_url(server_url)) as ws:
        await ws.send(connect_msg())
        await ws.send(call("Mutation", 5, "messages:send", args_json))
        response = await recv_until(ws, lambda m: m["type"] == "MutationResponse")
        assert (response["requestId"], response["success"], response["ts"]) == (5, False, None)
        assert fragment in response["result"]
        assert "errorData" not in response
        # The Transition every mutation response is followed by, then the socket still works.
        await recv_until(ws, lambda m: m["type"] == "Transition")
        await ws.send(call("Action", 6, "messages:send", args_json))
        response = await recv_until(ws, lambda m: m["type"] == "ActionResponse")
        assert (response["requestId"], response["success"]) == (6, False)
        assert fragment in response["result"]
        bystander = await Bystander.join(ws)
        assert await bystander.round_trip() < 10


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        ("[" * 100_000, "levels deep"),
        ('{"type":"Event","eventType":"x","event":[' + "{}," * 600_000 + "{}]}", "values"),
        ('{"type":"Mutation","requestId":"x","udfPath":"m:s","args":[{}]}', "requestId"),
        ("\x00", "not valid JSON"),
    ],
)
async def test_unreadable_frames_close_with_a_code_and_reason(
    server_url: str, frame: str, fragment: str
) -> None:
    async with websockets.connect(ws_url(server_url), max_size=None) as ws:
        await ws.send(connect_msg())
        await ws.send(frame)
        fatal = await recv_until(ws, lambda m: True)
        assert fatal["type"] == "FatalError"
        assert fragment in fatal["error"]
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 10)
        assert info.value.rcvd is not None, "closed without a close frame"
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (1000, "InvalidMessage")


async def test_huge_frames_do_not_stall_a_bystander(server_url: str) -> None:
    """Six 16 MB frames of millions of empty objects at once: each is refused after a bounded
    scan (not a multi-second decode each), and a bystander's round trip stays fast."""
    frame = call("Mutation", 1, "messages:send", '{"a":[' + ",".join(["{}"] * 5_500_000) + "]}")
    assert len(frame) > 16_000_000
    async with websockets.connect(ws_url(server_url)) as bystander_ws:
        bystander = await Bystander.join(bystander_ws)
        attackers = [await websockets.connect(ws_url(server_url), max_size=None) for _ in range(6)]
        try:

            async def attack(ws: websockets.ClientConnection) -> Any:
                await ws.send(connect_msg())
                await ws.send(frame)
                return await recv_until(ws, lambda m: m["type"] == "MutationResponse", 60)

            attacks = asyncio.gather(*(attack(ws) for ws in attackers))
            latencies = [await bystander.round_trip() for _ in range(10)]
            responses = await attacks
        finally:
            for ws in attackers:
                await ws.close()
    assert all(not r["success"] and "values" in r["result"] for r in responses), responses
    # Before: 3.4 s per frame on the event loop, and bystanders waited over 15 s.
    assert max(latencies) < 3.0, latencies


# -- a client that never reads, and one that queues too many mutation bytes ------------------

QUEUED_MUTATION_BYTES = 256 * 1024


@pytest.fixture(scope="module")
def bounded_server(app_server_factory: Callable[..., ReactorServer]) -> Iterator[ReactorServer]:
    """A server of its own (its memory is measured), with the default unsent-bytes bound and a
    small bound on queued mutation bytes, both given as settings from the environment."""
    yield app_server_factory(
        env={"REACTOR_SYNC_MAX_QUEUED_MUTATION_BYTES": str(QUEUED_MUTATION_BYTES)}
    )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def http_mutation(server: ReactorServer, path: str, args: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{server.url}/api/mutation",
        json.dumps({"path": path, "args": args, "format": "json"}).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def client_frame(text: str) -> bytes:
    """A masked text frame, as a client must send it."""
    payload = text.encode()
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x81, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
    key = (mask * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
    return head + mask + masked


class RawClient:
    """A websocket client on a plain socket with a tiny receive buffer: after the upgrade it
    reads nothing until ``read_until_close`` (so the server's sends really stop)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(20)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /api/sync HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while not head.endswith(b"\r\n\r\n"):  # byte by byte: nothing past the headers
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(client_frame(json.dumps(message)))

    def read_until_close(self) -> tuple[int, str, int]:
        """Read everything the server sent up to its close frame: (code, reason, bytes read).
        Raises if the socket ends without a close frame."""
        data = bytearray()
        pos = 0
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise AssertionError(f"socket ended without a close frame ({len(data)} bytes)")
            data += chunk
            while len(data) - pos >= 2:
                opcode, size = data[pos] & 0x0F, data[pos + 1] & 0x7F
                start = pos + 2
                if size == 126:
                    start, size = pos + 4, int.from_bytes(data[pos + 2 : pos + 4], "big")
                elif size == 127:
                    start, size = pos + 10, int.from_bytes(data[pos + 2 : pos + 10], "big")
                if len(data) < start + size:
                    break
                if opcode == 0x8:
                    payload = bytes(data[start : start + size])
                    code = int.from_bytes(payload[:2], "big")
                    return code, payload[2:].decode(), len(data)
                pos = start + size

    def close(self) -> None:
        self.sock.close()


def test_a_client_that_never_reads_is_closed_too_slow_with_memory_bounded(
    bounded_server: ReactorServer,
) -> None:
    """A subscriber of a ~1 MB query that a writer changes every few milliseconds, which never
    reads its socket: the session is closed 1008 ClientTooSlow once it owes the client more
    than the bound (32 MiB), and the server's RSS stays far below what queueing every
    Transition would take.

    Before: Transitions are never queued (the newest snapshot replaces an unsent one) and the
    send the client does not read blocks for ever, so the unsent bytes never passed the bound:
    the session lived on (RSS flat at about 87 MB over 20 s, the query re-run on every write),
    and the client was never told."""
    server = bounded_server
    assert server.proc is not None
    channel = f"slow-{uuid.uuid4().hex[:8]}"
    for i in range(2):
        http_mutation(server, "messages:send", {"channel": channel, "body": "x" * 500_000 + str(i)})
    before = rss_mib(server.proc.pid)
    log_start = server.log_path.stat().st_size
    client = RawClient(server.port)
    client.send(
        {
            "type": "Connect",
            "sessionId": str(uuid.uuid4()),
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
            "clientTs": 0,
        }
    )
    client.send(
        {
            "type": "ModifyQuerySet",
            "baseVersion": 0,
            "newVersion": 1,
            "modifications": [
                {
                    "type": "Add",
                    "queryId": 0,
                    "udfPath": "messages:bodies",
                    "args": [{"channel": channel}],
                }
            ],
        }
    )
    stop = threading.Event()
    writes = 0

    def writer() -> None:
        nonlocal writes
        while not stop.is_set():
            http_mutation(server, "messages:send", {"channel": channel, "body": f"w{writes}"})
            writes += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    peak = before
    deadline = time.monotonic() + 15
    try:
        while "ClientTooSlow" not in server.log_path.read_bytes()[log_start:].decode(
            errors="replace"
        ):
            server.assert_alive()
            peak = max(peak, rss_mib(server.proc.pid))
            assert time.monotonic() < deadline, (
                f"not closed after {writes} writes of a ~1 MB result; RSS {before:.0f} -> "
                f"{peak:.0f} MiB\n{server.log_tail()}"
            )
            time.sleep(0.05)
        writes_at_close = writes
        # Now read: what was in flight, then the close frame (the server waits 10 s for it).
        code, reason, read = client.read_until_close()
    finally:
        stop.set()
        thread.join(30)
        client.close()
    assert (code, reason) == (1008, "ClientTooSlow")
    # Owed when closed: every write changed the ~1 MB result once (more than 32 MiB, or the
    # bound did not count what the client was owed).
    owed_mib = writes_at_close * 1.0
    assert owed_mib > 32, writes_at_close
    assert read < 8 * 1024 * 1024, read  # a Transition or two, not a backlog
    growth = peak - before
    print(f"RSS {before:.0f} -> peak {peak:.0f} MiB over {writes_at_close} writes of ~1 MB")
    assert growth < 48, f"RSS grew {growth:.0f} MiB ({before:.0f} -> {peak:.0f})"
    # The server goes on serving.
    assert (
        http_mutation(server, "messages:send", {"channel": channel, "body": "after"})["status"]
        == "success"
    )


async def test_queued_mutation_bytes_are_bounded(bounded_server: ReactorServer) -> None:
    """Forty 60 KB mutations sent without waiting for their answers queue more than the
    bound's 256 KiB (set in the server's environment): the session is closed 1013
    TooManyConcurrentRequests with a close frame. The same mutations, each awaited, pass."""
    url = ws_url(bounded_server.url)
    channel = f"queued-{uuid.uuid4().hex[:8]}"
    body = "y" * 60_000
    async with websockets.connect(url) as ws:
        await ws.send(connect_msg())
        for request_id in range(1, 41):
            await ws.send(
                call(
                    "Mutation",
                    request_id,
                    "messages:send",
                    json.dumps({"channel": channel, "body": body}),
                )
            )
            await recv_until(ws, lambda m: m["type"] == "MutationResponse" and m["success"])
    log_start = bounded_server.log_path.stat().st_size
    async with websockets.connect(url) as ws:
        await ws.send(connect_msg())
        for request_id in range(1, 41):
            await ws.send(
                call(
                    "Mutation",
                    request_id,
                    "messages:send",
                    json.dumps({"channel": channel, "body": body}),
                )
            )
        with pytest.raises(websockets.ConnectionClosed) as info:
            await recv_until(ws, lambda m: False, timeout=10)
    assert info.value.rcvd is not None, "closed without a close frame"
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (1013, "TooManyConcurrentRequests")
    log = bounded_server.log_path.read_bytes()[log_start:].decode(errors="replace")
    assert f"more than {QUEUED_MUTATION_BYTES} bytes of mutations queued" in log
