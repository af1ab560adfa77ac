"""Execution logs, metrics and health against one real `reactor serve --log-format json` of
tests/e2e/observability_app: `/health`, `/ready`, `/metrics` (parsed as Prometheus text, counters
moving after calls), `reactor logs` (filters, --json, --follow), the official `npx convex logs`
printing a mutation's log line within 2 s, and the JSON lines of the server log."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from client_sdk import AsyncReactorClient
from tests.e2e.conftest import ROOT, ReactorServer

APP = Path(__file__).resolve().parent / "observability_app"
CONVEX_MAIN = ROOT / "tests" / "js" / "node_modules" / "convex" / "bin" / "main.js"
CLI_TIMEOUT = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReactorServer]:
    base = tmp_path_factory.mktemp("observability")
    srv = ReactorServer(
        base / "data", base / "server.log", app_dir=APP, flags=("--log-format", "json")
    )
    srv.start()
    srv.wait_admin_key()
    try:
        yield srv
    finally:
        srv.stop()


def call(server: ReactorServer, kind: str, path: str, args: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/api/{kind}", json={"path": path, "args": args}, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def admin(server: ReactorServer) -> dict[str, str]:
    return {"Authorization": f"Convex {server.admin_key}"}


def records(server: ReactorServer, **params: Any) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{server.url}/api/execution_logs", params=params, headers=admin(server), timeout=60
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["records"]
    return found


def wait_for_record(
    server: ReactorServer, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in records(server):
            if predicate(record):
                return record
        time.sleep(0.05)
    raise AssertionError(f"no such execution record after {timeout}s:\n{records(server)[-10:]}")


def metrics(server: ReactorServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of GET /metrics, parsed as Prometheus text: (name, labels) -> value."""
    response = httpx.get(f"{server.url}/metrics", headers=admin(server), timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def sample(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def reactor_cli(server: ReactorServer, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REACTOR_ADMIN_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "reactor", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )


class Child:
    """A long-running subprocess whose stdout lines are read on a thread."""

    def __init__(self, argv: list[str], env: dict[str, str], stderr_path: Path) -> None:
        self._stderr = open(stderr_path, "wb")  # closed in close()
        self.stderr_path = stderr_path
        self.proc = subprocess.Popen(
            argv,
            cwd=stderr_path.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))

    def wait_line(self, predicate: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no matching line within {timeout}s; stdout so far: {self.seen}\n"
                    f"stderr: {self.stderr_path.read_text(errors='replace')[-3000:]}"
                )
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(line)
            if predicate(line):
                return line

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()


# -- health ----------------------------------------------------------------------------------


def test_health_and_ready(server: ReactorServer) -> None:
    health = httpx.get(f"{server.url}/health", timeout=10)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = httpx.get(f"{server.url}/ready", timeout=10)
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


# -- metrics ---------------------------------------------------------------------------------


def test_metrics_need_the_admin_key(server: ReactorServer) -> None:
    refused = httpx.get(f"{server.url}/metrics", timeout=10)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "BadAdminKey"
    wrong = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": "Convex not-the-key"}, timeout=10
    )
    assert wrong.status_code == 401, wrong.text


def test_metrics_move_after_calls(server: ReactorServer) -> None:
    before = metrics(server)
    call(server, "mutation", "notes:add", {"text": "metrics"})
    call(server, "query", "notes:count", {})
    refused = call(server, "mutation", "notes:refuse", {"reason": "metrics"})
    assert refused["status"] == "error"
    crashed = call(server, "mutation", "notes:crash", {})
    assert "Server Error" in crashed["errorMessage"]
    after = metrics(server)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    executions = "reactor_function_executions_total"
    assert moved(executions, path="notes:add", kind="mutation", caller="http", outcome="success")
    assert moved(executions, path="notes:count", kind="query", caller="http", outcome="success")
    assert (
        moved(
            "reactor_function_errors_total",
            kind="mutation",
            outcome="user_error",
            code="ConvexError",
        )
        == 1
    )
    assert (
        moved(
            "reactor_function_errors_total",
            kind="mutation",
            outcome="system_error",
            code="ServerError",
        )
        == 1
    )
    assert moved("reactor_function_duration_seconds_count", path="notes:count", kind="query") == 1
    assert moved("reactor_commits_total") >= 1
    assert sample(after, "reactor_storage_bytes") > 0
    assert ("reactor_scheduler_queue_depth", ()) in after
    assert ("reactor_scheduler_lag_seconds", ()) in after


