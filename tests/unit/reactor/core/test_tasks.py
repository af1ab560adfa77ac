"""start_task and stop_task: background tasks whose failures are logged, stopped for good."""

from __future__ import annotations

import asyncio

import pytest

from reactor.core.tasks import start_task, stop_task


async def _forever(started: asyncio.Event, cleaned_up: list[str]) -> None:
    started.set()
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.sleep(0)  # cleanup that itself awaits
        cleaned_up.append("done")


def test_none_finishes_at_once_without_suspending() -> None:
    step = stop_task(None).__await__()

    with pytest.raises(StopIteration):
        next(step)


@pytest.mark.anyio
async def test_a_running_task_is_cancelled_and_its_cleanup_has_run() -> None:
    started = asyncio.Event()
    cleaned_up: list[str] = []
    task = asyncio.create_task(_forever(started, cleaned_up))
    await started.wait()

    await stop_task(task)

    assert task.cancelled()
    assert cleaned_up == ["done"]


@pytest.mark.anyio
async def test_a_task_that_never_started_is_cancelled() -> None:
    started = asyncio.Event()
    task = asyncio.create_task(_forever(started, []))

    await stop_task(task)

    assert task.cancelled()
    assert not started.is_set()


@pytest.mark.anyio
async def test_a_finished_task_is_left_as_it_was() -> None:
    async def answer() -> int:
        return 42

    task = asyncio.create_task(answer())
    await task

    await stop_task(task)

    assert not task.cancelled()
    assert task.result() == 42


@pytest.mark.anyio
async def test_an_error_raised_while_stopping_propagates() -> None:
    started = asyncio.Event()

    async def fails_on_cancel() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    task = asyncio.create_task(fails_on_cancel())
    await started.wait()

    with pytest.raises(RuntimeError, match="cleanup failed"):
        await stop_task(task)


@pytest.mark.anyio
async def test_cancelling_the_caller_while_it_waits_is_not_swallowed() -> None:
    started = asyncio.Event()
    cleanup_may_finish = asyncio.Event()

    async def slow_cleanup() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await cleanup_may_finish.wait()
            raise

    task = asyncio.create_task(slow_cleanup())
    await started.wait()
    stopper = asyncio.create_task(stop_task(task))
    for _ in range(3):
        await asyncio.sleep(0)  # the stopper is now waiting for the task's cleanup

    stopper.cancel()
    cleanup_may_finish.set()
    await asyncio.wait([stopper])

    assert stopper.cancelled()


@pytest.mark.anyio
async def test_a_failing_background_task_is_logged_when_it_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def boom() -> None:
        raise ValueError("broken loop")

    with caplog.at_level("ERROR", logger="reactor.tasks"):
        task = start_task(boom(), name="doomed")
        with pytest.raises(ValueError):
            await task
        await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    [record] = [r for r in caplog.records if r.name == "reactor.tasks"]
    assert "'doomed' failed" in record.getMessage()
    assert record.exc_info is not None and str(record.exc_info[1]) == "broken loop"


@pytest.mark.anyio
async def test_a_cancelled_or_finished_background_task_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    async def done() -> int:
        return 7

    with caplog.at_level("DEBUG", logger="reactor.tasks"):
        assert await start_task(done(), name="done") == 7
        task = start_task(forever(), name="forever")
        await asyncio.sleep(0)
        await stop_task(task)
        await asyncio.sleep(0)
    assert [r for r in caplog.records if r.name == "reactor.tasks"] == []
