"""`reactor codegen` end to end: the real CLI on every example app (deterministic bytes, the
committed files of examples/teamtasks up to date, `--check` naming stale files after a validator
changes), the npm `typescript` compiler on a React + `convex/react` frontend written against the
generated files (it passes; four copies with one mistake each fail with the expected
diagnostics), mypy on a typed Python caller (the same), `reactor dev --codegen-out` regenerating
on an edit, and a `returns=` mismatch reaching a real client as `Server Error` with a request id.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from client_sdk import FunctionFailed, NoArgs, QueryReference, ReactorClient

if TYPE_CHECKING:  # conftest is pytest's to import; its classes serve as types only
    from .conftest import ReactorServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TEAMTASKS = EXAMPLES / "teamtasks"
FRONTEND = ROOT / "tests" / "codegen" / "frontend"
NODE_MODULES = ROOT / "tests" / "js" / "node_modules"
EXAMPLE_APPS = sorted(p for p in EXAMPLES.iterdir() if (p / "schema.py").is_file())
TIMEOUT_S = 120


def reactor(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reactor", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def codegen(app: Path, out: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return reactor(
        "codegen", str(app), "--out", str(out / "ts"), "--python", str(out / "api.py"), *more
    )


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize("app", EXAMPLE_APPS, ids=[p.name for p in EXAMPLE_APPS])
def test_generating_twice_gives_the_same_bytes(app: Path, tmp_path: Path) -> None:
    first = codegen(app, tmp_path / "first")
    assert first.returncode == 0, first.stderr
    second = codegen(app, tmp_path / "second")
    assert second.returncode == 0, second.stderr
    files = snapshot(tmp_path / "first")
    assert sorted(files) == ["api.py", "ts/api.d.ts", "ts/api.js", "ts/dataModel.d.ts"]
    assert files == snapshot(tmp_path / "second")
    again = codegen(app, tmp_path / "first")  # nothing changed: nothing is rewritten
    assert again.stdout == "4 generated files are up to date\n", again.stdout


def test_the_committed_teamtasks_files_are_up_to_date() -> None:
    done = reactor(
        "codegen",
        "examples/teamtasks",
        "--out",
        "examples/teamtasks/_generated",
        "--python",
        "examples/teamtasks_api.py",
        "--check",
    )
    assert done.returncode == 0, done.stderr + "\n(run the command without --check)"


def test_check_names_the_files_a_validator_change_made_stale(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(TEAMTASKS, app, ignore=shutil.ignore_patterns("_generated", "__pycache__"))
    out = tmp_path / "gen"
    assert codegen(app, out).returncode == 0
    assert codegen(app, out, "--check").returncode == 0
    tasks = app / "tasks.py"
    source = tasks.read_text()
    changed = source.replace('args={"title": v.string()}', 'args={"title": v.float64()}')
    assert changed != source
    tasks.write_text(changed)
    check = codegen(app, out, "--check")
    assert check.returncode == 1
    stale = re.search(r"generated files are out of date: (.*); run", check.stderr)
    assert stale, check.stderr
    assert sorted(stale.group(1).split(", ")) == [str(out / "api.py"), str(out / "ts/api.d.ts")]
    assert "Traceback" not in check.stderr
    # --check wrote nothing; generating again brings the files up to date.
    assert "{ title: string }" in (out / "ts" / "api.d.ts").read_text()
    assert codegen(app, out).returncode == 0
    assert "{ title: number }" in (out / "ts" / "api.d.ts").read_text()
    assert codegen(app, out, "--check").returncode == 0
    (out / "ts" / "api.js").unlink()
    missing = codegen(app, out, "--check")
    assert missing.returncode == 1 and str(out / "ts" / "api.js") in missing.stderr


def test_bad_invocations_are_clear_errors(tmp_path: Path) -> None:
    nothing = reactor("codegen", str(TEAMTASKS))
    assert nothing.returncode == 2
    assert "codegen needs --out DIR and/or --python FILE" in nothing.stderr
    missing = reactor("codegen", str(tmp_path / "nope"), "--out", str(tmp_path))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "m.py").write_text("import nonexistent_module\n")
    broken = reactor("codegen", str(tmp_path / "broken"), "--out", str(tmp_path / "o"))
    assert broken.returncode == 1
    assert "Failed to import m.py" in broken.stderr and "Traceback" not in broken.stderr


# -- tsc ----------------------------------------------------------------------------------------

TS_MISTAKES = {
    # file: (the line changed, its replacement, the error code and message tsc must print)
    "wrong_argument_type": (
        "await add({ title })",
        "await add({ title: 42 })",
        "TS2322: Type 'number' is not assignable to type 'string'.",
    ),
    "missing_argument": (
        "await add({ title })",
        "await add({})",
        "TS2345: Argument of type '{}' is not assignable to parameter of type "
        "'{ title: string; }'.",
    ),
    "misspelt_function": (
        "useQuery(api.tasks.mine)",
        "useQuery(api.tasks.mien)",
        "TS2339: Property 'mien' does not exist on type",
    ),
    "result_as_wrong_type": (
        "const titles: string[] = tasks.map((task) => task.title);",
        "const titles: number[] = tasks.map((task) => task.title);",
        "TS2322: Type 'string[]' is not assignable to type 'number[]'.",
    ),
}


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "typescript" / "bin" / "tsc").is_file():
        pytest.fail("node and tests/js/node_modules/typescript are needed (cd tests/js && npm ci)")
    return node


def test_tsc_passes_the_frontend_and_fails_on_four_mistakes(tmp_path: Path) -> None:
    node = _node()
    web = tmp_path / "web"
    (web / "src").mkdir(parents=True)
    (web / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
    shutil.copy(FRONTEND / "tsconfig.json", web)
    app = (FRONTEND / "App.tsx").read_text()
    (web / "src" / "App.tsx").write_text(app)
    for name, (line, replacement, _) in TS_MISTAKES.items():
        assert app.count(line) == 1, line
        (web / "src" / f"{name}.tsx").write_text(app.replace(line, replacement))
    generated = reactor("codegen", str(TEAMTASKS), "--out", str(web / "convex" / "_generated"))
    assert generated.returncode == 0, generated.stderr

    done = subprocess.run(
        [node, str(NODE_MODULES / "typescript" / "bin" / "tsc"), "-p", str(web)],
        cwd=web,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    errors: dict[str, list[str]] = {}
    for found in re.finditer(r"^src/(\w+)\.tsx\(\d+,\d+\): error (TS\d+: .*)$", done.stdout, re.M):
        errors.setdefault(found.group(1), []).append(found.group(2))
    unexpected = re.findall(r"^(?!src/\w+\.tsx\(|  ).+$", done.stdout, re.M)
    assert not unexpected, done.stdout  # e.g. an error in the generated files themselves
    assert "App" not in errors, done.stdout
    assert sorted(errors) == sorted(TS_MISTAKES), done.stdout
    for name, (_, _, expected) in TS_MISTAKES.items():
        assert any(error.startswith(expected) for error in errors[name]), (name, done.stdout)
    assert done.returncode == 2


# -- mypy ---------------------------------------------------------------------------------------

PY_MISTAKES = {
    "wrong_argument_type": (
        '{"title": title}',
        '{"title": 42}',
        'No overload variant of "mutation" of "ReactorClient" matches argument types '
        '"MutationReference[[TasksAddArgs], str]", "dict[str, int]"  [call-overload]',
    ),
    "missing_argument": (
        '{"title": title}',
        "{}",
        'No overload variant of "mutation" of "ReactorClient" matches argument types '
        '"MutationReference[[TasksAddArgs], str]", "dict[Never, Never]"  [call-overload]',
    ),
    "misspelt_function": (
        "tasks: list[TasksDoc] = client.query(api.tasks.mine)",
        "tasks: list[TasksDoc] = client.query(api.tasks.mien)",
        '"type[_api_tasks]" has no attribute "mien"  [attr-defined]',
    ),
    "result_as_wrong_type": (
        '    return [task["title"] for task in tasks]',
        '    return [task["done"] for task in tasks]',
        "List comprehension has incompatible type List[bool]; expected List[str]  [misc]",
    ),
}


def test_mypy_passes_the_typed_caller_and_fails_on_four_mistakes(tmp_path: Path) -> None:
    work = tmp_path / "caller"
    work.mkdir()
    generated = reactor("codegen", str(TEAMTASKS), "--python", str(work / "teamtasks_api.py"))
    assert generated.returncode == 0, generated.stderr
    caller = (FRONTEND / "caller.py").read_text()
    (work / "caller.py").write_text(caller)
    for name, (line, replacement, _) in PY_MISTAKES.items():
        assert caller.count(line) == 1, line
        (work / f"{name}.py").write_text(caller.replace(line, replacement))
    (work / "mypy.ini").write_text("[mypy]\nstrict = True\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "mypy.ini",
            "--cache-dir",
            str(tmp_path / "mypy_cache"),
            "teamtasks_api.py",
            "caller.py",
            *(f"{name}.py" for name in PY_MISTAKES),
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    errors: dict[str, list[str]] = {}
    for found in re.finditer(r"^(\w+)\.py:\d+: error: (.*)$", done.stdout, re.M):
        errors.setdefault(found.group(1), []).append(found.group(2))
    assert sorted(errors) == sorted(PY_MISTAKES), done.stdout + done.stderr
    for name, (_, _, expected) in PY_MISTAKES.items():
        assert errors[name] == [expected], (name, done.stdout)
    assert done.returncode == 1


# -- reactor dev --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_dev_regenerates_the_files_when_the_app_changes(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(TEAMTASKS, app, ignore=shutil.ignore_patterns("_generated", "__pycache__"))
    out = tmp_path / "web" / "convex" / "_generated"
    python = tmp_path / "teamtasks_api.py"
    log = tmp_path / "dev.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reactor",
                "dev",
                str(app),
                "--port",
                str(free_port()),
                "--http-port",
                "0",
                "--data",
                str(tmp_path / "data"),
                "--admin-key-file",
                str(tmp_path / "admin.key"),
                "--codegen-out",
                str(out),
                "--codegen-python",
                str(python),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )
    try:

        def wait_for(condition: Callable[[], bool], what: str) -> None:
            deadline = time.monotonic() + 60
            while not condition():
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{what}; reactor dev log:\n{log.read_text()[-4000:]}")
                time.sleep(0.1)

        api_dts = out / "api.d.ts"
        wait_for(lambda: api_dts.is_file() and python.is_file(), "nothing generated at start")
        assert "{ title: string }" in api_dts.read_text()
        tasks = app / "tasks.py"
        tasks.write_text(
            tasks.read_text().replace('args={"title": v.string()}', 'args={"title": v.int64()}')
        )
        wait_for(lambda: "{ title: bigint }" in api_dts.read_text(), "api.d.ts not regenerated")
        wait_for(lambda: "    title: Int64" in python.read_text(), "the Python module neither")
        assert f"codegen: wrote {api_dts}" in log.read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- returns= -----------------------------------------------------------------------------------

RETURNS_APP = {
    "checked.py": """
