"""``reactor_push_latency_seconds`` observed a slice of a fan-out at a time: the same histogram,
in the same exposition, as one ``prometheus_client.Histogram.observe`` per pushed message."""

from __future__ import annotations

import types
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reactor.server.metrics import _LATENCY_BUCKETS, CountedHistogram, DeploymentMetrics

OBSERVED = [(0.0, 3), (0.001, 2), (0.0011, 1), (0.05, 5), (7.0, 4), (100.0, 2)]


def samples(registry: CollectorRegistry) -> dict[tuple[str, Any], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_counted_observations_expose_what_one_observe_per_message_would() -> None:
    plain, counted = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram("push_seconds", "doc", buckets=_LATENCY_BUCKETS, registry=plain)
    many = CountedHistogram("push_seconds", "doc", buckets=_LATENCY_BUCKETS)
    counted.register(many)
    for amount, count in OBSERVED:
        for _ in range(count):
            histogram.observe(amount)
        many.observe(amount, count)
    expected, got = samples(plain), samples(counted)
    assert got.keys() == expected.keys()
    assert all(abs(got[k] - expected[k]) < 1e-9 for k in expected)
    assert got["push_seconds_count", ()] == sum(c for _, c in OBSERVED) == many.count
    assert "push_seconds_created" in generate_latest(counted).decode()


def test_pushed_counts_a_slice_at_the_delay_since_its_commit_was_published() -> None:
    now = [100.0]
    metrics = DeploymentMetrics(types.SimpleNamespace(), clock=lambda: now[0])
    metrics.on_commit(types.SimpleNamespace(ts=7))  # type: ignore[arg-type]
    now[0] = 100.004
    metrics.pushed(7, 64)  # a slice of 64 sessions sent 4 ms after publication
    metrics.pushed(7)
    metrics.pushed(8, 10)  # not a published commit's ts: not a push latency
    alone = CollectorRegistry()  # the deployment's own registry reads a deployment's state
    alone.register(metrics.push_latency)
    values = samples(alone)
    assert values["reactor_push_latency_seconds_count", ()] == 65
    assert values["reactor_push_latency_seconds_bucket", (("le", "0.0025"),)] == 0
    assert values["reactor_push_latency_seconds_bucket", (("le", "0.005"),)] == 65
    assert abs(values["reactor_push_latency_seconds_sum", ()] - 65 * 0.004) < 1e-6
