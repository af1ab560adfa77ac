from __future__ import annotations

import json
import math
from typing import Any

import pytest

from client_sdk.errors import FunctionFailed, ProtocolMismatch
from client_sdk.messages import (
    Action,
    ActionResponse,
    AddQuery,
    Authenticate,
    AuthError,
    Connect,
    FatalError,
    FunctionResult,
    ModifyQuerySet,
    Mutation,
    MutationResponse,
    Ping,
    QueryFailed,
    QueryRemoved,
    QueryUpdated,
    RemoveQuery,
    StateVersion,
    Transition,
    TransitionChunk,
    UnknownMessage,
    decode_ts,
    encode_args,
    encode_client_message,
    encode_ts,
    parse_server_message,
)
from schema.errors import ValidationError
from schema.values import Int64

ZERO = "AAAAAAAAAAA="
ONE = "AQAAAAAAAAA="


def parse(obj: Any) -> Any:
    return parse_server_message(json.dumps(obj))


def version(qs: int = 0, identity: int = 0, ts: str = ZERO) -> dict[str, Any]:
    return {"querySet": qs, "identity": identity, "ts": ts}


class TestTimestamps:
    def test_known_encodings(self) -> None:
        assert encode_ts(0) == ZERO
        assert encode_ts(1) == ONE
        assert decode_ts(ZERO) == 0
        assert decode_ts(ONE) == 1

    def test_round_trip_extremes(self) -> None:
        for ts in (0, 1, 255, 256, 1_795_248_509_518_000_000, (1 << 64) - 1):
            assert decode_ts(encode_ts(ts)) == ts
        assert len(encode_ts(12345)) % 4 == 0

    def test_encode_rejects_out_of_range(self) -> None:
        with pytest.raises(ValueError, match="u64"):
            encode_ts(-1)
        with pytest.raises(ValueError, match="u64"):
            encode_ts(1 << 64)

    @pytest.mark.parametrize("bad", [5, None, "!!!!", "AAAA", "AAAAAAAAAAAAAAA="])
    def test_decode_rejects_malformed(self, bad: Any) -> None:
        with pytest.raises(ProtocolMismatch):
            decode_ts(bad)


class TestEncodeArgs:
    def test_none_is_empty_object(self) -> None:
        assert encode_args("m:f", None) == {}

    def test_ints_become_floats_and_int64_is_tagged(self) -> None:
        assert encode_args("m:f", {"a": 1, "b": Int64(5), "c": b"\x01"}) == {
            "a": 1.0,
            "b": {"$integer": "BQAAAAAAAAA="},
            "c": {"$bytes": "AQ=="},
        }

    def test_bad_path_and_args(self) -> None:
        with pytest.raises(TypeError, match="path"):
            encode_args("", {})
        with pytest.raises(TypeError, match="path"):
            encode_args(3, {})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="dict"):
            encode_args("m:f", [1])  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            encode_args("m:f", {"x": 1 << 60})


class TestClientMessages:
    def test_connect_omits_unobserved_timestamp(self) -> None:
        text = encode_client_message(Connect("s", 0, "InitialConnect", None, 17))
        assert json.loads(text) == {
            "type": "Connect",
            "sessionId": "s",
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
            "clientTs": 17,
        }

    def test_connect_with_timestamp(self) -> None:
        obj = json.loads(encode_client_message(Connect("s", 2, "InactiveServer", ONE)))
        assert obj["maxObservedTimestamp"] == ONE
        assert obj["connectionCount"] == 2
        assert "clientTs" not in obj

    def test_modify_query_set(self) -> None:
        message = ModifyQuerySet(
            0,
            1,
            (AddQuery(0, "m:list", ({"a": 1.0},)), AddQuery(1, "m", ({},), "j"), RemoveQuery(3)),
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
                {"type": "Add", "queryId": 1, "udfPath": "m", "args": [{}], "journal": "j"},
                {"type": "Remove", "queryId": 3},
            ],
        }

    def test_floats_keep_a_decimal_point(self) -> None:
        text = encode_client_message(Mutation(4, "m:send", ({"n": 1.0},)))
        assert '"n":1.0' in text
        assert json.loads(text) == {
            "type": "Mutation",
            "requestId": 4,
            "udfPath": "m:send",
            "args": [{"n": 1.0}],
        }

    def test_action_and_authenticate(self) -> None:
        assert json.loads(encode_client_message(Action(1, "a:b", ({},))))["type"] == "Action"
        assert json.loads(encode_client_message(Authenticate("User", 0, "jwt"))) == {
            "type": "Authenticate",
            "tokenType": "User",
            "baseVersion": 0,
            "value": "jwt",
        }
        assert json.loads(encode_client_message(Authenticate("None", 2))) == {
            "type": "Authenticate",
            "tokenType": "None",
            "baseVersion": 2,
        }


