"""The websocket protocol ``reactor serve`` gives uvicorn: its websockets sans-I/O protocol,
lighter per idle connection.

Owns only what an open connection keeps: uvicorn's protocol holds, for the connection's whole
life, an ``asyncio.Queue`` of received messages (three deques and an event, about 3 KiB, for
what is at most a message or two: uvicorn stops reading until the app takes each one), an
``asyncio.Event`` for flow control (a deque of waiters, about 0.7 KiB, that almost never has
one) and the handshake's request and response with their headers. Here the queue is ``Inbox``
(a list and at most one waiter), the event is ``Flag`` (waiters only while there are some) and
the handshake is dropped once the connection is accepted. Everything else,
framing, pings, flow control and closing, is uvicorn's. Frames the sync endpoint writes itself
go through ``reactor.server.sync_endpoint.FrameWriter``, which works with either class.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["Flag", "Inbox", "LeanWebSocketProtocol"]


class Inbox:
    """The part of ``asyncio.Queue`` uvicorn's protocol uses (``put_nowait``, ``get``,
    ``empty``, ``qsize``) for one consumer, the app's ``receive``."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class Flag:
    """The part of ``asyncio.Event`` uvicorn's protocol uses (``set``, ``clear``, ``is_set``,
    ``wait``), holding a list of waiters only while some wait."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
                if not self._waiters:
                    self._waiters = None
        return True


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets sans-I/O protocol with ``Inbox`` for its queue, ``Flag`` for its
    ``writable`` event and without the handshake's request and response once accepted (nothing
    reads them after that)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
