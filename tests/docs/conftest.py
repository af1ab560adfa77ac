"""Runs the docs: every shell command a markdown page shows, and every output it prints.

A page is read top to bottom as one session in a fresh work directory, the way a reader would
follow it. The markdown itself carries the few things a reader does but the blocks do not say,
as HTML comments (invisible when rendered), on the lines before a block or alone:

    <!-- doc-test: skip: REASON -->     the next block (and its output) is not run; REASON is
                                        required and says why
    <!-- doc-test: server -->           the next sh block starts a server that keeps running
    <!-- doc-test: server: COMMAND -->  stop the running server and start COMMAND as the server
    <!-- doc-test: restart -->          stop the running server and start its command again
    <!-- doc-test: setup: COMMAND -->   run the shell COMMAND now (preparation the page assumes)

Everything else follows from the blocks:

- A ``sh`` (or ``bash``, ``shell``, ``console``) block is run with bash in the work directory,
  with ``set -e``; it must succeed, and when the page shows no output for it, it must not
  print an HTTP API error body (``"status":"error"``). Variables it assigns carry over to
  the next blocks, as in one terminal. ``.venv/bin`` is first on ``PATH`` (``reactor``,
  ``python``).
- A ``python`` or ``js`` block whose first line names a file (``# chat/schema.py``,
  ``// live.mjs``) is written to that file; ``(continued)`` after the name appends instead. In a
  python block every such header line starts the next file.
- An untagged, ``text`` or ``json`` block right after a runnable block (only blank lines
  between) is what it prints; a file block followed by one is run (``python FILE``,
  ``node FILE``). Its stdout must match: a line ``...`` stands for any lines, ``...`` inside a
  line for any text; ids, admin keys, signed tokens, etags, HTTP dates, millisecond
  timestamps and durations (``0.91s``) match any value of their kind, and the value seen
  stands for the value shown from then on (a later command that pastes a shown id gets the
  real one).
- The session's own ports replace 3210 and 3211 (``REACTOR_PORT`` and ``REACTOR_HTTP_PORT``
  are set too), ``path/to/reactor`` is a copy of this checkout's ``examples/``, and the work
  directory is shown as ``/home/you``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
NODE_MODULES = ROOT / "tests" / "js" / "node_modules"
COMMAND_LANGS = frozenset({"sh", "bash", "shell", "console"})
OUTPUT_LANGS = frozenset({"", "text", "json"})
DIRECTIVES = frozenset({"skip", "server", "restart", "setup"})
COMMAND_TIMEOUT_S = 60.0  # the official CLI (npx convex ...) starts slowly on a busy machine
READY_TIMEOUT_S = 20.0

_FENCE = re.compile(r"^(```+)\s*([\w+-]*)\s*$")
_MARKER = re.compile(r"^<!--\s*doc-test:\s*(\w+)\s*(?::\s*(.*?))?\s*-->\s*$")
_FILE_HEADER = re.compile(r"^(?:#|//) ([\w./-]+\.(?:py|mjs|js))\b(.*)$")
_RELOAD_LINE = re.compile(r"reloaded \d+ functions|reload failed|reload refused")

_HTTP_DATE = r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT"
# Values that differ on every run: (kind, how the doc's value is found, what the real one is).
_VOLATILE: tuple[tuple[str, str, str], ...] = (
    ("key", r"reactor-admin\|[\w-]+", r"reactor-admin\|[\w-]+"),
    ("token", r"token=[\w.-]+", r"token=[\w.-]+"),
    ("sig", r"(?<=[0-9a-z]{20})\.[\w-]{20,}", r"\.[\w-]+"),
    ("hex", r"\b[0-9a-f]{64}\b", r"[0-9a-f]{64}"),
    ("id", r"\b(?=[0-9a-z]*[0-9])(?=[0-9a-z]*[a-z])[0-9a-z]{28,40}\b", r"[0-9a-z]{28,40}"),
    ("ms", r"\b1\d{12}(?:\.\d+)?\b", r"\d{13}(?:\.\d+)?"),
    ("date", _HTTP_DATE, _HTTP_DATE),
    ("seconds", r"\b\d+\.\d+s\b", r"\d+\.\d+s"),
)
_VOLATILE_FIND = re.compile("|".join(f"(?P<{kind}>{find})" for kind, find, _ in _VOLATILE))
_VOLATILE_REAL = {kind: real for kind, _, real in _VOLATILE}


class DocError(AssertionError):
    """A page's block or marker cannot be run, or its command fails, or its output is stale."""


@dataclass(frozen=True)
class Marker:
    line: int
    directive: str
    arg: str


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    adjacent: bool  # only blank lines between the previous block's closing fence and this one
    markers: tuple[Marker, ...]


