"""HTTP actions of the auth app: the identity an `Authorization` header gives an HTTP action."""

import json

from starlette.responses import Response

from functions import http_action
from functions.http_router import http_router


@http_action
async def whoami(ctx, request):
    identity = await ctx.auth.get_user_identity()
    from_query = await ctx.run_query("whoami:me", {})
    return Response(
        json.dumps({"identity": identity, "viaRunQuery": from_query}),
        media_type="application/json",
    )


@http_action
async def echo_auth(ctx, request):
    """The header, the identity or the error reading it raised, and what a query run from here
    sees."""
    try:
        identity, error = await ctx.auth.get_user_identity(), None
    except Exception as exc:
        identity, error = None, f"{type(exc).__name__}: {exc}"
    from_query = await ctx.run_query("whoami:me", {})
    body = {
        "authorization": request.headers.get("authorization"),
        "identity": identity,
        "error": error,
        "viaRunQuery": from_query,
    }
    return Response(json.dumps(body), media_type="application/json")


http = http_router()
http.route(path="/whoami", method="GET", handler=whoami)
http.route(path="/echo-auth", method="GET", handler=echo_auth)