from functions import query
from schema import v


@query(args={}, returns=v.string())
async def wrong(ctx):
    return 42


@query(args={}, returns=v.string())
async def right(ctx):
    return "fine"
""",
}


def test_a_returns_mismatch_is_a_server_error_with_a_request_id(
    tmp_path: Path, app_server_factory: Callable[..., ReactorServer]
) -> None:
    app = tmp_path / "returns_app"
    app.mkdir()
    for name, text in RETURNS_APP.items():
        (app / name).write_text(text)
    server = app_server_factory(app_dir=app)
    right = QueryReference[[NoArgs], str]("checked:right")
    with ReactorClient(server.url) as client:
        assert client.query(right) == "fine"  # a typed reference sends its path
        with pytest.raises(TypeError, match="is a query, not a mutation"):
            client.mutation(right)  # type: ignore[call-overload]
        with pytest.raises(FunctionFailed) as failed:
            client.query("checked:wrong")
    message = failed.value.message
    request_id = re.match(r"\[Request ID: ([0-9a-f]{16})\] Server Error", message)
    assert request_id, message
    assert failed.value.data is None and not failed.value.has_data
    # The server log has the whole story under that request id.
    deadline = time.monotonic() + 10
    while request_id.group(1) not in server.log_tail() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "ReturnValidationError" in server.log_tail(), server.log_tail()
