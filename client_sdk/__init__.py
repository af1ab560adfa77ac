"""Reactor's Python client SDK: live queries over the Convex sync protocol, plus HTTP calls.

Exports the websocket clients (:class:`AsyncReactorClient`, and :class:`ReactorClient`, its
blocking facade), their subscription iterators, the HTTP clients, ``Int64`` for int64 arguments,
the typed function references ``reactor codegen --python`` declares,
and the errors callers catch. It depends only on ``schema``, the pure wire codec
``reactor.sync.messages`` (shared with the server) and third-party libraries, never on the rest
of ``reactor`` or on ``functions``.
"""

from __future__ import annotations

from client_sdk.client import (
    AsyncReactorClient,
    QuerySubscription,
    ReactorClient,
    SyncQuerySubscription,
)
from client_sdk.errors import ConnectionLost, FunctionFailed, HttpError, ProtocolMismatch
from client_sdk.http import AsyncHttpReactorClient, HttpReactorClient
from client_sdk.references import (
    ActionReference,
    FunctionReference,
    MutationReference,
    NoArgs,
    QueryReference,
)
from schema.values import Int64

__all__ = [
    "ActionReference",
    "AsyncHttpReactorClient",
    "AsyncReactorClient",
    "ConnectionLost",
    "FunctionFailed",
    "FunctionReference",
    "HttpError",
    "HttpReactorClient",
    "Int64",
    "MutationReference",
    "NoArgs",
    "ProtocolMismatch",
    "QueryReference",
    "QuerySubscription",
    "ReactorClient",
    "SyncQuerySubscription",
]
