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


http = http_router()
http.route(path="/whoami", method="GET", handler=whoami)
