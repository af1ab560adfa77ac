"""The official, unmodified `convex` npm client (1.48.0) against a running Reactor server.

The Node scripts live in tests/js; each prints one JSON document that these tests assert on.
Values that JSON cannot carry are tagged by tests/js/lib.mjs `tag()`:
bigint -> {"$bigint": "5"}, ArrayBuffer -> {"$bytes": [..]}, NaN/±Infinity/-0 -> {"$number": ..}.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # conftest is pytest's to import; its classes serve as types only
    from .conftest import ReactorServer, ScriptResult

FATAL_MARKERS = (
    "[CONVEX FATAL ERROR]",
    "Invalid start version",
    "UNCAUGHT EXCEPTION",
    "UNHANDLED REJECTION",
)
TASKBOARD = Path(__file__).resolve().parents[2] / "examples" / "taskboard"


@pytest.fixture(scope="module")
def scenarios_run(
    run_node: Callable[..., ScriptResult], reactor_server: ReactorServer
) -> ScriptResult:
    """All scenarios of tests/js/scenarios.mjs, run concurrently in one Node process."""
    return run_node("scenarios.mjs", reactor_server.url, timeout=100)


def scenario(scenarios_run: ScriptResult, name: str) -> Any:
    out = scenarios_run.json()
    entry = out["scenarios"][name]
    assert entry["ok"], f"scenario {name} failed: {entry['error']}\n{entry.get('stack')}"
    return entry["result"]


def is_rejection(err: dict[str, Any]) -> bool:
    return not err.get("resolved") and "message" in err


def test_node_client_never_crashes(scenarios_run: ScriptResult) -> None:
    # A FatalError, a bad Transition or any protocol violation throws inside the ws message
    # handler and kills the Node process (PROTOCOL.md §5.5, §6.1, trap 1).
    assert scenarios_run.returncode == 0, scenarios_run.describe()
    for marker in FATAL_MARKERS:
        assert marker not in scenarios_run.stderr, scenarios_run.describe()
    out = scenarios_run.json()
    failed = {n: r["error"] for n, r in out["scenarios"].items() if not r["ok"]}
    assert set(out["scenarios"]) == set(out["names"])
    assert not failed, failed


def test_onupdate_receives_initial_result_and_updates_from_other_clients(
    scenarios_run: ScriptResult,
) -> None:
    r = scenario(scenarios_run, "subscription")
    assert r["initial"] == []
    assert r["afterHttpBodies"] == ["from http"]
    assert r["afterWsBodies"] == ["from ws", "from http"]  # by_channel, order("desc")
    assert r["httpIdType"] == "string" and r["wsIdType"] == "string"
    assert r["idsMatchDocs"] is True
    assert r["creationTimeTypes"] == ["number", "number"]
    assert r["creationTimeOrdered"] is True
    assert r["subscriptionErrors"] == []


def test_mutation_resolves_after_own_subscription_reflects_it(scenarios_run: ScriptResult) -> None:
    r = scenario(scenarios_run, "readYourWrites")
    assert r["results"] == [
        {"idType": "string", "bodiesAtResolve": ["one"], "idVisibleAtResolve": True},
        {"idType": "string", "bodiesAtResolve": ["two", "one"], "idVisibleAtResolve": True},
        {
            "idType": "string",
            "bodiesAtResolve": ["three", "two", "one"],
            "idVisibleAtResolve": True,
        },
    ]
    assert r["oneShot"] == ["one", "two", "three"]


def test_concurrent_mutations_from_one_client_apply_in_order(scenarios_run: ScriptResult) -> None:
    r = scenario(scenarios_run, "counter")
    assert r["returned"] == [1, 2, 3, 4, 5]
    assert r["final"] == 5


def test_convex_error_data_from_mutations_and_queries(scenarios_run: ScriptResult) -> None:
    r = scenario(scenarios_run, "convexErrors")
    for key in ("mutationError", "httpMutationError"):
        err = r[key]
        assert is_rejection(err), (key, err)
        assert err["isConvexError"] is True, (key, err)
        assert err["data"]["code"] == "MUTATION_REJECTED", (key, err)
        assert err["data"]["channel"].startswith("err-"), (key, err)
        assert set(err["data"]) == {"code", "channel"}, (key, err)
    assert r["emptyBody"]["isConvexError"] is True
    assert r["emptyBody"]["data"]["code"] == "EMPTY"
    query_data = {"code": "QUERY_REJECTED", "detail": {"limit": 3, "tags": ["a", "b"]}}
    for key in ("queryError", "subscriptionError", "httpQueryError"):
        err = r[key]
        assert is_rejection(err), (key, err)
        assert err["isConvexError"] is True, (key, err)
        assert err["data"] == query_data, (key, err)
    # The failed mutations' inserts were rolled back; the client still works afterwards.
    assert r["bodiesAfter"] == []
    assert r["stillWorksIdType"] == "string"


def test_plain_exceptions_reach_clients_as_server_error_without_data(
    scenarios_run: ScriptResult,
) -> None:
    r = scenario(scenarios_run, "serverErrors")
    for key in ("queryError", "mutationError", "httpQueryError", "httpMutationError"):
        err = r[key]
        assert is_rejection(err), (key, err)
        assert "Server Error" in err["message"], (key, err)
        assert err["isConvexError"] is False, (key, err)
        assert err["hasData"] is False, (key, err)
    assert r["bodiesAfter"] == []


def test_int64_bytes_nan_round_trip_through_args_and_results(scenarios_run: ScriptResult) -> None:
    r = scenario(scenarios_run, "values")
    payload = r["payload"]
    assert payload["big"] == {"$bigint": "5"}  # sanity of the tagging itself
    for key in ("wsQuery", "wsMutation", "httpQuery", "httpMutation"):
        assert r[key] == payload, key
    expected_typed = {
        "n": {"$bigint": "41"},
        "b": {"$bytes": [1, 2, 3]},
        "f": {"$number": "NaN"},
        "nPlusOne": {"$bigint": "42"},
        "nIsInt64": True,
        "bIsBytes": True,
        "bLength": 3,
        "bReversed": {"$bytes": [3, 2, 1]},
        "fIsNan": True,
    }
    assert r["typed"] == expected_typed
    assert r["typedHttp"] == expected_typed
    assert r["typedMutation"] == {"n": {"$bigint": "42"}, "b": {"$bytes": [104, 105, 33]}}
    # A JS number where v.int64() is declared is rejected by argument validation.
    assert is_rejection(r["wrongType"]), r["wrongType"]
    assert r["wrongType"]["isConvexError"] is False


def test_default_export_paths(scenarios_run: ScriptResult) -> None:
    r = scenario(scenarios_run, "defaultExport")
    first = r["byReference"]
    assert first["kind"] == "default"
    assert first["count"] == 1
    assert first["channel"].startswith("dflt-")
    for key in ("byString", "byExplicitDefault", "byAnyApi", "httpBare", "httpExplicit"):
        assert r[key] == first, key


def test_convex_http_client_query_and_mutation(scenarios_run: ScriptResult) -> None:
    r = scenario(scenarios_run, "httpClient")
    assert r["before"] == []
    assert r["after"] == ["via http", "via http 2"]
    assert r["idTypes"] == ["string", "string"]
    assert r["listedIds"] == r["ids"]
    assert r["counts"] == [1, 2, 3]
    assert r["final"] == 3
    assert is_rejection(r["missing"])
    assert r["missing"]["isConvexError"] is False


def test_internal_functions_are_not_callable(scenarios_run: ScriptResult) -> None:
    r = scenario(scenarios_run, "internalFunctions")
    for key in ("wsQuery", "wsMutation", "httpQuery", "httpMutation"):
        err = r[key]
        assert is_rejection(err), (key, err)
        assert err["isConvexError"] is False, (key, err)
    assert r["counter"] == 0


def test_react_use_query_rerenders_on_changes(
    run_node: Callable[..., ScriptResult], reactor_server: ReactorServer
) -> None:
    run = run_node("react_usequery.mjs", reactor_server.url, timeout=60)
    out = run.json()
    assert run.returncode == 0
    for marker in FATAL_MARKERS:
        assert marker not in run.stderr, run.describe()
    assert out["initial"] == {"bodies": [], "count": 0}
    assert out["idType"] == "string"
    assert out["afterOwnMutation"] == {"bodies": ["mine"], "count": 1}
    assert out["afterOtherMutation"] == {"bodies": ["mine", "theirs"], "count": 2}
    assert out["items"] == ["mine", "theirs"]
    # Rendered data never goes backwards (each render is a consistent, newer snapshot).
    lengths = [len(r["bodies"]) for r in out["renders"] if r["bodies"] is not None]
    assert lengths == sorted(lengths), out["renders"]
    assert out["renders"][0] == {"bodies": None, "count": None}  # loading state first


def test_react_use_paginated_query_across_tabs_with_different_journals(
    run_node_on: Callable[..., ScriptResult], app_server_factory: Callable[..., ReactorServer]
) -> None:
    server = app_server_factory(TASKBOARD)
    run = run_node_on(server, "react_paginated.mjs", server.url, timeout=60)
    out = run.json()
    for marker in FATAL_MARKERS:
        assert marker not in run.stderr, run.describe()
    assert out["consoleErrors"] == [] and out["tabB"]["consoleErrors"] == []
    assert out["firstPage"] == {"status": "CanLoadMore", "titles": ["t5", "t4"]}
    # Three tasks added at the top land inside tab A's first page, which grows.
    assert out["grown"]["titles"] == ["n3", "n2", "n1", "t5", "t4", "t3", "t2"]
    # A reloaded tab sends the same arguments without a journal: a fresh first page of 2,
    # not tab A's grown one; its loadMore continues right after it.
    assert out["tabB"]["firstPage"] == {"status": "CanLoadMore", "titles": ["n3", "n2"]}
    assert out["tabB"]["afterLoadMore"] == {
        "status": "CanLoadMore",
        "titles": ["n3", "n2", "n1", "t5"],
    }
    # Tab A kept its pages while B came and went, and its loadMore reaches the end.
    assert out["afterTabB"]["titles"] == out["grown"]["titles"]
    assert out["exhausted"]["titles"] == ["n3", "n2", "n1", "t5", "t4", "t3", "t2", "t1"]
    assert out["exhausted"]["status"] == "Exhausted"


@pytest.mark.parametrize(
    ("delay", "kill_after_ms"),
    [
        # The server commits (~0.3 s) before the client's reconnect (≥0.5 s backoff): the
        # resent mutation must be answered from the (sessionId, requestId) record.
        (0.3, 100),
        # The resend arrives while the first execution is still sleeping: the two must
        # still produce exactly one increment.
        (2.5, 100),
    ],
    ids=["resend-after-commit", "resend-during-execution"],
)
def test_dropped_connection_mid_mutation_applies_once(
    run_node: Callable[..., ScriptResult],
    reactor_server: ReactorServer,
    delay: float,
    kill_after_ms: int,
) -> None:
    run = run_node(
        "dropped_connection.mjs",
        reactor_server.url,
        "--delay",
        str(delay),
        "--kill-after",
        str(kill_after_ms),
        timeout=45,
    )
    out = run.json()
    for marker in FATAL_MARKERS:
        assert marker not in run.stderr, run.describe()
    # Preconditions: the socket really died while the mutation was in flight.
    assert out["before"] == 0
    assert out["settledBeforeKill"] is False, out
    assert out["mutationResponsesBeforeKill"] == 0, out
    assert out["killedSockets"] >= 2, out
    assert out["connectionsAfter"] > out["connectionsBefore"], out  # it reconnected
    # The mutation resolved once, with the value of its single application.
    assert out["result"] == {"ok": True, "value": 1}, out
    assert out["final"] == 1, out
    assert out["viaClient"] == 1, out
