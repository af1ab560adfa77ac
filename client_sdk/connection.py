"""The websocket I/O shell: one background task that keeps a :class:`ClientProtocol` connected.

Owns the socket itself (``websockets``' asyncio client), the reconnect loop with jittered
exponential backoff (:class:`Backoff`), the server-inactivity timer (any text frame, including
``Ping``, resets it), the single writer that keeps outgoing messages in order, and turning socket
failures into ``lastCloseReason`` strings. It does not own protocol state or rules (``protocol``
and the pure cores) or futures and subscriptions (``client``): it hands every protocol event to
the ``on_events`` callback, acting itself only on :class:`ReconnectNeeded`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from client_sdk.protocol import ClientProtocol, Event, ReconnectNeeded

__all__ = ["Backoff", "Connection", "close_reason"]

logger = logging.getLogger(__name__)


class Backoff:
    """Exponential backoff with ±50 % jitter: ``initial_s``, doubling up to ``max_s``.

    Pure: time is never read here, and ``rand`` (``random.random`` by default) is injectable.
    """

    def __init__(
        self,
        *,
        initial_s: float = 0.1,
        max_s: float = 16.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError("Backoff needs 0 < initial_s <= max_s")
        self.initial_s = initial_s
        self.max_s = max_s
        self._rand = rand
        self._retries = 0

    @property
    def retries(self) -> int:
        return self._retries

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the base until the cap."""
        # Cap the exponent too, so a long outage never overflows the float.
        base: float = min(self.max_s, self.initial_s * 2.0 ** min(self._retries, 62))
        self._retries += 1
        return base + base * (self._rand() - 0.5)

    def reset(self) -> None:
        """Start again from ``initial_s`` (after a socket has proved healthy)."""
        self._retries = 0


def close_reason(exc: ConnectionClosed) -> str:
    """The ``lastCloseReason`` for a closed socket, in the JS client's words."""
    frame = exc.rcvd
    if frame is None:
        return "closed with code 1006"
    if frame.reason:
        return f"closed with code {frame.code}: {frame.reason}"
    return f"closed with code {frame.code}"


class Connection:
    """Keeps one protocol session connected until :meth:`close`.

    Invariant: at most one socket exists at a time, and the protocol sees
    ``connection_opened`` / ``connection_lost`` strictly alternating.
    """

    def __init__(
        self,
        ws_url: str,
        protocol: ClientProtocol,
        on_events: Callable[[Sequence[Event]], None],
        *,
        backoff: Backoff | None = None,
        inactivity_timeout_s: float = 60.0,
        open_timeout_s: float = 10.0,
        close_timeout_s: float = 2.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.ws_url = ws_url
        self._protocol = protocol
        self._on_events = on_events
        self._backoff = backoff or Backoff()
        self._inactivity_timeout_s = inactivity_timeout_s
        self._open_timeout_s = open_timeout_s
        self._close_timeout_s = close_timeout_s
        self._headers = dict(headers or {})
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._ws: ClientConnection | None = None

    @property
    def is_connected(self) -> bool:
        """Whether a socket is open and the protocol is using it."""
        return self._ws is not None and self._protocol.is_open

    def start(self) -> None:
        """Start the background task (in the running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="reactor-client-connection"
            )

    def flush(self) -> None:
        """Wake the writer: the protocol may have queued messages."""
        self._wake.set()

    async def close(self) -> None:
        """Stop reconnecting, close the socket and wait for the task to end."""
        self._closing.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # ---------------------------------------------------------------- the loop

    async def _run(self) -> None:
        while not self._closing.is_set():
            try:
                reason = await self._connect_and_serve()
            except Exception as exc:  # a bug must not kill reconnection for good
                logger.exception("Unexpected error in the sync connection")
                reason = f"ClientError: {exc!r}"
            self._protocol.connection_lost(reason)
            self._dispatch()
            if self._closing.is_set():
                return
            delay = self._backoff.next_delay()
            logger.info(
                "Sync socket to %s lost (%s); reconnecting in %.2f s", self.ws_url, reason, delay
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)

    async def _connect_and_serve(self) -> str:
        try:
            ws = await connect(
                self.ws_url,
                additional_headers=self._headers,
                open_timeout=self._open_timeout_s,
                close_timeout=self._close_timeout_s,
                max_size=None,  # a Transition can be many megabytes
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.info("Could not connect to %s: %r", self.ws_url, exc)
            return f"ConnectError: {exc}"
        self._ws = ws
        self._protocol.connection_opened(client_ts_ms=int(time.time() * 1000))
        self._dispatch()
        self._wake.set()
        reader = asyncio.ensure_future(self._read_loop(ws))
        writer = asyncio.ensure_future(self._write_loop(ws))
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                return reader.result()
            failure = writer.exception()
            if isinstance(failure, ConnectionClosed):
                return close_reason(failure)
            raise RuntimeError("sync writer stopped") from failure
        finally:
            self._ws = None
            reader.cancel()
            writer.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            await ws.close()

    async def _read_loop(self, ws: ClientConnection) -> str:
        """Feed frames to the protocol; returns the reason the socket must end."""
        while True:
            try:
                async with asyncio.timeout(self._inactivity_timeout_s):
                    data = await ws.recv()
            except TimeoutError:
                logger.warning("No message from the server for %.0f s", self._inactivity_timeout_s)
                return "InactiveServer"
            except ConnectionClosed as exc:
                return close_reason(exc)
            self._protocol.receive_text(data)
            if self._protocol.has_synced:
                self._backoff.reset()
            reason = self._dispatch()
            if reason is not None:
                return reason
            self._wake.set()

    async def _write_loop(self, ws: ClientConnection) -> None:
        """The only sender, so messages leave in the order the protocol queued them."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            for text in self._protocol.data_to_send():
                await ws.send(text)

    def _dispatch(self) -> str | None:
        """Hand protocol events to the client; returns a reconnect reason if one was asked."""
        events = self._protocol.events_received()
        if not events:
            return None
        self._on_events(events)
        for event in events:
            if isinstance(event, ReconnectNeeded):
                return event.reason
        return None
