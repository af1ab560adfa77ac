"""Convex app layouts a deployment serves: ``permissions.py`` beside ``permissions/``."""

from __future__ import annotations

from pathlib import Path

import pytest

from reactor.testing import call, running_deployment, write_app

pytestmark = pytest.mark.anyio

APP = {
    "permissions.py": """
        from functions import mutation, query
        from .permissions.roles import ADMIN

        @mutation
        async def grant(ctx, user: str):
            await ctx.db.insert("grants", {"user": user, "role": ADMIN})

        @query
        async def can(ctx, user: str):
            rows = await ctx.db.query("grants").collect()
            return any(row["user"] == user for row in rows)
    """,
    "permissions/roles.py": """
        from functions import query

        ADMIN = "admin"

        @query
        async def of(ctx, user: str):
            rows = await ctx.db.query("grants").collect()
            return [row["role"] for row in rows if row["user"] == user]
    """,
}


async def test_module_and_directory_of_one_name_serve_both_paths(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", APP)
    async with running_deployment(app, tmp_path / "data", background=False) as deployment:
        await call(deployment, "permissions:grant", {"user": "ada"})
        assert (await call(deployment, "permissions:can", {"user": "ada"})).value is True
        assert (await call(deployment, "permissions/roles:of", {"user": "ada"})).value == ["admin"]
