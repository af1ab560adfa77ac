"""The public websocket clients: :class:`AsyncReactorClient` and its blocking facade.

Owns the caller-facing API: encoding arguments, one future per mutation/action, subscription
iterators fed from protocol events, and :class:`ReactorClient`, which runs an
:class:`AsyncReactorClient` on a private event-loop thread. It does not own protocol state
(``protocol`` and the pure cores), sockets or reconnection (``connection``), or one-shot HTTP
calls (``http``).

Everything runs over one websocket per client, shared by all subscriptions, queries, mutations
and actions; identical ``(path, args)`` subscriptions share one query id.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from client_sdk.calls import encode_args, unwrap
from client_sdk.connection import Backoff, Connection
from client_sdk.errors import ConnectionLost
from client_sdk.local_state import AuthToken
from client_sdk.protocol import (
    ClientProtocol,
    Event,
    QueryResultChanged,
    RequestCompleted,
    RequestLost,
)
from client_sdk.references import (
    ActionReference,
    AnyArgs,
    MutationReference,
    NoArgs,
    QueryReference,
    reference_path,
)
from client_sdk.urls import CLIENT_HEADER, sync_url
from reactor.sync.messages import FunctionResult, QueryId, RequestId, SessionId
from schema.values import Value

__all__ = [
    "AsyncReactorClient",
    "QuerySubscription",
    "ReactorClient",
    "SyncQuerySubscription",
]

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")


class QuerySubscription:
    """An async iterator over the results of one live query.

    The first ``__anext__`` returns the current result (waiting for it if needed); each later
    one waits for a result different from the last one returned. Results are coalesced: a slow
    reader gets the newest result, never a backlog of stale ones. A failed query raises
    :class:`~schema.errors.FunctionFailed` from ``__anext__`` and the subscription stays live,
    so calling ``__anext__`` again waits for the next result. Iteration ends (StopAsyncIteration)
    after :meth:`aclose` or when the client closes. Call :meth:`aclose` (or use ``async with``)
    to stop the server from running the query; ``break`` alone does not.
    """

    def __init__(self, client: AsyncReactorClient, query_id: QueryId, udf_path: str) -> None:
        self.query_id = query_id
        self.udf_path = udf_path
        self._client = client
        self._latest: FunctionResult | None = None
        self._version = 0
        self._seen = 0
        self._closed = False
        self._changed = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closed

    def __aiter__(self) -> QuerySubscription:
        return self

    async def __anext__(self) -> Value:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._seen != self._version:
                self._seen = self._version
                assert self._latest is not None
                return unwrap(self._latest)
            self._changed.clear()
            await self._changed.wait()

    async def aclose(self) -> None:
        """Stop the subscription (sends ``Remove`` when no identical subscription remains)."""
        self.close()

    def close(self) -> None:
        """Synchronous :meth:`aclose`, for use from inside the client's event loop."""
        if not self._closed:
            self._end()
            self._client._unsubscribe(self)

    async def __aenter__(self) -> QuerySubscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _push(self, result: FunctionResult) -> None:
        self._latest = result
        self._version += 1
        self._changed.set()

    def _end(self) -> None:
        self._closed = True
        self._changed.set()


