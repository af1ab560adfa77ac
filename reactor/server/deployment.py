"""The running deployment's parts, wired together once: the composition root's product.

Owns construction order and lifecycle (start/stop) of storage, committer, executor and live
queries, and swapping in reloaded functions (``reactor dev``). Transports (HTTP routes, the
websocket server) receive a ``Services`` and never build parts themselves.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.decorators import FunctionSpec
from functions.loader import App
from functions.registry import Registry
from functions.store import Order
from reactor.auth import parse_authorization
from reactor.auth.authenticator import Authenticator, Principal, load_providers
from reactor.core.index_keys import BY_CREATION_TIME, index_id, index_key
from reactor.core.intervals import Interval
from reactor.core.persistence import Commit, IndexEntry, IndexRow, Persistence
from reactor.core.reads import ReadSet
from reactor.core.runtime import Runtime, SystemRuntime
from reactor.core.system_tables import TableRegistry
from reactor.core.tasks import stop_task
from reactor.core.write_log import WriteLog
from reactor.engine.committer import Committer
from reactor.engine.executor import Executor, FunctionResult
from reactor.engine.query_cache import Entry, LiveQueries
from reactor.engine.subscriptions import SubscriptionManager
from reactor.engine.transaction import SYSTEM_INDEXES, PreparedCommit
from reactor.platform.blobs import BlobStore
from reactor.platform.crons import CronRunner, load_crons
from reactor.platform.env_vars import EnvironmentVariables
from reactor.platform.files import FileStorage, storage_secret
from reactor.platform.leases import DEFAULT_TTL_S, Leadership
from reactor.platform.scheduler import Scheduler
from reactor.server.http_actions import load_http_router
from schema.errors import OptimisticConcurrencyError

if TYPE_CHECKING:
    from reactor.storage.mongo.feed import ClusterFeed
from schema.values import loads

__all__ = ["Services"]

log = logging.getLogger("reactor")

# Versions older than this are forgotten; snapshots (transactions, /api/query_at_ts) must be newer.
RETENTION_S = 600.0

# The lease whose holder runs the scheduler and crons for every process sharing the database.
SCHEDULER_LEASE = "scheduler"


def _entries_commit(entries: list[IndexEntry]) -> Callable[[int], Commit]:
    return lambda ts: Commit(ts, [], entries)


def _default_blob_dir(persistence: Persistence) -> Path:
    path = getattr(persistence, "path", None)
    if path is None:
        raise ValueError("blob_directory is required for this storage engine")
    return Path(path).parent / "blobs"


class Services:
    def __init__(
        self,
        app: App,
        persistence: Persistence,
        *,
        runtime: Runtime | None = None,
        dev: bool = False,
        instance_name: str | None = None,
        system_env: dict[str, str] | None = None,
        public_url: str = "http://127.0.0.1:3210",
        blob_directory: str | Path | None = None,
        max_upload_bytes: int | None = 1 << 30,
    ) -> None:
        self.app = app
        self.persistence = persistence
        self.runtime = runtime or SystemRuntime()
        self.dev = dev
        self.instance_name = instance_name or f"reactor-{secrets.token_hex(3)}"
        self.tables = TableRegistry(persistence.table_numbers())
        if app.schema is not None:
            for table in app.schema.tables:
                self.tables.number_for(table)
        self.write_log = WriteLog()
        self.subscriptions: SubscriptionManager[Entry] = SubscriptionManager(self.write_log)
        self.feed: ClusterFeed | None = None
        self.committer: Committer
        if getattr(persistence, "feed_mode", None) is not None:  # shared by several processes
            from reactor.storage.mongo.engine import MongoPersistence
            from reactor.storage.mongo.feed import ClusterCommitter

            assert isinstance(persistence, MongoPersistence)
            self.committer = ClusterCommitter(
                persistence,
                self.write_log,
                self.tables,
                on_publish=self._on_publish,
                runtime=self.runtime,
            )
        else:
            self.committer = Committer(
                persistence,
                self.write_log,
                self.tables,
                on_publish=self._on_publish,
                runtime=self.runtime,
            )
        self.subscriptions.processed_ts = self.committer.published_ts
        self.executor = Executor(
            schema=app.schema,
            persistence=persistence,
            committer=self.committer,
            tables=self.tables,
            runtime=self.runtime,
            dev=dev,
        )
        self.executor.registry = app.registry
        self.scheduler = Scheduler(self.executor)
        self.executor.mutation_scheduler = self.scheduler.for_mutation
        self.executor.action_scheduler = self.scheduler.for_action
        self.live = LiveQueries(self.executor, self.subscriptions)
        self.sessions: set[Any] = set()
        self._system_env = system_env or {}
        self.env = EnvironmentVariables({}, system=self._system_env)  # loaded in start()
        self.executor.env = self.env
        self.crons = CronRunner(self, load_crons(app))
        self.auth = Authenticator(load_providers(app), persistence)
        self.new_admin_key: str | None = None  # set at the first start only: show it once
        self.public_url = public_url
        self.blobs = BlobStore(
            Path(blob_directory) if blob_directory else _default_blob_dir(persistence),
            max_bytes=max_upload_bytes,
        )
        self.files: FileStorage | None = None  # made in start(): its secret is stored
        self._pruner: asyncio.Task[None] | None = None
        self.leadership: Leadership | None = None  # made in start(background=True)
        self.lease_ttl_s = DEFAULT_TTL_S
        self.on_admin_key: Callable[[str], None] | None = None
        self.retention_s = RETENTION_S
        self.http_router = load_http_router(app)

    @property
    def registry(self) -> Registry:
        return self.app.registry

    def _on_publish(self, ts: int, prepared: PreparedCommit) -> None:
        self.live.on_commit(ts, prepared)
        self.scheduler.on_commit(ts, prepared)
        if self.files is not None:
            self.files.on_commit(ts, prepared)

    async def start(self, *, background: bool = True) -> None:
        """Start the deployment. ``background=False`` (one-off CLI commands) runs no scheduled
        jobs, crons or maintenance: a short-lived process must not start work it cannot finish.

        Scheduled jobs and crons run only in the process holding the ``scheduler`` lease; a lone
        process takes it before this returns.
        """
        await self.reload_env()
        self.new_admin_key = await self.auth.ensure_admin_key()
        if self.new_admin_key is not None and self.on_admin_key is not None:
            self.on_admin_key(self.new_admin_key)  # at once: a failed start must not lose it
        self.files = FileStorage(
            self.executor,
            self.blobs,
            secret=await storage_secret(self.persistence),
            base_url=self.public_url,
        )
        self.executor.storage_handle = self.files.handle
        self.files.start()
        if getattr(self.committer, "engine", None) is not None:
            await self._start_feed()
        self.committer.start()
        await self._backfill_indexes()
        self.live.start()
        if background:
            self._pruner = asyncio.get_running_loop().create_task(self._prune_forever())
            self.leadership = Leadership(
                self.persistence,
                SCHEDULER_LEASE,
                f"{self.instance_name}-{secrets.token_hex(4)}",
                on_gain=self._start_jobs,
                on_lose=self._stop_jobs,
                ttl_s=self.lease_ttl_s,
            )
            await self.leadership.start()
        elif self.persistence.single_process:
            # No other process can be running these jobs: the ones left inProgress were cut off.
            await self.scheduler.recover()

    async def _start_feed(self) -> None:
        from reactor.storage.mongo.engine import MongoPersistence
        from reactor.storage.mongo.feed import ClusterCommitter, ClusterFeed

        engine, committer = self.persistence, self.committer
        assert isinstance(engine, MongoPersistence) and isinstance(committer, ClusterCommitter)
        await engine.prepare_tables(self._table_indexes())
        self.feed = ClusterFeed(
            engine,
            committer,
            self.write_log,
            index_definitions=lambda table: self._table_indexes().get(table, {}),
            invalidate_all=self.live.invalidate_all,
            checkpoint_key=f"resume:{self.instance_name}",
        )
        self.feed.start()

    def _table_indexes(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """Every table's indexes (schema and system tables), ``by_id``/``by_creation_time``
        left implicit."""
        out: dict[str, dict[str, tuple[str, ...]]] = {
            table: dict(indexes) for table, indexes in SYSTEM_INDEXES.items()
        }
        schema = self.app.schema
        if schema is not None:
            for table, definition in schema.tables.items():
                out[table] = {name: tuple(fields) for name, fields in definition.indexes.items()}
        return out

    async def _start_jobs(self) -> None:
        await self.scheduler.start()  # recovers jobs a crashed leader left inProgress first
        await self.crons.start()

    async def _stop_jobs(self) -> None:
        await self.crons.stop()
        await self.scheduler.stop()

    async def prune_versions(self) -> int:
        """Forget document and index versions older than the retention window."""
        previous = int(await self.persistence.get_global("pruned_through") or 0)
        cutoff = min(
            self.committer.published_ts,
            self.runtime.now_ns() - int(self.retention_s * 1e9),
        )
        if cutoff <= previous:
            return 0
        return await self.persistence.prune(previous, cutoff)

    async def _prune_forever(self, interval_s: float = 60.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                purged = await self.scheduler.purge_completed()
                if purged:
                    log.info("deleted %d finished scheduled jobs past their retention", purged)
                removed = await self.prune_versions()
                if removed:
                    log.info("pruned %d old versions", removed)
            except Exception:
                log.exception("pruning old versions failed")

    async def _rows(self, iid: str, ts: int) -> AsyncIterator[IndexRow]:
        start = b""
        while True:
            rows = await self.persistence.scan(iid, start, None, ts, Order.ASC, 1000)
            for row in rows:
                yield row
            if len(rows) < 1000:
                return
            start = rows[-1].key + b"\x00"

    async def _backfill_indexes(self) -> None:
        """Build entries for indexes the schema gained (or redefined) since they were last
        built, in one commit whose read set covers the scanned tables: a concurrent write
        (``reactor dev`` reloads while serving) makes it conflict and start over."""
        schema = self.app.schema
        if schema is None:
            return
        while True:
            built: dict[str, list[str]] = await self.persistence.get_global("indexes") or {}
            ts = self.committer.published_ts
            reads = ReadSet()
            entries: list[IndexEntry] = []
            current: dict[str, list[str]] = {}
            for table, definition in schema.tables.items():
                for name, fields in definition.indexes.items():
                    iid = index_id(table, name)
                    current[iid] = list(fields)
                    if built.get(iid) == list(fields):
                        continue
                    # Retire whatever an earlier definition left, then index every document.
                    everything = Interval(b"", None)
                    reads.add(iid, everything)
                    entries.extend(
                        [
                            IndexEntry(iid, row.key, row.document_id, None)
                            async for row in self._rows(iid, ts)
                        ]
                    )
                    by_time = index_id(table, BY_CREATION_TIME)
                    reads.add(by_time, everything)
                    async for row in self._rows(by_time, ts):
                        key = index_key(loads(row.value), tuple(fields))
                        entries.append(IndexEntry(iid, key, row.document_id, row.value))
            if current == built:
                return
            if entries:
                prepared = PreparedCommit(ts, reads, {}, _entries_commit(list(entries)), None, None)
                try:
                    await self.committer.commit(prepared)
                except OptimisticConcurrencyError:
                    continue
                log.info("back-filled %d index entries", len(entries))
            await self.persistence.set_global("indexes", current)
            return

    async def reload_env(self) -> None:
        """Read the stored environment variables (another process may have set them)."""
        stored = await self.persistence.get_global("env") or {}
        self.env = self.executor.env = EnvironmentVariables(stored, system=self._system_env)

    async def stop(self) -> None:
        await stop_task(self._pruner)
        if self.files is not None:
            await self.files.stop()
        if self.leadership is not None:
            await self.leadership.stop()
        await self._stop_jobs()  # already stopped by the leadership; a cron reload may race it
        await self.live.stop()
        if self.feed is not None:
            await self.feed.stop()
        await self.committer.stop()
        await self.auth.aclose()
        aclose = getattr(self.persistence, "aclose", None)
        if aclose is not None:
            await aclose()
        self.persistence.close()

    def reload(self, app: App) -> None:
        """Swap in freshly loaded functions and re-run every live query under them."""
        self.app = app
        self.executor.schema = app.schema
        self.executor.registry = app.registry
        if app.schema is not None:
            for table in app.schema.tables:
                self.tables.number_for(table)
        self.live.rebind(app.registry)
        self._reload_crons(app)
        asyncio.get_running_loop().create_task(self._reload_schema_and_auth(app))
        try:
            self.http_router = load_http_router(app)
        except Exception:
            log.exception("http.py failed to load; keeping the previous HTTP routes")
        log.info("reloaded %d functions from %s", len(app.registry), app.directory)

    async def _reload_schema_and_auth(self, app: App) -> None:
        try:
            await self._backfill_indexes()
        except Exception:
            log.exception("back-filling indexes after a reload failed")
        try:
            authenticator = Authenticator(load_providers(app), self.persistence)
        except Exception:
            log.exception("auth_config.py failed to load; keeping the previous providers")
            return
        previous, self.auth = self.auth, authenticator
        await previous.aclose()

    def _reload_crons(self, app: App) -> None:
        try:
            crons = load_crons(app)
        except Exception:
            log.exception("crons.py failed to load; keeping the previous cron jobs")
            return

        async def restart() -> None:
            await self.crons.stop()
            self.crons = CronRunner(self, crons)
            if self.leadership is not None and self.leadership.leading:
                await self.crons.start()

        asyncio.get_running_loop().create_task(restart())

    async def principal_for_http(self, request: Any) -> Principal:
        """The caller of an HTTP request, from ``Authorization`` (or ``?adminKey=``).

        Raises:
            AuthenticationError: a token or admin key was given and is invalid.
        """
        credentials = parse_authorization(
            request.headers.get("authorization"),
            admin_key_param=request.query_params.get("adminKey"),
        )
        return await self.auth.authenticate(credentials)

    async def set_env(self, changes: dict[str, str | None]) -> EnvironmentVariables:
        """Change environment variables durably; live queries re-run under the new values."""
        updated = self.env.with_changes(changes)
        await self.persistence.set_global("env", updated.user_values)
        self.env = self.executor.env = updated
        self.live.invalidate_all()
        return updated

    async def run_action(
        self,
        spec: FunctionSpec,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None = None,
    ) -> FunctionResult:
        return await self.executor.run_action(spec, args, identity=identity)
