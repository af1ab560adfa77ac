"""The server log's JSON format (``--log-format json``): one JSON object per line.

Owns the line's shape: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, the
traceback as ``exception`` when there is one, and, for a function execution, ``execution`` (the
record, field for field as ``reactor.engine.execution_log.ExecutionRecord``). Choosing the
format at start belongs to the CLI (``reactor serve --log-format``), which also sets
``REACTOR_LOG_FORMAT`` so that function runners, its child processes, write JSON too.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

__all__ = ["JsonFormatter", "use_json_logging"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        execution = getattr(record, "execution", None)
        if execution is not None:
            line["execution"] = execution
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def use_json_logging() -> None:
    """Write every record of the root logger's handlers (``logging.basicConfig``'s) as JSON."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
