"""``reactor serve`` with benchmark instrumentation, unchanged otherwise.

Used only when asked for on the bench command line:

- ``BENCH_UVLOOP=1`` (``--server-loop uvloop``): ``reactor.server.cli`` starts uvicorn inside its
  own ``asyncio.run``, so uvicorn's ``loop="auto"`` never applies and the server runs on the
  default asyncio loop even with uvloop installed. Setting the event loop policy first makes that
  same ``asyncio.run`` use uvloop, with no change to the server's code.
- ``BENCH_GC_LOG=<path>`` (``--gc-log``): append one line per garbage collection,
  ``<unix time> <generation> <pause ms> <collected> [<tracked objects>]``, so pauses can be
  attributed to phases. Counting tracked objects after a full collection takes a few ms; it
  is only done with this experiment on.
- ``BENCH_GC_THRESHOLD=a,b,c`` (``--server-gc-threshold``): ``gc.set_threshold(a, b, c)``
  before the server starts, to show what garbage-collector tuning would change.
"""

import asyncio
import gc
import os
import sys
import time

from reactor.server.cli import main

if os.environ.get("BENCH_UVLOOP") == "1":
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

_threshold = os.environ.get("BENCH_GC_THRESHOLD")
if _threshold:
    gc.set_threshold(*(int(x) for x in _threshold.split(",")))

_gc_log_path = os.environ.get("BENCH_GC_LOG")
if _gc_log_path:
    _log = open(_gc_log_path, "a", buffering=1)  # kept open for the process's life
    _started = [0.0]

    def _on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            _started[0] = time.perf_counter()
        else:
            pause_ms = (time.perf_counter() - _started[0]) * 1000
            line = f"{time.time():.6f} {info['generation']} {pause_ms:.3f} {info['collected']}"
            if info["generation"] == 2:  # how big the heap a full collection walks is
                line += f" {len(gc.get_objects())}"
            _log.write(line + "\n")

    gc.callbacks.append(_on_gc)

sys.exit(main(sys.argv[1:]))
