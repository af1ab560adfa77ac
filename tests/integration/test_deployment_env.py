"""Deployment environment variables at load time: ``functions.env`` in module code and
``auth_config.py`` reads the deployment's variables, and ``Deployment.set_env`` re-loads the app
under the new ones (Convex re-evaluates its config when ``npx convex env set`` changes them)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from functions import env
from reactor.server.deployment import Deployment
from reactor.server.http_actions import create_site_app
from reactor.testing import call, running_deployment, write_app

pytestmark = pytest.mark.anyio

APP = {
    "config.py": """
        from functions import env, query

        GREETING = env.get("REACTOR_TEST_GREETING", "unset")
        if env.get("REACTOR_TEST_BREAK") == "yes":
            raise RuntimeError("module code refused to load")

        @query
        async def greeting(ctx):
            return GREETING

        @query
        async def live(ctx):
            return env.get("REACTOR_TEST_GREETING")
    """,
    "http.py": """
        from starlette.responses import JSONResponse

        from functions import env, http_action
        from functions.http_router import http_router

        @http_action
        async def show(ctx, request):
            return JSONResponse({"now": env.get("REACTOR_TEST_GREETING")})

        http = http_router()
        # A route whose path comes from a deployment variable, as in Convex's http.ts.
        http.route(path="/" + env.get("REACTOR_TEST_ROUTE", "default"), method="GET", handler=show)
    """,
    "auth_config.py": """
        from functions import env

        providers = (
            [{"domain": env["REACTOR_TEST_ISSUER"], "applicationID": "reactor-test"}]
            if "REACTOR_TEST_ISSUER" in env
            else []
        )
    """,
}


async def value(deployment: Deployment, path: str) -> Any:
    result = await call(deployment, path)
    assert result.success, result.error_message
    return result.value


def domains(deployment: Deployment) -> list[str]:
    return [getattr(p, "domain", "?") for p in deployment.auth.verifier.providers]


async def wait_for_domains(deployment: Deployment, expected: list[str]) -> None:
    for _ in range(200):  # auth_config.py's providers are swapped in by a background task
        if domains(deployment) == expected:
            return
        await asyncio.sleep(0.01)
    assert domains(deployment) == expected


async def test_set_env_reloads_module_code_and_auth_config(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", APP)
    async with running_deployment(app, tmp_path / "data") as deployment:
        assert await value(deployment, "config:greeting") == "unset"
        assert domains(deployment) == []

        await deployment.set_env(
            {"REACTOR_TEST_GREETING": "hello", "REACTOR_TEST_ISSUER": "https://issuer.test"}
        )
        assert await value(deployment, "config:greeting") == "hello"
        assert await value(deployment, "config:live") == "hello"  # functions.env in a handler
        await wait_for_domains(deployment, ["https://issuer.test"])

        # The server's process environment is neither read nor written.
        assert "REACTOR_TEST_GREETING" not in os.environ
        assert env.get("REACTOR_TEST_GREETING") is None  # outside a load or a function run

        await deployment.set_env({"REACTOR_TEST_ISSUER": None})
        await wait_for_domains(deployment, [])


async def test_a_restarted_deployment_loads_its_app_with_the_stored_variables(
    tmp_path: Path,
) -> None:
    app = write_app(tmp_path / "app", APP)
    async with running_deployment(app, tmp_path / "data") as deployment:
        await deployment.set_env(
            {"REACTOR_TEST_GREETING": "stored", "REACTOR_TEST_ISSUER": "https://issuer.test"}
        )
    async with running_deployment(app, tmp_path / "data") as deployment:
        assert await value(deployment, "config:greeting") == "stored"
        assert domains(deployment) == ["https://issuer.test"]  # at once, not after a reload


async def test_a_failed_reload_keeps_the_previous_code(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = write_app(tmp_path / "app", APP)
    async with running_deployment(app, tmp_path / "data") as deployment:
        await deployment.set_env({"REACTOR_TEST_GREETING": "first"})
        updated = await deployment.set_env(
            {"REACTOR_TEST_GREETING": "second", "REACTOR_TEST_BREAK": "yes"}
        )
        assert updated["REACTOR_TEST_BREAK"] == "yes"  # the change itself is stored
        assert await value(deployment, "config:greeting") == "first"  # the old code serves
        assert "still serving the previous functions" in caplog.text
        assert await value(deployment, "config:live") == "second"  # reads the new values


async def test_http_py_routes_and_http_actions_read_the_variables(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", APP)
    async with running_deployment(app, tmp_path / "data") as deployment:
        await deployment.set_env({"REACTOR_TEST_ROUTE": "custom", "REACTOR_TEST_GREETING": "hi"})
        site = create_site_app(deployment)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=site), base_url="http://site"
        ) as http:
            assert (await http.get("/default")).status_code == 404
            response = await http.get("/custom")
            assert response.status_code == 200, response.text
            assert response.json() == {"now": "hi"}
