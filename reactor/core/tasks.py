"""The one way the runtime stops a background task it started (committer, live queries, crons,
pruning): cancel it and wait until it has really finished."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["stop_task"]


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        # The task's own cancellation ends here; one aimed at the caller goes on.
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
