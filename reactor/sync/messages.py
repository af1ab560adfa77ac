"""The Convex sync protocol's wire messages: client-message decoding and server-message encoding.

Owns the JSON shapes of PROTOCOL.md §4 (client → server, decoded into frozen Structs with exact
``InvalidMessage`` errors) and §5 (server → client, encoded straight to JSON bytes), plus the
base64 u64 timestamp codec (§3.1). It does not own per-connection state or version rules
(``reactor.sync.protocol``), sockets (``reactor.server.sync_endpoint``) or the value model
(``schema.values``): values arrive here already encoded as convex JSON bytes, so one result can
be spliced into thousands of messages without being encoded again.
"""

from __future__ import annotations

import base64
import binascii
import functools
import struct
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Literal, TypeAlias

import msgspec

from schema.errors import InvalidMessage, ValidationError
from schema.values import json_to_convex

__all__ = [
    "U32_MAX",
    "U64_MAX",
    "Action",
    "Add",
    "Authenticate",
    "ClientMessage",
    "Connect",
    "Event",
    "ModifyQuerySet",
    "Mutation",
    "QueryModification",
    "Remove",
    "StateVersion",
    "TokenType",
    "action_response_failure",
    "action_response_success",
    "auth_error",
    "decode_client_message",
    "decode_ts",
    "encode_ts",
    "fatal_error",
    "mutation_response_failure",
    "mutation_response_success",
    "ping",
    "query_failed",
    "query_failed_body",
    "query_removed",
    "query_updated",
    "query_updated_body",
    "transition",
]

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1

TokenType: TypeAlias = Literal["User", "Admin", "None"]


# --------------------------------------------------------------------------------------------
# Client → server messages (PROTOCOL.md §4)
# --------------------------------------------------------------------------------------------


class Connect(msgspec.Struct, frozen=True):
    """First message on every socket. ``session_id`` is the canonical lowercase UUID text."""

    session_id: str
    connection_count: int
    last_close_reason: str = "unknown"
    max_observed_timestamp: int | None = None
    client_ts: int | None = None


class Add(msgspec.Struct, frozen=True):
    """Subscribe ``query_id`` to ``udf_path`` (as sent, not canonicalised) with decoded ``args``."""

    query_id: int
    udf_path: str
    args: dict[str, Any]
    journal: str | None = None
    component_path: str | None = None


class Remove(msgspec.Struct, frozen=True):
    query_id: int


class ModifyQuerySet(msgspec.Struct, frozen=True):
    base_version: int
    new_version: int
    modifications: list[Add | Remove]


class Mutation(msgspec.Struct, frozen=True):
    request_id: int
    udf_path: str
    args: dict[str, Any]
    component_path: str | None = None


class Action(msgspec.Struct, frozen=True):
    request_id: int
    udf_path: str
    args: dict[str, Any]
    component_path: str | None = None


class Authenticate(msgspec.Struct, frozen=True):
    """``value`` is the JWT or admin key (None for ``token_type="None"``, i.e. logout).

    ``acting_as`` is the raw UserIdentityAttributes object sent as ``impersonating`` (JS) or
    ``acting_as`` (Rust) with admin tokens.
    """

    token_type: TokenType
    value: str | None
    base_version: int
    acting_as: dict[str, Any] | None = None


class Event(msgspec.Struct, frozen=True):
    """Client telemetry; servers ignore it. ``event`` is arbitrary JSON."""

    event_type: str
    event: Any = None


ClientMessage: TypeAlias = Connect | ModifyQuerySet | Mutation | Action | Authenticate | Event

