"""Snapshots end to end, with real `reactor serve` processes, the official `convex` CLI (npm,
run by Node) and `reactor export|import|backup` as subprocesses.

* `npx convex export --include-file-storage` then `npx convex import` into a fresh server:
  identical documents, ids, creation times, int64s, references and file bytes.
* `npx convex import` of a file with a corrupt line: the CLI prints the table's file and the
  line number, and nothing of the table is written.
* `reactor export --url` while transfers run: the snapshot holds the conserved total.
* `reactor backup --url` of a server under write load restores (`reactor serve --data`) to a
  deployment serving the same data, with the same admin key, and taking writes.
* `reactor export|import --data` on a stopped data directory; refused while a server holds it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import JS_DIR, ROOT, ReactorServer

APP = Path(__file__).resolve().parent / "snapshot_app"
CONVEX_MAIN = JS_DIR / "node_modules" / "convex" / "bin" / "main.js"


def call(server: ReactorServer, kind: str, path: str, args: dict[str, Any] | None = None) -> Any:
    response = httpx.post(
        f"{server.url}/api/{kind}",
        json={"path": path, "args": args or {}, "format": "json"},
        timeout=30,
    )
    payload = response.json()
    assert payload.get("status") == "success", payload
    return payload["value"]


def convex(node_bin: str, server: ReactorServer, *argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        CONVEX_SELF_HOSTED_URL=server.url,
        CONVEX_SELF_HOSTED_ADMIN_KEY=server.admin_key,
        NO_COLOR="1",
        FORCE_COLOR="0",
    )
    env.pop("CONVEX_DEPLOYMENT", None)
    return subprocess.run(
        [node_bin, str(CONVEX_MAIN), *argv],
        cwd=JS_DIR,  # its package.json depends on convex, as the CLI requires
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def reactor(*argv: str, admin_key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if admin_key is not None:
        env["REACTOR_ADMIN_KEY"] = admin_key
    return subprocess.run(
        [sys.executable, "-m", "reactor", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def without_urls(dump: dict[str, Any]) -> dict[str, Any]:
    return {**dump, "notes": [{k: v for k, v in n.items() if k != "url"} for n in dump["notes"]]}


@pytest.fixture(scope="module")
def source(app_server_factory: Callable[..., ReactorServer]) -> Iterator[ReactorServer]:
    """A server with accounts, notes referencing them (one with an int64 and a file)."""
    server = app_server_factory(app_dir=APP)
    accounts = call(server, "mutation", "bank:open_accounts", {"n": 10})
    file_id = call(server, "action", "bank:store", {"text": "file bytes ✓"})
    call(
        server,
        "mutation",
        "bank:add_note",
        {
            "account": accounts[0],
            "text": "with file",
            "count": {"$integer": "BwAAAAAAAAA="},
            "file": file_id,
        },
    )
    call(
        server,
        "mutation",
        "bank:add_note",
        {"account": accounts[1], "text": "plain", "count": {"$integer": "AAAAAAEAAAA="}},
    )
    yield server


def test_official_cli_export_then_import_into_fresh_server(
    source: ReactorServer,
    app_server_factory: Callable[..., ReactorServer],
    node_bin: str,
    tmp_path: Path,
) -> None:
    snapshot = tmp_path / "snapshot.zip"
    exported = convex(node_bin, source, "export", "--path", str(snapshot), "--include-file-storage")
    assert exported.returncode == 0, exported.stderr
    assert "Downloaded snapshot export" in exported.stderr
    names = zipfile.ZipFile(snapshot).namelist()
    assert "_tables/documents.jsonl" in names and "notes/documents.jsonl" in names
    assert any(name.startswith("_storage/") and name.endswith(".txt") for name in names)

    fresh = app_server_factory(app_dir=APP)
    imported = convex(node_bin, fresh, "import", "--yes", str(snapshot))
    assert imported.returncode == 0, imported.stderr + imported.stdout
    assert "Added 13 documents" in imported.stderr  # 10 accounts, 2 notes, 1 file

    before, after = call(source, "query", "bank:dump"), call(fresh, "query", "bank:dump")
    assert without_urls(after) == without_urls(before)
    (with_file,) = [n for n in after["notes"] if "url" in n]
    assert with_file["count"] == "7"  # int64 survived (clean JSON shows it as a string)
    assert httpx.get(with_file["url"]).content == "file bytes ✓".encode()

    # Importing again is refused (the tables are not empty) unless --replace.
    again = convex(node_bin, fresh, "import", "--yes", str(snapshot))
    assert again.returncode != 0
    assert "is not empty" in again.stderr + again.stdout
    replaced = convex(node_bin, fresh, "import", "--yes", "--replace", str(snapshot))
    assert replaced.returncode == 0, replaced.stderr
    assert without_urls(call(fresh, "query", "bank:dump")) == without_urls(before)


def test_official_cli_import_reports_corrupt_line_and_writes_nothing(
    app_server_factory: Callable[..., ReactorServer], node_bin: str, tmp_path: Path
) -> None:
    server = app_server_factory(app_dir=APP)
    good = '{"owner": "x", "balance": 1}\n'
    path = tmp_path / "accounts.jsonl"
    path.write_text(good + good + '{"owner": "y", "balance": \n' + good)
    result = convex(node_bin, server, "import", "--yes", "--table", "accounts", str(path))
    assert result.returncode != 0
    assert "accounts.jsonl line 3: not valid JSON" in result.stderr + result.stdout
    assert call(server, "query", "bank:total") == {"count": 0, "total": 0}
    # The same file without the bad line imports, through the CLI's jsonl path.
    path.write_text(good + good)
    ok = convex(node_bin, server, "import", "--yes", "--table", "accounts", str(path))
    assert ok.returncode == 0, ok.stderr
    assert call(server, "query", "bank:total") == {"count": 2, "total": 2}
    # .csv and .json (an array) through the CLI too.
    table = tmp_path / "more.csv"
    table.write_text("owner,balance\nz,3\n")
    csv_ok = convex(
        node_bin, server, "import", "--yes", "--append", "--table", "accounts", str(table)
    )
    assert csv_ok.returncode == 0, csv_ok.stderr
    array = tmp_path / "more.json"
    array.write_text('[{"owner": "w", "balance": 4}]')
    json_ok = convex(
        node_bin, server, "import", "--yes", "--append", "--table", "accounts", str(array)
    )
    assert json_ok.returncode == 0, json_ok.stderr
    assert call(server, "query", "bank:total") == {"count": 4, "total": 9}


def _transfers(server: ReactorServer, stop: threading.Event) -> None:
    accounts = [a["_id"] for a in call(server, "query", "bank:dump")["accounts"]]
    with httpx.Client(timeout=30) as client:
        i = 0
        while not stop.is_set():
            a, b = accounts[i % len(accounts)], accounts[(i * 3 + 1) % len(accounts)]
            if a != b:
                body = {"path": "bank:transfer", "args": {"a": a, "b": b, "amount": 2.5}}
                assert client.post(f"{server.url}/api/mutation", json=body).status_code == 200
            i += 1


def test_native_export_during_transfers_is_consistent(
    app_server_factory: Callable[..., ReactorServer], tmp_path: Path
) -> None:
    server = app_server_factory(app_dir=APP)
    call(server, "mutation", "bank:open_accounts", {"n": 30})
    stop = threading.Event()
    writer = threading.Thread(target=_transfers, args=(server, stop))
    writer.start()
    try:
        for round_ in range(3):
            path = tmp_path / f"snap{round_}.zip"
            result = reactor(
                "export", "--url", server.url, "--path", str(path), admin_key=server.admin_key
            )
            assert result.returncode == 0, result.stderr
            rows = zipfile.ZipFile(path).read("accounts/documents.jsonl").splitlines()
            assert len(rows) == 30
            assert sum(json.loads(row)["balance"] for row in rows) == 3000.0
    finally:
        stop.set()
        writer.join()
    assert call(server, "query", "bank:total") == {"count": 30, "total": 3000.0}


def test_backup_under_write_load_restores_to_a_working_deployment(
    app_server_factory: Callable[..., ReactorServer], tmp_path: Path
) -> None:
    server = app_server_factory(app_dir=APP)
    call(server, "mutation", "bank:open_accounts", {"n": 20})
    file_id = call(server, "action", "bank:store", {"text": "kept in the backup"})
    stop = threading.Event()
    writer = threading.Thread(target=_transfers, args=(server, stop))
    writer.start()
    backup = tmp_path / "backup"
    try:
        result = reactor(
            "backup", "--url", server.url, "--path", str(backup), admin_key=server.admin_key
        )
    finally:
        stop.set()
        writer.join()
    assert result.returncode == 0, result.stderr
    assert f"reactor serve APP --data {backup}" in result.stdout
    restored = ReactorServer(backup, tmp_path / "restored.log", app_dir=APP)
    restored.start()
    try:
        assert call(restored, "query", "bank:total") == {"count": 20, "total": 2000.0}
        files = call(restored, "query", "bank:dump")["files"]
        assert [f["_id"] for f in files] == [file_id]
        # The same admin key works, and the restored deployment takes writes.
        probe = httpx.post(
            f"{restored.url}/api/query",
            json={"path": "_system/cli/exports:getLatest", "args": {}, "format": "json"},
            headers={"Authorization": f"Convex {server.admin_key}"},
        )
        assert probe.json()["status"] == "success", probe.text
        call(restored, "mutation", "bank:open_accounts", {"n": 1})
        assert call(restored, "query", "bank:total")["count"] == 21
    finally:
        restored.stop()


def test_native_commands_on_a_stopped_data_directory(
    source: ReactorServer, app_server_factory: Callable[..., ReactorServer], tmp_path: Path
) -> None:
    server = app_server_factory(app_dir=APP)
    call(server, "mutation", "bank:open_accounts", {"n": 3})
    refused = reactor(
        "export",
        "--data",
        str(server.data_dir),
        "--app",
        str(APP),
        "--path",
        str(tmp_path / "x.zip"),
    )
    assert refused.returncode == 1
    assert "in use by another Reactor process" in refused.stderr
    before = call(server, "query", "bank:dump")
    server.stop()
    snapshot = tmp_path / "local.zip"
    exported = reactor(
        "export", "--data", str(server.data_dir), "--app", str(APP), "--path", str(snapshot)
    )
    assert exported.returncode == 0, exported.stderr
    assert "Exported 3 documents" in exported.stdout
    fresh = tmp_path / "fresh"
    imported = reactor("import", "--data", str(fresh), "--app", str(APP), str(snapshot))
    assert imported.returncode == 0, imported.stderr
    assert "Imported 3 documents" in imported.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"owner": "z", "balance": "lots"}\n')
    refused_row = reactor(
        "import",
        "--data",
        str(fresh),
        "--app",
        str(APP),
        "--table",
        "accounts",
        "--append",
        str(bad),
    )
    assert refused_row.returncode == 1
    assert "bad.jsonl line 1:" in refused_row.stderr and "$.balance" in refused_row.stderr
    restarted = ReactorServer(fresh, tmp_path / "fresh.log", app_dir=APP)
    restarted.start()
    try:
        assert call(restarted, "query", "bank:dump")["accounts"] == before["accounts"]
    finally:
        restarted.stop()


def test_routes_need_the_admin_key_and_name_bad_input(source: ReactorServer) -> None:
    for method, route in (
        ("POST", "/api/export/request/zip"),
        ("GET", "/api/export/zip/1"),
        ("POST", "/api/import/start_upload"),
        ("POST", "/api/perform_import"),
        ("POST", "/api/admin/backup"),
    ):
        response = httpx.request(method, source.url + route)
        assert response.status_code == 403, (route, response.text)
        assert response.json()["code"] == "BadAdminKey"
    admin = httpx.Client(
        base_url=source.url, headers={"Authorization": f"Convex {source.admin_key}"}
    )
    with admin:
        missing = admin.get("/api/export/zip/12345")
        assert missing.status_code == 404 and "No completed snapshot export" in missing.text
        part = admin.post("/api/import/upload_part?uploadToken=nope&partNumber=1", content=b"x")
        assert part.status_code == 400 and "Unknown upload token 'nope'" in part.text
        token = admin.post("/api/import/start_upload").json()["uploadToken"]
        bad = admin.post(
            "/api/import/finish_upload",
            json={
                "import": {"format": "xml", "mode": "append"},
                "uploadToken": token,
                "partTokens": [],
            },
        )
        assert bad.status_code == 400 and "Unknown import format 'xml'" in bad.text
        perform = admin.post("/api/perform_import", json={"importId": "nope"})
        assert perform.status_code == 400 and "Import 'nope' not found" in perform.text
