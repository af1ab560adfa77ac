"""Generated files on disk: writing them only when they change, and finding stale ones.

Owns the I/O of ``reactor codegen``: a file whose bytes are already right is not rewritten
(``reactor dev`` watches the app directory, and a rewrite would look like an edit), and
``--check`` compares without writing. It does not render anything (``reactor.codegen``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["stale_files", "write_files"]


def stale_files(files: Mapping[Path, str]) -> list[Path]:
    """The paths whose contents on disk differ from ``files`` (missing ones included)."""
    stale = []
    for path, text in sorted(files.items()):
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            stale.append(path)
            continue
        if current != text.encode():
            stale.append(path)
    return stale


def write_files(files: Mapping[Path, str]) -> list[Path]:
    """Write every stale file (creating directories); returns the paths written.

    Each file is written to a temporary name beside it and renamed over the old one, so a
    watcher or a bundler never reads half a file.

    Raises:
        OSError: a directory or file cannot be written.
    """
    written = []
    for path in stale_files(files):
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(files[path].encode())
        temporary.replace(path)
        written.append(path)
    return written
