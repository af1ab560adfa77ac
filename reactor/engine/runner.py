"""Where app functions run: the ``FunctionRunner`` interface, and the in-process runner.

Owns the seam between the server's half of a call (snapshots, commits, retries, caching) and
the runner's half (the handler, its reads and writes: ``reactor.engine.invocation``). A served
deployment runs handlers in worker processes (``reactor.runners.pool``), so no app code can
stall, starve or stop the server; ``InlineRunner`` runs them in the server's own process and
event loop, for tests and embedding, where that isolation is not wanted.
"""

from __future__ import annotations

from typing import Any, Protocol

from reactor.engine.invocation import ActionServices, FunctionResult, HttpCall, HttpReply, Invoker

__all__ = ["FunctionRunner", "HttpCall", "HttpReply", "InlineRunner"]


class FunctionRunner(Protocol):
    """Runs handlers. Queries and mutations read at the snapshot ``ts`` given; a mutation's
    result carries its prepared commit; an action reaches the server through ``services``."""

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
    ) -> FunctionResult: ...

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


class InlineRunner:
    """Runs every handler in this process, on this event loop: no isolation, no IPC."""

    def __init__(self, invoker: Invoker) -> None:
        self.invoker = invoker

    async def query(
        self,
        path: str,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None,
        ts: int,
        journal: str | None,
    ) -> FunctionResult:
        return await self.invoker.query(path, args, identity=identity, ts=ts, journal=journal)

    async def mutation(
        self,
        path: str,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None,
        ts: int,
        job_id: str | None,
    ) -> FunctionResult:
        return await self.invoker.mutation(path, args, identity=identity, ts=ts, job_id=job_id)

    async def action(
        self,
        path: str,
        args: dict[str, Any],
        *,
        identity: dict[str, Any] | None,
        services: ActionServices,
    ) -> FunctionResult:
        return await self.invoker.action(path, args, identity=identity, services=services)

    async def http_action(
        self,
        call: HttpCall,
        *,
        identity: dict[str, Any] | None,
        auth_error: tuple[str, str] | None,
        services: ActionServices,
    ) -> HttpReply:
        return await self.invoker.http_action(
            call, identity=identity, auth_error=auth_error, services=services
        )
