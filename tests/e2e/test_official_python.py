"""The official PyPI `convex` client (0.8.1) against a running Reactor server.

The client's blocking calls hold the GIL and some of them (subscribe, next) ignore signals
(PROTOCOL.md trap 15), so every scenario runs in a child Python process with a timeout:
this file doubles as that child's script (`python test_official_python.py <scenario> <url>`).
The child prints JSON lines; values JSON cannot carry are tagged by `tag()`:
ConvexInt64 -> {"$int64": "5"}, bytes -> {"$bytes": "<hex>"}, NaN/±inf/-0.0 -> {"$float": ..},
a Python int (which the client should never produce) -> {"$pyint": n}.
"""

from __future__ import annotations

import json
import math
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # conftest is pytest's to import; its classes serve as types only
    from .conftest import ScriptResult, StreamingChild

THIS = Path(__file__).resolve()


# --- child side -------------------------------------------------------------------------


def tag(value: Any) -> Any:
    from convex import ConvexInt64

    if isinstance(value, ConvexInt64):
        return {"$int64": str(value.value)}
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return {"$pyint": value}
    if isinstance(value, float):
        if math.isnan(value):
            return {"$float": "nan"}
        if math.isinf(value):
            return {"$float": "inf" if value > 0 else "-inf"}
        if value == 0 and math.copysign(1.0, value) < 0:
            return {"$float": "-0.0"}
        return value
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, list):
        return [tag(v) for v in value]
    if isinstance(value, dict):
        return {k: tag(v) for k, v in sorted(value.items())}
    return {"$unexpected": type(value).__name__, "repr": repr(value)}


def describe(exc: BaseException) -> dict[str, Any]:
    from convex import ConvexError

    out: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    out["isConvexError"] = isinstance(exc, ConvexError)
    if isinstance(exc, ConvexError):
        out["data"] = tag(exc.data)
    return out


def outcome(fn: Any, *args: Any) -> dict[str, Any]:
    try:
        return {"ok": True, "value": tag(fn(*args))}
    except Exception as exc:
        return {"ok": False, "error": describe(exc)}


def emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def child_basic(url: str) -> dict[str, Any]:
    from convex import ConvexClient

    client = ConvexClient(url)
    channel = unique("py")
    name = unique("pyctr")
    before = client.query("messages:list", {"channel": channel})
    msg_id = client.mutation("messages:send", {"channel": channel, "body": "hello"})
    client.mutation("messages:send", {"channel": channel, "body": "world"})
    listed = client.query("messages:list", {"channel": channel})
    return {
        "before": tag(before),
        "idType": type(msg_id).__name__,
        "bodies": tag(client.query("messages:bodies", {"channel": channel})),
        "listedBodies": [m["body"] for m in listed],
        "oldestIdMatches": listed[-1]["_id"] == msg_id,
        "creationTimeType": type(listed[0]["_creationTime"]).__name__,
        "counts": tag([client.mutation("counter:increment", {"name": name}) for _ in range(3)]),
        "final": tag(client.query("counter:get", {"name": name})),
        "defaultBare": tag(client.query("messages", {"channel": channel})),
        "defaultExplicit": tag(client.query("messages:default", {"channel": channel})),
    }


def child_errors(url: str) -> dict[str, Any]:
    from convex import ConvexClient

    client = ConvexClient(url)
    channel = unique("pyerr")
    name = unique("pyint")
    return {
        "channel": channel,
        "mutationAppError": outcome(
            client.mutation, "errors:mutation_app_error", {"channel": channel}
        ),
        "emptyBody": outcome(client.mutation, "messages:send", {"channel": channel, "body": ""}),
        "queryAppError": outcome(client.query, "errors:query_app_error"),
        "queryCrash": outcome(client.query, "errors:query_crash"),
        "mutationCrash": outcome(client.mutation, "errors:mutation_crash", {"channel": channel}),
        "internalQuery": outcome(client.query, "errors:secret"),
        "internalMutation": outcome(client.mutation, "counter:internal_bump", {"name": name}),
        "bodiesAfter": outcome(client.query, "messages:bodies", {"channel": channel}),
        "counterAfter": outcome(client.query, "counter:get", {"name": name}),
        "stillWorks": outcome(client.mutation, "counter:increment", {"name": name}),
    }


def _payload() -> dict[str, Any]:
    from convex import ConvexInt64

    return {
        "big": ConvexInt64(5),
        "min": ConvexInt64(-(2**63)),
        "max": ConvexInt64(2**63 - 1),
        "bytes": b"\x00\x01\xfe\xff",
        "empty": b"",
        "nan": float("nan"),
        "inf": float("inf"),
        "negzero": -0.0,
        "float": 1.5,
        "int": 3,  # the client sends Python ints as float64
        "nested": {"list": [ConvexInt64(7), b"\x09", float("nan"), "s", True, None]},
    }


