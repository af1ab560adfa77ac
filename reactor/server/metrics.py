"""A deployment's Prometheus metrics, in a registry of its own (never the global one).

Owns the metric names and labels (docs/operations.md, "Metrics and health", lists them), the
counters and histograms fed by execution records, commits and sent Transitions, and the gauges
read from the deployment's state when scraped (sessions, live queries, the scheduler's queue,
storage size). It does not serve them: ``reactor.server.observability`` has the route.
"""

from __future__ import annotations

import bisect
import collections
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence, Sized
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from functions.store import IndexRange, Order
from reactor.core.persistence import Persistence, PublishedCommit
from reactor.engine.database import Database
from reactor.engine.execution_log import SUCCESS, SYSTEM_ERROR, Caller, ExecutionRecord
from reactor.engine.feed import Publisher
from reactor.platform.scheduler import BY_STATE_TIME, TABLE as SCHEDULED_FUNCTIONS
from schema.errors import OptimisticConcurrencyError


class Observed(Protocol):
    """What the metrics read of a deployment (``reactor.server.deployment.Deployment``)."""

    @property
    def database(self) -> Database: ...
    @property
    def persistence(self) -> Persistence: ...
    @property
    def publisher(self) -> Publisher: ...
    @property
    def query_cache(self) -> Sized: ...
    @property
    def subscriptions(self) -> Sized: ...
    @property
    def execution_log(self) -> Sized: ...