Item = Marker | Block


def parse(markdown: str) -> list[Item]:
    """The page's fenced blocks and doc-test markers, in order; markers that must precede a
    block are attached to it."""
    items: list[Item] = []
    pending: list[Marker] = []
    lines = markdown.splitlines()
    i = 0
    blank_run = False  # since the last block closed, only blank lines
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.match(line)
        fence = _FENCE.match(line)
        if marker:
            directive, arg = marker.group(1), (marker.group(2) or "").strip()
            if directive not in DIRECTIVES:
                raise DocError(f"line {i + 1}: unknown doc-test directive {directive!r}")
            found = Marker(i + 1, directive, arg)
            if directive == "skip" and not arg:
                raise DocError(f"line {i + 1}: a skip must say why (doc-test: skip: REASON)")
            if directive in ("restart", "setup") or (directive == "server" and arg):
                items.append(found)
            else:
                pending.append(found)
            blank_run = False
            i += 1
        elif fence:
            ticks, lang = fence.group(1), fence.group(2)
            end = i + 1
            while end < len(lines) and lines[end].strip() != ticks:
                end += 1
            if end == len(lines):
                raise DocError(f"line {i + 1}: unclosed code block")
            text = "\n".join(lines[i + 1 : end]) + "\n"
            items.append(Block(i + 1, lang, text, blank_run and not pending, tuple(pending)))
            pending = []
            blank_run = True
            i = end + 1
        else:
            if line.strip():
                if pending:
                    where = ", ".join(str(m.line) for m in pending)
                    raise DocError(
                        f"line {where}: a doc-test marker must come right before a block"
                    )
                blank_run = False
            i += 1
    if pending:
        raise DocError(f"line {pending[0].line}: a doc-test marker at the end of the page")
    return items


def file_parts(block: Block) -> list[tuple[str, bool, str]]:
    """``(path, continued, source)`` for each file a python or js block writes; none when its
    first line names no file."""
    lines = block.text.splitlines(keepends=True)
    if block.lang not in ("python", "js") or not lines or not _FILE_HEADER.match(lines[0]):
        return []
    parts: list[tuple[str, bool, list[str]]] = []
    for line in lines:
        header = _FILE_HEADER.match(line)
        if header and (block.lang == "python" or not parts):
            parts.append((header.group(1), "(continued)" in header.group(2), []))
        parts[-1][2].append(line)
    return [(path, continued, "".join(source)) for path, continued, source in parts]