class TestFunctionResult:
    def test_success_decodes(self) -> None:
        result = FunctionResult(True, {"n": {"$integer": "BQAAAAAAAAA="}, "f": 1})
        value = result.unwrap()
        assert value == {"n": 5, "f": 1.0}
        assert isinstance(value["n"], Int64)
        assert isinstance(value["f"], float)

    def test_special_floats(self) -> None:
        assert math.isnan(FunctionResult(True, {"$float": "AAAAAAAA+H8="}).unwrap())

    def test_plain_failure(self) -> None:
        with pytest.raises(FunctionFailed, match="boom") as info:
            FunctionResult(False, error_message="boom").unwrap()
        assert info.value.data is None
        assert info.value.has_data is False

    def test_convex_error_with_data(self) -> None:
        result = FunctionResult(
            False, error_message="bad", error_data={"n": {"$integer": ONE}}, has_error_data=True
        )
        with pytest.raises(FunctionFailed) as info:
            result.unwrap()
        assert info.value.data == {"n": 1}
        assert info.value.has_data is True

    def test_convex_error_with_null_data(self) -> None:
        with pytest.raises(FunctionFailed) as info:
            FunctionResult(False, error_message="x", has_error_data=True).unwrap()
        assert info.value.data is None
        assert info.value.has_data is True

    def test_invalid_value_is_a_protocol_error(self) -> None:
        with pytest.raises(ProtocolMismatch, match="invalid value"):
            FunctionResult(True, {"$set": []}).unwrap()
        with pytest.raises(ProtocolMismatch):
            FunctionResult(
                False, error_message="x", error_data={"$nope": 1}, has_error_data=True
            ).unwrap()

    def test_equality_ignores_nothing_but_logs(self) -> None:
        assert FunctionResult(True, 1.0) == FunctionResult(True, 1.0)
        assert FunctionResult(True, 1.0) != FunctionResult(True, 2.0)
        assert FunctionResult(False, error_message="a") != FunctionResult(
            False, error_message="a", has_error_data=True
        )


