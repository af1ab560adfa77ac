"""The running deployment's parts, wired together once: the composition root's product.

Owns construction order and lifecycle (start/stop) of storage, committer, executor and live
queries, and swapping in reloaded functions (``reactor dev``). Transports (HTTP routes, the
websocket server) receive a ``Services`` and never build parts themselves.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from functions.decorators import FunctionSpec
from functions.loader import App
from functions.registry import Registry
from reactor.committer import Committer
from reactor.executor import Executor, FunctionResult
from reactor.live_queries import Entry, LiveQueries
from reactor.runtime import Runtime, SystemRuntime
from reactor.storage.base import Persistence
from reactor.subscriptions import SubscriptionManager
from reactor.tables import TableRegistry
from reactor.transaction import PreparedCommit
from reactor.write_log import WriteLog

__all__ = ["Services"]

log = logging.getLogger("reactor")


class Services:
    def __init__(
        self,
        app: App,
        persistence: Persistence,
        *,
        runtime: Runtime | None = None,
        dev: bool = False,
        instance_name: str | None = None,
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
        self.committer = Committer(
            persistence, self.write_log, self.tables, on_publish=self._on_publish,
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
        self.live = LiveQueries(self.executor, self.subscriptions)
        self.sessions: set[Any] = set()

    @property
    def registry(self) -> Registry:
        return self.app.registry

    def _on_publish(self, ts: int, prepared: PreparedCommit) -> None:
        self.live.on_commit(ts, prepared)

    async def start(self) -> None:
        self.committer.start()
        self.live.start()

    async def stop(self) -> None:
        await self.live.stop()
        await self.committer.stop()
        self.persistence.close()

    def reload(self, app: App) -> None:
        """Swap in freshly loaded functions and re-run every live query under them."""
        self.app = app
        self.executor.schema = app.schema
        if app.schema is not None:
            for table in app.schema.tables:
                self.tables.number_for(table)
        self.live.rebind(app.registry)
        log.info("reloaded %d functions from %s", len(app.registry), app.directory)

    async def run_action(self, spec: FunctionSpec, args: dict[str, Any]) -> FunctionResult:
        return FunctionResult(
            False,
            error_message=f"Actions are not supported yet: {spec.path} cannot run.",
        )
