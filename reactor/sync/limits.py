"""Per-session bounds of the websocket sync path, as one value the composition root hands to
every session (``reactor.server.app``), built from the server settings
(``reactor.server.settings.ServerSettings.sync_limits``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_SYNC_MAX_BUFFERED_BYTES",
    "DEFAULT_SYNC_MAX_QUEUED_MUTATION_BYTES",
    "MAX_QUEUED_MUTATIONS",
    "SyncLimits",
]

DEFAULT_SYNC_MAX_BUFFERED_BYTES = 32 * 1024 * 1024
# Four mutations with Convex's largest arguments (16 MiB each) fit.
DEFAULT_SYNC_MAX_QUEUED_MUTATION_BYTES = 64 * 1024 * 1024
# Convex's figure (CONVEX_SEMANTICS.md: at most 1,000 queued per connection).
MAX_QUEUED_MUTATIONS = 1000


@dataclass(frozen=True, slots=True)
class SyncLimits:
    """``max_buffered_bytes``: data a session may owe its client (frames queued or being sent,
    plus results produced while a send is stuck) before it is closed 1008 ``ClientTooSlow``.
    ``max_queued_mutation_bytes``: frame bytes of the mutations waiting for, or in, the
    session's in-order worker before it is closed 1013 ``TooManyConcurrentRequests``, as
    ``max_queued_mutations`` (a count) closes it."""

    max_buffered_bytes: int = DEFAULT_SYNC_MAX_BUFFERED_BYTES
    max_queued_mutation_bytes: int = DEFAULT_SYNC_MAX_QUEUED_MUTATION_BYTES
    max_queued_mutations: int = MAX_QUEUED_MUTATIONS
