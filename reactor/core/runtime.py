"""Time and randomness for the runtime, behind one small interface tests can replace.

Owns the wall clock and a monotonic one for intervals (nanoseconds), sleeping, deadlines on
that clock (``timeout``) and jitter. ``ManualClock`` (in ``reactor.testing``) drives
time-based behaviour in tests. It does not own scheduling policy.
"""

from __future__ import annotations

import asyncio
import random
import time
from contextlib import AbstractAsyncContextManager
from typing import Protocol

__all__ = ["Runtime", "SystemRuntime"]


class Runtime(Protocol):
    def now_ns(self) -> int: ...

    def monotonic_ns(self) -> int: ...

    async def sleep(self, seconds: float) -> None: ...

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        """Like ``asyncio.timeout(seconds)`` on this clock: the block is cancelled and raises
        ``TimeoutError`` once ``seconds`` have passed (``None``: never). Waiting for an event or
        a timeout is ``await event.wait()`` inside it."""
        ...

    def random(self) -> float: ...


class SystemRuntime:
    def now_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(seconds)

    def random(self) -> float:
        return random.random()
