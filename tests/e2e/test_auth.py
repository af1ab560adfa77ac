"""Authentication end to end: a real Reactor server on tests/e2e/auth_app, whose providers
(an OIDC provider, a customJwt RS256 provider, a customJwt ES256 provider with an inline
``data:`` JWKS) point at a JWKS/discovery server started by these tests on 127.0.0.1.

Covers the websocket ``Authenticate`` flow (PROTOCOL.md §4.4, §5.4, §7), the HTTP
``Authorization`` header forms (§8.1), admin keys and internal functions, HTTP actions seeing
the caller, and the official npm ``ConvexClient.setAuth`` flow (confirmation, then the
immediate refresh ``Authenticate`` with baseVersion 1).
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import jwt
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric import ec, rsa

if TYPE_CHECKING:  # conftest is pytest's to import; its classes serve as types only
    from .conftest import ReactorServer, ScriptResult


pytestmark = pytest.mark.anyio

AUTH_APP = Path(__file__).resolve().parent / "auth_app"
OIDC_APP_ID = "reactor-e2e-app"
RSA_ISSUER = "https://rsa-issuer.e2e.test"
RSA_APP_ID = "rsa-app"
EC_ISSUER = "https://ec-issuer.e2e.test"
OIDC_KID = "oidc-key-1"
RSA_KID = "custom-rsa-1"
EC_KID = "custom-ec-1"


# --- keys and JWKS -------------------------------------------------------------------------


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_fixed(value: int, size: int) -> str:
    return base64.urlsafe_b64encode(value.to_bytes(size, "big")).rstrip(b"=").decode("ascii")


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "kid": kid,
        "alg": "RS256",
        "use": "sig",
        "n": _b64url_uint(numbers.n),
        "e": _b64url_uint(numbers.e),
    }


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "kid": kid,
        "alg": "ES256",
        "use": "sig",
        "crv": "P-256",
        "x": _b64url_fixed(numbers.x, 32),
        "y": _b64url_fixed(numbers.y, 32),
    }


class JwksServer:
    """Serves an OIDC discovery document and JWKS documents on 127.0.0.1 (a daemon thread)."""

    def __init__(self, documents: Callable[[str], dict[str, Any]]) -> None:
        self.requests: list[str] = []
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server calls do_<METHOD>
                server_self.requests.append(self.path)
                docs = documents(server_self.base_url)
                body = docs.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@dataclass
class AuthSetup:
    server: ReactorServer
    jwks: JwksServer
    oidc_domain: str
    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey
    attacker_key: rsa.RSAPrivateKey

    def token(
        self,
        provider: str = "oidc",
        *,
        key: Any = None,
        kid: str | None = None,
        headers: dict[str, Any] | None = None,
        lifetime_s: float = 3600,
        **claims: Any,
    ) -> str:
        """A signed token for `provider` ("oidc", "rsa" or "ec"); `claims` and `headers`
        override the defaults (pass one as None to leave it out)."""
        now = int(time.time())
        defaults: dict[str, Any] = {
            "oidc": {"iss": self.oidc_domain, "aud": OIDC_APP_ID},
            "rsa": {"iss": RSA_ISSUER, "aud": RSA_APP_ID},
            "ec": {"iss": EC_ISSUER},
        }[provider]
        payload: dict[str, Any] = {
            **defaults,
            "sub": "user-1",
            "iat": now,
            "exp": int(now + lifetime_s),
            "email": "ada@example.com",
            "name": "Ada Lovelace",
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        algorithm = "ES256" if provider == "ec" else "RS256"
        own_keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey] = {
            "oidc": self.rsa_key,
            "rsa": self.rsa_key,
            "ec": self.ec_key,
        }
        signing_key = key or own_keys[provider]
        header = {"kid": kid or {"oidc": OIDC_KID, "rsa": RSA_KID, "ec": EC_KID}[provider]}
        header.update(headers or {})
        header = {k: v for k, v in header.items() if v is not None}  # None: leave it out
        return jwt.encode(payload, signing_key, algorithm=algorithm, headers=header)


@pytest.fixture(scope="module")
def auth(app_server_factory: Callable[..., ReactorServer]) -> Iterator[AuthSetup]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())

    def documents(base: str) -> dict[str, Any]:
        return {
            "/oidc/.well-known/openid-configuration": {
                "issuer": f"{base}/oidc",
                "jwks_uri": f"{base}/oidc/jwks",
                "id_token_signing_alg_values_supported": ["RS256"],
            },
            "/oidc/jwks": {"keys": [rsa_jwk(rsa_key, OIDC_KID)]},
            "/custom/jwks": {"keys": [rsa_jwk(rsa_key, RSA_KID)]},
        }

    jwks = JwksServer(documents)
    ec_jwks = json.dumps({"keys": [ec_jwk(ec_key, EC_KID)]}).encode()
    env = {
        "E2E_OIDC_DOMAIN": f"{jwks.base_url}/oidc",
        "E2E_OIDC_APPLICATION_ID": OIDC_APP_ID,
        "E2E_RSA_ISSUER": RSA_ISSUER,
        "E2E_RSA_JWKS": f"{jwks.base_url}/custom/jwks",
        "E2E_RSA_APPLICATION_ID": RSA_APP_ID,
        "E2E_EC_ISSUER": EC_ISSUER,
        "E2E_EC_JWKS": "data:text/plain;charset=utf-8;base64," + base64.b64encode(ec_jwks).decode(),
    }
    try:
        server = app_server_factory(AUTH_APP, env)
        yield AuthSetup(server, jwks, f"{jwks.base_url}/oidc", rsa_key, ec_key, attacker_key)
    finally:
        jwks.close()


# --- raw websocket helpers -----------------------------------------------------------------


def ws_url(server: ReactorServer) -> str:
    return server.url.replace("http://", "ws://") + "/api/sync"


def connect_msg() -> str:
    return json.dumps(
        {
            "type": "Connect",
            "sessionId": str(uuid.uuid4()),
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
            "clientTs": int(time.time() * 1000),
        }
    )


def add_queries(base: int, *queries: tuple[int, str]) -> str:
    return json.dumps(
        {
            "type": "ModifyQuerySet",
            "baseVersion": base,
            "newVersion": base + 1,
            "modifications": [
                {"type": "Add", "queryId": qid, "udfPath": path, "args": [{}]}
                for qid, path in queries
            ],
        }
    )


def authenticate(value: str | None, base: int, token_type: str = "User", **extra: Any) -> str:
    message: dict[str, Any] = {"type": "Authenticate", "tokenType": token_type, "baseVersion": base}
    if value is not None:
        message["value"] = value
    message.update(extra)
    return json.dumps(message)


class Socket:
    """A raw sync websocket that records every message it receives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []

    async def send(self, frame: str) -> None:
        await self.ws.send(frame)

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.received.append(message)
        return message

    async def until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching message in {timeout}s; got {self.received}")
            try:
                message = await self.next(remaining)
            except TimeoutError:
                raise AssertionError(
                    f"no matching message in {timeout}s; got {self.received}"
                ) from None
            if message["type"] == "FatalError":
                raise AssertionError(f"unexpected FatalError: {message}")
            if predicate(message):
                return message

    async def transition(self, timeout: float = 5.0, **end: int) -> dict[str, Any]:
        """The next Transition whose endVersion has these querySet/identity values."""

        def matches(m: dict[str, Any]) -> bool:
            return m["type"] == "Transition" and all(
                m["endVersion"][k] == v for k, v in end.items()
            )

        return await self.until(matches, timeout)

    async def closed(self, timeout: float = 5.0) -> websockets.ConnectionClosed:
        """Read until the server closes; fails on a FatalError."""
        try:
            while True:
                message = await self.next(timeout)
                assert message["type"] != "FatalError", f"got a FatalError: {message}"
        except websockets.ConnectionClosed as closed:
            return closed
        raise AssertionError("unreachable")