class AsyncReactorClient:
    """A Reactor (Convex wire protocol) client over one auto-reconnecting websocket.

    The socket opens on first use (or on ``async with``) in the running asyncio loop, which
    the client is then bound to. It keeps one ``sessionId`` for its whole life, so the server
    can de-duplicate mutations resent after a reconnect.

    Args:
        url: the deployment URL, e.g. ``"http://127.0.0.1:3210"`` (sync at ``/api/sync``).
        inactivity_timeout_s: reconnect when the server sends nothing for this long.
        backoff_initial_s: the first reconnect delay; it doubles (±50 % jitter) per failure.
        backoff_max_s: the cap on the reconnect delay.
        open_timeout_s: the limit on one websocket handshake.
        session_id: the ``sessionId`` to use (default: a fresh uuid4).
    """

    def __init__(
        self,
        url: str,
        *,
        inactivity_timeout_s: float = 60.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 16.0,
        open_timeout_s: float = 10.0,
        session_id: str | None = None,
    ) -> None:
        self.url = url
        self.ws_url = sync_url(url)
        self._backoff = Backoff(initial_s=backoff_initial_s, max_s=backoff_max_s)
        self._inactivity_timeout_s = inactivity_timeout_s
        self._open_timeout_s = open_timeout_s
        self._protocol = ClientProtocol(SessionId(session_id or str(uuid.uuid4())))
        self._connection: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[RequestId, asyncio.Future[FunctionResult]] = {}
        self._subscriptions: dict[QueryId, list[QuerySubscription]] = {}
        self._closed = False

    @property
    def session_id(self) -> str:
        return self._protocol.session_id

    @property
    def is_connected(self) -> bool:
        """Whether a socket is open right now (it may still be catching up)."""
        return self._connection is not None and self._connection.is_connected

    @property
    def protocol(self) -> ClientProtocol:
        """The sans-I/O protocol state (for diagnostics and tests)."""
        return self._protocol

    async def connect(self) -> None:
        """Start connecting in the background (every call does this implicitly)."""
        self._ensure_started()

    async def __aenter__(self) -> AsyncReactorClient:
        self._ensure_started()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def subscribe(
        self, path: str | QueryReference[Any, Any], args: Mapping[str, Value] | None = None
    ) -> QuerySubscription:
        """Subscribe to a query; returns an async iterator of its results.

        Must be called from inside the client's event loop.

        Raises:
            TypeError, ValidationError: bad path or arguments (nothing is sent).
        """
        path = reference_path(path, "query")
        encoded = encode_args(path, args)
        self._ensure_started()
        query_id = self._protocol.subscribe(path, encoded)
        subscription = QuerySubscription(self, query_id, path)
        self._subscriptions.setdefault(query_id, []).append(subscription)
        current = self._protocol.current_result(query_id)
        if current is not None:
            subscription._push(current)
        self._flush()
        return subscription

    @overload
    async def query(
        self, path: QueryReference[[NoArgs], R] | QueryReference[[AnyArgs], R], /
    ) -> R: ...
    @overload
    async def query(
        self, path: QueryReference[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...
    @overload
    async def query(self, path: str, args: Mapping[str, Value] | None = None) -> Value: ...
    async def query(  # type: ignore[misc]  # the reference overloads are typing only
        self, path: str | QueryReference[Any, Any], args: Mapping[str, Value] | None = None
    ) -> Any:
        """Run a query once: subscribe, take the first result, unsubscribe.

        Over the websocket rather than HTTP so a query sees at least the writes of every
        mutation this client has awaited, and an identical live subscription answers at once.

        Raises:
            FunctionFailed: the query failed (``data`` set for ConvexError).
            ConnectionLost: the client was closed while waiting.
        """
        subscription = self.subscribe(path, args)
        try:
            return await subscription.__anext__()
        except StopAsyncIteration:
            raise ConnectionLost("Client closed") from None
        finally:
            subscription.close()

    @overload
    async def mutation(
        self, path: MutationReference[[NoArgs], R] | MutationReference[[AnyArgs], R], /
    ) -> R: ...
    @overload
    async def mutation(
        self, path: MutationReference[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...
    @overload
    async def mutation(self, path: str, args: Mapping[str, Value] | None = None) -> Value: ...
    async def mutation(  # type: ignore[misc]  # the reference overloads are typing only
        self, path: str | MutationReference[Any, Any], args: Mapping[str, Value] | None = None
    ) -> Any:
        """Run a mutation; returns once its write is visible to this client's queries.

        It survives reconnects: it is resent with the same request id, and the server
        de-duplicates it by (sessionId, requestId).

        Raises:
            FunctionFailed: the mutation failed (``data`` set for ConvexError).
            ConnectionLost: the client was closed first.
        """
        path = reference_path(path, "mutation")
        encoded = encode_args(path, args)
        self._ensure_started()
        return await self._await_request(self._protocol.send_mutation(path, encoded))

    @overload
    async def action(
        self, path: ActionReference[[NoArgs], R] | ActionReference[[AnyArgs], R], /
    ) -> R: ...
    @overload
    async def action(
        self, path: ActionReference[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...
    @overload
    async def action(self, path: str, args: Mapping[str, Value] | None = None) -> Value: ...
    async def action(  # type: ignore[misc]  # the reference overloads are typing only
        self, path: str | ActionReference[Any, Any], args: Mapping[str, Value] | None = None
    ) -> Any:
        """Run an action.

        Raises:
            FunctionFailed: the action failed (``data`` set for ConvexError).
            ConnectionLost: the socket dropped while it was in flight (it is not resent,
                since actions are not idempotent), or the client was closed.
        """
        path = reference_path(path, "action")
        encoded = encode_args(path, args)
        self._ensure_started()
        return await self._await_request(self._protocol.send_action(path, encoded))

    def set_auth(self, token: str | None) -> None:
        """Authenticate with a user JWT (``None`` logs out); kept across reconnects."""
        self._set_auth(None if token is None else AuthToken("User", token))

    def set_admin_auth(self, admin_key: str) -> None:
        """Authenticate with an admin key; kept across reconnects."""
        self._set_auth(AuthToken("Admin", admin_key))

    async def close(self) -> None:
        """Close the socket for good; pending calls raise ConnectionLost, iterators end."""
        if self._closed:
            return
        self._closed = True
        if self._connection is not None:
            await self._connection.close()
        self._protocol.shutdown("Client closed")
        self._on_events(self._protocol.events_received())
        for subscriptions in list(self._subscriptions.values()):
            for subscription in subscriptions:
                subscription._end()
        self._subscriptions.clear()

    # ---------------------------------------------------------------- internals

    def _set_auth(self, token: AuthToken | None) -> None:
        if self._closed:
            raise RuntimeError("AsyncReactorClient is closed")
        self._protocol.set_auth(token)
        self._flush()

    def _ensure_started(self) -> None:
        if self._closed:
            raise RuntimeError("AsyncReactorClient is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._connection = Connection(
                self.ws_url,
                self._protocol,
                self._on_events,
                backoff=self._backoff,
                inactivity_timeout_s=self._inactivity_timeout_s,
                open_timeout_s=self._open_timeout_s,
                headers={"Convex-Client": CLIENT_HEADER},
            )
            self._connection.start()
        elif self._loop is not loop:
            raise RuntimeError("AsyncReactorClient is bound to another event loop")

    def _flush(self) -> None:
        if self._connection is not None:
            self._connection.flush()

    async def _await_request(self, request_id: RequestId) -> Value:
        future: asyncio.Future[FunctionResult] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._flush()
        try:
            result = await future
        finally:
            self._pending.pop(request_id, None)
        return unwrap(result)

    def _unsubscribe(self, subscription: QuerySubscription) -> None:
        subscriptions = self._subscriptions.get(subscription.query_id)
        if subscriptions is None or subscription not in subscriptions:
            return
        subscriptions.remove(subscription)
        if not subscriptions:
            del self._subscriptions[subscription.query_id]
        self._protocol.unsubscribe(subscription.query_id)
        self._flush()

    def _on_events(self, events: Sequence[Event]) -> None:
        for event in events:
            if isinstance(event, QueryResultChanged):
                for subscription in list(self._subscriptions.get(event.query_id, ())):
                    subscription._push(event.result)
            elif isinstance(event, RequestCompleted):
                future = self._pending.get(event.request_id)
                if future is not None and not future.done():
                    future.set_result(event.result)
            elif isinstance(event, RequestLost):
                future = self._pending.get(event.request_id)
                if future is not None and not future.done():
                    future.set_exception(ConnectionLost(event.message))
            # ReconnectNeeded is the connection's business.


class SyncQuerySubscription:
    """A blocking iterator over a :class:`QuerySubscription` (see it for the semantics)."""

    def __init__(self, owner: ReactorClient, subscription: QuerySubscription) -> None:
        self._owner = owner
        self._subscription = subscription

    @property
    def query_id(self) -> QueryId:
        return self._subscription.query_id

    def __iter__(self) -> Iterator[Value]:
        return self

    def __next__(self) -> Value:
        if self._subscription.closed:
            raise StopIteration
        has_value, value = self._owner._run(_next_or_end(self._subscription))
        if not has_value:
            raise StopIteration
        return value

    def close(self) -> None:
        """Stop the subscription; a no-op once it or the client is closed."""
        if not self._subscription.closed and not self._owner.closed:
            self._owner._run(self._subscription.aclose())

    def __enter__(self) -> SyncQuerySubscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _next_or_end(subscription: QuerySubscription) -> tuple[bool, Value]:
    # StopAsyncIteration must not cross the thread boundary as an exception.
    try:
        return True, await subscription.__anext__()
    except StopAsyncIteration:
        return False, None


class ReactorClient:
    """A blocking client: an :class:`AsyncReactorClient` on a private event-loop thread.

    Accepts the same keyword options. Every method blocks the calling thread until the loop
    thread has the answer; it must not be called from inside that loop.
    """

    def __init__(self, url: str, **options: Any) -> None:
        self._client = AsyncReactorClient(url, **options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="reactor-client-loop", daemon=True
        )
        self._thread.start()
        self._closed = False
        self._run(self._client.connect())

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def session_id(self) -> str:
        return self._client.session_id

    @property
    def async_client(self) -> AsyncReactorClient:
        return self._client

    @overload
    def query(self, path: QueryReference[[NoArgs], R] | QueryReference[[AnyArgs], R], /) -> R: ...
    @overload
    def query(self, path: QueryReference[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...
    @overload
    def query(self, path: str, args: Mapping[str, Value] | None = None) -> Value: ...
    def query(  # type: ignore[misc]  # the reference overloads are typing only
        self, path: str | QueryReference[Any, Any], args: Mapping[str, Value] | None = None
    ) -> Any:
        return self._run(self._client.query(reference_path(path, "query"), args))

    @overload
    def mutation(
        self, path: MutationReference[[NoArgs], R] | MutationReference[[AnyArgs], R], /
    ) -> R: ...
    @overload
    def mutation(
        self, path: MutationReference[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...
    @overload
    def mutation(self, path: str, args: Mapping[str, Value] | None = None) -> Value: ...
    def mutation(  # type: ignore[misc]  # the reference overloads are typing only
        self, path: str | MutationReference[Any, Any], args: Mapping[str, Value] | None = None
    ) -> Any:
        return self._run(self._client.mutation(reference_path(path, "mutation"), args))

    @overload
    def action(
        self, path: ActionReference[[NoArgs], R] | ActionReference[[AnyArgs], R], /
    ) -> R: ...
    @overload
    def action(self, path: ActionReference[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...
    @overload
    def action(self, path: str, args: Mapping[str, Value] | None = None) -> Value: ...
    def action(  # type: ignore[misc]  # the reference overloads are typing only
        self, path: str | ActionReference[Any, Any], args: Mapping[str, Value] | None = None
    ) -> Any:
        return self._run(self._client.action(reference_path(path, "action"), args))

    def subscribe(
        self, path: str | QueryReference[Any, Any], args: Mapping[str, Value] | None = None
    ) -> SyncQuerySubscription:
        subscription = self._run(_call_async(lambda: self._client.subscribe(path, args)))
        return SyncQuerySubscription(self, subscription)

    def set_auth(self, token: str | None) -> None:
        self._run(_call_async(lambda: self._client.set_auth(token)))

    def set_admin_auth(self, admin_key: str) -> None:
        self._run(_call_async(lambda: self._client.set_admin_auth(admin_key)))

    def close(self) -> None:
        """Close the client and stop its thread; idempotent."""
        if self._closed:
            return
        try:
            self._run(self._client.close())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> ReactorClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("ReactorClient is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()


async def _call_async(fn: Callable[[], T]) -> T:
    """Run a synchronous callable inside the loop thread (it touches loop-bound state)."""
    return fn()