def child_values(url: str) -> dict[str, Any]:
    from convex import ConvexClient, ConvexInt64

    client = ConvexClient(url)
    payload = _payload()
    typed_args = {"n": ConvexInt64(41), "b": b"\x01\x02\x03", "f": float("nan")}
    return {
        "payload": tag(payload),
        "query": outcome(client.query, "echo:args", payload),
        "mutation": outcome(client.mutation, "echo:mutate", payload),
        "typed": outcome(client.query, "echo:typed", typed_args),
        "typedMutation": outcome(
            client.mutation, "echo:typed_mutation", {"n": ConvexInt64(21), "b": b"hi"}
        ),
        "wrongType": outcome(client.query, "echo:typed", {"n": 41, "b": b"\x01", "f": 1.0}),
    }


def child_legacy_http(url: str) -> dict[str, Any]:
    from convex import ConvexInt64
    from convex.http_client import ConvexHttpClient

    client = ConvexHttpClient(url)
    channel = unique("pyhttp")
    name = unique("pyhctr")
    payload = _payload()
    return {
        "before": outcome(client.query, "messages:bodies", {"channel": channel}),
        "send": outcome(client.mutation, "messages:send", {"channel": channel, "body": "legacy"}),
        "after": outcome(client.query, "messages:bodies", {"channel": channel}),
        "counts": [outcome(client.mutation, "counter:increment", {"name": name}) for _ in range(2)],
        "default": outcome(client.query, "messages", {"channel": channel}),
        "values": outcome(client.query, "echo:args", payload),
        "payload": tag(payload),
        "typed": outcome(
            client.query,
            "echo:typed",
            {"n": ConvexInt64(41), "b": b"\x01\x02\x03", "f": float("nan")},
        ),
        "mutationAppError": outcome(
            client.mutation, "errors:mutation_app_error", {"channel": channel}
        ),
        "queryAppError": outcome(client.query, "errors:query_app_error"),
        "queryCrash": outcome(client.query, "errors:query_crash"),
        "internalQuery": outcome(client.query, "errors:secret"),
        "afterErrors": outcome(client.query, "messages:bodies", {"channel": channel}),
    }


def child_subscriber(url: str, channel: str) -> None:
    """Prints the initial result, then every further result until it differs."""
    from convex import ConvexClient

    client = ConvexClient(url)
    sub = client.subscribe("messages:bodies", {"channel": channel})
    first = next(sub)
    emit({"event": "initial", "value": tag(first)})
    for _ in range(10):
        value = next(sub)
        emit({"event": "update", "value": tag(value)})
        if value != first:
            break
    emit({"event": "done"})


def child_send(url: str, channel: str, body: str) -> None:
    from convex import ConvexClient

    client = ConvexClient(url)
    emit(
        {
            "event": "sent",
            "value": tag(client.mutation("messages:send", {"channel": channel, "body": body})),
        }
    )


CHILD_SCENARIOS = {
    "basic": child_basic,
    "errors": child_errors,
    "values": child_values,
    "legacy_http": child_legacy_http,
}


def child_main(argv: list[str]) -> int:
    scenario, url, *rest = argv
    if scenario == "subscriber":
        child_subscriber(url, *rest)
    elif scenario == "send":
        child_send(url, *rest)
    else:
        emit(CHILD_SCENARIOS[scenario](url))
    sys.stdout.flush()
    # The native client's background threads can delay interpreter shutdown.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))


# --- pytest side ------------------------------------------------------------------------


def run_child(run_python: Callable[..., ScriptResult], url: str, scenario: str) -> dict[str, Any]:
    result: dict[str, Any] = run_python(THIS, scenario, url, timeout=40).json()
    return result


def ok(result: dict[str, Any]) -> Any:
    assert result["ok"], result
    return result["value"]


def failed(result: dict[str, Any]) -> dict[str, Any]:
    assert not result["ok"], result
    error: dict[str, Any] = result["error"]
    return error


def test_query_mutation_and_default_export(
    run_python: Callable[..., ScriptResult], server_url: str
) -> None:
    r = run_child(run_python, server_url, "basic")
    assert r["before"] == []
    assert r["idType"] == "str"
    assert r["bodies"] == ["hello", "world"]
    assert r["listedBodies"] == ["world", "hello"]
    assert r["oldestIdMatches"] is True
    assert r["creationTimeType"] == "float"
    # float64 results come back as Python floats.
    assert r["counts"] == [1.0, 2.0, 3.0]
    assert r["final"] == 3.0
    assert r["defaultBare"]["kind"] == "default"
    assert r["defaultBare"]["count"] == 2.0
    assert r["defaultExplicit"] == r["defaultBare"]


