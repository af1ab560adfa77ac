"""``FailureBudget``: how many failed credential checks each client may still make.

A token bucket per peer (an IP address, or any string the caller picks): a check takes a
token *before* any expensive work, a success gives it back, and tokens refill at a steady
rate. Pure and synchronous: the caller passes the current time (monotonic seconds). It does
not know what a credential is, nor what a refusal does to a request.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["FailureBudget"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class FailureBudget:
    """Per-peer budgets of failed attempts: ``burst`` at once, then one per ``refill_s``.

    Invariant: a peer's bucket holds between 0 and ``burst`` tokens once refilled to ``now``;
    a reservation that is never released (a failure) keeps its token spent. At most
    ``max_peers`` buckets are kept; the least recently used goes first, so an attacker
    rotating through addresses costs memory only up to that bound (and a forgotten peer
    starts again with a full bucket, which the caller's global concurrency bound covers).
    """

    def __init__(self, *, burst: int = 10, refill_s: float = 2.0, max_peers: int = 4096) -> None:
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        if not refill_s > 0:
            raise ValueError(f"refill_s must be positive, got {refill_s}")
        self.burst = burst
        self.refill_s = refill_s
        self.max_peers = max_peers
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def reserve(self, peer: str, now: float) -> float:
        """Take one token for an attempt by ``peer``.

        Returns:
            0.0 when the attempt may go ahead (call :meth:`release` if it then succeeds), else
            the seconds until a token will be available; nothing is taken then.
        """
        bucket = self._refilled(peer, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return max((1.0 - bucket.tokens) * self.refill_s, 1e-3)

    def release(self, peer: str, now: float) -> None:
        """Give back the token of a reservation whose attempt succeeded."""
        bucket = self._refilled(peer, now)
        bucket.tokens = min(float(self.burst), bucket.tokens + 1.0)

    def remaining(self, peer: str, now: float) -> int:
        """Whole attempts ``peer`` may start now."""
        return math.floor(self._refilled(peer, now).tokens)

    def _refilled(self, peer: str, now: float) -> _Bucket:
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            self._buckets[peer] = bucket
            while len(self._buckets) > self.max_peers:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(peer)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed / self.refill_s)
            bucket.updated = now
        return bucket
