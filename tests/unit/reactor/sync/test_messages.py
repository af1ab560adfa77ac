"""The wire codec, both directions: client messages decoded (server) and encoded (client), server
messages encoded (server) and parsed (client), the ts codec, and each direction's round trip."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest

from reactor.sync import messages
from reactor.sync.messages import (
    INITIAL_VERSION,
    Action,
    ActionResponse,
    Add,
    Authenticate,
    AuthError,
    ClientMessage,
    Connect,
    Event,
    FatalError,
    FunctionResult,
    ModifyQuerySet,
    Mutation,
    MutationResponse,
    Ping,
    QueryFailed,
    QueryId,
    QueryRemoved,
    QueryUpdated,
    RefusedCall,
    Remove,
    RequestId,
    StateVersion,
    Timestamp,
    Transition,
    TransitionChunk,
    UnknownMessage,
    decode_client_message,
    decode_ts,
    encode_client_message,
    encode_ts,
    parse_server_message,
)
from schema.errors import InvalidMessage, ValidationError
from schema.values import Int64, dumps, json_to_convex

SESSION = "9f0c5a2e-6b7e-4a8e-9f55-0d1c2b3a4e5f"


def frame(**fields: Any) -> str:
    return json.dumps(fields)


def parse(data: bytes) -> Any:
    assert isinstance(data, bytes)
    return json.loads(data)


def parse_obj(obj: Any) -> Any:
    return parse_server_message(json.dumps(obj))


ZERO = "AAAAAAAAAAA="
ONE = "AQAAAAAAAAA="


def version(qs: int = 0, identity: int = 0, ts: str = ZERO) -> dict[str, Any]:
    return {"querySet": qs, "identity": identity, "ts": ts}


def test_importing_it_loads_no_other_part_of_reactor() -> None:
    """client_sdk imports this module, so it must stay pure: msgspec, the stdlib, ``schema``."""
    code = "import sys, json, reactor.sync.messages; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = set(json.loads(out.stdout))
    assert {m for m in loaded if m.split(".")[0] == "reactor"} == {
        "reactor",
        "reactor.sync",
        "reactor.sync.messages",
    }
    assert {m.split(".")[0] for m in loaded} & {"functions", "starlette", "sqlite3"} == set()


# ---- timestamps ---------------------------------------------------------------------------


class TestTimestamps:
    @pytest.mark.parametrize(
        ("ts", "text"),
        [
            (0, "AAAAAAAAAAA="),
            (1, "AQAAAAAAAAA="),
            (5, "BQAAAAAAAAA="),
            (256, "AAEAAAAAAAA="),
            ((1 << 64) - 1, "//////////8="),
        ],
    )
    def test_examples(self, ts: int, text: str) -> None:
        assert encode_ts(ts) == text
        assert decode_ts(text) == ts

    def test_round_trip_nanoseconds(self) -> None:
        ts = 1_795_248_509_518_000_123
        assert decode_ts(encode_ts(ts)) == ts
        assert len(encode_ts(ts)) == 12

    @pytest.mark.parametrize("ts", [-1, 1 << 64])
    def test_encode_out_of_range(self, ts: int) -> None:
        with pytest.raises(ValueError, match="u64 range"):
            encode_ts(ts)

    def test_encode_rejects_non_int(self) -> None:
        with pytest.raises(ValueError, match="u64 range"):
            encode_ts(1.0)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("text", "match"),
        [
            ("AAAAAAAAAAA", "not padded standard base64"),
            ("AAAAAA==", "expected 8 bytes, got 4"),
            ("AAAAAAAAAAAAAAA=", "expected 8 bytes, got 11"),
            ("!!!!!!!!!!!=", "not padded standard base64"),
            ("AAAAAAAAAA-_", "not padded standard base64"),
            ("ÀAAAAAAAAAA=", "not padded standard base64"),
        ],
    )
    def test_decode_rejects(self, text: str, match: str) -> None:
        with pytest.raises(InvalidMessage, match=match):
            decode_ts(text)

    def test_decode_rejects_non_string(self) -> None:
        with pytest.raises(InvalidMessage, match="expected a base64 string, got number"):
            decode_ts(0)  # type: ignore[arg-type]
        with pytest.raises(InvalidMessage, match="expected a base64 string, got null"):
            decode_ts(None)  # type: ignore[arg-type]
        with pytest.raises(InvalidMessage, match="expected a base64 string, got bytes"):
            decode_ts(b"AAAAAAAAAAA=")  # type: ignore[arg-type]

    def test_encode_rejects_bool_even_after_caching_one(self) -> None:
        assert encode_ts(1) == "AQAAAAAAAAA="
        with pytest.raises(ValueError, match="u64 range"):
            encode_ts(True)


# ---- client messages, decoded (server side) ----------------------------------------------


class TestConnect:
    def test_js_style(self) -> None:
        message = decode_client_message(
            frame(
                type="Connect",
                sessionId=SESSION,
                connectionCount=3,
                lastCloseReason="InactiveServer",
                maxObservedTimestamp="AQAAAAAAAAA=",
                clientTs=1795248509518,
            )
        )
        assert message == Connect(SESSION, 3, "InactiveServer", 1, 1795248509518)

    def test_rust_style(self) -> None:
        message = decode_client_message(
            frame(
                type="Connect",
                sessionId=SESSION,
                connectionCount=0,
                lastCloseReason="InitialConnect",
                maxObservedTimestamp=None,
                clientTs=0,
            )
        )
        assert message == Connect(SESSION, 0, "InitialConnect", None, 0)

    def test_optional_fields_missing_and_extra_keys_ignored(self) -> None:
        message = decode_client_message(
            frame(type="Connect", sessionId=SESSION, connectionCount=0, future="x")
        )
        assert message == Connect(SESSION, 0, "unknown", None, None)

    def test_null_close_reason_defaults_to_unknown(self) -> None:
        message = decode_client_message(
            frame(type="Connect", sessionId=SESSION, connectionCount=0, lastCloseReason=None)
        )
        assert isinstance(message, Connect)
        assert message.last_close_reason == "unknown"

    def test_session_id_is_canonicalised(self) -> None:
        message = decode_client_message(
            frame(type="Connect", sessionId=SESSION.upper(), connectionCount=0)
        )
        assert isinstance(message, Connect)
        assert message.session_id == SESSION

    def test_bytes_input(self) -> None:
        data = frame(type="Connect", sessionId=SESSION, connectionCount=1).encode()
        assert decode_client_message(data) == Connect(SESSION, 1)

    @pytest.mark.parametrize(
        ("fields", "error"),
        [
            ({"connectionCount": 0}, "Invalid Connect message: missing field `sessionId`"),
            (
                {"sessionId": "not-a-uuid", "connectionCount": 0},
                "Invalid Connect message: field `sessionId` must be a UUID, got 'not-a-uuid'",
            ),
            (
                {"sessionId": 7, "connectionCount": 0},
                "Invalid Connect message: field `sessionId` must be a string, got number",
            ),
            ({"sessionId": SESSION}, "Invalid Connect message: missing field `connectionCount`"),
            (
                {"sessionId": SESSION, "connectionCount": -1},
                "Invalid Connect message: field `connectionCount` must be a u32 "
                "(0 to 4294967295), got -1",
            ),
            (
                {"sessionId": SESSION, "connectionCount": 1 << 32},
                "Invalid Connect message: field `connectionCount` must be a u32 "
                "(0 to 4294967295), got 4294967296",
            ),
            (
                {"sessionId": SESSION, "connectionCount": 1.0},
                "Invalid Connect message: field `connectionCount` must be an integer, got number",
            ),
            (
                {"sessionId": SESSION, "connectionCount": True},
                "Invalid Connect message: field `connectionCount` must be an integer, got boolean",
            ),
            (
                {"sessionId": SESSION, "connectionCount": 0, "lastCloseReason": 5},
                "Invalid Connect message: field `lastCloseReason` must be a string or null, "
                "got number",
            ),
            (
                {"sessionId": SESSION, "connectionCount": 0, "maxObservedTimestamp": "AAAA"},
                "Invalid Connect message: field `maxObservedTimestamp` must be a base64 u64: "
                "Invalid timestamp 'AAAA': expected 8 bytes, got 3",
            ),
            (
                {"sessionId": SESSION, "connectionCount": 0, "maxObservedTimestamp": 1},
                "Invalid Connect message: field `maxObservedTimestamp` must be a string or "
                "null, got number",
            ),
            (
                {"sessionId": SESSION, "connectionCount": 0, "clientTs": "now"},
                "Invalid Connect message: field `clientTs` must be an integer or null, got string",
            ),
            (
                {"sessionId": SESSION, "connectionCount": 0, "clientTs": 1 << 63},
                "Invalid Connect message: field `clientTs` must be an i64, got 9223372036854775808",
            ),
        ],
    )
    def test_invalid(self, fields: dict[str, Any], error: str) -> None:
        with pytest.raises(InvalidMessage) as info:
            decode_client_message(frame(type="Connect", **fields))
        assert str(info.value) == error
        assert info.value.code == "InvalidMessage"


class TestModifyQuerySet:
    def test_js_style(self) -> None:
        message = decode_client_message(
            frame(
                type="ModifyQuerySet",
                baseVersion=0,
                newVersion=1,
                modifications=[
                    {
                        "type": "Add",
                        "queryId": 0,
                        "udfPath": "messages:list",
                        "args": [{"channel": "general", "limit": 10}],
                        "journal": None,
                    },
                    {"type": "Remove", "queryId": 3},
                ],
            )
        )
        assert message == ModifyQuerySet(
            0,
            1,
            (
                Add(0, "messages:list", {"channel": "general", "limit": 10.0}, None, None),
                Remove(3),
            ),
        )

    def test_python_style_has_no_journal(self) -> None:
        message = decode_client_message(
            '{"type":"ModifyQuerySet","baseVersion":4,"newVersion":5,"modifications":'
            '[{"type":"Add","queryId":7,"udfPath":"messages","args":[{}]}]}'
        )
        assert message == ModifyQuerySet(4, 5, (Add(7, "messages", {}),))

    def test_journal_component_path_and_bare_object_args(self) -> None:
        message = decode_client_message(
            frame(
                type="ModifyQuerySet",
                baseVersion=1,
                newVersion=2,
                modifications=[
                    {
                        "type": "Add",
                        "queryId": 1,
                        "udfPath": "a/b:c",
                        "args": {"n": {"$integer": "BQAAAAAAAAA="}},
                        "journal": "j1",
                        "componentPath": "comp",
                    }
                ],
            )
        )
        assert message == ModifyQuerySet(1, 2, (Add(1, "a/b:c", {"n": Int64(5)}, "j1", "comp"),))
        assert isinstance(message, ModifyQuerySet)
        add = message.modifications[0]
        assert isinstance(add, Add)
        assert type(add.args["n"]) is Int64

    def test_empty_modifications(self) -> None:
        message = decode_client_message(
            '{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[]}'
        )
        assert message == ModifyQuerySet(0, 1, ())

    @pytest.mark.parametrize(
        ("fields", "error"),
        [
            (
                {"baseVersion": "0", "newVersion": 1, "modifications": []},
                "Invalid ModifyQuerySet message: field `baseVersion` must be an integer, "
                "got string",
            ),
            (
                {"baseVersion": 0, "modifications": []},
                "Invalid ModifyQuerySet message: missing field `newVersion`",
            ),
            (
                {"baseVersion": 0, "newVersion": 1},
                "Invalid ModifyQuerySet message: missing field `modifications`",
            ),
            (
                {"baseVersion": 0, "newVersion": 1, "modifications": {}},
                "Invalid ModifyQuerySet message: field `modifications` must be an array, "
                "got object",
            ),
            (
                {"baseVersion": 0, "newVersion": 1, "modifications": [1]},
                "Invalid ModifyQuerySet message: field `modifications[0]` must be an object, "
                "got number",
            ),
            (
                {"baseVersion": 0, "newVersion": 1, "modifications": [{"queryId": 1}]},
                "Invalid ModifyQuerySet message: missing field `modifications[0].type`",
            ),
            (
                {
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [{"type": "Remove", "queryId": 1}, {"type": "Replace"}],
                },
                "Invalid ModifyQuerySet message: field `modifications[1].type` must be "
                '"Add" or "Remove", got \'Replace\'',
            ),
            (
                {"baseVersion": 0, "newVersion": 1, "modifications": [{"type": "Remove"}]},
                "Invalid ModifyQuerySet message: missing field `modifications[0].queryId`",
            ),
            (
                {
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [{"type": "Add", "queryId": 0, "udfPath": 1, "args": [{}]}],
                },
                "Invalid ModifyQuerySet message: field `modifications[0].udfPath` must be a "
                "string, got number",
            ),
            (
                {
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [{"type": "Add", "queryId": 0, "udfPath": "m:q"}],
                },
                "Invalid ModifyQuerySet message: missing field `modifications[0].args`",
            ),
            (
                {
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [
                        {"type": "Add", "queryId": 0, "udfPath": "m:q", "args": [{}], "journal": 1}
                    ],
                },
                "Invalid ModifyQuerySet message: field `modifications[0].journal` must be a "
                "string or null, got number",
            ),
        ],
    )
    def test_invalid(self, fields: dict[str, Any], error: str) -> None:
        with pytest.raises(InvalidMessage) as info:
            decode_client_message(frame(type="ModifyQuerySet", **fields))
        assert str(info.value) == error


ARGS_PREFIX = "Invalid Mutation message: field `args` "


class TestArgs:
    @pytest.mark.parametrize(
        ("args", "error"),
        [
            ([], "must be an array holding exactly one object"),
            ([{}, {}], "must be an array holding exactly one object"),
            ([1], "must be an array holding exactly one object"),
            ([None], "must be an array holding exactly one object"),
            ("x", "must be an array holding exactly one object, got string"),
            (None, "must be an array holding exactly one object, got null"),
            ([{"$integer": "AQAAAAAAAAA="}], "must be an array holding exactly one object"),
            (
                [{"x": {"$float": "AAAAAAAA8D8="}}],
                "holds an invalid Convex value: Float 1.0 should be encoded as a number, "
                "not as $float - at `$.x`",
            ),
            (
                [{"x": {"$set": []}}],
                "holds an invalid Convex value: Field name '$set' starts with '$' - at `$.x`",
            ),
            (
                [{"$y": 1, "z": 2}],
                "holds an invalid Convex value: Field name '$y' starts with '$'",
            ),
            (
                [{"b": {"$bytes": "!!"}}],
                "holds an invalid Convex value: $bytes holds invalid base64 - at `$.b`",
            ),
            (
                [{"i": {"$integer": "AQ=="}}],
                "holds an invalid Convex value: $integer must hold exactly 8 bytes - at `$.i`",
            ),
        ],
    )
    def test_invalid(self, args: Any, error: str) -> None:
        # The requestId was read: the call is refused (a failed response), not the connection.
        refused = decode_client_message(
            frame(type="Mutation", requestId=0, udfPath="m:send", args=args)
        )
        assert refused == RefusedCall("Mutation", 0, ARGS_PREFIX + error)

    def test_special_values_decode(self) -> None:
        message = decode_client_message(
            frame(
                type="Action",
                requestId=2,
                udfPath="m:act",
                args=[
                    {
                        "big": {"$integer": "//////////8="},
                        "raw": {"$bytes": "AQID"},
                        "nan": {"$float": "AAAAAAAA+H8="},
                        "list": [1, "s", None, True],
                    }
                ],
            )
        )
        assert isinstance(message, Action)
        assert message.args["big"] == Int64(-1)
        assert message.args["raw"] == b"\x01\x02\x03"
        assert math.isnan(message.args["nan"])
        assert message.args["list"] == [1.0, "s", None, True]


class TestMutationAndAction:
    def test_mutation(self) -> None:
        message = decode_client_message(
            '{"type":"Mutation","requestId":0,"udfPath":"messages:send",'
            '"args":[{"body":"hi"}],"componentPath":null}'
        )
        assert message == Mutation(0, "messages:send", {"body": "hi"}, None)

    def test_action_with_component_path(self) -> None:
        message = decode_client_message(
            frame(type="Action", requestId=9, udfPath="a:b", args=[{}], componentPath="c")
        )
        assert message == Action(9, "a:b", {}, "c")

    @pytest.mark.parametrize(
        ("fields", "error"),
        [
            (
                {"udfPath": "m:s", "args": [{}]},
                "Invalid Action message: missing field `requestId`",
            ),
            (
                {"requestId": 1 << 32, "udfPath": "m:s", "args": [{}]},
                "Invalid Action message: field `requestId` must be a u32 (0 to 4294967295), "
                "got 4294967296",
            ),
        ],
    )
    def test_invalid(self, fields: dict[str, Any], error: str) -> None:
        with pytest.raises(InvalidMessage) as info:
            decode_client_message(frame(type="Action", **fields))
        assert str(info.value) == error

    @pytest.mark.parametrize(
        ("fields", "error"),
        [
            ({"requestId": 1, "args": [{}]}, "Invalid Action message: missing field `udfPath`"),
            (
                {"requestId": 1, "udfPath": "m:s", "args": [{}], "componentPath": 3},
                "Invalid Action message: field `componentPath` must be a string or null, "
                "got number",
            ),
        ],
    )
    def test_refused_once_the_request_id_is_read(self, fields: dict[str, Any], error: str) -> None:
        assert decode_client_message(frame(type="Action", **fields)) == RefusedCall(
            "Action", 1, error
        )


class TestAuthenticate:
    def test_user(self) -> None:
        message = decode_client_message(
            frame(type="Authenticate", tokenType="User", value="jwt", baseVersion=0)
        )
        assert message == Authenticate("User", "jwt", 0, None)

    def test_admin_js_impersonating(self) -> None:
        message = decode_client_message(
            frame(
                type="Authenticate",
                tokenType="Admin",
                value="key",
                baseVersion=1,
                impersonating={"subject": "u1", "issuer": "https://x"},
            )
        )
        assert message == Authenticate("Admin", "key", 1, {"subject": "u1", "issuer": "https://x"})

    def test_admin_rust_acting_as(self) -> None:
        message = decode_client_message(
            frame(
                type="Authenticate",
                tokenType="Admin",
                value="key",
                baseVersion=0,
                acting_as={"subject": "u2"},
            )
        )
        assert message == Authenticate("Admin", "key", 0, {"subject": "u2"})

    def test_logout(self) -> None:
        message = decode_client_message(
            '{"type":"Authenticate","tokenType":"None","baseVersion":2}'
        )
        assert message == Authenticate("None", None, 2, None)

    @pytest.mark.parametrize(
        ("fields", "error"),
        [
            (
                {"tokenType": "Bearer", "value": "x", "baseVersion": 0},
                'Invalid Authenticate message: field `tokenType` must be "User", "Admin" '
                "or \"None\", got 'Bearer'",
            ),
            (
                {"value": "x", "baseVersion": 0},
                "Invalid Authenticate message: missing field `tokenType`",
            ),
            (
                {"tokenType": "User", "baseVersion": 0},
                "Invalid Authenticate message: missing field `value`",
            ),
            (
                {"tokenType": "User", "value": None, "baseVersion": 0},
                "Invalid Authenticate message: field `value` must be a string, got null",
            ),
            (
                {"tokenType": "User", "value": "x"},
                "Invalid Authenticate message: missing field `baseVersion`",
            ),
            (
                {"tokenType": "Admin", "value": "k", "baseVersion": 0, "impersonating": "u"},
                "Invalid Authenticate message: field `impersonating` must be an object or null, "
                "got string",
            ),
        ],
    )
    def test_invalid(self, fields: dict[str, Any], error: str) -> None:
        with pytest.raises(InvalidMessage) as info:
            decode_client_message(frame(type="Authenticate", **fields))
        assert str(info.value) == error


class TestEvent:
    def test_event(self) -> None:
        message = decode_client_message(
            frame(type="Event", eventType="ClientConnect", event={"marks": [1, 2]})
        )
        assert message == Event("ClientConnect", {"marks": [1, 2]})

    def test_event_without_payload(self) -> None:
        assert decode_client_message(frame(type="Event", eventType="X")) == Event("X", None)

    def test_missing_event_type(self) -> None:
        with pytest.raises(
            InvalidMessage, match="^Invalid Event message: missing field `eventType`$"
        ):
            decode_client_message(frame(type="Event", event=1))


class TestEnvelope:
    @pytest.mark.parametrize(
        ("data", "error"),
        [
            ("{", "Invalid message: not valid JSON (Input data was truncated)"),
            (
                b"\xff",
                "Invalid message: not valid JSON (JSON is malformed: invalid character (byte 0))",
            ),
            ("", "Invalid message: not valid JSON (Input data was truncated)"),
            ("[]", "Invalid message: expected a JSON object, got array"),
            ('"Connect"', "Invalid message: expected a JSON object, got string"),
            ("null", "Invalid message: expected a JSON object, got null"),
            ("{}", "Invalid message: missing field `type`"),
            ('{"type":"Subscribe"}', "Invalid message: unknown type 'Subscribe'"),
            ('{"type":1}', "Invalid message: unknown type 1"),
            ('{"type":"Transition"}', "Invalid message: unknown type 'Transition'"),
        ],
    )
    def test_invalid(self, data: str | bytes, error: str) -> None:
        with pytest.raises(InvalidMessage) as info:
            decode_client_message(data)
        assert str(info.value) == error


# ---- client messages, encoded (client side) -----------------------------------------------


class TestEncodeClientMessage:
    def test_connect_omits_unobserved_timestamp(self) -> None:
        text = encode_client_message(Connect(SESSION, 0, "InitialConnect", None, 17))
        assert json.loads(text) == {
            "type": "Connect",
            "sessionId": SESSION,
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
            "clientTs": 17,
        }

    def test_connect_with_timestamp(self) -> None:
        obj = json.loads(encode_client_message(Connect(SESSION, 2, "InactiveServer", 1)))
        assert obj["maxObservedTimestamp"] == ONE
        assert obj["connectionCount"] == 2
        assert "clientTs" not in obj

    def test_modify_query_set(self) -> None:
        message = ModifyQuerySet(
            0,
            1,
            (Add(0, "m:list", {"a": 1.0}), Add(1, "m", {}, "j", "comp"), Remove(3)),
        )
        assert json.loads(encode_client_message(message)) == {
            "type": "ModifyQuerySet",
            "baseVersion": 0,
            "newVersion": 1,
            "modifications": [
                {
                    "type": "Add",
                    "queryId": 0,
                    "udfPath": "m:list",
                    "args": [{"a": 1.0}],
                    "journal": None,
                },
                {
                    "type": "Add",
                    "queryId": 1,
                    "udfPath": "m",
                    "args": [{}],
                    "journal": "j",
                    "componentPath": "comp",
                },
                {"type": "Remove", "queryId": 3},
            ],
        }

    def test_floats_keep_a_decimal_point_and_values_are_convex_encoded(self) -> None:
        text = encode_client_message(Mutation(4, "m:send", {"n": 1.0, "i": Int64(5)}))
        assert '"n":1.0' in text
        assert json.loads(text) == {
            "type": "Mutation",
            "requestId": 4,
            "udfPath": "m:send",
            "args": [{"n": 1.0, "i": {"$integer": "BQAAAAAAAAA="}}],
        }

    def test_action_and_authenticate(self) -> None:
        assert json.loads(encode_client_message(Action(1, "a:b", {}, "c"))) == {
            "type": "Action",
            "requestId": 1,
            "udfPath": "a:b",
            "args": [{}],
            "componentPath": "c",
        }
        assert json.loads(encode_client_message(Authenticate("User", "jwt", 0))) == {
            "type": "Authenticate",
            "tokenType": "User",
            "baseVersion": 0,
            "value": "jwt",
        }
        assert json.loads(encode_client_message(Authenticate("None", None, 2))) == {
            "type": "Authenticate",
            "tokenType": "None",
            "baseVersion": 2,
        }

    def test_args_that_are_not_convex_values(self) -> None:
        with pytest.raises(ValidationError):
            encode_client_message(Mutation(0, "m:f", {"x": object()}))

    @pytest.mark.parametrize(
        "message",
        [
            Connect(SESSION, 3, "InactiveServer", (1 << 64) - 1, 1795248509518),
            Connect(SESSION, 0),
            ModifyQuerySet(
                4,
                5,
                (
                    Add(0, "m:list", {"n": Int64(-5), "b": b"\x00\xff", "f": float("-inf")}),
                    Add(1, "a/b:c", {"s": 'é"\n', "l": [1.0, None, True]}, "j1", "comp"),
                    Remove(7),
                ),
            ),
            ModifyQuerySet(0, 1, ()),
            Mutation(0, "messages:send", {"body": "hi"}),
            Action(9, "a:b", {"x": {"y": [Int64(1)]}}, "c"),
            Authenticate("User", "jwt", 0),
            Authenticate("Admin", "key", 1, {"subject": "u1", "issuer": "https://x"}),
            Authenticate("None", None, 2),
            Event("ClientConnect", {"marks": [1, 2]}),
        ],
    )
    def test_round_trip_through_the_server_decoder(self, message: ClientMessage) -> None:
        assert decode_client_message(encode_client_message(message)) == message


# ---- server messages, encoded (server side) ----------------------------------------------


class TestTransition:
    def test_shape(self) -> None:
        data = messages.transition(
            StateVersion(0, 0, 0),
            StateVersion(1, 0, 5),
            [
                messages.query_updated(0, dumps({"a": [1, Int64(2)]}), ["[LOG] 'hi'"], None),
                messages.query_failed(1, "boom"),
                messages.query_removed(3),
            ],
            client_clock_skew=-3,
            server_ts=1795248509518000000,
        )
        assert parse(data) == {
            "type": "Transition",
            "startVersion": {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="},
            "endVersion": {"querySet": 1, "identity": 0, "ts": "BQAAAAAAAAA="},
            "modifications": [
                {
                    "type": "QueryUpdated",
                    "queryId": 0,
                    "value": {"a": [1.0, {"$integer": "AgAAAAAAAAA="}]},
                    "logLines": ["[LOG] 'hi'"],
                    "journal": None,
                },
                {
                    "type": "QueryFailed",
                    "queryId": 1,
                    "errorMessage": "boom",
                    "logLines": [],
                    "journal": None,
                },
                {"type": "QueryRemoved", "queryId": 3},
            ],
            "clientClockSkew": -3,
            "serverTs": 1795248509518000000,
        }

    def test_optional_fields_omitted_and_empty_modifications(self) -> None:
        data = messages.transition(StateVersion(2, 1, 7), StateVersion(2, 1, 7), [])
        assert parse(data) == {
            "type": "Transition",
            "startVersion": {"querySet": 2, "identity": 1, "ts": "BwAAAAAAAAA="},
            "endVersion": {"querySet": 2, "identity": 1, "ts": "BwAAAAAAAAA="},
            "modifications": [],
        }

    def test_value_is_spliced_verbatim(self) -> None:
        value_json = b'{"x":1.0,"y":[true,null]}'
        data = messages.transition(
            StateVersion(0, 0, 0), StateVersion(1, 0, 1), [messages.query_updated(4, value_json)]
        )
        assert value_json in data

    def test_float_values_stay_floats(self) -> None:
        data = messages.query_updated(0, dumps(1))
        assert b'"value":1.0' in data

    def test_query_updated_none_value_and_journal(self) -> None:
        assert parse(messages.query_updated(2, None, (), "jrnl")) == {
            "type": "QueryUpdated",
            "queryId": 2,
            "value": None,
            "logLines": [],
            "journal": "jrnl",
        }

    def test_query_failed_error_data_rules(self) -> None:
        plain = parse(messages.query_failed(1, "Server Error"))
        assert "errorData" not in plain
        with_null = parse(messages.query_failed(1, "ConvexError", b"null"))
        assert "errorData" in with_null and with_null["errorData"] is None
        with_data = parse(
            messages.query_failed(1, "x", dumps({"code": Int64(4)}), ["[ERROR] e"], "j")
        )
        assert with_data == {
            "type": "QueryFailed",
            "queryId": 1,
            "errorMessage": "x",
            "logLines": ["[ERROR] e"],
            "journal": "j",
            "errorData": {"code": {"$integer": "BAAAAAAAAAA="}},
        }

    def test_value_round_trips_through_client_decoding(self) -> None:
        value = {"n": Int64(-5), "b": b"\x00\xff", "f": float("-inf"), "s": 'é"\n'}
        decoded = parse(messages.query_updated(0, dumps(value)))
        assert json_to_convex(decoded["value"]) == value


class TestResponses:
    def test_mutation_success(self) -> None:
        data = messages.mutation_response_success(0, dumps("id1"), 9, ["[LOG] x"])
        assert parse(data) == {
            "type": "MutationResponse",
            "requestId": 0,
            "success": True,
            "result": "id1",
            "ts": "CQAAAAAAAAA=",
            "logLines": ["[LOG] x"],
        }

    def test_mutation_success_null_result(self) -> None:
        assert parse(messages.mutation_response_success(1, None, 0))["result"] is None

    def test_mutation_failure(self) -> None:
        data = messages.mutation_response_failure(1, "Uncaught Error: boom")
        assert parse(data) == {
            "type": "MutationResponse",
            "requestId": 1,
            "success": False,
            "result": "Uncaught Error: boom",
            "ts": None,
            "logLines": [],
        }

    def test_mutation_failure_convex_error(self) -> None:
        data = messages.mutation_response_failure(2, "ConvexError", dumps({"a": 1}), ["[WARN] w"])
        assert parse(data) == {
            "type": "MutationResponse",
            "requestId": 2,
            "success": False,
            "result": "ConvexError",
            "ts": None,
            "logLines": ["[WARN] w"],
            "errorData": {"a": 1.0},
        }

    def test_action_success_has_no_ts(self) -> None:
        assert parse(messages.action_response_success(3, dumps([1]))) == {
            "type": "ActionResponse",
            "requestId": 3,
            "success": True,
            "result": [1.0],
            "logLines": [],
        }

    def test_action_failure(self) -> None:
        assert parse(messages.action_response_failure(4, "nope")) == {
            "type": "ActionResponse",
            "requestId": 4,
            "success": False,
            "result": "nope",
            "logLines": [],
        }
        data = parse(messages.action_response_failure(4, "nope", b"null"))
        assert data["errorData"] is None and "ts" not in data

    def test_auth_error(self) -> None:
        assert parse(messages.auth_error("bad token", 0, True)) == {
            "type": "AuthError",
            "error": "bad token",
            "baseVersion": 0,
            "authUpdateAttempted": True,
        }
        assert parse(messages.auth_error("TokenExpired", 2, False))["authUpdateAttempted"] is False
        assert parse(messages.auth_error("e", None)) == {
            "type": "AuthError",
            "error": "e",
            "baseVersion": None,
        }

    def test_fatal_error_escapes(self) -> None:
        assert parse(messages.fatal_error('bad "x"\nü')) == {
            "type": "FatalError",
            "error": 'bad "x"\nü',
        }

    def test_ping(self) -> None:
        assert parse(messages.ping()) == {"type": "Ping"}


# ---- server messages, parsed (client side) ------------------------------------------------


class TestParseTransition:
    def test_full_transition(self) -> None:
        message = parse_obj(
            {
                "type": "Transition",
                "startVersion": version(),
                "endVersion": version(1, 0, ONE),
                "modifications": [
                    {
                        "type": "QueryUpdated",
                        "queryId": 0,
                        "value": [1.0],
                        "logLines": ["[LOG] x"],
                        "journal": "j",
                    },
                    {
                        "type": "QueryFailed",
                        "queryId": 1,
                        "errorMessage": "e",
                        "logLines": [],
                        "journal": None,
                        "errorData": None,
                    },
                    {"type": "QueryFailed", "queryId": 2, "errorMessage": "e2", "logLines": []},
                    {"type": "QueryRemoved", "queryId": 3},
                ],
                "clientClockSkew": -3,
                "serverTs": 1795248509518000000,
            }
        )
        assert message == Transition(
            INITIAL_VERSION,
            StateVersion(1, 0, 1),
            (
                QueryUpdated(QueryId(0), [1.0], ("[LOG] x",), "j"),
                QueryFailed(QueryId(1), "e", (), None, None, True),
                QueryFailed(QueryId(2), "e2", (), None, None, False),
                QueryRemoved(QueryId(3)),
            ),
            -3,
            1795248509518000000,
        )

    def test_lenient_optional_fields(self) -> None:
        message = parse_obj(
            {
                "type": "Transition",
                "startVersion": version(),
                "endVersion": version(),
                "modifications": [{"type": "QueryUpdated", "queryId": 0}],
                "clientClockSkew": None,
            }
        )
        assert isinstance(message, Transition)
        assert message.modifications == (QueryUpdated(QueryId(0), None),)
        assert message.client_clock_skew is None and message.server_ts is None

    @pytest.mark.parametrize(
        ("patch", "error"),
        [
            ({"startVersion": None}, "missing field `startVersion`"),
            (
                {"startVersion": {"querySet": 0, "identity": 0}},
                "missing field `startVersion.ts`",
            ),
            (
                {"startVersion": version(ts="bad")},
                "field `startVersion.ts` must be a base64 u64: Invalid timestamp 'bad': not "
                "padded standard base64",
            ),
            ({"endVersion": version(qs=-1)}, "field `endVersion.querySet` must be a u32"),
            ({"endVersion": version(qs=1 << 32)}, "field `endVersion.querySet` must be a u32"),
            (
                {"endVersion": {"querySet": True, "identity": 0, "ts": ZERO}},
                "field `endVersion.querySet` must be an integer, got boolean",
            ),
            ({"modifications": None}, "field `modifications` must be an array, got null"),
            ({"modifications": [5]}, "field `modifications[0]` must be an object, got number"),
            (
                {"modifications": [{"type": "QueryExploded", "queryId": 0}]},
                "field `modifications[0].type` must be a Transition modification type",
            ),
            (
                {"modifications": [{"type": "QueryUpdated", "queryId": "0", "value": 1}]},
                "field `modifications[0].queryId` must be an integer, got string",
            ),
            (
                {"modifications": [{"type": "QueryUpdated", "queryId": 0, "logLines": [1]}]},
                "field `modifications[0].logLines` must be an array of strings",
            ),
            (
                {"modifications": [{"type": "QueryUpdated", "queryId": 0, "logLines": "x"}]},
                "field `modifications[0].logLines` must be an array of strings",
            ),
            (
                {"modifications": [{"type": "QueryFailed", "queryId": 0}]},
                "missing field `modifications[0].errorMessage`",
            ),
            (
                {"modifications": [{"type": "QueryUpdated", "queryId": 0, "journal": 3}]},
                "field `modifications[0].journal` must be a string or null, got number",
            ),
            (
                {"clientClockSkew": "x"},
                "field `clientClockSkew` must be a number or null, got string",
            ),
        ],
    )
    def test_malformed(self, patch: dict[str, Any], error: str) -> None:
        obj: dict[str, Any] = {
            "type": "Transition",
            "startVersion": version(),
            "endVersion": version(),
            "modifications": [],
        }
        obj.update(patch)
        if patch.get("startVersion", 0) is None:
            del obj["startVersion"]
        with pytest.raises(InvalidMessage) as info:
            parse_obj(obj)
        assert str(info.value).startswith(f"Invalid Transition message: {error}")


class TestParseOthers:
    def test_mutation_success(self) -> None:
        message = parse_obj(
            {
                "type": "MutationResponse",
                "requestId": 3,
                "success": True,
                "result": {"a": 1.0},
                "ts": ONE,
                "logLines": ["l"],
            }
        )
        assert message == MutationResponse(
            RequestId(3), FunctionResult(True, {"a": 1.0}), Timestamp(1), ("l",)
        )

    def test_mutation_success_requires_ts(self) -> None:
        with pytest.raises(
            InvalidMessage, match="^Invalid MutationResponse message: missing field `ts`$"
        ):
            parse_obj({"type": "MutationResponse", "requestId": 3, "success": True, "result": 1})

    def test_mutation_failure(self) -> None:
        message = parse_obj(
            {
                "type": "MutationResponse",
                "requestId": 1,
                "success": False,
                "result": "oops",
                "ts": None,
                "logLines": [],
                "errorData": {"x": 1},
            }
        )
        assert message == MutationResponse(
            RequestId(1),
            FunctionResult(False, error_message="oops", error_data={"x": 1}, has_error_data=True),
        )

    def test_failure_result_must_be_string(self) -> None:
        with pytest.raises(InvalidMessage, match="field `result` must be a string, got number"):
            parse_obj({"type": "MutationResponse", "requestId": 1, "success": False, "result": 5})

    def test_success_must_be_bool(self) -> None:
        with pytest.raises(InvalidMessage, match="field `success` must be a boolean, got number"):
            parse_obj({"type": "ActionResponse", "requestId": 1, "success": 1, "result": 5})

    def test_action_response(self) -> None:
        assert parse_obj(
            {"type": "ActionResponse", "requestId": 2, "success": True, "result": None}
        ) == ActionResponse(RequestId(2), FunctionResult(True, None))

    def test_small_messages(self) -> None:
        assert parse_obj({"type": "Ping"}) == Ping()
        assert parse_obj({"type": "FatalError", "error": "bad"}) == FatalError("bad")
        assert parse_obj(
            {"type": "AuthError", "error": "e", "baseVersion": 0, "authUpdateAttempted": True}
        ) == AuthError("e", 0, True)
        assert parse_obj({"type": "AuthError", "error": "e"}) == AuthError("e")
        assert parse_obj(
            {
                "type": "TransitionChunk",
                "chunk": "{",
                "partNumber": 0,
                "totalParts": 2,
                "transitionId": "t",
            }
        ) == TransitionChunk("{", 0, 2, "t")

    def test_unknown_type(self) -> None:
        assert parse_obj({"type": "Hello", "x": 1}) == UnknownMessage("Hello")

    @pytest.mark.parametrize(
        ("text", "error"),
        [
            ("not json", "Invalid server message: not valid JSON"),
            ("[1]", "Invalid server message: expected a JSON object, got array"),
            ('{"x": 1}', "Invalid server message: missing field `type`"),
            ('{"type": 3}', "Invalid server message: unknown type 3"),
        ],
    )
    def test_garbage(self, text: str, error: str) -> None:
        with pytest.raises(InvalidMessage) as info:
            parse_server_message(text)
        assert str(info.value).startswith(error)

    def test_bytes_input(self) -> None:
        assert parse_server_message(b'{"type":"Ping"}') == Ping()


class TestServerRoundTrip:
    """What the server encodes, the client parses back to the same outcome."""

    def test_transition(self) -> None:
        data = messages.transition(
            StateVersion(1, 0, 5),
            StateVersion(2, 1, (1 << 64) - 1),
            [
                messages.query_updated(0, dumps({"n": Int64(2)}), ["[LOG] hi"], "j"),
                messages.query_failed(1, "boom"),
                messages.query_failed(2, "ConvexError", b"null"),
                messages.query_removed(3),
            ],
            client_clock_skew=-3,
            server_ts=7,
        )
        assert parse_server_message(data) == Transition(
            StateVersion(1, 0, 5),
            StateVersion(2, 1, (1 << 64) - 1),
            (
                QueryUpdated(QueryId(0), {"n": {"$integer": "AgAAAAAAAAA="}}, ("[LOG] hi",), "j"),
                QueryFailed(QueryId(1), "boom"),
                QueryFailed(QueryId(2), "ConvexError", has_error_data=True),
                QueryRemoved(QueryId(3)),
            ),
            -3,
            7,
        )

    def test_responses(self) -> None:
        success = messages.mutation_response_success(0, dumps("id1"), 9, ["[LOG] x"])
        assert parse_server_message(success) == MutationResponse(
            RequestId(0), FunctionResult(True, "id1"), Timestamp(9), ("[LOG] x",)
        )
        failure = messages.mutation_response_failure(1, "ConvexError", dumps({"a": 1}))
        assert parse_server_message(failure) == MutationResponse(
            RequestId(1),
            FunctionResult(
                False, error_message="ConvexError", error_data={"a": 1.0}, has_error_data=True
            ),
        )
        assert parse_server_message(messages.action_response_failure(4, "nope")) == (
            ActionResponse(RequestId(4), FunctionResult(False, error_message="nope"))
        )
        assert parse_server_message(messages.action_response_success(3, None)) == (
            ActionResponse(RequestId(3), FunctionResult(True, None))
        )

    def test_small_messages(self) -> None:
        assert parse_server_message(messages.auth_error("TokenExpired", 2, False)) == AuthError(
            "TokenExpired", 2, False
        )
        assert parse_server_message(messages.fatal_error('bad "x"')) == FatalError('bad "x"')
        assert parse_server_message(messages.ping()) == Ping()


class TestFrameLimits:
    """Frames beyond Convex's value limits are refused before (or without) a full decode."""

    def call(self, args: str, kind: str = "Mutation") -> str:
        return f'{{"type":"{kind}","requestId":7,"udfPath":"m:f","args":[{args}]}}'

    @pytest.mark.parametrize(
        ("args", "fragment"),
        [
            ('{"n":1' + "0" * 400 + "}", "too large for a float64"),
            ('{"n":-1' + "0" * 400 + "}", "too large for a float64"),
            ('{"a":' + "[" * 900 + "]" * 900 + "}", "nests more than 24 levels deep"),
            ('{"a":' + "[" * 17 + "]" * 17 + "}", "nested more than 16 levels"),
            ('{"a":[' + ",".join(["0"] * 8193) + "]}", "array of 8193 elements"),
            ("{" + ",".join(f'"k{i}":0' for i in range(1025)) + "}", "object of 1025 fields"),
            ('{"a":[' + ",".join(["{}"] * 600_000) + "]}", "more than 524288 values"),
            ('{"n":1e400}', "Number out of range"),
        ],
    )
    @pytest.mark.parametrize("kind", ["Mutation", "Action"])
    def test_refused_with_its_request_id(self, args: str, fragment: str, kind: str) -> None:
        refused = decode_client_message(self.call(args, kind))
        assert isinstance(refused, RefusedCall)
        assert (refused.kind, refused.request_id) == (kind, 7)
        assert fragment in refused.error

    def test_request_id_first_is_read_too(self) -> None:
        data = '{"requestId":3, "type":"Action","args":[' + "[" * 100 + "]"
        assert decode_client_message(data) == RefusedCall(
            "Action",
            3,
            "Invalid message: the frame nests more than 24 levels deep "
            "(Convex values nest at most 16 levels)",
        )

    @pytest.mark.parametrize(
        ("data", "fragment"),
        [
            ("[" * 100_000, "nests more than 24 levels deep"),
            ('{"type":"Event","eventType":"x","event":' + "[" * 50 + "]" * 50 + "}", "24 levels"),
            ('{"type":"Event","eventType":"x","event":[' + "{}," * 600_000 + "{}]}", "values"),
            ('{"type":"Mutation","requestId":-1,"args":' + "[" * 50, "24 levels"),
        ],
    )
    def test_unreadable_frames_raise(self, data: str, fragment: str) -> None:
        with pytest.raises(InvalidMessage, match=fragment):
            decode_client_message(data)

    def test_brackets_inside_strings_do_not_count(self) -> None:
        text = '\\"[{,' * 200_000 + "\\\\"
        message = decode_client_message(self.call(json.dumps({"s": text[:-2] + "\\"})[:-1] + "}"))
        assert isinstance(message, Mutation)

    def test_the_limits_themselves_pass(self) -> None:
        nested: Any = 0
        for _ in range(15):  # args object, then 15 arrays: the 0 sits at depth 16, the limit
            nested = [nested]
        args = {"a": [0] * 8192, "o": {f"k{i}": 0 for i in range(1023)}, "d": nested}
        message = decode_client_message(self.call(json.dumps(args)))
        assert isinstance(message, Mutation)
        assert message.args["d"] == nested

    def test_a_large_frame_is_cheap_to_refuse(self) -> None:
        import time

        data = self.call('{"a":[' + ",".join(["{}"] * 5_000_000) + "]}")
        start = time.perf_counter()
        refused = decode_client_message(data)
        assert isinstance(refused, RefusedCall)
        # A full decode of this frame took 3.4 s on the event loop; the scan is C-speed passes.
        assert time.perf_counter() - start < 1.0