__all__ = ["CONTENT_TYPE", "DeploymentMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_CRON = Caller.CRON.value
# Publish times kept to measure push latency (commit published -> Transition sent).
_PUBLISH_TIMES = 4096
# Pending scheduled jobs counted at a scrape, at most (the gauge then reads this bound).
MAX_QUEUE_SCAN = 100_000
_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class DeploymentMetrics:
    """The metrics of ``deployment``. ``on_execution``/``on_commit`` are its listeners (wired by
    the deployment); sync sessions call ``session_opened``/``session_closed``/``pushed``."""

    def __init__(self, deployment: Observed, *, clock: Callable[[], float] = time.monotonic):
        self.deployment = deployment
        self._clock = clock
        self.registry = CollectorRegistry()
        r = self.registry
        self.duration = Histogram(
            "reactor_function_duration_seconds",
            "Function execution time (queries, mutations, actions, HTTP actions)",
            ["path", "kind"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.executions = Counter(
            "reactor_function_executions",
            "Function executions by outcome and caller",
            ["path", "kind", "caller", "outcome"],
            registry=r,
        )
        self.errors = Counter(
            "reactor_function_errors",
            "Failed function executions by kind and error code (ServerError: no code)",
            ["kind", "outcome", "code"],
            registry=r,
        )
        self.occ_conflicts = Counter(
            "reactor_occ_conflicts",
            "Mutation commits refused by an optimistic concurrency conflict",
            ["path"],
            registry=r,
        )
        self.occ_retries = Counter(
            "reactor_occ_retries", "Mutations run again after a conflict", ["path"], registry=r
        )
        self.deferred_runs = Counter(
            "reactor_deferred_runs",
            "Mutation first runs stopped at a read of a document other mutations were queued "
            "to write; they ran again in turn",
            ["path"],
            registry=r,
        )
        self.batched = Counter(
            "reactor_batched_mutations",
            "Mutations run in one transaction with others (re-runs waiting for the same "
            "documents, or first runs gathered while the runners were busy): one runner call "
            "and one commit for all of them",
            ["path"],
            registry=r,
        )
        self.reruns = Counter(
            "reactor_live_query_reruns",
            "Live queries run again after a commit into their read set",
            registry=r,
        )
        self.cron_runs = Counter(
            "reactor_cron_runs", "Cron job executions", ["path", "outcome"], registry=r
        )
        self.push_latency = CountedHistogram(
            "reactor_push_latency_seconds",
            "Time from a commit being published to a Transition carrying it being sent",
            buckets=_LATENCY_BUCKETS,
        )
        r.register(self.push_latency)
        self.sessions = Gauge("reactor_live_sessions", "Open sync websocket sessions", registry=r)
        self.queue_depth = Gauge(
            "reactor_scheduler_queue_depth", "Scheduled functions waiting to run", registry=r
        )
        self.queue_lag = Gauge(
            "reactor_scheduler_lag_seconds",
            "How overdue the oldest due scheduled function is (0: none due)",
            registry=r,
        )
        self.storage_bytes = Gauge(
            "reactor_storage_bytes",
            "Size of the embedded engine's files in the data directory (0: a networked engine)",
            registry=r,
        )
        r.register(_StateCollector(deployment))
        self._published: collections.OrderedDict[int, float] = collections.OrderedDict()
        self._children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}

    # -- listeners ---------------------------------------------------------------------------

    def on_execution(self, record: ExecutionRecord) -> None:
        kind = record.kind
        key = (record.path, kind, record.caller, record.outcome)
        children = self._children.get(key)
        if children is None:  # labels() costs a lock and lookups: once per label set
            children = self._children[key] = (
                self.duration.labels(record.path, kind),
                self.executions.labels(*key),
            )
        children[0].observe(record.duration_s)
        children[1].inc()
        if record.outcome != SUCCESS:
            system = record.outcome == SYSTEM_ERROR
            code = record.error_code or ("ServerError" if system else "Error")
            self.errors.labels(kind, record.outcome, code).inc()
        if record.occ_retries:
            self.occ_retries.labels(record.path).inc(record.occ_retries)
        if record.deferred_runs:
            self.deferred_runs.labels(record.path).inc(record.deferred_runs)
        if record.batched:
            self.batched.labels(record.path).inc()
        conflicts = record.occ_retries + (record.error_code == OptimisticConcurrencyError.code)
        if conflicts:
            self.occ_conflicts.labels(record.path).inc(conflicts)
        if record.live_rerun:
            self.reruns.inc()
        if record.caller == _CRON:
            self.cron_runs.labels(record.path, record.outcome).inc()

    def on_commit(self, commit: PublishedCommit) -> None:
        published = self._published
        published[commit.ts] = self._clock()
        while len(published) > _PUBLISH_TIMES:
            published.popitem(last=False)

    def session_opened(self) -> None:
        self.sessions.inc()

    def session_closed(self) -> None:
        self.sessions.dec()

    def pushed(self, ts: int, count: int = 1) -> None:
        """``count`` Transitions up to ``ts`` went out (a fan-out's slice, sent within one turn
        of the event loop): observe their delay, read now, if ``ts`` was a commit."""
        published = self._published.get(ts)
        if published is not None:
            self.push_latency.observe(max(0.0, self._clock() - published), count)

    # -- scraping ----------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read the gauges that need storage (the scheduler's queue) or the file system."""
        depth, oldest_ms = await self._scheduled()
        self.queue_depth.set(depth)
        now_ms = self.deployment.database.now_ms()
        self.queue_lag.set(0.0 if oldest_ms is None else max(0.0, (now_ms - oldest_ms) / 1000))
        self.storage_bytes.set(_directory_bytes(self.deployment.persistence.local_directory))

    async def _scheduled(self) -> tuple[int, float | None]:
        txn = self.deployment.database.begin(writable=False)
        rng = IndexRange(eq=(("state.kind", "pending"),))
        depth = 0
        oldest: float | None = None
        async for job in txn.scan(SCHEDULED_FUNCTIONS, BY_STATE_TIME, rng, Order.ASC, system=True):
            if oldest is None:
                oldest = float(job["scheduledTime"])
            depth += 1
            if depth >= MAX_QUEUE_SCAN:
                break
        now_ms = self.deployment.database.now_ms()
        return depth, (oldest if oldest is not None and oldest <= now_ms else None)

    async def exposition(self) -> bytes:
        """The Prometheus text exposition of every metric, gauges refreshed first."""
        await self.refresh()
        return generate_latest(self.registry)


class CountedHistogram(Collector):
    """A histogram without labels, exposed as ``prometheus_client.Histogram`` exposes one
    (buckets, count, sum, created), that takes many equal observations at once: a fan-out's
    pushes cost one ``observe`` per slice instead of one per message. Fed from the event loop
    only; scrapes run there too."""

    def __init__(self, name: str, documentation: str, *, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = (*sorted(float(b) for b in buckets if b != math.inf), math.inf)
        # The ``le`` labels as prometheus_client writes them ("0.001", "1.0", "+Inf").
        self._labels: list[str] = [floatToGoString(b) for b in self._bounds]  # type: ignore[no-untyped-call]
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._created = time.time()

    def observe(self, amount: float, count: int = 1) -> None:
        """``count`` observations of ``amount`` (in the first bucket whose bound holds it)."""
        self._counts[bisect.bisect_left(self._bounds, amount)] += count
        self._sum += amount * count

    @property
    def count(self) -> int:
        return sum(self._counts)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative = list(itertools.accumulate(self._counts))
        family = HistogramMetricFamily(
            self.name,
            self.documentation,
            buckets=list(zip(self._labels, cumulative, strict=True)),
            sum_value=self._sum,
        )
        family.add_sample(self.name + "_created", {}, self._created)
        yield family


class _StateCollector(Collector):
    """Values the deployment already counts, read at scrape time."""

    def __init__(self, deployment: Observed) -> None:
        self.deployment = deployment

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        d = self.deployment
        yield CounterMetricFamily(
            "reactor_commits",
            "Commits published by the change feed (rate() of it is commits/s)",
            value=d.publisher.published_commits,
        )
        yield GaugeMetricFamily(
            "reactor_live_queries", "Distinct live queries cached", value=len(d.query_cache)
        )
        yield GaugeMetricFamily(
            "reactor_subscriptions",
            "Read-set subscriptions of live queries waiting for a commit",
            value=len(d.subscriptions),
        )
        yield GaugeMetricFamily(
            "reactor_execution_log_records",
            "Execution records kept in the in-memory ring",
            value=len(d.execution_log),
        )


def _directory_bytes(directory: Path | None) -> int:
    """Bytes of the files directly in ``directory`` (the engine's database, WAL and journal)."""
    if directory is None:
        return 0
    total = 0
    try:
        for entry in directory.iterdir():
            try:
                if entry.is_file():
                    total += entry.stat().st_size
            except OSError:
                continue  # removed while listed
    except OSError:
        return 0
    return total
