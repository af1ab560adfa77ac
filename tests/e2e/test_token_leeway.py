"""One clock-skew rule for user tokens on every transport: a JWT whose ``exp`` has just
passed, but by less than the verifier's leeway (5 s), is accepted over HTTP and over the
websocket alike; the websocket then ends the identity when the leeway runs out."""

from __future__ import annotations

import time

import pytest

from .test_auth import (
    AuthSetup,
    _post,
    assert_identity,
    auth,  # noqa: F401  (the module-scoped server fixture)
    authenticate,
    open_socket,
    updates,
)

pytestmark = pytest.mark.anyio

LEEWAY_S = 5.0  # AuthVerifier's default


def _token_expired_ago(setup: AuthSetup, seconds: float) -> tuple[str, float]:
    exp = int(time.time() - seconds)
    return setup.token("rsa", exp=exp), exp


def test_http_accepts_a_token_inside_the_leeway(auth: AuthSetup) -> None:  # noqa: F811
    token, _ = _token_expired_ago(auth, 2)
    response = _post(auth.server, "/api/query", "whoami:me", f"Bearer {token}")
    assert response.status_code == 200, response.text
    assert_identity(response.json()["value"], issuer="https://rsa-issuer.e2e.test")


async def test_the_websocket_accepts_it_too_until_the_leeway_runs_out(
    auth: AuthSetup,  # noqa: F811
) -> None:
    token, exp = _token_expired_ago(auth, 3)
    # The same token, over HTTP first: accepted.
    response = _post(auth.server, "/api/query", "whoami:me", f"Bearer {token}")
    assert response.status_code == 200, response.text
    ws, sock = await open_socket(auth.server, (0, "whoami:me"))
    async with ws:
        await sock.send(authenticate(token, 0))
        confirmed = await sock.transition(identity=1)
        assert_identity(updates(confirmed)[0]["value"], issuer="https://rsa-issuer.e2e.test")
        error = await sock.until(lambda m: m["type"] == "AuthError", timeout=LEEWAY_S + 5)
        ended = time.time()
        assert error["authUpdateAttempted"] is False
        assert "expired" in error["error"].lower()
        # Not at exp (already past when we connected), but when exp + leeway passed.
        assert ended >= exp + LEEWAY_S - 0.5, (ended, exp)
        await sock.closed()
    assert [m["type"] for m in sock.received].count("AuthError") == 1


def test_http_refuses_a_token_past_the_leeway(auth: AuthSetup) -> None:  # noqa: F811
    token, _ = _token_expired_ago(auth, LEEWAY_S + 5)
    response = _post(auth.server, "/api/query", "whoami:me", f"Bearer {token}")
    assert response.status_code == 401
    assert "expired" in response.json()["message"].lower()
