"""Special module: remembered by the loader, not scanned for functions."""

from __future__ import annotations

from typing import Any

from functions import internal_mutation

JOBS = ["tick"]


@internal_mutation
async def tick(ctx: Any) -> None:
    return None
