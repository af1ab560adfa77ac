"""Request bodies are limited while they stream, on every route of both ports: a body past its
route's limit is answered 413 with a JSON body as soon as the limit is crossed, chunked or not,
and the server's memory never grows by the size of what the client sends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

MIB = 1024 * 1024
API_LIMIT = 2 * MIB
UPLOAD_LIMIT = 8 * MIB
ACTION_LIMIT = 3 * MIB
HUGE = 300 * MIB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, serving: Any) -> Iterator[Any]:
    with serving.guard_server(
        tmp_path_factory.mktemp("limits"),
        REACTOR_MAX_REQUEST_BYTES=str(API_LIMIT),
        REACTOR_MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT),
        REACTOR_MAX_HTTP_ACTION_REQUEST_BYTES=str(ACTION_LIMIT),
    ) as server:
        yield server


def chunks(total: int, size: int = MIB) -> Iterator[bytes]:
    block = b"x" * size
    sent = 0
    while sent < total:
        yield block[: min(size, total - sent)]
        sent += size


def upload_url(server: Any) -> str:
    answer = httpx.post(server.url + "/api/mutation", json={"path": "notes:upload_url", "args": {}})
    url: str = answer.json()["value"]
    return url


def routes(server: Any) -> list[tuple[str, int]]:
    return [
        (server.url + "/api/query", API_LIMIT),
        (server.url + "/api/mutation", API_LIMIT),
        (server.url + "/api/action", API_LIMIT),
        (server.url + "/api/run/notes/echo", API_LIMIT),
        (server.url + "/api/query_batch", API_LIMIT),
        (server.url + "/echo", API_LIMIT),
        (server.site_url + "/length", ACTION_LIMIT),
        (server.site_url + "/stream", ACTION_LIMIT),
        ("upload", UPLOAD_LIMIT),
    ]


def assert_413(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["code"] in ("RequestTooLarge", "FileTooLarge")
    assert str(limit) in body["message"]


@pytest.mark.parametrize("index", range(9))
def test_chunked_body_past_the_limit_is_refused_while_it_streams(server: Any, index: int) -> None:
    url, limit = routes(server)[index]
    if url == "upload":
        url = upload_url(server)
    before = server.status("VmHWM")
    started = time.monotonic()
    # A generator body: httpx sends it chunked, with no Content-Length to refuse up front.
    response = httpx.post(url, content=chunks(HUGE), timeout=60)
    assert_413(response, limit)
    grown = server.status("VmHWM") - before
    # Reading the whole body first grew the server by the body (300 MiB) and more.
    assert grown < 64 * MIB, f"peak RSS grew by {grown / MIB:.0f} MiB for {url}"
    assert time.monotonic() - started < 30
    server.assert_alive()


@pytest.mark.parametrize("index", range(9))
def test_declared_length_past_the_limit_is_refused_before_reading(server: Any, index: int) -> None:
    url, limit = routes(server)[index]
    if url == "upload":
        url = upload_url(server)
    body = b"y" * (limit + 1)
    response = httpx.post(url, content=body, timeout=60)
    assert_413(response, limit)


def test_bodies_within_the_limit_still_arrive_whole(server: Any) -> None:
    for path in ("/length", "/stream"):
        answer = httpx.post(server.site_url + path, content=chunks(ACTION_LIMIT - 10), timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"length": ACTION_LIMIT - 10}
    echoed = httpx.post(server.url + "/echo", content=chunks(API_LIMIT), timeout=60)
    assert echoed.status_code == 200
    assert len(echoed.content) == API_LIMIT
    stored = httpx.post(upload_url(server), content=chunks(UPLOAD_LIMIT), timeout=60)
    assert stored.status_code == 200, stored.text
    assert "storageId" in stored.json()


def test_a_bystander_is_served_during_a_huge_upload(server: Any) -> None:
    import threading

    done = threading.Event()

    def flood() -> None:
        try:
            httpx.post(server.url + "/api/query", content=chunks(HUGE), timeout=60)
        finally:
            done.set()

    thread = threading.Thread(target=flood)
    thread.start()
    try:
        started = time.monotonic()
        answer = httpx.get(server.url + "/version", timeout=10)
        assert answer.status_code == 200
        assert time.monotonic() - started < 5
    finally:
        thread.join(60)
    assert done.is_set()
