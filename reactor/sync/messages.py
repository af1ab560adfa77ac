"""The Convex sync protocol's wire messages, both directions, shared by the server and client_sdk.

Owns the JSON shapes of PROTOCOL.md §4 (client → server: frozen Structs, decoded by the server
with exact ``InvalidMessage`` errors and encoded by the client) and §5 (server → client: encoded
by the server straight to JSON bytes, parsed by the client into frozen Structs), the base64 u64
timestamp codec (§3.1) and ``StateVersion``. It owns no per-connection state or version rules
(``reactor.sync.protocol``, ``client_sdk.protocol``), no sockets and no client-facing errors, and
imports only msgspec, the stdlib and ``schema``. Result values stay convex-encoded JSON here: the
server splices one encoded result into thousands of frames, and the client decodes a value only
when it hands it to a caller, so one malformed value fails one call, not the connection.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import struct
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, NewType, TypeAlias

import msgspec

from schema.errors import InvalidMessage, ValidationError
from schema.values import (
    MAX_ARRAY_LEN,
    MAX_FIELDS,
    MAX_NESTING,
    JsonValue,
    convex_to_json,
    json_to_convex,
)

__all__ = [
    "INITIAL_VERSION",
    "MAX_ARGS_BYTES",
    "MAX_FRAME_DEPTH",
    "MAX_FRAME_VALUES",
    "U32_MAX",
    "U64_MAX",
    "Action",
    "ActionResponse",
    "Add",
    "AuthError",
    "Authenticate",
    "ClientMessage",
    "Connect",
    "Event",
    "FatalError",
    "FunctionResult",
    "ModifyQuerySet",
    "Mutation",
    "MutationResponse",
    "Ping",
    "QueryFailed",
    "QueryId",
    "QueryModification",
    "QueryRemoved",
    "QueryUpdated",
    "RefusedCall",
    "Remove",
    "RequestId",
    "ServerMessage",
    "SessionId",
    "StateModification",
    "StateVersion",
    "Timestamp",
    "TokenType",
    "Transition",
    "TransitionChunk",
    "UnknownMessage",
    "action_response_failure",
    "action_response_success",
    "auth_error",
    "decode_client_message",
    "decode_ts",
    "encode_client_message",
    "encode_ts",
    "fatal_error",
    "mutation_response_failure",
    "mutation_response_success",
    "parse_server_message",
    "ping",
    "query_failed",
    "query_failed_body",
    "query_removed",
    "query_updated",
    "query_updated_body",
    "scan_frame",
    "transition",
    "transition_head",
    "transition_tail",
]

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1

# The wire's identifiers, typed for the client's state; the server passes plain ints.
QueryId = NewType("QueryId", int)
RequestId = NewType("RequestId", int)
SessionId = NewType("SessionId", str)
Timestamp = NewType("Timestamp", int)  # nanoseconds since the Unix epoch

TokenType: TypeAlias = Literal["User", "Admin", "None"]


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


def decode_ts(text: str, /) -> Timestamp:
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
    return Timestamp(int.from_bytes(raw, "little"))


# --------------------------------------------------------------------------------------------
# Bounding a frame before it is decoded (Convex's value limits, CONVEX_SEMANTICS.md §5)
# --------------------------------------------------------------------------------------------

MAX_ARGS_BYTES = 16 * 1024 * 1024
"""Convex's limit on a function's arguments; a client frame may hold this plus its envelope."""
_MAX_ENVELOPE_BYTES = 64 * 1024

MAX_FRAME_DEPTH = MAX_NESTING + 8
"""The deepest bracket nesting a client frame may hold: a value's 16 levels below the deepest
envelope (``ModifyQuerySet`` → ``modifications`` → ``Add`` → ``args`` array → args object),
with slack. Deeper frames are refused before the JSON decoder recurses into them."""

MAX_FRAME_VALUES = 1 << 19
"""The most JSON values one client frame may hold, counted as ``[``, ``{`` and ``,`` outside
strings (an upper bound on the values, not far above it). Convex has no such limit, but its
others imply one: 8,192 array items and 1,024 fields per object within 16 MiB; 524,288 covers
an array of 8,192 objects of 63 fields. It bounds the memory and time a frame's decode takes
(about 0.3 s and 60 MB for the largest allowed frame, against seconds and gigabytes for a
16 MiB frame of empty objects)."""

_KEEP_ONLY_BRACKETS = (bytes.maketrans(b"{}", b"[]"), bytes(set(range(256)) - set(b"[]{}")))


def scan_frame(
    data: bytes,
    /,
    *,
    max_bytes: int = MAX_ARGS_BYTES + _MAX_ENVELOPE_BYTES,
    max_values: int = MAX_FRAME_VALUES,
    max_depth: int = MAX_FRAME_DEPTH,
) -> int:
    """Check a frame's size, value count and nesting without decoding it (a few C-speed passes).

    Strings are cut out first (escaped backslashes, then escaped quotes, are dropped so every
    quote left opens or closes one, as a JSON lexer reads them), so brackets and commas inside
    strings do not count. Depth is found by deleting innermost ``[]`` pairs once per level.

    Returns:
        The value count estimate (``[``, ``{`` and ``,`` outside strings).

    Raises:
        InvalidMessage: the frame is larger than ``max_bytes``, holds more than ``max_values``
            values, or nests (or opens without closing) deeper than ``max_depth``.
    """
    if len(data) > max_bytes:
        raise InvalidMessage(
            f"Invalid message: the frame is {len(data)} bytes, more than the limit of "
            f"{max_bytes} bytes (16 MiB of arguments plus the message)"
        )
    outside = data.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in data else data
    if b'"' in outside:
        outside = b"".join(outside.split(b'"')[0::2])
    values = outside.count(b",") + outside.count(b"[") + outside.count(b"{")
    if values > max_values:
        raise InvalidMessage(
            f"Invalid message: the frame holds more than {max_values} values "
            f"(about {values}); split the data over several calls"
        )
    brackets = outside.translate(*_KEEP_ONLY_BRACKETS)
    levels = 0
    while brackets and levels <= max_depth:
        inner_removed = brackets.replace(b"[]", b"")
        if len(inner_removed) == len(brackets):
            # Unbalanced: only unmatched brackets are left. Invalid JSON, which the decoder
            # reports, unless its unclosed openers would make it recurse too deep first.
            levels += brackets.count(b"[")
            break
        brackets = inner_removed
        levels += 1
    if levels <= max_depth:
        return values
    raise InvalidMessage(
        f"Invalid message: the frame nests more than {max_depth} levels deep "
        f"(Convex values nest at most {MAX_NESTING} levels)"
    )


_CALL_HEAD = re.compile(
    rb'\s*\{\s*(?:"type"\s*:\s*"(Mutation|Action)"\s*,\s*"requestId"\s*:\s*(\d{1,10})'
    rb'|"requestId"\s*:\s*(\d{1,10})\s*,\s*"type"\s*:\s*"(Mutation|Action)")\s*[,}]'
)


def _peek_call(data: bytes, error: str) -> RefusedCall | None:
    """A ``RefusedCall`` for a frame that cannot be decoded but opens with a Mutation's or an
    Action's ``type`` and ``requestId`` (the order both official clients write), else None."""
    match = _CALL_HEAD.match(data)
    if match is None:
        return None
    kind = match[1] or match[4]
    request_id = int(match[2] or match[3])
    if request_id > U32_MAX:
        return None
    return RefusedCall("Mutation" if kind == b"Mutation" else "Action", request_id, error)


# --------------------------------------------------------------------------------------------
# Reading decoded JSON objects, with errors that name the message kind and the field
# --------------------------------------------------------------------------------------------

_json_decoder = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode
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


def _decode_object(data: str | bytes, side: str) -> tuple[str, dict[str, Any]]:
    """Parse one frame into (its ``type``, the object); ``side`` names the sender in errors."""
    try:
        obj = _json_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidMessage(f"Invalid {side}message: not valid JSON ({exc})") from None
    except RecursionError:
        raise InvalidMessage(f"Invalid {side}message: nested too deeply") from None
    if not isinstance(obj, dict):
        raise InvalidMessage(
            f"Invalid {side}message: expected a JSON object, got {_json_type(obj)}"
        )
    kind = obj.get("type", _MISSING)
    if kind is _MISSING:
        raise InvalidMessage(f"Invalid {side}message: missing field `type`")
    if not isinstance(kind, str):
        raise InvalidMessage(f"Invalid {side}message: unknown type {kind!r}")
    return kind, obj


class _Reader:
    """Field access for one message object, raising ``InvalidMessage`` that names kind + field.

    A field read with an ``opt_`` method may be missing or null; every other one is required.
    """

    __slots__ = ("kind", "obj", "prefix")

    def __init__(self, kind: str, obj: dict[str, Any], prefix: str = "") -> None:
        self.kind = kind
        self.obj = obj
        self.prefix = prefix

    def nested(self, key: str, obj: Any) -> _Reader:
        """A reader for the object ``obj`` found at ``key`` (an index path like ``a[0]``)."""
        if not isinstance(obj, dict):
            raise self.invalid(key, f"must be an object, got {_json_type(obj)}")
        return _Reader(self.kind, obj, f"{self.prefix}{key}.")

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

    def opt_number(self, key: str) -> int | float | None:
        value = self.obj.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise self.invalid(key, f"must be a number or null, got {_json_type(value)}")
        return value

    def boolean(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise self.invalid(key, f"must be a boolean, got {_json_type(value)}")
        return value

    def opt_bool(self, key: str) -> bool | None:
        value = self.obj.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.invalid(key, f"must be a boolean or null, got {_json_type(value)}")
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

    def array(self, key: str) -> list[Any]:
        value = self.get(key)
        if not isinstance(value, list):
            raise self.invalid(key, f"must be an array, got {_json_type(value)}")
        return value

    def ts(self, key: str) -> Timestamp:
        return self._decode_ts(key, self.string(key))

    def opt_ts(self, key: str) -> Timestamp | None:
        text = self.opt_string(key)
        return None if text is None else self._decode_ts(key, text)

    def _decode_ts(self, key: str, text: str) -> Timestamp:
        try:
            return decode_ts(text)
        except InvalidMessage as exc:
            raise self.invalid(key, f"must be a base64 u64: {exc}") from None

    def log_lines(self) -> tuple[str, ...]:
        """``logLines``: an array of strings; missing or null reads as none (as in JS)."""
        lines = self.obj.get("logLines")
        if lines is None:
            return ()
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            raise self.invalid("logLines", "must be an array of strings")
        return tuple(lines)

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
        self._check_value_limits(key, raw)
        try:
            value = json_to_convex(raw)
        except ValidationError as exc:
            raise self.invalid(key, f"holds an invalid Convex value: {exc}") from exc
        except OverflowError:
            raise self.invalid(
                key, "holds a number too large for a float64 (use an int64 for integers)"
            ) from None
        if not isinstance(value, dict):
            # A lone "$integer"/"$bytes"/"$float" key decodes to a scalar, not an object.
            raise self.invalid(key, "must be an array holding exactly one object")
        return value

    def _check_value_limits(self, key: str, raw: dict[str, Any]) -> None:
        """Convex's nesting, array-length and field-count limits, checked without recursion
        before the value is decoded (``scan_frame`` already bounded the frame as a whole)."""
        stack: list[tuple[Any, int]] = [(raw, 0)]
        while stack:
            value, depth = stack.pop()
            if isinstance(value, list):
                if len(value) > MAX_ARRAY_LEN:
                    raise self.invalid(
                        key,
                        f"holds an array of {len(value)} elements, more than the limit "
                        f"{MAX_ARRAY_LEN}",
                    )
                children: Iterable[Any] = value
            elif isinstance(value, dict):
                if len(value) == 1 and next(iter(value)).startswith("$"):
                    continue  # an encoded scalar ($integer, $bytes, $float)
                if len(value) > MAX_FIELDS:
                    raise self.invalid(
                        key,
                        f"holds an object of {len(value)} fields, more than the limit {MAX_FIELDS}",
                    )
                children = value.values()
            else:
                continue
            if value and depth >= MAX_NESTING:
                raise self.invalid(key, f"holds a value nested more than {MAX_NESTING} levels")
            stack.extend((child, depth + 1) for child in children)


# --------------------------------------------------------------------------------------------
# Client → server messages (PROTOCOL.md §4). ``args`` hold decoded Convex values on both sides:
# the server decodes them (``decode_client_message``), the client encodes them
# (``encode_client_message``), and the one is the other's inverse.
# --------------------------------------------------------------------------------------------


class Connect(msgspec.Struct, frozen=True):
    """First message on every socket. ``session_id`` is the canonical lowercase UUID text.

    ``max_observed_timestamp`` is the largest ts the client has seen, None until it saw one.
    """

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
    modifications: tuple[Add | Remove, ...]


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


class RefusedCall(msgspec.Struct, frozen=True):
    """A ``Mutation`` or ``Action`` whose ``requestId`` could be read but not the rest (bad or
    too large ``args``, a missing ``udfPath``, a frame over the limits). The server answers it
    with a failed response carrying ``error`` instead of closing: a client whose call the
    server cannot read would otherwise resend it on every reconnect, forever."""

    kind: Literal["Mutation", "Action"]
    request_id: int
    error: str


def _decode_connect(r: _Reader) -> Connect:
    session_text = r.string("sessionId")
    try:
        session_id = str(uuid.UUID(session_text))
    except ValueError:
        raise r.invalid("sessionId", f"must be a UUID, got {session_text!r}") from None
    connection_count = r.u32("connectionCount")
    last_close_reason = r.opt_string("lastCloseReason")
    max_observed = r.opt_ts("maxObservedTimestamp")
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
    modifications: list[Add | Remove] = []
    for i, raw in enumerate(r.array("modifications")):
        m = r.nested(f"modifications[{i}]", raw)
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
    return ModifyQuerySet(base_version, new_version, tuple(modifications))


def _decode_mutation(r: _Reader) -> Mutation | RefusedCall:
    request_id = r.u32("requestId")
    try:
        return Mutation(request_id, r.string("udfPath"), r.args(), r.opt_string("componentPath"))
    except InvalidMessage as exc:
        return RefusedCall("Mutation", request_id, exc.message)


def _decode_action(r: _Reader) -> Action | RefusedCall:
    request_id = r.u32("requestId")
    try:
        return Action(request_id, r.string("udfPath"), r.args(), r.opt_string("componentPath"))
    except InvalidMessage as exc:
        return RefusedCall("Action", request_id, exc.message)


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


_CLIENT_DECODERS: dict[str, Callable[[_Reader], ClientMessage | RefusedCall]] = {
    "Connect": _decode_connect,
    "ModifyQuerySet": _decode_modify_query_set,
    "Mutation": _decode_mutation,
    "Action": _decode_action,
    "Authenticate": _decode_authenticate,
    "Event": _decode_event,
}


def decode_client_message(data: str | bytes, /) -> ClientMessage | RefusedCall:
    """Parse one text frame from a client (the server's side).

    Unknown keys are ignored, as the real server does. Values inside ``args`` are decoded to
    Python Convex values (``schema.values.json_to_convex``). The frame is first bounded by
    ``scan_frame`` (size, value count, depth) and ``args`` by Convex's value limits, so the
    work and memory one frame costs are bounded, whatever it holds.

    Returns:
        The message, or a ``RefusedCall`` for a Mutation or Action whose ``requestId`` was
        read but which is otherwise unreadable: answer it with a failed response.

    Raises:
        InvalidMessage: the frame is not JSON, not an object, is over the limits, has an
            unknown ``type``, or a missing or ill-typed field; the message names the message
            type and the field.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        scan_frame(raw)
        kind, obj = _decode_object(raw, "")
    except InvalidMessage as exc:
        refused = _peek_call(raw, exc.message)
        if refused is None:
            raise
        return refused
    decoder = _CLIENT_DECODERS.get(kind)
    if decoder is None:
        raise InvalidMessage(f"Invalid message: unknown type {kind!r}")
    return decoder(_Reader(kind, obj))


def _call_json(
    kind: str, id_key: str, request_id: int, udf_path: str, args: dict[str, Any], component: Any
) -> dict[str, JsonValue]:
    obj: dict[str, JsonValue] = {
        "type": kind,
        id_key: request_id,
        "udfPath": udf_path,
        "args": [convex_to_json(args)],
    }
    if component is not None:
        obj["componentPath"] = component
    return obj


def _client_message_json(message: ClientMessage) -> dict[str, JsonValue]:
    if isinstance(message, ModifyQuerySet):
        modifications: list[JsonValue] = []
        for m in message.modifications:
            if isinstance(m, Add):
                add = _call_json("Add", "queryId", m.query_id, m.udf_path, m.args, m.component_path)
                add["journal"] = m.journal
                modifications.append(add)
            else:
                modifications.append({"type": "Remove", "queryId": m.query_id})
        return {
            "type": "ModifyQuerySet",
            "baseVersion": message.base_version,
            "newVersion": message.new_version,
            "modifications": modifications,
        }
    if isinstance(message, (Mutation, Action)):
        return _call_json(
            type(message).__name__,
            "requestId",
            message.request_id,
            message.udf_path,
            message.args,
            message.component_path,
        )
    if isinstance(message, Connect):
        obj: dict[str, JsonValue] = {
            "type": "Connect",
            "sessionId": message.session_id,
            "connectionCount": message.connection_count,
            "lastCloseReason": message.last_close_reason,
        }
        if message.max_observed_timestamp is not None:
            obj["maxObservedTimestamp"] = encode_ts(message.max_observed_timestamp)
        if message.client_ts is not None:
            obj["clientTs"] = message.client_ts
        return obj
    if isinstance(message, Authenticate):
        obj = {
            "type": "Authenticate",
            "tokenType": message.token_type,
            "baseVersion": message.base_version,
        }
        if message.value is not None:
            obj["value"] = message.value
        if message.acting_as is not None:
            obj["impersonating"] = message.acting_as
        return obj
    return {"type": "Event", "eventType": message.event_type, "event": message.event}


def encode_client_message(message: ClientMessage, /) -> str:
    """Serialise a client message as the JSON text of one websocket text frame (the client's side).

    ``args`` go out as ``[convex JSON object]``; optional fields that are None are left out
    (except an ``Add``'s ``journal``, always written), so the official servers accept every frame.

    Raises:
        schema.errors.ValidationError: ``args`` hold something that is not a Convex value.
    """
    return _encode(_client_message_json(message)).decode("utf-8")


# --------------------------------------------------------------------------------------------
# Server → client messages (PROTOCOL.md §5), encoded by the server. Every encoder returns UTF-8
# JSON text as bytes; it must go out as a websocket TEXT frame (e.g. ``send_text(data.decode())``),
# never binary. Arguments named ``*_json`` are convex-encoded JSON bytes (``schema.values.dumps``);
# None there means JSON null.
# --------------------------------------------------------------------------------------------


class StateVersion(msgspec.Struct, frozen=True):
    """``{querySet, identity, ts}``; ``ts`` is a u64 (nanoseconds), base64 on the wire."""

    query_set: int
    identity: int
    ts: int


INITIAL_VERSION = StateVersion(0, 0, 0)
"""Where every socket starts: the first Transition's ``startVersion``."""

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
    return transition_head(start, end, modifications) + transition_tail(
        client_clock_skew, server_ts
    )


def transition_head(
    start: StateVersion, end: StateVersion, modifications: Iterable[QueryModification]
) -> bytes:
    """A ``Transition`` up to its modifications: the part sessions whose Transitions are equal
    can share (``transition_head(...) + transition_tail(...)`` is ``transition(...)``)."""
    return b"".join(
        (
            b'{"type":"Transition","startVersion":',
            _state_version(start),
            b',"endVersion":',
            _state_version(end),
            b',"modifications":[',
            b",".join(modifications),
            b"]",
        )
    )


def transition_tail(client_clock_skew: int | None = None, server_ts: int | None = None) -> bytes:
    """The per-session end of a ``Transition``: ``clientClockSkew`` and ``serverTs`` (each only
    when given) and the closing brace."""
    if client_clock_skew is None:
        if server_ts is None:
            return b"}"
        return b',"serverTs":%d}' % server_ts
    if server_ts is None:
        return b',"clientClockSkew":%d}' % client_clock_skew
    return b',"clientClockSkew":%d,"serverTs":%d}' % (client_clock_skew, server_ts)


def transition_tail_prefix(client_clock_skew: int | None = None) -> bytes:
    """A session's part of ``transition_tail(client_clock_skew, server_ts)`` up to the
    ``serverTs`` number: ``transition_tail_prefix(skew) + b"%d}" % server_ts`` is that tail."""
    if client_clock_skew is None:
        return b',"serverTs":'
    return b',"clientClockSkew":%d,"serverTs":' % client_clock_skew


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


# --------------------------------------------------------------------------------------------
# Server → client messages, parsed by the client: strict where a mistake would corrupt client
# state (versions, mutation timestamps), lenient where the official clients are (a missing
# ``logLines`` or ``value``). Values stay convex-encoded JSON.
# --------------------------------------------------------------------------------------------


class FunctionResult(msgspec.Struct, frozen=True):
    """The outcome of a query, mutation or action as the client received it, values still JSON.

    Two results compare equal when they would look the same to a caller; log lines are not part
    of a result (they are logged as they arrive). ``has_error_data`` distinguishes a ConvexError
    whose data is ``null`` from a plain failure (PROTOCOL.md §11 trap 9).
    """

    success: bool
    value: JsonValue = None
    error_message: str = ""
    error_data: JsonValue = None
    has_error_data: bool = False


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
    client_clock_skew: int | float | None = None
    server_ts: int | float | None = None


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


def _parse_state_version(r: _Reader, key: str) -> StateVersion:
    v = r.nested(key, r.get(key))
    return StateVersion(v.u32("querySet"), v.u32("identity"), v.ts("ts"))


def _parse_modification(r: _Reader) -> StateModification:
    kind = r.get("type")
    query_id = QueryId(r.u32("queryId"))
    if kind == "QueryUpdated":
        # JS reads a missing value as null.
        return QueryUpdated(query_id, r.obj.get("value"), r.log_lines(), r.opt_string("journal"))
    if kind == "QueryFailed":
        return QueryFailed(
            query_id,
            r.string("errorMessage"),
            r.log_lines(),
            r.opt_string("journal"),
            r.obj.get("errorData"),
            "errorData" in r.obj,
        )
    if kind == "QueryRemoved":
        return QueryRemoved(query_id)
    raise r.invalid("type", f"must be a Transition modification type, got {kind!r}")


def _parse_transition(r: _Reader) -> Transition:
    start = _parse_state_version(r, "startVersion")
    end = _parse_state_version(r, "endVersion")
    modifications = tuple(
        _parse_modification(r.nested(f"modifications[{i}]", raw))
        for i, raw in enumerate(r.array("modifications"))
    )
    return Transition(
        start, end, modifications, r.opt_number("clientClockSkew"), r.opt_number("serverTs")
    )


def _parse_result(r: _Reader) -> FunctionResult:
    if r.boolean("success"):
        return FunctionResult(True, r.obj.get("result"))
    return FunctionResult(
        False,
        error_message=r.string("result"),
        error_data=r.obj.get("errorData"),
        has_error_data="errorData" in r.obj,
    )


def _parse_mutation_response(r: _Reader) -> MutationResponse:
    request_id = RequestId(r.u32("requestId"))
    result = _parse_result(r)
    ts = r.ts("ts") if result.success else None
    return MutationResponse(request_id, result, ts, r.log_lines())


def _parse_action_response(r: _Reader) -> ActionResponse:
    return ActionResponse(RequestId(r.u32("requestId")), _parse_result(r), r.log_lines())


def _parse_auth_error(r: _Reader) -> AuthError:
    base_version = r.obj.get("baseVersion")
    if base_version is not None and type(base_version) is not int:
        raise r.invalid(
            "baseVersion", f"must be an integer or null, got {_json_type(base_version)}"
        )
    return AuthError(r.opt_string("error") or "", base_version, r.opt_bool("authUpdateAttempted"))


def _parse_fatal_error(r: _Reader) -> FatalError:
    return FatalError(r.opt_string("error") or "")


def _parse_ping(r: _Reader) -> Ping:
    return Ping()


def _parse_transition_chunk(r: _Reader) -> TransitionChunk:
    return TransitionChunk(
        r.string("chunk"), r.u32("partNumber"), r.u32("totalParts"), r.string("transitionId")
    )


_SERVER_PARSERS: dict[str, Callable[[_Reader], ServerMessage]] = {
    "Transition": _parse_transition,
    "MutationResponse": _parse_mutation_response,
    "ActionResponse": _parse_action_response,
    "AuthError": _parse_auth_error,
    "FatalError": _parse_fatal_error,
    "Ping": _parse_ping,
    "TransitionChunk": _parse_transition_chunk,
}


def parse_server_message(data: str | bytes, /) -> ServerMessage:
    """Parse one text frame from the server (the client's side).

    Unknown keys are ignored; an unknown ``type`` gives an ``UnknownMessage``.

    Raises:
        InvalidMessage: the text is not JSON, not an object, or a known message type is
            malformed; the message names the message type and the field.
    """
    kind, obj = _decode_object(data, "server ")
    parser = _SERVER_PARSERS.get(kind)
    if parser is None:
        return UnknownMessage(kind)
    return parser(_Reader(kind, obj))
