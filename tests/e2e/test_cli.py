"""The `reactor run` and `reactor env` commands, against a running server (--url with the admin
key) and in local mode (--app/--data with no server holding the data directory), on
tests/e2e/auth_app (an internal mutation `notes:add`, a public query `notes:bodies`, and
`env:get`, a query reading ctx.env)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import websockets

if TYPE_CHECKING:  # conftest is pytest's to import; its classes serve as types only
    from .conftest import ReactorServer

ROOT = Path(__file__).resolve().parents[2]
AUTH_APP = Path(__file__).resolve().parent / "auth_app"
CLI_TIMEOUT = 60


class Cli:
    def __init__(self, argv: list[str], proc: subprocess.CompletedProcess[str]) -> None:
        self.argv = argv
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def describe(self) -> str:
        return (
            f"reactor {' '.join(self.argv)}\nexit code: {self.returncode}\n"
            f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}"
        )

    def ok(self) -> Cli:
        assert self.returncode == 0, self.describe()
        return self

    def failed(self) -> Cli:
        assert self.returncode != 0, self.describe()
        assert "Traceback" not in self.stderr, f"a crash, not a clear error:\n{self.describe()}"
        return self

    def json(self) -> Any:
        self.ok()
        return json.loads(self.stdout)


def reactor(*argv: str) -> Cli:
    env = {k: v for k, v in os.environ.items() if k != "REACTOR_ADMIN_KEY"}
    proc = subprocess.run(
        [sys.executable, "-m", "reactor", *argv],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    return Cli(list(argv), proc)


@pytest.fixture(scope="module")
def server(app_server_factory: Callable[..., ReactorServer]) -> ReactorServer:
    srv = app_server_factory(AUTH_APP)
    srv.wait_admin_key()
    return srv


def remote(server: ReactorServer) -> list[str]:
    return ["--url", server.url, "--admin-key", server.wait_admin_key()]


def http_query(server: ReactorServer, path: str, args: dict[str, Any] | None = None) -> Any:
    body = httpx.post(
        server.url + "/api/query", json={"path": path, "args": args or {}, "format": "json"}
    ).json()
    assert body["status"] == "success", body
    return body["value"]


# --- run ------------------------------------------------------------------------------------


def test_run_internal_mutation_with_the_admin_key(server: ReactorServer) -> None:
    body = f"cli-{uuid.uuid4().hex[:6]}"
    result = reactor("run", "notes:add", json.dumps({"body": body}), *remote(server)).json()
    assert result["added"] == body
    assert result["count"] >= 1
    assert body in http_query(server, "notes:bodies")
    # Public functions run too, and the output is the JSON value.
    assert body in reactor("run", "notes:bodies", *remote(server)).json()
    # The default `{}` arguments, on an internal query.
    secret = reactor("run", "whoami:secret", *remote(server)).json()
    assert secret == {"secret": "internal-only", "identity": None}


def test_internal_mutation_is_not_public(server: ReactorServer) -> None:
    response = httpx.post(
        server.url + "/api/mutation", json={"path": "notes:add", "args": {"body": "sneaky"}}
    ).json()
    assert response["status"] == "error"
    assert "Could not find public function for 'notes:add'" in response["errorMessage"]
    assert "sneaky" not in http_query(server, "notes:bodies")


def test_run_without_an_admin_key_is_a_clear_error(server: ReactorServer) -> None:
    result = reactor("run", "notes:add", '{"body": "x"}', "--url", server.url).failed()
    assert "admin key" in result.stderr.lower()
    assert "--admin-key" in result.stderr or "REACTOR_ADMIN_KEY" in result.stderr


def test_run_with_a_wrong_admin_key_is_a_clear_error(server: ReactorServer) -> None:
    result = reactor(
        "run", "notes:add", '{"body": "x"}', "--url", server.url, "--admin-key", "wrong-key"
    ).failed()
    assert "Unauthenticated" in result.stderr or "admin key" in result.stderr.lower()
    assert "x" not in http_query(server, "notes:bodies")


def test_run_reports_function_errors_and_bad_arguments(server: ReactorServer) -> None:
    missing = reactor("run", "notes:nope", *remote(server)).failed()
    assert "Could not find" in missing.stderr + missing.stdout
    bad_args = reactor("run", "notes:add", '{"body": 5}', *remote(server)).failed()
    assert "body" in bad_args.stderr + bad_args.stdout
    not_json = reactor("run", "notes:add", "{body:", *remote(server)).failed()
    assert "JSON" in not_json.stderr


# --- env ------------------------------------------------------------------------------------


async def _next_value(ws: Any, query_id: int, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no update of query {query_id} within {timeout}s")
        message = json.loads(await asyncio.wait_for(ws.recv(), remaining))
        assert message["type"] != "FatalError", message
        if message["type"] != "Transition":
            continue
        for modification in message["modifications"]:
            if modification["queryId"] == query_id:
                assert modification["type"] == "QueryUpdated", modification
                return modification["value"]


async def _cli(*argv: str) -> Cli:
    return await asyncio.to_thread(reactor, *argv)


@pytest.mark.anyio
async def test_env_set_get_list_remove_and_live_queries(server: ReactorServer) -> None:
    name = "GREETING_" + uuid.uuid4().hex[:6].upper()
    url = server.url.replace("http://", "ws://") + "/api/sync"
    async with websockets.connect(url) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "Connect",
                    "sessionId": str(uuid.uuid4()),
                    "connectionCount": 0,
                    "lastCloseReason": "InitialConnect",
                }
            )
        )
        await ws.send(
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [
                        {
                            "type": "Add",
                            "queryId": 0,
                            "udfPath": "env:get",
                            "args": [{"name": name}],
                        },
                        {"type": "Add", "queryId": 1, "udfPath": "env:system", "args": [{}]},
                    ],
                }
            )
        )
        assert await _next_value(ws, 0) is None

        (await _cli("env", "set", name, "hello world", *remote(server))).ok()
        assert await _next_value(ws, 0) == "hello world"  # the subscription re-ran

        got = (await _cli("env", "get", name, *remote(server))).ok()
        assert got.stdout.strip() == "hello world"
        listed = (await _cli("env", "list", *remote(server))).ok()
        assert f"{name}=hello world" in listed.stdout.splitlines()
        assert "CONVEX_CLOUD_URL" not in listed.stdout  # system variables aren't user values
        assert http_query(server, "env:get", {"name": name}) == "hello world"

        (await _cli("env", "set", name, "changed", *remote(server))).ok()
        assert await _next_value(ws, 0) == "changed"

        (await _cli("env", "remove", name, *remote(server))).ok()
        assert await _next_value(ws, 0) is None
        missing = (await _cli("env", "get", name, *remote(server))).failed()
        assert "not set" in missing.stderr
        assert f"{name}=" not in (await _cli("env", "list", *remote(server))).ok().stdout

    system = http_query(server, "env:system")
    assert system == {"cloud": server.url, "site": server.site_url}


def test_env_refuses_bad_names_system_names_and_missing_keys(server: ReactorServer) -> None:
    bad = reactor("env", "set", "1BAD", "x", *remote(server)).failed()
    assert "1BAD" in bad.stderr and "letter" in bad.stderr
    system = reactor("env", "set", "CONVEX_CLOUD_URL", "http://evil", *remote(server)).failed()
    assert "CONVEX_CLOUD_URL" in system.stderr
    assert http_query(server, "env:system")["cloud"] == server.url
    no_key = reactor("env", "list", "--url", server.url).failed()
    assert "admin key" in no_key.stderr.lower()
    wrong_key = reactor(
        "env", "set", "X_VAR", "1", "--url", server.url, "--admin-key", "nope"
    ).failed()
    assert wrong_key.stderr.strip()
    assert http_query(server, "env:get", {"name": "X_VAR"}) is None


# --- local mode -----------------------------------------------------------------------------


def test_local_mode_refused_while_the_server_runs_then_works_when_stopped(
    app_server_factory: Callable[..., ReactorServer],
) -> None:
    srv = app_server_factory(AUTH_APP)
    key = srv.wait_admin_key()
    local = ["--app", str(AUTH_APP), "--data", str(srv.data_dir)]

    reactor(
        "run", "notes:add", '{"body": "while-serving"}', "--url", srv.url, "--admin-key", key
    ).ok()

    for argv in (("run", "notes:bodies"), ("env", "list"), ("env", "set", "LOCAL_VAR", "x")):
        refused = reactor(*argv, *local).failed()
        assert "in use by another Reactor process" in refused.stderr, refused.describe()
        assert "--url" in refused.stderr
    srv.assert_alive()

    srv.stop()
    assert reactor("run", "notes:bodies", *local).json() == ["while-serving"]
    added = reactor("run", "notes:add", '{"body": "offline"}', *local).json()
    assert added == {"added": "offline", "count": 2.0}
    reactor("env", "set", "LOCAL_VAR", "from local mode", *local).ok()
    assert "LOCAL_VAR=from local mode" in reactor("env", "list", *local).ok().stdout
    assert reactor("env", "get", "LOCAL_VAR", *local).ok().stdout.strip() == "from local mode"
    # Functions run locally read the variable too.
    assert reactor("run", "env:get", '{"name": "LOCAL_VAR"}', *local).json() == "from local mode"
    reactor("env", "remove", "LOCAL_VAR", *local).ok()
    reactor("env", "set", "KEPT_VAR", "kept", *local).ok()
    reactor("env", "get", "LOCAL_VAR", *local).failed()

    # The server sees everything done offline.
    srv.start()
    assert http_query(srv, "notes:bodies") == ["while-serving", "offline"]
    assert http_query(srv, "env:get", {"name": "KEPT_VAR"}) == "kept"
    assert http_query(srv, "env:get", {"name": "LOCAL_VAR"}) is None
    # The admin key is unchanged by local mode.
    reactor("run", "whoami:secret", "--url", srv.url, "--admin-key", key).ok()


def test_rotate_admin_key_replaces_the_old_one(tmp_path: Path) -> None:
    import subprocess
    import sys

    data = tmp_path / "data"
    first = tmp_path / "k1"
    second = tmp_path / "k2"
    for key_file in (first, second):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "reactor",
                "rotate-admin-key",
                "--data",
                str(data),
                "--admin-key-file",
                str(key_file),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    old, new = first.read_text().strip(), second.read_text().strip()
    assert old != new and new.startswith("reactor-admin|")

    from reactor.auth.authenticator import Authenticator
    from reactor.storage import open_storage

    persistence = open_storage(None, data)
    try:
        auth = Authenticator([], persistence)
        assert asyncio.run(auth.is_admin_key(new)) and not asyncio.run(auth.is_admin_key(old))
    finally:
        asyncio.run(persistence.aclose())


ENV_APP = {
    "settings.py": """
        from functions import env, query

        GREETING = env.get("GREETING", "unset")  # module-level code, run when the app loads

        @query
        async def greeting(ctx):
            return GREETING
    """,
}


def test_module_code_reads_the_variables_set_with_reactor_env(
    app_server_factory: Callable[..., ReactorServer], tmp_path: Path
) -> None:
    from reactor.testing import write_app

    app = write_app(tmp_path / "env_app", ENV_APP)
    srv = app_server_factory(app)
    key = srv.wait_admin_key()
    assert http_query(srv, "settings:greeting") == "unset"

    # Set offline: the server reads the stored variables before it loads the app.
    srv.stop()
    local = ["--app", str(app), "--data", str(srv.data_dir)]
    reactor("env", "set", "GREETING", "set offline", *local).ok()
    srv.start()
    assert http_query(srv, "settings:greeting") == "set offline"

    # Set on the running server: it re-loads the app under the new values.
    reactor("env", "set", "GREETING", "set live", "--url", srv.url, "--admin-key", key).ok()
    assert http_query(srv, "settings:greeting") == "set live"
    assert "GREETING" not in os.environ
