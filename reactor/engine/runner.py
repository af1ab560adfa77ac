"""Where app functions run: the ``FunctionRunner`` interface, and the in-process runner.

Owns the seam between the server's half of a call (snapshots, commits, retries, caching) and
the runner's half (the handler, its reads and writes: ``reactor.engine.invocation``). A served
deployment runs handlers in worker processes (``reactor.runners.pool``), so no app code can
stall, starve or stop the server; ``reactor.engine.invocation.Invoker`` is itself a runner that
runs them in the server's own process and event loop, for tests and embedding, where that
isolation is not wanted.
"""

from __future__ import annotations

from typing import Any, Protocol

from reactor.engine.invocation import (
    ActionServices,
    FunctionResult,
    HttpCall,
    HttpReply,
    MutationBatch,
    MutationCall,
)

__all__ = ["FunctionRunner", "HttpCall", "HttpReply"]


class FunctionRunner(Protocol):
    """Runs handlers. Queries and mutations read at the snapshot ``ts`` given; a mutation's
    result carries its prepared commit, and an ``urgent`` one (a re-run after a conflict, which
    others queue behind) goes before the calls waiting for a runner; one that reads a document
    in ``hot`` stops there (``FunctionResult.deferred``); an action reaches the
    server through ``services``."""

    async def query(
        self,
        path: str,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None,
        ts: int,
        journal: str | None,
    ) -> FunctionResult: ...

    async def mutation(
        self,
        path: str,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None,
        ts: int,
        job_id: str | None,
        urgent: bool = False,
        hot: frozenset[str] | None = None,
    ) -> FunctionResult: ...

    def has_room(self, path: str) -> bool:
        """Whether a call of ``path`` sent now would start without waiting for a runner."""
        ...

    async def room(self, path: str) -> None:
        """Return once a call of ``path`` sent now would start without waiting for a runner
        (taking no room itself: the caller sends its call at once)."""
        ...

    async def mutation_batch(
        self, calls: list[MutationCall], *, ts: int, hot: frozenset[str] | None = None
    ) -> MutationBatch:
        """Run ``calls`` in one transaction at ``ts``, one after the other, each stopped at a
        read of a document in ``hot`` (``Invoker.mutation_batch``); as urgent as a re-run."""
        ...

    async def action(
        self,
        path: str,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None,
        services: ActionServices,
    ) -> FunctionResult: ...

    async def http_action(
        self,
        call: HttpCall,
        *,
        identity: dict[str, Any] | None,
        auth_error: tuple[str, str] | None,
        services: ActionServices,
    ) -> HttpReply: ...
