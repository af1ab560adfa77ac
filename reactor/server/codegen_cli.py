"""``reactor codegen`` and the ``--codegen-*`` options of ``reactor dev``.

Owns the command line of code generation: loading the app, writing the files that changed,
``--check`` (exit 1 naming the stale files, for CI), and the regeneration ``reactor dev`` runs
at start and after each successful reload. The rendering is ``reactor.codegen``'s; argument
parsing of the other commands is ``reactor.server.cli``'s.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from functions.loader import App

__all__ = ["CodegenTargets", "add_codegen_command", "add_dev_options", "run_codegen"]

log = logging.getLogger("reactor")


def add_codegen_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``reactor codegen APP [--out DIR] [--python FILE] [--check]``."""
    cmd = sub.add_parser(
        "codegen",
        help="write typed frontends: Convex's _generated API files and a typed Python module",
    )
    cmd.add_argument("app", help="the app directory (schema.py and function modules)")
    cmd.add_argument(
        "--out", help="directory for api.js, api.d.ts and dataModel.d.ts (convex/_generated)"
    )
    cmd.add_argument("--python", help="file for the typed Python module (e.g. app_api.py)")
    cmd.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 naming the files that are missing or out of date",
    )


def add_dev_options(cmd: argparse.ArgumentParser) -> None:
    """The ``reactor dev`` options that keep generated files in step with the app."""
    cmd.add_argument(
        "--codegen-out",
        help="keep api.js, api.d.ts and dataModel.d.ts in this directory up to date (dev only)",
    )
    cmd.add_argument("--codegen-python", help="keep this typed Python module up to date (dev only)")


class CodegenTargets:
    """Where generated files go (``--out``/``--python``), and writing them for one app."""

    def __init__(self, out: str | None, python: str | None) -> None:
        self.out = None if out is None else Path(out)
        self.python = None if python is None else Path(python)

    def __bool__(self) -> bool:
        return self.out is not None or self.python is not None

    def files(self, app: App) -> dict[Path, str]:
        from reactor.codegen import generated_files

        return generated_files(app, out=self.out, python=self.python)

    def regenerate(self, app: App) -> None:
        """Write the files that changed for ``app``; failures are logged (dev keeps serving)."""
        from reactor.codegen import write_files

        try:
            written = write_files(self.files(app))
        except Exception as exc:
            log.error("codegen failed, generated files unchanged: %s", exc)
            return
        for path in written:
            log.info("codegen: wrote %s", path)


def run_codegen(args: argparse.Namespace) -> int:
    """``reactor codegen``: 0 when the files are written (or, with --check, up to date).

    Raises:
        ReactorError: the app fails to load or cannot be described (the CLI prints it).
        OSError: a file cannot be written.
    """
    from functions.loader import load_app
    from reactor.codegen import stale_files, write_files

    targets = CodegenTargets(args.out, args.python)
    if not targets:
        print("reactor: codegen needs --out DIR and/or --python FILE", file=sys.stderr)
        return 2
    directory = Path(args.app)
    if not directory.is_dir():
        print(f"reactor: app directory {args.app!r} does not exist", file=sys.stderr)
        return 2
    files = targets.files(load_app(directory))
    if args.check:
        stale = stale_files(files)
        if stale:
            names = ", ".join(str(path) for path in stale)
            print(
                f"reactor: generated files are out of date: {names}; "
                "run `reactor codegen` without --check",
                file=sys.stderr,
            )
            return 1
        print(f"{len(files)} generated files are up to date")
        return 0
    written = write_files(files)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"{len(files)} generated files are up to date")
    return 0
