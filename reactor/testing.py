"""Helpers for tests of apps and of Reactor itself: a real deployment on a temporary SQLite file.

Owns writing small app directories from source strings and starting ``Services`` on them,
plus ``ManualClock``. Nothing here is a mock: the engine, committer and live queries are the
real ones.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from functions.decorators import FunctionKind
from functions.loader import load_app
from reactor.executor import FunctionResult
from reactor.services import Services
from reactor.storage.sqlite import SqlitePersistence

__all__ = ["ManualClock", "call", "running_services", "write_app"]


class ManualClock:
    """A runtime whose time moves only when told; ``sleep`` advances it instantly."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000) -> None:
        self.ns = start_ns

    def now_ns(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        self.ns += int(seconds * 1e9)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def random(self) -> float:
        return 0.5


def write_app(directory: Path, files: Mapping[str, str]) -> Path:
    """Write ``{"tasks.py": source, ...}`` (dedented) under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return directory


@contextlib.asynccontextmanager
async def running_services(
    app_dir: Path, data_dir: Path, **kwargs: Any
) -> AsyncIterator[Services]:
    services = Services(load_app(app_dir), SqlitePersistence.open(data_dir), **kwargs)
    await services.start()
    try:
        yield services
    finally:
        await services.stop()


async def call(services: Services, path: str, args: Mapping[str, Any] | None = None) -> FunctionResult:
    """Run a public query or mutation by path, as the HTTP API would."""
    spec = services.registry.resolve(path)
    if spec.kind is FunctionKind.QUERY:
        return await services.executor.run_query(spec, dict(args or {}))
    return await services.executor.run_mutation(spec, dict(args or {}))
