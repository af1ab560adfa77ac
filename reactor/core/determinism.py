"""Queries and mutations stay deterministic: no network from inside them.

Owns a context flag set while a query or mutation handler runs, a process-wide audit hook
that refuses ``socket.connect`` (and name lookups) while it is set, and an event loop class
whose connection methods refuse the same (async clients on uvloop never reach the ``socket``
module). Actions, HTTP actions and the runtime itself are unaffected. This does not freeze
time or randomness.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sys
from collections.abc import Callable, Iterator
from typing import Any

from reactor.errors import NetworkNotAllowed

__all__ = ["NetworkNotAllowed", "deterministic", "install", "loop_factory", "runtime_io"]


_kind: contextvars.ContextVar[str | None] = contextvars.ContextVar("reactor_udf_kind", default=None)
_installed = False
_REFUSED = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"}


def _refuse_in_udf() -> None:
    kind = _kind.get()
    if kind is not None:
        raise NetworkNotAllowed(
            f"Network access is not allowed in a {kind}: queries and mutations must be "
            "deterministic. Do I/O in an action (ctx.run_mutation from there)."
        )


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event in _REFUSED:
        _refuse_in_udf()


def _guarded(base: type[asyncio.AbstractEventLoop]) -> type[asyncio.AbstractEventLoop]:
    class GuardedLoop(base):  # type: ignore[valid-type, misc]
        async def create_connection(self, *args: Any, **kwargs: Any) -> Any:
            _refuse_in_udf()
            return await super().create_connection(*args, **kwargs)

        async def create_datagram_endpoint(self, *args: Any, **kwargs: Any) -> Any:
            _refuse_in_udf()
            return await super().create_datagram_endpoint(*args, **kwargs)

        async def getaddrinfo(self, *args: Any, **kwargs: Any) -> Any:
            _refuse_in_udf()
            return await super().getaddrinfo(*args, **kwargs)

        async def sock_connect(self, *args: Any, **kwargs: Any) -> Any:
            _refuse_in_udf()
            return await super().sock_connect(*args, **kwargs)

    GuardedLoop.__name__ = f"Guarded{base.__name__}"
    return GuardedLoop


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """The server's event loop: uvloop when installed, guarded against network use in UDFs."""
    install()
    try:
        import uvloop
    except ImportError:
        return _guarded(asyncio.SelectorEventLoop)
    return _guarded(uvloop.Loop)


def install() -> None:
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True


@contextlib.contextmanager
def deterministic(kind: str) -> Iterator[None]:
    install()
    token = _kind.set(kind)
    try:
        yield
    finally:
        _kind.reset(token)


@contextlib.contextmanager
def runtime_io() -> Iterator[None]:
    """The runtime's own network I/O (a networked storage engine reading for a query) is
    allowed even while a query or mutation runs."""
    token = _kind.set(None)
    try:
        yield
    finally:
        _kind.reset(token)