class TestParseTransition:
    def test_full_transition(self) -> None:
        message = parse(
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
            StateVersion(0, 0, 0),  # type: ignore[arg-type]
            StateVersion(1, 0, 1),  # type: ignore[arg-type]
            (
                QueryUpdated(0, [1.0], ("[LOG] x",), "j"),  # type: ignore[arg-type]
                QueryFailed(1, "e", (), None, None, True),  # type: ignore[arg-type]
                QueryFailed(2, "e2", (), None, None, False),  # type: ignore[arg-type]
                QueryRemoved(3),  # type: ignore[arg-type]
            ),
            -3,
            1795248509518000000,
        )

    def test_lenient_optional_fields(self) -> None:
        message = parse(
            {
                "type": "Transition",
                "startVersion": version(),
                "endVersion": version(),
                "modifications": [{"type": "QueryUpdated", "queryId": 0}],
                "clientClockSkew": None,
            }
        )
        assert isinstance(message, Transition)
        assert message.modifications == (QueryUpdated(0, None),)  # type: ignore[arg-type]
        assert message.client_clock_skew is None and message.server_ts is None

    @pytest.mark.parametrize(
        "patch",
        [
            {"startVersion": None},
            {"startVersion": {"querySet": 0, "identity": 0}},
            {"startVersion": version(ts="bad")},
            {"endVersion": version(qs=-1)},
            {"endVersion": version(qs=1 << 32)},
            {"endVersion": {"querySet": True, "identity": 0, "ts": ZERO}},
            {"modifications": None},
            {"modifications": [5]},
            {"modifications": [{"type": "QueryExploded", "queryId": 0}]},
            {"modifications": [{"type": "QueryUpdated", "queryId": "0", "value": 1}]},
            {"modifications": [{"type": "QueryUpdated", "queryId": 0, "logLines": [1]}]},
            {"modifications": [{"type": "QueryUpdated", "queryId": 0, "logLines": "x"}]},
            {"modifications": [{"type": "QueryFailed", "queryId": 0}]},
            {"modifications": [{"type": "QueryUpdated", "queryId": 0, "journal": 3}]},
            {"clientClockSkew": "x"},
        ],
    )
    def test_malformed(self, patch: dict[str, Any]) -> None:
        obj: dict[str, Any] = {
            "type": "Transition",
            "startVersion": version(),
            "endVersion": version(),
            "modifications": [],
        }
        obj.update(patch)
        if patch.get("startVersion", 0) is None:
            del obj["startVersion"]
        with pytest.raises(ProtocolMismatch) as info:
            parse(obj)
        assert info.value.close_reason == "ProtocolError"


class TestParseOthers:
    def test_mutation_success(self) -> None:
        message = parse(
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
            3,
            FunctionResult(True, {"a": 1.0}),
            1,
            ("l",),  # type: ignore[arg-type]
        )

    def test_mutation_success_requires_ts(self) -> None:
        with pytest.raises(ProtocolMismatch, match="ts"):
            parse({"type": "MutationResponse", "requestId": 3, "success": True, "result": 1})

    def test_mutation_failure(self) -> None:
        message = parse(
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
            1,  # type: ignore[arg-type]
            FunctionResult(False, error_message="oops", error_data={"x": 1}, has_error_data=True),
        )

    def test_failure_result_must_be_string(self) -> None:
        with pytest.raises(ProtocolMismatch, match="result"):
            parse({"type": "MutationResponse", "requestId": 1, "success": False, "result": 5})

    def test_success_must_be_bool(self) -> None:
        with pytest.raises(ProtocolMismatch, match="success"):
            parse({"type": "ActionResponse", "requestId": 1, "success": 1, "result": 5})

    def test_action_response(self) -> None:
        assert parse(
            {"type": "ActionResponse", "requestId": 2, "success": True, "result": None}
        ) == ActionResponse(
            2,
            FunctionResult(True, None),  # type: ignore[arg-type]
        )

    def test_small_messages(self) -> None:
        assert parse({"type": "Ping"}) == Ping()
        assert parse({"type": "FatalError", "error": "bad"}) == FatalError("bad")
        assert parse(
            {"type": "AuthError", "error": "e", "baseVersion": 0, "authUpdateAttempted": True}
        ) == AuthError("e", 0, True)
        assert parse({"type": "AuthError", "error": "e"}) == AuthError("e")
        assert parse(
            {
                "type": "TransitionChunk",
                "chunk": "{",
                "partNumber": 0,
                "totalParts": 2,
                "transitionId": "t",
            }
        ) == TransitionChunk("{", 0, 2, "t")

    def test_unknown_type(self) -> None:
        assert parse({"type": "Hello", "x": 1}) == UnknownMessage("Hello")

    @pytest.mark.parametrize("text", ["not json", "[1]", '{"x": 1}', '{"type": 3}'])
    def test_garbage(self, text: str) -> None:
        with pytest.raises(ProtocolMismatch):
            parse_server_message(text)

    def test_bytes_input(self) -> None:
        assert parse_server_message(b'{"type":"Ping"}') == Ping()
