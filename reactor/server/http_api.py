"""The HTTP API (PROTOCOL.md §8): one-shot queries, mutations and actions over HTTP.

Owns request parsing (``{"path", "args": [obj] | obj, "format"}``), the response shapes
(``{"status": "success"|"error", ...}`` with HTTP 200 for function outcomes, and
``{"code", "message"}`` with a 4xx/5xx status for everything else) and the info routes.
It does not run functions itself (``reactor.engine.executor``) or speak the websocket protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from functions.decorators import FunctionKind
from functions.paths import path_from_run_url
from reactor.engine.execution_log import Caller
from reactor.engine.executor import FunctionResult
from reactor.errors import RequestTooLarge
from reactor.platform.retention import PRUNED_THROUGH
from reactor.server.deployment import Deployment
from reactor.server.http_errors import HttpError, error_response, principal_of
from reactor.sync.messages import decode_ts, encode_ts
from schema.errors import FunctionNotFound, InvalidMessage, ReactorError, ValidationError
from schema.values import json_to_convex, to_clean_json

__all__ = ["routes"]

log = logging.getLogger("reactor.http")

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()

ENCODED_FORMATS = {"convex_encoded_json", "convex_json"}
CLEAN_FORMATS = {"json", "convex_clean_json", "clean"}


def _parse_json(raw: bytes | str, what: str) -> Any:
    """``raw`` decoded as JSON; any fault in it (syntax, numbers out of range, nesting deeper
    than the decoder goes) is the client's: ``HttpError`` 400 naming ``what``."""
    try:
        return _decode.decode(raw)
    except (msgspec.DecodeError, ValueError, OverflowError) as exc:
        raise HttpError(400, "BadJsonBody", f"Failed to parse {what} as JSON: {exc}") from exc
    except RecursionError as exc:
        raise HttpError(400, "BadJsonBody", f"{what} is nested too deeply") from exc


async def _body(request: Request) -> dict[str, Any]:
    # The size limit is the RequestGuard's: it raises RequestTooLarge while the body streams.
    raw = await request.body()
    if not raw.strip():
        return {}
    body = _parse_json(raw, "the request body")
    if not isinstance(body, dict):
        raise HttpError(400, "BadJsonBody", "The request body must be a JSON object")
    return body


