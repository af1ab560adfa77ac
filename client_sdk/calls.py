"""A function call as the caller sees it: arguments checked and encoded, outcomes unwrapped.

Owns the checks a caller's ``(path, args)`` must pass before anything is sent, the encoding of
the argument object to convex JSON, and what a received :class:`FunctionResult` means to the
caller: its decoded value, or the error it raises. It does not own the wire shapes
(``reactor.sync.messages``) or when a result arrives (``protocol``, ``request_manager``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from client_sdk.errors import FunctionFailed, ProtocolMismatch
from reactor.sync.messages import FunctionResult
from schema.errors import ValidationError
from schema.values import JsonValue, Value, convex_to_json, json_to_convex

__all__ = ["decode_args", "encode_args", "unwrap"]


def encode_args(path: str, args: Mapping[str, Value] | None) -> JsonValue:
    """Check a function path and encode its argument object as convex JSON.

    Raises:
        TypeError: ``path`` is not a non-empty string or ``args`` is not a mapping.
        schema.errors.ValidationError: an argument is not a Convex value (e.g. an ``int``
            beyond ±2**53; use ``Int64``).
    """
    if not isinstance(path, str) or not path:
        raise TypeError(f"Function path must be a non-empty string, got {path!r}")
    if args is None:
        return {}
    if not isinstance(args, Mapping):
        raise TypeError(f"args must be a dict of argument values, got {type(args).__name__}")
    return convex_to_json(args)


def decode_args(encoded: JsonValue) -> dict[str, Any]:
    """The argument object a message carries, from ``encode_args`` output.

    The result is the caller's arguments as the server will decode them (a plain ``int`` is
    a float there), and a copy: a caller mutating its dict later cannot change a message
    that is resent after a reconnect.
    """
    args: dict[str, Any] = json_to_convex(encoded)
    return args


def unwrap(result: FunctionResult) -> Value:
    """Return the decoded value of a result, or raise what its failure means to a caller.

    Raises:
        FunctionFailed: the function failed; ``data`` is the decoded ConvexError data.
        ProtocolMismatch: the server sent a value that is not valid encoded JSON.
    """
    try:
        if result.success:
            return json_to_convex(result.value)
        data = json_to_convex(result.error_data) if result.has_error_data else None
    except ValidationError as exc:
        raise ProtocolMismatch(f"Server sent an invalid value: {exc}") from exc
    raise FunctionFailed(result.error_message, data, has_data=result.has_error_data)
