"""The fuzz suites' server: ``reactor serve`` of the hardening tests' app
(``tests/server/guard_app``, launched by ``tests/server/serving.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.server import serving as _serving


@pytest.fixture(scope="session", name="serving")
def serving_fixture() -> ModuleType:
    return _serving


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with _serving.guard_server(
        tmp_path_factory.mktemp("fuzz"), REACTOR_MAX_REQUEST_BYTES=str(256 * 1024)
    ) as server:
        yield server
