"""The messages between the server and a function runner, and their framing.

Owns the one encoding both sides use: length-prefixed MessagePack frames of typed structs
(decoding checks every field's type, so a runner cannot make the server build arbitrary
objects), with Convex values inside as Convex JSON bytes (``schema.values``), so ``Int64``,
``bytes`` and ``float`` survive exactly. Pure: no I/O beyond the stream it is handed.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import msgspec

from reactor.core.intervals import Interval
from reactor.core.persistence import Commit, CommitRequest, DocumentLogEntry, IndexEntry
from reactor.core.reads import ReadSet
from reactor.engine.invocation import (
    FunctionResult,
    HttpCall,
    HttpReply,
    MutationBatch,
    MutationCall,
)
from schema.values import dumps, loads

__all__ = [
    "FUNCTION_TIMEOUT",
    "Call",
    "Cancel",
    "Done",
    "HttpDone",
    "Init",
    "LoadFailed",
    "Ready",
    "Reply",
    "Rpc",
    "batch_call",
    "decode_batch",
    "decode_calls",
    "decode_commit",
    "decode_result",
    "encode_batch",
    "encode_commit",
    "encode_result",
    "read_from_runner",
    "read_to_runner",
    "timed_out",
    "write_frame",
]

MAX_FRAME = 1 << 30
_LENGTH = struct.Struct("<I")
FUNCTION_TIMEOUT = "FunctionTimeout"  # the error code of a call that passed its deadline


def timed_out(timeout_s: float) -> str:
    """Convex's error message for a call that ran past its deadline of ``timeout_s``."""
    return f"Function execution timed out (maximum duration: {timeout_s:g}s)"


class Init(msgspec.Struct, tag="init", array_like=True):
    """Server → runner, first frame: what to load and where the data is (never in argv: it
    carries the environment variables and the URL-signing secret)."""

    directory: str
    storage: str
    env: dict[str, str]
    dev: bool = False
    memory_mb: int = 0
    blob_directory: str | None = None
    secret: str | None = None
    base_url: str = "http://127.0.0.1:3210"
    sequential: bool = False  # run calls one at a time, in the order sent
    nice: int = 0  # how much lower than the server's this process's CPU priority is


class Call(msgspec.Struct, tag="call", array_like=True):
    """Server → runner: run one function. ``tables``/``env`` come when they changed."""

    id: int
    kind: str  # "query" | "mutation" | "action" | "http"
    path: str
    args: bytes
    identity: bytes | None = None
    ts: int = 0
    journal: str | None = None
    job_id: str | None = None
    tables: dict[str, int] | None = None
    env: dict[str, str] | None = None
    http: tuple[str, str, bytes, list[tuple[bytes, bytes]], bytes, str, tuple[str, int]] | None = (
        None
    )
    auth_error: tuple[str, str] | None = None
    hot: list[str] | None = None  # a mutation's first run stops reading one of these documents
    holds: int = 0  # the newest commit at or below ``ts``: what the snapshot must hold
    # A batch of mutations run in one transaction (``Invoker.mutation_batch``), each as
    # (path, args, identity, job_id); then ``path`` only names the call.
    batch: list[tuple[str, bytes, bytes | None, str | None]] | None = None


class Cancel(msgspec.Struct, tag="cancel", array_like=True):
    """Server → runner. ``timeout_s`` 0, to a sequential runner: skip queued ``Call`` ``id``
    if it has not started (it was taken back and runs elsewhere); the runner still answers it,
    with a failed ``Done``. ``timeout_s`` > 0, to a concurrent (action) runner: call ``id``
    passed its deadline of that many seconds: cancel its task and answer it, once the task has
    ended, with the timeout error (``timed_out``); the runner's other calls run on."""

    id: int
    timeout_s: float = 0.0


