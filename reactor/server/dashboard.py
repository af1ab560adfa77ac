"""Serving the dashboard: its static files at ``/dashboard/`` on the API port.

Owns the routes of the dashboard's shell (HTML, JS, CSS and the vendored ``convex`` browser
client shipped in ``reactor/server/dashboard_static``) and the security headers they carry.
The shell holds no data and no key: everything it shows it reads as a client of the deployment
(admin-only system functions over the sync websocket, admin HTTP routes), so serving it needs
no key, and every call it makes is checked where it lands. It does not implement those
functions (``reactor.operations.dashboard_functions``).
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DASHBOARD_PATH", "STATIC_DIRECTORY", "dashboard_routes", "dashboard_url"]

DASHBOARD_PATH = "/dashboard/"
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
STATIC_DIRECTORY = Path(__file__).resolve().parent / "dashboard_static"

# Scripts, styles and connections only from this origin (the websocket too: CSP3 "'self'"
# covers ws:/wss: of the same host in Chromium and Firefox, the explicit sources older
# engines); no inline script, never framed (clickjacking an admin), no referrer leaves it.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'{ws}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)


def dashboard_url(origin: str) -> str:
    """The dashboard's address for a deployment served at ``origin`` (``http://host:port``)."""
    return origin.rstrip("/") + DASHBOARD_PATH


class _Secured:
    """Adds the dashboard's security and caching headers to every response of ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = ""
        for name, value in scope.get("headers", []):
            if name == b"host":
                host = value.decode("latin-1")
        # Only a well-formed host[:port] goes into the policy (a crafted Host must not add
        # directives to it).
        ws = f" ws://{host} wss://{host}" if _HOST.fullmatch(host) else ""

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", _CSP.format(ws=ws).encode("latin-1")),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    # The shell is small; an upgrade must never leave a stale script running
                    # against a newer server.
                    (b"cache-control", b"no-cache"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, secured)


async def _to_slash(request: Request) -> Response:
    return RedirectResponse(DASHBOARD_PATH, status_code=308)


def dashboard_routes(directory: Path = STATIC_DIRECTORY) -> list[BaseRoute]:
    """``GET /dashboard`` (redirects to ``/dashboard/``) and the static files under it
    (``index.html`` for the folder itself).

    Raises:
        RuntimeError: ``directory`` does not exist (a broken installation).
    """
    static = StaticFiles(directory=directory, html=True, check_dir=True)
    return [
        Route("/dashboard", _to_slash, methods=["GET", "HEAD"]),
        Mount("/dashboard", app=_Secured(static), name="dashboard"),
    ]