def test_occ_conflicts_are_retried_and_counted(server: ReactorServer) -> None:
    name = f"tally-{uuid.uuid4().hex[:8]}"
    before = metrics(server)

    async def bump_many() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{server.url}/api/mutation",
                        json={"path": "notes:bump", "args": {"name": name}},
                    )
                    for _ in range(8)
                )
            )

    for response in asyncio.run(bump_many()):
        # Each commits, or (a loaded machine) runs out of retries: 503, as Convex answers.
        if response.status_code == 503:
            assert response.json()["code"] == "OptimisticConcurrencyControlFailure", response.text
        else:
            assert response.json()["status"] == "success", response.text
    after = metrics(server)
    mine = records(server, path="notes:bump")
    retries = sum(r["occ_retries"] for r in mine)
    exhausted = sum(r["error_code"] == "OptimisticConcurrencyControlFailure" for r in mine)
    assert retries, "eight concurrent read-modify-writes never conflicted"
    assert all(r["outcome"] == "system_error" for r in mine if r["error_code"])

    def moved(metric: str) -> float:
        return sample(after, metric, path="notes:bump") - sample(before, metric, path="notes:bump")

    assert moved("reactor_occ_retries_total") == retries
    assert moved("reactor_occ_conflicts_total") == retries + exhausted


def test_live_sessions_reruns_and_push_latency(server: ReactorServer) -> None:
    async def scenario() -> tuple[float, float]:
        async with AsyncReactorClient(server.url) as client:
            subscription = client.subscribe("notes:count", {})
            start = await asyncio.wait_for(subscription.__anext__(), 10)
            assert sample(metrics(server), "reactor_live_sessions") >= 1
            await client.mutation("notes:add", {"text": "live"})
            value = await asyncio.wait_for(subscription.__anext__(), 10)
            await subscription.aclose()
            return start, value

    before = metrics(server)
    start, value = asyncio.run(scenario())
    assert value == start + 1
    rerun = wait_for_record(
        server,
        lambda r: r["path"] == "notes:count" and r["live_rerun"] and r["caller"] == "websocket",
    )
    assert rerun["outcome"] == "success"
    after = metrics(server)
    assert sample(after, "reactor_live_query_reruns_total") > sample(
        before, "reactor_live_query_reruns_total"
    )
    assert sample(after, "reactor_push_latency_seconds_count") > sample(
        before, "reactor_push_latency_seconds_count"
    )


def test_the_cron_run_is_recorded(server: ReactorServer) -> None:
    tick = wait_for_record(server, lambda r: r["path"] == "notes:tick" and r["caller"] == "cron")
    assert (tick["caller"], tick["kind"], tick["log_lines"]) == ("cron", "mutation", ["[LOG] tick"])
    assert sample(metrics(server), "reactor_cron_runs_total", path="notes:tick", outcome="success")


# -- execution records -----------------------------------------------------------------------


def test_a_scheduled_run_is_recorded(server: ReactorServer) -> None:
    call(server, "mutation", "notes:later", {})
    tick = wait_for_record(
        server, lambda r: r["path"] == "notes:tick" and r["caller"] == "scheduler"
    )
    assert (tick["kind"], tick["outcome"], tick["log_lines"]) == (
        "mutation",
        "success",
        ["[LOG] tick"],
    )


def test_records_carry_caller_counts_and_log_lines(server: ReactorServer) -> None:
    text = f"rec-{uuid.uuid4().hex[:8]}"
    call(server, "action", "notes:add_via_action", {"text": text})
    nested = wait_for_record(server, lambda r: f"[LOG] adding note {text}" in r["log_lines"])
    assert (nested["path"], nested["kind"], nested["caller"]) == (
        "notes:add",
        "mutation",
        "internal",
    )
    assert nested["documents_written"] == 1
    action = wait_for_record(server, lambda r: r["path"] == "notes:add_via_action")
    assert (action["kind"], action["caller"], action["outcome"]) == ("action", "http", "success")
    count = call(server, "query", "notes:count", {})["value"]
    query = records(server, path="notes:count", limit=1)[0]
    assert query["documents_read"] == count

    pong = httpx.get(f"{server.site_url}/ping", timeout=10)
    assert pong.text == "pong"
    ping = wait_for_record(server, lambda r: r["path"] == "GET /ping")
    assert (ping["kind"], ping["caller"], ping["log_lines"]) == (
        "http_action",
        "http_action",
        ["[LOG] pinged"],
    )


