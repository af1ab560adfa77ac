"""Queries and mutations stay deterministic: no network from inside them.

Owns a context flag set while a query or mutation handler runs, and a process-wide audit hook
that refuses ``socket.connect`` (and name lookups) while it is set. Actions, HTTP actions and
the runtime itself are unaffected. This does not freeze time or randomness.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterator
from typing import Any

from schema.errors import FunctionError

__all__ = ["NetworkNotAllowed", "deterministic", "install"]


class NetworkNotAllowed(FunctionError):
    code = "NetworkNotAllowed"


_kind: contextvars.ContextVar[str | None] = contextvars.ContextVar("reactor_udf_kind", default=None)
_installed = False
_REFUSED = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"}


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event in _REFUSED:
        kind = _kind.get()
        if kind is not None:
            raise NetworkNotAllowed(
                f"Network access is not allowed in a {kind}: queries and mutations must be "
                "deterministic. Do I/O in an action (ctx.run_mutation from there)."
            )


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
