"""Test helpers that provide a MongoDB wire-protocol URL.

Tests get a MongoDB either from ``REACTOR_TEST_MONGODB_URL`` (a real server,
ideally a single-node replica set) or from the mongoeco emulator, which
``scripts/install`` puts in ``.venv-mongoeco`` when Python 3.13 is available.
mongoeco is a standalone in-memory server: no change streams, no
``replicaSet=`` URLs, and transaction conflicts that do not behave like
MongoDB's (see tests/mongo).
"""

from __future__ import annotations

import hashlib
import os
import queue
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

ENV_VAR = "REACTOR_TEST_MONGODB_URL"
MONGOECO_VENV = ".venv-mongoeco"
MONGOECO_SCRIPT = Path("scripts") / "mongoeco_server.py"
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
_READY = "READY "


def test_mongodb_url() -> str | None:
    """The MongoDB URL from ``REACTOR_TEST_MONGODB_URL``, or None if unset/empty."""
    return os.environ.get(ENV_VAR) or None


# Not a pytest test, despite the name.
test_mongodb_url.__test__ = False  # type: ignore[attr-defined]


def mongoeco_python(project_root: Path) -> Path:
    """The interpreter of the mongoeco virtualenv (it may not exist)."""
    return project_root / MONGOECO_VENV / "bin" / "python"


@contextmanager
def mongoeco_server(project_root: Path) -> Iterator[str]:
    """Run ``scripts/mongoeco_server.py`` on a free port and yield its URL.

    The server is stopped with SIGTERM on exit, and killed if it has not
    exited after 5 seconds. The server also exits if this process dies (its
    stdin pipe closes).
    """
    python = mongoeco_python(project_root)
    script = project_root / MONGOECO_SCRIPT
    if not python.exists():
        raise RuntimeError(
            f"{python} is missing: run `sh -e scripts/install` with Python 3.13 available "
            "to install the mongoeco MongoDB emulator"
        )
    if not script.exists():
        raise RuntimeError(f"{script} is missing")

    with tempfile.TemporaryFile(mode="w+") as stderr:
        proc = subprocess.Popen(
            [str(python), str(script), "--port", "0", "--stop-on-stdin-eof"],
            cwd=project_root,
            # The server exits when this pipe closes, so it cannot outlive us.
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            yield _wait_ready(proc, stderr)
        finally:
            _stop(proc)


def _wait_ready(proc: subprocess.Popen[str], stderr: IO[str]) -> str:
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    stdout = proc.stdout

    def pump() -> None:
        # Read until EOF so the child never blocks on a full stdout pipe.
        for line in stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="mongoeco-stdout", daemon=True).start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    seen: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(
                f"mongoeco server did not print READY within {STARTUP_TIMEOUT_S:.0f} s; "
                f"stdout so far: {''.join(seen)!r}"
            )
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            code = proc.wait()
            stderr.seek(0)
            raise RuntimeError(
                f"mongoeco server exited with code {code} before it was ready; "
                f"stdout: {''.join(seen)!r}; stderr: {stderr.read()[-2000:]}"
            )
        if line.startswith(_READY):
            return line[len(_READY) :].strip()
        seen.append(line)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


def unique_database_url(
    base_url: str, prefix: str = "reactor_test", *, key: str | None = None
) -> str:
    """``base_url`` with its database replaced by ``<prefix>_<12 hex digits>``: random, or
    derived from ``key`` (the same key names the same database: a test's restarts).

    The query string (``directConnection``, ``replicaSet``, ...) is kept.
    """
    parts = urlsplit(base_url)
    suffix = secrets.token_hex(6) if key is None else hashlib.sha1(key.encode()).hexdigest()[:12]
    name = f"{prefix}_{suffix}"
    # pymongo needs the "/" between the host list and the "?" options.
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def drop_database_quietly(url: str, timeout_ms: int = 5000) -> None:
    """Drop the database named in ``url``; errors (server gone, ...) are ignored."""
    from pymongo import MongoClient
    from pymongo.uri_parser import parse_uri

    from reactor.storage.mongo.engine import parse_mongo_url

    try:
        client_url, database, _feed = parse_mongo_url(url)  # without Reactor's own options
        if not parse_uri(url)["database"]:
            return
        client: MongoClient[dict[str, object]] = MongoClient(
            client_url, serverSelectionTimeoutMS=timeout_ms
        )
        try:
            client.drop_database(database)
        finally:
            client.close()
    except Exception:
        pass
