"""The sync protocol's messages as the client sees them (PROTOCOL.md §3.1, §4, §5).

Owns: frozen Structs for the client → server messages and their JSON encoding; parsing of
server → client JSON text into frozen Structs (strict where a mistake would corrupt client state,
such as versions and mutation timestamps; lenient where the official clients are, such as a
missing ``logLines``); the padded-base64 little-endian u64 timestamp codec; and
:class:`FunctionResult`, the one shape a query, mutation or action outcome takes. It does not
own any state or ordering rule (``local_state``, ``remote_query_set``, ``request_manager``,
``protocol``) and never touches a socket. Values stay in their encoded JSON form here and are
decoded only when handed to the caller (:meth:`FunctionResult.unwrap`), so one malformed value
fails one call instead of the whole connection. It deliberately does not import the server's
``reactor.sync.messages``: the client must depend on ``schema`` only.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Callable, Mapping
from typing import Any, NewType, TypeAlias

import msgspec

from client_sdk.errors import FunctionFailed, ProtocolMismatch
from schema.errors import ValidationError
from schema.values import JsonValue, Value, convex_to_json, json_to_convex

__all__ = [
    "INITIAL_VERSION",
    "Action",
    "ActionResponse",
    "AddQuery",
    "AuthError",
    "Authenticate",
    "ClientMessage",
    "Connect",
    "FatalError",
    "FunctionResult",
    "ModifyQuerySet",
    "Mutation",
    "MutationResponse",
    "Ping",
    "QueryFailed",
    "QueryId",
    "QueryRemoved",
    "QueryUpdated",
    "RemoveQuery",
    "RequestId",
    "ServerMessage",
    "SessionId",
    "StateModification",
    "StateVersion",
    "Timestamp",
    "Transition",
    "TransitionChunk",
    "UnknownMessage",
    "decode_ts",
    "encode_args",
    "encode_client_message",
    "encode_ts",
    "parse_server_message",
]

QueryId = NewType("QueryId", int)
RequestId = NewType("RequestId", int)
SessionId = NewType("SessionId", str)
Timestamp = NewType("Timestamp", int)

_U32_MAX = (1 << 32) - 1
_U64_MAX = (1 << 64) - 1


# --------------------------------------------------------------------------------------------
# Timestamps (PROTOCOL.md §3.1)
# --------------------------------------------------------------------------------------------


def encode_ts(ts: int) -> str:
    """Encode a u64 as standard, padded base64 of its 8 little-endian bytes."""
    if not 0 <= ts <= _U64_MAX:
        raise ValueError(f"timestamp out of u64 range: {ts}")
    return base64.b64encode(struct.pack("<Q", ts)).decode("ascii")


def decode_ts(text: Any) -> Timestamp:
    """Decode a base64 u64 timestamp; raises :class:`ProtocolMismatch` unless it is 8 bytes."""
    if not isinstance(text, str):
        raise ProtocolMismatch(f"Expected a base64 u64 timestamp, got {text!r}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolMismatch(f"Invalid base64 timestamp {text!r}") from exc
    if len(raw) != 8:
        raise ProtocolMismatch(f"Timestamp {text!r} does not hold exactly 8 bytes")
    return Timestamp(struct.unpack("<Q", raw)[0])


# --------------------------------------------------------------------------------------------
# Client → server (PROTOCOL.md §4). Field names are encoded in camelCase; ``type`` is the tag.
# --------------------------------------------------------------------------------------------


class Connect(
    msgspec.Struct, frozen=True, tag=True, tag_field="type", rename="camel", omit_defaults=True
):
    """First message on every socket; ``max_observed_timestamp`` is omitted until one is seen."""

    session_id: str
    connection_count: int
    last_close_reason: str | None
    max_observed_timestamp: str | None = None
    client_ts: int | None = None


class AddQuery(msgspec.Struct, frozen=True, tag="Add", tag_field="type", rename="camel"):
    """``args`` is the one-element array holding the encoded argument object."""

    query_id: int
    udf_path: str
    args: tuple[JsonValue, ...]
    journal: str | None = None


class RemoveQuery(msgspec.Struct, frozen=True, tag="Remove", tag_field="type", rename="camel"):
    query_id: int


QuerySetModification: TypeAlias = AddQuery | RemoveQuery


class ModifyQuerySet(msgspec.Struct, frozen=True, tag=True, tag_field="type", rename="camel"):
    base_version: int
    new_version: int
    modifications: tuple[QuerySetModification, ...]


class Mutation(msgspec.Struct, frozen=True, tag=True, tag_field="type", rename="camel"):
    request_id: int
    udf_path: str
    args: tuple[JsonValue, ...]


class Action(msgspec.Struct, frozen=True, tag=True, tag_field="type", rename="camel"):
    request_id: int
    udf_path: str
    args: tuple[JsonValue, ...]


class Authenticate(
    msgspec.Struct, frozen=True, tag=True, tag_field="type", rename="camel", omit_defaults=True
):
    """``token_type`` is ``"User"``, ``"Admin"`` or ``"None"`` (log out, no ``value``)."""

    token_type: str
    base_version: int
    value: str | None = None


ClientMessage: TypeAlias = Connect | ModifyQuerySet | Mutation | Action | Authenticate

_encoder = msgspec.json.Encoder()


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


def encode_client_message(message: ClientMessage) -> str:
    """Serialise a client message as the JSON text of one websocket text frame."""
    return _encoder.encode(message).decode("utf-8")


# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------


class FunctionResult(msgspec.Struct, frozen=True):
    """The outcome of a query, mutation or action, values still in encoded JSON.

    Two results compare equal when they would look the same to a caller; log lines are not part
    of a result (they are logged as they arrive). ``has_error_data`` distinguishes a ConvexError
    whose data is ``null`` from a plain failure (PROTOCOL.md §11 trap 9).
    """

    success: bool
    value: JsonValue = None
    error_message: str = ""
    error_data: JsonValue = None
    has_error_data: bool = False

    def unwrap(self) -> Value:
        """Return the decoded value, or raise what the failure means to a caller.

        Raises:
            FunctionFailed: the function failed; ``data`` is the decoded ConvexError data.
            ProtocolMismatch: the server sent a value that is not valid encoded JSON.
        """
        try:
            if self.success:
                return json_to_convex(self.value)
            data = json_to_convex(self.error_data) if self.has_error_data else None
        except ValidationError as exc:
            raise ProtocolMismatch(f"Server sent an invalid value: {exc}") from exc
        raise FunctionFailed(self.error_message, data, has_data=self.has_error_data)


# --------------------------------------------------------------------------------------------
# Server → client (PROTOCOL.md §5)
# --------------------------------------------------------------------------------------------


class StateVersion(msgspec.Struct, frozen=True):
    query_set: int
    identity: int
    ts: Timestamp


INITIAL_VERSION = StateVersion(0, 0, Timestamp(0))


class QueryUpdated(msgspec.Struct, frozen=True):
    query_id: QueryId
    value: JsonValue
    log_lines: tuple[str, ...] = ()
    journal: str | None = None


class QueryFailed(msgspec.Struct, frozen=True):
    query_id: QueryId
    error_message: str
    log_lines: tuple[str, ...] = ()
    journal: str | None = None
    error_data: JsonValue = None
    has_error_data: bool = False


class QueryRemoved(msgspec.Struct, frozen=True):
    query_id: QueryId


StateModification: TypeAlias = QueryUpdated | QueryFailed | QueryRemoved


class Transition(msgspec.Struct, frozen=True):
    start_version: StateVersion
    end_version: StateVersion
    modifications: tuple[StateModification, ...]
    client_clock_skew: int | None = None
    server_ts: int | None = None


class MutationResponse(msgspec.Struct, frozen=True):
    """``ts`` is the commit timestamp of a successful mutation and ``None`` on failure."""

    request_id: RequestId
    result: FunctionResult
    ts: Timestamp | None = None
    log_lines: tuple[str, ...] = ()


class ActionResponse(msgspec.Struct, frozen=True):
    request_id: RequestId
    result: FunctionResult
    log_lines: tuple[str, ...] = ()


class AuthError(msgspec.Struct, frozen=True):
    error: str
    base_version: int | None = None
    auth_update_attempted: bool | None = None


class FatalError(msgspec.Struct, frozen=True):
    error: str


class Ping(msgspec.Struct, frozen=True):
    pass


class TransitionChunk(msgspec.Struct, frozen=True):
    chunk: str
    part_number: int
    total_parts: int
    transition_id: str


class UnknownMessage(msgspec.Struct, frozen=True):
    """A message whose ``type`` this client does not know; the caller logs and ignores it."""

    type: str


ServerMessage: TypeAlias = (
    Transition
    | MutationResponse
    | ActionResponse
    | AuthError
    | FatalError
    | Ping
    | TransitionChunk
    | UnknownMessage
)

_decoder = msgspec.json.Decoder()
_MISSING: Any = object()


def parse_server_message(data: str | bytes) -> ServerMessage:
    """Parse one websocket text frame from the server.

    Raises:
        ProtocolMismatch: the text is not JSON, not an object, or a known message type is
            malformed (``close_reason`` ``"ProtocolError"``).
    """
    try:
        obj = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ProtocolMismatch(f"Server sent invalid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProtocolMismatch(f"Server message is not a JSON object: {obj!r:.80}")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolMismatch("Server message has no string `type`")
    parser = _PARSERS.get(kind)
    if parser is None:
        return UnknownMessage(kind)
    return parser(obj)


def _get(
    obj: dict[str, Any],
    key: str,
    kinds: type | tuple[type, ...],
    where: str,
    default: Any = _MISSING,
) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise ProtocolMismatch(f"{where} is missing `{key}`")
        return default
    # bool is an int subclass; no field here accepts both.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
        raise ProtocolMismatch(f"{where} has an invalid `{key}`: {value!r:.80}")
    return value


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _u32(obj: dict[str, Any], key: str, where: str) -> int:
    value: int = _get(obj, key, int, where)
    if not 0 <= value <= _U32_MAX:
        raise ProtocolMismatch(f"{where} has an out-of-range `{key}`: {value}")
    return value


def _log_lines(obj: dict[str, Any], where: str) -> tuple[str, ...]:
    lines = _get(obj, "logLines", list, where, default=[])
    if not all(isinstance(line, str) for line in lines):
        raise ProtocolMismatch(f"{where} has non-string `logLines`")
    return tuple(lines)


def _state_version(obj: dict[str, Any], key: str) -> StateVersion:
    raw = _get(obj, key, dict, "Transition")
    where = f"Transition.{key}"
    return StateVersion(
        _u32(raw, "querySet", where),
        _u32(raw, "identity", where),
        decode_ts(_get(raw, "ts", str, where)),
    )


def _modification(obj: Any) -> StateModification:
    if not isinstance(obj, dict):
        raise ProtocolMismatch(f"Transition modification is not an object: {obj!r:.80}")
    kind = obj.get("type")
    where = f"{kind}"
    if kind == "QueryUpdated":
        return QueryUpdated(
            QueryId(_u32(obj, "queryId", where)),
            obj.get("value"),  # JS reads a missing value as null
            _log_lines(obj, where),
            _get(obj, "journal", str, where, default=None),
        )
    if kind == "QueryFailed":
        return QueryFailed(
            QueryId(_u32(obj, "queryId", where)),
            _get(obj, "errorMessage", str, where),
            _log_lines(obj, where),
            _get(obj, "journal", str, where, default=None),
            obj.get("errorData"),
            "errorData" in obj,
        )
    if kind == "QueryRemoved":
        return QueryRemoved(QueryId(_u32(obj, "queryId", where)))
    raise ProtocolMismatch(f"Unknown Transition modification type {kind!r}")


def _parse_transition(obj: dict[str, Any]) -> Transition:
    mods = _get(obj, "modifications", list, "Transition")
    return Transition(
        _state_version(obj, "startVersion"),
        _state_version(obj, "endVersion"),
        tuple(_modification(mod) for mod in mods),
        _get(obj, "clientClockSkew", (int, float), "Transition", default=None),
        _get(obj, "serverTs", (int, float), "Transition", default=None),
    )


def _response_result(obj: dict[str, Any], where: str) -> FunctionResult:
    success = _get(obj, "success", bool, where)
    if success:
        return FunctionResult(True, obj.get("result"))
    return FunctionResult(
        False,
        error_message=_get(obj, "result", str, where),
        error_data=obj.get("errorData"),
        has_error_data="errorData" in obj,
    )


def _parse_mutation_response(obj: dict[str, Any]) -> MutationResponse:
    where = "MutationResponse"
    result = _response_result(obj, where)
    ts = decode_ts(_get(obj, "ts", str, where)) if result.success else None
    return MutationResponse(
        RequestId(_u32(obj, "requestId", where)), result, ts, _log_lines(obj, where)
    )


def _parse_action_response(obj: dict[str, Any]) -> ActionResponse:
    where = "ActionResponse"
    return ActionResponse(
        RequestId(_u32(obj, "requestId", where)),
        _response_result(obj, where),
        _log_lines(obj, where),
    )


def _parse_auth_error(obj: dict[str, Any]) -> AuthError:
    where = "AuthError"
    return AuthError(
        _get(obj, "error", str, where, default=""),
        _get(obj, "baseVersion", int, where, default=None),
        _get(obj, "authUpdateAttempted", bool, where, default=None),
    )


def _parse_fatal_error(obj: dict[str, Any]) -> FatalError:
    return FatalError(_get(obj, "error", str, "FatalError", default=""))


def _parse_ping(obj: dict[str, Any]) -> Ping:
    return Ping()


def _parse_transition_chunk(obj: dict[str, Any]) -> TransitionChunk:
    where = "TransitionChunk"
    return TransitionChunk(
        _get(obj, "chunk", str, where),
        _u32(obj, "partNumber", where),
        _u32(obj, "totalParts", where),
        _get(obj, "transitionId", str, where),
    )


_PARSERS: dict[str, Callable[[dict[str, Any]], ServerMessage]] = {
    "Transition": _parse_transition,
    "MutationResponse": _parse_mutation_response,
    "ActionResponse": _parse_action_response,
    "AuthError": _parse_auth_error,
    "FatalError": _parse_fatal_error,
    "Ping": _parse_ping,
    "TransitionChunk": _parse_transition_chunk,
}
