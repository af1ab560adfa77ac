"""Helpers for tests of apps and of Reactor itself: a real deployment on a temporary SQLite file
(or, with ``REACTOR_TEST_STORAGE`` set to a MongoDB URL, on a fresh MongoDB database).

Owns writing small app directories from source strings and starting a ``Deployment`` on them,
plus ``ManualClock``. Nothing here is a mock: the engine, committer and live queries are the
real ones.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import textwrap
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from functions.loader import load_app
from reactor.core.persistence import Persistence
from reactor.engine.executor import FunctionResult
from reactor.server.deployment import Deployment
from reactor.storage.sqlite import SqlitePersistence

__all__ = ["STORAGE_ENV", "ManualClock", "call", "running_deployment", "write_app"]

# A MongoDB URL here runs ``running_services`` on a fresh database of it instead of SQLite
# (``make test-mongo``: the conformance suites on the MongoDB engine).
STORAGE_ENV = "REACTOR_TEST_STORAGE"
_mongo_databases: set[str] = set()


class ManualClock:
    """A runtime whose time moves only when told; ``sleep`` advances it instantly."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000) -> None:
        self.ns = start_ns

    def now_ns(self) -> int:
        return self.ns

    def monotonic_ns(self) -> int:
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


def _open_persistence(data_dir: Path, kwargs: dict[str, Any]) -> Persistence:
    base_url = os.environ.get(STORAGE_ENV)
    if not base_url:
        return SqlitePersistence.open(data_dir)
    from reactor.storage.mongo.engine import MongoPersistence
    from reactor.testing.mongo import drop_database_quietly, unique_database_url

    # One database per data directory, so a test that restarts finds its data again; all
    # are dropped when the test process exits.
    url = unique_database_url(base_url, key=str(Path(data_dir).resolve()))
    if url not in _mongo_databases:
        _mongo_databases.add(url)
        atexit.register(drop_database_quietly, url)
    kwargs.setdefault("blob_directory", Path(data_dir) / "blobs")
    return MongoPersistence.open(url)


@contextlib.asynccontextmanager
async def running_deployment(
    app_dir: Path, data_dir: Path, **kwargs: Any
) -> AsyncIterator[Deployment]:
    """A started ``Deployment`` of the app in ``app_dir``, stopped on exit; its storage is a
    SQLite file in ``data_dir`` (or a MongoDB database, see ``STORAGE_ENV``)."""
    persistence = _open_persistence(data_dir, kwargs)
    deployment = Deployment(load_app(app_dir), persistence, **kwargs)
    await deployment.start()
    try:
        yield deployment
    finally:
        await deployment.stop()


async def call(
    deployment: Deployment, path: str, args: Mapping[str, Any] | None = None
) -> FunctionResult:
    """Run a public function by path, as the HTTP API would."""
    spec = deployment.registry.resolve(path)
    return await deployment.executor.run(spec, dict(args or {}))