def _format(value: Any, *, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise HttpError(
            400,
            "BadRequest",
            f"`format` must be a string, got {type(value).__name__}: "
            'use "convex_encoded_json" or "json"',
        )
    if value in ENCODED_FORMATS:
        return "encoded"
    if value in CLEAN_FORMATS:
        return "clean"
    raise HttpError(
        400,
        "BadRequest",
        f'Unsupported format {value[:100]!r}: use "convex_encoded_json" or "json"',
    )


def _args(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if isinstance(raw, list):
        if len(raw) != 1 or not isinstance(raw[0], dict):
            raise HttpError(
                400, "BadRequest", "`args` must be an object or an array holding exactly one object"
            )
        raw = raw[0]
    if not isinstance(raw, dict):
        raise HttpError(400, "BadRequest", "`args` must be an object")
    try:
        value = json_to_convex(raw, "$.args")
    except ValidationError as exc:
        raise HttpError(400, "BadConvexValue", exc.message) from exc
    except OverflowError as exc:
        # A JSON integer too large for a float (numbers are float64 in Convex values).
        raise HttpError(
            400, "BadConvexValue", f"`args` holds a number out of range: {exc}"
        ) from exc
    except RecursionError as exc:
        raise HttpError(400, "BadConvexValue", "`args` is nested too deeply") from exc
    assert isinstance(value, dict)
    return value


def _path(raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise HttpError(400, "BadRequest", "`path` must be a non-empty string naming a function")
    return raw


def result_response(result: FunctionResult, fmt: str) -> Response:
    if result.success:
        if fmt == "encoded":
            body = b'{"status":"success","value":' + result.value_json
        else:
            body = b'{"status":"success","value":' + _json.encode(to_clean_json(result.value))
        if result.log_lines:
            body += b',"logLines":' + _json.encode(list(result.log_lines))
        return Response(body + b"}", media_type="application/json")
    if result.retryable:
        return error_response(503, result.error_code or "Overloaded", result.error_message)
    out: dict[str, Any] = {"status": "error", "errorMessage": result.error_message}
    if result.log_lines:
        out["logLines"] = list(result.log_lines)
    body = _json.encode(out)
    if result.error_data_json is not None:
        data = (
            result.error_data_json
            if fmt == "encoded"
            else _json.encode(to_clean_json(result.error_data))
        )
        body = body[:-1] + b',"errorData":' + data + b"}"
    return Response(body, media_type="application/json")


def result_json(result: FunctionResult, fmt: str) -> dict[str, Any]:
    """The body ``result_response`` sends, as a dict (for the CLI)."""
    body: dict[str, Any] = msgspec.json.decode(result_response(result, fmt).body)
    return body


def not_found_response(exc: FunctionNotFound) -> Response:
    return Response(
        _json.encode({"status": "error", "errorMessage": exc.message}),
        media_type="application/json",
    )


def _handler(
    fn: Callable[[Deployment, Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        deployment: Deployment = request.app.state.deployment
        try:
            return await fn(deployment, request)
        except HttpError as exc:
            log.info("HTTP %s %s: %s %s", request.method, request.url.path, exc.status, exc.message)
            return error_response(exc.status, exc.code, exc.message)
        except RequestTooLarge:
            raise  # the RequestGuard answers 413 and ends the connection
        except FunctionNotFound as exc:
            return not_found_response(exc)
        except ReactorError as exc:
            log.info("HTTP %s %s: %s", request.method, request.url.path, exc)
            return error_response(400, exc.code, exc.message)

    return endpoint


async def _call(
    deployment: Deployment,
    request: Request,
    path: str,
    args: dict[str, Any],
    kind: FunctionKind | None,
    fmt: str,
) -> Response:
    principal = await principal_of(deployment, request)
    spec = deployment.resolve(path, kind=kind, is_admin=principal.is_admin)
    result = await deployment.executor.run(
        spec, args, identity=principal.identity, caller=Caller.HTTP
    )
    return result_response(result, fmt)


def _kind_route(kind: FunctionKind | None) -> Callable[[Deployment, Request], Awaitable[Response]]:
    async def handle(deployment: Deployment, request: Request) -> Response:
        if request.method == "GET":
            params = request.query_params
            raw_args = params.get("args")
            args_obj = _parse_json(raw_args, "the `args` parameter") if raw_args else {}
            return await _call(
                deployment,
                request,
                _path(params.get("path")),
                _args(args_obj),
                kind,
                _format(params.get("format"), default="clean"),
            )
        body = await _body(request)
        return await _call(
            deployment,
            request,
            _path(body.get("path")),
            _args(body.get("args")),
            kind,
            _format(body.get("format"), default="clean"),
        )

    return handle


async def _run(deployment: Deployment, request: Request) -> Response:
    body = await _body(request)
    path = path_from_run_url(request.url.path)
    fmt = _format(body.get("format"), default="clean")
    return await _call(deployment, request, path, _args(body.get("args")), None, fmt)


async def _query_ts(deployment: Deployment, request: Request) -> Response:
    return Response(
        _json.encode({"ts": encode_ts(deployment.executor.snapshot_ts())}),
        media_type="application/json",
    )


async def _query_at_ts(deployment: Deployment, request: Request) -> Response:
    body = await _body(request)
    try:
        raw_ts = body.get("ts")
        if not isinstance(raw_ts, str):
            raise TypeError("missing")
        ts = decode_ts(raw_ts)
    except (InvalidMessage, TypeError) as exc:
        raise HttpError(400, "BadRequest", f"`ts` must be a base64 u64 timestamp: {exc}") from exc
    if ts > deployment.executor.snapshot_ts():
        raise HttpError(400, "BadRequest", "`ts` is in the future")
    if ts < int(await deployment.persistence.get_global(PRUNED_THROUGH) or 0):
        raise HttpError(400, "OutOfRetention", "`ts` is older than the retention window")
    principal = await principal_of(deployment, request)
    spec = deployment.resolve(
        _path(body.get("path")), kind=FunctionKind.QUERY, is_admin=principal.is_admin
    )
    result = await deployment.executor.run_query(
        spec, _args(body.get("args")), ts=ts, identity=principal.identity, caller=Caller.HTTP
    )
    return result_response(result, _format(body.get("format"), default="clean"))


async def _query_batch(deployment: Deployment, request: Request) -> Response:
    body = await _body(request)
    queries = body.get("queries")
    if not isinstance(queries, list):
        raise HttpError(400, "BadRequest", "`queries` must be an array")
    ts = deployment.executor.snapshot_ts()
    principal = await principal_of(deployment, request)
    parts = []
    for item in queries:
        if not isinstance(item, dict):
            raise HttpError(400, "BadRequest", "each query must be an object")
        fmt = _format(item.get("format"), default="clean")
        try:
            spec = deployment.resolve(
                _path(item.get("path")), kind=FunctionKind.QUERY, is_admin=principal.is_admin
            )
        except FunctionNotFound as exc:
            parts.append(not_found_response(exc).body)
            continue
        result = await deployment.executor.run_query(
            spec, _args(item.get("args")), ts=ts, identity=principal.identity, caller=Caller.HTTP
        )
        parts.append(result_response(result, fmt).body)
    return Response(b'{"results":[' + b",".join(parts) + b"]}", media_type="application/json")


async def _require_admin(deployment: Deployment, request: Request) -> None:
    if not (await principal_of(deployment, request)).is_admin:
        raise HttpError(
            403,
            "BadAdminKey",
            "This needs the deployment's admin key (Authorization: Convex <admin key>)",
        )


async def _check_admin_key(deployment: Deployment, request: Request) -> Response:
    await _require_admin(deployment, request)
    return Response(
        _json.encode({"success": True, "allowedOps": ["Read", "Write"], "isReadOnly": False}),
        media_type="application/json",
    )


async def _env(deployment: Deployment, request: Request) -> Response:
    await _require_admin(deployment, request)
    if request.method == "POST":
        body = await _body(request)
        changes = body.get("changes")
        if not isinstance(changes, dict):
            raise HttpError(400, "BadRequest", "`changes` must be an object of name -> value|null")
        try:
            await deployment.set_env(changes)
        except ValidationError as exc:
            raise HttpError(400, "InvalidEnvironmentVariable", exc.message) from exc
    return Response(
        _json.encode({"env": deployment.env.user_values}), media_type="application/json"
    )


async def _update_environment_variables(deployment: Deployment, request: Request) -> Response:
    """``npx convex env set|remove``: ``{"changes": [{"name", "value": str | null}]}``, all
    applied at once (``Deployment.set_env``) or none."""
    await _require_admin(deployment, request)
    changes = (await _body(request)).get("changes")
    if not isinstance(changes, list):
        raise HttpError(400, "BadRequest", '`changes` must be an array of {"name", "value"}')
    updates: dict[str, str | None] = {}
    for change in changes:
        if not isinstance(change, dict) or not isinstance(change.get("name"), str):
            raise HttpError(
                400,
                "BadRequest",
                f'each change must be {{"name": string, "value": ...}}, got {repr(change)[:100]}',
            )
        value = change.get("value")
        if value is not None and not isinstance(value, str):
            raise HttpError(
                400, "BadRequest", f"the value of {change['name']} must be a string or null"
            )
        updates[change["name"]] = value
    try:
        await deployment.set_env(updates)
    except ValidationError as exc:
        raise HttpError(400, "InvalidEnvironmentVariable", exc.message) from exc
    return Response(b"{}", media_type="application/json")


async def _root(request: Request) -> Response:
    return PlainTextResponse("This Convex deployment is running. See https://docs.convex.dev/.")


async def _version(request: Request) -> Response:
    from reactor import __version__

    return PlainTextResponse(__version__)


async def _instance_name(request: Request) -> Response:
    return PlainTextResponse(request.app.state.deployment.instance_name)


async def _echo(request: Request) -> Response:
    # The client's bytes under the client's content type, on the API origin: never rendered
    # as a page that could run script there.
    return Response(
        await request.body(),
        media_type=request.headers.get("content-type"),
        headers={"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"},
    )


async def _debug_event(request: Request) -> Response:
    return Response(b"{}", media_type="application/json")


def routes() -> list[Route]:
    return [
        Route("/", _root, methods=["GET"]),
        Route("/version", _version, methods=["GET"]),
        Route("/instance_version", _version, methods=["GET"]),
        Route("/instance_name", _instance_name, methods=["GET"]),
        Route("/echo", _echo, methods=["POST"]),
        Route("/api/query", _handler(_kind_route(FunctionKind.QUERY)), methods=["GET", "POST"]),
        Route("/api/mutation", _handler(_kind_route(FunctionKind.MUTATION)), methods=["POST"]),
        Route("/api/action", _handler(_kind_route(FunctionKind.ACTION)), methods=["POST"]),
        Route("/api/function", _handler(_kind_route(None)), methods=["POST"]),
        Route("/api/query_ts", _handler(_query_ts), methods=["POST"]),
        Route("/api/query_at_ts", _handler(_query_at_ts), methods=["POST"]),
        Route("/api/query_batch", _handler(_query_batch), methods=["POST"]),
        Route("/api/run/{path:path}", _handler(_run), methods=["POST"]),
        Route("/api/debug_event", _debug_event, methods=["POST"]),
        Route("/api/check_admin_key", _handler(_check_admin_key), methods=["GET"]),
        Route("/api/admin/env", _handler(_env), methods=["GET", "POST"]),
        Route(
            "/api/update_environment_variables",
            _handler(_update_environment_variables),
            methods=["POST"],
        ),
    ]
