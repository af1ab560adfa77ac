"""A signed webhook: POST /webhooks/tasks with an HMAC-SHA256 of the body in X-Signature."""

import hashlib
import hmac
import json

from starlette.responses import JSONResponse

from functions import http_action
from functions.http_router import http_router

from . import tasks


@http_action
async def task_webhook(ctx, request):
    secret = ctx.env.get("WEBHOOK_SECRET")
    body = await request.body()
    expected = hmac.new((secret or "").encode(), body, hashlib.sha256).hexdigest()
    given = request.headers.get("x-signature", "")
    if not secret or not hmac.compare_digest(expected, given):
        return JSONResponse({"error": "bad signature"}, status_code=401)
    payload = json.loads(body)
    task_id = await ctx.run_mutation(
        tasks.add_for, {"owner": payload["owner"], "title": payload["title"]}
    )
    return JSONResponse({"taskId": task_id})


http = http_router()
http.route(path="/webhooks/tasks", method="POST", handler=task_webhook)
