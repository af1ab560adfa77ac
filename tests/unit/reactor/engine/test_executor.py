"""``Executor`` on a real ``Deployment`` of a small app: dispatch by kind, the error mapping
(user errors reach the caller, anything else becomes a redacted server error), and the OCC
retry loop's attempt count.

Conflicts are made deterministic by a hook the app's mutation awaits between its read and its
write: the test commits a write of the same document there. The deployment runs on a
``ManualClock(autojump=True)``, so the retry backoff sleeps no real time, and without its
background work (which would spin on that clock).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from reactor.engine.executor import Executor, FunctionResult
from reactor.engine.invocation import Invoker
from reactor.server.deployment import Deployment
from reactor.testing import ManualClock, call, running_deployment, write_app

pytestmark = pytest.mark.anyio

APP = {
    "schema.py": """
        from schema import define_schema, define_table, v
        schema = define_schema({"counters": define_table({"n": v.float64()})})
    """,
    "kinds.py": """
        from functions import action, mutation, query

        @query
        async def which_query(ctx):
            return type(ctx).__name__

        @mutation
        async def which_mutation(ctx):
            return type(ctx).__name__

        @action
        async def which_action(ctx):
            return [type(ctx).__name__, await ctx.run_query("kinds:which_query")]
    """,
    "errors.py": """
        from functions import AppError, mutation, query
        from schema import v

        @query
        async def user_error(ctx):
            raise AppError("nope")

        @query
        async def user_error_data(ctx):
            raise AppError({"code": "EMPTY"})

        @query
        async def server_error(ctx):
            raise RuntimeError("secret detail")

        @mutation
        async def failing_write(ctx):
            await ctx.db.insert("counters", {"n": 1.0})
            raise AppError("rolled back")

        @query(args={"n": v.float64()})
        async def typed(ctx, n):
            return n
    """,
    "counters.py": """
        from functions import mutation, query
        from schema import v

        # Awaited between the read and the write of ``bump``: tests put conflicting writes here.
        HOOKS = []

        @mutation
        async def create(ctx):
            return await ctx.db.insert("counters", {"n": 0.0})

        @mutation(args={"id": v.id("counters")})
        async def bump(ctx, id):
            doc = await ctx.db.get(id)
            for hook in list(HOOKS):
                await hook()
            await ctx.db.patch(id, {"n": doc["n"] + 1})
            return doc["n"]

        @query(args={"id": v.id("counters")})
        async def get(ctx, id):
            return (await ctx.db.get(id))["n"]
    """,
}

Hook = Callable[[], Awaitable[None]]


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    app = write_app(tmp_path / "app", APP)
    clock = ManualClock(autojump=True)
    async with running_deployment(
        app, tmp_path / "data", runtime=clock, background=False
    ) as running:
        yield running


async def run(deployment: Deployment, path: str, args: dict[str, Any] | None = None) -> Any:
    result = await call(deployment, path, args)
    assert result.success, result.error_message
    return result.value


def hooks(deployment: Deployment) -> list[Hook]:
    found: list[Hook] = deployment.app.modules["counters"].HOOKS
    return found


def conflicting_write(deployment: Deployment, doc_id: str, *, times: int) -> Hook:
    """A hook committing ``n = -1`` to ``doc_id`` the first ``times`` times it is awaited."""
    remaining = [times]

    async def write() -> None:
        if remaining[0] == 0:
            return
        remaining[0] -= 1
        txn = deployment.database.begin(writable=True)
        await txn.patch(doc_id, {"n": -1.0})
        await deployment.committer.commit(txn.prepare_commit())

    return write


class TestDispatch:
    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("kinds:which_query", "QueryCtx"),
            ("kinds:which_mutation", "MutationCtx"),
            ("kinds:which_action", ["ActionCtx", "QueryCtx"]),
        ],
    )
    async def test_run_calls_each_kind_with_its_context(
        self, deployment: Deployment, path: str, expected: Any
    ) -> None:
        result = await deployment.executor.run(deployment.registry.resolve(path), {})
        assert result.success, result.error_message
        assert result.value == expected
        assert result.ts == deployment.publisher.published_ts

    async def test_a_mutation_commits_and_its_ts_is_published(self, deployment: Deployment) -> None:
        before = deployment.publisher.published_ts
        result = await call(deployment, "counters:create")
        assert result.success
        assert result.ts > before
        assert deployment.publisher.published_ts >= result.ts
        assert await run(deployment, "counters:get", {"id": result.value}) == 0.0

    async def test_a_query_reads_at_the_given_ts(self, deployment: Deployment) -> None:
        doc_id = await run(deployment, "counters:create")
        old = deployment.publisher.published_ts
        await run(deployment, "counters:bump", {"id": doc_id})
        spec = deployment.registry.resolve("counters:get")
        at_old = await deployment.executor.run_query(spec, {"id": doc_id}, ts=old)
        assert (at_old.value, at_old.ts) == (0.0, old)
        assert (await deployment.executor.run_query(spec, {"id": doc_id})).value == 1.0


class TestErrors:
    async def test_a_user_error_reaches_the_caller_with_its_data(
        self, deployment: Deployment, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.ERROR, logger="reactor.engine.executor"):
            result = await call(deployment, "errors:user_error")
        assert not result.success
        assert result.error_message == "Uncaught ConvexError: nope"
        assert result.error_data == "nope"
        assert result.error_data_json == b'"nope"'
        assert not result.retryable
        assert caplog.records == []  # the app's own error: nothing for the operator

    async def test_user_error_data_other_than_a_string(self, deployment: Deployment) -> None:
        result = await call(deployment, "errors:user_error_data")
        assert result.error_message == "Uncaught ConvexError: ConvexError"
        assert result.error_data == {"code": "EMPTY"}

    async def test_a_server_error_is_redacted_and_logged(
        self, deployment: Deployment, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.ERROR, logger="reactor.engine.executor"):
            result = await call(deployment, "errors:server_error")
        assert not result.success
        match = re.fullmatch(r"\[Request ID: ([0-9a-f]{16})\] Server Error", result.error_message)
        assert match is not None, result.error_message
        assert result.error_data_json is None
        assert not result.retryable
        (record,) = caplog.records
        assert match.group(1) in record.getMessage()
        assert "secret detail" in record.getMessage()  # the traceback, for the operator

    async def test_dev_mode_shows_the_server_error(self, deployment: Deployment) -> None:
        invoker = Invoker(
            registry=lambda: deployment.registry,
            begin=lambda ts, writable, journal: deployment.database.begin(
                ts, writable=writable, journal=journal
            ),
            env=lambda: deployment.env,
            dev=True,
        )
        dev = Executor(deployment.database, invoker, dev=True)
        result = await dev.run(deployment.registry.resolve("errors:server_error"), {})
        assert result.error_message.startswith("[Request ID: ")
        assert "Uncaught RuntimeError: secret detail" in result.error_message

    async def test_bad_arguments_are_the_callers_error(self, deployment: Deployment) -> None:
        result = await call(deployment, "errors:typed", {"n": "not a number"})
        assert not result.success
        assert "Request ID" not in result.error_message
        assert result.error_message

    async def test_a_failed_mutation_commits_nothing(self, deployment: Deployment) -> None:
        commits = deployment.committer.commits
        result = await call(deployment, "errors:failing_write")
        assert result.error_message == "Uncaught ConvexError: rolled back"
        assert deployment.committer.commits == commits


class TestConflicts:
    async def test_a_mutation_without_conflict_takes_one_attempt(
        self, deployment: Deployment
    ) -> None:
        doc_id = await run(deployment, "counters:create")
        result = await call(deployment, "counters:bump", {"id": doc_id})
        assert (result.success, result.value, result.attempts) == (True, 0.0, 1)

    async def test_a_conflicted_mutation_is_rerun_and_counts_its_attempts(
        self, deployment: Deployment
    ) -> None:
        doc_id = await run(deployment, "counters:create")
        hooks(deployment).append(conflicting_write(deployment, doc_id, times=2))
        conflicts = deployment.committer.conflicts
        result = await call(deployment, "counters:bump", {"id": doc_id})
        assert result.success, result.error_message
        assert result.attempts == 3
        assert result.value == -1.0  # the last run read the conflicting write
        assert deployment.committer.conflicts == conflicts + 2
        assert await run(deployment, "counters:get", {"id": doc_id}) == 0.0

    async def test_it_gives_up_after_max_retries(self, deployment: Deployment) -> None:
        doc_id = await run(deployment, "counters:create")
        hooks(deployment).append(conflicting_write(deployment, doc_id, times=100))
        spec = deployment.registry.resolve("counters:bump")
        result: FunctionResult = await deployment.executor.run_mutation(
            spec, {"id": doc_id}, max_retries=2
        )
        assert not result.success
        assert result.attempts == 3
        assert result.retryable
        assert result.error_code == "OptimisticConcurrencyControlFailure"
        assert '"counters" table' in result.error_message
        assert await run(deployment, "counters:get", {"id": doc_id}) == -1.0
