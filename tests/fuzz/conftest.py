"""The fuzz suites' server: ``reactor serve`` of the hardening tests' app
(``tests/server/guard_app``, launched by ``tests/server/serving.py``)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _load_serving() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "server" / "serving.py"
    spec = importlib.util.spec_from_file_location("reactor_tests_fuzz_serving", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_serving = _load_serving()


@pytest.fixture(scope="session", name="serving")
def serving_fixture() -> ModuleType:
    return _serving


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with _serving.guard_server(
        tmp_path_factory.mktemp("fuzz"), REACTOR_MAX_REQUEST_BYTES=str(256 * 1024)
    ) as server:
        yield server