def expected_pattern(expected: str, bindings: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A regex for a shown output, and its group names for the doc's volatile values."""
    groups: dict[str, str] = {}  # doc value -> group name
    pieces: list[str] = []
    for line in expected.rstrip("\n").splitlines():
        if line.strip() == "...":
            pieces.append(r"(?:[^\n]*\n)*?")
            continue
        pos = 0
        for found in _VOLATILE_FIND.finditer(line):
            pieces.append(_literal(line[pos : found.start()]))
            value, kind = found.group(), found.lastgroup or ""
            if value in bindings:
                pieces.append(re.escape(bindings[value]))
            elif value in groups:
                pieces.append(f"(?P={groups[value]})")
            else:
                groups[value] = f"v{len(groups)}"
                pieces.append(f"(?P<{groups[value]}>{_VOLATILE_REAL[kind]})")
            pos = found.end()
        pieces.append(_literal(line[pos:]) + r"\n")
    return "".join(pieces), groups


def _literal(text: str) -> str:
    return r"[^\n]*?".join(re.escape(part) for part in text.split("..."))


def _is_listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DocSession:
    """One page followed in one work directory, with at most one server running."""

    def __init__(self, page: Path, work: Path) -> None:
        self.page = page
        self.work = work
        self.port = free_port()
        self.http_port = free_port()
        while self.http_port == self.port:
            self.http_port = free_port()
        self.bindings: dict[str, str] = {}  # a volatile value the doc shows -> the real one
        self.env_file = work / ".doc-test-env"
        self.env_file.write_text("")
        self.server: subprocess.Popen[bytes] | None = None
        self.server_command = ""
        self.server_log = work / ".doc-test-server.log"
        self.servers_started = 0
        self.reloads_before_change: int | None = None  # set while app files await a reload
        checkout = work / ".checkout"
        shutil.copytree(ROOT / "examples", checkout / "examples", ignore=_PYCACHE)
        self.checkout = checkout
        if NODE_MODULES.is_dir():  # `npm install convex` (skipped) would put it here
            (work / "node_modules").symlink_to(NODE_MODULES)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("REACTOR_")}
        self.env.update(
            PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            VIRTUAL_ENV=str(ROOT / ".venv"),
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
            COLUMNS="80",
            REACTOR_PORT=str(self.port),
            REACTOR_HTTP_PORT=str(self.http_port),
        )

    # --- the page

    def run(self) -> None:
        items = parse(self.page.read_text())
        try:
            previous: Block | None = None
            previous_ran = False
            for item in items:
                if isinstance(item, Marker):
                    self._directive(item)
                    previous = None
                    continue
                if item.lang in OUTPUT_LANGS and previous is not None and item.adjacent:
                    if previous_ran:
                        self._check_output(previous, item)
                    elif previous.lang in ("python", "js") and not previous.markers:
                        raise self._error(
                            item.line,
                            "an output shown for a program the test cannot run: start the "
                            "program with a file name (# name.py) or mark it doc-test: skip",
                        )
                    previous = None
                    continue
                previous, previous_ran = item, self._block(item, items)
        finally:
            self.stop_server()

    def _block(self, block: Block, items: list[Item]) -> bool:
        """Write or run one block; whether it ran (so its shown output is to be checked)."""
        skip = [m for m in block.markers if m.directive == "skip"]
        if skip:
            return False
        index = items.index(block)
        following = items[index + 1] if index + 1 < len(items) else None
        shows_output = (
            isinstance(following, Block) and following.lang in OUTPUT_LANGS and following.adjacent
        )
        if block.lang in COMMAND_LANGS:
            if any(m.directive == "server" for m in block.markers):
                self.start_server(block.text, block.line)
                return True
            self._pending_output = self.shell(block.text, block.line)
            if not shows_output and '"status":"error"' in self._pending_output:
                # a call the page shows without its answer must still succeed
                raise self._error(
                    block.line,
                    f"an HTTP call failed, and the page shows no output for it:\n{block.text}"
                    f"--- printed ---\n{self.normalise(self._pending_output)}",
                )
            return True
        parts = file_parts(block)
        for path, continued, source in parts:
            self.write(path, source, append=continued)
        if parts and shows_output:
            path = parts[-1][0]
            runner = "python" if block.lang == "python" else "node"
            self._pending_output = self.shell(f"{runner} {path}\n", block.line)
            return True
        return False

    def _directive(self, marker: Marker) -> None:
        if marker.directive == "setup":
            self.shell(marker.arg + "\n", marker.line)
        elif marker.directive == "server":
            self.start_server(marker.arg + "\n", marker.line)
        elif marker.directive == "restart":
            if self.server is None:
                raise self._error(marker.line, "doc-test: restart, but no server is running")
            self.start_server(self.server_command, marker.line)

    def _check_output(self, source: Block, shown: Block) -> None:
        if self.server is not None and source.text == self.server_command:
            self._check_server_output(source, shown)
            return
        actual = self.normalise(self._pending_output)
        pattern, groups = expected_pattern(shown.text, self.bindings)
        found = re.fullmatch(pattern, actual + "\n")
        if found is None:
            raise self._error(
                shown.line,
                f"the output shown is stale.\n--- command (line {source.line}) ---\n"
                f"{source.text}--- shown ---\n{shown.text}--- printed ---\n{actual}",
            )
        self._bind(found, groups)

    def _check_server_output(self, source: Block, shown: Block) -> None:
        pattern, groups = expected_pattern(shown.text, self.bindings)
        deadline = time.monotonic() + 5.0
        while True:
            actual = self.normalise(self.server_log.read_text(errors="replace"))
            found = re.match(pattern, actual + "\n")
            if found is not None:
                self._bind(found, groups)
                return
            if time.monotonic() > deadline:
                raise self._error(
                    shown.line,
                    f"the server's output shown is stale.\n--- command (line {source.line}) ---\n"
                    f"{source.text}--- shown ---\n{shown.text}--- printed ---\n{actual}",
                )
            time.sleep(0.1)

    def _bind(self, found: re.Match[str], groups: dict[str, str]) -> None:
        for doc_value, name in groups.items():
            self.bindings[doc_value] = found.group(name)

    # --- text in and out

    def localise(self, text: str) -> str:
        """A command or file as the doc shows it, for this session: real ids, ports, paths."""
        for doc_value in sorted(self.bindings, key=len, reverse=True):
            text = text.replace(doc_value, self.bindings[doc_value])
        text = re.sub(r"\b3210\b", str(self.port), text)
        text = re.sub(r"\b3211\b", str(self.http_port), text)
        return text.replace("path/to/reactor", str(self.checkout))

    def normalise(self, printed: str) -> str:
        """What a command printed, as the doc would show it."""
        printed = printed.replace(str(self.work), "/home/you")
        printed = re.sub(rf"\b{self.port}\b", "3210", printed)
        printed = re.sub(rf"\b{self.http_port}\b", "3211", printed)
        return "\n".join(line.rstrip() for line in printed.splitlines()).strip("\n")

    def write(self, path: str, source: str, *, append: bool) -> None:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        source = self.localise(source)
        if append:
            if not target.exists():
                raise DocError(f"{self.page.name}: {path} (continued) before {path} was written")
            source = target.read_text() + "\n\n" + source
        target.write_text(source)
        if "/" in path and self.reloads_before_change is None:
            self.reloads_before_change = self._reloads()

    # --- commands

    def shell(self, script: str, line: int) -> str:
        """Run a block's commands with bash; what they printed on stdout."""
        self._await_reload(line)
        wrapped = (
            f"set -a\n. {self.env_file}\nset -eo pipefail\n{self.localise(script)}\n"
            f"export -p > {self.env_file}\n"
        )
        try:
            done = subprocess.run(
                ["bash", "-c", wrapped],
                cwd=self.work,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=COMMAND_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            raise self._error(
                line,
                f"timed out after {COMMAND_TIMEOUT_S} s:\n{script}--- stdout ---\n"
                f"{(exc.stdout or b'').decode(errors='replace')}{self._server_tail()}",
            ) from exc
        stdout = done.stdout.decode(errors="replace")
        if done.returncode != 0:
            raise self._error(
                line,
                f"exit status {done.returncode}:\n{script}--- stdout ---\n{stdout}\n"
                f"--- stderr ---\n{done.stderr.decode(errors='replace')}{self._server_tail()}",
            )
        return stdout

    def start_server(self, script: str, line: int) -> None:
        self.stop_server()
        self.reloads_before_change = None
        self.servers_started += 1
        self.server_command = script
        self.server_log.write_text("")
        wrapped = f"set -a\n. {self.env_file}\nset +a\n{self.localise(script)}\n"
        with open(self.server_log, "ab") as log:
            self.server = subprocess.Popen(
                ["bash", "-c", wrapped],
                cwd=self.work,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: stopping it stops the server
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.server.poll() is not None:
                raise self._error(line, f"the server exited:\n{script}{self._server_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise self._error(line, f"the server is not up:\n{script}{self._server_tail()}")
            time.sleep(0.05)

    def stop_server(self) -> None:
        server, self.server = self.server, None
        if server is None:
            return
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
        # bash is gone at once; the server it started is not until it lets go of its port.
        deadline = time.monotonic() + 10.0
        while _is_listening(self.port):
            if time.monotonic() > deadline:
                os.killpg(server.pid, signal.SIGKILL)
                raise DocError(f"the server on port {self.port} did not stop")
            time.sleep(0.05)

    def _reloads(self) -> int:
        if not self.server_log.exists():
            return 0
        return len(_RELOAD_LINE.findall(self.server_log.read_text(errors="replace")))

    def _await_reload(self, line: int) -> None:
        """Under ``reactor dev``, after the page changed the app: wait until the server has
        reloaded it (and no further reload follows at once)."""
        before, self.reloads_before_change = self.reloads_before_change, None
        if before is None or self.server is None or " dev " not in f" {self.server_command} ":
            return
        deadline = time.monotonic() + 10.0
        seen = before
        while True:
            now = self._reloads()
            if now > seen:
                seen = now
                time.sleep(0.7)  # the watcher polls every 0.5 s: a second change shows by then
                if self._reloads() == seen:
                    return
            elif time.monotonic() > deadline:
                raise self._error(line, f"reactor dev did not reload the app{self._server_tail()}")
            else:
                time.sleep(0.05)

    def _server_tail(self) -> str:
        if not self.server_log.exists():
            return ""
        return f"\n--- server log (tail) ---\n{self.server_log.read_text(errors='replace')[-3000:]}"

    def _error(self, line: int, message: str) -> DocError:
        where = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return DocError(f"{where}:{line}: {message}")

    _pending_output = ""


_PYCACHE = shutil.ignore_patterns("__pycache__", ".reactor", "node_modules")


@pytest.fixture
def run_doc(tmp_path: Path) -> Iterator[Callable[[Path], DocSession]]:
    """Runs a markdown page in a fresh work directory; its server is stopped at the end."""
    sessions: list[DocSession] = []

    def run(page: Path) -> DocSession:
        work = tmp_path / f"work{len(sessions)}"
        work.mkdir()
        session = DocSession(page, work)
        sessions.append(session)
        session.run()
        return session

    yield run
    for session in sessions:
        session.stop_server()