def updates(transition: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {m["queryId"]: m for m in transition["modifications"]}


async def open_socket(server: ReactorServer, *queries: tuple[int, str]) -> tuple[Any, Socket]:
    ws = await websockets.connect(ws_url(server))
    sock = Socket(ws)
    await sock.send(connect_msg())
    if queries:
        await sock.send(add_queries(0, *queries))
        await sock.transition(querySet=1, identity=0)
    return ws, sock


def assert_identity(identity: Any, *, issuer: str, subject: str = "user-1", **fields: Any) -> None:
    assert isinstance(identity, dict), identity
    assert identity["tokenIdentifier"] == f"{issuer}|{subject}"
    assert identity["issuer"] == issuer
    assert identity["subject"] == subject
    for name, value in fields.items():
        assert identity.get(name) == value, (name, identity)


# --- websocket: valid tokens ---------------------------------------------------------------


@pytest.mark.parametrize("provider", ["oidc", "rsa", "ec"])
async def test_authenticate_reruns_subscribed_query_with_the_identity(
    auth: AuthSetup, provider: str
) -> None:
    issuer = {"oidc": auth.oidc_domain, "rsa": RSA_ISSUER, "ec": EC_ISSUER}[provider]
    ws, sock = await open_socket(auth.server)
    async with ws:
        await sock.send(add_queries(0, (0, "whoami:me")))
        first = await sock.transition(querySet=1, identity=0)
        assert updates(first)[0]["value"] is None  # anonymous before Authenticate

        await sock.send(authenticate(auth.token(provider, email=f"{provider}@example.com"), 0))
        confirmed = await sock.transition(identity=1)
        assert confirmed["startVersion"]["identity"] == 0
        assert confirmed["endVersion"]["querySet"] == 1
        rerun = updates(confirmed)[0]
        assert rerun["type"] == "QueryUpdated"
        assert_identity(
            rerun["value"], issuer=issuer, email=f"{provider}@example.com", name="Ada Lovelace"
        )

        # Mutations and actions on this connection run as the same user.
        await sock.send(
            json.dumps(
                {"type": "Mutation", "requestId": 0, "udfPath": "whoami:me_mutation", "args": [{}]}
            )
        )
        await sock.send(
            json.dumps(
                {"type": "Action", "requestId": 1, "udfPath": "whoami:me_action", "args": [{}]}
            )
        )
        responses: dict[str, dict[str, Any]] = {}

        def response(m: dict[str, Any]) -> bool:
            if m["type"] in ("MutationResponse", "ActionResponse"):
                responses[m["type"]] = m
            return len(responses) == 2

        await sock.until(response)
        mutation, action = responses["MutationResponse"], responses["ActionResponse"]
        assert mutation["success"] is True and action["success"] is True
        assert_identity(mutation["result"], issuer=issuer)
        assert_identity(action["result"], issuer=issuer)

        # Logging out (tokenType None, baseVersion 1) re-runs the query as anonymous.
        await sock.send(authenticate(None, 1, token_type="None"))
        logged_out = await sock.transition(identity=2)
        assert updates(logged_out)[0]["value"] is None
    if provider == "oidc":
        assert "/oidc/.well-known/openid-configuration" in auth.jwks.requests
        assert "/oidc/jwks" in auth.jwks.requests


async def test_authenticate_before_subscribing_and_refreshing_the_token(auth: AuthSetup) -> None:
    """The JS order (Authenticate before ModifyQuerySet), then a refresh with baseVersion 1."""
    ws, sock = await open_socket(auth.server)
    async with ws:
        await sock.send(authenticate(auth.token("rsa", email="first@example.com"), 0))
        await sock.send(add_queries(0, (7, "whoami:me")))
        first = await sock.until(lambda m: m["type"] == "Transition" and 7 in updates(m))
        assert first["endVersion"]["identity"] == 1
        assert first["endVersion"]["querySet"] == 1
        assert_identity(updates(first)[7]["value"], issuer=RSA_ISSUER, email="first@example.com")

        refreshed = auth.token("rsa", sub="user-2", email="second@example.com", picture="p.png")
        await sock.send(authenticate(refreshed, 1))
        second = await sock.transition(identity=2)
        assert second["startVersion"]["identity"] == 1
        assert_identity(
            updates(second)[7]["value"],
            issuer=RSA_ISSUER,
            subject="user-2",
            email="second@example.com",
            pictureUrl="p.png",
        )


async def test_transition_advancing_query_set_carries_the_added_queries_results(
    auth: AuthSetup,
) -> None:
    """CONVEX_SEMANTICS §2.2: one Transition carries the results of the whole query set it
    reports (endVersion.querySet), so a query added by ModifyQuerySet N has its result in the
    first Transition whose endVersion.querySet is N. Exercised the way the JS client starts
    with setAuth: Authenticate immediately followed by ModifyQuerySet, a few times, after a
    commit (the race shows up when the live-query loop wakes between the two frames)."""
    key = auth.server.wait_admin_key()
    missing = []
    for attempt in range(8):
        httpx.post(
            auth.server.url + "/api/mutation",
            json={"path": "notes:add", "args": {"body": f"bump-{attempt}"}},
            headers={"Authorization": f"Convex {key}"},
        )
        ws, sock = await open_socket(auth.server)
        async with ws:
            await sock.send(authenticate(auth.token("ec"), 0))
            await sock.send(add_queries(0, (3, "whoami:me")))
            first = await sock.transition(querySet=1)
            if 3 not in updates(first):
                missing.append(first)
    assert not missing, (
        f"{len(missing)}/8 Transitions reached querySet 1 without the result of the query "
        f"added by it, e.g. {missing[0]}"
    )


async def test_custom_jwt_nested_claims_are_flattened(auth: AuthSetup) -> None:
    # The ES256 provider has no applicationID, so any `aud` is accepted.
    token = auth.token(
        "ec", aud="any-audience", org={"id": "org-9", "role": {"name": "admin"}}, plan="pro"
    )
    async with httpx.AsyncClient(base_url=auth.server.url) as http:
        response = await http.post(
            "/api/query",
            json={"path": "whoami:me", "args": {}},
            headers={"Authorization": f"Bearer {token}"},
        )
    identity = response.json()["value"]
    assert_identity(identity, issuer=EC_ISSUER)
    assert identity["org.id"] == "org-9"
    assert identity["org.role.name"] == "admin"
    assert identity["plan"] == "pro"


# --- websocket: rejected tokens ------------------------------------------------------------


def _bad_tokens(auth: AuthSetup) -> dict[str, tuple[str, str]]:
    now = int(time.time())
    return {
        # kid names the real key, but the token was signed by another key.
        "wrong_signature": (auth.token("oidc", key=auth.attacker_key), "signature is invalid"),
        "wrong_signature_ec": (
            auth.token("ec", key=ec.generate_private_key(ec.SECP256R1())),
            "signature is invalid",
        ),
        "wrong_issuer": (auth.token("oidc", iss="https://evil.e2e.test"), "No auth provider"),
        "wrong_audience": (auth.token("oidc", aud="someone-else"), "someone-else"),
        "wrong_audience_custom": (auth.token("rsa", aud="not-rsa-app"), "No auth provider"),
        "expired": (auth.token("rsa", iat=now - 7200, exp=now - 3600), "expired"),
        "not_a_jwt": ("definitely.not.a-jwt", "JWT"),
        "unknown_kid": (auth.token("rsa", kid="rotated-away"), "rotated-away"),
        # customJwt tokens must name their key.
        "missing_kid": (auth.token("rsa", headers={"kid": None}), "kid"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong_signature",
        "wrong_signature_ec",
        "wrong_issuer",
        "wrong_audience",
        "wrong_audience_custom",
        "expired",
        "not_a_jwt",
        "unknown_kid",
        "missing_kid",
    ],
)
async def test_bad_token_gets_auth_error_then_close(auth: AuthSetup, case: str) -> None:
    token, fragment = _bad_tokens(auth)[case]
    ws, sock = await open_socket(auth.server, (0, "whoami:me"))
    async with ws:
        await sock.send(authenticate(token, 0))
        error = await sock.until(lambda m: m["type"] == "AuthError")
        assert error["authUpdateAttempted"] is True
        assert error["baseVersion"] == 0
        assert fragment.lower() in error["error"].lower(), error
        closed = await sock.closed()
    assert all(m["type"] != "FatalError" for m in sock.received)
    # Nothing ran as that user: no Transition ever reported identity 1.
    assert all(m["endVersion"]["identity"] == 0 for m in sock.received if m["type"] == "Transition")
    assert closed.rcvd is None or closed.rcvd.code in (1000, 1001)
    auth.server.assert_alive()


async def test_bad_refresh_after_good_token_reports_the_confirmed_version(auth: AuthSetup) -> None:
    ws, sock = await open_socket(auth.server, (0, "whoami:me"))
    async with ws:
        await sock.send(authenticate(auth.token("oidc"), 0))
        await sock.transition(identity=1)
        await sock.send(authenticate(auth.token("oidc", aud="nope"), 1))
        error = await sock.until(lambda m: m["type"] == "AuthError")
        assert error["authUpdateAttempted"] is True
        assert error["baseVersion"] == 1
        await sock.closed()


async def test_token_expiring_while_connected_gets_auth_error_not_attempted(
    auth: AuthSetup,
) -> None:
    ws, sock = await open_socket(auth.server, (0, "whoami:me"))
    async with ws:
        await sock.send(authenticate(auth.token("rsa", lifetime_s=2), 0))
        await sock.transition(identity=1)
        error = await sock.until(lambda m: m["type"] == "AuthError", timeout=10)
        assert error["authUpdateAttempted"] is False
        assert "expired" in error["error"].lower()
        assert error["baseVersion"] == 1
        await sock.closed()


# --- websocket: admin key ------------------------------------------------------------------


async def test_admin_authenticate_reaches_internal_functions_and_impersonates(
    auth: AuthSetup,
) -> None:
    key = auth.server.wait_admin_key()
    ws, sock = await open_socket(auth.server)
    async with ws:
        impersonating = {"issuer": "https://acting.test", "subject": "bob", "name": "Bob"}
        await sock.send(authenticate(key, 0, token_type="Admin", impersonating=impersonating))
        await sock.send(add_queries(0, (0, "whoami:secret"), (1, "whoami:me")))
        results: dict[int, dict[str, Any]] = {}

        def both(m: dict[str, Any]) -> bool:
            if m["type"] == "Transition":
                results.update(updates(m))
            return len(results) == 2

        await sock.until(both)
        assert sock.received[-1]["endVersion"]["identity"] == 1
        assert results[0]["type"] == "QueryUpdated", results[0]
        assert results[0]["value"]["secret"] == "internal-only"
        assert_identity(
            results[0]["value"]["identity"], issuer="https://acting.test", subject="bob", name="Bob"
        )
        assert_identity(results[1]["value"], issuer="https://acting.test", subject="bob")

        # Internal mutations too.
        await sock.send(
            json.dumps(
                {
                    "type": "Mutation",
                    "requestId": 0,
                    "udfPath": "notes:add",
                    "args": [{"body": "from-admin-ws"}],
                }
            )
        )
        response = await sock.until(lambda m: m["type"] == "MutationResponse")
        assert response["success"] is True, response
        assert response["result"]["added"] == "from-admin-ws"


async def test_internal_query_subscribed_before_admin_authenticate_is_rerun(
    auth: AuthSetup,
) -> None:
    """PROTOCOL.md §7: on a successful Authenticate "all subscriptions are invalidated and
    queries re-run in the next Transition". An internal query subscribed while anonymous
    fails ("Could not find public function"); once the admin key is in force it must re-run
    and succeed."""
    key = auth.server.wait_admin_key()
    ws, sock = await open_socket(auth.server, (0, "whoami:secret"), (1, "whoami:me"))
    async with ws:
        failed = updates(sock.received[-1])[0]
        assert failed["type"] == "QueryFailed"
        assert "Could not find public function for 'whoami:secret'" in failed["errorMessage"]

        impersonating = {"issuer": "https://acting.test", "subject": "bob"}
        await sock.send(authenticate(key, 0, token_type="Admin", impersonating=impersonating))
        confirmed = await sock.transition(identity=1)
        assert_identity(updates(confirmed)[1]["value"], issuer="https://acting.test", subject="bob")
        rerun = updates(confirmed).get(0)
        if rerun is None:  # tolerate it arriving in a later Transition
            try:
                later = await sock.until(
                    lambda m: m["type"] == "Transition" and 0 in updates(m), timeout=2
                )
                rerun = updates(later)[0]
            except AssertionError:
                pass
        assert rerun is not None and rerun["type"] == "QueryUpdated", (
            "the internal query was never re-run after the admin Authenticate; messages: "
            f"{sock.received}"
        )
        assert rerun["value"]["secret"] == "internal-only"


async def test_wrong_admin_key_over_websocket_is_an_auth_error(auth: AuthSetup) -> None:
    ws, sock = await open_socket(auth.server, (0, "whoami:me"))
    async with ws:
        await sock.send(authenticate("not-the-admin-key", 0, token_type="Admin"))
        error = await sock.until(lambda m: m["type"] == "AuthError")
        assert error["authUpdateAttempted"] is True
        assert "admin key" in error["error"].lower()
        await sock.closed()


# --- HTTP ----------------------------------------------------------------------------------


def _post(
    server: ReactorServer, route: str, path: str, authorization: str | None
) -> httpx.Response:
    headers = {"Convex-Client": "npm-1.48.0"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return httpx.post(
        server.url + route,
        json={"path": path, "args": [{}], "format": "convex_encoded_json"},
        headers=headers,
        timeout=10,
    )


@pytest.mark.parametrize(
    ("route", "path"),
    [
        ("/api/query", "whoami:me"),
        ("/api/mutation", "whoami:me_mutation"),
        ("/api/action", "whoami:me_action"),
        ("/api/function", "whoami:me"),
    ],
)
def test_http_bearer_token_gives_the_identity(auth: AuthSetup, route: str, path: str) -> None:
    response = _post(auth.server, route, path, f"Bearer {auth.token('oidc', email='h@x.io')}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success", body
    assert_identity(body["value"], issuer=auth.oidc_domain, email="h@x.io")


def test_http_without_credentials_is_anonymous(auth: AuthSetup) -> None:
    body = _post(auth.server, "/api/query", "whoami:me", None).json()
    assert body == {"status": "success", "value": None}


@pytest.mark.parametrize(
    "case", ["wrong_signature", "wrong_issuer", "wrong_audience", "expired", "not_a_jwt"]
)
def test_http_bad_bearer_token_is_401_unauthenticated(auth: AuthSetup, case: str) -> None:
    token, fragment = _bad_tokens(auth)[case]
    response = _post(auth.server, "/api/query", "whoami:me", f"Bearer {token}")
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["code"] == "Unauthenticated"
    assert fragment.lower() in body["message"].lower()


def test_http_admin_key_runs_internal_functions(auth: AuthSetup) -> None:
    key = auth.server.wait_admin_key()
    ok = _post(auth.server, "/api/query", "whoami:secret", f"Convex {key}")
    assert ok.status_code == 200
    assert ok.json()["value"] == {"secret": "internal-only", "identity": None}

    anonymous = _post(auth.server, "/api/query", "whoami:secret", None)
    assert anonymous.status_code == 200
    assert anonymous.json()["status"] == "error"
    assert "Could not find public function for 'whoami:secret'" in anonymous.json()["errorMessage"]

    as_user = _post(auth.server, "/api/query", "whoami:secret", f"Bearer {auth.token('oidc')}")
    assert as_user.json()["status"] == "error"
    assert "Could not find public function" in as_user.json()["errorMessage"]

    wrong = _post(auth.server, "/api/query", "whoami:secret", "Convex " + key[:-4] + "abcd")
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "Unauthenticated"

    check = httpx.get(
        auth.server.url + "/api/check_admin_key", headers={"Authorization": f"Convex {key}"}
    )
    assert check.status_code == 200 and check.json()["success"] is True
    denied = httpx.get(auth.server.url + "/api/check_admin_key")
    assert denied.status_code == 403


def test_http_admin_key_acting_as_a_user(auth: AuthSetup) -> None:
    key = auth.server.wait_admin_key()
    attributes = {
        "issuer": "https://acting.test",
        "subject": "carol",
        "email": "c@x.io",
        "emailVerified": True,
        "team": "blue",
    }
    encoded = base64.b64encode(json.dumps(attributes).encode()).decode()
    me = _post(auth.server, "/api/query", "whoami:me", f"Convex {key}:{encoded}").json()
    assert me["status"] == "success", me
    assert_identity(
        me["value"],
        issuer="https://acting.test",
        subject="carol",
        email="c@x.io",
        emailVerified=True,
        team="blue",
    )
    # Acting as a user still has admin rights.
    secret = _post(auth.server, "/api/query", "whoami:secret", f"Convex {key}:{encoded}").json()
    assert secret["value"]["identity"]["tokenIdentifier"] == "https://acting.test|carol"

    garbage = _post(auth.server, "/api/query", "whoami:me", f"Convex {key}:%%%not-base64")
    assert garbage.status_code == 401
    assert "base64" in garbage.json()["message"]


def test_http_action_sees_the_bearer_identity(auth: AuthSetup) -> None:
    token = auth.token("ec", email="site@x.io")
    ok = httpx.get(auth.server.site_url + "/whoami", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200, ok.text
    assert_identity(ok.json()["identity"], issuer=EC_ISSUER, email="site@x.io")
    # ctx.run_query from the HTTP action runs as the same user.
    assert_identity(ok.json()["viaRunQuery"], issuer=EC_ISSUER, email="site@x.io")

    anonymous = httpx.get(auth.server.site_url + "/whoami")
    assert anonymous.json() == {"identity": None, "viaRunQuery": None}

    # An expired token does not stop the request (as in Convex): reading the identity raises,
    # and this handler does not catch it.
    bad = httpx.get(
        auth.server.site_url + "/whoami",
        headers={"Authorization": f"Bearer {auth.token('ec', exp=1)}"},
    )
    assert bad.status_code == 500, bad.text
    assert "AuthenticationError" in bad.text and "expired" in bad.text.lower()


def _echo_auth(auth: AuthSetup, header: str | None) -> Any:
    headers = {} if header is None else {"Authorization": header}
    response = httpx.get(auth.server.site_url + "/echo-auth", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_http_action_with_a_valid_jwt_gets_the_identity(auth: AuthSetup) -> None:
    header = f"Bearer {auth.token('rsa', aud=RSA_APP_ID, email='echo@x.io')}"
    body = _echo_auth(auth, header)
    assert body["authorization"] == header and body["error"] is None
    assert_identity(body["identity"], issuer=RSA_ISSUER, email="echo@x.io")
    assert_identity(body["viaRunQuery"], issuer=RSA_ISSUER, email="echo@x.io")


@pytest.mark.parametrize("case", ["expired", "wrong_signature", "wrong_issuer", "not_a_jwt"])
def test_http_action_with_a_bad_jwt_runs_and_reading_the_identity_raises(
    auth: AuthSetup, case: str
) -> None:
    token, fragment = _bad_tokens(auth)[case]
    body = _echo_auth(auth, f"Bearer {token}")
    assert body["authorization"] == f"Bearer {token}"
    assert body["identity"] is None
    assert body["error"].startswith("AuthenticationError: ")
    assert fragment.lower() in body["error"].lower()
    assert body["viaRunQuery"] is None  # functions it calls run with no identity


@pytest.mark.parametrize("header", ["Bearer cron-secret-123", "Basic dXNlcjpwYXNz"])
def test_http_action_with_a_foreign_header_reads_it(auth: AuthSetup, header: str) -> None:
    body = _echo_auth(auth, header)
    assert body == {"authorization": header, "identity": None, "error": None, "viaRunQuery": None}


def test_http_action_without_a_header_is_anonymous(auth: AuthSetup) -> None:
    body = _echo_auth(auth, None)
    assert body == {"authorization": None, "identity": None, "error": None, "viaRunQuery": None}


# --- the official npm client ---------------------------------------------------------------


def test_js_set_auth_confirms_and_refreshes(
    auth: AuthSetup, run_node_on: Callable[..., ScriptResult]
) -> None:
    tokens = {
        "first": auth.token("oidc", email="first@js.test", name="First"),
        "refreshed": auth.token("oidc", email="refreshed@js.test", name="Refreshed"),
        "invalid": auth.token("oidc", key=auth.attacker_key, email="bad@js.test"),
    }
    result = run_node_on(auth.server, "set_auth.mjs", auth.server.url, json.dumps(tokens))
    report = result.json()
    assert "UNCAUGHT" not in result.stderr, result.describe()

    good = report["good"]
    # onAuthChange(true) once the first token is confirmed. (convex@1.48.0 reports true a second
    # time when it confirms the refreshed token: authentication_manager.ts reads `hadAuth` from
    # the state scheduleTokenRefetch just replaced. So a second `true` is the client seeing the
    # server confirm the refresh; a `false` would mean it gave up on auth.)
    assert good["authChanges"][0] is True, result.describe()
    assert set(good["authChanges"]) == {True} and len(good["authChanges"]) <= 2, result.describe()
    # fetchToken was called with force=false first, then force=true for the refresh.
    assert good["fetchCalls"][:2] == [False, True], result.describe()
    identities = [v for v in good["values"] if v is not None]
    assert identities, result.describe()
    # The refresh Authenticate reached the server: the query re-ran with the new claims.
    assert identities[-1]["email"] == "refreshed@js.test"
    assert identities[-1]["tokenIdentifier"] == f"{auth.oidc_domain}|user-1"
    assert good["mutationResult"]["email"] == "refreshed@js.test"
    assert good["afterClearAuth"] is None

    bad = report["bad"]
    # An invalid token: the client gives up on auth (onAuthChange(false)), keeps working
    # unauthenticated, and does not crash.
    assert bad["authChanges"] == [False], result.describe()
    assert True in bad["fetchCalls"], result.describe()
    assert bad["queryValue"] is None
    assert bad["mutationResult"] is None
