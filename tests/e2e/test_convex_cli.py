"""The official ``convex`` CLI (npm package, tests/js/node_modules/convex), unmodified, against a
real ``reactor serve``: ``data``, ``env list|get|set|remove`` and ``run``, with the two
self-hosted variables set, each command's output checked. Every command runs with a timeout:
a CLI retrying for ever on a missing route or function fails the test instead of hanging it.

The CLI wants a ``package.json`` that depends on ``convex`` in its working directory for
``env`` (``data`` and ``run`` do without); the tests give it one in a temporary directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:  # conftest is pytest's to import; its classes serve as types only
    from .conftest import ReactorServer

ROOT = Path(__file__).resolve().parents[2]
CONVEX_CLI = ROOT / "tests" / "js" / "node_modules" / "convex" / "bin" / "main.js"
CLI_TIMEOUT = 45

APP = {
    "schema.py": """
        from schema import define_schema, define_table, v

        schema = define_schema({
            "tasks": define_table({"text": v.string(), "done": v.boolean()}),
            "notes": define_table({"body": v.string()}),
        })
    """,
    "tasks.py": """
        from functions import AppError, env, mutation, query
        from schema import v

        @mutation(args={"text": v.string()})
        async def add(ctx, text):
            return await ctx.db.insert("tasks", {"text": text, "done": False})

        @query
        async def texts(ctx):
            return [task["text"] for task in await ctx.db.query("tasks").collect()]

        @query
        async def greeting(ctx):
            return ctx.env.get("GREETING", "unset")

        @mutation
        async def refuse(ctx):
            raise AppError("tasks are closed today")
    """,
}


class Run:
    def __init__(self, argv: list[str], proc: subprocess.CompletedProcess[str]) -> None:
        self.argv = argv
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def describe(self) -> str:
        return (
            f"convex {' '.join(self.argv)}\nexit code: {self.returncode}\n"
            f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}"
        )

    def ok(self) -> Run:
        assert self.returncode == 0, self.describe()
        return self

    def failed(self) -> Run:
        assert self.returncode != 0, self.describe()
        return self

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def server(
    app_server_factory: Callable[..., ReactorServer], tmp_path_factory: pytest.TempPathFactory
) -> ReactorServer:
    app_dir = tmp_path_factory.mktemp("convex_cli_app")
    for name, text in APP.items():
        (app_dir / name).write_text(textwrap.dedent(text).lstrip())
    return app_server_factory(app_dir=app_dir)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("convex_cli_project")
    package = {"name": "cli-test", "private": True, "dependencies": {"convex": "1.48.0"}}
    (directory / "package.json").write_text(json.dumps(package))
    return directory


@pytest.fixture(scope="module")
def convex(server: ReactorServer, project: Path, node_bin: str) -> Callable[..., Run]:
    """convex("data", "tasks", admin_key=None) -> Run: the CLI as a subprocess."""

    def run(*argv: str, admin_key: str | None = None) -> Run:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CONVEX_") and k not in ("CI", "NODE_OPTIONS")
        }
        env.update(
            CONVEX_SELF_HOSTED_URL=server.url,
            CONVEX_SELF_HOSTED_ADMIN_KEY=admin_key or server.admin_key,
        )
        command = [node_bin, str(CONVEX_CLI), *argv]
        try:
            proc = subprocess.run(
                command,
                cwd=project,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"convex {' '.join(argv)} hung for {CLI_TIMEOUT}s\n"
                f"stdout: {exc.stdout!r}\nstderr: {exc.stderr!r}\n{server.log_tail()}"
            ) from None
        return Run(list(argv), proc)

    return run


def documents(result: Run) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.ok().lines]


def add(server: ReactorServer, text: str) -> None:
    """A task, added through the HTTP API (setup for the CLI commands under test)."""
    response = httpx.post(
        server.url + "/api/mutation",
        json={"path": "tasks:add", "args": {"text": text}},
        timeout=10,
    )
    assert response.json()["status"] == "success", response.text


def test_run_calls_mutations_and_queries(convex: Callable[..., Run], server: ReactorServer) -> None:
    added = convex("run", "tasks:add", '{"text": "first"}').ok()
    task_id = json.loads(added.stdout)
    assert isinstance(task_id, str) and len(task_id) > 20, added.describe()
    add(server, "second")
    add(server, "third")
    texts = json.loads(convex("run", "tasks:texts").ok().stdout)
    assert texts[-3:] == ["first", "second", "third"]


def test_run_reports_a_missing_function_with_the_available_ones(
    convex: Callable[..., Run],
) -> None:
    result = convex("run", "tasks:nope").failed()
    assert "Could not find function for 'tasks:nope'" in result.stderr, result.describe()
    assert "tasks:add" in result.stderr and "tasks:texts" in result.stderr, result.describe()


def test_run_reports_an_application_error(convex: Callable[..., Run]) -> None:
    result = convex("run", "tasks:refuse").failed()
    assert "tasks are closed today" in result.stderr, result.describe()


def test_data_lists_the_tables(convex: Callable[..., Run], server: ReactorServer) -> None:
    add(server, "so the table exists")
    assert convex("data").ok().lines == ["notes", "tasks"]


def test_data_prints_a_tables_documents_as_jsonl(
    convex: Callable[..., Run], server: ReactorServer
) -> None:
    for text in ("a", "b", "c"):
        add(server, f"jsonl-{text}")
    newest = documents(convex("data", "tasks", "--format", "jsonl"))
    texts = [doc["text"] for doc in newest]
    assert texts[:3] == ["jsonl-c", "jsonl-b", "jsonl-a"]  # newest first by default
    for doc in newest:
        assert set(doc) == {"_id", "_creationTime", "text", "done"}
        assert doc["done"] is False
    assert len({doc["_id"] for doc in newest}) == len(newest)

    oldest = documents(
        convex("data", "tasks", "--limit", "2", "--order", "asc", "--format", "jsonl")
    )
    assert len(oldest) == 2
    assert [doc["_creationTime"] for doc in oldest] == sorted(
        doc["_creationTime"] for doc in newest
    )[:2]


def test_data_table_view_and_an_empty_table(
    convex: Callable[..., Run], server: ReactorServer
) -> None:
    add(server, "table view")
    table = convex("data", "tasks", "--limit", "1").ok()
    header = [column.strip() for column in table.lines[0].split("|")]
    assert header == ["_id", "_creationTime", "done", "text"], table.describe()
    assert '"table view"' in table.lines[2]
    empty = convex("data", "notes").ok()
    assert "There are no documents in this table." in empty.stderr, empty.describe()


def test_env_set_list_get_remove(convex: Callable[..., Run]) -> None:
    assert "GREETING" not in convex("env", "list", "--include-values").ok().stdout
    set_ = convex("env", "set", "GREETING", "hello world").ok()
    assert "Successfully set GREETING" in set_.stderr, set_.describe()
    assert "GREETING=hello world" in convex("env", "list", "--include-values").ok().lines
    assert convex("env", "get", "GREETING").ok().lines == ["hello world"]
    # The app's functions see it (the deployment reloads them with the new values).
    assert json.loads(convex("run", "tasks:greeting").ok().stdout) == "hello world"

    removed = convex("env", "remove", "GREETING").ok()
    assert "Successfully unset GREETING" in removed.stderr, removed.describe()
    assert "GREETING" not in convex("env", "list", "--include-values").ok().stdout
    missing = convex("env", "get", "GREETING")
    assert missing.lines == [] and 'Environment variable "GREETING" not found' in missing.stderr
    assert json.loads(convex("run", "tasks:greeting").ok().stdout) == "unset"


def test_env_set_refuses_an_invalid_name_clearly(convex: Callable[..., Run]) -> None:
    result = convex("env", "set", "1BAD", "x").failed()
    assert "Invalid environment variable name '1BAD'" in result.stderr, result.describe()
    assert "1BAD" not in convex("env", "list", "--include-values").ok().stdout


@pytest.mark.parametrize("argv", [("data",), ("env", "list"), ("data", "tasks")])
def test_a_wrong_admin_key_fails_fast_with_a_clear_error(
    convex: Callable[..., Run], argv: tuple[str, ...]
) -> None:
    result = convex(*argv, admin_key="reactor-admin|wrong").failed()
    assert "The admin key is invalid" in result.stderr, result.describe()
    assert "You do not have permission to perform this operation" in result.stderr