class Reply(msgspec.Struct, tag="reply", array_like=True):
    """Server → runner: the answer to an ``Rpc`` (``error`` set when it failed)."""

    id: int
    value: bytes = b"null"
    error: str | None = None
    error_data: bytes | None = None


class Ready(msgspec.Struct, tag="ready", array_like=True):
    """Runner → server: the app loaded, with how many functions; a probe runner adds the
    app's manifest (``functions.manifest``, as JSON): all the server learns of the app."""

    pid: int
    functions: int
    manifest: bytes = b""


class LoadFailed(msgspec.Struct, tag="load_failed", array_like=True):
    message: str


class Done(msgspec.Struct, tag="done", array_like=True):
    """Runner → server: the outcome of ``Call`` ``id``."""

    id: int
    success: bool
    value: bytes = b"null"
    error_message: str = ""
    error_data: bytes | None = None
    error_code: str | None = None
    log_lines: list[str] = []
    identity_read: bool = False
    journal: str | None = None
    reads: list[tuple[str, bytes, bytes | None]] = []
    commit: (
        tuple[
            list[tuple[str, str, bytes | None]],
            list[tuple[str, bytes, str, bytes | None]],
            dict[str, list[bytes]],
            dict[str, list[bytes]],
            str | None,
            dict[str, int],
        ]
        | None
    ) = None
    job_gone: bool = False
    retryable: bool = False
    documents_read: int = 0
    traceback: str | None = None
    deferred: str | None = None  # the ``Call.hot`` document whose read stopped the run
    # A batch's outcomes, of the mutations that ran (``commit`` and ``reads`` are all of theirs)
    batch: list[Done] | None = None
    documents_written: int = 0  # by a mutation of a batch (else counted from ``commit``)


class HttpDone(msgspec.Struct, tag="http_done", array_like=True):
    id: int
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    failure: Done | None = None
    log_lines: list[str] = []


class Rpc(msgspec.Struct, tag="rpc", array_like=True):
    """Runner → server: an action's ``ctx`` needs the server (``op`` with Convex JSON args)."""

    id: int
    call_id: int
    op: str
    args: bytes
    identity: bytes | None = None


ToRunner = Init | Call | Reply | Cancel
FromRunner = Ready | LoadFailed | Done | HttpDone | Rpc

_encoder = msgspec.msgpack.Encoder()
_to_runner = msgspec.msgpack.Decoder(ToRunner)
_from_runner = msgspec.msgpack.Decoder(FromRunner)


def _frame(message: Any) -> bytes:
    body = _encoder.encode(message)
    return _LENGTH.pack(len(body)) + body


def write_frame(writer: asyncio.StreamWriter, message: Any) -> None:
    writer.write(_frame(message))


