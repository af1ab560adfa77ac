"""ServerSession: frames in, events and encoded frames out (no sockets, no clock)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reactor.sync.messages import StateVersion, encode_ts
from reactor.sync.protocol import (
    ActionRequested,
    AuthenticateRequested,
    Connected,
    IdentityVersionMismatch,
    InternalSessionError,
    MalformedClientMessage,
    MutationRequested,
    QueriesChanged,
    QueryFailure,
    QuerySetInconsistent,
    QuerySetVersionMismatch,
    QuerySpec,
    QuerySuccess,
    ServerSession,
    SessionError,
    final_message,
)
from schema.errors import InvalidMessage, SyncProtocolError, VersionMismatch
from schema.values import Int64, dumps

SESSION = "9f0c5a2e-6b7e-4a8e-9f55-0d1c2b3a4e5f"


def send(session: ServerSession, **fields: Any) -> list[Any]:
    return session.receive(json.dumps(fields))


def connect(session: ServerSession, **extra: Any) -> list[Any]:
    fields = {
        "type": "Connect",
        "sessionId": SESSION,
        "connectionCount": 0,
        "lastCloseReason": "InitialConnect",
    }
    fields.update(extra)
    return session.receive(json.dumps(fields), now_ms=extra.pop("now_ms", None))


def add(
    query_id: int, udf_path: str = "messages:list", args: Any = None, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "Add",
        "queryId": query_id,
        "udfPath": udf_path,
        "args": [args or {}],
        **extra,
    }


def remove(query_id: int) -> dict[str, Any]:
    return {"type": "Remove", "queryId": query_id}


def modify(session: ServerSession, *modifications: dict[str, Any]) -> list[Any]:
    base = session.query_set_version
    return send(
        session,
        type="ModifyQuerySet",
        baseVersion=base,
        newVersion=base + 1,
        modifications=list(modifications),
    )


def authenticate(session: ServerSession, base_version: int, token: str = "jwt") -> list[Any]:
    return send(
        session, type="Authenticate", tokenType="User", value=token, baseVersion=base_version
    )


def version(query_set: int, identity: int, ts: int) -> dict[str, Any]:
    return {"querySet": query_set, "identity": identity, "ts": encode_ts(ts)}


def transition(
    session: ServerSession, ts: int, outcomes: dict[int, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    data = session.build_transition(ts, outcomes or {}, **kw)
    assert isinstance(data, bytes)
    parsed: dict[str, Any] = json.loads(data)
    assert parsed["type"] == "Transition"
    return parsed


def updated(
    query_id: int, value: Any, log_lines: list[str] | None = None, journal: Any = None
) -> dict[str, Any]:
    return {
        "type": "QueryUpdated",
        "queryId": query_id,
        "value": value,
        "logLines": log_lines or [],
        "journal": journal,
    }


def ok(value: Any, *log_lines: str) -> QuerySuccess:
    return QuerySuccess(dumps(value), log_lines)


class TestInitialState:
    def test_fresh_session(self) -> None:
        session = ServerSession()
        assert session.session_id is None
        assert session.sent_version == StateVersion(0, 0, 0)
        assert session.query_set_version == 0
        assert session.identity_version == 0
        assert session.queries == {}
        assert session.pending_query_ids == frozenset()
        assert not session.needs_transition

    def test_first_transition_starts_at_zero(self) -> None:
        session = ServerSession()
        parsed = transition(session, 10)
        assert parsed == {
            "type": "Transition",
            "startVersion": {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="},
            "endVersion": version(0, 0, 10),
            "modifications": [],
        }


class TestConnect:
    def test_connected_event(self) -> None:
        session = ServerSession()
        events = connect(session, maxObservedTimestamp=encode_ts(42), clientTs=1000)
        assert events == [Connected(SESSION, 42, 1000, 0, "InitialConnect")]
        assert session.session_id == SESSION
        assert session.max_observed_ts == 42
        assert session.client_ts == 1000
        assert session.client_clock_skew is None

    def test_clock_skew_reported_in_transitions(self) -> None:
        session = ServerSession()
        session.receive(
            json.dumps(
                {"type": "Connect", "sessionId": SESSION, "connectionCount": 1, "clientTs": 1000}
            ),
            now_ms=1003,
        )
        assert session.client_clock_skew == -3
        parsed = transition(session, 1, server_ts=99)
        assert parsed["clientClockSkew"] == -3
        assert parsed["serverTs"] == 99

    def test_rust_client_ts_zero(self) -> None:
        session = ServerSession()
        session.receive(
            json.dumps(
                {"type": "Connect", "sessionId": SESSION, "connectionCount": 0, "clientTs": 0}
            ),
            now_ms=1_700_000_000_000,
        )
        assert session.client_clock_skew == -1_700_000_000_000

    def test_repeated_connect_overwrites(self) -> None:
        session = ServerSession()
        connect(session)
        other = "11111111-2222-4333-8444-555555555555"
        events = send(session, type="Connect", sessionId=other, connectionCount=2)
        assert events == [Connected(other, None, None, 2, "unknown")]
        assert session.session_id == other


class TestQuerySet:
    def test_js_open_flow_with_empty_modify(self) -> None:
        session = ServerSession()
        connect(session)
        events = modify(session)
        assert events == [QueriesChanged([], [], 1)]
        assert session.needs_transition
        parsed = transition(session, 5)
        assert parsed["startVersion"] == version(0, 0, 0)
        assert parsed["endVersion"] == version(1, 0, 5)
        assert parsed["modifications"] == []
        assert not session.needs_transition

    def test_add_produces_specs(self) -> None:
        session = ServerSession()
        events = modify(
            session,
            add(0, "messages:list", {"n": {"$integer": "AQAAAAAAAAA="}}, journal=None),
            add(1, "messages", journal="j", componentPath="c"),
        )
        spec0 = QuerySpec(0, "messages:list", {"n": Int64(1)}, None, None)
        spec1 = QuerySpec(1, "messages", {}, "j", "c")
        assert events == [QueriesChanged([spec0, spec1], [], 1)]
        assert session.queries == {0: spec0, 1: spec1}
        assert session.pending_query_ids == {0, 1}

    def test_new_queries_are_sent_sorted(self) -> None:
        session = ServerSession()
        modify(session, add(5), add(2), add(9))
        parsed = transition(session, 3, {9: ok("c"), 2: ok("a"), 5: ok("b")})
        assert [m["queryId"] for m in parsed["modifications"]] == [2, 5, 9]
        assert parsed["modifications"][0] == updated(2, "a")
        assert session.pending_query_ids == frozenset()

    def test_new_query_without_outcome_stays_pending(self) -> None:
        session = ServerSession()
        modify(session, add(0), add(1))
        parsed = transition(session, 1, {0: ok(1)})
        assert parsed["modifications"] == [updated(0, 1.0)]
        assert parsed["endVersion"] == version(1, 0, 1)
        assert session.pending_query_ids == {1}
        parsed = transition(session, 2, {1: ok(2)})
        assert parsed["modifications"] == [updated(1, 2.0)]

    def test_new_query_sent_even_if_equal_to_another_result(self) -> None:
        session = ServerSession()
        shared = ok([1, 2])
        modify(session, add(0))
        transition(session, 1, {0: shared})
        modify(session, add(1))
        parsed = transition(session, 2, {0: shared, 1: shared})
        assert parsed["modifications"] == [updated(1, [1.0, 2.0])]

    def test_removed_query_gets_query_removed(self) -> None:
        session = ServerSession()
        modify(session, add(0), add(3))
        transition(session, 1, {0: ok("a"), 3: ok("b")})
        events = modify(session, remove(3))
        assert events == [QueriesChanged([], [3], 2)]
        assert 3 not in session.queries
        parsed = transition(session, 2, {3: ok("stale")})
        assert parsed["modifications"] == [{"type": "QueryRemoved", "queryId": 3}]
        assert parsed["endVersion"] == version(2, 0, 2)
        # Sent once only.
        assert transition(session, 3)["modifications"] == []

    def test_removed_before_any_result_sends_nothing(self) -> None:
        session = ServerSession()
        modify(session, add(0))
        modify(session, remove(0))
        assert session.pending_query_ids == frozenset()
        parsed = transition(session, 1, {0: ok(1)})
        assert parsed["modifications"] == []
        assert parsed["endVersion"] == version(2, 0, 1)

    def test_remove_then_readd_with_outcome_sends_only_update(self) -> None:
        session = ServerSession()
        outcome = ok("same")
        modify(session, add(0))
        transition(session, 1, {0: outcome})
        modify(session, remove(0))
        modify(session, add(0, "other:query"))
        parsed = transition(session, 2, {0: outcome})
        # The re-added query is new, so its result is sent even though it is unchanged.
        assert parsed["modifications"] == [updated(0, "same")]
        assert session.queries[0].udf_path == "other:query"

    def test_remove_then_readd_without_outcome_removes_old_result(self) -> None:
        session = ServerSession()
        modify(session, add(0))
        transition(session, 1, {0: ok(1)})
        modify(session, remove(0), add(0))
        parsed = transition(session, 2)
        assert parsed["modifications"] == [{"type": "QueryRemoved", "queryId": 0}]
        assert session.pending_query_ids == {0}
        parsed = transition(session, 3, {0: ok(1)})
        assert parsed["modifications"] == [updated(0, 1.0)]

    def test_removed_and_updated_are_interleaved_by_id(self) -> None:
        session = ServerSession()
        modify(session, add(1), add(2), add(3))
        transition(session, 1, {1: ok(1), 2: ok(2), 3: ok(3)})
        modify(session, remove(2), add(0))
        parsed = transition(session, 2, {0: ok(0), 1: ok(10), 3: ok(3)})
        assert parsed["modifications"] == [
            updated(0, 0.0),
            updated(1, 10.0),
            {"type": "QueryRemoved", "queryId": 2},
        ]

    def test_outcomes_for_unknown_ids_are_ignored(self) -> None:
        session = ServerSession()
        modify(session, add(0))
        parsed = transition(session, 1, {7: ok(1)})
        assert parsed["modifications"] == []
        assert session.pending_query_ids == {0}


class TestDedupe:
    def test_same_object_is_not_resent(self) -> None:
        session = ServerSession()
        outcome = ok({"a": 1})
        modify(session, add(0))
        transition(session, 1, {0: outcome})
        assert transition(session, 2, {0: outcome})["modifications"] == []

    def test_equal_bytes_in_new_object_is_not_resent(self) -> None:
        session = ServerSession()
        modify(session, add(0))
        transition(session, 1, {0: QuerySuccess(b'{"a":1.0}', ("[LOG] x",))})
        again = QuerySuccess(bytes(bytearray(b'{"a":1.0}')), ["[LOG] x"])  # type: ignore[arg-type]
        assert transition(session, 2, {0: again})["modifications"] == []

    def test_changed_value_is_sent(self) -> None:
        session = ServerSession()
        modify(session, add(0))
        transition(session, 1, {0: ok(1)})
        assert transition(session, 2, {0: ok(2)})["modifications"] == [updated(0, 2.0)]
        assert transition(session, 3, {0: ok(2)})["modifications"] == []

    def test_changed_log_lines_are_sent(self) -> None:
        session = ServerSession()
        modify(session, add(0))
        transition(session, 1, {0: ok(1)})
        parsed = transition(session, 2, {0: ok(1, "[LOG] again")})
        assert parsed["modifications"] == [updated(0, 1.0, ["[LOG] again"])]

    def test_changed_journal_is_sent(self) -> None:
        session = ServerSession()
        modify(session, add(0))
        transition(session, 1, {0: QuerySuccess(b"1.0")})
        parsed = transition(session, 2, {0: QuerySuccess(b"1.0", (), "j2")})
        assert parsed["modifications"] == [updated(0, 1.0, journal="j2")]

    def test_success_to_failure_and_back(self) -> None:
        session = ServerSession()
        modify(session, add(0))
        transition(session, 1, {0: QuerySuccess(None)})
        parsed = transition(session, 2, {0: QueryFailure("boom")})
        assert parsed["modifications"] == [
            {
                "type": "QueryFailed",
                "queryId": 0,
                "errorMessage": "boom",
                "logLines": [],
                "journal": None,
            }
        ]
        assert transition(session, 3, {0: QueryFailure("boom")})["modifications"] == []
        parsed = transition(session, 4, {0: QuerySuccess(None)})
        assert parsed["modifications"] == [updated(0, None)]

    def test_failure_error_data_presence(self) -> None:
        session = ServerSession()
        modify(session, add(0), add(1), add(2))
        parsed = transition(
            session,
            1,
            {
                0: QueryFailure("plain"),
                1: QueryFailure("ConvexError", b"null"),
                2: QueryFailure("ConvexError", dumps({"code": "E"}), ("[ERROR] e",), "j"),
            },
        )
        plain, null_data, data = parsed["modifications"]
        assert "errorData" not in plain
        assert null_data["errorData"] is None
        assert data == {
            "type": "QueryFailed",
            "queryId": 2,
            "errorMessage": "ConvexError",
            "logLines": ["[ERROR] e"],
            "journal": "j",
            "errorData": {"code": "E"},
        }
        # errorData null vs absent is a real change.
        parsed = transition(session, 2, {0: QueryFailure("plain", b"null")})
        assert parsed["modifications"][0]["errorData"] is None

    def test_outcome_fingerprints(self) -> None:
        value = b"[1.0]"
        assert QuerySuccess(value).fingerprint == QuerySuccess(value).fingerprint
        assert QuerySuccess(b"null").fingerprint != QueryFailure("null").fingerprint
        assert QuerySuccess(value, ["a"]).log_lines == ("a",)  # type: ignore[arg-type]
        assert QueryFailure("m", None, ["a"]).log_lines == ("a",)  # type: ignore[arg-type]
        assert QuerySuccess(value) == QuerySuccess(value)

    def test_shared_outcome_encodes_body_once(self) -> None:
        outcome = ok("x" * 1000)
        first = outcome.encode(1)
        body = outcome._body
        assert body is not None and first.endswith(body)
        assert outcome.encode(2).endswith(body) and outcome._body is body

    def test_many_sessions_share_one_outcome(self) -> None:
        value_json = dumps({"rows": list(range(100))})
        sessions = [ServerSession() for _ in range(50)]
        for session in sessions:
            modify(session, add(0))
            transition(session, 1, {0: QuerySuccess(b"null")})
        outcome = QuerySuccess(value_json)
        frames = [session.build_transition(2, {0: outcome}) for session in sessions]
        assert len(set(frames)) == 1
        assert value_json in frames[0]


class TestVersions:
    def test_chaining_across_calls(self) -> None:
        session = ServerSession()
        ends = []
        modify(session, add(0))
        ends.append(transition(session, 10, {0: ok(1)})["endVersion"])
        modify(session, add(1))
        ends.append(transition(session, 20, {1: ok(2)})["endVersion"])
        ends.append(transition(session, 30)["endVersion"])
        parsed = transition(session, 40)
        assert parsed["startVersion"] == ends[-1]
        assert ends == [version(1, 0, 10), version(2, 0, 20), version(2, 0, 30)]
        assert session.sent_version == StateVersion(2, 0, 40)

    def test_ts_never_goes_backwards(self) -> None:
        session = ServerSession()
        transition(session, 100)
        parsed = transition(session, 50)
        assert parsed["startVersion"] == version(0, 0, 100)
        assert parsed["endVersion"] == version(0, 0, 100)
        assert session.sent_version.ts == 100

    def test_query_set_version_may_jump(self) -> None:
        session = ServerSession()
        send(session, type="ModifyQuerySet", baseVersion=0, newVersion=5, modifications=[])
        assert session.query_set_version == 5
        assert transition(session, 1)["endVersion"] == version(5, 0, 1)

    def test_base_version_mismatch_is_bad_request(self) -> None:
        session = ServerSession()
        modify(session)
        with pytest.raises(QuerySetVersionMismatch) as info:
            send(session, type="ModifyQuerySet", baseVersion=0, newVersion=1, modifications=[])
        exc = info.value
        assert isinstance(exc, VersionMismatch) and isinstance(exc, SyncProtocolError)
        assert str(exc) == "Base version 0 passed up doesn't match the current version 1"
        assert exc.code == "BaseVersionMismatch"
        assert exc.close_code is None
        assert exc.close_reason == ""
        frame = final_message(exc)
        assert frame is not None
        assert json.loads(frame) == {
            "type": "FatalError",
            "error": "Base version 0 passed up doesn't match the current version 1",
        }

    @pytest.mark.parametrize("new_version", [0, 1])
    def test_new_version_not_greater_is_internal(self, new_version: int) -> None:
        session = ServerSession()
        send(session, type="ModifyQuerySet", baseVersion=0, newVersion=1, modifications=[])
        with pytest.raises(QuerySetInconsistent) as info:
            send(
                session,
                type="ModifyQuerySet",
                baseVersion=1,
                newVersion=new_version,
                modifications=[],
            )
        assert str(info.value) == (
            f"ModifyQuerySet newVersion {new_version} must be greater than baseVersion 1"
        )
        self.assert_internal(info.value)

    def test_duplicate_add_is_internal(self) -> None:
        session = ServerSession()
        modify(session, add(0))
        with pytest.raises(QuerySetInconsistent, match="^Duplicate query ID: 0$") as info:
            modify(session, add(0))
        self.assert_internal(info.value)

    def test_duplicate_add_within_one_message(self) -> None:
        session = ServerSession()
        with pytest.raises(QuerySetInconsistent, match="^Duplicate query ID: 4$"):
            modify(session, add(4), add(4))

    def test_unknown_remove_is_internal(self) -> None:
        session = ServerSession()
        with pytest.raises(QuerySetInconsistent, match="^Nonexistent query id: 3$") as info:
            modify(session, remove(3))
        self.assert_internal(info.value)

    @staticmethod
    def assert_internal(exc: SessionError) -> None:
        assert isinstance(exc, InternalSessionError)
        assert isinstance(exc, SyncProtocolError)
        assert exc.code == "InternalServerError"
        assert exc.close_code == 1011
        assert exc.close_reason == "InternalServerError"
        assert final_message(exc) is None


class TestMalformed:
    @pytest.mark.parametrize(
        ("data", "error"),
        [
            (
                "@",
                "Invalid message: not valid JSON (JSON is malformed: invalid character (byte 0))",
            ),
            ('{"type":"Nope"}', "Invalid message: unknown type 'Nope'"),
            (
                '{"type":"ModifyQuerySet","baseVersion":"0","newVersion":1,"modifications":[]}',
                "Invalid ModifyQuerySet message: field `baseVersion` must be an integer, "
                "got string",
            ),
        ],
    )
    def test_malformed_is_bad_request(self, data: str, error: str) -> None:
        session = ServerSession()
        with pytest.raises(MalformedClientMessage) as info:
            session.receive(data)
        exc = info.value
        assert isinstance(exc, InvalidMessage)
        assert isinstance(exc.__cause__, InvalidMessage)
        assert exc.code == "InvalidMessage"
        assert str(exc) == error
        assert exc.close_code is None
        frame = final_message(exc)
        assert frame is not None
        assert json.loads(frame) == {"type": "FatalError", "error": error}


class TestRequests:
    def test_mutation_event(self) -> None:
        session = ServerSession()
        events = send(
            session, type="Mutation", requestId=3, udfPath="messages:send", args=[{"body": "hi"}]
        )
        assert events == [MutationRequested(3, "messages:send", {"body": "hi"}, None)]
        assert not session.needs_transition

    def test_action_event(self) -> None:
        session = ServerSession()
        events = send(
            session,
            type="Action",
            requestId=4,
            udfPath="a:b",
            args=[{"x": {"$bytes": "AQ=="}}],
            componentPath="c",
        )
        assert events == [ActionRequested(4, "a:b", {"x": b"\x01"}, "c")]

    def test_event_messages_produce_nothing(self) -> None:
        session = ServerSession()
        assert send(session, type="Event", eventType="ClientConnect", event={}) == []
        assert send(session, type="Event", eventType="SomethingNew") == []

    def test_mutation_response_success_then_transition(self) -> None:
        session = ServerSession()
        data = session.mutation_response(0, ok("id"), ts=77)
        assert json.loads(data) == {
            "type": "MutationResponse",
            "requestId": 0,
            "success": True,
            "result": "id",
            "ts": encode_ts(77),
            "logLines": [],
        }
        assert session.needs_transition
        assert transition(session, 77)["endVersion"]["ts"] == encode_ts(77)
        assert not session.needs_transition

    def test_mutation_response_success_requires_ts(self) -> None:
        with pytest.raises(ValueError, match="commit ts"):
            ServerSession().mutation_response(0, ok(1))

    def test_mutation_response_failure(self) -> None:
        session = ServerSession()
        plain = json.loads(session.mutation_response(1, QueryFailure("boom", None, ("[LOG] a",))))
        assert plain == {
            "type": "MutationResponse",
            "requestId": 1,
            "success": False,
            "result": "boom",
            "ts": None,
            "logLines": ["[LOG] a"],
        }
        convex_error = json.loads(
            session.mutation_response(2, QueryFailure("ConvexError", dumps({"a": 1})), ts=5)
        )
        assert convex_error["errorData"] == {"a": 1.0}
        assert convex_error["ts"] is None
        assert session.needs_transition

    def test_action_response(self) -> None:
        session = ServerSession()
        assert json.loads(session.action_response(5, ok([1], "[INFO] i"))) == {
            "type": "ActionResponse",
            "requestId": 5,
            "success": True,
            "result": [1.0],
            "logLines": ["[INFO] i"],
        }
        failed = json.loads(session.action_response(6, QueryFailure("no", b"null")))
        assert failed == {
            "type": "ActionResponse",
            "requestId": 6,
            "success": False,
            "result": "no",
            "logLines": [],
            "errorData": None,
        }
        assert not session.needs_transition

    def test_ping(self) -> None:
        assert json.loads(ServerSession().ping()) == {"type": "Ping"}


class TestIdentity:
    def test_confirm_flow(self) -> None:
        session = ServerSession()
        connect(session)
        events = authenticate(session, 0)
        assert events == [AuthenticateRequested("User", "jwt", 0, None)]
        modify(session, add(0))
        # Not yet confirmed: the Transition still reports identity 0.
        parsed = transition(session, 1, {0: ok("anon")})
        assert parsed["endVersion"] == version(1, 0, 1)
        session.confirm_identity()
        assert session.identity_version == 1
        assert session.needs_transition
        parsed = transition(session, 2, {0: ok("user")})
        assert parsed["startVersion"] == version(1, 0, 1)
        assert parsed["endVersion"] == version(1, 1, 2)
        assert parsed["modifications"] == [updated(0, "user")]
        # JS then re-authenticates with a refreshed token at baseVersion 1.
        assert authenticate(session, 1, "jwt2") == [AuthenticateRequested("User", "jwt2", 1)]
        session.confirm_identity()
        assert transition(session, 3)["endVersion"] == version(1, 2, 3)

    def test_logout_and_admin(self) -> None:
        session = ServerSession()
        events = send(
            session,
            type="Authenticate",
            tokenType="Admin",
            value="key",
            baseVersion=0,
            impersonating={"subject": "s"},
        )
        assert events == [AuthenticateRequested("Admin", "key", 0, {"subject": "s"})]
        events = send(session, type="Authenticate", tokenType="None", baseVersion=1)
        assert events == [AuthenticateRequested("None", None, 1, None)]
        assert session.authenticates_received == 2
        session.confirm_identity()
        session.confirm_identity()
        assert session.identity_version == 2

    def test_base_version_counts_received_not_confirmed(self) -> None:
        session = ServerSession()
        authenticate(session, 0)
        authenticate(session, 1)  # arrives before the caller confirmed the first
        session.confirm_identity()
        assert transition(session, 1)["endVersion"]["identity"] == 1

    def test_base_version_mismatch_is_internal(self) -> None:
        session = ServerSession()
        authenticate(session, 0)
        with pytest.raises(IdentityVersionMismatch) as info:
            authenticate(session, 0)
        exc = info.value
        assert str(exc) == "Authenticate baseVersion 0 doesn't match the identity version 1"
        assert isinstance(exc, VersionMismatch)
        TestVersions.assert_internal(exc)

    def test_confirm_without_authenticate(self) -> None:
        session = ServerSession()
        with pytest.raises(RuntimeError, match="without an unconfirmed Authenticate"):
            session.confirm_identity()
        authenticate(session, 0)
        session.confirm_identity()
        with pytest.raises(RuntimeError):
            session.confirm_identity()

    def test_auth_error_uses_sent_identity_version(self) -> None:
        session = ServerSession()
        assert json.loads(session.auth_error_message("bad token", attempted=True)) == {
            "type": "AuthError",
            "error": "bad token",
            "baseVersion": 0,
            "authUpdateAttempted": True,
        }
        authenticate(session, 0)
        session.confirm_identity()
        # Confirmed but not yet transitioned: the client still knows identity 0.
        assert json.loads(session.auth_error_message("e", attempted=True))["baseVersion"] == 0
        transition(session, 1)
        authenticate(session, 1, "expired")
        data = json.loads(session.auth_error_message("TokenExpired", attempted=False))
        assert data == {
            "type": "AuthError",
            "error": "TokenExpired",
            "baseVersion": 1,
            "authUpdateAttempted": False,
        }
        assert "authUpdateAttempted" not in json.loads(
            session.auth_error_message("x", attempted=None)
        )


class TestReconnect:
    def test_new_socket_new_session_starts_over(self) -> None:
        first = ServerSession()
        connect(first)
        modify(first, add(0), add(1))
        transition(first, 50, {0: ok(1), 1: ok(2)})
        # Rust/Python reconnect: a new socket, a new session, the same query ids again.
        second = ServerSession()
        connect(second, lastCloseReason="InactiveServer", maxObservedTimestamp=encode_ts(50))
        modify(second, add(0), add(1))
        parsed = transition(second, 60, {0: ok(1), 1: ok(2)})
        assert parsed["startVersion"] == version(0, 0, 0)
        assert [m["queryId"] for m in parsed["modifications"]] == [0, 1]


def ready(session: ServerSession, ts: int, outcomes: dict[int, Any] | None = None) -> Any:
    """The parsed Transition ``transition_for`` releases for a snapshot, or None if held."""
    data = session.transition_for(ts, outcomes or {})
    return None if data is None else json.loads(data)


class TestWhenATransitionMayGoOut:
    """transition_for: the session, not the socket shell, decides when a snapshot is sent."""

    def test_snapshot_without_pending_queries_goes_out(self) -> None:
        session = ServerSession()
        modify(session)  # JS's empty ModifyQuerySet on open
        parsed = ready(session, 5)
        assert parsed is not None and parsed["endVersion"] == version(1, 0, 5)

    def test_held_until_every_added_query_has_an_outcome(self) -> None:
        session = ServerSession()
        modify(session, add(0), add(1))
        assert ready(session, 5, {0: ok("a")}) is None
        assert session.sent_version == StateVersion(0, 0, 0)
        parsed = ready(session, 6, {0: ok("a"), 1: ok("b")})
        assert parsed is not None
        assert parsed["modifications"] == [updated(0, "a"), updated(1, "b")]
        # Nothing is awaited any more: later snapshots go out (deduplicated) at once.
        assert ready(session, 7, {0: ok("a")}) is not None

    def test_removing_an_awaited_query_releases_the_snapshot(self) -> None:
        session = ServerSession()
        modify(session, add(0), add(1))
        assert ready(session, 5, {0: ok("a")}) is None
        modify(session, remove(1))
        parsed = ready(session, 5, {0: ok("a")})
        assert parsed is not None
        assert parsed["endVersion"] == version(2, 0, 5)
        assert parsed["modifications"] == [updated(0, "a")]

    def test_held_below_the_commit_ts_of_a_mutation_response(self) -> None:
        session = ServerSession()
        session.mutation_response(0, ok("id"), ts=100)
        assert ready(session, 99) is None
        parsed = ready(session, 100)
        assert parsed is not None and parsed["endVersion"]["ts"] == encode_ts(100)
        # The floor never goes down: an older mutation's ts does not lower it.
        session.mutation_response(1, ok("id2"), ts=50)
        assert ready(session, 99) is None

    def test_a_failed_mutation_bounds_by_the_ts_it_ran_at(self) -> None:
        session = ServerSession()
        session.mutation_response(0, QueryFailure("boom"), ts=40)
        assert ready(session, 39) is None
        assert ready(session, 40) is not None
        unresolved = ServerSession()
        unresolved.mutation_response(0, QueryFailure("Could not find function"))
        assert ready(unresolved, 0) is not None

    def test_a_query_that_cannot_run_is_reported_in_every_transition(self) -> None:
        session = ServerSession()
        modify(session, add(0, "nope:missing"), add(1))
        session.fail_query(0, QueryFailure("Could not find public function for 'nope:missing'."))
        # The failed query counts as answered; query 1 is still awaited.
        assert ready(session, 5) is None
        parsed = ready(session, 6, {1: ok("b")})
        assert parsed is not None
        assert [(m["type"], m["queryId"]) for m in parsed["modifications"]] == [
            ("QueryFailed", 0),
            ("QueryUpdated", 1),
        ]
        # Merged again later, but the client already holds it: not resent.
        parsed = ready(session, 7, {1: ok("c")})
        assert parsed is not None and parsed["modifications"] == [updated(1, "c")]

    def test_removing_or_re_adding_forgets_a_failure(self) -> None:
        session = ServerSession()
        modify(session, add(0, "nope:missing"))
        session.fail_query(0, QueryFailure("missing"))
        assert ready(session, 5) is not None
        modify(session, remove(0))
        parsed = ready(session, 6)
        assert parsed is not None
        assert parsed["modifications"] == [{"type": "QueryRemoved", "queryId": 0}]
        modify(session, add(0, "nope:missing"))
        # Re-added: awaited again, and the old failure is no longer merged in.
        assert ready(session, 7) is None

    def test_fail_query_ignores_unknown_ids(self) -> None:
        session = ServerSession()
        session.fail_query(3, QueryFailure("missing"))
        parsed = ready(session, 1)
        assert parsed is not None and parsed["modifications"] == []

    def test_new_identity_waits_for_every_query_again(self) -> None:
        session = ServerSession()
        modify(session, add(0), add(1, "admin:only"))
        session.fail_query(1, QueryFailure("Could not find public function"))
        assert ready(session, 5, {0: ok("anon")}) is not None
        authenticate(session, 0)
        session.confirm_identity()
        # Every query re-runs under the new identity; the old failure is forgotten (the
        # caller resolves it again, e.g. an admin may now see an internal function).
        assert ready(session, 6, {0: ok("anon")}) is None
        parsed = ready(session, 7, {0: ok("anon"), 1: ok("secret")})
        assert parsed is not None
        assert parsed["endVersion"] == version(1, 1, 7)
        # Query 0's result did not change: deduplicated; query 1's changed.
        assert parsed["modifications"] == [updated(1, "secret")]

    def test_build_transition_alone_applies_no_waiting_rule(self) -> None:
        session = ServerSession()
        modify(session, add(0))
        session.mutation_response(0, ok("id"), ts=10)
        assert transition(session, 3)["endVersion"] == version(1, 0, 3)
        assert session.pending_query_ids == frozenset({0})

    def test_server_ts_is_passed_through(self) -> None:
        session = ServerSession()
        data = session.transition_for(1, {}, server_ts=1795248509518000000)
        assert data is not None and json.loads(data)["serverTs"] == 1795248509518000000
