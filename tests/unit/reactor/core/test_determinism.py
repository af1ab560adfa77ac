"""Queries and mutations may not use the network: the audit hook and the guarded event loop.

The refused operations are triggered with ``sys.audit`` (the event the socket module raises
before it does anything) or on a loop method that refuses before it touches the network, so
no test here opens a socket or looks a name up.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from reactor.core.determinism import (
    NetworkNotAllowed,
    deterministic,
    loop_factory,
    runtime_io,
)

REFUSED_EVENTS = [
    ("socket.connect", (None, ("192.0.2.1", 80))),
    ("socket.getaddrinfo", ("example.com", 80, 0, 0, 0)),
    ("socket.gethostbyname", ("example.com",)),
    ("socket.sendto", (None, ("192.0.2.1", 53))),
]


class TestAuditHook:
    @pytest.mark.parametrize(("event", "args"), REFUSED_EVENTS)
    def test_network_events_are_refused_in_a_query(self, event: str, args: tuple[Any]) -> None:
        with deterministic("query"), pytest.raises(NetworkNotAllowed) as caught:
            sys.audit(event, *args)

        assert caught.value.code == "NetworkNotAllowed"

    def test_the_message_names_the_function_kind(self) -> None:
        with (
            deterministic("mutation"),
            pytest.raises(NetworkNotAllowed, match=r"^Network access is not allowed in a mutation"),
        ):
            sys.audit("socket.getaddrinfo", "example.com", 80, 0, 0, 0)

    @pytest.mark.parametrize(("event", "args"), REFUSED_EVENTS)
    def test_network_events_are_allowed_outside_functions(
        self, event: str, args: tuple[Any]
    ) -> None:
        with deterministic("query"):
            pass

        sys.audit(event, *args)

    def test_other_socket_events_are_allowed_in_a_query(self) -> None:
        with deterministic("query"):
            sys.audit("socket.bind", None, ("127.0.0.1", 0))
            sys.audit("open", "file.txt", "r", 0)

    def test_runtime_io_allows_the_network_inside_a_query(self) -> None:
        with deterministic("query"):
            with runtime_io():
                sys.audit("socket.getaddrinfo", "example.com", 80, 0, 0, 0)
            with pytest.raises(NetworkNotAllowed):
                sys.audit("socket.getaddrinfo", "example.com", 80, 0, 0, 0)

    def test_nested_contexts_restore_the_outer_kind(self) -> None:
        with deterministic("query"):
            with deterministic("mutation"):
                pass
            with pytest.raises(NetworkNotAllowed, match="in a query"):
                sys.audit("socket.connect", None, ("192.0.2.1", 80))

    def test_the_kind_is_reset_when_the_handler_raises(self) -> None:
        with pytest.raises(ValueError, match="boom"), deterministic("query"):
            raise ValueError("boom")

        sys.audit("socket.connect", None, ("192.0.2.1", 80))

    @pytest.mark.anyio
    async def test_the_kind_is_per_task(self) -> None:
        entered = asyncio.Event()
        leave = asyncio.Event()

        async def query() -> None:
            with deterministic("query"):
                entered.set()
                await leave.wait()

        task = asyncio.create_task(query())
        await entered.wait()
        try:
            sys.audit("socket.getaddrinfo", "example.com", 80, 0, 0, 0)  # another task: allowed
        finally:
            leave.set()
            await task


def _run_on(
    factory: Callable[[], asyncio.AbstractEventLoop],
    body: Callable[[asyncio.AbstractEventLoop], Coroutine[Any, Any, None]],
) -> None:
    loop = factory()
    try:
        loop.run_until_complete(body(loop))
    finally:
        loop.close()


async def _refused_calls(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[Callable[[], Coroutine[Any, Any, Any]]] = [
        lambda: loop.getaddrinfo("example.com", 80),
        lambda: loop.create_connection(asyncio.Protocol, "example.com", 80),
        lambda: loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("192.0.2.1", 53)
        ),
        lambda: loop.sock_connect(None, ("192.0.2.1", 80)),  # type: ignore[arg-type]
    ]
    with deterministic("query"):
        for call in calls:
            with pytest.raises(NetworkNotAllowed, match="in a query"):
                await call()


class TestLoopFactory:
    def test_the_loop_refuses_connections_in_a_query(self) -> None:
        _run_on(loop_factory(), _refused_calls)

    def test_the_loop_is_uvloop_when_installed(self) -> None:
        import uvloop

        factory = loop_factory()

        assert issubclass(factory, uvloop.Loop)  # type: ignore[arg-type]
        assert factory.__name__ == "GuardedLoop"

    def test_without_uvloop_the_loop_is_a_guarded_selector_loop(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "uvloop", None)

        factory = loop_factory()

        assert issubclass(factory, asyncio.SelectorEventLoop)  # type: ignore[arg-type]
        assert factory.__name__.startswith("Guarded")
        _run_on(factory, _refused_calls)

    def test_the_loop_runs_ordinary_coroutines(self) -> None:
        results: list[int] = []

        async def body(loop: asyncio.AbstractEventLoop) -> None:
            await asyncio.sleep(0)
            results.append(1)

        _run_on(loop_factory(), body)

        assert results == [1]
