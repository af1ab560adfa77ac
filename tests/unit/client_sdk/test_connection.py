"""Backoff (pure) and the websocket shell against the fake server of ``conftest.py``."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from client_sdk.connection import Backoff, Connection, close_reason
from client_sdk.protocol import ClientProtocol, Event
from reactor.sync.messages import SessionId


class TestBackoff:
    def test_doubles_to_the_cap_without_jitter(self) -> None:
        backoff = Backoff(initial_s=0.1, max_s=16.0, rand=lambda: 0.5)
        delays = [backoff.next_delay() for _ in range(10)]
        assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 16.0, 16.0])
        assert backoff.retries == 10

    def test_jitter_is_plus_or_minus_half(self) -> None:
        low = Backoff(initial_s=1.0, max_s=16.0, rand=lambda: 0.0)
        high = Backoff(initial_s=1.0, max_s=16.0, rand=lambda: 0.999)
        assert low.next_delay() == pytest.approx(0.5)
        assert high.next_delay() == pytest.approx(1.499)
        for _ in range(20):
            low.next_delay()
        assert low.next_delay() == pytest.approx(8.0)  # half of the 16 s cap

    def test_real_randomness_stays_in_bounds(self) -> None:
        backoff = Backoff()
        for retry in range(40):
            base = min(16.0, 0.1 * 2**retry)
            assert 0.5 * base <= backoff.next_delay() <= 1.5 * base

    def test_reset(self) -> None:
        backoff = Backoff(rand=lambda: 0.5)
        backoff.next_delay()
        backoff.next_delay()
        backoff.reset()
        assert backoff.retries == 0
        assert backoff.next_delay() == pytest.approx(0.1)

    def test_long_outage_does_not_overflow(self) -> None:
        backoff = Backoff(rand=lambda: 0.5)
        for _ in range(5000):
            delay = backoff.next_delay()
        assert delay == 16.0

    @pytest.mark.parametrize(("initial", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
    def test_bad_parameters(self, initial: float, cap: float) -> None:
        with pytest.raises(ValueError, match="initial_s"):
            Backoff(initial_s=initial, max_s=cap)


class TestCloseReason:
    def test_abnormal(self) -> None:
        assert close_reason(ConnectionClosed(None, None)) == "closed with code 1006"

    def test_code_and_reason(self) -> None:
        exc = ConnectionClosed(Close(1011, "InternalServerError"), None)
        assert close_reason(exc) == "closed with code 1011: InternalServerError"
        assert close_reason(ConnectionClosed(Close(1000, ""), None)) == "closed with code 1000"


# -------------------------------------------------------------------- I/O shell


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, events: Sequence[Event]) -> None:
        self.events.extend(events)


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.005)


def make(
    url: str, on_events: Callable[[Sequence[Event]], None] | None = None, **options: Any
) -> tuple[ClientProtocol, Connection]:
    protocol = ClientProtocol(SessionId("00000000-0000-4000-8000-000000000000"))
    options.setdefault("backoff", Backoff(initial_s=0.01, max_s=0.02))
    connection = Connection(url, protocol, on_events or Recorder(), **options)
    return protocol, connection


def ws_url(server: Any) -> str:
    return f"ws://127.0.0.1:{server.port}/api/sync"


@pytest.mark.anyio
async def test_inactive_server_causes_reconnect(fake_server: Any) -> None:
    async def mute(conn: Any, message: dict[str, Any]) -> bool:
        return True  # never answer anything

    fake_server.intercept = mute
    protocol, connection = make(ws_url(fake_server), inactivity_timeout_s=0.1)
    connection.start()
    try:
        await eventually(lambda: len(fake_server.conns) >= 2 and fake_server.conns[1].received)
        assert fake_server.conns[1].received[0]["lastCloseReason"] == "InactiveServer"
    finally:
        await connection.close()


@pytest.mark.anyio
async def test_pings_keep_the_socket_alive(fake_server: Any) -> None:
    async def mute(conn: Any, message: dict[str, Any]) -> bool:
        return True

    fake_server.intercept = mute
    fake_server.ping_interval_s = 0.03
    protocol, connection = make(ws_url(fake_server), inactivity_timeout_s=0.3)
    connection.start()
    try:
        await eventually(lambda: connection.is_connected)
        await asyncio.sleep(0.8)
        assert len(fake_server.conns) == 1
        assert connection.is_connected
    finally:
        await connection.close()


@pytest.mark.anyio
async def test_server_close_code_becomes_the_reason(fake_server: Any) -> None:
    async def close_once(conn: Any, message: dict[str, Any]) -> bool:
        if conn.index == 0 and message["type"] == "ModifyQuerySet":
            await conn.ws.close(1011, "InternalServerError")
            return True
        return False

    fake_server.intercept = close_once
    protocol, connection = make(ws_url(fake_server))
    connection.start()
    try:
        await eventually(lambda: len(fake_server.conns) >= 2 and fake_server.conns[1].received)
        connect = fake_server.conns[1].received[0]
        assert connect["lastCloseReason"] == "closed with code 1011: InternalServerError"
        assert connect["connectionCount"] == 1
    finally:
        await connection.close()


@pytest.mark.anyio
async def test_connect_failures_are_retried_with_backoff() -> None:
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backoff = Backoff(initial_s=0.01, max_s=0.02)
    protocol, connection = make(f"ws://127.0.0.1:{port}/api/sync", backoff=backoff)
    connection.start()
    try:
        await eventually(lambda: backoff.retries >= 3)
        assert protocol.last_close_reason.startswith("ConnectError")
        assert protocol.connection_count == 0
        assert not connection.is_connected
    finally:
        await connection.close()


@pytest.mark.anyio
async def test_backoff_resets_after_a_transition(fake_server: Any) -> None:
    backoff = Backoff(initial_s=0.01, max_s=0.02)
    for _ in range(5):
        backoff.next_delay()
    protocol, connection = make(ws_url(fake_server), backoff=backoff)
    connection.start()
    try:
        await eventually(lambda: protocol.has_synced)
        await eventually(lambda: backoff.retries == 0)
    finally:
        await connection.close()


@pytest.mark.anyio
async def test_a_failing_event_handler_is_logged_and_survived(
    fake_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def explode_once(events: Sequence[Event]) -> None:
        calls.append(len(events))
        if len(calls) == 1:
            raise RuntimeError("handler bug")

    protocol, connection = make(ws_url(fake_server), on_events=explode_once)
    protocol.subscribe("counter:get", {})
    with caplog.at_level(logging.ERROR, logger="client_sdk.connection"):
        connection.start()
        try:
            await eventually(lambda: len(fake_server.conns) >= 2 and protocol.has_synced)
        finally:
            await connection.close()
    assert "Unexpected error in the sync connection" in caplog.text
    assert fake_server.conns[1].received[0]["lastCloseReason"].startswith("ClientError")


@pytest.mark.anyio
async def test_messages_leave_in_order(fake_server: Any) -> None:
    protocol, connection = make(ws_url(fake_server))
    connection.start()
    try:
        await eventually(lambda: protocol.has_synced)
        ids = [protocol.send_mutation("counter:increment", {}) for _ in range(20)]
        connection.flush()
        await eventually(lambda: len(fake_server.messages("Mutation")) == 20)
        assert [m["requestId"] for m in fake_server.messages("Mutation")] == ids
    finally:
        await connection.close()
    assert not connection.is_connected


@pytest.mark.anyio
async def test_close_before_start_and_twice() -> None:
    protocol, connection = make("ws://127.0.0.1:9/api/sync")
    await connection.close()
    await connection.close()
    assert not connection.is_connected
