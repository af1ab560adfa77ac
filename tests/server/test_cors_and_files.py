"""CORS gives browsers what the official clients need without ever granting credentials to
an arbitrary origin, and a user's uploaded file cannot run script on the API origin."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

ORIGINS = ["https://app.example", "null", "http://localhost:5173"]


@pytest.mark.parametrize("origin", ORIGINS)
def test_preflight_allows_what_the_convex_client_sends_without_credentials(
    guard: Any, origin: str
) -> None:
    # What the `convex` npm client's fetch sends (browser/http_client.js): JSON with a
    # Convex-Client header and, when signed in, Authorization. No cookies.
    answer = httpx.options(
        guard.url + "/api/query",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,convex-client,authorization",
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers
    allowed = answer.headers["access-control-allow-headers"].lower()
    for header in ("content-type", "convex-client", "authorization"):
        assert header in allowed
    assert "POST" in answer.headers["access-control-allow-methods"]


@pytest.mark.parametrize("origin", ORIGINS)
@pytest.mark.parametrize("path", ["/api/query", "/api/nothing", "/echo"])
def test_simple_requests_never_pair_an_origin_with_credentials(
    guard: Any, origin: str, path: str
) -> None:
    answer = httpx.post(
        guard.url + path,
        json={"path": "notes:echo", "args": {}},
        headers={"Origin": origin, "Cookie": "session=secret"},
    )
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers


def test_errors_carry_cors_headers_so_a_page_can_read_them(guard: Any) -> None:
    answer = httpx.post(
        guard.url + "/api/query",
        content=b'{"path":"notes:echo","format":{}}',
        headers={"Origin": "https://app.example"},
    )
    assert answer.status_code == 400
    assert answer.headers["access-control-allow-origin"] == "*"


def upload(guard: Any, body: bytes, content_type: str) -> str:
    url = httpx.post(guard.url + "/api/mutation", json={"path": "notes:upload_url"}).json()
    stored = httpx.post(url["value"], content=body, headers={"content-type": content_type})
    storage_id = stored.json()["storageId"]
    download = httpx.post(
        guard.url + "/api/query", json={"path": "notes:file_url", "args": {"id": storage_id}}
    ).json()["value"]
    assert isinstance(download, str) and download.startswith(guard.url)
    return download


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html",
        "text/html; charset=utf-8",
        "image/svg+xml",
        "application/xhtml+xml",
        "text/xml",
        "application/javascript",
        "text/plain",
        "image/png",
        "TEXT/HTML",
    ],
)
def test_an_uploaded_file_is_sandboxed_and_never_sniffed(guard: Any, content_type: str) -> None:
    page = b"<html><script>fetch('/api/admin/env')</script></html>"
    url = upload(guard, page, content_type)
    for method in ("GET", "HEAD"):
        answer = httpx.request(method, url)
        assert answer.status_code == 200
        assert answer.headers["content-security-policy"] == "sandbox"
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(url).content == page
    ranged = httpx.get(url, headers={"Range": "bytes=0-5"})
    assert ranged.status_code == 206
    assert ranged.headers["content-security-policy"] == "sandbox"


def test_a_pdf_is_left_unsandboxed_for_the_browsers_viewer(guard: Any) -> None:
    url = upload(guard, b"%PDF-1.4\n%%EOF\n", "application/pdf")
    answer = httpx.get(url)
    assert answer.headers["content-type"] == "application/pdf"
    assert "content-security-policy" not in answer.headers
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_echo_is_never_a_page_on_the_api_origin(guard: Any) -> None:
    answer = httpx.post(
        guard.url + "/echo", content=b"<script>1</script>", headers={"content-type": "text/html"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-security-policy"] == "sandbox"
    assert answer.headers["x-content-type-options"] == "nosniff"