_json_decoder = msgspec.json.Decoder()
_MISSING: Any = object()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class _Reader:
    """Field access for one message object, raising ``InvalidMessage`` that names kind + field."""

    __slots__ = ("kind", "obj", "prefix")

    def __init__(self, kind: str, obj: dict[str, Any], prefix: str = "") -> None:
        self.kind = kind
        self.obj = obj
        self.prefix = prefix

    def invalid(self, key: str, expectation: str) -> InvalidMessage:
        return InvalidMessage(
            f"Invalid {self.kind} message: field `{self.prefix}{key}` {expectation}"
        )

    def get(self, key: str) -> Any:
        value = self.obj.get(key, _MISSING)
        if value is _MISSING:
            raise InvalidMessage(f"Invalid {self.kind} message: missing field `{self.prefix}{key}`")
        return value

    def u32(self, key: str) -> int:
        value = self.get(key)
        if type(value) is not int:
            raise self.invalid(key, f"must be an integer, got {_json_type(value)}")
        if not 0 <= value <= U32_MAX:
            raise self.invalid(key, f"must be a u32 (0 to {U32_MAX}), got {value}")
        return value

    def opt_i64(self, key: str) -> int | None:
        value = self.obj.get(key)
        if value is None:
            return None
        if type(value) is not int:
            raise self.invalid(key, f"must be an integer or null, got {_json_type(value)}")
        if not _I64_MIN <= value <= _I64_MAX:
            raise self.invalid(key, f"must be an i64, got {value}")
        return value

    def string(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            raise self.invalid(key, f"must be a string, got {_json_type(value)}")
        return value

    def opt_string(self, key: str) -> str | None:
        value = self.obj.get(key)
        if value is not None and not isinstance(value, str):
            raise self.invalid(key, f"must be a string or null, got {_json_type(value)}")
        return value

    def opt_object(self, key: str) -> dict[str, Any] | None:
        value = self.obj.get(key)
        if value is not None and not isinstance(value, dict):
            raise self.invalid(key, f"must be an object or null, got {_json_type(value)}")
        return value

    def args(self, key: str = "args") -> dict[str, Any]:
        """``[obj]`` (what every client sends) or a bare ``obj``, decoded as Convex values."""
        raw = self.get(key)
        if isinstance(raw, list):
            if len(raw) != 1 or not isinstance(raw[0], dict):
                raise self.invalid(key, "must be an array holding exactly one object")
            raw = raw[0]
        elif not isinstance(raw, dict):
            raise self.invalid(
                key, f"must be an array holding exactly one object, got {_json_type(raw)}"
            )
        try:
            value = json_to_convex(raw)
        except ValidationError as exc:
            raise self.invalid(key, f"holds an invalid Convex value: {exc}") from exc
        if not isinstance(value, dict):
            # A lone "$integer"/"$bytes"/"$float" key decodes to a scalar, not an object.
            raise self.invalid(key, "must be an array holding exactly one object")
        return value


def _decode_connect(r: _Reader) -> Connect:
    session_text = r.string("sessionId")
    try:
        session_id = str(uuid.UUID(session_text))
    except ValueError:
        raise r.invalid("sessionId", f"must be a UUID, got {session_text!r}") from None
    connection_count = r.u32("connectionCount")
    last_close_reason = r.opt_string("lastCloseReason")
    max_observed_text = r.opt_string("maxObservedTimestamp")
    max_observed: int | None = None
    if max_observed_text is not None:
        try:
            max_observed = decode_ts(max_observed_text)
        except InvalidMessage as exc:
            raise r.invalid("maxObservedTimestamp", f"must be a base64 u64: {exc}") from None
    return Connect(
        session_id,
        connection_count,
        "unknown" if last_close_reason is None else last_close_reason,
        max_observed,
        r.opt_i64("clientTs"),
    )


def _decode_modify_query_set(r: _Reader) -> ModifyQuerySet:
    base_version = r.u32("baseVersion")
    new_version = r.u32("newVersion")
    raw_modifications = r.get("modifications")
    if not isinstance(raw_modifications, list):
        raise r.invalid("modifications", f"must be an array, got {_json_type(raw_modifications)}")
    modifications: list[Add | Remove] = []
    for i, raw in enumerate(raw_modifications):
        prefix = f"modifications[{i}]"
        if not isinstance(raw, dict):
            raise r.invalid(prefix, f"must be an object, got {_json_type(raw)}")
        m = _Reader(r.kind, raw, prefix + ".")
        kind = m.get("type")
        if kind == "Add":
            modifications.append(
                Add(
                    m.u32("queryId"),
                    m.string("udfPath"),
                    m.args(),
                    m.opt_string("journal"),
                    m.opt_string("componentPath"),
                )
            )
        elif kind == "Remove":
            modifications.append(Remove(m.u32("queryId")))
        else:
            raise m.invalid("type", f'must be "Add" or "Remove", got {kind!r}')
    return ModifyQuerySet(base_version, new_version, modifications)


def _decode_mutation(r: _Reader) -> Mutation:
    return Mutation(
        r.u32("requestId"), r.string("udfPath"), r.args(), r.opt_string("componentPath")
    )


def _decode_action(r: _Reader) -> Action:
    return Action(r.u32("requestId"), r.string("udfPath"), r.args(), r.opt_string("componentPath"))


def _decode_authenticate(r: _Reader) -> Authenticate:
    token_type = r.get("tokenType")
    base_version = r.u32("baseVersion")
    if token_type == "None":
        return Authenticate("None", None, base_version)
    if token_type not in ("User", "Admin"):
        raise r.invalid("tokenType", f'must be "User", "Admin" or "None", got {token_type!r}')
    value = r.string("value")
    acting_as = r.opt_object("impersonating")
    if acting_as is None:
        acting_as = r.opt_object("acting_as")
    return Authenticate(token_type, value, base_version, acting_as)


def _decode_event(r: _Reader) -> Event:
    return Event(r.string("eventType"), r.obj.get("event"))


_DECODERS: dict[str, Any] = {
    "Connect": _decode_connect,
    "ModifyQuerySet": _decode_modify_query_set,
    "Mutation": _decode_mutation,
    "Action": _decode_action,
    "Authenticate": _decode_authenticate,
    "Event": _decode_event,
}


def decode_client_message(data: str | bytes, /) -> ClientMessage:
    """Parse one text frame from a client.

    Unknown keys are ignored, as the real server does. Values inside ``args`` are decoded to
    Python Convex values (``schema.values.json_to_convex``).

    Raises:
        InvalidMessage: the frame is not JSON, not an object, has an unknown ``type``, or a
            missing or ill-typed field; the message names the message type and the field.
    """
    try:
        obj = _json_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidMessage(f"Invalid message: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise InvalidMessage(f"Invalid message: expected a JSON object, got {_json_type(obj)}")
    kind = obj.get("type", _MISSING)
    if kind is _MISSING:
        raise InvalidMessage("Invalid message: missing field `type`")
    decoder = _DECODERS.get(kind) if isinstance(kind, str) else None
    if decoder is None:
        raise InvalidMessage(f"Invalid message: unknown type {kind!r}")
    message: ClientMessage = decoder(_Reader(kind, obj))
    return message


# --------------------------------------------------------------------------------------------
# Timestamps (PROTOCOL.md §3.1)
# --------------------------------------------------------------------------------------------

_pack_u64 = struct.Struct("<Q").pack


def encode_ts(ts: int, /) -> str:
    """Encode a u64 as padded standard base64 of its 8 little-endian bytes (0 → "AAAAAAAAAAA=")."""
    return _ts_b64(ts).decode("ascii")


@functools.lru_cache(maxsize=1024, typed=True)
def _ts_b64(ts: int) -> bytes:
    # Cached: one commit ts is encoded into the Transition of every subscribed session.
    if type(ts) is not int or not 0 <= ts <= U64_MAX:
        raise ValueError(f"Timestamp must be an int in the u64 range, got {ts!r}")
    return base64.b64encode(_pack_u64(ts))


def decode_ts(text: str, /) -> int:
    """Decode a padded standard base64 u64 (exactly 8 bytes, little-endian).

    Raises:
        InvalidMessage: not a string, not padded standard base64, or not 8 bytes.
    """
    if not isinstance(text, str):
        raise InvalidMessage(f"Invalid timestamp: expected a base64 string, got {_json_type(text)}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidMessage(f"Invalid timestamp {text!r}: not padded standard base64") from None
    if len(raw) != 8:
        raise InvalidMessage(f"Invalid timestamp {text!r}: expected 8 bytes, got {len(raw)}")
    return int.from_bytes(raw, "little")


# --------------------------------------------------------------------------------------------
# Server → client messages (PROTOCOL.md §5). Every encoder returns UTF-8 JSON text as bytes; it
# must go out as a websocket TEXT frame (e.g. ``send_text(data.decode())``), never binary.
# Arguments named ``*_json`` are convex-encoded JSON bytes (``schema.values.dumps``); None there
# means JSON null.
# --------------------------------------------------------------------------------------------


class StateVersion(msgspec.Struct, frozen=True):
    """``{querySet, identity, ts}``; ``ts`` is a u64 (nanoseconds), encoded as base64 on the wire."""

    query_set: int
    identity: int
    ts: int


_encode = msgspec.json.Encoder().encode
_NULL = b"null"
_EMPTY_ARRAY = b"[]"


def _log_lines(lines: Sequence[str]) -> bytes:
    return _encode(lines) if lines else _EMPTY_ARRAY


def _value(value_json: bytes | None) -> bytes:
    return _NULL if value_json is None else value_json


def _journal(journal: str | None) -> bytes:
    return _NULL if journal is None else _encode(journal)


def _state_version(version: StateVersion) -> bytes:
    return b'{"querySet":%d,"identity":%d,"ts":"%b"}' % (
        version.query_set,
        version.identity,
        _ts_b64(version.ts),
    )


QueryModification: TypeAlias = bytes
"""One encoded element of ``Transition.modifications`` (from ``query_updated`` etc.)."""

QUERY_UPDATED_HEAD = b'{"type":"QueryUpdated","queryId":%d,'
QUERY_FAILED_HEAD = b'{"type":"QueryFailed","queryId":%d,'


def query_updated_body(
    value_json: bytes | None, log_lines: Sequence[str] = (), journal: str | None = None
) -> bytes:
    """The id-independent rest of a ``QueryUpdated``: ``QUERY_UPDATED_HEAD % query_id + body``.

    Encode it once per result and reuse it for every session that subscribes to the query.
    """
    return b"".join(
        (
            b'"value":',
            _value(value_json),
            b',"logLines":',
            _log_lines(log_lines),
            b',"journal":',
            _journal(journal),
            b"}",
        )
    )


def query_failed_body(
    message: str,
    error_data_json: bytes | None = None,
    log_lines: Sequence[str] = (),
    journal: str | None = None,
) -> bytes:
    """The id-independent rest of a ``QueryFailed``: ``QUERY_FAILED_HEAD % query_id + body``.

    ``errorData`` is written only when ``error_data_json`` is given (a ConvexError); JSON null
    data must be passed as ``b"null"``, which clients read as a ConvexError with null data.
    """
    parts = [
        b'"errorMessage":',
        _encode(message),
        b',"logLines":',
        _log_lines(log_lines),
        b',"journal":',
        _journal(journal),
    ]
    if error_data_json is not None:
        parts += (b',"errorData":', error_data_json)
    parts.append(b"}")
    return b"".join(parts)


def query_updated(
    query_id: int,
    value_json: bytes | None,
    log_lines: Sequence[str] = (),
    journal: str | None = None,
) -> QueryModification:
    """``{"type":"QueryUpdated","queryId","value","logLines","journal"}`` (all always present)."""
    return QUERY_UPDATED_HEAD % query_id + query_updated_body(value_json, log_lines, journal)


def query_failed(
    query_id: int,
    message: str,
    error_data_json: bytes | None = None,
    log_lines: Sequence[str] = (),
    journal: str | None = None,
) -> QueryModification:
    """``{"type":"QueryFailed",...}``; ``errorData`` only when ``error_data_json`` is given."""
    return QUERY_FAILED_HEAD % query_id + query_failed_body(
        message, error_data_json, log_lines, journal
    )


def query_removed(query_id: int) -> QueryModification:
    return b'{"type":"QueryRemoved","queryId":%d}' % query_id


def transition(
    start: StateVersion,
    end: StateVersion,
    modifications: Iterable[QueryModification],
    *,
    client_clock_skew: int | None = None,
    server_ts: int | None = None,
) -> bytes:
    """Encode a ``Transition``; ``modifications`` are already-encoded elements, sent in order.

    ``clientClockSkew`` (ms) and ``serverTs`` (ns, a JSON number) are written only when given.
    """
    parts = [
        b'{"type":"Transition","startVersion":',
        _state_version(start),
        b',"endVersion":',
        _state_version(end),
        b',"modifications":[',
        b",".join(modifications),
        b"]",
    ]
    if client_clock_skew is not None:
        parts.append(b',"clientClockSkew":%d' % client_clock_skew)
    if server_ts is not None:
        parts.append(b',"serverTs":%d' % server_ts)
    parts.append(b"}")
    return b"".join(parts)


def mutation_response_success(
    request_id: int, result_json: bytes | None, ts: int, log_lines: Sequence[str] = ()
) -> bytes:
    """``{"type":"MutationResponse","requestId","success":true,"result","ts","logLines"}``.

    ``ts`` is the commit timestamp; JS requires it. Follow with a Transition whose
    ``endVersion.ts >= ts`` or the client's mutation never resolves.
    """
    return b"".join(
        (
            b'{"type":"MutationResponse","requestId":%d,"success":true,"result":' % request_id,
            _value(result_json),
            b',"ts":"',
            _ts_b64(ts),
            b'","logLines":',
            _log_lines(log_lines),
            b"}",
        )
    )


def _failure(
    head: bytes,
    message: str,
    error_data_json: bytes | None,
    log_lines: Sequence[str],
    after_result: bytes = b"",
) -> bytes:
    parts = [head, _encode(message), after_result, b',"logLines":', _log_lines(log_lines)]
    if error_data_json is not None:
        parts += (b',"errorData":', error_data_json)
    parts.append(b"}")
    return b"".join(parts)


def mutation_response_failure(
    request_id: int,
    message: str,
    error_data_json: bytes | None = None,
    log_lines: Sequence[str] = (),
) -> bytes:
    """A failed ``MutationResponse``: ``result`` is the message string and ``"ts":null``.

    ``errorData`` is written only when given (ConvexError). Rust/Python clients still wait for a
    Transition before a ConvexError failure resolves, so follow with one.
    """
    return _failure(
        b'{"type":"MutationResponse","requestId":%d,"success":false,"result":' % request_id,
        message,
        error_data_json,
        log_lines,
        b',"ts":null',
    )


def action_response_success(
    request_id: int, result_json: bytes | None, log_lines: Sequence[str] = ()
) -> bytes:
    """``{"type":"ActionResponse","requestId","success":true,"result","logLines"}`` (no ts)."""
    return b"".join(
        (
            b'{"type":"ActionResponse","requestId":%d,"success":true,"result":' % request_id,
            _value(result_json),
            b',"logLines":',
            _log_lines(log_lines),
            b"}",
        )
    )


def action_response_failure(
    request_id: int,
    message: str,
    error_data_json: bytes | None = None,
    log_lines: Sequence[str] = (),
) -> bytes:
    """A failed ``ActionResponse``: ``result`` is the message; ``errorData`` only when given."""
    return _failure(
        b'{"type":"ActionResponse","requestId":%d,"success":false,"result":' % request_id,
        message,
        error_data_json,
        log_lines,
    )


def auth_error(
    error: str, base_version: int | None, auth_update_attempted: bool | None = None
) -> bytes:
    """``{"type":"AuthError","error","baseVersion","authUpdateAttempted"?}``.

    ``authUpdateAttempted`` is omitted when None. Send it as the last message, then close.
    """
    parts = [
        b'{"type":"AuthError","error":',
        _encode(error),
        b',"baseVersion":',
        _NULL if base_version is None else b"%d" % base_version,
    ]
    if auth_update_attempted is not None:
        parts += (b',"authUpdateAttempted":', b"true" if auth_update_attempted else b"false")
    parts.append(b"}")
    return b"".join(parts)


def fatal_error(error: str) -> bytes:
    """``{"type":"FatalError","error"}``: terminal for JS clients (kills Node); use sparingly."""
    return b'{"type":"FatalError","error":' + _encode(error) + b"}"


_PING = b'{"type":"Ping"}'


def ping() -> bytes:
    """``{"type":"Ping"}``: send after 15 s without other outgoing text."""
    return _PING
