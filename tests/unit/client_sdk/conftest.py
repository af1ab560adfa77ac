"""Fixtures for the client SDK tests: the anyio backend and a tiny sync-protocol server.

``FakeServer`` follows PROTOCOL.md closely enough to script exchanges with the real client over
a real socket on 127.0.0.1: per-connection versions starting at zero, a Transition after every
ModifyQuerySet and after every MutationResponse, (sessionId, requestId) de-duplication, Ping.
It deliberately shares no code with ``client_sdk`` (its own timestamp codec, its own JSON), so
it checks the wire format rather than the client's idea of it. Tests steer it with
``server.intercept``: an async callable ``(conn, message) -> bool`` that returns True when it
has handled the message itself (e.g. by dropping the socket).
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def b64_ts(ts: int) -> str:
    return base64.b64encode(struct.pack("<Q", ts)).decode()


class AppError(Exception):
    """Raised by fake functions to produce a ConvexError (``errorData`` present)."""

    def __init__(self, message: str, data: Any) -> None:
        super().__init__(message)
        self.data = data


class Conn:
    """One client socket as the fake server sees it."""

    def __init__(self, server: FakeServer, ws: ServerConnection, index: int) -> None:
        self.server = server
        self.ws = ws
        self.index = index
        self.session_id: str | None = None
        self.received: list[dict[str, Any]] = []
        self.sent_version = {"querySet": 0, "identity": 0, "ts": b64_ts(0)}
        self.recv_qs = 0
        self.recv_identity = 0
        self.queries: dict[int, tuple[str, dict[str, Any]]] = {}
        self.last: dict[int, str] = {}

    @property
    def path(self) -> str:
        return self.ws.request.path if self.ws.request else ""

    def header(self, name: str) -> str | None:
        return self.ws.request.headers.get(name) if self.ws.request else None

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""
        self.ws.transport.abort()

    def build_transition(self, *, force: set[int] | None = None) -> dict[str, Any]:
        mods = []
        for query_id, (path, args) in sorted(self.queries.items()):
            mod = self.server.run_query(query_id, path, args)
            key = json.dumps(mod, sort_keys=True)
            if query_id in (force or ()) or self.last.get(query_id) != key:
                self.last[query_id] = key
                mods.append(mod)
        end = {
            "querySet": self.recv_qs,
            "identity": self.recv_identity,
            "ts": b64_ts(self.server.ts),
        }
        message = {
            "type": "Transition",
            "startVersion": self.sent_version,
            "endVersion": end,
            "modifications": mods,
        }
        self.sent_version = end
        return message

    async def send_transition(self, *, force: set[int] | None = None) -> None:
        await self.send(self.build_transition(force=force))


class FakeServer:
    def __init__(self) -> None:
        self.port = 0
        self.ts = 1_000
        self.conns: list[Conn] = []
        self.state: dict[str, Any] = {"count": 0.0}
        self.executions: list[tuple[str, int]] = []  # (sessionId, requestId) actually run
        self.dedupe: dict[tuple[str, int], dict[str, Any]] = {}
        self.journals: dict[int, str] = {}
        self.intercept: Callable[[Conn, dict[str, Any]], Awaitable[bool]] | None = None
        self.ping_interval_s: float | None = None
        self.connected = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def messages(self, kind: str, conn: int | None = None) -> list[dict[str, Any]]:
        conns = self.conns if conn is None else [self.conns[conn]]
        return [m for c in conns for m in c.received if m["type"] == kind]

    # ---------------------------------------------------------------- the fake app

    def run_query(self, query_id: int, path: str, args: dict[str, Any]) -> dict[str, Any]:
        base: dict[str, Any] = {"queryId": query_id, "logLines": [], "journal": None}
        if query_id in self.journals:
            base["journal"] = self.journals[query_id]
        if path in ("counter:get", "counter"):
            return {"type": "QueryUpdated", "value": self.state["count"], **base}
        if path == "echo:args":
            return {"type": "QueryUpdated", "value": args, **base}
        if path == "fail:plain":
            return {"type": "QueryFailed", "errorMessage": "boom", **base}
        if path == "fail:convex":
            return {
                "type": "QueryFailed",
                "errorMessage": "nope",
                "errorData": {"code": 7.0},
                **base,
            }
        if path == "counter:failWhenOdd":
            if self.state["count"] % 2:
                return {"type": "QueryFailed", "errorMessage": "odd", **base}
            return {"type": "QueryUpdated", "value": self.state["count"], **base}
        return {"type": "QueryFailed", "errorMessage": f"Could not find {path}", **base}

    def run_mutation(self, path: str, args: dict[str, Any]) -> Any:
        if path == "counter:increment":
            self.state["count"] += args.get("by", 1.0)
            return self.state["count"]
        if path == "fail:convex":
            raise AppError(
                "Uncaught ConvexError: bad", {"reason": "bad", "n": {"$integer": b64_ts(5)}}
            )
        if path == "fail:nulldata":
            raise AppError("Uncaught ConvexError: null", None)
        raise RuntimeError("Server Error")

    # ---------------------------------------------------------------- protocol

    async def handler(self, ws: ServerConnection) -> None:
        conn = Conn(self, ws, len(self.conns))
        self.conns.append(conn)
        self.connected.set()
        pinger = None
        if self.ping_interval_s is not None:
            pinger = asyncio.ensure_future(self._ping(conn, self.ping_interval_s))
        try:
            async for text in ws:
                message = json.loads(text)
                conn.received.append(message)
                if self.intercept is not None and await self.intercept(conn, message):
                    continue
                await self.handle(conn, message)
        except Exception:
            pass
        finally:
            if pinger is not None:
                pinger.cancel()

    async def _ping(self, conn: Conn, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await conn.send({"type": "Ping"})

    async def handle(self, conn: Conn, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "Connect":
            conn.session_id = message["sessionId"]
        elif kind == "ModifyQuerySet":
            assert message["baseVersion"] == conn.recv_qs, "baseVersion mismatch"
            conn.recv_qs = message["newVersion"]
            added = set()
            for mod in message["modifications"]:
                if mod["type"] == "Add":
                    assert mod["queryId"] not in conn.queries
                    conn.queries[mod["queryId"]] = (mod["udfPath"], mod["args"][0])
                    added.add(mod["queryId"])
                else:
                    del conn.queries[mod["queryId"]]
                    conn.last.pop(mod["queryId"], None)
            await conn.send_transition(force=added)
        elif kind == "Authenticate":
            assert message["baseVersion"] == conn.recv_identity
            conn.recv_identity += 1
            await conn.send_transition()
        elif kind == "Mutation":
            await self.answer_mutation(conn, message)
        elif kind == "Action":
            await self.answer_action(conn, message)

    async def answer_mutation(
        self, conn: Conn, message: dict[str, Any], *, transition: bool = True
    ) -> None:
        key = (conn.session_id or "", message["requestId"])
        response = self.dedupe.get(key)
        if response is None:
            self.executions.append(key)
            try:
                value = self.run_mutation(message["udfPath"], message["args"][0])
            except AppError as exc:
                response = {
                    "success": False,
                    "result": str(exc),
                    "ts": None,
                    "logLines": [],
                    "errorData": exc.data,
                }
            except RuntimeError as exc:
                response = {"success": False, "result": str(exc), "ts": None, "logLines": []}
            else:
                self.ts += 10
                response = {
                    "success": True,
                    "result": value,
                    "ts": b64_ts(self.ts),
                    "logLines": ["[LOG] 'mutated'"],
                }
            self.dedupe[key] = response
        await conn.send({"type": "MutationResponse", "requestId": message["requestId"], **response})
        if transition:
            await conn.send_transition()
            for other in self.conns:
                if other is not conn and other.session_id is not None:
                    try:
                        await other.send_transition()
                    except Exception:
                        pass

    async def answer_action(self, conn: Conn, message: dict[str, Any]) -> None:
        if message["udfPath"] == "fail:action":
            body = {"success": False, "result": "action failed", "logLines": []}
        else:
            body = {"success": True, "result": {"echo": message["args"][0]}, "logLines": []}
        await conn.send({"type": "ActionResponse", "requestId": message["requestId"], **body})


@pytest.fixture
async def fake_server() -> AsyncIterator[FakeServer]:
    server = FakeServer()
    async with serve(server.handler, "127.0.0.1", 0) as ws_server:
        sockets = list(ws_server.sockets)
        server.port = sockets[0].getsockname()[1]
        yield server
