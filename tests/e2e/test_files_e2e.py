"""File storage through a real server (tests/e2e/app/files.py): a mutation makes an upload URL,
the bytes are POSTed there, a query turns the storage id into a download URL that works with a
plain GET (as an <img> would use it), the upload URL is single-use, and deleting the file makes
the URL a 404 and its `_storage` row disappear (reactively, for a subscribed query)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import websockets

if TYPE_CHECKING:  # conftest is pytest's to import; its classes serve as types only
    from .conftest import ReactorServer

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(4096)


@pytest.fixture(scope="module")
def server(server_factory: Callable[[], ReactorServer]) -> ReactorServer:
    return server_factory()


def call(server: ReactorServer, kind: str, path: str, args: dict[str, Any] | None = None) -> Any:
    response = httpx.post(
        f"{server.url}/api/{kind}", json={"path": path, "args": args or {}, "format": "json"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success", body
    return body["value"]


def upload(
    server: ReactorServer, data: bytes, content_type: str | None = "image/png"
) -> tuple[str, str]:
    upload_url = call(server, "mutation", "files:generate_upload_url")
    headers = {"Content-Type": content_type} if content_type else {}
    response = httpx.post(upload_url, content=data, headers=headers)
    assert response.status_code == 200, response.text
    storage_id = response.json()["storageId"]
    return upload_url, storage_id


def test_upload_download_reuse_and_delete(server: ReactorServer) -> None:
    upload_url = call(server, "mutation", "files:generate_upload_url")
    assert upload_url.startswith(server.url + "/api/storage/upload?")

    response = httpx.post(upload_url, content=PNG, headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    storage_id = response.json()["storageId"]
    assert isinstance(storage_id, str) and storage_id

    metadata = call(server, "query", "files:metadata", {"id": storage_id})
    assert metadata["_id"] == storage_id
    assert metadata["size"] == len(PNG)
    assert metadata["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert metadata["contentType"] == "image/png"
    assert isinstance(metadata["_creationTime"], float)

    url = call(server, "query", "files:url", {"id": storage_id})
    assert isinstance(url, str) and url.startswith(server.url + "/")
    # A plain GET, no credentials or special headers: like <img src=...>.
    download = httpx.get(url)
    assert download.status_code == 200
    assert download.content == PNG
    assert download.headers["content-type"] == "image/png"
    assert int(download.headers["content-length"]) == len(PNG)

    # The upload URL is single-use: a second POST is refused and stores nothing new.
    again = httpx.post(upload_url, content=b"other bytes", headers={"Content-Type": "text/plain"})
    assert 400 <= again.status_code < 500, again.text
    assert "storageId" not in again.text
    assert "used" in again.text.lower()
    assert httpx.get(url).content == PNG

    assert call(server, "mutation", "files:remove", {"id": storage_id}) is None
    gone = httpx.get(url)
    assert gone.status_code == 404
    assert gone.content != PNG
    assert call(server, "query", "files:url", {"id": storage_id}) is None
    assert call(server, "query", "files:metadata", {"id": storage_id}) is None


def test_head_and_range_requests_on_a_download_url(server: ReactorServer) -> None:
    _, storage_id = upload(server, PNG)
    url = call(server, "query", "files:url", {"id": storage_id})
    head = httpx.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == "image/png"
    assert int(head.headers["content-length"]) == len(PNG)
    part = httpx.get(url, headers={"Range": "bytes=0-7"})
    assert part.status_code == 206
    assert part.content == PNG[:8]


def test_upload_without_content_type_and_two_distinct_files(server: ReactorServer) -> None:
    _, first = upload(server, b"plain bytes", content_type=None)
    _, second = upload(server, PNG)
    assert first != second
    first_meta = call(server, "query", "files:metadata", {"id": first})
    assert "contentType" not in first_meta or first_meta["contentType"] in (None, "")
    assert first_meta["size"] == len(b"plain bytes")
    download = httpx.get(call(server, "query", "files:url", {"id": first}))
    assert download.content == b"plain bytes"
    assert download.headers["content-type"] == "application/octet-stream"
    assert httpx.get(call(server, "query", "files:url", {"id": second})).content == PNG


def test_forged_or_missing_upload_token_is_refused(server: ReactorServer) -> None:
    real = call(server, "mutation", "files:generate_upload_url")
    forged = real[:-3] + ("AAA" if not real.endswith("AAA") else "BBB")
    refused = httpx.post(forged, content=b"x", headers={"Content-Type": "image/png"})
    assert refused.status_code in (400, 403), refused.text
    missing = httpx.post(server.url + "/api/storage/upload", content=b"x")
    assert missing.status_code == 400, missing.text
    # The genuine URL still works afterwards.
    assert httpx.post(real, content=b"y").status_code == 200


def test_bad_download_url_is_404(server: ReactorServer) -> None:
    assert httpx.get(server.url + "/api/storage/not-a-signed-token").status_code == 404


async def _recv(ws: websockets.ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return message


@pytest.mark.anyio
async def test_subscribed_metadata_query_sees_the_delete(server: ReactorServer) -> None:
    _, storage_id = upload(server, PNG)
    async with websockets.connect(server.url.replace("http://", "ws://") + "/api/sync") as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "Connect",
                    "sessionId": str(uuid.uuid4()),
                    "connectionCount": 0,
                    "lastCloseReason": "InitialConnect",
                }
            )
        )
        await ws.send(
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [
                        {
                            "type": "Add",
                            "queryId": 0,
                            "udfPath": "files:metadata",
                            "args": [{"id": storage_id}],
                        }
                    ],
                }
            )
        )
        first = await _recv(ws)
        while first["type"] != "Transition" or not first["modifications"]:
            first = await _recv(ws)
        assert first["modifications"][0]["value"]["size"] == len(PNG)

        await asyncio.to_thread(call, server, "mutation", "files:remove", {"id": storage_id})
        while True:
            message = await _recv(ws)
            if message["type"] == "Transition" and message["modifications"]:
                break
        update = message["modifications"][0]
        assert update["type"] == "QueryUpdated"
        assert update["value"] is None
