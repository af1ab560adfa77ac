"""The manifest a runner gives the server describes an app exactly: rebuilt from it, every
example and test app has the same functions (kinds, visibility, validators), schema, cron jobs,
HTTP routes and auth providers as when imported, and reading it imports no app module."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest

from functions import deployment_env
from functions.http_router import load_http_router
from functions.loader import App, load_app
from functions.manifest import ManifestError, app_from_manifest, describe_app
from reactor.auth.authenticator import load_providers
from reactor.platform.crons import load_crons

ROOT = Path(__file__).resolve().parents[3]
APPS = [
    ROOT / "examples" / "taskboard",
    ROOT / "examples" / "teamtasks",
    ROOT / "tests" / "e2e" / "app",
    ROOT / "tests" / "e2e" / "auth_app",
    ROOT / "bench" / "app",
]
ENV = {"AUTH_ISSUER": "https://issuer.example", "AUTH_AUDIENCE": "reactor-tests"}


def _load(directory: Path) -> App:
    with deployment_env.using(ENV):
        return load_app(directory)


def _rebuilt(app: App) -> App:
    with deployment_env.using(ENV):
        described = describe_app(app)
    # Through JSON, as it crosses from the runner to the server.
    return app_from_manifest(app.directory, msgspec.json.decode(msgspec.json.encode(described)))


def _functions(app: App) -> list[tuple[Any, ...]]:
    return [
        (path, spec.kind, spec.visibility, spec.args, spec.returns, spec.__name__)
        for path, spec in app.registry.items()
    ]


def _crons(app: App) -> list[tuple[Any, ...]] | None:
    with deployment_env.using(ENV):
        crons = load_crons(app)
    if crons is None:
        return None
    return [(j.name, j.schedule, j.function_path, j.args) for j in crons]


def _routes(app: App) -> list[tuple[Any, ...]] | None:
    router = load_http_router(app)
    if router is None:
        return None
    return [
        (r.method, r.path, r.path_prefix, r.handler.path, r.handler.kind) for r in router.routes()
    ]


@pytest.mark.parametrize("directory", APPS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_an_app_rebuilt_from_its_manifest_is_the_same_app(directory: Path) -> None:
    app = _load(directory)
    rebuilt = _rebuilt(app)
    assert _functions(rebuilt) == _functions(app)
    assert len(app.registry) > 0
    assert rebuilt.schema == app.schema
    assert _crons(rebuilt) == _crons(app)
    assert _routes(rebuilt) == _routes(app)
    with deployment_env.using(ENV):
        assert load_providers(rebuilt) == load_providers(app)
    assert rebuilt.modules == {} and rebuilt.special_files == {}


def test_the_examples_cover_crons_routes_and_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REACTOR_EXAMPLE_ISSUER", "https://issuer.example")
    monkeypatch.setenv("REACTOR_EXAMPLE_JWKS", "https://issuer.example/jwks.json")
    app = _load(ROOT / "examples" / "teamtasks")
    rebuilt = _rebuilt(app)
    assert _crons(rebuilt) and _routes(rebuilt)
    providers = load_providers(rebuilt)
    assert providers and providers == load_providers(app)


def test_reading_a_manifest_runs_no_app_code(tmp_path: Path) -> None:
    (tmp_path / "loud.py").write_text(
        textwrap.dedent(
            """
            import os
            from functions import query

            os.environ["REACTOR_LOUD_IMPORTED"] = "yes"

            @query(args={})
            async def ping(ctx):
                return "pong"
            """
        )
    )
    described = describe_app(load_app(tmp_path))
    for name in [m for m in sys.modules if "reactor_app" in m]:
        del sys.modules[name]
    import os

    os.environ.pop("REACTOR_LOUD_IMPORTED")
    rebuilt = app_from_manifest(tmp_path, described)
    assert "REACTOR_LOUD_IMPORTED" not in os.environ
    spec = rebuilt.registry.get("loud:ping")
    assert spec is not None and spec.args == {}


def test_a_manifest_of_another_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="unknown format"):
        app_from_manifest(tmp_path, {"version": 999})
    with pytest.raises(ManifestError, match="corrupt"):
        app_from_manifest(tmp_path, {"version": 1, "functions": [{"path": "a:b"}]})
