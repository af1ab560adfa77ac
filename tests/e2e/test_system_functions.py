"""System functions (``_system/...``) on a real ``reactor serve``: callable with the admin key
through every HTTP route that runs functions and over the websocket (live, as the dashboard
subscribes to them), refused to everyone else with a clear error."""

from __future__ import annotations

import uuid
from collections.abc import Callable
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
