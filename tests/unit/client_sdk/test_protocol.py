"""The sans-I/O client protocol, driven by fed-in JSON frames: no sockets, no sleeps."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from client_sdk.local_state import AuthToken
from client_sdk.protocol import (
    ACTION_LOST_MESSAGE,
    ClientProtocol,
    ConnectionState,
    QueryResultChanged,
    ReconnectNeeded,
    RequestCompleted,
    RequestLost,
)
from client_sdk.request_manager import RequestStatus
from reactor.sync.messages import FunctionResult, QueryId, RequestId, SessionId, encode_ts

SESSION = SessionId("6f1c4c8e-8a52-4a8a-9c1e-2f0b9d3f7a10")


def ver(qs: int = 0, identity: int = 0, ts: int = 0) -> dict[str, Any]:
    return {"querySet": qs, "identity": identity, "ts": encode_ts(ts)}


def updated(
    query_id: int, value: Any, journal: str | None = None, log_lines: list[str] | None = None
) -> dict[str, Any]:
    return {
        "type": "QueryUpdated",
        "queryId": query_id,
        "value": value,
        "logLines": log_lines or [],
        "journal": journal,
    }


class Harness:
    """A protocol plus a scripted server that tracks the version it has sent."""

    def __init__(self) -> None:
        self.protocol = ClientProtocol(SESSION)
        self.sent = ver()

    def open(self, client_ts_ms: int | None = 1234) -> list[dict[str, Any]]:
        self.protocol.connection_opened(client_ts_ms=client_ts_ms)
        self.sent = ver()
        return self.out()

    def out(self) -> list[dict[str, Any]]:
        return [json.loads(text) for text in self.protocol.data_to_send()]

    def events(self) -> list[Any]:
        return self.protocol.events_received()

    def feed(self, message: dict[str, Any]) -> list[Any]:
        self.protocol.receive_text(json.dumps(message))
        return self.events()

    def transition(
        self,
        *mods: dict[str, Any],
        qs: int | None = None,
        identity: int | None = None,
        ts: int | None = None,
    ) -> list[Any]:
        end = ver(
            self.sent["querySet"] if qs is None else qs,
            self.sent["identity"] if identity is None else identity,
            ts if ts is not None else _ts(self.sent) + 1,
        )
        events = self.feed(
            {
                "type": "Transition",
                "startVersion": self.sent,
                "endVersion": end,
                "modifications": list(mods),
            }
        )
        self.sent = end
        return events

    def mutation_ok(self, request_id: int, value: Any, ts: int) -> list[Any]:
        return self.feed(
            {
                "type": "MutationResponse",
                "requestId": request_id,
                "success": True,
                "result": value,
                "ts": encode_ts(ts),
                "logLines": [],
            }
        )


def _ts(version: dict[str, Any]) -> int:
    import base64
    import struct

    return int(struct.unpack("<Q", base64.b64decode(version["ts"]))[0])


@pytest.fixture
def h() -> Harness:
    return Harness()


class TestConnect:
    def test_first_socket(self, h: Harness) -> None:
        assert h.protocol.state is ConnectionState.CLOSED
        assert h.open() == [
            {
                "type": "Connect",
                "sessionId": SESSION,
                "connectionCount": 0,
                "lastCloseReason": "InitialConnect",
                "clientTs": 1234,
            },
            {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": []},
        ]
        assert h.protocol.is_open
        assert h.protocol.connection_count == 1
        assert not h.protocol.has_synced

    def test_open_twice_is_a_bug(self, h: Harness) -> None:
        h.open()
        with pytest.raises(RuntimeError, match="connection_lost"):
            h.protocol.connection_opened()

    def test_nothing_is_sent_while_closed(self, h: Harness) -> None:
        h.protocol.subscribe("m:list", {})
        h.protocol.send_mutation("m:send", {})
        h.protocol.set_auth(AuthToken("User", "jwt"))
        assert h.out() == []
        h.protocol.receive_text('{"type":"Ping"}')
        assert h.events() == []

    def test_state_created_while_closed_goes_out_on_open(self, h: Harness) -> None:
        query_id = h.protocol.subscribe("m:list", {"a": 1.0})
        mutation = h.protocol.send_mutation("m:send", {"body": "hi"})
        action = h.protocol.send_action("a:run", {})
        assert h.protocol.request_manager.status(action) is RequestStatus.NOT_SENT
        out = h.open()
        assert [m["type"] for m in out] == ["Connect", "ModifyQuerySet", "Mutation", "Action"]
        assert out[1]["modifications"] == [
            {
                "type": "Add",
                "queryId": query_id,
                "udfPath": "m:list",
                "args": [{"a": 1.0}],
                "journal": None,
            }
        ]
        assert out[2]["requestId"] == mutation and out[3]["requestId"] == action
        assert h.protocol.request_manager.status(action) is RequestStatus.REQUESTED


class TestQueries:
    def test_subscribe_while_open_chains_query_set_versions(self, h: Harness) -> None:
        h.open()
        a = h.protocol.subscribe("m:a", {})
        b = h.protocol.subscribe("m:b", {})
        out = h.out()
        assert [(m["baseVersion"], m["newVersion"]) for m in out] == [(1, 2), (2, 3)]
        assert [m["modifications"][0]["queryId"] for m in out] == [a, b]

    def test_results_are_reported_once_per_change(self, h: Harness) -> None:
        h.open()
        query_id = h.protocol.subscribe("m:a", {})
        assert h.transition(updated(query_id, 1.0), qs=2) == [
            QueryResultChanged(query_id, FunctionResult(True, 1.0))
        ]
        assert h.protocol.has_synced
        # Same value again (e.g. the server did not de-duplicate): no event.
        assert h.transition(updated(query_id, 1.0)) == []
        assert h.transition(updated(query_id, 2.0)) == [
            QueryResultChanged(query_id, FunctionResult(True, 2.0))
        ]
        assert h.protocol.current_result(query_id) == FunctionResult(True, 2.0)

    def test_query_failed(self, h: Harness) -> None:
        h.open()
        query_id = h.protocol.subscribe("m:a", {})
        events = h.transition(
            {
                "type": "QueryFailed",
                "queryId": query_id,
                "errorMessage": "boom",
                "logLines": [],
                "journal": None,
                "errorData": {"c": 1.0},
            }
        )
        assert events == [
            QueryResultChanged(
                query_id,
                FunctionResult(
                    False, error_message="boom", error_data={"c": 1.0}, has_error_data=True
                ),
            )
        ]

    def test_shared_query_keeps_current_result(self, h: Harness) -> None:
        h.open()
        first = h.protocol.subscribe("m:a", {"x": 1.0})
        h.out()
        h.transition(updated(first, "v"))
        second = h.protocol.subscribe("m:a", {"x": 1.0})
        assert second == first
        assert h.out() == []
        assert h.protocol.current_result(second) == FunctionResult(True, "v")
        h.protocol.unsubscribe(first)
        assert h.out() == []
        h.protocol.unsubscribe(first)
        assert h.out() == [
            {
                "type": "ModifyQuerySet",
                "baseVersion": 2,
                "newVersion": 3,
                "modifications": [{"type": "Remove", "queryId": first}],
            }
        ]
        assert h.protocol.current_result(first) is None

    def test_results_for_unknown_or_removed_queries_are_ignored(self, h: Harness) -> None:
        h.open()
        query_id = h.protocol.subscribe("m:a", {})
        h.protocol.unsubscribe(query_id)
        assert h.transition(updated(query_id, 1.0), updated(77, 2.0)) == []
        assert h.protocol.current_result(query_id) is None

    def test_query_removed_keeps_the_last_result(self, h: Harness) -> None:
        h.open()
        query_id = h.protocol.subscribe("m:a", {})
        h.transition(updated(query_id, 1.0))
        assert h.transition({"type": "QueryRemoved", "queryId": query_id}) == []
        assert h.protocol.current_result(query_id) == FunctionResult(True, 1.0)

    def test_repeated_id_in_one_transition_reports_once(self, h: Harness) -> None:
        h.open()
        query_id = h.protocol.subscribe("m:a", {})
        events = h.transition(updated(query_id, 1.0), updated(query_id, 2.0))
        assert events == [QueryResultChanged(query_id, FunctionResult(True, 2.0))]

    def test_log_lines_are_logged(self, h: Harness, caplog: pytest.LogCaptureFixture) -> None:
        h.open()
        query_id = h.protocol.subscribe("m:a", {})
        request_id = h.protocol.send_mutation("m:b", {})
        with caplog.at_level(logging.INFO, logger="client_sdk.function_logs"):
            h.transition(
                updated(query_id, 1.0, log_lines=["[LOG] 'q'"]),
                updated(9, 1.0, log_lines=["[LOG] 'nobody'"]),
            )
            h.feed(
                {
                    "type": "MutationResponse",
                    "requestId": request_id,
                    "success": False,
                    "result": "x",
                    "ts": None,
                    "logLines": ["[ERROR] 'm'"],
                }
            )
        assert "[CONVEX Q(m:a)] [LOG] 'q'" in caplog.text
        assert "[CONVEX M(m:b)] [ERROR] 'm'" in caplog.text
        assert "nobody" not in caplog.text


class TestMutations:
    def test_response_then_transition(self, h: Harness) -> None:
        h.open()
        query_id = h.protocol.subscribe("m:count", {})
        h.transition(updated(query_id, 0.0), ts=5)
        request_id = h.protocol.send_mutation("m:inc", {})
        assert h.out()[-1] == {
            "type": "Mutation",
            "requestId": request_id,
            "udfPath": "m:inc",
            "args": [{}],
        }
        assert h.mutation_ok(request_id, 1.0, ts=10) == []
        # A Transition that has not reached ts 10 yet does not resolve it.
        assert h.transition(ts=9) == []
        # Query results come before the resolution, so the caller sees its own write.
        assert h.transition(updated(query_id, 1.0), ts=10) == [
            QueryResultChanged(query_id, FunctionResult(True, 1.0)),
            RequestCompleted(request_id, FunctionResult(True, 1.0)),
        ]

    def test_transition_before_response_waits_for_the_next(self, h: Harness) -> None:
        h.open()
        request_id = h.protocol.send_mutation("m:inc", {})
        assert h.transition(ts=50) == []
        assert h.mutation_ok(request_id, "r", ts=40) == []
        assert h.protocol.request_manager.status(request_id) is RequestStatus.COMPLETED
        assert h.transition(ts=50) == [RequestCompleted(request_id, FunctionResult(True, "r"))]

    def test_failure_resolves_without_transition(self, h: Harness) -> None:
        h.open()
        request_id = h.protocol.send_mutation("m:inc", {})
        events = h.feed(
            {
                "type": "MutationResponse",
                "requestId": request_id,
                "success": False,
                "result": "Uncaught ConvexError",
                "ts": None,
                "logLines": [],
                "errorData": None,
            }
        )
        assert events == [
            RequestCompleted(
                request_id,
                FunctionResult(False, error_message="Uncaught ConvexError", has_error_data=True),
            )
        ]

    def test_action(self, h: Harness) -> None:
        h.open()
        request_id = h.protocol.send_action("a:run", {"x": 1.0})
        assert h.out()[-1] == {
            "type": "Action",
            "requestId": request_id,
            "udfPath": "a:run",
            "args": [{"x": 1.0}],
        }
        assert h.feed(
            {
                "type": "ActionResponse",
                "requestId": request_id,
                "success": True,
                "result": 3.0,
                "logLines": [],
            }
        ) == [RequestCompleted(request_id, FunctionResult(True, 3.0))]

    def test_max_observed_timestamp(self, h: Harness) -> None:
        h.open()
        assert h.protocol.max_observed_timestamp is None
        request_id = h.protocol.send_mutation("m:inc", {})
        h.transition(ts=5)
        assert h.protocol.max_observed_timestamp == 5
        h.mutation_ok(request_id, None, ts=90)
        assert h.protocol.max_observed_timestamp == 90
        h.transition(ts=80)  # a lower ts never lowers the maximum
        assert h.protocol.max_observed_timestamp == 90


class TestReconnect:
    def test_full_restart_sequence(self, h: Harness) -> None:
        h.open()
        h.protocol.set_auth(AuthToken("User", "jwt"))
        a = h.protocol.subscribe("m:a", {"k": 1.0})
        b = h.protocol.subscribe("m:b", {})
        answered = h.protocol.send_mutation("m:one", {"n": 1.0})
        pending = h.protocol.send_mutation("m:two", {"n": 2.0})
        action = h.protocol.send_action("a:three", {})
        h.out()
        h.transition(updated(a, 1.0, journal="ja"), updated(b, 2.0), qs=3, identity=1, ts=7)
        h.mutation_ok(answered, "done", ts=20)

        assert h.protocol.has_synced
        h.protocol.connection_lost("closed with code 1006")
        assert h.protocol.state is ConnectionState.CLOSED
        assert not h.protocol.has_synced
        assert h.events() == [RequestLost(action, ACTION_LOST_MESSAGE)]

        out = h.open(client_ts_ms=99)
        assert out == [
            {
                "type": "Connect",
                "sessionId": SESSION,
                "connectionCount": 1,
                "lastCloseReason": "closed with code 1006",
                "maxObservedTimestamp": encode_ts(20),
                "clientTs": 99,
            },
            {"type": "Authenticate", "tokenType": "User", "baseVersion": 0, "value": "jwt"},
            {
                "type": "ModifyQuerySet",
                "baseVersion": 0,
                "newVersion": 1,
                "modifications": [
                    {
                        "type": "Add",
                        "queryId": a,
                        "udfPath": "m:a",
                        "args": [{"k": 1.0}],
                        "journal": "ja",
                    },
                    {"type": "Add", "queryId": b, "udfPath": "m:b", "args": [{}], "journal": None},
                ],
            },
            {"type": "Mutation", "requestId": answered, "udfPath": "m:one", "args": [{"n": 1.0}]},
            {"type": "Mutation", "requestId": pending, "udfPath": "m:two", "args": [{"n": 2.0}]},
        ]
        assert h.protocol.remote_version.ts == 0

    def test_new_socket_restarts_remote_version(self, h: Harness) -> None:
        h.open()
        query_id = h.protocol.subscribe("m:a", {})
        h.transition(updated(query_id, 1.0), qs=2, ts=100)
        h.protocol.connection_lost("closed with code 1000")
        h.open()
        # The first Transition on the new socket starts at zeros again and is accepted;
        # the unchanged result is not reported again.
        assert h.transition(updated(query_id, 1.0), qs=1, ts=101) == []
        assert h.protocol.remote_version.query_set == 1
        assert h.transition(updated(query_id, 5.0)) == [
            QueryResultChanged(query_id, FunctionResult(True, 5.0))
        ]

    def test_answered_mutation_resolves_on_new_socket(self, h: Harness) -> None:
        h.open()
        request_id = h.protocol.send_mutation("m:inc", {})
        h.mutation_ok(request_id, "orig", ts=30)
        h.protocol.connection_lost("InactiveServer")
        out = h.open()
        assert out[-1]["requestId"] == request_id
        assert h.mutation_ok(request_id, "dup", ts=30) == []  # server de-duplicated
        assert h.transition(qs=1, ts=31) == [
            RequestCompleted(request_id, FunctionResult(True, "orig"))
        ]

    def test_unsent_output_is_dropped_on_loss(self, h: Harness) -> None:
        h.open()
        h.protocol.subscribe("m:a", {})
        h.protocol.connection_lost("closed with code 1006")
        assert h.out() == []

    def test_connection_lost_while_closed_only_updates_reason(self, h: Harness) -> None:
        h.protocol.connection_lost("ConnectError: refused")
        assert h.protocol.state is ConnectionState.CLOSED
        assert h.events() == []
        assert h.open()[0]["lastCloseReason"] == "ConnectError: refused"
        assert h.protocol.connection_count == 1

    def test_shutdown_fails_everything(self, h: Harness) -> None:
        h.open()
        m = h.protocol.send_mutation("m", {})
        a = h.protocol.send_action("a", {})
        h.protocol.shutdown()
        assert h.events() == [RequestLost(m, "Client closed"), RequestLost(a, "Client closed")]
        assert h.protocol.state is ConnectionState.CLOSED
        assert len(h.protocol.request_manager) == 0


class TestViolations:
    def test_start_version_mismatch(self, h: Harness, caplog: pytest.LogCaptureFixture) -> None:
        h.open()
        query_id = h.protocol.subscribe("m:a", {})
        h.transition(updated(query_id, 1.0), ts=10)
        bad = {
            "type": "Transition",
            "startVersion": ver(0, 0, 3),
            "endVersion": ver(1, 0, 11),
            "modifications": [updated(query_id, 99.0)],
        }
        with caplog.at_level(logging.WARNING):
            assert h.feed(bad) == [ReconnectNeeded("StartVersionMismatch")]
        assert "Invalid start version" in caplog.text
        assert h.protocol.state is ConnectionState.CLOSING
        assert h.protocol.current_result(query_id) == FunctionResult(True, 1.0)
        # Everything after the violation is ignored, and nothing more is sent on this socket.
        assert h.transition(updated(query_id, 2.0)) == []
        h.protocol.send_mutation("m:x", {})
        assert h.out() == []
        h.protocol.connection_lost("StartVersionMismatch")
        out = h.open()
        assert out[0]["lastCloseReason"] == "StartVersionMismatch"
        assert out[0]["connectionCount"] == 1
        assert [m["type"] for m in out] == ["Connect", "ModifyQuerySet", "Mutation"]

    def test_malformed_message(self, h: Harness) -> None:
        h.open()
        assert h.feed({"type": "Transition"}) == [ReconnectNeeded("ProtocolError")]

    def test_fatal_error(self, h: Harness) -> None:
        h.open()
        assert h.feed({"type": "FatalError", "error": "bad"}) == [
            ReconnectNeeded("FatalError: bad")
        ]

    def test_auth_error(self, h: Harness) -> None:
        h.open()
        assert h.feed(
            {"type": "AuthError", "error": "expired", "baseVersion": 0, "authUpdateAttempted": True}
        ) == [ReconnectNeeded("AuthError: expired")]

    def test_unknown_type_is_ignored(self, h: Harness, caplog: pytest.LogCaptureFixture) -> None:
        h.open()
        query_id = h.protocol.subscribe("m:a", {})
        with caplog.at_level(logging.WARNING):
            assert h.feed({"type": "Surprise", "x": 1}) == []
        assert "Surprise" in caplog.text
        assert h.transition(updated(query_id, 1.0))[0].query_id == query_id

    def test_ping_does_nothing(self, h: Harness) -> None:
        h.open()
        assert h.feed({"type": "Ping"}) == []
        assert h.protocol.is_open


class TestTransitionChunks:
    def _chunks(self, h: Harness, query_id: int, parts: int = 3) -> list[dict[str, Any]]:
        end = ver(1, 0, 5)
        text = json.dumps(
            {
                "type": "Transition",
                "startVersion": h.sent,
                "endVersion": end,
                "modifications": [updated(query_id, "big")],
            }
        )
        size = len(text) // parts + 1
        pieces = [text[i * size : (i + 1) * size] for i in range(parts)]
        h.sent = end
        return [
            {
                "type": "TransitionChunk",
                "chunk": piece,
                "partNumber": n,
                "totalParts": parts,
                "transitionId": "t1",
            }
            for n, piece in enumerate(pieces)
        ]

    def test_reassembly(self, h: Harness) -> None:
        h.open()
        query_id = h.protocol.subscribe("m:a", {})
        chunks = self._chunks(h, query_id)
        assert h.feed(chunks[0]) == [] and h.feed(chunks[1]) == []
        assert h.feed(chunks[2]) == [QueryResultChanged(query_id, FunctionResult(True, "big"))]
        # The buffer is reset: a normal Transition chains on.
        assert h.transition(updated(query_id, "small"))[0].result.value == "small"

    def test_out_of_order(self, h: Harness) -> None:
        h.open()
        chunks = self._chunks(h, 0)
        assert h.feed(chunks[1]) == [ReconnectNeeded("ProtocolError")]

    def test_mixed_ids(self, h: Harness) -> None:
        h.open()
        chunks = self._chunks(h, 0)
        h.feed(chunks[0])
        assert h.feed({**chunks[1], "transitionId": "other"}) == [ReconnectNeeded("ProtocolError")]

    def test_restart_while_buffer_partial(self, h: Harness) -> None:
        h.open()
        chunks = self._chunks(h, 0)
        h.feed(chunks[0])
        assert h.feed(chunks[0]) == [ReconnectNeeded("ProtocolError")]

    def test_payload_must_be_a_transition(self, h: Harness) -> None:
        h.open()
        chunk = {
            "type": "TransitionChunk",
            "chunk": '{"type":"Ping"}',
            "partNumber": 0,
            "totalParts": 1,
            "transitionId": "x",
        }
        assert h.feed(chunk) == [ReconnectNeeded("ProtocolError")]

    def test_buffer_dropped_on_reconnect(self, h: Harness) -> None:
        h.open()
        chunks = self._chunks(h, 0)
        h.feed(chunks[0])
        h.protocol.connection_lost("closed with code 1006")
        h.open()
        fresh = self._chunks(h, 0, parts=1)
        assert h.feed(fresh[0]) == []
        assert h.protocol.remote_version.ts == 5


def test_ids_are_typed_ints() -> None:
    protocol = ClientProtocol(SESSION)
    assert protocol.subscribe("m", {}) == QueryId(0)
    assert protocol.send_mutation("m", {}) == RequestId(0)
    assert protocol.last_close_reason == "InitialConnect"
    assert protocol.local_state.query_set_version == 1
