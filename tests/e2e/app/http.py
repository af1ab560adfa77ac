"""HTTP actions of the shared end-to-end app (served on the server's --http-port).

Routes: an exact path, two nested path prefixes (the longest wins) plus an exact path inside a
prefix, a POST that writes through ``ctx.run_mutation``, a signed webhook (HMAC-SHA256 of the
raw body with the ``WEBHOOK_SECRET`` environment variable), a handler that crashes, and one
that echoes its ``Authorization`` header with the identity (or the error) ``ctx.auth`` gives.
"""

import hashlib
import hmac
import json

from starlette.responses import JSONResponse, PlainTextResponse, Response

from functions import http_action
from functions.http_router import http_router


@http_action
async def hello(ctx, request):
    return PlainTextResponse(
        "hello from an exact route",
        headers={"X-Route": "exact", "X-Query": request.query_params.get("q", "")},
    )


@http_action
async def files_prefix(ctx, request):
    return JSONResponse({"route": "/files/", "path": request.url.path})


@http_action
async def files_deep_prefix(ctx, request):
    return JSONResponse({"route": "/files/deep/", "path": request.url.path})


@http_action
async def files_exact(ctx, request):
    return JSONResponse({"route": "/files/deep/exact", "path": request.url.path})


@http_action
async def post_message(ctx, request):
    payload = await request.json()
    message_id = await ctx.run_mutation(
        "messages:send", {"channel": payload["channel"], "body": payload["body"]}
    )
    bodies = await ctx.run_query("messages:bodies", {"channel": payload["channel"]})
    return JSONResponse({"id": message_id, "bodies": bodies}, status_code=201)


@http_action
async def webhook(ctx, request):
    secret = ctx.env.get("WEBHOOK_SECRET")
    if not secret:
        return PlainTextResponse("WEBHOOK_SECRET is not set", status_code=500)
    body = await request.body()
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    given = request.headers.get("X-Signature", "")
    if not hmac.compare_digest(expected, given):
        return PlainTextResponse("invalid signature", status_code=401)
    event = json.loads(body)
    await ctx.run_mutation("messages:send", {"channel": event["channel"], "body": event["body"]})
    return JSONResponse({"received": event["id"]})


@http_action
async def crash(ctx, request):
    raise RuntimeError("http action exploded")


@http_action
async def echo_method(ctx, request):
    return Response(
        json.dumps({"method": request.method}).encode(),
        media_type="application/json",
        headers={"X-Method": request.method},
    )


@http_action
async def echo_auth(ctx, request):
    """A cron-secret style check: the handler, not Reactor, decides about the header."""
    try:
        identity = await ctx.auth.get_user_identity()
        error = None
    except Exception as exc:
        identity, error = None, f"{type(exc).__name__}: {exc}"
    return JSONResponse(
        {
            "authorization": request.headers.get("authorization"),
            "identity": identity,
            "error": error,
        }
    )


@http_action
async def read_identity(ctx, request):
    return JSONResponse({"identity": await ctx.auth.get_user_identity()})


http = http_router()
http.route(path="/hello", method="GET", handler=hello)
http.route(path_prefix="/files/", method="GET", handler=files_prefix)
http.route(path_prefix="/files/deep/", method="GET", handler=files_deep_prefix)
http.route(path="/files/deep/exact", method="GET", handler=files_exact)
http.route(path="/messages", method="POST", handler=post_message)
http.route(path="/webhook", method="POST", handler=webhook)
http.route(path="/crash", method="GET", handler=crash)
http.route(path="/method", method="PUT", handler=echo_method)
http.route(path="/method", method="DELETE", handler=echo_method)
http.route(path="/auth/echo", method="GET", handler=echo_auth)
http.route(path="/auth/identity", method="GET", handler=read_identity)
