"""The storage engines behind ``reactor.core.persistence.Persistence``, chosen by URL.

Each engine is imported only when chosen, so the embedded default never loads PyMongo.
"""

from __future__ import annotations

from pathlib import Path

from reactor.core.persistence import Persistence

__all__ = ["open_reader", "open_storage"]


def open_storage(storage: str | None, data_dir: str | Path) -> Persistence:
    """``None`` or ``sqlite:`` selects the embedded engine under ``data_dir``; a
    ``mongodb://host/db?replicaSet=...`` URL the MongoDB engine
    (``reactor.storage.mongo.engine``)."""
    if storage is None or storage in ("sqlite", "sqlite:"):
        from reactor.storage.sqlite import SqlitePersistence

        return SqlitePersistence.open(data_dir)
    if storage.startswith("sqlite:"):
        from reactor.storage.sqlite import SqlitePersistence

        return SqlitePersistence.open(storage.removeprefix("sqlite:"))
    if storage.startswith(("mongodb://", "mongodb+srv://")):
        try:
            from reactor.storage.mongo.engine import MongoPersistence
        except ImportError as exc:
            raise ValueError(
                f"MongoDB storage needs PyMongo: pip install 'reactor[mongo]' ({exc})"
            ) from exc
        return MongoPersistence.open(storage)
    raise ValueError(
        f"Unsupported storage {storage!r}: use the embedded engine (default), a sqlite:DIR URL "
        "or a mongodb:// URL"
    )


def open_reader(url: str) -> Persistence:
    """The engine at ``url`` (a ``Persistence.reader_url``) opened for reading alone, from
    another process than the server's: a function runner's own connection."""
    if url.startswith("sqlite:"):
        from reactor.storage.sqlite import SqlitePersistence

        return SqlitePersistence.open_reader(url.removeprefix("sqlite:"))
    if url.startswith(("mongodb://", "mongodb+srv://")):
        from reactor.storage.mongo.engine import MongoPersistence

        return MongoPersistence.open(url, reader=True)
    raise ValueError(f"Unsupported storage URL for a reader: {url!r}")