def test_bad_filters_are_refused_with_a_clear_error(server: ReactorServer) -> None:
    for params, message in (
        ({"outcome": "bad"}, "unknown outcome 'bad'"),
        ({"limit": "-1"}, "`limit` must not be negative"),
        ({"cursor": "soon"}, "`cursor` must be an integer"),
        ({"wait": "forever"}, "`wait` must be a number"),
    ):
        response = httpx.get(
            f"{server.url}/api/execution_logs", params=params, headers=admin(server), timeout=10
        )
        assert response.status_code == 400, response.text
        assert message in response.json()["message"]
    refused = httpx.get(f"{server.url}/api/execution_logs", timeout=10)
    assert refused.status_code == 403


def test_server_log_has_one_json_line_per_execution(server: ReactorServer) -> None:
    text = f"json-{uuid.uuid4().hex[:8]}"
    call(server, "mutation", "notes:add", {"text": text})
    deadline = time.monotonic() + 10
    while True:
        lines = [
            json.loads(line)
            for line in server.log_path.read_text().splitlines()
            if line.startswith("{")
        ]
        mine = [
            line
            for line in lines
            if f"[LOG] adding note {text}" in line.get("execution", {}).get("log_lines", [])
        ]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(mine) == 1, server.log_tail()
    (line,) = mine
    assert (line["level"], line["logger"]) == ("info", "reactor.executions")
    execution = line["execution"]
    assert execution["path"] == "notes:add"
    assert set(execution) == {
        "cursor",
        "timestamp",
        "path",
        "kind",
        "caller",
        "live_rerun",
        "duration_s",
        "outcome",
        "error_code",
        "error_message",
        "request_id",
        "documents_read",
        "documents_written",
        "occ_retries",
        "log_lines",
        "traceback",
        "deferred_runs",
        "batched",
    }
    assert "notes:add" in line["message"]
    # Every line of the server log is JSON in this format (uvicorn's own too).
    bad = [
        line
        for line in server.log_path.read_text().splitlines()
        if line.strip() and not line.startswith(("{", "=====", "  "))
    ]
    assert not [b for b in bad if "Admin key" not in b], bad


# -- reactor logs ----------------------------------------------------------------------------


def test_reactor_logs_shows_calls_and_filters(server: ReactorServer) -> None:
    text = f"cli-{uuid.uuid4().hex[:8]}"
    call(server, "mutation", "notes:add", {"text": text})
    call(server, "mutation", "notes:refuse", {"reason": text})
    key = server.admin_key
    shown = reactor_cli(server, "logs", "--url", server.url, "--admin-key", key)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout.splitlines()
    (head,) = [i for i, line in enumerate(out) if line.endswith(f"[LOG] adding note {text}")]
    assert " mutation notes:add [http] " in out[head - 1]
    assert " success (read 0 written 1)" in out[head - 1]

    failures = reactor_cli(
        server, "logs", "--url", server.url, "--admin-key", key, "--status", "failure",
        "--function", "notes:refuse", "--json", "--limit", "1",
    )  # fmt: skip
    assert failures.returncode == 0, failures.stderr
    (only,) = [json.loads(line) for line in failures.stdout.splitlines()]
    assert (only["path"], only["outcome"], only["error_code"]) == (
        "notes:refuse",
        "user_error",
        "ConvexError",
    )
    assert only["log_lines"] == [f"[LOG] refusing: {text}"]

    by_id = reactor_cli(
        server, "logs", "--url", server.url, "--admin-key", key, "--request-id", only["request_id"]
    )
    assert by_id.returncode == 0, by_id.stderr
    assert by_id.stdout.count("notes:refuse") == 1
    assert only["request_id"] in by_id.stdout

    successes = reactor_cli(
        server, "logs", "--url", server.url, "--admin-key", key, "--status", "success", "--json"
    )
    assert {json.loads(line)["outcome"] for line in successes.stdout.splitlines()} == {"success"}