def test_convex_error_data_and_server_errors(
    run_python: Callable[..., ScriptResult], server_url: str
) -> None:
    r = run_child(run_python, server_url, "errors")
    err = failed(r["mutationAppError"])
    assert err["type"] == "ConvexError"
    assert err["data"] == {"code": "MUTATION_REJECTED", "channel": r["channel"]}
    err = failed(r["emptyBody"])
    assert err["type"] == "ConvexError"
    assert err["data"] == {"code": "EMPTY", "channel": r["channel"]}
    err = failed(r["queryAppError"])
    assert err["type"] == "ConvexError"
    assert err["data"] == {"code": "QUERY_REJECTED", "detail": {"limit": 3.0, "tags": ["a", "b"]}}
    for key in ("queryCrash", "mutationCrash"):
        err = failed(r[key])
        assert err["isConvexError"] is False, (key, err)
        assert "Server Error" in err["message"], (key, err)
    for key in ("internalQuery", "internalMutation"):
        err = failed(r[key])
        assert err["isConvexError"] is False, (key, err)
    # Failed mutations were rolled back, the internal mutation never ran, the client still works.
    assert ok(r["bodiesAfter"]) == []
    assert ok(r["counterAfter"]) == 0.0
    assert ok(r["stillWorks"]) == 1.0


def test_int64_bytes_nan_round_trips(
    run_python: Callable[..., ScriptResult], server_url: str
) -> None:
    r = run_child(run_python, server_url, "values")
    payload = r["payload"]
    assert payload["big"] == {"$int64": "5"}
    # The client turns Python ints into float64 before sending.
    expected = dict(payload, int=3.0)
    assert ok(r["query"]) == expected
    assert ok(r["mutation"]) == expected
    assert ok(r["typed"]) == {
        "n": {"$int64": "41"},
        "b": {"$bytes": "010203"},
        "f": {"$float": "nan"},
        "nPlusOne": {"$int64": "42"},
        "nIsInt64": True,
        "bIsBytes": True,
        "bLength": 3.0,
        "bReversed": {"$bytes": "030201"},
        "fIsNan": True,
    }
    assert ok(r["typedMutation"]) == {"n": {"$int64": "42"}, "b": {"$bytes": b"hi!".hex()}}
    err = failed(r["wrongType"])  # a float where v.int64() is declared
    assert err["isConvexError"] is False


def test_legacy_http_client(run_python: Callable[..., ScriptResult], server_url: str) -> None:
    r = run_child(run_python, server_url, "legacy_http")
    assert ok(r["before"]) == []
    assert isinstance(ok(r["send"]), str)
    assert ok(r["after"]) == ["legacy"]
    # The legacy client rejects JSON integers: float64 must be serialised as 1.0 (trap 8).
    assert [ok(c) for c in r["counts"]] == [1.0, 2.0]
    default = ok(r["default"])
    assert default["kind"] == "default" and default["count"] == 1.0
    assert ok(r["values"]) == dict(r["payload"], int=3.0)
    typed = ok(r["typed"])
    assert typed["nPlusOne"] == {"$int64": "42"}
    assert typed["fIsNan"] is True
    # ConvexError carries the raw errorData (undecoded JSON) in the legacy client.
    err = failed(r["mutationAppError"])
    assert err["type"] == "ConvexError"
    assert err["data"]["code"] == "MUTATION_REJECTED"
    err = failed(r["queryAppError"])
    assert err["type"] == "ConvexError"
    assert err["data"] == {"code": "QUERY_REJECTED", "detail": {"limit": 3.0, "tags": ["a", "b"]}}
    for key in ("queryCrash", "internalQuery"):
        err = failed(r[key])
        # Function-level failures are HTTP 200 {"status":"error"} -> ConvexExecutionError;
        # anything else would surface as a plain Exception("<status> <code>: ...").
        assert err["type"] == "ConvexExecutionError", (key, err)
    assert "Server Error" in failed(r["queryCrash"])["message"]
    assert ok(r["afterErrors"]) == ["legacy"]


def test_subscription_receives_update_from_another_process(
    run_python: Callable[..., ScriptResult], server_url: str, spawn: Callable[..., StreamingChild]
) -> None:
    channel = unique("pysub")
    subscriber = spawn([sys.executable, str(THIS), "subscriber", server_url, channel])
    assert subscriber.next_event(20) == {"event": "initial", "value": []}
    sent = run_python(THIS, "send", server_url, channel, "ping", timeout=30).json()
    assert isinstance(sent["value"], str)
    subscriber.wait_for(lambda e: e["event"] == "done", 20)
    updates = [e["value"] for e in subscriber.events if e["event"] == "update"]
    assert updates and updates[-1] == ["ping"], subscriber.describe()
    assert all(u in ([], ["ping"]) for u in updates), updates
    assert subscriber.wait(10) == 0, subscriber.describe()
