"""Time and randomness for the runtime, behind one small interface tests can replace.

Owns the wall clock and a monotonic one for intervals (nanoseconds), sleeping and jitter.
``ManualClock`` (in ``reactor.testing``) drives time-based behaviour in tests. It does not own
scheduling policy.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Protocol

__all__ = ["Runtime", "SystemRuntime"]


class Runtime(Protocol):
    def now_ns(self) -> int: ...

    def monotonic_ns(self) -> int: ...

    async def sleep(self, seconds: float) -> None: ...

    def random(self) -> float: ...


class SystemRuntime:
    def now_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def random(self) -> float:
        return random.random()
