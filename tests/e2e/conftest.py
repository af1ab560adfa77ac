"""End-to-end fixtures: a real Reactor server in a subprocess, and runners for the official
clients' scripts (Node for the npm `convex` package, child Pythons for the PyPI one)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = Path(__file__).resolve().parent / "app"
JS_DIR = ROOT / "tests" / "js"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ReactorServer:
    """`python -m reactor serve APP --port PORT --data DIR` as a subprocess.

    The server's stdout and stderr go to a log file (never a pipe that could fill up), and
    every failure message includes the tail of that log.
    """

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        app_dir: Path = APP_DIR,
        extra_env: dict[str, str] | None = None,
        flags: tuple[str, ...] = (),
    ) -> None:
        self.app_dir = app_dir
        self.flags = flags
        self.extra_env = dict(extra_env or {})
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.site_port = free_port()
        self.admin_key_file = data_dir.parent / "admin_key"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def site_url(self) -> str:
        return f"http://127.0.0.1:{self.site_port}"

    @property
    def admin_key(self) -> str:
        return self.admin_key_file.read_text().strip()

    def wait_admin_key(self, timeout: float = 10.0) -> str:
        """The admin key, once the server has written it (just after it starts listening)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                key = self.admin_key_file.read_text().strip()
            except OSError:
                key = ""
            if key:
                return key
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no admin key in {self.admin_key_file} after {timeout}s\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def log_tail(self, limit: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no server log>"
        return text[-limit:]

    def start(self) -> None:
        assert self.proc is None, "server already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        cmd = [
            sys.executable,
            "-m",
            "reactor",
            "serve",
            str(self.app_dir),
            "--port",
            str(self.port),
            "--data",
            str(self.data_dir),
            "--http-port",
            str(self.site_port),
            "--admin-key-file",
            str(self.admin_key_file),
            *self.flags,
        ]
        # The e2e apps' functions sleep for seconds to open windows for crashes and resends;
        # the 1 s default limit is tested by test_runners.py, which gives it explicitly.
        env = dict(
            os.environ,
            PYTHONUNBUFFERED="1",
            REACTOR_FUNCTION_TIMEOUT_S="30",
            **self.extra_env,
        )
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT
        last_error = "no attempt"
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"reactor server exited with code {code} before becoming ready "
                    f"(port {self.port}).\n--- server log ---\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1) as resp:
                    if resp.status == 200:
                        return
                    last_error = f"GET / returned {resp.status}"
            except (OSError, urllib.error.URLError) as exc:
                last_error = repr(exc)
            time.sleep(0.05)
        raise RuntimeError(
            f"reactor server not ready on {self.url} after {READY_TIMEOUT}s ({last_error}).\n"
            f"--- server log ---\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        else:
            proc.wait()

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up (crash simulation)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()

    def restart(self, *, hard: bool = False) -> None:
        """Stop (SIGKILL if `hard`) and start again on the same port and data directory."""
        if hard:
            self.kill()
        else:
            self.stop()
        self.start()

    def assert_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"reactor server is not running.\n{self.log_tail()}")


@pytest.fixture(scope="session")
def server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[], ReactorServer]]:
    """Makes started servers, each with its own data dir; stops them all at the end."""
    servers: list[ReactorServer] = []

    def make() -> ReactorServer:
        base = tmp_path_factory.mktemp("reactor")
        srv = ReactorServer(base / "data", base / "server.log")
        servers.append(srv)
        srv.start()
        return srv

    try:
        yield make
    finally:
        for srv in servers:
            srv.stop()


@pytest.fixture(scope="session")
def app_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., ReactorServer]]:
    """make(app_dir=APP_DIR, env=None, start=True) -> ReactorServer: a server on any app
    directory, with extra environment variables for the server process (e.g. settings an app's
    ``auth_config.py`` reads); each has its own data dir and all are stopped at the end."""
    servers: list[ReactorServer] = []

    def make(
        app_dir: Path = APP_DIR, env: dict[str, str] | None = None, start: bool = True
    ) -> ReactorServer:
        base = tmp_path_factory.mktemp("reactor")
        srv = ReactorServer(base / "data", base / "server.log", app_dir=app_dir, extra_env=env)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    try:
        yield make
    finally:
        for srv in servers:
            srv.stop()


@pytest.fixture(scope="session")
def reactor_server(server_factory: Callable[[], ReactorServer]) -> ReactorServer:
    """One server shared by the official-client tests (they use unique names, so they don't
    interfere)."""
    return server_factory()


@pytest.fixture()
def server_url(reactor_server: ReactorServer) -> str:
    reactor_server.assert_alive()
    return reactor_server.url


# --- Node -------------------------------------------------------------------------------


