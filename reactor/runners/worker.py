"""A function runner process: loads the app, then runs the calls the server sends it.

Started by ``reactor.runners.pool`` as ``python -m reactor.runners.worker FD`` with one end of
a socket pair; the first frame it reads is its ``Init``. It reads the database itself, at the
snapshot each call names (its own read connection to SQLite, or its own MongoDB client), and
answers with the result, the read set and, for a mutation, the prepared commit; the server
commits. An action's ``ctx.run_query``/``run_mutation``, ``ctx.scheduler`` and ``ctx.storage``
are calls back to the server over the same socket. An action past its deadline has its task
cancelled (``Cancel``) and is answered with the timeout error. The process is disposable: the
server kills it when a call does not end in time and starts another, so nothing here cleans up
after app code.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import functools
import itertools
import os
import resource
import signal
import socket
import sys
import traceback
from collections.abc import AsyncIterable, Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import msgspec

from functions import deployment_env
from functions.context import Scheduler
from functions.http_router import HttpRouter, load_http_router
from functions.loader import App, load_app
from functions.manifest import describe_app
from functions.paths import reference_path
from reactor.core.determinism import loop_factory
from reactor.core.log_format import use_json_logging
from reactor.core.persistence import Persistence
from reactor.core.runtime import SystemRuntime
from reactor.core.system_tables import TableRegistry
from reactor.engine.database import Database
from reactor.engine.invocation import OUT_OF_MEMORY, FunctionResult, Invoker
from reactor.engine.served_app import ServedApp
from reactor.engine.transaction import Transaction
from reactor.platform.blobs import BlobStore
from reactor.platform.files import FileStorage
from reactor.platform.scheduler import JobHooks, Scheduler as JobScheduler
from reactor.runners import wire
from reactor.storage import open_reader
from schema.errors import FunctionError, UserError
from schema.values import dumps, loads

__all__ = ["main"]

_PR_SET_PDEATHSIG = 1


class _Remote:
    """The server, seen from this runner: ``Rpc`` frames out, ``Reply`` frames back."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[wire.Reply]] = {}

    async def call(
        self, call_id: int, op: str, args: Any, identity: Mapping[str, Any] | None = None
    ) -> Any:
        rpc_id = next(self._ids)
        future: asyncio.Future[wire.Reply] = asyncio.get_running_loop().create_future()
        self._waiting[rpc_id] = future
        identity_json = None if identity is None else dumps(dict(identity))
        wire.write_frame(self._writer, wire.Rpc(rpc_id, call_id, op, dumps(args), identity_json))
        try:
            reply = await future
        finally:
            self._waiting.pop(rpc_id, None)
        if reply.error is not None:
            if reply.error_data is not None:
                raise UserError(loads(reply.error_data), reply.error)
            raise FunctionError(reply.error)
        return loads(reply.value)

    def answer(self, reply: wire.Reply) -> None:
        future = self._waiting.get(reply.id)
        if future is not None and not future.done():
            future.set_result(reply)


class _RemoteServices:
    """``ActionServices`` of the action of call ``call_id``: each one a call to the server."""

    def __init__(self, remote: _Remote, call_id: int) -> None:
        self._remote = remote
        self._call_id = call_id

    async def _run(
        self, op: str, path: str, args: dict[str, Any], identity: dict[str, Any] | None
    ) -> FunctionResult:
        try:
            value = await self._remote.call(self._call_id, op, [path, args], identity)
        except UserError as exc:
            return FunctionResult(
                False,
                error_message=exc.message,
                error_data_json=dumps(exc.data),
                error_data=exc.data,
            )
        except FunctionError as exc:
            return FunctionResult(False, error_message=exc.message)
        return FunctionResult(True, value=value)

    async def run_query(
        self, path: str, args: dict[str, Any], identity: dict[str, Any] | None
    ) -> FunctionResult:
        return await self._run("query", path, args, identity)

    async def run_mutation(
        self, path: str, args: dict[str, Any], identity: dict[str, Any] | None
    ) -> FunctionResult:
        return await self._run("mutation", path, args, identity)

    def scheduler(self) -> Scheduler:
        return _RemoteScheduler(self._remote, self._call_id)

    def storage(self) -> Any:
        return _RemoteStorage(self._remote, self._call_id)


