"""Fixtures for ``reactor.auth``: real keys, a real identity provider on 127.0.0.1, a clock.

The identity provider is ``http.server`` in a background thread, serving whatever JSON a test
puts at a path (OIDC discovery documents, JWKS) and counting requests per path, so that the
caching and key-rotation tests can assert how many fetches happened.
"""

from __future__ import annotations

import base64
import collections
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from reactor.auth import AuthVerifier


class FakeClock:
    """Unix seconds that move only when a test says so."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(float(int(time.time())))


@dataclass(frozen=True)
class SigningKey:
    """A private key, its algorithm, and its public JWK (with ``kid``)."""

    private: Any
    algorithm: str
    kid: str
    jwk: dict[str, Any]

    def sign(self, claims: dict[str, Any], *, kid: str | None = "", **headers: Any) -> str:
        """A JWT over ``claims``; ``kid=""`` means this key's kid, ``kid=None`` none at all."""
        if kid is not None:
            headers["kid"] = kid or self.kid
        return jwt.encode(claims, self.private, algorithm=self.algorithm, headers=headers)


def _signing_key(private: Any, algorithm: str, kid: str) -> SigningKey:
    exporters: dict[str, type[RSAAlgorithm] | type[ECAlgorithm] | type[OKPAlgorithm]] = {
        "RS256": RSAAlgorithm,
        "ES256": ECAlgorithm,
        "EdDSA": OKPAlgorithm,
    }
    exporter = exporters[algorithm]
    jwk = exporter.to_jwk(private.public_key(), as_dict=True)
    jwk.update({"kid": kid, "use": "sig", "alg": algorithm})
    return SigningKey(private, algorithm, kid, jwk)


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    return _signing_key(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256", "rsa-1"
    )


@pytest.fixture(scope="session")
def rsa_key_2() -> SigningKey:
    return _signing_key(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256", "rsa-2"
    )


@pytest.fixture(scope="session")
def ec_key() -> SigningKey:
    return _signing_key(ec.generate_private_key(ec.SECP256R1()), "ES256", "ec-1")


@pytest.fixture(scope="session")
def ec_key_2() -> SigningKey:
    return _signing_key(ec.generate_private_key(ec.SECP256R1()), "ES256", "ec-2")


@pytest.fixture(scope="session")
def ed_key() -> SigningKey:
    return _signing_key(ed25519.Ed25519PrivateKey.generate(), "EdDSA", "ed-1")


def jwks_of(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [key.jwk for key in keys]}


def data_uri(document: dict[str, Any], media_type: str = "application/json") -> str:
    encoded = base64.b64encode(json.dumps(document).encode()).decode()
    return f"data:{media_type};base64,{encoded}"


class _Routes:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.responses: dict[str, tuple[int, bytes]] = {}
        self.hits: collections.Counter[str] = collections.Counter()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        routes = self.server.routes
        with routes.lock:
            routes.hits[self.path] += 1
            status, body = routes.responses.get(self.path, (404, b'{"error": "not found"}'))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: _Routes


class IdentityProvider:
    """The test's view of the local server: put documents at paths, count fetches."""

    def __init__(self, server: _Server) -> None:
        self._routes = server.routes
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def serve(self, path: str, document: Any, *, status: int = 200) -> None:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        with self._routes.lock:
            self._routes.responses[path] = (status, body)

    def serve_oidc(self, name: str, *keys: SigningKey) -> str:
        """Discovery + JWKS for issuer ``<base>/<name>``; returns that issuer (the ``domain``)."""
        issuer = self.url(f"/{name}")
        self.serve(
            f"/{name}/.well-known/openid-configuration",
            {
                "issuer": issuer,
                "jwks_uri": f"{issuer}/jwks",
                "id_token_signing_alg_values_supported": ["RS256"],
            },
        )
        self.serve(f"/{name}/jwks", jwks_of(*keys))
        return issuer

    def hits(self, path: str) -> int:
        with self._routes.lock:
            return self._routes.hits[path]

    def reset(self) -> None:
        with self._routes.lock:
            self._routes.responses.clear()
            self._routes.hits.clear()


@pytest.fixture(scope="session")
def _idp_server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.routes = _Routes()
    thread = threading.Thread(target=server.serve_forever, name="test-idp", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def idp(_idp_server: _Server) -> Iterator[IdentityProvider]:
    provider = IdentityProvider(_idp_server)
    provider.reset()
    yield provider
    provider.reset()


MakeVerifier = Callable[..., AuthVerifier]
"""``make_verifier(providers, **options)``: the fixture's factory."""


@pytest.fixture
async def make_verifier(clock: FakeClock) -> AsyncIterator[MakeVerifier]:
    """``make_verifier(providers, **options)``: an AuthVerifier on the fake clock, closed after."""
    made: list[AuthVerifier] = []

    def make(providers: Any, **options: Any) -> AuthVerifier:
        options.setdefault("clock", clock)
        verifier = AuthVerifier(providers, **options)
        made.append(verifier)
        return verifier

    yield make
    for verifier in made:
        await verifier.aclose()
