"""Serve an in-memory mongoeco MongoDB wire-protocol emulator for tests.

Run it with the Python 3.13 interpreter of ``.venv-mongoeco`` (see
``scripts/install``); mongoeco needs Python >= 3.13 and its ``wire`` extra.

    .venv-mongoeco/bin/python scripts/mongoeco_server.py --port 0

Once the server accepts connections it prints exactly one line to stdout:

    READY mongodb://127.0.0.1:PORT/?directConnection=true

and then runs until SIGTERM or SIGINT (or, with ``--stop-on-stdin-eof``, until
its parent closes the stdin pipe, e.g. by dying).  The emulator is a standalone server
(no replica set), so the URL must not carry ``replicaSet=``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import threading

from mongoeco.engines import MemoryEngine
from mongoeco.wire import AsyncMongoEcoProxyServer


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _stop_on_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    # A pipe from the parent reaches EOF when the parent exits, even on SIGKILL.
    def watch() -> None:
        # os.read, not sys.stdin: a daemon thread blocked inside a buffered
        # reader delays interpreter shutdown (and can abort it).
        while os.read(0, 4096):
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch, name="stdin-eof", daemon=True).start()


async def _serve(host: str, port: int, stop_on_stdin_eof: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if stop_on_stdin_eof:
        _stop_on_stdin_eof(loop, stop)

    server = AsyncMongoEcoProxyServer(engine=MemoryEngine(), host=host, port=port)
    address = await server.start()
    bound_port = int(address.port)
    try:
        # start() returns once the listener is bound; confirm it really accepts.
        for _ in range(100):
            if await asyncio.to_thread(_accepts_connections, host, bound_port):
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError(f"mongoeco did not accept connections on {host}:{bound_port}")
        print(f"READY mongodb://{host}:{bound_port}/?directConnection=true", flush=True)
        await stop.wait()
    finally:
        await server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--stop-on-stdin-eof",
        action="store_true",
        help="also stop when stdin reaches EOF (stdin is a pipe from a parent process)",
    )
    args = parser.parse_args()
    try:
        # Port 0 is bound by the OS; start() reports the real port.
        asyncio.run(_serve(args.host, args.port, args.stop_on_stdin_eof))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