class _RemoteScheduler:
    """An action's ``ctx.scheduler``: each call commits in the server at once."""

    def __init__(self, remote: _Remote, call_id: int) -> None:
        self._call = functools.partial(remote.call, call_id)

    async def run_after(
        self, delay_s: float, reference: Any, args: Mapping[str, Any] | None = None, /
    ) -> str:
        path = reference_path(reference)
        return str(await self._call("scheduler.run_after", [delay_s, path, args]))

    async def run_at(
        self, timestamp_ms: Any, reference: Any, args: Mapping[str, Any] | None = None, /
    ) -> str:
        if hasattr(timestamp_ms, "timestamp"):  # a datetime
            timestamp_ms = timestamp_ms.timestamp() * 1000.0
        path = reference_path(reference)
        return str(await self._call("scheduler.run_at", [timestamp_ms, path, args]))

    async def cancel(self, job_id: str, /) -> None:
        await self._call("scheduler.cancel", [job_id])


class _RemoteStorage:
    """An action's ``ctx.storage``: each call served by the server's file storage."""

    def __init__(self, remote: _Remote, call_id: int) -> None:
        self._call = functools.partial(remote.call, call_id)

    async def generate_upload_url(self) -> str:
        return str(await self._call("storage.generate_upload_url", []))

    async def get_url(self, storage_id: str) -> str | None:
        value = await self._call("storage.get_url", [storage_id])
        return None if value is None else str(value)

    async def get_metadata(self, storage_id: str) -> dict[str, Any] | None:
        value = await self._call("storage.get_metadata", [storage_id])
        return None if value is None else dict(value)

    async def delete(self, storage_id: str) -> None:
        await self._call("storage.delete", [storage_id])

    async def store(
        self,
        data: AsyncIterable[bytes] | Iterable[bytes] | bytes,
        content_type: str | None = None,
    ) -> str:
        if isinstance(data, (bytes, bytearray, memoryview)):
            content = bytes(data)
        elif isinstance(data, AsyncIterable):
            content = b"".join([bytes(chunk) async for chunk in data])
        else:
            content = b"".join(bytes(chunk) for chunk in data)
        return str(await self._call("storage.store", [content, content_type]))

    async def get(self, storage_id: str) -> bytes | None:
        value = await self._call("storage.get", [storage_id])
        return None if value is None else bytes(value)


