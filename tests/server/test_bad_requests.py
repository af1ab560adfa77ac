"""Malformed HTTP requests get a 4xx with a JSON body naming the fault, never a 500, and the
keep-alive connection they came on stays usable."""

from __future__ import annotations

import json
from typing import Any

import pytest

DEEP = 100_000

# (method, target, body, extra headers, status, a word the message must hold)
BAD: list[tuple[str, str, bytes, list[tuple[str, str]], int, str]] = [
    ("POST", "/api/query", b'{"path":"notes:echo","format":{}}', [], 400, "format"),
    ("POST", "/api/query", b'{"path":"notes:echo","format":[1]}', [], 400, "format"),
    ("POST", "/api/query", b'{"path":"notes:echo","format":7}', [], 400, "format"),
    ("POST", "/api/query", b'{"path":"notes:echo","format":"yaml"}', [], 400, "format"),
    ("POST", "/api/mutation", b'{"path":"notes:add","args":{"text":1},"format":null}', [], 200, ""),
    ("POST", "/api/query", b'{"path":["notes:echo"]}', [], 400, "path"),
    ("POST", "/api/query", b'{"path":"notes:echo","args":"x"}', [], 400, "args"),
    ("POST", "/api/query", b'{"path":"notes:echo","args":[1,2]}', [], 400, "args"),
    ("POST", "/api/query", b"[1,2,3]", [], 400, "object"),
    ("POST", "/api/query", b"{not json", [], 400, "JSON"),
    ("POST", "/api/query", b'{"path":"\xff\xfe"}', [], 400, "JSON"),
    (
        "POST",
        "/api/query",
        b'{"path":"notes:echo","args":{"a":' + b"[" * DEEP + b"]" * DEEP + b"}}",
        [],
        400,
        "nested",
    ),
    (
        "POST",
        "/api/query",
        b'{"path":"notes:echo","args":{"a":' + b'{"a":' * 2000 + b"1" + b"}" * 2000 + b"}}",
        [],
        400,
        "",
    ),
    (
        "POST",
        "/api/query",
        b'{"path":"notes:echo","args":{"a":' + b"9" * 400 + b"}}",
        [],
        400,
        "range",
    ),
    (
        "POST",
        "/api/query",
        b'{"path":"notes:echo","format":"convex_encoded_json","args":{"a":' + b"9" * 400 + b"}}",
        [],
        400,
        "range",
    ),
    ("POST", "/api/query", b'{"path":"notes:echo","args":{"a":' + b"9" * 5000 + b"}}", [], 400, ""),
    ("POST", "/api/query", b'{"path":"notes:echo","args":{"a":1e999}}', [], 400, "range"),
    ("GET", "/api/query?path=notes:echo&args=" + "9" * 5000, b"", [], 400, "args"),
    ("GET", "/api/query?path=notes:echo&args=" + "[" * 5000, b"", [], 400, "args"),
    ("GET", "/api/query?path=notes:echo&format=%7B%7D", b"", [], 400, "format"),
    ("POST", "/api/run/notes/echo", b'{"format":{"a":1}}', [], 400, "format"),
    ("POST", "/api/query_batch", b'{"queries":[{"path":"notes:echo","format":[]}]}', [], 400, ""),
    ("POST", "/api/query_batch", b'{"queries":{"a":1}}', [], 400, "queries"),
    ("POST", "/api/query_at_ts", b'{"path":"notes:echo","ts":{"a":1}}', [], 400, "ts"),
    ("POST", "/api/query", b'{"path":"notes:remove","args":{"id":"nope"}}', [], 200, ""),
    ("POST", "/api/mutation", b'{"path":"notes:remove","args":{"id":{"$id":1}}}', [], 400, ""),
    ("POST", "/api/query", b'{"path":"notes:echo"}', [("authorization", "Bearer x.y.z")], 401, ""),
    (
        "POST",
        "/api/query",
        b'{"path":"notes:echo"}',
        [("authorization", "Convex " + "9" * 5000)],
        401,
        "",
    ),
    ("GET", "/api/nothing/here", b"", [], 404, ""),
    ("DELETE", "/api/query", b"", [], 405, ""),
    ("POST", "/api/storage/upload?token=" + "A" * 5000, b"abc", [], 403, ""),
    ("GET", "/api/storage/" + "A" * 5000, b"", [], 404, ""),
]


@pytest.mark.parametrize("case", BAD, ids=[f"{m} {t[:40]} {b[:30]!r}" for m, t, b, *_ in BAD])
def test_a_bad_request_is_a_client_error_and_the_connection_stays(
    guard: Any, serving: Any, case: tuple[str, str, bytes, list[tuple[str, str]], int, str]
) -> None:
    method, target, body, headers, status, word = case
    connection = serving.KeepAliveConnection(guard.url)
    try:
        answer = connection.request(
            method, target, headers=[("content-type", "application/json"), *headers], body=body
        )
        assert answer.status == status or (status == 401 and answer.status == 429), answer
        parsed = json.loads(answer.body)
        if status >= 400:
            assert parsed["code"] and parsed["message"], answer
            assert word.lower() in parsed["message"].lower(), answer
        else:
            assert parsed["status"] == "error", answer
        # The same connection serves the next request.
        again = connection.request("GET", "/version")
        assert again.status == 200
    finally:
        connection.close()
    guard.assert_alive()


def test_bad_range_headers_are_answered_by_the_rules(guard: Any, serving: Any) -> None:
    import httpx

    url = httpx.post(guard.url + "/api/mutation", json={"path": "notes:upload_url"}).json()["value"]
    storage_id = httpx.post(url, content=b"0123456789").json()["storageId"]
    download = httpx.post(
        guard.url + "/api/query", json={"path": "notes:file_url", "args": {"id": storage_id}}
    ).json()["value"]
    target = download.removeprefix(guard.url)
    connection = serving.KeepAliveConnection(guard.url)
    try:
        for header, status, body in [
            ("bytes=" + "9" * 4300 + "-", 416, None),
            ("bytes=" + "1" * 5000 + "-" + "2" * 5000, 416, None),
            ("bytes=-" + "9" * 5000, 206, b"0123456789"),
            ("bytes=2-" + "9" * 5000, 206, b"23456789"),
            ("bytes=5-2", 200, b"0123456789"),
            ("bytes=a-b", 200, b"0123456789"),
            ("lines=1-2", 200, b"0123456789"),
            ("bytes=1-2,4-5", 200, b"0123456789"),
            ("bytes=1-3", 206, b"123"),
        ]:
            answer = connection.request("GET", target, headers=[("range", header)])
            assert answer.status == status, (header[:40], answer)
            if body is None:  # refused: a JSON error naming the fault, as on every API route
                assert answer.body.startswith(b'{"code":"RangeNotSatisfiable"'), answer
            else:
                assert answer.body == body
    finally:
        connection.close()