class ScriptResult:
    def __init__(self, argv: list[str], proc: subprocess.CompletedProcess[str]) -> None:
        self.argv = argv
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def describe(self) -> str:
        return (
            f"command: {' '.join(self.argv)}\nexit code: {self.returncode}\n"
            f"--- stdout ---\n{self.stdout[-8000:]}\n--- stderr ---\n{self.stderr[-8000:]}"
        )

    def json(self) -> Any:
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        if self.returncode != 0 or not lines:
            raise AssertionError(f"script failed\n{self.describe()}")
        try:
            return json.loads(lines[-1])
        except ValueError as exc:
            raise AssertionError(
                f"script printed no JSON result ({exc})\n{self.describe()}"
            ) from exc


def _run(
    argv: list[str], *, cwd: Path, timeout: float, server: ReactorServer | None
) -> ScriptResult:
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        log = f"\n--- server log ---\n{server.log_tail()}" if server else ""
        raise AssertionError(
            f"{' '.join(argv)} timed out after {timeout}s\n--- stdout ---\n{out}\n"
            f"--- stderr ---\n{err}{log}"
        ) from None
    return ScriptResult(argv, proc)


@pytest.fixture(scope="session")
def node_bin() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Node 20 is required for the official npm client tests)")
    if not (JS_DIR / "node_modules" / "convex" / "package.json").exists():
        pytest.fail(
            f"{JS_DIR}/node_modules is missing: run `cd tests/js && npm install` (or make install)"
        )
    return node


@pytest.fixture(scope="session")
def run_node(node_bin: str, reactor_server: ReactorServer) -> Callable[..., ScriptResult]:
    """run_node("scenarios.mjs", url, *args, timeout=60) -> ScriptResult (use .json())."""

    def run(script: str, *args: str, timeout: float = 60.0) -> ScriptResult:
        return _run([node_bin, script, *args], cwd=JS_DIR, timeout=timeout, server=reactor_server)

    return run


@pytest.fixture(scope="session")
def run_node_on(node_bin: str) -> Callable[..., ScriptResult]:
    """run_node_on(server, "script.mjs", *args, timeout=60) -> ScriptResult: like run_node,
    for a server other than the shared one (its log is shown on a timeout)."""

    def run(server: ReactorServer, script: str, *args: str, timeout: float = 60.0) -> ScriptResult:
        return _run([node_bin, script, *args], cwd=JS_DIR, timeout=timeout, server=server)

    return run


# --- child Pythons (official PyPI client) ------------------------------------------------


@pytest.fixture(scope="session")
def run_python(reactor_server: ReactorServer) -> Callable[..., ScriptResult]:
    """run_python(script_path, *args, timeout=30) -> ScriptResult, run with this interpreter."""

    def run(script: str | Path, *args: str, timeout: float = 30.0) -> ScriptResult:
        return _run(
            [sys.executable, str(script), *args], cwd=ROOT, timeout=timeout, server=reactor_server
        )

    return run


# --- long-running children that report JSON lines as they go ----------------------------


class StreamingChild:
    """A child process printing one JSON object per line, read with per-line timeouts.

    Lines that are not JSON objects (e.g. the convex client's own console.log output) are
    kept in ``other_lines`` and skipped.
    """

    def __init__(self, argv: list[str], cwd: Path, stderr_path: Path) -> None:
        self.argv = argv
        self.stderr_path = stderr_path
        self.events: list[Any] = []
        self.other_lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        with open(stderr_path, "w") as stderr:
            self.proc = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def describe(self) -> str:
        return (
            f"command: {' '.join(self.argv)}\nexit code: {self.proc.poll()}\n"
            f"events so far: {self.events}\nother stdout: {''.join(self.other_lines)[-4000:]}\n"
            f"--- stderr ---\n{self.stderr()[-8000:]}"
        )

    def next_event(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no event within {timeout}s\n{self.describe()}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self._lines.put(None)
                self.proc.wait(timeout=5)
                raise AssertionError(f"child exited before the next event\n{self.describe()}")
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                self.other_lines.append(line)
                continue
            self.events.append(event)
            return event

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            event = self.next_event(max(0.01, deadline - time.monotonic()))
            if predicate(event):
                return event

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"child did not exit within {timeout}s\n{self.describe()}"
            ) from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture()
def spawn(tmp_path: Path) -> Iterator[Callable[..., StreamingChild]]:
    """spawn(argv, cwd=ROOT) -> StreamingChild; every child is killed at teardown."""
    children: list[StreamingChild] = []

    def start(argv: list[str], cwd: Path = ROOT) -> StreamingChild:
        child = StreamingChild(argv, cwd, tmp_path / f"child-{len(children)}.stderr")
        children.append(child)
        return child

    try:
        yield start
    finally:
        for child in children:
            child.close()
