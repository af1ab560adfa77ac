"""A shared `reactor serve` of ``guard_app`` for the HTTP hardening tests."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest


def load_serving() -> ModuleType:
    path = Path(__file__).resolve().parent / "serving.py"
    spec = importlib.util.spec_from_file_location("reactor_tests_serving", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


serving = load_serving()


@pytest.fixture(scope="session", name="serving")
def serving_fixture() -> ModuleType:
    """``tests/server/serving.py``: the server launcher and a keep-alive HTTP connection."""
    return serving


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with serving.guard_server(tmp_path_factory.mktemp("guard")) as server:
        yield server
