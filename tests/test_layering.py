"""Dependencies point down only: schema -> functions -> reactor; client_sdk stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def loaded_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return {name.split(".")[0] for name in json.loads(out)}


@pytest.mark.parametrize(
    ("statement", "forbidden"),
    [
        (
            "import schema, schema.ordering, schema.ids",
            {"functions", "reactor", "client_sdk", "starlette", "sqlite3"},
        ),
        ("import functions, functions.loader", {"reactor", "client_sdk", "starlette", "sqlite3"}),
        (
            "import client_sdk",
            {"reactor", "functions", "starlette", "uvicorn", "sqlite3", "pymongo"},
        ),
        ("import reactor", {"starlette", "uvicorn", "sqlite3"}),
    ],
)
def test_imports_point_down_only(statement: str, forbidden: set[str]) -> None:
    assert loaded_after(statement) & forbidden == set()
