"""Special module: the HTTP router of a later milestone."""

from __future__ import annotations

ROUTES: list[str] = []
