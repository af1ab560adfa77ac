"""The dashboard, end to end: real headless Chromium (Debian's ``chromium``, driven by
``playwright-core`` from tests/js/dashboard.mjs) against a real ``reactor serve``, with the
official ``convex`` client writing and watching from outside; and the HTTP and websocket
refusals of its system functions for callers without the admin key.

The browser checks run once per module, in one browser session (tests/js/dashboard.mjs, a few
seconds); each test below asserts on one of them. Screenshots of each page are written to a
temporary directory, and to docs/images/ when ``REACTOR_UPDATE_SCREENSHOTS=1`` is set (how the
committed ones were made).
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import struct
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reactor.operations import dashboard_functions
from reactor.operations.system_functions import SystemFunctions
from tests.e2e.conftest import JS_DIR, ROOT, ReactorServer, ScriptResult

APP_DIR = Path(__file__).resolve().parent / "dashboard_app"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "docs" / "images"


@pytest.fixture(scope="module")
def server(app_server_factory: Callable[..., ReactorServer]) -> ReactorServer:
    srv = app_server_factory(APP_DIR)
    srv.wait_admin_key()
    return srv


@pytest.fixture(scope="module")
def browser_checks(
    server: ReactorServer,
    run_node_on: Callable[..., ScriptResult],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make install does)")
    shots = tmp_path_factory.mktemp("screenshots")
    result = run_node_on(
        server,
        "dashboard.mjs",
        server.url,
        str(server.admin_key_file),
        str(shots),
        json.dumps(_system_functions()),
        timeout=150,
    )
    checks: dict[str, Any] = result.json()["checks"]
    if os.environ.get("REACTOR_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for shot in shots.glob("dashboard-*.png"):
            shutil.copy(shot, SCREENSHOTS / shot.name)
    return checks


def passed(checks: dict[str, Any], name: str) -> Any:
    check = checks[name]
    assert check["ok"], f"{name} failed: {json.dumps(check, indent=2)}"
    return check["result"]


# -- in the browser ---------------------------------------------------------------------------


def test_wrong_admin_key_is_refused(browser_checks: dict[str, Any]) -> None:
    result = passed(browser_checks, "wrong_key_refused")
    assert result["error"].startswith("That admin key was refused")
    assert result["navVisible"] is False
    assert result["sessionStorage"] == "{}"  # nothing kept of a refused key


def test_login_keeps_the_key_in_session_storage_only(browser_checks: dict[str, Any]) -> None:
    result = passed(browser_checks, "login")
    assert result["keyStored"] is True
    assert result["urls"] == []
    assert result["url"].endswith("/dashboard/")
    leaks = passed(browser_checks, "key_never_in_a_url")
    assert leaks["requests"] > 5 and leaks["leaked"] == []


def test_no_script_error_and_nothing_blocked_by_the_content_security_policy(
    browser_checks: dict[str, Any],
) -> None:
    errors = passed(browser_checks, "key_never_in_a_url")["consoleErrors"]
    assert [e for e in errors if "pageerror" in e or "Content Security Policy" in e] == []
    assert not any("404" in e for e in errors), errors


def test_data_lists_the_tables(browser_checks: dict[str, Any]) -> None:
    assert passed(browser_checks, "tables_listed")["names"] == ["notes", "tasks"]


def test_a_document_inserted_by_another_client_shows_within_a_second(
    browser_checks: dict[str, Any],
) -> None:
    result = passed(browser_checks, "live_insert")
    assert result["onScreenMs"] < 1000
    assert (result["countBefore"], result["countAfter"]) == ("0", "1")


def test_an_edit_the_schema_rejects_shows_the_error_at_its_path_and_writes_nothing(
    browser_checks: dict[str, Any],
) -> None:
    result = passed(browser_checks, "invalid_edit_refused")
    assert "Expected `number`, got `string`" in result["error"]
    assert "at `$.priority`" in result["error"]
    assert result["storedPriority"] == 2


def test_a_valid_edit_reaches_a_subscribed_official_client(browser_checks: dict[str, Any]) -> None:
    result = passed(browser_checks, "valid_edit_seen")
    assert result["title"].endswith("-renamed")
    assert (result["priority"], result["done"]) == (5, False)


def test_running_an_internal_mutation_from_functions_changes_data(
    browser_checks: dict[str, Any],
) -> None:
    result = passed(browser_checks, "internal_mutation_run")
    assert result["kind"] == "mutation · internal"
    assert result["validators"] == ["{ title: string }", "any"]
    assert result["result"] == "1"
    assert "completing tasks titled" in result["logs"]
    assert result["duration"].startswith("success in ")
    assert result["done"] is True


def test_run_as_a_user_identity_and_keep_a_query_open_as_a_live_view(
    browser_checks: dict[str, Any],
) -> None:
    result = passed(browser_checks, "run_as_user_and_live_view")
    assert (result["asAdmin"], result["asUser"]) == ("null", '"user-7"')
    # 2**53 + 1, doubled: no precision lost on the way in or out
    assert result["doubled"] == {"n": {"$int64": "18014398509481986"}, "size": 3}
    assert result["liveMs"] < 5000


def test_a_failing_call_appears_in_logs_with_its_request_id(
    browser_checks: dict[str, Any],
) -> None:
    result = passed(browser_checks, "failed_call_in_logs")
    assert result["onScreenMs"] < 5000
    time, path, kind, caller, outcome, _, request_id, _ = result["cells"]
    assert (path, kind, caller, outcome) == ("tasks:fail", "query", "websocket", "system_error")
    assert request_id == result["requestId"]
    assert result["error"].startswith(f"[Request ID: {result['requestId']}] Server Error")
    # a server error shows the traceback the server (its runner) logged under that request id
    assert "RuntimeError: failing on purpose: for the logs page" in result["traceback"]
    assert "Traceback (most recent call last)" in result["traceback"]
    # the failure filter shows failures only
    assert set(result["outcomes"]) <= {"user_error", "system_error"}


def test_health_charts_move_with_calls(browser_checks: dict[str, Any]) -> None:
    result = passed(browser_checks, "health_page")
    assert result["sessions"] >= 2  # the dashboard's own websocket and the outsider's
    assert result["commits"] > 0 and result["calls"] > 0
    p50, p99 = result["latency"].split(" / ")
    assert 0 < float(p50) <= float(p99)
    assert result["polylines"] == 1


def test_insert_from_the_data_page(browser_checks: dict[str, Any]) -> None:
    assert passed(browser_checks, "insert_from_dashboard")["title"].endswith("-from-dashboard")


def test_delete_asks_first_and_dismissing_keeps_the_document(
    browser_checks: dict[str, Any],
) -> None:
    result = passed(browser_checks, "delete_with_confirmation")
    assert result["afterDismiss"] is True
    assert result["message"].startswith("Delete document ")


def test_documents_sort_by_an_index_filter_by_a_field_and_ids_lead_to_documents(
    browser_checks: dict[str, Any],
) -> None:
    result = passed(browser_checks, "sort_filter_follow_id")
    assert result["ascending"] == sorted(result["ascending"])
    assert result["descending"] == sorted(result["descending"], reverse=True)
    assert {10, 20, 30} <= set(result["ascending"])
    assert result["filtered"] == [result["expected"]]
    assert result["followed"].endswith("-p20")
    assert result["panelTitle"] == f"Document {result['expected']} in tasks"


def test_export_downloads_a_snapshot_zip_and_import_writes_a_table(
    browser_checks: dict[str, Any],
) -> None:
    result = passed(browser_checks, "export_and_import")
    assert result["filename"].startswith("snapshot_") and result["filename"].endswith(".zip")
    assert result["zipMagic"] == "PK" and result["hasTasks"] is True
    assert "tasks" in result["summary"]
    assert result["done"] == "Imported 2 documents."
    assert sorted(result["imported"]) == [["-imported-1", False, 7], ["-imported-2", True, 8]]


def test_cancelling_a_pending_scheduled_job(browser_checks: dict[str, Any]) -> None:
    result = passed(browser_checks, "cancel_pending_job")
    assert result["message"].startswith("Cancel scheduled job ")
    assert result["stored"] == "canceled"


def test_crons_show_schedule_next_and_last_run(browser_checks: dict[str, Any]) -> None:
    name, function, schedule, next_run, last_run, outcome = passed(
        browser_checks, "cancel_pending_job"
    )["cron"]
    assert (name, function, schedule, outcome) == (
        "hourly count",
        "tasks:count_open",
        "every 3600s",
        "success",
    )
    assert next_run > last_run  # ISO times sort as text


def test_uploading_previewing_downloading_and_deleting_a_file(
    browser_checks: dict[str, Any],
) -> None:
    result = passed(browser_checks, "upload_and_delete_file")
    _, _, size, content_type, sha, _, _ = result["cells"]
    assert (size, content_type) == ("70 B", "image/png")
    assert sha.startswith("6b7fa434f92a")
    assert result["imageLoaded"] is True and result["sameBytes"] is True
    assert result["statusAfterDelete"] == 404 and result["stillListed"] is False


def test_environment_variables_set_and_removed(browser_checks: dict[str, Any]) -> None:
    result = passed(browser_checks, "environment_variables")
    assert result["shown"][:2] == ["DASHBOARD_TEST", "forty-two"]
    assert result["afterSet"] == {"name": "DASHBOARD_TEST", "value": "forty-two"}
    assert result["afterRemove"] is None


def test_schema_page_shows_fields_and_index_state(browser_checks: dict[str, Any]) -> None:
    result = passed(browser_checks, "schema_page")
    assert result["index"] == ["by_priority", "priority", "ready"]
    assert result["fields"] == ["task", 'Id<"tasks">', ""]


def test_show_more_pages_past_the_first_hundred(browser_checks: dict[str, Any]) -> None:
    result = passed(browser_checks, "show_more")
    assert (result["first"], result["summary"]) == (100, "the first 100 documents")
    assert result["after"] == min(200, result["total"]) and result["total"] > 120


def test_usable_on_a_phone_width(browser_checks: dict[str, Any]) -> None:
    result = passed(browser_checks, "phone_layout")
    assert result["scrollWidth"] <= result["innerWidth"]


def test_the_system_functions_refuse_a_websocket_client_without_the_admin_key(
    browser_checks: dict[str, Any],
) -> None:
    result = passed(browser_checks, "non_admin_websocket_refused")
    assert "can only be called with the deployment's admin key" in result["query"]
    assert "can only be called with the deployment's admin key" in result["mutation"]
    assert result["stillThere"] is True
    assert sorted(result["each"]) == _system_paths()
    for path, message in result["each"].items():
        assert "can only be called with the deployment's admin key" in message, path


# -- over HTTP --------------------------------------------------------------------------------


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url)
    opener = urllib.request.build_opener(_NoRedirect())
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_served_at_dashboard_with_security_headers(server: ReactorServer) -> None:
    status, headers, _ = _get(server.url + "/dashboard")
    assert (status, headers["location"]) == (308, "/dashboard/")
    status, headers, body = _get(server.url + "/dashboard/")
    assert status == 200
    assert b'<script type="module" src="app.js">' in body
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert f"connect-src 'self' ws://127.0.0.1:{server.port} wss://127.0.0.1:{server.port};" in csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    status, _, bundle = _get(server.url + "/dashboard/vendor/convex.browser.bundle.js")
    assert status == 200 and b"ConvexClient" in bundle
    status, _, _ = _get(server.url + "/dashboard/../pyproject.toml")
    assert status == 404


def test_a_crafted_host_header_adds_nothing_to_the_content_security_policy(
    server: ReactorServer,
) -> None:
    request = urllib.request.Request(
        server.url + "/dashboard/", headers={"Host": "evil.example; script-src *"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        csp = response.headers["content-security-policy"]
    assert "evil" not in csp and "script-src 'self';" in csp
    assert "connect-src 'self';" in csp


def test_serve_prints_the_dashboard_url(server: ReactorServer) -> None:
    assert f"dashboard: {server.url}/dashboard/" in server.log_tail(100_000)


def _system_functions() -> list[tuple[str, str]]:
    """Every ``_system/frontend/*`` function, with its kind ("query", "mutation", "action")."""
    functions = SystemFunctions()
    dashboard_functions.register(functions, deployment=None)  # type: ignore[arg-type]
    return [(str(path), spec.kind.value.lower()) for path, spec in functions.registry.items()]


def _system_paths() -> list[str]:
    return [path for path, _ in _system_functions()]


def _call(server: ReactorServer, path: str, key: str | None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        server.url + "/api/function",
        data=json.dumps({"path": path, "args": {}, "format": "json"}).encode(),
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Convex {key}"} if key else {}),
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("path", _system_paths())
def test_every_dashboard_function_refuses_http_callers_without_the_admin_key(
    server: ReactorServer, path: str
) -> None:
    assert path.startswith("_system/frontend/")
    status, body = _call(server, path, None)
    assert status == 200 and body["status"] == "error"
    assert "can only be called with the deployment's admin key" in body["errorMessage"]


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("GET", "/api/execution_logs"),
        ("GET", "/metrics"),
        ("GET", "/api/admin/env"),
        ("POST", "/api/export/request/zip"),
        ("POST", "/api/import/start_upload"),
    ],
)
def test_the_admin_routes_the_dashboard_reads_refuse_callers_without_the_key(
    server: ReactorServer, method: str, route: str
) -> None:
    request = urllib.request.Request(
        server.url + route, method=method, data=b"" if method == "POST" else None
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    assert json.loads(refused.value.read())["code"] == "BadAdminKey"


def test_a_wrong_admin_key_is_refused_over_http(server: ReactorServer) -> None:
    # One path: repeated wrong keys from one peer meet the failure budget (429) by design.
    wrong = "reactor-admin|not-the-key-000000000000000000000000000"
    status, body = _call(server, "_system/frontend/documents:remove", wrong)
    assert status == 401 and body["code"] == "Unauthenticated"


def test_with_the_admin_key_over_http(server: ReactorServer) -> None:
    status, body = _call(server, "_system/frontend/tables:list", server.admin_key)
    assert status == 200 and body["status"] == "success", body
    names = [table["name"] for table in body["value"]]
    assert names == ["notes", "tasks"]
    assert body["value"][1]["indexes"] == [{"name": "by_priority", "fields": ["priority"]}]


# -- refusals of the dashboard's functions (with the admin key) --------------------------------


def _admin_error(server: ReactorServer, path: str, args: dict[str, Any]) -> tuple[str, Any]:
    status, body = _call_args(server, path, args)
    assert status == 200 and body["status"] == "error", body
    return body["errorMessage"], body.get("errorData")


def _admin_value(server: ReactorServer, path: str, args: dict[str, Any]) -> Any:
    status, body = _call_args(server, path, args)
    assert status == 200 and body["status"] == "success", body
    return body["value"]


def _call_args(server: ReactorServer, path: str, args: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        server.url + "/api/function",
        data=json.dumps({"path": path, "args": args, "format": "json"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Convex {server.admin_key}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"table": "tasks", "limit": 0}, "`limit` must be between 1 and 1000, got 0"),
        ({"table": "tasks", "limit": 5000}, "`limit` must be between 1 and 1000, got 5000"),
        ({"table": "tasks", "index": "by_nothing"}, "Table tasks has no index 'by_nothing'"),
        ({"table": "_storage"}, "_storage is a system table"),
    ],
)
def test_documents_page_refuses_bad_views(
    server: ReactorServer, args: dict[str, Any], message: str
) -> None:
    error, _ = _admin_error(server, "_system/frontend/documents:page", args)
    assert message in error


def test_insert_refused_by_the_schema_names_the_path_and_writes_nothing(
    server: ReactorServer,
) -> None:
    before = _admin_value(server, "_system/frontend/tables:count", {"table": "notes"})
    error, data = _admin_error(
        server,
        "_system/frontend/documents:insert",
        {"table": "notes", "document": {"task": "not-an-id", "text": "x"}},
    )
    assert data["path"] == "$.task" and data["code"] == "SchemaEnforcementError"
    assert "at `$.task`" in data["message"]
    assert _admin_value(server, "_system/frontend/tables:count", {"table": "notes"}) == before


def test_replace_keeps_system_fields_and_refuses_a_changed_id(server: ReactorServer) -> None:
    id = _admin_value(
        server,
        "_system/frontend/documents:insert",
        {"table": "tasks", "document": {"title": "keep", "done": False, "priority": 1}},
    )
    _, data = _admin_error(
        server,
        "_system/frontend/documents:replace",
        {"id": id, "document": {"_id": "x" * 32, "title": "t", "done": True, "priority": 2}},
    )
    assert data == {"message": "_id cannot be changed", "path": "$._id"}
    stored = _admin_value(server, "_system/frontend/documents:get", {"id": id})
    moved = {**stored["document"], "_creationTime": 1.0}
    _, data = _admin_error(
        server, "_system/frontend/documents:replace", {"id": id, "document": moved}
    )
    assert data == {"message": "_creationTime cannot be changed", "path": "$._creationTime"}
    _, data = _admin_error(
        server, "_system/frontend/documents:replace", {"id": id, "document": [1]}
    )
    assert data == {"message": "A document must be an object, got list", "path": "$"}
    _admin_value(
        server,
        "_system/frontend/documents:replace",
        {"id": id, "document": {**stored["document"], "title": "kept"}},
    )
    after = _admin_value(server, "_system/frontend/documents:get", {"id": id})
    assert after["document"]["_creationTime"] == stored["document"]["_creationTime"]
    assert (after["table"], after["document"]["title"]) == ("tasks", "kept")
    assert _admin_value(server, "_system/frontend/documents:remove", {"ids": [id]}) == 1
    assert _admin_value(server, "_system/frontend/documents:get", {"id": id}) is None


def test_ids_of_the_wrong_kind_are_refused(server: ReactorServer) -> None:
    task = _admin_value(
        server,
        "_system/frontend/documents:insert",
        {"table": "tasks", "document": {"title": "id kinds", "done": False, "priority": 1}},
    )
    error, _ = _admin_error(server, "_system/frontend/scheduled:cancel", {"id": task})
    assert "is not the id of a scheduled job" in error
    error, _ = _admin_error(server, "_system/frontend/files:delete", {"ids": [task]})
    assert "is not the id of a stored file" in error
    jobs = _admin_value(server, "_system/frontend/scheduled:list", {"state": "success"})
    assert jobs, "the cron's first run is a finished job"
    error, _ = _admin_error(server, "_system/frontend/scheduled:cancel", {"id": jobs[0]["_id"]})
    assert "is success: only pending jobs can be canceled" in error
    error, _ = _admin_error(server, "_system/frontend/scheduled:list", {"state": "sleeping"})
    assert "`state` must be one of pending, inProgress, success, failed, canceled" in error


# -- the pure JS modules, in Node -------------------------------------------------------------


@pytest.fixture(scope="module")
def unit_checks(node_bin: str) -> dict[str, Any]:
    done = subprocess.run(
        [node_bin, "dashboard_units.mjs"], cwd=JS_DIR, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    checks: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])["checks"]
    return checks


def test_editor_values_round_trip_int64_bytes_and_special_floats(
    unit_checks: dict[str, Any],
) -> None:
    result = passed(unit_checks, "round_trip")
    assert result["text"]["big"] == {"$int64": "12345678901234567890"}
    assert result["text"]["raw"] == {"$bytes": "AAH+/w=="}
    assert result["text"]["list"][:2] == [{"$float": "NaN"}, {"$float": "-Infinity"}]
    assert result["bigint"] and result["nan"] and result["negInf"]
    assert result["bytes"] == [0, 1, 254, 255]


def test_convex_encoded_json_both_ways(unit_checks: dict[str, Any]) -> None:
    result = passed(unit_checks, "convex_json")
    assert result["json"] == {
        "n": {"$integer": base64.b64encode(struct.pack("<q", -2)).decode()},
        "big": {"$integer": base64.b64encode(struct.pack("<q", 2**62)).decode()},
        "raw": {"$bytes": "AQI="},
        "inf": {"$float": base64.b64encode(struct.pack("<d", math.inf)).decode()},
        "neg0": {"$float": base64.b64encode(struct.pack("<d", -0.0)).decode()},
        "x": 1.5,
    }
    assert result["back"]["n"] == {"$int64": "-2"}
    assert result["back"]["big"] == {"$int64": str(2**62)}
    assert result["negZero"] is True


def test_editor_refuses_malformed_values_naming_the_path(unit_checks: dict[str, Any]) -> None:
    int64, raw, special, syntax = passed(unit_checks, "bad_input")
    assert int64 == '$.a: $int64 must be a string of digits, got "12x"'
    assert raw == "$.a: $bytes is not valid base64"
    assert special == '$.a: $float must be "NaN", "Infinity" or "-Infinity"'
    assert syntax.startswith("The document is not valid JSON: ")


def test_cells_and_validators_as_text(unit_checks: dict[str, Any]) -> None:
    assert passed(unit_checks, "cells") == ["text", "7n", "<3 bytes>", '{"a":[1,2]}', True, False]
    assert passed(unit_checks, "validators") == [
        "any",
        "{ title: string; n?: number }",
        'Id<"tasks">[]',
        '"a" | bigint',
    ]


def test_metrics_parsing_and_latency_quantiles(unit_checks: dict[str, Any]) -> None:
    result = passed(unit_checks, "metrics")
    assert result["count"] == 4
    assert result["labels"] == {"kind": "query", "le": "0.001", "path": "a:b"}
    assert result["p50"] == pytest.approx(1.0)
    assert result["p99"] == pytest.approx(10.0)
    assert result["empty"] is None
