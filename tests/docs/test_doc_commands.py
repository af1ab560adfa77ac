"""Every command the docs show is run, and every output they print is what it really prints
(the convention is in conftest.py). Plus the README's `make run` quick start, and the runner's
own failures: a stale output, a failing unmarked block, a skip with no reason."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import ROOT, DocError, DocSession, free_port

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_page_commands_and_outputs(page: Path, run_doc: Callable[[Path], DocSession]) -> None:
    run_doc(page)


def test_reference_command_line_names_every_command_and_option() -> None:
    """The reference's synopsis of the command line (a block the runner cannot run) against
    what `reactor --help` and each command's `--help` really offer."""
    reference = (ROOT / "docs" / "reference.md").read_text()
    synopsis = reference.split("## Command line\n\n```\n", 1)[1].split("```", 1)[0]
    env = {**os.environ, "COLUMNS": "200"}
    reactor = str(ROOT / ".venv" / "bin" / "reactor")

    def help_of(*command: str) -> str:
        done = subprocess.run([reactor, *command, "--help"], capture_output=True, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout.decode()

    commands = re.search(r"\{([\w,-]+)\}", help_of()).group(1).split(",")  # type: ignore[union-attr]
    for command in commands:
        # its line, and the indented lines that continue it
        found = re.search(rf"^reactor +{command} .*(?:\n +.*)*", synopsis, re.M)
        assert found, f"reactor {command} is missing from the reference's command line"
        if "[same options]" in found.group() or "[same --url" in found.group():
            continue  # the line names its options by reference to the line above
        options = set(re.findall(r"--[a-z][a-z-]+", help_of(command))) - {"--help"}
        shown = set(re.findall(r"--[a-z][a-z-]+", found.group()))
        assert options <= shown, f"reactor {command}: {sorted(options - shown)} not in the synopsis"


def test_readme_quick_start_make_run(tmp_path: Path) -> None:
    """`make run` serves examples/taskboard on PORT (3210 by default, as the README says),
    `examples/watch_taskboard.py` adds a task and watches it on the server REACTOR_URL names, and
    `make test` is the Makefile's target for the whole suite (not run here: it is the suite)."""
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make run     # serves examples/taskboard on http://127.0.0.1:3210" in readme
    assert re.search(r"^PORT \?= 3210$", makefile, re.M)
    assert re.search(r"^test: install\n\tsh -e scripts/test$", makefile, re.M)
    assert "make run PORT=4000" in readme

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REACTOR_")}
    env["REACTOR_DATA"] = str(tmp_path / "data")  # not the checkout's ./.reactor
    log = tmp_path / "make-run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            # -o: never re-install into the shared .venv from a test, even if pyproject.toml
            # is newer than the install stamp
            ["make", "--no-print-directory", "-o", ".venv/.installed", "run", f"PORT={port}"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        version = _get_json(f"http://127.0.0.1:{port}/version", proc, log)
        assert isinstance(version, str) and version
        assert "examples/taskboard" in log.read_text()
        # "REACTOR_URL=http://127.0.0.1:4000 .venv/bin/python examples/watch_taskboard.py ann"
        assert 'examples/watch_taskboard.py ann "buy milk"' in readme
        assert (
            "REACTOR_URL=http://127.0.0.1:4000 .venv/bin/python examples/watch_taskboard.py ann"
            in readme
        )
        url = f"http://127.0.0.1:{port}"
        watched = tmp_path / "watch.out"
        with open(watched, "wb") as out:
            watcher = subprocess.Popen(
                [".venv/bin/python", "examples/watch_taskboard.py", "ann", "buy milk"],
                cwd=ROOT,
                env={**env, "REACTOR_URL": url, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 20
            while "  [ ] buy milk" not in watched.read_text():
                assert watcher.poll() is None, watched.read_text()
                assert time.monotonic() < deadline, watched.read_text()
                time.sleep(0.05)
            assert f"watching ann's tasks on {url}" in watched.read_text()
        finally:
            watcher.send_signal(signal.SIGINT)  # Ctrl+C, as the script says
            watcher.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def _get_json(url: str, proc: subprocess.Popen[bytes], log: Path) -> object:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, f"make run exited:\n{log.read_text()}"
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                body = resp.read().decode()
                try:
                    return json.loads(body)
                except ValueError:
                    return body
        except OSError:
            assert time.monotonic() < deadline, f"make run not up:\n{log.read_text()}"
            time.sleep(0.1)


class TestRunnerFails:
    """The runner is only worth something if a stale page fails it."""

    def run_text(self, tmp_path: Path, text: str) -> DocSession:
        page = tmp_path / "page.md"
        page.write_text(text)
        work = tmp_path / "work"
        work.mkdir()
        session = DocSession(page, work)
        session.run()
        return session

    def test_matching_output_passes_and_binds_ids(self, tmp_path: Path) -> None:
        session = self.run_text(
            tmp_path,
            "```sh\necho 'id k573abcdefghjkmnpqrstvwxyz012345 at 1795250323936.87'\n```\n\n"
            "```\nid j577gjrxw7mp5sjzg0db4sezzh8jmdym at 1700000000000.1\n```\n\n"
            "```sh\necho j577gjrxw7mp5sjzg0db4sezzh8jmdym\n```\n\n"
            "```\nk573abcdefghjkmnpqrstvwxyz012345\n```\n",
        )
        assert session.bindings["j577gjrxw7mp5sjzg0db4sezzh8jmdym"] == (
            "k573abcdefghjkmnpqrstvwxyz012345"
        )

    def test_stale_output_fails(self, tmp_path: Path) -> None:
        with pytest.raises(DocError, match="the output shown is stale"):
            self.run_text(tmp_path, "```sh\necho hello\n```\n\n```\nhullo\n```\n")

    def test_failing_unmarked_command_fails(self, tmp_path: Path) -> None:
        with pytest.raises(DocError, match="exit status 127"):
            self.run_text(tmp_path, "```sh\nno-such-command --here\n```\n")

    def test_unshown_api_error_fails(self, tmp_path: Path) -> None:
        with pytest.raises(DocError, match="an HTTP call failed"):
            self.run_text(tmp_path, """```sh\necho '{"status":"error"}'\n```\n""")

    def test_skip_needs_a_reason(self, tmp_path: Path) -> None:
        with pytest.raises(DocError, match="a skip must say why"):
            self.run_text(tmp_path, "<!-- doc-test: skip -->\n```sh\nmake install\n```\n")

    def test_skip_with_reason_is_not_run(self, tmp_path: Path) -> None:
        self.run_text(
            tmp_path,
            "<!-- doc-test: skip: needs the network -->\n```sh\nexit 1\n```\n\n```\nx\n```\n",
        )

    def test_output_of_a_program_without_a_file_name_fails(self, tmp_path: Path) -> None:
        with pytest.raises(DocError, match="output shown for a program the test cannot run"):
            self.run_text(tmp_path, "```python\nprint(1)\n```\n\n```\n1\n```\n")

    def test_program_with_a_file_name_is_run(self, tmp_path: Path) -> None:
        with pytest.raises(DocError, match="the output shown is stale"):
            self.run_text(tmp_path, "```python\n# one.py\nprint(1)\n```\n\n```\n2\n```\n")

    def test_unknown_directive_fails(self, tmp_path: Path) -> None:
        with pytest.raises(DocError, match="unknown doc-test directive"):
            self.run_text(tmp_path, "<!-- doc-test: ignore: x -->\n```sh\ntrue\n```\n")
