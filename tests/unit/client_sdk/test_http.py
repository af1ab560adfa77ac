from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from client_sdk.errors import HttpError, ProtocolMismatch
from client_sdk.http import AsyncHttpReactorClient, HttpReactorClient, parse_response, request_body
from client_sdk.urls import CLIENT_HEADER
from schema.errors import FunctionFailed
from schema.values import Int64


class Recorder:
    def __init__(self, status: int = 200, body: Any = None, text: str | None = None) -> None:
        self.status = status
        self.body = {"status": "success", "value": 1.0} if body is None else body
        self.text = text
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.text is not None:
            return httpx.Response(self.status, text=self.text)
        return httpx.Response(self.status, json=self.body)


def response(status: int = 200, body: Any = None, text: str | None = None) -> httpx.Response:
    request = httpx.Request("POST", "http://h/api/query")
    if text is not None:
        return httpx.Response(status, text=text, request=request)
    return httpx.Response(status, json=body, request=request)


def test_request_body() -> None:
    assert request_body("m:f", {"n": 1, "big": Int64(2)}) == {
        "path": "m:f",
        "args": [{"n": 1.0, "big": {"$integer": "AgAAAAAAAAA="}}],
        "format": "convex_encoded_json",
    }
    assert request_body("m", None)["args"] == [{}]


class TestParseResponse:
    def test_success(self) -> None:
        value = parse_response(
            response(body={"status": "success", "value": {"$integer": "AQAAAAAAAAA="}})
        )
        assert value == 1 and isinstance(value, Int64)

    def test_log_lines(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.INFO, logger="client_sdk.function_logs"):
            parse_response(
                response(body={"status": "success", "value": None, "logLines": ["[LOG] hi"]}),
                kind="mutation",
                path="m:f",
            )
        assert "[CONVEX M(m:f)] [LOG] hi" in caplog.text

    def test_plain_error(self) -> None:
        with pytest.raises(FunctionFailed, match="boom") as info:
            parse_response(response(body={"status": "error", "errorMessage": "boom"}))
        assert info.value.has_data is False

    def test_convex_error(self) -> None:
        with pytest.raises(FunctionFailed) as info:
            parse_response(
                response(
                    body={
                        "status": "error",
                        "errorMessage": "x",
                        "errorData": {"n": {"$integer": "AQAAAAAAAAA="}},
                    }
                )
            )
        assert info.value.data == {"n": 1}
        assert info.value.has_data is True

    def test_legacy_560_is_a_function_result(self) -> None:
        with pytest.raises(FunctionFailed, match="old"):
            parse_response(response(560, body={"status": "error", "errorMessage": "old"}))

    def test_http_error_with_code(self) -> None:
        with pytest.raises(HttpError, match="400 BadRequest: bad json") as info:
            parse_response(response(400, body={"code": "BadRequest", "message": "bad json"}))
        assert (info.value.status_code, info.value.error_code) == (400, "BadRequest")
        assert info.value.detail == "bad json"

    def test_http_error_without_json(self) -> None:
        with pytest.raises(HttpError, match="502: upstream down") as info:
            parse_response(response(502, text="upstream down"))
        assert info.value.error_code == ""

    def test_http_error_empty_body(self) -> None:
        with pytest.raises(HttpError, match="503: Service Unavailable"):
            parse_response(response(503, text=""))

    @pytest.mark.parametrize(
        ("body", "text"),
        [(None, "not json"), ([1], None), ({"status": "weird"}, None)],
    )
    def test_bad_bodies(self, body: Any, text: str | None) -> None:
        with pytest.raises(ProtocolMismatch):
            parse_response(response(body=body, text=text))


class TestHttpReactorClient:
    def test_calls(self) -> None:
        recorder = Recorder()
        with HttpReactorClient(
            "http://127.0.0.1:3210/", transport=httpx.MockTransport(recorder), auth_token="jwt"
        ) as client:
            assert client.url == "http://127.0.0.1:3210"
            assert client.query("m:q", {"a": 1}) == 1.0
            client.mutation("m:m")
            client.action("m:a")
        paths = [r.url.path for r in recorder.requests]
        assert paths == ["/api/query", "/api/mutation", "/api/action"]
        first = recorder.requests[0]
        assert json.loads(first.content) == {
            "path": "m:q",
            "args": [{"a": 1.0}],
            "format": "convex_encoded_json",
        }
        assert first.headers["Authorization"] == "Bearer jwt"
        assert first.headers["Convex-Client"] == CLIENT_HEADER
        assert first.headers["Content-Type"] == "application/json"

    def test_admin_key(self) -> None:
        recorder = Recorder()
        with HttpReactorClient(
            "http://h", transport=httpx.MockTransport(recorder), admin_key="k"
        ) as client:
            client.query("m:q")
        assert recorder.requests[0].headers["Authorization"] == "Convex k"

    def test_no_auth_header_by_default(self) -> None:
        recorder = Recorder()
        with HttpReactorClient("http://h", transport=httpx.MockTransport(recorder)) as client:
            client.query("m:q")
        assert "Authorization" not in recorder.requests[0].headers

    def test_both_auth_kinds_rejected(self) -> None:
        with pytest.raises(ValueError, match="not both"):
            HttpReactorClient("http://h", auth_token="a", admin_key="b")

    def test_errors_propagate(self) -> None:
        recorder = Recorder(404, {"code": "NotFound", "message": "nope"})
        with HttpReactorClient("http://h", transport=httpx.MockTransport(recorder)) as client:
            with pytest.raises(HttpError, match="NotFound"):
                client.query("m:q")


@pytest.mark.anyio
async def test_async_client() -> None:
    recorder = Recorder(body={"status": "error", "errorMessage": "bad", "errorData": None})
    async with AsyncHttpReactorClient(
        "https://h/p", transport=httpx.MockTransport(recorder), admin_key="k"
    ) as client:
        with pytest.raises(FunctionFailed) as info:
            await client.mutation("m:m", {"x": "y"})
        assert info.value.has_data is True
        recorder.body = {"status": "success", "value": [1.0]}
        assert await client.query("m:q") == [1.0]
        assert await client.action("m:a") == [1.0]
    assert [str(r.url) for r in recorder.requests] == [
        "https://h/p/api/mutation",
        "https://h/p/api/query",
        "https://h/p/api/action",
    ]