async def _read(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readexactly(_LENGTH.size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    (size,) = _LENGTH.unpack(head)
    if size > MAX_FRAME:
        raise ValueError(f"runner frame of {size} bytes exceeds {MAX_FRAME}")
    try:
        return await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


async def read_to_runner(reader: asyncio.StreamReader) -> Init | Call | Reply | Cancel | None:
    body = await _read(reader)
    return None if body is None else _to_runner.decode(body)


async def read_from_runner(
    reader: asyncio.StreamReader,
) -> Ready | LoadFailed | Done | HttpDone | Rpc | None:
    body = await _read(reader)
    return None if body is None else _from_runner.decode(body)


# -- results and commits ---------------------------------------------------------------------


def encode_commit(request: CommitRequest) -> Any:
    commit = request.build(0)
    return (
        [(d.id, d.table, d.value) for d in commit.documents],
        [(e.index_id, e.key, e.document_id, e.value) for e in commit.indexes],
        request.write_keys,
        request.write_prefixes,
        request.table,
        dict(request.tables),
    )


def decode_commit(begin_ts: int, reads: ReadSet, parts: Any) -> CommitRequest:
    documents_raw, indexes_raw, write_keys, write_prefixes, table, tables = parts
    documents = [DocumentLogEntry(i, t, v, None) for i, t, v in documents_raw]
    entries = [IndexEntry(iid, key, doc, value) for iid, key, doc, value in indexes_raw]
    writes = [(d.table, d.id, None if d.value is None else loads(d.value)) for d in documents]
    request = CommitRequest(
        begin_ts,
        reads,
        write_keys,
        lambda ts: Commit(ts, documents, entries, request.tables),
        table,
        writes,
        write_prefixes,
        tables=tables,
    )
    return request


def encode_result(call_id: int, result: FunctionResult) -> Done:
    # A query's read set, or the one a mutation's commit is checked against (without it the
    # server's OCC check would see no reads and let lost updates through).
    read_set = result.commit.read_set if result.commit is not None else result.read_set
    reads: list[tuple[str, bytes, bytes | None]] = []
    if read_set is not None:
        reads = [(iid, iv.start, iv.end) for iid, iv in read_set.items()]
    return Done(
        call_id,
        result.success,
        result.value_json,
        result.error_message,
        result.error_data_json,
        result.error_code,
        list(result.log_lines),
        result.identity_read,
        result.journal,
        reads,
        None if result.commit is None else encode_commit(result.commit),
        result.job_gone,
        result.retryable,
        result.documents_read,
        result.traceback,
        result.deferred,
        None,
        result.documents_written,
    )


def decode_result(done: Done, ts: int) -> FunctionResult:
    reads = ReadSet()
    for iid, start, end in done.reads:
        reads.add(iid, Interval(start, end))
    result = FunctionResult(
        done.success,
        value=loads(done.value) if done.success else None,
        value_json=done.value,
        error_message=done.error_message,
        error_data_json=done.error_data,
        error_data=None if done.error_data is None else loads(done.error_data),
        ts=ts,
        read_set=reads,
        identity_read=done.identity_read,
        journal=done.journal,
        log_lines=tuple(done.log_lines),
        retryable=done.retryable,
        error_code=done.error_code,
        job_gone=done.job_gone,
        documents_read=done.documents_read,
        traceback=done.traceback,
        deferred=done.deferred,
        documents_written=done.documents_written,
    )
    if done.commit is not None:
        result.commit = decode_commit(ts, reads, done.commit)
    return result


def batch_call(calls: list[MutationCall]) -> list[tuple[str, bytes, bytes | None, str | None]]:
    """``Call.batch`` of ``calls``."""
    return [
        (c.path, dumps(c.args), None if c.identity is None else dumps(c.identity), c.job_id)
        for c in calls
    ]


def decode_calls(call: Call) -> list[MutationCall]:
    """The mutations of a batch ``call``."""
    assert call.batch is not None
    return [
        MutationCall(path, loads(args), None if identity is None else loads(identity), job_id)
        for path, args, identity, job_id in call.batch
    ]


def encode_batch(call_id: int, batch: MutationBatch) -> Done:
    """The ``Done`` of a batch: its commit and read set, and each outcome (without either)."""
    done = encode_result(call_id, FunctionResult(True, commit=batch.commit))
    done.batch = [encode_result(call_id, result) for result in batch.results]
    return done


def decode_batch(done: Done, ts: int) -> MutationBatch:
    head = decode_result(done, ts)
    return MutationBatch([decode_result(item, ts) for item in done.batch or ()], head.commit)


def http_call(call: HttpCall) -> Any:
    return (
        call.method,
        call.path,
        call.query_string,
        call.headers,
        call.body,
        call.scheme,
        call.server,
    )


def decode_http_call(parts: Any) -> HttpCall:
    method, path, query_string, headers, body, scheme, server = parts
    return HttpCall(method, path, query_string, headers, body, scheme, tuple(server))


def http_reply(done: HttpDone, ts: int) -> HttpReply:
    failure = None if done.failure is None else decode_result(done.failure, ts)
    return HttpReply(done.status, done.headers, done.body, failure, tuple(done.log_lines))
