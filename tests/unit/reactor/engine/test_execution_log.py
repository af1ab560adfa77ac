"""The execution-record ring: bounds, the monotonic cursor, filters, waiting, and how a
``FunctionResult`` becomes a record (outcome, code, request id, counts)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from reactor.engine.execution_log import (
    Caller,
    ExecutionLog,
    ExecutionRecord,
    LogFormat,
    Outcome,
    record_of,
    summary,
)
from reactor.engine.invocation import FunctionResult


def _record(path: str = "m:f", *, success: bool = True, **fields: object) -> ExecutionRecord:
    result = FunctionResult(success, error_message="" if success else "Uncaught Error: boom")
    for name, value in fields.items():
        setattr(result, name, value)
    return record_of(result, path=path, kind="mutation", caller=Caller.HTTP, duration_s=0.002)


class _Clock:
    """A wall clock that stands still unless moved: cursors must still increase."""

    def __init__(self) -> None:
        self.ns = 1_700_000_000_000_000_000

    def __call__(self) -> int:
        return self.ns


def test_cursors_increase_even_when_the_clock_stands_still_or_goes_back() -> None:
    clock = _Clock()
    ring = ExecutionLog(clock_ns=clock)
    first = ring.add(_record())
    second = ring.add(_record())
    clock.ns -= 10**12  # NTP stepped back
    third = ring.add(_record())
    assert first.cursor < second.cursor < third.cursor
    assert first.cursor == clock.ns // 1000 + 10**9  # microseconds of the (first) wall clock
    assert first.timestamp == pytest.approx(1_700_000_000.0)
    assert ring.last_cursor == third.cursor


def test_the_ring_keeps_the_newest_capacity_records() -> None:
    ring = ExecutionLog(capacity=3)
    added = [ring.add(_record(f"m:f{i}")) for i in range(5)]
    assert len(ring) == 3
    assert [r.path for r in ring.read()] == ["m:f2", "m:f3", "m:f4"]
    assert ring.dropped_before == added[2].cursor
    assert ring.total == 5


def test_read_since_a_cursor_never_repeats_or_skips() -> None:
    ring = ExecutionLog(capacity=100)
    added = [ring.add(_record(f"m:f{i}")) for i in range(10)]
    for i, record in enumerate(added):
        assert ring.read(since=record.cursor) == added[i + 1 :]
    assert ring.read(since=0) == added
    assert ring.read(since=added[-1].cursor) == []


def test_filters_and_limit() -> None:
    ring = ExecutionLog()
    ring.add(_record("a:x"))
    failed = ring.add(_record("a:y", success=False))
    ring.add(_record("a:x", success=False))
    last = ring.add(_record("a:x"))
    assert [r.path for r in ring.read(path="a:x")] == ["a:x", "a:x", "a:x"]
    assert ring.read(outcome="user_error", path="a:y") == [failed]
    assert len(ring.read(outcome=("user_error", "system_error"))) == 2
    assert ring.read(request_id=failed.request_id) == [failed]
    assert ring.read(limit=1) == [last]
    assert ring.read(limit=0) == []
    with pytest.raises(ValueError, match="unknown outcome 'failed'"):
        ring.read(outcome="failed")
    with pytest.raises(ValueError, match="limit must not be negative"):
        ring.read(limit=-1)
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        ExecutionLog(capacity=0)


def test_outcomes_codes_and_request_ids() -> None:
    ok = _record(documents_read=3, documents_written=2, attempts=3, log_lines=("[LOG] hi",))
    assert ok.outcome == Outcome.SUCCESS.value
    assert (ok.documents_read, ok.documents_written, ok.occ_retries) == (3, 2, 2)
    turned = _record(attempts=3, deferred_runs=1)  # one run stopped at a hot read: no conflict
    assert (turned.occ_retries, turned.deferred_runs) == (1, 1)
    carried = _record(attempts=2, batched=5)  # its second run rode along with four others
    assert (carried.occ_retries, carried.batched) == (1, 5)
    assert summary(carried).endswith("(read 0 written 0 occ_retries 1 batched 5)")
    assert ok.log_lines == ("[LOG] hi",)
    assert ok.error_code is None and len(ok.request_id) == 16

    user = record_of(
        FunctionResult(False, error_message="Uncaught ConvexError: x", error_data_json=b'"x"'),
        path="m:f",
        kind="mutation",
        caller=Caller.WEBSOCKET,
        duration_s=0.0,
    )
    assert (user.outcome, user.error_code) == ("user_error", "ConvexError")

    system = record_of(
        FunctionResult(False, error_message="[Request ID: 0123abcd4567ef89] Server Error"),
        path="m:f",
        kind="query",
        caller=Caller.SCHEDULER,
        duration_s=0.0,
    )
    assert (system.outcome, system.request_id) == ("system_error", "0123abcd4567ef89")

    occ = record_of(
        FunctionResult(
            False,
            error_message="conflict",
            retryable=True,
            error_code="OptimisticConcurrencyControlFailure",
        ),
        path="m:f",
        kind="mutation",
        caller=Caller.CRON,
        duration_s=0.0,
    )
    assert (occ.outcome, occ.error_code, occ.caller) == (
        "system_error",
        "OptimisticConcurrencyControlFailure",
        "cron",
    )


def test_summary_is_one_readable_line() -> None:
    ok = _record("messages:send")
    assert summary(ok).startswith("mutation messages:send [http] 2.0 ms success (read 0")
    bad = _record("messages:send", success=False, error_message="line one\nline two")
    line = summary(bad)
    assert "\n" not in line
    assert "user_error Error: line one | line two" in line
    assert bad.request_id in line


@pytest.mark.anyio
async def test_wait_wakes_on_a_new_record_and_times_out_otherwise() -> None:
    ring = ExecutionLog()
    assert await ring.wait(0, 0.01) is False
    waiter = asyncio.ensure_future(ring.wait(ring.last_cursor, 5.0))
    await asyncio.sleep(0)
    ring.add(_record())
    assert await asyncio.wait_for(waiter, 1.0) is True
    assert await ring.wait(0, 0.0) is True  # already there


def test_the_server_log_gets_failures_at_info_and_successes_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ring = ExecutionLog()
    with caplog.at_level(logging.INFO, logger="reactor.executions"):
        ring.add(_record("m:ok"))
        ring.add(_record("m:bad", success=False))
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "m:bad" in caplog.records[0].getMessage()
    caplog.clear()
    json_ring = ExecutionLog(log_format=LogFormat.JSON)
    with caplog.at_level(logging.INFO, logger="reactor.executions"):
        added = json_ring.add(_record("m:ok"))
    (entry,) = caplog.records
    assert entry.execution["path"] == "m:ok"  # type: ignore[attr-defined]
    assert entry.execution["cursor"] == added.cursor  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_close_ends_every_wait() -> None:
    ring = ExecutionLog()
    waiter = asyncio.ensure_future(ring.wait(0, 30.0))
    await asyncio.sleep(0)
    ring.close()
    assert await asyncio.wait_for(waiter, 1.0) is False
    assert await asyncio.wait_for(ring.wait(0, 30.0), 1.0) is False
