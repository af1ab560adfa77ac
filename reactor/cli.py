"""The ``reactor`` command line: ``serve`` and ``dev`` (serve, reloading functions on change).

Owns argument parsing, logging setup and running uvicorn; everything else is built by
``reactor.app``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from pathlib import Path

__all__ = ["main"]

log = logging.getLogger("reactor")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reactor", description="Reactor: a reactive backend")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "serve an app directory"),
        ("dev", "serve an app directory, reloading functions when its files change"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("app", help="the app directory (schema.py and function modules)")
        cmd.add_argument("--host", default="127.0.0.1", help="address to listen on")
        cmd.add_argument("--port", type=int, default=3210, help="API and websocket port")
        cmd.add_argument("--data", default=".reactor", help="data directory of the embedded engine")
        cmd.add_argument("--storage", default=None, help="storage URL (default: embedded SQLite)")
        cmd.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


async def _watch(services: object, directory: Path, interval_s: float = 0.5) -> None:
    from functions.loader import load_app

    def snapshot() -> dict[Path, float]:
        return {p: p.stat().st_mtime for p in directory.rglob("*.py") if p.is_file()}

    seen = snapshot()
    while True:
        await asyncio.sleep(interval_s)
        try:
            current = snapshot()
        except OSError:
            continue
        if current == seen:
            continue
        seen = current
        try:
            app = load_app(directory)
        except Exception as exc:  # keep serving the old functions until the files are fixed
            log.error("reload failed, still serving the previous functions: %s", exc)
            continue
        services.reload(app)  # type: ignore[attr-defined]


def _serve(args: argparse.Namespace, *, dev: bool) -> int:
    import uvicorn

    from functions.loader import load_app
    from reactor.app import create_app, open_storage
    from reactor.services import Services

    directory = Path(args.app).resolve()
    if not directory.is_dir():
        print(f"reactor: app directory {args.app!r} does not exist", file=sys.stderr)
        return 2
    try:
        app = load_app(directory)
        services = Services(app, open_storage(args.storage, args.data), dev=dev)
    except Exception as exc:
        print(f"reactor: cannot start: {exc}", file=sys.stderr)
        return 1
    application = create_app(app, services=services)
    config = uvicorn.Config(
        application,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ws_max_size=17 * 1024 * 1024,
        ws_ping_interval=20.0,
        ws_ping_timeout=60.0,
        lifespan="on",
        access_log=False,
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        watcher = asyncio.get_running_loop().create_task(_watch(services, directory)) if dev else None
        log.info(
            "Reactor serving %s on http://%s:%d (%d functions, storage: %s)",
            directory, args.host, args.port, len(app.registry),
            args.storage or Path(args.data).resolve(),
        )
        try:
            await server.serve()
        finally:
            if watcher is not None:
                watcher.cancel()

    # A server holds many long-lived objects (sessions, cached results): full collections of
    # all of them stall every client for up to a second. Collect young objects as usual, old
    # ones rarely, and keep what startup created out of the collector's way.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1_000)
    try:
        import uvloop
    except ImportError:
        asyncio.run(run())
    else:
        uvloop.run(run())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return _serve(args, dev=args.command == "dev")
