"""The ``reactor`` command line.

    reactor serve APP [--port 3210 --http-port PORT+1 --data .reactor ...]
    reactor dev APP                      # the same, reloading functions when files change
    reactor run PATH '{"json": "args"}'  # any function, with the admin key
    reactor env set|get|list|remove ...  # deployment environment variables
    reactor rotate-admin-key             # a new admin key (the old one stops working)
    reactor export|import|backup ...     # snapshot ZIPs and backups (reactor.server.snapshot_cli)
    reactor codegen APP --out DIR [--python FILE] [--check]   # typed frontends
    reactor logs [--follow] [--function PATH --status success|failure ...]  # executions

``run`` and ``env`` talk to a running server (``--url``, admin key from ``--admin-key`` or
``REACTOR_ADMIN_KEY``) or, without ``--url``, open the local data directory directly (refused
while a server holds it). Owns argument parsing, logging and running uvicorn; the deployment
is a ``reactor.server.deployment.Deployment`` and the ASGI apps come from ``reactor.server.app``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from reactor.server.codegen_cli import (
    CodegenTargets,
    add_codegen_command,
    add_dev_options,
    run_codegen,
)
from schema.errors import SchemaDriftError

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
        cmd.add_argument("--host", help="address to listen on (default 127.0.0.1)")
        cmd.add_argument("--port", type=int, help="API and websocket port (default 3210)")
        cmd.add_argument(
            "--http-port",
            type=int,
            help="HTTP actions port, bound only when the app has http.py routes "
            "(default: --port + 1, i.e. 3211; 0: off)",
        )
        cmd.add_argument("--data", help="data directory of the embedded engine (default .reactor)")
        cmd.add_argument("--storage", help="storage URL (default: embedded SQLite)")
        cmd.add_argument("--public-url", help="origin clients reach the API at (for file URLs)")
        cmd.add_argument("--max-upload-bytes", type=int, help="file upload size limit")
        cmd.add_argument("--admin-key-file", help="where to write the admin key at first start")
        cmd.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
        cmd.add_argument(
            "--log-format",
            choices=["text", "json"],
            help="server log lines as text (default) or JSON, one per function execution too",
        )
        cmd.add_argument(
            "--metrics-public",
            action="store_true",
            default=None,
            help="serve GET /metrics without the admin key",
        )
        cmd.add_argument(
            "--query-runners", type=int, help="processes running queries and mutations"
        )
        cmd.add_argument(
            "--action-runners", type=int, help="processes running actions and HTTP actions"
        )
        cmd.add_argument(
            "--function-timeout", type=float, help="seconds a query or mutation may run (1)"
        )
        cmd.add_argument("--action-timeout", type=float, help="seconds an action may run (600)")
        cmd.add_argument(
            "--runner-memory-mb", type=int, help="memory cap of one runner process (1024; 0: none)"
        )
        if name == "dev":
            add_dev_options(cmd)  # reactor codegen on every reload

    def remote(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--url", help="a running server, e.g. http://127.0.0.1:3210")
        cmd.add_argument("--admin-key", help="admin key (default: $REACTOR_ADMIN_KEY)")
        cmd.add_argument("--data", default=".reactor", help="local data directory (without --url)")
        cmd.add_argument("--app", default=".", help="local app directory (without --url)")

    run = sub.add_parser("run", help="call any function (internal ones too) with the admin key")
    run.add_argument("path", help='function path, e.g. "tasks:add"')
    run.add_argument("args", nargs="?", default="{}", help="arguments as a JSON object")
    remote(run)
    rotate = sub.add_parser(
        "rotate-admin-key", help="replace the admin key (the server must be stopped)"
    )
    rotate.add_argument("--data", default=".reactor", help="local data directory")
    rotate.add_argument("--admin-key-file", help="write the new key here instead of printing it")
    env = sub.add_parser("env", help="deployment environment variables")
    env_sub = env.add_subparsers(dest="env_command", required=True)
    for name, arguments in (
        ("set", ("name", "value")),
        ("get", ("name",)),
        ("list", ()),
        ("remove", ("name",)),
    ):
        cmd = env_sub.add_parser(name)
        for argument in arguments:
            cmd.add_argument(argument)
        remote(cmd)
    from reactor.server.logs_cli import add_logs_parser

    add_logs_parser(sub)  # reactor logs (docs/operations.md, "Execution logs")
    add_codegen_command(sub)  # reactor codegen (docs/reference.md, "Code generation")
    from reactor.server.snapshot_cli import add_snapshot_commands

    add_snapshot_commands(sub)  # export, import, backup
    return parser


async def _watch(
    deployment: Any,
    directory: Path,
    interval_s: float = 0.5,
    after_reload: Callable[[Any], None] | None = None,
) -> None:
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
        if await deployment.reload_from_directory("files changed") and after_reload is not None:
            after_reload(deployment.app)


def _announce_admin_key(key: str, key_file: Path | None) -> None:
    if key_file is not None:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        log.warning("admin key created and written to %s (it is stored only hashed)", key_file)
    else:
        print(
            f"\nAdmin key (shown once, stored only hashed; keep it to run internal functions):\n"
            f"  {key}\n",
            file=sys.stderr,
            flush=True,
        )


def _stored_env(storage: str | None, data: Path, system_env: dict[str, str]) -> Any:
    """The deployment's stored environment variables, read before its app is loaded (module
    code and ``auth_config.py`` read them through ``functions.env``), over a short-lived
    connection of its own: the deployment's storage belongs to the server's event loop."""
    from reactor.server.deployment import stored_env
    from reactor.storage import open_storage

    async def read() -> Any:
        persistence = open_storage(storage, data)
        try:
            return await stored_env(persistence, system_env)
        finally:
            await persistence.aclose()

    return asyncio.run(read())


def _serve(args: argparse.Namespace, *, dev: bool) -> int:
    import uvicorn

    from functions.manifest import app_from_manifest
    from reactor.core.tasks import start_task
    from reactor.engine.execution_log import LogFormat
    from reactor.runners.pool import RunnerSetup, probe_app
    from reactor.server.app import create_app
    from reactor.server.dashboard import dashboard_url
    from reactor.server.deployment import Deployment
    from reactor.server.http_actions import create_site_app
    from reactor.server.settings import SettingsError, load_settings
    from reactor.server.ws_protocol import LeanWebSocketProtocol
    from reactor.storage import open_storage

    try:
        settings = load_settings(
            host=args.host,
            port=args.port,
            http_port=args.http_port,
            data=args.data,
            storage=args.storage,
            public_url=args.public_url,
            max_upload_bytes=args.max_upload_bytes,
            admin_key_file=args.admin_key_file,
            log_level=args.log_level,
            log_format=args.log_format,
            metrics_public=args.metrics_public,
            query_runners=args.query_runners,
            action_runners=args.action_runners,
            function_timeout_s=args.function_timeout,
            action_timeout_s=args.action_timeout,
            runner_memory_mb=args.runner_memory_mb,
        )
    except SettingsError as exc:
        print(f"reactor: {exc}", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(settings.log_level.upper())
    if settings.log_format == "json":
        from reactor.core.log_format import use_json_logging

        use_json_logging()
        os.environ["REACTOR_LOG_FORMAT"] = "json"  # the function runners' logs too
    directory = Path(args.app).resolve()
    if not directory.is_dir():
        print(f"reactor: app directory {args.app!r} does not exist", file=sys.stderr)
        return 2
    try:
        env = _stored_env(settings.storage, Path(settings.data), settings.system_env)
        runners = settings.runner_settings()
        # The app's code runs only in runners: one loads it and describes it (a manifest);
        # if it fails or hangs, the server reports it.
        manifest = asyncio.run(probe_app(RunnerSetup.probing(directory, env), runners))
        app = app_from_manifest(directory, manifest)
        persistence = open_storage(settings.storage, settings.data)
        deployment = Deployment(
            app,
            persistence,
            env=env,
            dev=dev,
            public_url=settings.origin,
            max_upload_bytes=settings.max_upload_bytes,
            system_env=settings.system_env,
            # A networked engine has no directory: file bytes stay on this machine, under --data.
            blob_directory=(
                None if persistence.local_directory is not None else Path(settings.data) / "blobs"
            ),
            on_admin_key=lambda key: _announce_admin_key(key, settings.admin_key_file),
            runners=runners,
            log_format=LogFormat(settings.log_format),
            metrics_public=settings.metrics_public,
        )
    except Exception as exc:
        print(f"reactor: cannot start: {exc}", file=sys.stderr)
        return 1
    application = create_app(
        app,
        deployment=deployment,
        body_limits=settings.body_limits,
        sync_limits=settings.sync_limits,
    )

    # JSON lines: uvicorn's own loggers go through the root logger's JSON handler.
    log_config: Any = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG

    def config(asgi: Any, port: int, lifespan: Literal["on", "off"]) -> uvicorn.Config:
        return uvicorn.Config(
            asgi,
            log_config=log_config,
            host=settings.host,
            port=port,
            lifespan=lifespan,
            log_level=settings.log_level,
            access_log=False,
            ws_max_size=17 * 1024 * 1024,
            ws=LeanWebSocketProtocol,  # uvicorn's, lighter per idle connection
            ws_ping_interval=20.0,
            ws_ping_timeout=60.0,
        )

    server = uvicorn.Server(config(application, settings.port, "on"))
    servers = [server]

    def http_actions_state() -> str:
        if settings.site_origin is None:
            return "off"
        if deployment.http_router is not None:
            return settings.site_origin
        if dev:
            return f"none yet: {settings.site_origin} once http.py has routes"
        return "none: no http.py routes"

    async def run() -> None:
        # Before serving: the lifespan's start would check too, but fail inside uvicorn.
        await deployment.check_schema()
        codegen = CodegenTargets(args.codegen_out, args.codegen_python) if dev else None
        if codegen:
            codegen.regenerate(app)
        watcher = (
            start_task(
                _watch(deployment, directory, after_reload=codegen.regenerate if codegen else None),
                name="reload watcher",
            )
            if dev
            else None
        )
        log.info(
            "Reactor serving %s on %s (HTTP actions: %s; %d functions; storage: %s)",
            directory,
            settings.origin,
            http_actions_state(),
            len(app.registry),
            settings.storage or settings.data.resolve(),
        )
        log.info("dashboard: %s", dashboard_url(settings.origin))  # docs/dashboard.md

        async def serve(this: uvicorn.Server) -> None:
            # uvicorn's signal handlers reach only one of two servers: whichever stops first
            # stops the other.
            try:
                await this.serve()
            finally:
                for other in servers:
                    other.should_exit = True

        async def serve_site() -> None:
            # The HTTP-actions port is bound only while the app has routes: at start, or (with
            # `reactor dev`) once a reload brings an http.py with routes.
            late = deployment.http_router is None
            while deployment.http_router is None:
                if not dev or server.should_exit:
                    return
                await asyncio.sleep(0.25)
            site = uvicorn.Server(
                config(
                    create_site_app(deployment, body_limits=settings.body_limits),
                    settings.http_port,
                    "off",
                )
            )
            servers.append(site)
            if server.should_exit:
                return
            if late:
                log.info("http.py has routes now: HTTP actions served on %s", settings.site_origin)
            await serve(site)

        async def end_long_polls() -> None:
            # uvicorn waits for running requests before it stops: log long polls answer now.
            while not server.should_exit:
                await asyncio.sleep(0.1)
            deployment.execution_log.close()

        tasks = [serve(server), end_long_polls()]
        if settings.http_port:
            tasks.append(serve_site())
        try:
            await asyncio.gather(*tasks)
        finally:
            if watcher is not None:
                watcher.cancel()

    # A server holds many long-lived objects (sessions, cached results): full collections of
    # all of them stall every client for up to a second. Collect young objects as usual, old
    # ones rarely, and keep what startup created out of the collector's way.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1_000)
    from reactor.core.determinism import loop_factory

    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(run())
    except KeyboardInterrupt:
        return 130
    except SchemaDriftError as exc:
        print(f"reactor: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


# -- run and env ------------------------------------------------------------------------------


def _admin_key(args: argparse.Namespace) -> str:
    key = args.admin_key or os.environ.get("REACTOR_ADMIN_KEY")
    if not key:
        raise SystemExit("reactor: an admin key is needed: --admin-key or $REACTOR_ADMIN_KEY")
    return key


def _remote(args: argparse.Namespace, method: str, route: str, body: Any = None) -> Any:
    import httpx

    response = httpx.request(
        method,
        args.url.rstrip("/") + route,
        json=body,
        headers={"Authorization": f"Convex {_admin_key(args)}"},
        timeout=60,
    )
    payload = response.json()
    if response.status_code >= 400:
        raise SystemExit(f"reactor: {payload.get('code')}: {payload.get('message')}")
    return payload


async def _local(args: argparse.Namespace, work: Any) -> Any:
    from reactor.server.deployment import Deployment
    from reactor.server.settings import load_settings
    from reactor.storage import open_storage

    persistence = open_storage(None, args.data)
    system_env = load_settings().system_env
    try:
        deployment = await Deployment.from_directory(
            Path(args.app).resolve(),
            persistence,
            system_env=system_env,
            on_admin_key=lambda key: _announce_admin_key(key, None),
        )
    except BaseException:
        await persistence.aclose()
        raise
    await deployment.start(background=False)
    try:
        return await work(deployment)
    finally:
        await deployment.stop()


def _run(args: argparse.Namespace) -> int:
    try:
        call_args = json.loads(args.args)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"reactor: the arguments are not valid JSON: {exc}") from None
    if not isinstance(call_args, dict):
        raise SystemExit("reactor: the arguments must be a JSON object")
    if args.url:
        payload = _remote(
            args, "POST", "/api/function", {"path": args.path, "args": call_args, "format": "json"}
        )
    else:
        from reactor.server.http_api import result_json
        from schema.values import json_to_convex

        async def work(deployment: Any) -> Any:
            spec = deployment.resolve(args.path, kind=None, is_admin=True)
            result = await deployment.executor.run(spec, json_to_convex(call_args))
            return result_json(result, "clean")

        payload = asyncio.run(_local(args, work))
    if payload.get("status") == "success":
        print(json.dumps(payload.get("value"), indent=2))
        return 0
    print(json.dumps(payload, indent=2), file=sys.stderr)
    return 1


def _rotate(args: argparse.Namespace) -> int:
    from reactor.auth.authenticator import Authenticator
    from reactor.storage import open_storage

    async def rotate() -> str:
        persistence = open_storage(None, args.data)
        try:
            return await Authenticator([], persistence).rotate_admin_key()
        finally:
            await persistence.aclose()

    key = asyncio.run(rotate())
    _announce_admin_key(key, Path(args.admin_key_file) if args.admin_key_file else None)
    return 0


def _env(args: argparse.Namespace) -> int:
    command = args.env_command
    changes: dict[str, str | None] = {}
    if command == "set":
        changes = {args.name: args.value}
    elif command == "remove":
        changes = {args.name: None}
    if args.url:
        if changes:
            values = _remote(args, "POST", "/api/admin/env", {"changes": changes})["env"]
        else:
            values = _remote(args, "GET", "/api/admin/env")["env"]
    else:

        async def work(deployment: Any) -> dict[str, str]:
            env = await deployment.set_env(changes) if changes else deployment.env
            values: dict[str, str] = env.user_values
            return values

        values = asyncio.run(_local(args, work))
    if command == "get":
        if args.name not in values:
            print(f"reactor: {args.name} is not set", file=sys.stderr)
            return 1
        print(values[args.name])
    elif command == "list":
        for name, value in sorted(values.items()):
            print(f"{name}={value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.command in ("serve", "dev") else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command in ("serve", "dev"):
        return _serve(args, dev=args.command == "dev")
    from reactor.server.settings import SettingsError

    try:
        if args.command == "run":
            return _run(args)
        if args.command == "rotate-admin-key":
            return _rotate(args)
        if args.command in ("export", "import", "backup"):
            from reactor.server.snapshot_cli import run_snapshot_command

            return run_snapshot_command(args)
        if args.command == "codegen":
            return run_codegen(args)
        if args.command == "logs":
            from reactor.server.logs_cli import run_logs

            return run_logs(args)
        return _env(args)
    except (SettingsError, OSError) as exc:
        print(f"reactor: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from schema.errors import ReactorError

        if isinstance(exc, ReactorError):
            print(f"reactor: {exc}", file=sys.stderr)
            return 1
        raise
