"""One-shot function calls over the HTTP API (PROTOCOL.md §8), blocking and async.

Owns the request body (``{"path", "args": [args], "format": "convex_encoded_json"}``), the
headers (``Convex-Client``, ``Authorization``) and the reading of ``UdfResponse`` bodies into a
value, a :class:`~schema.errors.FunctionFailed` (function-level errors, HTTP 200) or an
:class:`~client_sdk.errors.HttpError` (any non-2xx answer). It does not hold websockets,
subscriptions or sessions: use it for scripts and jobs that need no live updates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from client_sdk.calls import encode_args, unwrap
from client_sdk.errors import HttpError, ProtocolMismatch
from client_sdk.urls import CLIENT_HEADER, http_base_url
from reactor.sync.messages import FunctionResult
from schema.values import JsonValue, Value

__all__ = ["AsyncHttpReactorClient", "HttpReactorClient", "parse_response", "request_body"]

function_logger = logging.getLogger("client_sdk.function_logs")

_KINDS = {"query": "Q", "mutation": "M", "action": "A"}
_LEGACY_UDF_FAILED = 560  # older servers' "function failed" status; the JS client accepts it


def request_body(path: str, args: Mapping[str, Value] | None) -> dict[str, JsonValue]:
    """The JSON body of ``POST /api/query|mutation|action``.

    Raises:
        TypeError, ValidationError: bad path or arguments.
    """
    return {"path": path, "args": [encode_args(path, args)], "format": "convex_encoded_json"}


def parse_response(response: httpx.Response, *, kind: str = "query", path: str = "") -> Value:
    """Turn an HTTP API answer into the function's value.

    Raises:
        HttpError: a non-2xx status (other than the legacy 560), with the server's code.
        FunctionFailed: the function ran and failed (``data`` set for ConvexError).
        ProtocolMismatch: the body is not a ``UdfResponse``.
    """
    status = response.status_code
    if not (200 <= status < 300 or status == _LEGACY_UDF_FAILED):
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            raise HttpError(status, str(body.get("code", "")), body["message"])
        raise HttpError(status, "", response.text or response.reason_phrase)
    try:
        body = response.json()
    except ValueError as exc:
        raise ProtocolMismatch(f"HTTP API answered with invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ProtocolMismatch(f"HTTP API answered with a non-object: {body!r:.80}")
    for line in body.get("logLines") or ():
        function_logger.info("[CONVEX %s(%s)] %s", _KINDS.get(kind, "?"), path, line)
    if body.get("status") == "success":
        return unwrap(FunctionResult(True, body.get("value")))
    if body.get("status") == "error":
        message = body.get("errorMessage")
        unwrap(
            FunctionResult(
                False,
                error_message=message if isinstance(message, str) else str(message),
                error_data=body.get("errorData"),
                has_error_data="errorData" in body,
            )
        )
    raise ProtocolMismatch(f"HTTP API answered with an invalid status: {body.get('status')!r}")


def _headers(auth_token: str | None, admin_key: str | None) -> dict[str, str]:
    if auth_token is not None and admin_key is not None:
        raise ValueError("Pass auth_token or admin_key, not both")
    headers = {"Convex-Client": CLIENT_HEADER}
    if auth_token is not None:
        headers["Authorization"] = f"Bearer {auth_token}"
    elif admin_key is not None:
        headers["Authorization"] = f"Convex {admin_key}"
    return headers


class HttpReactorClient:
    """Blocking HTTP API client (one ``httpx.Client`` connection pool).

    Args:
        url: the deployment URL, e.g. ``"http://127.0.0.1:3210"``.
        auth_token: a user JWT, sent as ``Authorization: Bearer …``.
        admin_key: an admin key, sent as ``Authorization: Convex …``.
        timeout_s: the httpx timeout for each call.
        transport: an httpx transport (tests pass ``httpx.MockTransport``).
    """

    def __init__(
        self,
        url: str,
        *,
        auth_token: str | None = None,
        admin_key: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = http_base_url(url)
        self._http = httpx.Client(
            base_url=self.url,
            headers=_headers(auth_token, admin_key),
            timeout=timeout_s,
            transport=transport,
        )

    def query(self, path: str, args: Mapping[str, Value] | None = None) -> Value:
        return self._call("query", path, args)

    def mutation(self, path: str, args: Mapping[str, Value] | None = None) -> Value:
        return self._call("mutation", path, args)

    def action(self, path: str, args: Mapping[str, Value] | None = None) -> Value:
        return self._call("action", path, args)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpReactorClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, kind: str, path: str, args: Mapping[str, Value] | None) -> Any:
        response = self._http.post(f"/api/{kind}", json=request_body(path, args))
        return parse_response(response, kind=kind, path=path)


class AsyncHttpReactorClient:
    """The async twin of :class:`HttpReactorClient` (one ``httpx.AsyncClient``)."""

    def __init__(
        self,
        url: str,
        *,
        auth_token: str | None = None,
        admin_key: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = http_base_url(url)
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=_headers(auth_token, admin_key),
            timeout=timeout_s,
            transport=transport,
        )

    async def query(self, path: str, args: Mapping[str, Value] | None = None) -> Value:
        return await self._call("query", path, args)

    async def mutation(self, path: str, args: Mapping[str, Value] | None = None) -> Value:
        return await self._call("mutation", path, args)

    async def action(self, path: str, args: Mapping[str, Value] | None = None) -> Value:
        return await self._call("action", path, args)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncHttpReactorClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _call(self, kind: str, path: str, args: Mapping[str, Value] | None) -> Any:
        response = await self._http.post(f"/api/{kind}", json=request_body(path, args))
        return parse_response(response, kind=kind, path=path)
