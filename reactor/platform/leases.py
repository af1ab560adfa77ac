"""Leadership among processes sharing one database: one named lease, renewed in the background.

Owns taking, renewing and giving up a lease (``Persistence.acquire_lease``) and telling its owner
when leadership begins and ends, so work that must run once per deployment (the scheduler, crons)
runs in exactly one of several ``reactor serve`` processes. It does not own that work.

A leader renews every ``ttl/3`` and counts its lease as lost once ``2*ttl/3`` has passed since
the start of its last successful renewal: it stops its jobs before the lease can expire and be
taken by another process. That timing is the injected runtime's (its monotonic clock, ``sleep``
and ``timeout``), so tests drive it with a ``ManualClock``; only ``stop`` bounds its release in
real time, as nothing advances a manual clock during shutdown. The stored lease expires by the
storage engine's own clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from reactor.core.persistence import Persistence
from reactor.core.runtime import Runtime, SystemRuntime
from reactor.core.tasks import stop_task

__all__ = ["DEFAULT_TTL_S", "Leadership"]

log = logging.getLogger("reactor.platform.leases")

DEFAULT_TTL_S = 15.0


class Leadership:
    """Hold the lease ``name`` as ``holder`` whenever it is free; ``on_gain``/``on_lose`` run
    (in the renewal task, one at a time) when leadership begins and ends."""

    def __init__(
        self,
        persistence: Persistence,
        name: str,
        holder: str,
        *,
        on_gain: Callable[[], Awaitable[None]],
        on_lose: Callable[[], Awaitable[None]],
        ttl_s: float = DEFAULT_TTL_S,
        runtime: Runtime | None = None,
    ) -> None:
        self.persistence = persistence
        self.name = name
        self.holder = holder
        self.ttl_s = ttl_s
        self.renew_every_s = ttl_s / 3
        self.runtime = runtime or SystemRuntime()
        self._on_gain = on_gain
        self._on_lose = on_lose
        self.leading = False
        # Times are the runtime's monotonic nanoseconds: exact on a manual clock.
        self._renew_every_ns = round(self.renew_every_s * 1e9)
        self._valid_for_ns = round(ttl_s * 2 / 3 * 1e9)
        self._valid_until_ns = 0  # past it a leader must assume its lease expired
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Try once now (a lone process leads when this returns), then keep trying."""
        started = await self._attempt()
        self._task = asyncio.get_running_loop().create_task(
            self._run(started), name=f"lease {self.name}"
        )

    async def stop(self) -> None:
        """Stop renewing, end leadership (``on_lose``) and release the lease, best effort."""
        await stop_task(self._task)
        self._task = None
        if self.leading:
            await self._lose("stopping")
        try:  # a real-time bound: nothing advances a manual clock while stopping
            async with asyncio.timeout(self.renew_every_s):
                await self.persistence.release_lease(self.name, self.holder)
        except Exception as exc:
            log.warning("could not release the %r lease (it expires by itself): %r", self.name, exc)

    async def _run(self, started_ns: int) -> None:
        while True:
            wait_ns = started_ns + self._renew_every_ns - self.runtime.monotonic_ns()
            await self.runtime.sleep(max(0, wait_ns) / 1e9)
            started_ns = await self._attempt()

    async def _attempt(self) -> int:
        """Acquire or renew once, then gain or lose leadership; returns when the attempt began
        (the runtime's monotonic nanoseconds)."""
        started_ns = self.runtime.monotonic_ns()
        reason = "another process holds it"
        try:
            if self.leading:
                # A renewal still pending at the deadline has failed: stop before expiry.
                async with self.runtime.timeout(max(0, self._valid_until_ns - started_ns) / 1e9):
                    held = await self.persistence.acquire_lease(self.name, self.holder, self.ttl_s)
            else:
                held = await self.persistence.acquire_lease(self.name, self.holder, self.ttl_s)
        except Exception as exc:
            held, reason = False, f"renewal failed: {exc!r}"
        if held:
            # The stored expiry is at least ``started + ttl``; leave a third of it as margin.
            self._valid_until_ns = started_ns + self._valid_for_ns
            if not self.leading:
                await self._gain()
        elif self.leading:
            await self._lose(reason)
        return started_ns

    async def _gain(self) -> None:
        self.leading = True  # before on_gain: a stop() that interrupts it must still undo it
        log.info("%s holds the %r lease: leading", self.holder, self.name)
        try:
            await self._on_gain()
        except Exception:
            log.exception("starting work as holder of the %r lease failed; giving it up", self.name)
            await self._lose("starting failed")
            try:
                await self.persistence.release_lease(self.name, self.holder)
            except Exception:
                log.debug("releasing the %r lease failed", self.name, exc_info=True)

    async def _lose(self, reason: str) -> None:
        log.info("%s no longer holds the %r lease (%s)", self.holder, self.name, reason)
        try:
            await self._on_lose()
        except Exception:
            log.exception("stopping work after losing the %r lease failed", self.name)
        self.leading = False  # after on_lose: if it is cancelled midway, stop() runs it again
