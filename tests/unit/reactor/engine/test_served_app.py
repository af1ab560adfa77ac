"""``ServedApp``: the one place the running deployment reads its app from, swapped whole."""

from __future__ import annotations

from pathlib import Path

from functions.loader import App, load_app
from functions.registry import Registry
from reactor.engine.served_app import ServedApp
from reactor.testing import write_app

V1 = {
    "schema.py": """
        from schema import define_schema, define_table, v
        schema = define_schema({"items": define_table({"n": v.float64()})})
    """,
    "items.py": """
        from functions import query

        @query
        async def version(ctx):
            return 1
    """,
}
V2 = {
    "items.py": """
        from functions import query

        @query
        async def renamed(ctx):
            return 2
    """,
}


def test_it_serves_the_app_it_was_given(tmp_path: Path) -> None:
    app = load_app(write_app(tmp_path / "v1", V1))
    served = ServedApp(app)
    assert served.app is app
    assert served.registry is app.registry
    assert served.schema is app.schema
    assert served.schema is not None and "items" in served.schema.tables
    assert served.registry.get("items:version") is not None


def test_swap_changes_every_reader_at_once(tmp_path: Path) -> None:
    old = load_app(write_app(tmp_path / "v1", V1))
    new = load_app(write_app(tmp_path / "v2", V2))
    served = ServedApp(old)
    served.swap(new)
    assert served.app is new
    assert served.registry is new.registry
    assert served.schema is None
    assert served.registry.get("items:version") is None
    assert served.registry.get("items:renamed") is not None
    assert old.registry.get("items:version") is not None  # calls running on it are unaffected


def test_it_accepts_an_app_built_in_memory(tmp_path: Path) -> None:
    app = App(directory=tmp_path, package="_t", schema=None, registry=Registry())
    served = ServedApp(app)
    assert served.schema is None
    assert len(served.registry) == 0
