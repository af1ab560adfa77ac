"""A shared `reactor serve` of ``guard_app`` for the HTTP hardening tests."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.server import serving


@pytest.fixture(scope="session", name="serving")
def serving_fixture() -> ModuleType:
    """``tests/server/serving.py``: the server launcher and a keep-alive HTTP connection."""
    return serving


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with serving.guard_server(tmp_path_factory.mktemp("guard")) as server:
        yield server
