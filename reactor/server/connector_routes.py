"""HTTP routes of streaming export for connectors: ``GET /api/json_schemas``,
``/api/list_snapshot`` and ``/api/document_deltas`` (also POST with a JSON body, as Convex
accepts), behind the admin key.

Owns parsing the query parameters (``snapshot``, ``cursor``, ``tableName``, ``format``,
``deltaSchema``, and Reactor's ``pageSize``) and the error answers (``{code, message}`` with
400, 401 or 403). The pages themselves are ``reactor.operations.streaming_export``'s.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reactor.errors import StreamingExportError
from reactor.operations import streaming_export
from reactor.operations.cli_functions import table_names
from reactor.server.deployment import Deployment
from reactor.server.http_errors import HttpError, error_response, require_admin

__all__ = ["connector_routes"]

log = logging.getLogger("reactor.http")

_json = msgspec.json.Encoder()


async def _arguments(request: Request) -> Mapping[str, Any]:
    if request.method == "GET":
        return request.query_params
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        message = f"Failed to parse the request body as JSON: {exc}"
        raise HttpError(400, "BadJsonBody", message) from exc
    if not isinstance(body, dict):
        raise HttpError(400, "BadJsonBody", "The request body must be a JSON object")
    return body


def _int(args: Mapping[str, Any], name: str) -> int | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise HttpError(400, "BadRequest", f"`{name}` must be an integer, got {raw!r}"[:200])
    try:
        return int(raw)
    except ValueError as exc:
        message = f"`{name}` must be an integer, got {raw!r}"[:200]
        raise HttpError(400, "BadRequest", message) from exc


def _str(args: Mapping[str, Any], name: str) -> str | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise HttpError(400, "BadRequest", f"`{name}` must be a string, got {raw!r}"[:200])
    return raw


def _bool(args: Mapping[str, Any], name: str) -> bool:
    raw = args.get(name)
    if raw is None or raw is False or raw in ("", "false", "0"):
        return False
    if raw is True or raw in ("true", "1"):
        return True
    raise HttpError(400, "BadRequest", f"`{name}` must be true or false, got {raw!r}"[:200])


def _route(
    handle: Callable[[Deployment, Mapping[str, Any]], Awaitable[dict[str, Any]]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        deployment: Deployment = request.app.state.deployment
        try:
            await require_admin(deployment, request)
            body = await handle(deployment, await _arguments(request))
        except HttpError as exc:
            log.info("HTTP %s %s: %s %s", request.method, request.url.path, exc.status, exc.code)
            return error_response(exc.status, exc.code, exc.message)
        except StreamingExportError as exc:
            log.info("HTTP %s %s: 400 %s", request.method, request.url.path, exc.reason)
            return error_response(400, exc.reason, exc.message)
        return Response(_json.encode(body), media_type="application/json")

    return endpoint


async def _json_schemas(deployment: Deployment, args: Mapping[str, Any]) -> dict[str, Any]:
    return streaming_export.json_schemas(
        table_names(deployment),
        deployment.served.schema,
        delta_schema=_bool(args, "deltaSchema"),
        fmt=streaming_export.parse_format(_str(args, "format")),
    )


async def _list_snapshot(deployment: Deployment, args: Mapping[str, Any]) -> dict[str, Any]:
    page = await streaming_export.list_snapshot(
        deployment.persistence,
        table_names(deployment),
        published=deployment.executor.snapshot_ts(),
        snapshot=_int(args, "snapshot"),
        cursor=_str(args, "cursor"),
        table=_str(args, "tableName"),
        fmt=streaming_export.parse_format(_str(args, "format")),
        page_size=_int(args, "pageSize"),
    )
    return page.to_json()


async def _document_deltas(deployment: Deployment, args: Mapping[str, Any]) -> dict[str, Any]:
    page = await streaming_export.document_deltas(
        deployment.persistence,
        table_names(deployment),
        published=deployment.executor.snapshot_ts(),
        cursor=_int(args, "cursor"),
        table=_str(args, "tableName"),
        fmt=streaming_export.parse_format(_str(args, "format")),
        page_size=_int(args, "pageSize"),
    )
    return page.to_json()


def connector_routes() -> list[Route]:
    return [
        Route("/api/json_schemas", _route(_json_schemas), methods=["GET"]),
        Route("/api/list_snapshot", _route(_list_snapshot), methods=["GET", "POST"]),
        Route("/api/document_deltas", _route(_document_deltas), methods=["GET", "POST"]),
    ]
