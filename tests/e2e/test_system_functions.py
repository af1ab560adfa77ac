"""System functions (``_system/...``) on a real ``reactor serve``: callable with the admin key
through every HTTP route that runs functions and over the websocket (live, as the dashboard
subscribes to them), refused to everyone else with a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:  # conftest is pytest's to import; its classes serve as types only
    from .conftest import ReactorServer, ScriptResult

PAGE = {"paginationOpts": {"numItems": 100, "cursor": None}}


def post(
    server: ReactorServer, route: str, body: dict[str, Any], *, admin: bool = True
) -> dict[str, Any]:
    headers = {"Authorization": f"Convex {server.admin_key}"} if admin else {}
    response = httpx.post(server.url + route, json=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def table_names(answer: dict[str, Any]) -> list[str]:
    assert answer["status"] == "success", answer
    assert answer["value"]["isDone"] is True
    return [table["name"] for table in answer["value"]["page"]]


@pytest.mark.parametrize("route", ["/api/query", "/api/function"])
def test_a_system_query_answers_the_admin_over_http(
    reactor_server: ReactorServer, route: str
) -> None:
    answer = post(reactor_server, route, {"path": "_system/cli/tables", "args": PAGE})
    names = table_names(answer)
    assert {"messages", "counters"} <= set(names)
    assert not any(name.startswith("_") for name in names)


def test_run_route_reaches_system_functions(reactor_server: ReactorServer) -> None:
    answer = post(reactor_server, "/api/run/_system/cli/tables/default", {"args": PAGE})
    assert "messages" in table_names(answer)


@pytest.mark.parametrize(
    "route", ["/api/query", "/api/function", "/api/run/_system/cli/tables/default"]
)
def test_without_the_admin_key_a_system_function_is_not_found(
    reactor_server: ReactorServer, route: str
) -> None:
    body = {"path": "_system/cli/tables", "args": PAGE}
    answer = post(reactor_server, route, body, admin=False)
    assert answer["status"] == "error"
    assert (
        "Could not find public function for '_system/cli/tables:default'"
        in (answer["errorMessage"])
    )
    assert "admin key" in answer["errorMessage"]
    assert "value" not in answer


def test_system_functions_are_checked_for_kind_and_existence(
    reactor_server: ReactorServer,
) -> None:
    wrong_kind = post(reactor_server, "/api/mutation", {"path": "_system/cli/tables", "args": PAGE})
    assert wrong_kind["status"] == "error"
    assert "as Mutation, but it is defined as Query" in wrong_kind["errorMessage"]
    missing = post(reactor_server, "/api/query", {"path": "_system/cli/nope", "args": {}})
    assert missing["errorMessage"] == "Could not find function for '_system/cli/nope:default'."


def test_system_function_arguments_are_validated(reactor_server: ReactorServer) -> None:
    answer = post(
        reactor_server,
        "/api/query",
        {"path": "_system/cli/tableData", "args": {"table": "messages", "order": "sideways"}},
    )
    assert answer["status"] == "error"
    assert "order" in answer["errorMessage"], answer


def test_table_data_pages_through_documents_in_order(reactor_server: ReactorServer) -> None:
    channel = f"sys-{uuid.uuid4().hex[:8]}"
    for body in ("one", "two", "three"):
        sent = post(
            reactor_server,
            "/api/mutation",
            {"path": "messages:send", "args": {"channel": channel, "body": body}},
        )
        assert sent["status"] == "success", sent
    seen: list[str] = []
    cursor = None
    while True:
        answer = post(
            reactor_server,
            "/api/query",
            {
                "path": "_system/cli/tableData",
                "args": {
                    "table": "messages",
                    "order": "desc",
                    "paginationOpts": {"numItems": 2, "cursor": cursor},
                },
            },
        )
        assert answer["status"] == "success", answer
        page = answer["value"]
        assert len(page["page"]) <= 2
        seen += [doc["body"] for doc in page["page"] if doc["channel"] == channel]
        if page["isDone"]:
            break
        cursor = page["continueCursor"]
    assert seen == ["three", "two", "one"]


def test_a_system_query_is_live_over_the_websocket(
    reactor_server: ReactorServer, run_node: Callable[..., ScriptResult]
) -> None:
    channel = f"live-{uuid.uuid4().hex[:8]}"
    out = run_node("system_live.mjs", reactor_server.url, reactor_server.admin_key, channel).json()
    assert out["first"] == []
    assert out["after"] == ["live"]
    assert (
        "Could not find public function for '_system/cli/tableData:default'"
        in (out["anonymousError"])
    )


def test_reactor_run_calls_system_functions_locally_and_remotely(
    reactor_server: ReactorServer, tmp_path: Path
) -> None:
    args = json.dumps(PAGE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REACTOR_")}
    app = Path(__file__).resolve().parent / "app"
    local = subprocess.run(
        [sys.executable, "-m", "reactor", "run", "_system/cli/tables", args]
        + ["--app", str(app), "--data", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert local.returncode == 0, local.stderr
    assert {"messages", "counters"} <= {t["name"] for t in json.loads(local.stdout)["page"]}
    remote = subprocess.run(
        [sys.executable, "-m", "reactor", "run", "_system/cli/tables", args]
        + ["--url", reactor_server.url, "--admin-key", reactor_server.admin_key],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert remote.returncode == 0, remote.stderr
    assert "messages" in {t["name"] for t in json.loads(remote.stdout)["page"]}
