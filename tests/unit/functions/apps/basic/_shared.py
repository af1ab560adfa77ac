"""Not scanned (leading underscore); its function is filed where it is imported."""

from __future__ import annotations

from typing import Any

from functions import query


@query
async def shared_query(ctx: Any) -> str:
    return "shared"
