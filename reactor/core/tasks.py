"""Background tasks of the runtime (committer, live queries, feed, scheduler, crons, pruning,
reloads): the one way to start one, so that a failure is logged with its traceback the moment
it happens instead of vanishing with the task, and the one way to stop one (cancel it and wait
until it has really finished)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["start_task", "stop_task"]

log = logging.getLogger("reactor.tasks")

T = TypeVar("T")

# Tasks nobody else holds (fire-and-forget work such as a reload): kept alive until done.
_detached: set[asyncio.Task[Any]] = set()


def _report(task: asyncio.Task[Any]) -> None:
    _detached.discard(task)
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("background task %r failed", task.get_name(), exc_info=error)


def start_task(work: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    """Run ``work`` in the background on the running loop. If it raises, the error is logged
    (``reactor.tasks``) as soon as it happens; cancellation is not an error."""
    task = asyncio.get_running_loop().create_task(work, name=name)
    _detached.add(task)
    task.add_done_callback(_report)
    return task


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it has finished. Its own cancellation ends here; a
    cancellation aimed at the caller while it waits goes on."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
