"""Fixtures that give tests a MongoDB wire-protocol URL.

Order of preference: ``REACTOR_TEST_MONGODB_URL``; else the mongoeco emulator
from ``.venv-mongoeco`` (built by ``scripts/install`` when Python 3.13 exists);
else the tests are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from reactor.testing.mongo import (
    drop_database_quietly,
    mongoeco_python,
    mongoeco_server,
    test_mongodb_url,
    unique_database_url,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NO_MONGODB = (
    "no MongoDB: set REACTOR_TEST_MONGODB_URL or install Python 3.13 for the mongoeco emulator"
)


@pytest.fixture(scope="session")
def mongo_is_emulator() -> bool:
    """True when the tests run against mongoeco started by this session."""
    return test_mongodb_url() is None and mongoeco_python(PROJECT_ROOT).exists()


@pytest.fixture(scope="session")
def mongo_base_url(mongo_is_emulator: bool) -> Iterator[str]:
    url = test_mongodb_url()
    if url is not None:
        yield url
        return
    if not mongo_is_emulator:
        pytest.skip(NO_MONGODB)
    with ExitStack() as stack:
        yield stack.enter_context(mongoeco_server(PROJECT_ROOT))


@pytest.fixture
def mongo_url(mongo_base_url: str) -> Iterator[str]:
    """A URL naming a fresh, uniquely named database, dropped after the test."""
    url = unique_database_url(mongo_base_url)
    yield url
    drop_database_quietly(url)
