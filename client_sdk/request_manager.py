"""In-flight mutations and actions, keyed by request id, and the rules for resolving them.

Owns the request-id counter (shared by mutations and actions, never reset for the client's
life), each request's message and status, and when an outcome may be handed back:

* an action, or a failed mutation, resolves as soon as its response arrives (failed mutations
  have no side effects to wait for, as in the JS client);
* a successful mutation resolves only once a Transition with ``endVersion.ts`` ≥ its commit
  ``ts`` has been applied *after* its response (a Transition that arrived before the response
  does not count), so a caller that awaits a mutation then reads a query sees its own write;
* on a new socket every mutation, including ones answered but still waiting for a Transition,
  is resent with its original request id so the server can de-duplicate it; actions that were
  sent on the lost socket fail instead (they are not idempotent), while actions that were never
  sent are sent now.

It does not own sockets, versions or query results, and never decodes values.
"""

from __future__ import annotations

import enum
import logging

from client_sdk.calls import decode_args
from reactor.sync.messages import (
    Action,
    ActionResponse,
    FunctionResult,
    Mutation,
    MutationResponse,
    RequestId,
    Timestamp,
)
from schema.values import JsonValue

__all__ = ["RequestManager", "RequestStatus"]

logger = logging.getLogger(__name__)


class RequestStatus(enum.Enum):
    NOT_SENT = "NotSent"  # created while no socket was open; goes out on the next restart
    REQUESTED = "Requested"  # written to a socket, no response yet
    COMPLETED = "Completed"  # mutation answered successfully, waiting for a Transition ≥ ts


class _Request:
    __slots__ = ("message", "result", "status", "ts")

    def __init__(self, message: Mutation | Action, status: RequestStatus) -> None:
        self.message = message
        self.status = status
        self.result: FunctionResult | None = None
        self.ts: Timestamp | None = None


class RequestManager:
    """The client's in-flight requests, in request-id order (see the module docstring)."""

    def __init__(self) -> None:
        self._next_request_id = 0
        self._requests: dict[RequestId, _Request] = {}

    def __len__(self) -> int:
        return len(self._requests)

    def status(self, request_id: RequestId) -> RequestStatus | None:
        """The status of a request, or ``None`` once it has resolved (or never existed)."""
        request = self._requests.get(request_id)
        return None if request is None else request.status

    def udf_path(self, request_id: RequestId) -> str | None:
        request = self._requests.get(request_id)
        return None if request is None else request.message.udf_path

    def add_mutation(self, udf_path: str, args: JsonValue, *, sent: bool) -> Mutation:
        """Register a mutation; returns the message to send now (if ``sent``) or on restart."""
        message = Mutation(self._new_id(), udf_path, decode_args(args))
        self._requests[RequestId(message.request_id)] = _Request(message, _initial(sent))
        return message

    def add_action(self, udf_path: str, args: JsonValue, *, sent: bool) -> Action:
        """Register an action; returns the message to send now (if ``sent``) or on restart."""
        message = Action(self._new_id(), udf_path, decode_args(args))
        self._requests[RequestId(message.request_id)] = _Request(message, _initial(sent))
        return message

    def on_response(self, response: MutationResponse | ActionResponse) -> FunctionResult | None:
        """Record a ``MutationResponse`` or ``ActionResponse``.

        Returns:
            The outcome when the request resolves now (an action, or a failed mutation; the
            request is forgotten), else ``None``: a successful mutation waits for
            :meth:`remove_completed`; a response for an unknown, already answered or
            wrong-kind request is ignored (a resent mutation is answered twice).
        """
        request = self._requests.get(response.request_id)
        if request is None or request.status is RequestStatus.COMPLETED:
            return None
        is_mutation = isinstance(request.message, Mutation)
        if is_mutation != isinstance(response, MutationResponse):
            logger.warning(
                "Ignoring %s for request %d, which is not one",
                type(response).__name__,
                response.request_id,
            )
            return None
        if isinstance(response, MutationResponse) and response.result.success:
            request.status = RequestStatus.COMPLETED
            request.result = response.result
            request.ts = response.ts
            return None
        del self._requests[response.request_id]
        return response.result

    def remove_completed(self, ts: Timestamp) -> list[tuple[RequestId, FunctionResult]]:
        """Resolve answered mutations whose commit ts the server has now reached.

        Call after applying a Transition (and after notifying query subscribers, so callers see
        their writes), with its ``endVersion.ts``.

        Returns:
            ``(request id, outcome)`` pairs in request-id order; those requests are forgotten.
        """
        done: list[tuple[RequestId, FunctionResult]] = []
        for request_id, request in list(self._requests.items()):
            if request.status is RequestStatus.COMPLETED:
                assert request.ts is not None and request.result is not None
                if request.ts <= ts:
                    del self._requests[request_id]
                    done.append((request_id, request.result))
        return done

    def restart(self) -> list[Mutation | Action]:
        """The requests to resend on a new socket, in request-id order, all now REQUESTED.

        Every mutation is resent with its original request id, answered ones included (their
        status stays COMPLETED, so a duplicate response is ignored). Actions appear only if
        they were never sent; call :meth:`connection_lost` first to fail the others.
        """
        messages: list[Mutation | Action] = []
        for request in self._requests.values():
            if request.status is RequestStatus.NOT_SENT:
                request.status = RequestStatus.REQUESTED
                messages.append(request.message)
            elif isinstance(request.message, Mutation):
                messages.append(request.message)
        return messages

    def connection_lost(self) -> list[RequestId]:
        """Forget the actions that were sent on the lost socket; returns their ids to fail."""
        lost = [
            request_id
            for request_id, request in self._requests.items()
            if isinstance(request.message, Action) and request.status is RequestStatus.REQUESTED
        ]
        for request_id in lost:
            del self._requests[request_id]
        return lost

    def remove_all(self) -> list[RequestId]:
        """Forget every request (the client is closing); returns their ids to fail."""
        ids = list(self._requests)
        self._requests.clear()
        return ids

    def _new_id(self) -> int:
        request_id = self._next_request_id
        self._next_request_id += 1
        return request_id


def _initial(sent: bool) -> RequestStatus:
    return RequestStatus.REQUESTED if sent else RequestStatus.NOT_SENT
