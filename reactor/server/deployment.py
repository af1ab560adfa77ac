"""The composition root: one running deployment, built from its parts.

Owns construction (every part gets its collaborators as constructor arguments, in dependency
order: storage, change feed and committer, database, platform features, executor, query cache),
the start and stop order, and swapping in reloaded code (``reactor dev``). The CLI,
``reactor.testing``, the bench and the tests all build a ``Deployment`` the same way;
transports (HTTP routes, the websocket endpoint) receive one and never build parts themselves.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from functions import deployment_env
from functions.decorators import FunctionKind, FunctionSpec
from functions.http_router import HttpRouter, load_http_router
from functions.loader import App, load_app
from functions.manifest import app_from_manifest
from functions.registry import Registry
from reactor.auth import parse_authorization
from reactor.auth.authenticator import Authenticator, Principal, load_providers
from reactor.core.persistence import Persistence, PublishedCommit
from reactor.core.runtime import Runtime, SystemRuntime
from reactor.core.system_tables import TableRegistry
from reactor.core.tasks import start_task
from reactor.core.write_log import WriteLog
from reactor.engine.backfill import backfill_indexes
from reactor.engine.committer import Committer
from reactor.engine.database import Database
from reactor.engine.execution_log import DEFAULT_CAPACITY, ExecutionLog, LogFormat
from reactor.engine.executor import Executor
from reactor.engine.feed import Publisher
from reactor.engine.invocation import Invoker
from reactor.engine.query_cache import Entry, LiveQueries
from reactor.engine.runner import FunctionRunner
from reactor.engine.schema_check import check_stored_documents
from reactor.engine.served_app import ServedApp
from reactor.engine.subscriptions import SubscriptionManager
from reactor.engine.transaction import SYSTEM_INDEXES, Transaction
from reactor.operations import cli_functions, dashboard_functions, snapshot_functions
from reactor.operations.snapshot_jobs import SnapshotJobs
from reactor.operations.system_functions import SystemFunctions, SystemRouter, is_system_path
from reactor.platform.blobs import BlobStore
from reactor.platform.crons import CronRunner, load_crons
from reactor.platform.env_vars import EnvironmentVariables
from reactor.platform.files import FileStorage
from reactor.platform.leases import DEFAULT_TTL_S, Leadership
from reactor.platform.retention import RETENTION_S, Retention
from reactor.platform.scheduler import JobHooks, JobWorker, Scheduler
from reactor.runners.pool import RunnerPools, RunnerSettings, RunnerSetup, probe_app
from reactor.server.metrics import DeploymentMetrics
from reactor.server.outcomes import outcome_of
from schema.errors import SchemaDriftError

__all__ = ["SCHEDULER_LEASE", "Deployment", "load_app_with_env", "stored_env"]

log = logging.getLogger("reactor.server.deployment")

# The lease whose holder runs the scheduler and crons for every process sharing the database.
SCHEDULER_LEASE = "scheduler"
ENV_GLOBAL = "env"


async def stored_env(
    persistence: Persistence, system_env: Mapping[str, str] | None = None
) -> EnvironmentVariables:
    """The deployment's stored environment variables (plus the system ones), read before the
    app is loaded so that its module-level code sees them (``load_app_with_env``)."""
    stored = await persistence.get_global(ENV_GLOBAL) or {}
    return EnvironmentVariables(stored, system=dict(system_env or {}))


def load_app_with_env(directory: str | Path, env: Mapping[str, str]) -> App:
    """``load_app(directory)`` with ``functions.env`` reading ``env`` while the modules run
    (Convex evaluates ``auth.config.ts`` and module code with the deployment's variables)."""
    with deployment_env.using(env):
        return load_app(directory)


def _blob_directory(persistence: Persistence, given: str | Path | None) -> Path:
    if given is not None:
        return Path(given)
    local = persistence.local_directory
    if local is None:
        raise ValueError("blob_directory is required for a storage engine without a directory")
    return local / "blobs"


class Deployment:
    def __init__(
        self,
        app: App,
        persistence: Persistence,
        *,
        runtime: Runtime | None = None,
        dev: bool = False,
        instance_name: str | None = None,
        system_env: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        public_url: str = "http://127.0.0.1:3210",
        blob_directory: str | Path | None = None,
        max_upload_bytes: int | None = 1 << 30,
        lease_ttl_s: float = DEFAULT_TTL_S,
        retention_s: float = RETENTION_S,
        on_admin_key: Callable[[str], None] | None = None,
        runners: RunnerSettings | None = None,
        log_format: LogFormat = LogFormat.TEXT,
        execution_log_capacity: int = DEFAULT_CAPACITY,
        metrics_public: bool = False,
    ) -> None:
        self.persistence = persistence
        self.runtime = runtime or SystemRuntime()
        self.dev = dev
        self.instance_name = instance_name or f"reactor-{secrets.token_hex(3)}"
        self.served = ServedApp(app)
        self._system_env = dict(system_env or {})
        self._on_admin_key = on_admin_key
        # The stored variables the app was loaded with (``stored_env``); re-read in start().
        self.env = EnvironmentVariables(
            {k: v for k, v in (env or {}).items() if k not in self._system_env},
            system=self._system_env,
        )

        # Storage, the change feed and the committer.
        self.tables = TableRegistry(persistence.table_numbers())
        self._number_tables(app)
        self.write_log = WriteLog()
        self.publisher = Publisher(
            self.write_log, published_ts=persistence.max_ts(), runtime=self.runtime
        )
        self.feed = persistence.open_feed(
            self.publisher,
            indexes=lambda table: self.table_indexes().get(table, {}),
            checkpoint_key=f"resume:{self.instance_name}",
        )
        self.committer = Committer(
            persistence,
            self.write_log,
            self.tables,
            self.publisher,
            self.feed,
            runtime=self.runtime,
        )
        self.database = Database(
            persistence, self.committer, self.tables, self.served, runtime=self.runtime
        )

        # Platform features a function's context reaches.
        self.scheduler = Scheduler(self.database, self.served)
        self.blobs = BlobStore(
            _blob_directory(persistence, blob_directory), max_bytes=max_upload_bytes
        )
        self.files = FileStorage(self.database, self.blobs, base_url=public_url)
        # Snapshot export and import jobs (reactor.operations.snapshot_jobs), beside the blobs.
        self.snapshots = SnapshotJobs(self, self.blobs.directory.parent)

        # Running functions (on the runners, or here), and the query cache of live queries.
        def begin(ts: int, writable: bool, journal: str | None) -> Transaction:
            return self.database.begin(ts, writable=writable, journal=journal)

        self.invoker = Invoker(
            registry=lambda: self.served.registry,
            begin=begin,
            env=lambda: self.env,
            scheduler=self.scheduler.handle,
            storage=self.files.handle,
            job_hooks=lambda job_id: JobHooks(job_id, self.database.now_ms),
            http_router=lambda: self.http_router,
            dev=dev,
        )
        # Served deployments run app code in runner processes; without ``runners`` (tests,
        # embedding) it runs here, in this process and event loop.
        self.pools: RunnerPools | None = None
        self.runner: FunctionRunner = self.invoker
        if runners is not None:
            self.pools = RunnerPools(
                RunnerSetup(
                    directory=app.directory,
                    storage=persistence.reader_url,
                    env=lambda: self.env,
                    tables=self.tables,
                    dev=dev,
                    blob_directory=str(self.blobs.directory),
                    secret=lambda: self.files.secret_hex,
                    base_url=lambda: self.files.base_url,
                    last_commit=lambda: self.publisher.last_commit_ts,
                ),
                runners,
            )
            self.runner = self.pools
        # System functions (``_system/...``, admin key only) run here, never on the runners.
        self.system_functions = self._system_functions()
        self.system_invoker = Invoker(
            registry=lambda: self.system_functions.registry,
            begin=begin,
            env=lambda: self.env,
            scheduler=self.scheduler.handle,
            storage=self.files.handle,
            dev=dev,
        )
        self.runner = SystemRouter(self.runner, self.system_invoker)
        # Observability: every execution's record (reactor.engine.execution_log), metrics.
        self.execution_log = ExecutionLog(capacity=execution_log_capacity, log_format=log_format)
        self.metrics = DeploymentMetrics(self)
        self.metrics_public = metrics_public
        self.started = False  # serving: started and not stopping (GET /ready)
        self.execution_log.subscribe(self.metrics.on_execution)
        self.executor = Executor(
            self.database,
            self.runner,
            scheduler=self.scheduler.handle,
            storage=self.files.handle,
            dev=dev,
            on_execution=self.execution_log.add,
        )
        self.subscriptions: SubscriptionManager[Entry] = SubscriptionManager(
            self.write_log, processed_ts=self.publisher.published_ts
        )
        self.query_cache = LiveQueries(self.executor, self.subscriptions, encode=outcome_of)

        # Background work: scheduled jobs and crons (under the lease), retention.
        self.jobs = JobWorker(
            self.scheduler, self.executor, is_cron=lambda job_id: self.crons.is_cron_job(job_id)
        )
        with deployment_env.using(self.env):
            self.crons: CronRunner = CronRunner(self.scheduler, load_crons(app))
        self.retention = Retention(self.database, self.scheduler, retention_s=retention_s)
        self.leadership = Leadership(
            persistence,
            SCHEDULER_LEASE,
            f"{self.instance_name}-{secrets.token_hex(4)}",
            on_gain=self._start_jobs,
            on_lose=self._stop_jobs,
            ttl_s=lease_ttl_s,
            runtime=self.runtime,
        )
        with deployment_env.using(self.env):
            self.auth = Authenticator(load_providers(app), persistence)
            self.http_router: HttpRouter | None = load_http_router(app)

        self.publisher.subscribe(
            self.query_cache.on_commit, invalidate_all=self.query_cache.invalidate_all
        )
        self.committer.on_written(self.query_cache.on_written)
        self.publisher.subscribe(self.jobs.on_commit)
        self.publisher.subscribe(self.files.on_commit)
        self.publisher.subscribe(self.metrics.on_commit)
        self._tables_seen = self.tables.generation
        self.publisher.subscribe(self._on_new_tables)
        self._background = False

    @classmethod
    async def from_directory(
        cls, directory: str | Path, persistence: Persistence, **options: Any
    ) -> Deployment:
        """The deployment of the app in ``directory``, loaded with the stored environment
        variables in force (``stored_env``, ``load_app_with_env``); ``options`` are the
        constructor's. With ``runners``, a runner loads the app and the deployment knows it
        from its manifest, as under ``reactor serve``.

        Raises:
            AppLoadFailed: with ``runners``, the app does not load in a runner.
        """
        env = await stored_env(persistence, options.get("system_env"))
        runners = options.get("runners")
        if runners is None:
            app = load_app_with_env(directory, env)
        else:
            manifest = await probe_app(RunnerSetup.probing(Path(directory), env), runners)
            app = app_from_manifest(directory, manifest)
        return cls(app, persistence, env=env, **options)

    def _system_functions(self) -> SystemFunctions:
        """The built-in ``_system/`` functions: every module that registers some is listed
        here (see ``reactor.operations.system_functions`` for how to add one)."""
        functions = SystemFunctions()
        cli_functions.register(functions, self)  # npx convex data / env
        dashboard_functions.register(functions, self)  # the dashboard (/dashboard/)
        snapshot_functions.register(functions, self)  # npx convex export / import
        return functions

    def _on_new_tables(self, commit: PublishedCommit) -> None:
        """A commit that created a table re-runs the live queries: the system queries that
        list tables (``_system/cli/tables``, the dashboard's) read no document it wrote."""
        if self.tables.generation != self._tables_seen:
            self._tables_seen = self.tables.generation
            self.query_cache.invalidate_all()

    def snapshots_changed(self) -> None:
        """An export or import job changed state: re-run live queries (the CLI follows its
        job through a live ``_system/cli/*`` query)."""
        self.query_cache.invalidate_all()

    # -- what transports read ----------------------------------------------------------------

    @property
    def app(self) -> App:
        return self.served.app

    @property
    def registry(self) -> Registry:
        return self.served.registry

    def resolve(self, path: str, *, kind: FunctionKind | None, is_admin: bool) -> FunctionSpec:
        """The function a caller of a transport named: a system function (``_system/...``,
        only with the admin key) or one of the app's (internal ones only with the admin key).

        Raises:
            FunctionNotFound: no such function for this caller, or not of ``kind``.
        """
        if is_system_path(path):
            return self.system_functions.resolve(path, kind=kind, is_admin=is_admin)
        return self.registry.resolve(path, kind=kind, allow_internal=is_admin)

    def table_indexes(self) -> dict[str, dict[str, Sequence[str]]]:
        """Every table's indexes (schema and system tables), ``by_id``/``by_creation_time``
        left implicit."""
        out: dict[str, dict[str, Sequence[str]]] = {
            table: dict(indexes) for table, indexes in SYSTEM_INDEXES.items()
        }
        schema = self.served.schema
        if schema is not None:
            for table, definition in schema.tables.items():
                out[table] = {name: tuple(fields) for name, fields in definition.indexes.items()}
        return out

    async def principal_for_http(self, request: Any) -> Principal:
        """The caller of an HTTP request, from ``Authorization`` (or ``?adminKey=``).

        Raises:
            AuthenticationError: a token or admin key was given and is invalid.
        """
        credentials = parse_authorization(
            request.headers.get("authorization"),
            admin_key_param=request.query_params.get("adminKey"),
        )
        client = request.client
        return await self.auth.authenticate(
            credentials, peer=None if client is None else client.host
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, background: bool = True) -> None:
        """Start the deployment. ``background=False`` (one-off CLI commands) runs no scheduled
        jobs, crons or maintenance: a short-lived process must not start work it cannot finish.

        Scheduled jobs and crons run only in the process holding the ``scheduler`` lease; a lone
        process takes it before this returns.
        """
        await self.reload_env()
        new_admin_key = await self.auth.ensure_admin_key()
        if new_admin_key is not None and self._on_admin_key is not None:
            self._on_admin_key(new_admin_key)  # at once: a failed start must not lose it
        await self.persistence.prepare(self.table_indexes())
        await self.check_schema()
        await self.files.start()
        self.feed.start()
        self.committer.start()
        await backfill_indexes(self.persistence, self.committer, self.served.schema)
        if self.pools is not None:
            await self.pools.start()  # AppLoadFailed: the app does not load in a runner
        self.query_cache.start()
        self.started = True
        self._background = background
        if background:
            self.retention.start()
            await self.leadership.start()
        elif self.persistence.single_process:
            # No other process can be running these jobs: the ones left inProgress were cut off.
            await self.scheduler.recover()

    async def check_schema(self, app: App | None = None) -> None:
        """Refuse a schema that stored documents break, as Convex's push does: check the
        documents of every table whose validator changed since the last successful check (of
        the served app, or of ``app`` before a reload swaps it in). Off with
        ``define_schema(..., schema_validation=False)``.

        Raises:
            SchemaDriftError: names the table, a document id and the path at fault.
        """
        schema = (app or self.app).schema
        ts = self.publisher.published_ts
        await check_stored_documents(self.persistence, schema, ts, self.tables.table_of_id)

    async def stop(self) -> None:
        self.started = False
        await self.retention.stop()
        await self.snapshots.stop()
        await self.files.stop()
        if self._background:
            await self.leadership.stop()
        await self._stop_jobs()  # already stopped by the leadership; a cron reload may race it
        await self.query_cache.stop()
        if self.pools is not None:
            await self.pools.stop()
        await self.feed.stop()
        await self.committer.stop()
        await self.auth.aclose()
        await self.persistence.aclose()

    async def _start_jobs(self) -> None:
        await self.jobs.start()  # recovers jobs a crashed leader left inProgress first
        await self.crons.start()

    async def _stop_jobs(self) -> None:
        await self.crons.stop()
        await self.jobs.stop()

    # -- environment variables ---------------------------------------------------------------

    async def reload_env(self) -> None:
        """Read the stored environment variables (another process may have set them)."""
        self.env = await stored_env(self.persistence, self._system_env)

    async def set_env(self, changes: dict[str, str | None]) -> EnvironmentVariables:
        """Change environment variables durably; live queries re-run under the new values.

        Like Convex re-evaluating its config, the app's code is re-loaded from its directory
        with the new values in force (``functions.env`` in module code, ``auth_config.py``,
        ``http.py``, ``crons.py``) and swapped in as ``reload`` does; if that load fails, the
        previous code keeps serving and the error is logged.
        """
        updated = self.env.with_changes(changes)
        await self.persistence.set_global(ENV_GLOBAL, updated.user_values)
        self.env = updated
        self.query_cache.invalidate_all()
        if self.app.directory.is_dir():  # else not served from an app directory
            await self.reload_from_directory("the environment variables changed")
        return updated

    # -- reloading (reactor dev) -------------------------------------------------------------

    def _number_tables(self, app: App) -> None:
        if app.schema is not None:
            for table in app.schema.tables:
                self.tables.number_for(table)

    async def reload_from_directory(self, reason: str) -> bool:
        """Load the app's code again, with the current environment variables, and serve it.

        With function runners, a throwaway runner loads it and describes it (a manifest), so
        the app's code never runs in the server; a schema the stored documents break is
        refused as at start. On any failure the previous code keeps serving (the error is
        logged) and this returns False.
        """
        directory = self.app.directory
        try:
            if self.pools is not None:
                app = app_from_manifest(directory, await self.pools.probe())
            else:
                app = load_app_with_env(directory, self.env)
        except Exception as exc:
            log.error("%s: reload failed, still serving the previous functions: %s", reason, exc)
            return False
        try:  # as Convex refuses a push whose schema the stored documents break
            await self.check_schema(app)
        except SchemaDriftError as exc:
            log.error("%s: reload refused, still serving the previous functions: %s", reason, exc)
            return False
        if self.pools is not None:
            if not await self.pools.reload():
                return False
            self._swap(app)
        else:
            self.reload(app)
        return True

    def reload(self, app: App) -> None:
        """Swap in freshly loaded functions and re-run every live query under them (on runners
        started on the new code, once they have loaded it)."""
        if self.pools is not None:
            start_task(self._reload_runners(app), name="reload runners")
            return
        self._swap(app)

    async def _reload_runners(self, app: App) -> None:
        assert self.pools is not None
        if await self.pools.reload():
            self._swap(app)

    def _swap(self, app: App) -> None:
        self.served.swap(app)
        self._number_tables(app)
        self.query_cache.rebind(self.system_functions.over(app.registry))
        self._reload_crons(app)
        start_task(self._reload_schema_and_auth(app), name="reload schema and auth")
        try:
            with deployment_env.using(self.env):
                self.http_router = load_http_router(app)
        except Exception:
            log.exception("http.py failed to load; keeping the previous HTTP routes")
        log.info("reloaded %d functions from %s", len(app.registry), app.directory)

    async def _reload_schema_and_auth(self, app: App) -> None:
        try:
            await self.persistence.prepare(self.table_indexes())
            await backfill_indexes(self.persistence, self.committer, app.schema)
        except Exception:
            log.exception("back-filling indexes after a reload failed")
        try:
            with deployment_env.using(self.env):
                authenticator = Authenticator(load_providers(app), self.persistence)
        except Exception:
            log.exception("auth_config.py failed to load; keeping the previous providers")
            return
        previous, self.auth = self.auth, authenticator
        await previous.aclose()

    def _reload_crons(self, app: App) -> None:
        try:
            with deployment_env.using(self.env):
                crons = load_crons(app)
        except Exception:
            log.exception("crons.py failed to load; keeping the previous cron jobs")
            return

        async def restart() -> None:
            await self.crons.stop()
            self.crons = CronRunner(self.scheduler, crons)
            if self.leadership.leading:
                await self.crons.start()

        start_task(restart(), name="reload crons")
