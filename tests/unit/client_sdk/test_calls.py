"""Arguments checked and encoded before a call; results unwrapped into values or errors."""

from __future__ import annotations

import math
from typing import Any

import pytest

from client_sdk.calls import decode_args, encode_args, unwrap
from client_sdk.errors import FunctionFailed, ProtocolMismatch
from reactor.sync.messages import FunctionResult
from schema.errors import ValidationError
from schema.values import Int64

ONE = "AQAAAAAAAAA="


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


class TestDecodeArgs:
    def test_is_what_the_server_decodes_and_a_copy(self) -> None:
        original: dict[str, Any] = {"a": 1, "b": Int64(5), "l": [1]}
        args = decode_args(encode_args("m:f", original))
        assert args == {"a": 1.0, "b": Int64(5), "l": [1.0]}
        assert type(args["a"]) is float and type(args["b"]) is Int64
        original["l"].append(2)
        assert args["l"] == [1.0]


class TestUnwrap:
    def test_success_decodes(self) -> None:
        value = unwrap(FunctionResult(True, {"n": {"$integer": "BQAAAAAAAAA="}, "f": 1}))
        assert value == {"n": 5, "f": 1.0}
        assert isinstance(value["n"], Int64)
        assert isinstance(value["f"], float)

    def test_special_floats(self) -> None:
        assert math.isnan(unwrap(FunctionResult(True, {"$float": "AAAAAAAA+H8="})))

    def test_plain_failure(self) -> None:
        with pytest.raises(FunctionFailed, match="boom") as info:
            unwrap(FunctionResult(False, error_message="boom"))
        assert info.value.data is None
        assert info.value.has_data is False

    def test_convex_error_with_data(self) -> None:
        result = FunctionResult(
            False, error_message="bad", error_data={"n": {"$integer": ONE}}, has_error_data=True
        )
        with pytest.raises(FunctionFailed) as info:
            unwrap(result)
        assert info.value.data == {"n": 1}
        assert info.value.has_data is True

    def test_convex_error_with_null_data(self) -> None:
        with pytest.raises(FunctionFailed) as info:
            unwrap(FunctionResult(False, error_message="x", has_error_data=True))
        assert info.value.data is None
        assert info.value.has_data is True

    def test_invalid_value_is_a_protocol_error(self) -> None:
        with pytest.raises(ProtocolMismatch, match="invalid value"):
            unwrap(FunctionResult(True, {"$set": []}))
        with pytest.raises(ProtocolMismatch):
            unwrap(
                FunctionResult(
                    False, error_message="x", error_data={"$nope": 1}, has_error_data=True
                )
            )

    def test_equality_ignores_nothing_but_logs(self) -> None:
        assert FunctionResult(True, 1.0) == FunctionResult(True, 1.0)
        assert FunctionResult(True, 1.0) != FunctionResult(True, 2.0)
        assert FunctionResult(False, error_message="a") != FunctionResult(
            False, error_message="a", has_error_data=True
        )
