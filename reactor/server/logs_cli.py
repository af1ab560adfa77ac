"""``reactor logs``: a running server's execution records, printed or followed.

    reactor logs --url http://127.0.0.1:3210 [--follow] [--function PATH]
                 [--status success|failure] [--request-id ID] [--limit N] [--json]

Owns the subcommand's arguments, polling ``GET /api/execution_logs`` (long polls while
following) and the output: one readable line per record with its log lines indented under it,
or with ``--json`` the records as JSON lines, fields as docs/operations.md lists them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from typing import Any, TextIO

import msgspec

from reactor.engine.execution_log import ExecutionRecord, summary

__all__ = ["add_logs_parser", "run_logs"]

DEFAULT_URL = "http://127.0.0.1:3210"
POLL_WAIT_S = 25.0


def add_logs_parser(sub: Any) -> None:
    """Add ``logs`` to the ``reactor`` subcommands (``sub`` from ``add_subparsers``)."""
    cmd = sub.add_parser("logs", help="show (or --follow) function executions of a server")
    cmd.add_argument("--url", help=f"a running server (default $REACTOR_URL or {DEFAULT_URL})")
    cmd.add_argument("--admin-key", help="admin key (default: $REACTOR_ADMIN_KEY)")
    cmd.add_argument("-f", "--follow", action="store_true", help="keep printing new executions")
    cmd.add_argument("--function", help='only this function, e.g. "messages:send"')
    cmd.add_argument("--status", choices=["success", "failure"], help="only these outcomes")
    cmd.add_argument("--request-id", help="only the execution with this request id")
    cmd.add_argument(
        "--limit", type=int, default=None, help="the newest N matching executions first (50)"
    )
    cmd.add_argument("--json", action="store_true", help="one JSON object per execution")


def format_record(record: ExecutionRecord) -> str:
    """A record as ``reactor logs`` prints it: the summary line, then its log lines."""
    when = datetime.datetime.fromtimestamp(record.timestamp, datetime.UTC)
    lines = [f"{when.isoformat(timespec='milliseconds')} {summary(record)}"]
    lines.extend(f"    {line}" for line in record.log_lines)
    return "\n".join(lines)


def run_logs(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    import httpx

    key = args.admin_key or os.environ.get("REACTOR_ADMIN_KEY")
    if not key:
        print("reactor: an admin key is needed: --admin-key or $REACTOR_ADMIN_KEY", file=sys.stderr)
        return 2
    if args.limit is not None and args.limit < 0:
        print(f"reactor: --limit must not be negative, got {args.limit}", file=sys.stderr)
        return 2
    url = (args.url or os.environ.get("REACTOR_URL") or DEFAULT_URL).rstrip("/")
    params: dict[str, str] = {}
    if args.function:
        params["path"] = args.function
    if args.status:
        params["outcome"] = args.status
    if args.request_id:
        params["request_id"] = args.request_id
    headers = {"Authorization": f"Convex {key}"}
    cursor = 0
    first = True
    failures = 0
    with httpx.Client(timeout=POLL_WAIT_S + 30) as client:
        while True:
            query = dict(params, cursor=str(cursor))
            if first:
                query["limit"] = str(50 if args.limit is None else args.limit)
            else:
                query["wait"] = str(POLL_WAIT_S)
            try:
                response = client.get(url + "/api/execution_logs", params=query, headers=headers)
            except httpx.HTTPError as exc:
                if not args.follow or first:
                    print(f"reactor: cannot reach {url}: {exc}", file=sys.stderr)
                    return 1
                failures += 1
                print(f"reactor: {url} unreachable ({exc}); retrying", file=sys.stderr)
                time.sleep(min(5.0, 0.5 * failures))
                continue
            failures = 0
            try:
                payload = response.json()
            except ValueError:
                payload = {"message": response.text[:200]}
            if response.status_code >= 400:
                code = payload.get("code", response.status_code)
                print(f"reactor: {code}: {payload.get('message')}", file=sys.stderr)
                return 1
            for raw in payload["records"]:
                if args.json:
                    out.write(json.dumps(raw) + "\n")
                else:
                    out.write(format_record(msgspec.convert(raw, ExecutionRecord)) + "\n")
            out.flush()
            cursor = int(payload["cursor"])
            first = False
            if not args.follow:
                return 0