class _NoData:
    """The storage of a probe runner: it runs no call, so it never reads."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("a probe runner has no data")


class Worker:
    def __init__(self, init: wire.Init, writer: asyncio.StreamWriter) -> None:
        self.init = init
        self.writer = writer
        self.remote = _Remote(writer)
        self.env: dict[str, str] = dict(init.env)
        self.tables: dict[str, int] = {}
        # The calls running concurrently (an action runner) and not yet answered, and those of
        # them the server cancelled at their deadline (``cancel``), with that deadline.
        self.running: dict[int, asyncio.Task[None]] = {}
        self.timed_out: dict[int, float] = {}
        app = _load(init.directory, self.env)
        self.served = ServedApp(app)
        with deployment_env.using(self.env):
            self.router: HttpRouter | None = load_http_router(app)
        # A probe (``init.storage`` empty) only loads the app: it runs no call.
        self.persistence = (
            open_reader(init.storage) if init.storage else cast(Persistence, _NoData())
        )
        self.runtime = SystemRuntime()
        self.database = Database(
            self.persistence, None, TableRegistry(), self.served, runtime=self.runtime
        )
        scheduler = JobScheduler(self.database, self.served)
        files = None
        if init.blob_directory is not None and init.secret is not None:
            files = FileStorage(
                self.database,
                BlobStore(Path(init.blob_directory)),
                base_url=init.base_url,
                secret=bytes.fromhex(init.secret),
            )
        self.invoker = Invoker(
            registry=lambda: self.served.registry,
            begin=self._begin,
            env=lambda: self.env,
            scheduler=scheduler.handle,
            storage=None if files is None else files.handle,
            job_hooks=lambda job_id: JobHooks(job_id, self.database.now_ms),
            http_router=lambda: self.router,
            dev=init.dev,
        )

    def _begin(self, ts: int, writable: bool, journal: str | None) -> Transaction:
        # A fresh registry per transaction: tables a failed mutation numbered do not linger.
        self.database.tables = TableRegistry(self.tables)
        return self.database.begin(ts, writable=writable, journal=journal)

    def cancel(self, cancel: wire.Cancel) -> None:
        """Call ``cancel.id`` passed its deadline: cancel its task. It answers with the timeout
        error once it ends; a task that swallows the cancellation never does, and the server
        kills this runner after a grace period."""
        task = self.running.get(cancel.id)
        if task is not None and cancel.timeout_s > 0:
            self.timed_out[cancel.id] = cancel.timeout_s
            task.cancel()

    async def handle(self, call: wire.Call) -> None:
        if call.tables is not None:
            self.tables = call.tables
        if call.env is not None:
            self.env = call.env
        args = loads(call.args) if call.args else {}
        identity = None if call.identity is None else loads(call.identity)
        expect = getattr(self.persistence, "expect_commit", None)
        if expect is not None and call.holds:
            expect(call.ts, call.holds)  # a networked engine's snapshot of ts holds this commit
        message: Any
        if call.kind == "query":
            result = await self.invoker.query(
                call.path, args, identity=identity, ts=call.ts, journal=call.journal
            )
            message = wire.encode_result(call.id, result)
        elif call.kind == "mutation" and call.batch is not None:
            batch = await self.invoker.mutation_batch(
                wire.decode_calls(call),
                ts=call.ts,
                hot=frozenset(call.hot) if call.hot else None,
            )
            # A member out of memory ends this process after the answer, as a lone call does.
            result = next(
                (r for r in batch.results if r.error_code == OUT_OF_MEMORY), FunctionResult(True)
            )
            message = wire.encode_batch(call.id, batch)
        elif call.kind == "mutation":
            result = await self.invoker.mutation(
                call.path,
                args,
                identity=identity,
                ts=call.ts,
                job_id=call.job_id,
                hot=frozenset(call.hot) if call.hot else None,
            )
            message = wire.encode_result(call.id, result)
        elif call.kind == "action":
            result = await self.invoker.action(
                call.path, args, identity=identity, services=_RemoteServices(self.remote, call.id)
            )
            message = wire.encode_result(call.id, result)
        else:
            assert call.http is not None
            reply = await self.invoker.http_action(
                wire.decode_http_call(call.http),
                identity=identity,
                auth_error=call.auth_error,
                services=_RemoteServices(self.remote, call.id),
            )
            encoded = None if reply.failure is None else wire.encode_result(call.id, reply.failure)
            result = reply.failure or FunctionResult(True)
            message = wire.HttpDone(
                call.id, reply.status, reply.headers, reply.body, encoded, list(reply.log_lines)
            )
        self.running.pop(call.id, None)  # answered from here on: a late Cancel is ignored
        timeout_s = self.timed_out.pop(call.id, None)
        if timeout_s is not None:  # cancelled at its deadline: whatever it ended with
            message = _timed_out(message, timeout_s)
        try:
            wire.write_frame(self.writer, message)
        except Exception as exc:  # the outcome could not be encoded: report that instead
            failure = FunctionResult(
                False, error_message=f"The function's outcome could not be sent: {exc}"
            )
            wire.write_frame(self.writer, wire.encode_result(call.id, failure))
        await self.writer.drain()
        if result.error_code == OUT_OF_MEMORY:
            os._exit(0)  # after a MemoryError this process is not to be trusted: replaced


def _timed_out(answer: wire.Done | wire.HttpDone, timeout_s: float) -> wire.Done | wire.HttpDone:
    """The answer of a call cancelled at its deadline: the timeout error (its logs kept)."""
    failure = wire.Done(
        answer.id,
        False,
        error_message=wire.timed_out(timeout_s),
        error_code=wire.FUNCTION_TIMEOUT,
        log_lines=answer.log_lines,
    )
    if isinstance(answer, wire.HttpDone):
        return wire.HttpDone(answer.id, 500, [], b"", failure, answer.log_lines)
    return failure


async def _handle(worker: Worker, call: wire.Call) -> None:
    try:
        await worker.handle(call)
    except BaseException as exc:
        timeout_s = worker.timed_out.pop(call.id, None)
        running = worker.running.pop(call.id, None)
        if isinstance(exc, asyncio.CancelledError) and timeout_s is not None and running:
            # Cancelled at its deadline outside the app's code (the invoker makes a
            # cancellation inside it the call's outcome): answer the timeout all the same.
            answer: wire.Done | wire.HttpDone = wire.Done(call.id, False)
            if call.kind == "http":
                answer = wire.HttpDone(call.id, 500, [], b"")
            wire.write_frame(worker.writer, _timed_out(answer, timeout_s))
            return
        # A fault of this runner itself, not of the app's code.
        text = "".join(traceback.format_exception(exc))
        print(f"function runner failed on call {call.id}: {text}", file=sys.stderr)
        os._exit(70)  # the server fails the call and replaces this runner


def _load(directory: str, env: dict[str, str]) -> App:
    with deployment_env.using(env):
        return load_app(directory)


async def _serve(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    first = await wire.read_to_runner(reader)
    if not isinstance(first, wire.Init):
        return
    if first.nice:
        os.nice(first.nice)
    if first.memory_mb:
        limit = first.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        worker = Worker(first, writer)
    except BaseException as exc:
        text = "".join(traceback.format_exception_only(exc)).strip()
        wire.write_frame(writer, wire.LoadFailed(text.encode("utf-8", "replace").decode()))
        await writer.drain()
        return
    manifest = b""
    if not first.storage:  # a probe: the server learns the app from this runner alone
        try:
            with deployment_env.using(worker.env):
                manifest = msgspec.json.encode(describe_app(worker.served.app))
        except BaseException as exc:
            text = "".join(traceback.format_exception_only(exc)).strip()
            wire.write_frame(writer, wire.LoadFailed(text.encode("utf-8", "replace").decode()))
            await writer.drain()
            return
    wire.write_frame(writer, wire.Ready(os.getpid(), len(worker.served.registry), manifest))
    await writer.drain()
    if first.sequential:
        await _serve_in_order(worker, reader)
        return
    tasks: set[asyncio.Task[None]] = set()
    while True:
        message = await wire.read_to_runner(reader)
        if message is None:
            return  # the server went away
        if isinstance(message, wire.Reply):
            worker.remote.answer(message)
        elif isinstance(message, wire.Cancel):
            worker.cancel(message)
        elif isinstance(message, wire.Call):
            task = asyncio.get_running_loop().create_task(_handle(worker, message))
            tasks.add(task)
            worker.running[message.id] = task
            task.add_done_callback(tasks.discard)


async def _serve_in_order(worker: Worker, reader: asyncio.StreamReader) -> None:
    """Run the calls one at a time, in the order they arrive (queries and mutations: the
    server times each from the end of the one before it). Frames are read as they come, so a
    ``Cancel`` for a call still queued here is seen before that call would start."""
    queued: collections.deque[wire.Call] = collections.deque()
    cancelled: set[int] = set()
    arrived = asyncio.Event()
    gone = False

    async def read() -> None:
        nonlocal gone
        while True:
            message = await wire.read_to_runner(reader)
            if message is None:
                gone = True  # the server went away
            elif isinstance(message, wire.Cancel):
                cancelled.add(message.id)
            elif isinstance(message, wire.Call):
                queued.append(message)
            arrived.set()
            if gone:
                return

    reading = asyncio.get_running_loop().create_task(read())
    try:
        while True:
            while not queued:
                if gone:
                    return
                arrived.clear()
                await arrived.wait()
            # Two turns of the loop: frames already sent (a Cancel) are read first.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            call = queued.popleft()
            if call.id in cancelled:
                cancelled.discard(call.id)
                skipped = FunctionResult(False, error_message="Cancelled: it ran elsewhere")
                wire.write_frame(worker.writer, wire.encode_result(call.id, skipped))
                continue
            await _handle(worker, call)
    finally:
        reading.cancel()


def _die_with_parent() -> None:
    """Have the kernel kill this process when the server dies (Linux): a runner stuck in a
    loop would otherwise outlive it, never reading the closed socket."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux: the closed socket still ends an idle runner
    if os.getppid() != parent:  # the server died before the request took effect
        os._exit(1)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    fd = int(argv[0])
    _die_with_parent()
    if os.environ.get("REACTOR_LOG_FORMAT") == "json":  # reactor serve --log-format json
        use_json_logging()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(_serve(fd))
    os._exit(0)  # do not wait for threads app code may have left behind


if __name__ == "__main__":
    main()
