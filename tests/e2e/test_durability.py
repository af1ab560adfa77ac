"""Acknowledged mutations survive a SIGKILL of the server (embedded SQLite engine).

Mutations go through the public HTTP API exactly as the official HTTP clients send them
(PROTOCOL.md §8.1): POST /api/mutation {"path", "args": [{...}], "format": "convex_encoded_json"}.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:  # conftest is pytest's to import; its classes serve as types only
    from .conftest import ReactorServer, StreamingChild

JS_DIR = Path(__file__).resolve().parents[1] / "js"

N_SERIAL = 40
N_CONCURRENT = 24


def call(client: httpx.Client, kind: str, path: str, args: dict[str, Any]) -> Any:
    resp = client.post(
        f"/api/{kind}",
        json={"path": path, "args": [args], "format": "convex_encoded_json"},
        headers={"Convex-Client": "python-0.8.1"},
    )
    assert resp.status_code == 200, (path, resp.status_code, resp.text)
    body = resp.json()
    assert body["status"] == "success", (path, body)
    return body["value"]


def test_acknowledged_mutations_survive_sigkill(
    server_factory: Callable[[], ReactorServer],
) -> None:
    server = server_factory()
    channel = f"durable-{uuid.uuid4().hex[:8]}"
    counter = f"durable-{uuid.uuid4().hex[:8]}"
    expected: list[str] = []

    with httpx.Client(base_url=server.url, timeout=15) as client:
        for i in range(N_SERIAL):
            body = f"serial-{i:03d}"
            assert isinstance(
                call(client, "mutation", "messages:send", {"channel": channel, "body": body}), str
            )
            expected.append(body)
            assert call(client, "mutation", "counter:increment", {"name": counter}) == i + 1

        def send(i: int) -> str:
            body = f"concurrent-{i:03d}"
            call(client, "mutation", "messages:send", {"channel": channel, "body": body})
            return body

        with ThreadPoolExecutor(max_workers=8) as pool:
            concurrent = list(pool.map(send, range(N_CONCURRENT)))
        expected.extend(concurrent)
        assert len(call(client, "query", "messages:bodies", {"channel": channel})) == len(expected)

    # No graceful shutdown: everything acknowledged above must already be on disk.
    server.restart(hard=True)

    with httpx.Client(base_url=server.url, timeout=15) as client:
        bodies = call(client, "query", "messages:bodies", {"channel": channel})
        assert bodies[:N_SERIAL] == expected[:N_SERIAL]  # insertion order within the index
        assert sorted(bodies) == sorted(expected)
        assert call(client, "query", "counter:get", {"name": counter}) == N_SERIAL
        listed = call(client, "query", "messages:list", {"channel": channel})
        assert len({m["_id"] for m in listed}) == len(expected)

        # The restarted server keeps accepting writes, and they survive a second crash too.
        call(client, "mutation", "messages:send", {"channel": channel, "body": "after-restart"})
        assert call(client, "mutation", "counter:increment", {"name": counter}) == N_SERIAL + 1

    server.restart(hard=True)

    with httpx.Client(base_url=server.url, timeout=15) as client:
        bodies = call(client, "query", "messages:bodies", {"channel": channel})
        assert bodies[-1] == "after-restart"
        assert len(bodies) == len(expected) + 1
        assert call(client, "query", "counter:get", {"name": counter}) == N_SERIAL + 1
        newest = call(client, "query", "messages:list", {"channel": channel})[0]
        assert newest["body"] == "after-restart"


def test_live_js_client_survives_server_crash_and_restart(
    server_factory: Callable[[], ReactorServer], node_bin: str, spawn: Callable[..., StreamingChild]
) -> None:
    """The JS client reconnects to the restarted server (which must accept the client's
    maxObservedTimestamp: commit timestamps keep increasing across restarts, PROTOCOL.md
    trap 18), resubscribes, sees new data and can still mutate (§6.1)."""
    server = server_factory()
    channel = f"restart-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=15) as client:
        call(client, "mutation", "messages:send", {"channel": channel, "body": "before"})

    node = spawn(
        [node_bin, "survive_restart.mjs", server.url, channel, "after-restart"],
        cwd=JS_DIR,
    )
    node.wait_for(lambda e: e == {"event": "value", "value": ["before"]}, 20)

    server.restart(hard=True)
    with httpx.Client(base_url=server.url, timeout=15) as client:
        call(client, "mutation", "messages:send", {"channel": channel, "body": "after-restart"})

    done = node.wait_for(lambda e: e["event"] == "done", 35)
    assert node.wait(10) == 0, node.describe()
    assert done["value"] == ["before", "after-restart", "from-js-after-restart"], done
    assert done["idType"] == "string"
    assert done["errors"] == []
    assert done["connectionCount"] >= 2, done  # it really reconnected
    for marker in ("[CONVEX FATAL ERROR]", "Invalid start version", "UNCAUGHT", "UNHANDLED"):
        assert marker not in node.stderr(), node.describe()
