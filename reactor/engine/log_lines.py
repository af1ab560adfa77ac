"""Function log lines: what a handler prints reaches its caller as ``logLines``, like Convex's
``console.log`` (``[LOG] text``; at most 256 lines of 4 KiB per call).

Owns a ``sys.stdout`` proxy that routes writes made inside a running function (tracked with a
context variable, so concurrent functions never mix) to that function's buffer, and passes
every other write through unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["MAX_LINES", "MAX_LINE_BYTES", "capture"]

MAX_LINES = 256
MAX_LINE_BYTES = 4096

_buffer: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "reactor_log_buffer", default=None
)


class _RoutingStdout:
    def __init__(self, real: TextIO) -> None:
        self._real = real

    def write(self, text: str) -> int:
        buffer = _buffer.get()
        if buffer is None:
            return self._real.write(text)
        buffer.append(text)
        return len(text)

    def flush(self) -> None:
        if _buffer.get() is None:
            self._real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _install() -> None:
    if not isinstance(sys.stdout, _RoutingStdout):
        sys.stdout = _RoutingStdout(sys.stdout)


class Captured:
    """The lines of one call, available once its ``capture`` block ends."""

    def __init__(self) -> None:
        self.lines: tuple[str, ...] = ()


@contextlib.contextmanager
def capture() -> Iterator[Captured]:
    _install()
    chunks: list[str] = []
    token = _buffer.set(chunks)
    result = Captured()
    try:
        yield result
    finally:
        _buffer.reset(token)
        text = "".join(chunks)
        lines = [line for line in text.split("\n") if line] if text else []
        out = []
        for line in lines[:MAX_LINES]:
            encoded = line.encode("utf-8")
            if len(encoded) > MAX_LINE_BYTES:
                line = encoded[:MAX_LINE_BYTES].decode("utf-8", "ignore") + " (truncated)"
            out.append(f"[LOG] {line}")
        if len(lines) > MAX_LINES:
            out.append(f"[WARN] {len(lines) - MAX_LINES} more log lines were dropped")
        result.lines = tuple(out)
