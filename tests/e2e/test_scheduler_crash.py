"""Scheduled functions across `kill -9`: mutations run exactly once, actions at most once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:  # conftest is pytest's to import; its classes serve as types only
    from .conftest import ReactorServer


def call(url: str, kind: str, path: str, args: dict[str, Any]) -> Any:
    response = httpx.post(
        f"{url}/api/{kind}",
        json={"path": path, "args": [args], "format": "convex_encoded_json"},
        timeout=10,
    )
    body = response.json()
    assert body["status"] == "success", body
    return body["value"]


def wait_job(url: str, job_id: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = call(url, "query", "scheduled:job", {"id": job_id})
        if job["state"]["kind"] in ("success", "failed", "canceled"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job still {job['state']}")
        time.sleep(0.05)


@pytest.fixture
def server(server_factory: Callable[[], ReactorServer]) -> ReactorServer:
    return server_factory()


def test_pending_job_survives_kill_and_runs_once(server: ReactorServer) -> None:
    job_id = call(
        server.url, "mutation", "scheduled:plan", {"name": "pending", "delay": 1.0, "sleep": 0.0}
    )
    server.restart(hard=True)
    job = wait_job(server.url, job_id)
    assert job["state"] == {"kind": "success"}
    time.sleep(0.3)
    assert call(server.url, "query", "counter:get", {"name": "pending"}) == 1.0


def test_mutation_killed_while_running_runs_exactly_once(server: ReactorServer) -> None:
    job_id = call(
        server.url, "mutation", "scheduled:plan", {"name": "running", "delay": 0.0, "sleep": 1.5}
    )
    time.sleep(0.6)  # the job has started and sleeps between its read and its write
    assert call(server.url, "query", "scheduled:job", {"id": job_id})["state"]["kind"] == "pending"
    server.restart(hard=True)
    job = wait_job(server.url, job_id)
    assert job["state"] == {"kind": "success"}
    time.sleep(0.3)
    assert call(server.url, "query", "counter:get", {"name": "running"}) == 1.0


def test_action_killed_while_running_is_never_run_again(server: ReactorServer) -> None:
    job_id = call(server.url, "mutation", "scheduled:plan_action", {"name": "act", "sleep": 3.0})
    deadline = time.monotonic() + 10
    while call(server.url, "query", "counter:get", {"name": "act"}) != 1.0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (
        call(server.url, "query", "scheduled:job", {"id": job_id})["state"]["kind"] == "inProgress"
    )
    server.restart(hard=True)
    job = wait_job(server.url, job_id)
    assert job["state"] == {"kind": "failed", "error": "Transient error while executing action"}
    time.sleep(0.5)
    assert call(server.url, "query", "counter:get", {"name": "act"}) == 1.0
