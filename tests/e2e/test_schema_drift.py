"""`reactor serve` refuses to start on documents the schema no longer accepts: a one-line
`reactor: cannot start: ...` naming the table, the document and the path, exit code 1, no
traceback; `schema_validation=False` lets it start."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60

SCHEMA = """\
from schema import define_schema, define_table, v

schema = define_schema({{"tasks": define_table({{"title": v.string(){extra}}})}}{flags})
"""
TASKS = """\
from functions import mutation

@mutation
async def add(ctx, title):
    return await ctx.db.insert("tasks", {"title": title})
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reactor(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REACTOR_ADMIN_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "reactor", *argv],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    output = f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    return f"exit code {proc.returncode}\n{output}"


def test_serve_refuses_documents_the_schema_breaks(tmp_path: Path) -> None:
    app, data = tmp_path / "app", tmp_path / "data"
    app.mkdir()
    (app / "schema.py").write_text(SCHEMA.format(extra="", flags=""))
    (app / "tasks.py").write_text(TASKS)
    added = reactor("run", "tasks:add", '{"title": "t"}', "--app", str(app), "--data", str(data))
    assert added.returncode == 0, describe(added)
    task_id = json.loads(added.stdout)

    (app / "schema.py").write_text(SCHEMA.format(extra=', "owner": v.string()', flags=""))
    serve = ["serve", str(app), "--data", str(data), "--port", str(free_port()), "--http-port", "0"]
    refused = reactor(*serve)
    assert refused.returncode == 1, describe(refused)
    assert "Traceback" not in refused.stderr, describe(refused)
    expected = (
        f"reactor: cannot start: Schema validation failed: document {task_id} in table `tasks` "
        "does not match the schema at `$`: Object is missing the required field `owner`."
    )
    assert expected in refused.stderr, describe(refused)

    # The switch: the server starts (and is stopped here once it serves).
    flags = ", schema_validation=False"
    (app / "schema.py").write_text(SCHEMA.format(extra=', "owner": v.string()', flags=flags))
    proc = subprocess.Popen(
        [sys.executable, "-m", "reactor", *serve],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            assert "cannot start" not in line, line
            if "Uvicorn running" in line or "Application startup complete" in line:
                break
        else:
            raise AssertionError(f"the server exited with {proc.wait()}")
    finally:
        proc.terminate()
        proc.wait(timeout=TIMEOUT)
        if proc.stdout is not None:
            proc.stdout.close()
