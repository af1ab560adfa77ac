"""Fuzzing the websocket sync endpoint of a real ``reactor serve``: random and malformed JSON,
wrong types in every field of Connect, ModifyQuerySet, Mutation, Action, Authenticate and Event,
huge integers, deep nesting and binary frames. The server stays up; every session it ends gets
a close frame with a code (never a dropped socket, 1006); no client input makes it log an
error; and a bystander's mutation -> Transition round trip stays fast throughout."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

BYSTANDER_S = 5.0
# A session still open after this long with nothing to say is taken as alive.
QUIET_S = 0.25
# A longer hunt: REACTOR_FUZZ_EXAMPLES=2000 (the default keeps the suite well under 30 s).
EXAMPLES = int(os.environ.get("REACTOR_FUZZ_EXAMPLES", "60"))
PATHS = ["notes:find", "notes:echo", "notes:add", "notes:double", "notes", "nowhere:x", ""]

big_ints = st.integers(min_value=-(10**30), max_value=10**30) | st.sampled_from(
    [2**53, 2**63, 2**64, -(2**63) - 1, 10**400]
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | big_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a well-typed value, else anything (a wrong type, a huge number, a deep list)."""
    return st.one_of(valid, valid, valid, valid, json_values)


u64 = st.sampled_from(["AAAAAAAAAAA=", "AQAAAAAAAAA=", "////////////", "AA==", ""])
args = field(
    st.lists(st.dictionaries(st.sampled_from(["text", "n", "a"]), json_values), max_size=2)
)
path = field(st.sampled_from(PATHS))
ints = field(st.integers(min_value=-2, max_value=5))
modification = st.fixed_dictionaries(
    {"type": field(st.sampled_from(["Add", "Remove"]))},
    optional={"queryId": ints, "udfPath": path, "args": args, "journal": field(st.none())},
)


def message(kind: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Every field present (most sessions read it), or any of them missing."""
    return st.one_of(
        st.fixed_dictionaries({"type": field(st.just(kind)), **fields}),
        st.fixed_dictionaries({"type": field(st.just(kind)), **fields}),
        st.fixed_dictionaries({"type": field(st.just(kind))}, optional=fields),
    )


messages = st.one_of(
    message(
        "Connect",
        sessionId=field(st.uuids().map(str)),
        connectionCount=ints,
        lastCloseReason=field(st.text(max_size=10)),
        clientTs=ints,
        maxObservedTimestamp=field(u64),
    ),
    message(
        "ModifyQuerySet",
        baseVersion=ints,
        newVersion=ints,
        modifications=field(st.lists(modification, max_size=3)),
    ),
    message("Mutation", requestId=ints, udfPath=path, args=args, componentPath=field(st.none())),
    message("Action", requestId=ints, udfPath=path, args=args, componentPath=field(st.none())),
    message(
        "Authenticate",
        baseVersion=ints,
        tokenType=field(st.sampled_from(["Admin", "User", "None"])),
        value=field(st.text(max_size=40)),
        actingAs=field(st.none()),
    ),
    message(
        "Event",
        eventType=field(st.text(max_size=10)),
        event=field(st.dictionaries(st.text(max_size=5), json_values, max_size=3)),
    ),
)
frames: st.SearchStrategy[str | bytes] = st.one_of(
    messages.map(json.dumps),
    messages.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=100),
    st.binary(max_size=100),
    st.integers(min_value=10, max_value=200_000).map(lambda n: "[" * n),
    st.integers(min_value=10, max_value=50_000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=300, max_value=5000).map(
        lambda n: '{"type":"Mutation","requestId":' + "9" * n + ',"udfPath":"notes:add"}'
    ),
)


def connect_frame() -> str:
    return json.dumps(
        {
            "type": "Connect",
            "sessionId": str(uuid.uuid4()),
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
            "clientTs": 0,
        }
    )


class Bystander:
    """A session subscribed to notes:find for its own text; ``round_trip`` adds a note with
    that text and times until the Transition that shows it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.text = f"bystander-{uuid.uuid4().hex[:8]}"
        self.request_id = 0
        self.ws.send(connect_frame())
        self.ws.send(
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [
                        {
                            "type": "Add",
                            "queryId": 0,
                            "udfPath": "notes:find",
                            "args": [{"text": self.text}],
                        }
                    ],
                }
            )
        )
        self.count = len(self.wait_transition())

    def wait_transition(self) -> list[Any]:
        deadline = time.monotonic() + BYSTANDER_S * 3
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.0, deadline - time.monotonic())))
            for change in reply.get("modifications", []):
                if reply["type"] == "Transition" and change.get("queryId") == 0:
                    assert change["type"] == "QueryUpdated", change
                    return list(change["value"])

    def round_trip(self) -> float:
        self.request_id += 1
        started = time.monotonic()
        self.ws.send(
            json.dumps(
                {
                    "type": "Mutation",
                    "requestId": self.request_id,
                    "udfPath": "notes:add",
                    "args": [{"text": self.text}],
                }
            )
        )
        while len(self.wait_transition()) <= self.count:
            pass
        self.count += 1
        return time.monotonic() - started


@pytest.fixture(scope="module")
def ws_url(fuzz_server: Any) -> str:
    return str(fuzz_server.url).replace("http://", "ws://") + "/api/sync"


@pytest.fixture(scope="module")
def bystander(ws_url: str) -> Iterator[Bystander]:
    with connect(ws_url, max_size=None) as ws:
        yield Bystander(ws)


def read_until_closed_or_quiet(ws: ClientConnection) -> ConnectionClosed | None:
    """Drain the session: the close it ended with, or None while it stays open and quiet."""
    try:
        while True:
            ws.recv(timeout=QUIET_S)
    except TimeoutError:
        return None
    except ConnectionClosed as closed:
        return closed


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(with_connect=st.booleans(), sent=st.lists(frames, min_size=1, max_size=3))
def test_no_frame_breaks_the_server(
    fuzz_server: Any,
    ws_url: str,
    bystander: Bystander,
    with_connect: bool,
    sent: list[str | bytes],
) -> None:
    log_start = fuzz_server.log_path.stat().st_size
    with connect(ws_url, max_size=None) as ws:
        closed = None
        try:
            if with_connect:
                ws.send(connect_frame())
            for frame in sent:
                ws.send(frame)
        except ConnectionClosed as exc:  # the server ended the session mid-way
            closed = exc
        closed = closed or read_until_closed_or_quiet(ws)
        if closed is not None:
            assert closed.rcvd is not None, f"closed without a close frame: {sent!r:.300}"
            assert closed.rcvd.code != 1006, closed
    fuzz_server.assert_alive()
    log = fuzz_server.log_path.read_bytes()[log_start:].decode(errors="replace")
    assert "Traceback" not in log and " ERROR " not in log, f"{sent!r:.300}\n{log[-3000:]}"
    took = bystander.round_trip()
    assert took < BYSTANDER_S, f"the bystander's round trip took {took:.1f}s"
