"""One HTTP action, to show HTTP actions leave execution records too."""

from starlette.responses import PlainTextResponse

from functions import http_action
from functions.http_router import http_router


@http_action
async def ping(ctx, request):
    print("pinged")
    return PlainTextResponse("pong")


http = http_router()
http.route(path="/ping", method="GET", handler=ping)
