"""What the server has told this socket: its state version and the query results it sent.

Owns the remote :class:`~reactor.sync.messages.StateVersion` of one websocket and the results the
server has sent on it, applying each ``Transition`` only if its ``startVersion`` equals the
version reached so far. It does not own which queries the client wants (``local_state``), when a
mutation resolves (``request_manager``), or what survives a reconnect: a new socket gets a new
``RemoteQuerySet`` starting at ``{querySet: 0, identity: 0, ts: 0}`` (PROTOCOL.md §6.1, §11.2).
"""

from __future__ import annotations

from collections.abc import Mapping

from client_sdk.errors import ProtocolMismatch
from reactor.sync.messages import (
    INITIAL_VERSION,
    FunctionResult,
    QueryFailed,
    QueryId,
    QueryRemoved,
    QueryUpdated,
    StateVersion,
    Transition,
)

__all__ = ["RemoteQuerySet"]


class RemoteQuerySet:
    """The server's view of one socket: ``version`` and the latest result per query id.

    Invariant: ``version`` is the ``endVersion`` of the last applied Transition (all zeros
    before the first), so Transitions chain without gaps.
    """

    def __init__(self) -> None:
        self._version = INITIAL_VERSION
        self._results: dict[QueryId, FunctionResult] = {}

    @property
    def version(self) -> StateVersion:
        return self._version

    @property
    def results(self) -> Mapping[QueryId, FunctionResult]:
        return self._results

    def result(self, query_id: QueryId) -> FunctionResult | None:
        return self._results.get(query_id)

    def transition(self, transition: Transition) -> list[QueryId]:
        """Apply a Transition.

        Returns:
            The query ids the Transition touched (updated, failed or removed), in its order.
            The caller then reads :meth:`result` for each, saves journals, and resolves
            mutations against ``transition.end_version.ts``.

        Raises:
            ProtocolMismatch: ``startVersion`` is not the current version (``close_reason``
                ``"StartVersionMismatch"``); nothing is applied, and the socket must be
                dropped and re-synced from scratch.
        """
        if transition.start_version != self._version:
            raise ProtocolMismatch(
                f"Invalid start version: {_show(transition.start_version)}, "
                f"expected {_show(self._version)}",
                close_reason="StartVersionMismatch",
            )
        touched: list[QueryId] = []
        for mod in transition.modifications:
            if isinstance(mod, QueryUpdated):
                self._results[mod.query_id] = FunctionResult(True, mod.value)
            elif isinstance(mod, QueryFailed):
                self._results[mod.query_id] = FunctionResult(
                    False,
                    error_message=mod.error_message,
                    error_data=mod.error_data,
                    has_error_data=mod.has_error_data,
                )
            else:
                assert isinstance(mod, QueryRemoved)
                self._results.pop(mod.query_id, None)
            touched.append(mod.query_id)
        self._version = transition.end_version
        return touched


def _show(version: StateVersion) -> str:
    return f"{{querySet: {version.query_set}, identity: {version.identity}, ts: {version.ts}}}"
