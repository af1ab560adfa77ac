"""A flood of wrong admin keys against a real server (subprocess, real sockets).

Wrong keys come from 20 loopback addresses (127.0.0.2-21, so each has its own failure budget
and most of them really are hashed) while a bystander keeps querying; then the flooding
clients are refused with 429 before any hashing, over HTTP and over the websocket, and the
right key still works at once from those same addresses.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import websockets

if TYPE_CHECKING:
    from .conftest import ReactorServer

pytestmark = pytest.mark.anyio

WRONG = "reactor-admin|" + "w" * 40
PEERS = [f"127.0.0.{i}" for i in range(2, 22)]
FLOOD = 200


@pytest.fixture(scope="module")
def server(server_factory: Callable[[], ReactorServer]) -> ReactorServer:
    srv = server_factory()
    srv.wait_admin_key()
    return srv


def _client(server: ReactorServer, peer: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=peer)
    return httpx.AsyncClient(base_url=server.url, transport=transport, timeout=30)


async def _query(client: httpx.AsyncClient, key: str | None = None) -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Convex {key}"}
    return await client.post(
        "/api/query", json={"path": "counter:get", "args": {"name": "flood"}}, headers=headers
    )


async def _bystander(client: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    latencies = []
    while not stop.is_set():
        started = time.perf_counter()
        response = await _query(client)
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        await asyncio.sleep(0.005)
    return latencies


async def _baseline(client: httpx.AsyncClient) -> float:
    latencies = []
    for _ in range(30):
        started = time.perf_counter()
        assert (await _query(client)).status_code == 200
        latencies.append(time.perf_counter() - started)
    return statistics.median(latencies)


async def test_a_wrong_admin_key_flood_leaves_bystanders_and_the_right_key_alone(
    server: ReactorServer,
) -> None:
    key = server.admin_key
    async with _client(server) as bystander:
        baseline = await _baseline(bystander)
        floods = [_client(server, peer) for peer in PEERS]
        try:
            stop = asyncio.Event()
            watcher = asyncio.create_task(_bystander(bystander, stop))
            await asyncio.sleep(0.05)
            responses = await asyncio.gather(
                *(_query(floods[i % len(PEERS)], WRONG) for i in range(FLOOD))
            )
            stop.set()
            latencies = await watcher

            statuses = sorted({r.status_code for r in responses})
            assert statuses in ([401, 429], [429]), statuses
            refused = [r.json() for r in responses if r.status_code == 429]
            assert refused[0]["code"] == "TooManyFailedAdminKeyAttempts"
            assert "Too many" in refused[0]["message"]

            during = statistics.median(latencies)
            assert len(latencies) >= 3, latencies
            # Scrypt runs in a worker thread: the event loop keeps serving the bystander.
            assert during < max(0.05, 5 * baseline), (during, baseline, latencies)

            # A flooding client soon runs out of budget (checks refused for a full queue gave
            # their token back): then it is refused at once, with JSON.
            for _ in range(11):
                again = await _query(floods[0], WRONG)
                if again.status_code == 429:
                    break
            started = time.perf_counter()
            again = await _query(floods[0], WRONG)
            assert time.perf_counter() - started < 1.0
            assert again.status_code == 429, again.text
            body = again.json()
            assert body["code"] == "TooManyFailedAdminKeyAttempts"
            assert "Too many failed admin key attempts from 127.0.0.2" in body["message"]

            # ...but the right key works at once from that very client.
            started = time.perf_counter()
            ok = await _query(floods[0], key)
            assert time.perf_counter() - started < 1.0
            assert ok.status_code == 200, ok.text
            assert ok.json()["status"] == "success"
        finally:
            for flood in floods:
                await flood.aclose()


async def _authenticate_admin(server: ReactorServer, value: str, peer: str) -> dict[str, Any]:
    url = server.url.replace("http://", "ws://") + "/api/sync"
    async with websockets.connect(url, family=2, local_addr=(peer, 0)) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "Connect",
                    "sessionId": "00000000-0000-4000-8000-000000000001",
                    "connectionCount": 0,
                    "lastCloseReason": "InitialConnect",
                }
            )
        )
        await ws.send(
            json.dumps(
                {"type": "Authenticate", "tokenType": "Admin", "baseVersion": 0, "value": value}
            )
        )
        await ws.send(
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [
                        {
                            "type": "Add",
                            "queryId": 0,
                            "udfPath": "counter:get",
                            "args": [{"name": "flood"}],
                        }
                    ],
                }
            )
        )
        while True:
            message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if message["type"] in ("AuthError", "Transition"):
                return message


async def test_the_websocket_goes_through_the_same_budget(server: ReactorServer) -> None:
    peer = "127.0.0.30"
    async with _client(server, peer) as client:
        statuses = [(await _query(client, WRONG)).status_code for _ in range(12)]
    assert statuses[0] == 401 and statuses[-1] == 429, statuses

    refused = await _authenticate_admin(server, WRONG, peer)
    assert refused["type"] == "AuthError"
    assert "Too many failed admin key attempts from 127.0.0.30" in refused["error"]

    accepted = await _authenticate_admin(server, server.admin_key, peer)
    assert accepted["type"] == "Transition"
    assert accepted["endVersion"]["identity"] == 1