def test_reactor_logs_errors_are_clear(server: ReactorServer) -> None:
    no_key = reactor_cli(server, "logs", "--url", server.url)
    assert no_key.returncode == 2 and "an admin key is needed" in no_key.stderr
    wrong = reactor_cli(server, "logs", "--url", server.url, "--admin-key", "nope")
    assert wrong.returncode == 1 and "Unauthenticated" in wrong.stderr, wrong.stderr
    negative = reactor_cli(
        server, "logs", "--url", server.url, "--admin-key", server.admin_key, "--limit", "-2"
    )
    assert negative.returncode == 2 and "--limit must not be negative" in negative.stderr
    assert "Traceback" not in no_key.stderr + wrong.stderr + negative.stderr


def test_reactor_logs_follow(server: ReactorServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REACTOR_ADMIN_KEY"}
    env["PYTHONPATH"] = str(ROOT)
    child = Child(
        [sys.executable, "-m", "reactor", "logs", "--follow", "--limit", "0",
         "--function", "notes:add", "--url", server.url, "--admin-key", server.admin_key],
        env,
        tmp_path / "follow.stderr",
    )  # fmt: skip
    try:
        text = f"follow-{uuid.uuid4().hex[:8]}"
        time.sleep(1.0)  # the first poll has answered: later records arrive by the long poll
        call(server, "mutation", "notes:refuse", {"reason": text})  # filtered out
        call(server, "mutation", "notes:add", {"text": text})
        line = child.wait_line(lambda line: text in line, timeout=5)
        assert line.endswith(f"[LOG] adding note {text}")
        assert not any("notes:refuse" in seen for seen in child.seen)
    finally:
        child.close()


# -- npx convex logs -------------------------------------------------------------------------


def test_convex_cli_logs_prints_a_mutation_and_its_log_line_within_2s(
    server: ReactorServer, tmp_path: Path, node_bin: str
) -> None:
    env = dict(
        os.environ,
        CONVEX_SELF_HOSTED_URL=server.url,
        CONVEX_SELF_HOSTED_ADMIN_KEY=server.admin_key,
        NO_COLOR="1",
        FORCE_COLOR="0",
    )
    env.pop("CONVEX_DEPLOYMENT", None)
    child = Child([node_bin, str(CONVEX_MAIN), "logs"], env, tmp_path / "convex.stderr")
    try:
        deadline = time.monotonic() + 30
        while "Watching logs" not in child.stderr_path.read_text(errors="replace"):
            assert child.proc.poll() is None, child.stderr_path.read_text()
            assert time.monotonic() < deadline, child.stderr_path.read_text()
            time.sleep(0.05)
        time.sleep(0.5)  # its first poll (whose entries it skips as history) has answered
        text = f"convex-{uuid.uuid4().hex[:8]}"
        sent = time.monotonic()
        call(server, "mutation", "notes:add", {"text": text})
        line = child.wait_line(lambda line: text in line, timeout=2.0)
        assert time.monotonic() - sent < 2.0
        assert "[CONVEX M(notes:add)] [LOG] adding note " + text in line

        call(server, "mutation", "notes:refuse", {"reason": text})
        refused = child.wait_line(lambda line: "Uncaught ConvexError" in line, timeout=2.0)
        assert f"[CONVEX M(notes:refuse)] Uncaught ConvexError: {text}" in refused
    finally:
        child.close()


# -- shutdown ---------------------------------------------------------------------------------


def test_a_waiting_long_poll_does_not_hold_the_server_stopping(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base = tmp_path_factory.mktemp("observability-stop")
    srv = ReactorServer(base / "data", base / "server.log", app_dir=APP)
    srv.start()
    try:
        key = srv.wait_admin_key()
        answered: queue.Queue[int] = queue.Queue()

        def long_poll() -> None:
            response = httpx.get(
                f"{srv.url}/api/stream_function_logs",
                params={"cursor": str(time.time() * 1000 + 10**9)},
                headers={"Authorization": f"Convex {key}"},
                timeout=60,
            )
            answered.put(response.status_code)

        thread = threading.Thread(target=long_poll, daemon=True)
        thread.start()
        time.sleep(0.5)  # the request is waiting in the server
        assert answered.empty()
        assert srv.proc is not None
        started = time.monotonic()
        srv.proc.terminate()
        srv.proc.wait(timeout=20)
        assert time.monotonic() - started < 10, "the long poll held the server's shutdown"
        assert answered.get(timeout=5) == 200
    finally:
        srv.stop()
