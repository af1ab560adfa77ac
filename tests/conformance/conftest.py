"""The storage conformance suite's engines: one ``persistence`` fixture over every engine, and
``store``, the one way the suite writes.

``persistence`` is a fresh engine per test, closed after it: SQLite in ``tmp_path``, and MongoDB
in a uniquely named database (dropped after the test) on ``REACTOR_TEST_MONGODB_URL`` when set,
else on the mongoeco emulator from ``.venv-mongoeco`` (``reactor.testing.mongo``), else skipped.
This module does not hold behaviour tests (``test_persistence.py``).
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reactor.core.persistence import Commit, Persistence
from reactor.storage.sqlite import SqlitePersistence
from reactor.testing.mongo import (
    drop_database_quietly,
    mongoeco_python,
    mongoeco_server,
    test_mongodb_url,
    unique_database_url,
)

__all__ = ["OpenAgain", "close", "engine_kind", "skip_on", "store"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENGINES = ("sqlite", "mongo")
NO_MONGODB = (
    "no MongoDB: set REACTOR_TEST_MONGODB_URL or install Python 3.13 for the mongoeco emulator "
    "(sh -e scripts/install)"
)

OpenAgain = Callable[[], Persistence]
# Which engine each open Persistence is: "sqlite", "mongo" or "mongo-emulator".
_KINDS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


async def store(persistence: Persistence, *commits: Commit) -> list[int]:
    """Durably store ``commits`` as one atomic batch, in order; returns their timestamps.

    Every write of the suite goes through here, and tests read at the timestamps returned
    rather than at ``Commit.ts``, so that the write path can change in this one place.
    """
    await persistence.write(list(commits))
    return [commit.ts for commit in commits]


async def close(persistence: Persistence) -> None:
    """Close an engine (a second close is harmless: the fixture closes every engine again)."""
    await persistence.aclose()


def engine_kind(persistence: Persistence) -> str:
    """``"sqlite"``, ``"mongo"`` (a real server) or ``"mongo-emulator"`` (mongoeco)."""
    return _KINDS[persistence]


def skip_on(
    persistence: Persistence, *, mongo: str | None = None, emulator: str | None = None
) -> None:
    """Skip the running test on MongoDB (``mongo``: any server) or on the mongoeco emulator
    only (``emulator``), giving the engine's reason; a no-op on the other engines."""
    kind = engine_kind(persistence)
    if mongo is not None and kind.startswith("mongo"):
        pytest.skip(f"MongoDB: {mongo}")
    if emulator is not None and kind == "mongo-emulator":
        pytest.skip(f"mongoeco emulator: {emulator}")


@dataclass
class _Storage:
    """Where a test's engine lives, to open it again (a restart, or a second process)."""

    kind: str
    opener: Callable[[], Persistence]
    opened: list[Persistence] = field(default_factory=list)

    def open(self) -> Persistence:
        engine = self.opener()
        _KINDS[engine] = self.kind
        self.opened.append(engine)
        return engine


_STORAGE = pytest.StashKey[_Storage]()


@pytest.fixture(scope="session")
def conformance_mongo_url() -> Iterator[tuple[str, bool]]:
    """(base URL, is the emulator): the real server named by ``REACTOR_TEST_MONGODB_URL``, or
    mongoeco started once for the session."""
    url = test_mongodb_url()
    if url is not None:
        yield url, False
        return
    if not mongoeco_python(PROJECT_ROOT).exists():
        pytest.skip(NO_MONGODB)
    with ExitStack() as stack:
        yield stack.enter_context(mongoeco_server(PROJECT_ROOT)), True


@pytest.fixture(params=ENGINES)
async def persistence(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Persistence]:
    """A fresh engine of each kind, closed (and its MongoDB database dropped) after the test."""
    url: str | None = None
    if request.param == "sqlite":
        directory = tmp_path / "data"
        storage = _Storage("sqlite", lambda: SqlitePersistence.open(directory))
    else:
        from reactor.storage.mongo.engine import MongoPersistence

        base, emulator = request.getfixturevalue("conformance_mongo_url")
        url = unique_database_url(base)
        if emulator:  # a standalone server: no change streams, so the polling feed
            url += ("&" if "?" in url else "?") + "reactorFeed=poll"
        where = url
        kind = "mongo-emulator" if emulator else "mongo"
        storage = _Storage(kind, lambda: MongoPersistence.open(where))
    request.node.stash[_STORAGE] = storage
    try:
        yield storage.open()
    finally:
        for engine in storage.opened:
            await close(engine)
        if url is not None:
            drop_database_quietly(url)


@pytest.fixture
def open_again(persistence: Persistence, request: pytest.FixtureRequest) -> OpenAgain:
    """Open another engine on the test's storage (closed after the test): after closing the
    first, a restart; while it is open, a second process."""
    storage: _Storage = request.node.stash[_STORAGE]
    return storage.open
