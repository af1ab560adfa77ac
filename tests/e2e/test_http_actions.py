"""HTTP actions through a real server (tests/e2e/app/http.py, served on --http-port):
routing (exact path, longest prefix, 404 for unrouted paths), HEAD through GET without a body,
a handler writing through ctx.run_mutation whose effect the HTTP API sees, and a signed
webhook checking an HMAC of the raw body with a deployment environment variable."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:  # conftest is pytest's to import; its classes serve as types only
    from .conftest import ReactorServer

SECRET = "whsec-e2e-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def server(server_factory: Callable[[], ReactorServer]) -> ReactorServer:
    srv = server_factory()
    key = srv.wait_admin_key()
    response = httpx.post(
        srv.url + "/api/admin/env",
        json={"changes": {"WEBHOOK_SECRET": SECRET}},
        headers={"Authorization": f"Convex {key}"},
    )
    assert response.status_code == 200, response.text
    return srv


@pytest.fixture()
def site(server: ReactorServer) -> Iterator[httpx.Client]:
    server.assert_alive()
    with httpx.Client(base_url=server.site_url, timeout=10) as client:
        yield client


def query(server: ReactorServer, path: str, args: dict[str, Any]) -> Any:
    response = httpx.post(
        server.url + "/api/query", json={"path": path, "args": args, "format": "json"}
    )
    body = response.json()
    assert body["status"] == "success", body
    return body["value"]


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_exact_path_route(site: httpx.Client) -> None:
    response = site.get("/hello", params={"q": "x y"})
    assert response.status_code == 200
    assert response.text == "hello from an exact route"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-route"] == "exact"
    assert response.headers["x-query"] == "x y"


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/files/a.txt", "/files/"),
        ("/files/nested/b/c.png", "/files/"),
        ("/files/deep/one", "/files/deep/"),
        ("/files/deep/two/three", "/files/deep/"),
        ("/files/deep/exact", "/files/deep/exact"),  # an exact path beats any prefix
        ("/files/deep/exact/more", "/files/deep/"),
    ],
)
def test_longest_prefix_wins(site: httpx.Client, path: str, route: str) -> None:
    response = site.get(path)
    assert response.status_code == 200, response.text
    assert response.json() == {"route": route, "path": path}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nowhere"),
        ("GET", "/hello/"),  # exact routes don't match a longer path
        ("GET", "/files"),  # the prefix is "/files/", not "/files"
        ("POST", "/hello"),  # routed for GET only
        ("GET", "/messages"),  # routed for POST only
        ("PATCH", "/method"),
    ],
)
def test_unrouted_requests_are_404_with_text(site: httpx.Client, method: str, path: str) -> None:
    response = site.request(method, path)
    assert response.status_code == 404
    assert response.text == f"No HttpAction routed for {path}"


def test_put_and_delete_routes(site: httpx.Client) -> None:
    assert site.put("/method").json() == {"method": "PUT"}
    assert site.delete("/method").json() == {"method": "DELETE"}


def test_head_is_served_by_get_without_a_body(site: httpx.Client) -> None:
    get = site.get("/hello")
    head = site.head("/hello")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["x-route"] == "exact"
    assert head.headers["content-type"] == get.headers["content-type"]
    # HEAD reports the length the GET body would have (RFC 9110 §9.3.2), if it reports one.
    if "content-length" in head.headers:
        assert int(head.headers["content-length"]) == len(get.content)
    prefix = site.head("/files/deep/x")
    assert prefix.status_code == 200 and prefix.content == b""
    missing = site.head("/nowhere")
    assert missing.status_code == 404 and missing.content == b""


def test_post_runs_a_mutation_visible_through_the_http_api(
    server: ReactorServer, site: httpx.Client
) -> None:
    channel = f"http-{uuid.uuid4().hex[:8]}"
    response = site.post("/messages", json={"channel": channel, "body": "via http action"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert isinstance(created["id"], str) and created["id"]
    # ctx.run_query inside the handler already sees the handler's own committed mutation.
    assert created["bodies"] == ["via http action"]
    assert query(server, "messages:bodies", {"channel": channel}) == ["via http action"]
    rows = query(server, "messages:list", {"channel": channel})
    assert [row["_id"] for row in rows] == [created["id"]]


def test_failing_mutation_inside_an_http_action_is_an_error_and_commits_nothing(
    server: ReactorServer, site: httpx.Client
) -> None:
    channel = f"http-empty-{uuid.uuid4().hex[:8]}"
    # messages:send refuses an empty body with an AppError (ConvexError data).
    response = site.post("/messages", json={"channel": channel, "body": ""})
    assert response.status_code >= 400
    assert query(server, "messages:bodies", {"channel": channel}) == []


def test_signed_webhook_accepts_a_valid_signature(
    server: ReactorServer, site: httpx.Client
) -> None:
    channel = f"hook-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"id": "evt_1", "channel": channel, "body": "paid"}).encode()
    response = site.post(
        "/webhook",
        content=body,
        headers={"X-Signature": sign(body), "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"received": "evt_1"}
    assert query(server, "messages:bodies", {"channel": channel}) == ["paid"]


@pytest.mark.parametrize("problem", ["missing", "wrong_secret", "tampered_body", "garbage"])
def test_signed_webhook_rejects_a_bad_signature(
    server: ReactorServer, site: httpx.Client, problem: str
) -> None:
    channel = f"hook-bad-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"id": "evt_2", "channel": channel, "body": "forged"}).encode()
    headers = {"Content-Type": "application/json"}
    if problem == "wrong_secret":
        headers["X-Signature"] = sign(body, "not-the-secret")
    elif problem == "tampered_body":
        headers["X-Signature"] = sign(body)
        body = body.replace(b"forged", b"FORGED")
    elif problem == "garbage":
        headers["X-Signature"] = "sha256=zzzz"
    response = site.post("/webhook", content=body, headers=headers)
    assert response.status_code == 401
    assert response.text == "invalid signature"
    assert query(server, "messages:bodies", {"channel": channel}) == []


def test_webhook_secret_rotation_takes_effect(server: ReactorServer, site: httpx.Client) -> None:
    """The handler reads ctx.env per request: after `env set`, only the new secret works."""
    key = server.wait_admin_key()
    rotated = "whsec-rotated-" + uuid.uuid4().hex
    channel = f"hook-rot-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"id": "evt_3", "channel": channel, "body": "rotated"}).encode()
    try:
        httpx.post(
            server.url + "/api/admin/env",
            json={"changes": {"WEBHOOK_SECRET": rotated}},
            headers={"Authorization": f"Convex {key}"},
        ).raise_for_status()
        old = site.post("/webhook", content=body, headers={"X-Signature": sign(body)})
        assert old.status_code == 401
        new = site.post("/webhook", content=body, headers={"X-Signature": sign(body, rotated)})
        assert new.status_code == 200, new.text
    finally:
        httpx.post(
            server.url + "/api/admin/env",
            json={"changes": {"WEBHOOK_SECRET": SECRET}},
            headers={"Authorization": f"Convex {key}"},
        ).raise_for_status()
    assert query(server, "messages:bodies", {"channel": channel}) == ["rotated"]


def test_crashing_handler_is_a_500_and_the_server_keeps_serving(
    server: ReactorServer, site: httpx.Client
) -> None:
    response = site.get("/crash")
    assert response.status_code == 500
    assert "Server Error" in response.text
    assert site.get("/hello").status_code == 200
    server.assert_alive()


# A JWT in form (three base64url parts) that no provider of this app (it has none) accepts.
UNKNOWN_ISSUER_JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJpc3MiOiJodHRwczovL25vYm9keS5leGFtcGxlIiwic3ViIjoieCJ9."
    "c2lnbmF0dXJl"
)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer cron-secret-5f2a9c",  # a Bearer value that is not a JWT
        "Basic " + "dXNlcjpwYXNz",  # another scheme
        "Token abc",
        "a",  # shorter than any scheme
    ],
)
def test_a_foreign_authorization_header_reaches_the_handler_anonymously(
    site: httpx.Client, header: str
) -> None:
    """Not a credential of this deployment (a webhook's or cron's own secret): not refused,
    the handler reads the header, and the identity is None."""
    response = site.get("/auth/echo", headers={"Authorization": header})
    assert response.status_code == 200, response.text
    assert response.json() == {"authorization": header, "identity": None, "error": None}
    identity = site.get("/auth/identity", headers={"Authorization": header})
    assert identity.status_code == 200 and identity.json() == {"identity": None}


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {UNKNOWN_ISSUER_JWT}",  # a JWT, but not one of a configured provider
        "Convex not-the-admin-key",  # a wrong admin key
    ],
)
def test_a_failing_credential_reaches_the_handler_and_reading_the_identity_raises(
    site: httpx.Client, header: str
) -> None:
    response = site.get("/auth/echo", headers={"Authorization": header})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["authorization"] == header
    assert body["identity"] is None
    assert body["error"] is not None and body["error"].startswith("AuthenticationError: ")


def test_without_an_authorization_header_the_identity_is_none(site: httpx.Client) -> None:
    body = site.get("/auth/echo").json()
    assert body == {"authorization": None, "identity": None, "error": None}
    assert site.get("/auth/identity").json() == {"identity": None}


def test_reading_the_identity_of_a_failing_credential_uncaught_is_a_500(
    site: httpx.Client,
) -> None:
    response = site.get("/auth/identity", headers={"Authorization": f"Bearer {UNKNOWN_ISSUER_JWT}"})
    assert response.status_code == 500
    assert "Server Error" in response.text
    assert "AuthenticationError" in response.text


def test_the_api_routes_still_refuse_a_foreign_header(server: ReactorServer) -> None:
    response = httpx.post(
        server.url + "/api/query",
        json={"path": "messages:bodies", "args": {"channel": "x"}, "format": "json"},
        headers={"Authorization": "Bearer not-a-jwt"},
    )
    assert response.status_code == 401
    assert response.json()["code"] == "Unauthenticated"


def test_the_admin_key_on_an_http_action_is_an_admin_without_a_user(
    server: ReactorServer, site: httpx.Client
) -> None:
    key = server.wait_admin_key()
    body = site.get("/auth/echo", headers={"Authorization": f"Convex {key}"}).json()
    assert body == {"authorization": f"Convex {key}", "identity": None, "error": None}
