"""Retry lanes: where mutations that did not commit take turns on the documents they write.

Owns the turn-taking of ``reactor.engine.executor``'s re-runs, and nothing else (no I/O, no
running of functions). A mutation that conflicted, or was stopped at a read of a document
others are queued to write, takes its turn in one lane per document it writes (``lane_keys``),
in one order, so re-runs about the same documents never conflict with each other. The one
whose turn it is may take the others waiting for exactly the same documents along
(``take_riders``): it runs them after itself in one transaction, and hands each its outcome
(``settle``) or gives it its place back (``put_back``).
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from dataclasses import dataclass

from reactor.core.index_keys import BY_ID, id_key
from reactor.core.persistence import CommitRequest
from reactor.engine.invocation import FunctionResult, MutationCall

__all__ = [
    "MAX_LANES",
    "LaneKey",
    "Lanes",
    "Rider",
    "RetryLanes",
    "Turns",
    "lane_keys",
    "turns",
]

LaneKey = tuple[str, bytes]
Lanes = list["_Lane"]

# A re-run writing more documents than this takes turns in one shared lane.
MAX_LANES = 16
_SHARED_LANE: list[LaneKey] = [("", b"")]
_BY_ID_SUFFIX = "." + BY_ID


class _Lane:
    """One document's lane: ``held`` while a re-run has its turn, ``queue`` the riders waiting
    for it; ``users`` counts the holder and the waiters; ``doc`` is the document's id, and
    ``group`` the lanes of the re-run that opened it (a first run stopped at a read of ``doc``
    takes turns in those)."""

    __slots__ = ("__weakref__", "doc", "group", "held", "queue", "users")

    def __init__(self) -> None:
        self.held = False
        self.queue: collections.deque[Rider] = collections.deque()
        self.users = 0
        self.doc: str | None = None
        self.group: list[LaneKey] = []


class Rider:
    """A mutation taking turns, or gathering with other first runs: what a batch runs for it
    (``call``), its idempotency key, its lanes' ``keys``, how many of them it holds
    (``held``), and, while it waits, ``wake``: None once it holds the lane it waits for (or,
    gathering, when it was not run), or its outcome once a batch ran it (gathering: ``Turns``
    when the batch's commit conflicted)."""

    __slots__ = ("call", "held", "idempotency_key", "keys", "wake")

    def __init__(self, call: MutationCall, idempotency_key: tuple[str, int] | None) -> None:
        self.call = call
        self.idempotency_key = idempotency_key
        self.keys: list[LaneKey] = []  # set when it joins its lanes
        self.held = 0
        self.wake: asyncio.Future[FunctionResult | Turns | None] | None = None

    @property
    def waiting(self) -> bool:
        return self.wake is not None and not self.wake.done()


@dataclass(slots=True)
class Turns:
    """Where a mutation that did not commit takes turns: the lanes' keys, the documents they
    are for, and whether this run was stopped at a hot read (1) rather than run whole (0)."""

    keys: list[LaneKey]
    docs: dict[LaneKey, str]
    deferred: int = 0


def turns(request: CommitRequest) -> Turns:
    keys = lane_keys(request)
    by_key = {id_key(doc): doc for _, doc, _ in request.writes}
    return Turns(keys, {key: by_key[key[1]] for key in keys if key[1] in by_key})


def lane_keys(request: CommitRequest) -> list[LaneKey]:
    """The retry lanes of a conflicted mutation: the documents it wrote (their ``by_id``
    keys), sorted, so that every re-run takes its lanes in one order (no deadlock)."""
    keys = sorted(
        {
            (index, key)
            for index, written in request.write_keys.items()
            if index.endswith(_BY_ID_SUFFIX)
            for key in written
        }
    )
    return keys if 0 < len(keys) <= MAX_LANES else _SHARED_LANE


class RetryLanes:
    """The lanes of one executor, by document; a lane nobody holds or waits for is dropped."""

    def __init__(self) -> None:
        self._lanes: weakref.WeakValueDictionary[LaneKey, _Lane] = weakref.WeakValueDictionary()

    def join(self, where: Turns, rider: Rider) -> Lanes:
        """The lanes of ``where`` for ``rider``, counting one more user of each."""
        rider.keys = where.keys
        lanes: Lanes = []
        for key in where.keys:
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = _Lane()
            lane.users += 1
            if lane.doc is None:
                lane.doc = where.docs.get(key)
                lane.group = where.keys
            lanes.append(lane)
        return lanes

    @staticmethod
    def leave(lanes: Lanes, rider: Rider) -> None:
        """``rider`` is done with ``lanes``: the ones it holds pass to their next waiter."""
        for lane in lanes[: rider.held]:
            _release(lane)
        rider.held = 0
        for lane in lanes:
            lane.users -= 1

    @staticmethod
    async def take_turns(lanes: Lanes, rider: Rider) -> FunctionResult | None:
        """Wait until ``rider`` holds every one of ``lanes`` (None), taken in order, or until a
        batch that took it along has its outcome (returned; it then holds none). Cancelled,
        it holds those it had (``leave`` gives them back)."""
        loop = asyncio.get_running_loop()
        for lane in lanes[rider.held :]:
            if not lane.held:
                lane.held = True
                rider.held += 1
                continue
            wake: asyncio.Future[FunctionResult | Turns | None] = loop.create_future()
            rider.wake = wake
            lane.queue.append(rider)
            try:
                outcome = await wake
            except asyncio.CancelledError:
                if wake.done() and not wake.cancelled() and wake.result() is None:
                    rider.held += 1  # handed the lane just before: held
                elif rider in lane.queue:
                    lane.queue.remove(rider)
                raise
            if isinstance(outcome, FunctionResult):
                return outcome
            rider.held += 1
        return None

    @staticmethod
    def take_riders(lanes: Lanes, head: Rider, limit: int) -> list[Rider]:
        """Up to ``limit`` riders waiting for exactly ``head``'s lanes to run ``head``'s
        function, taken out of the queue in their order (they wait at the first lane: it is
        the first they take, and ``head`` holds it)."""
        queue = lanes[0].queue
        if not queue or limit <= 0:
            return []
        taken: list[Rider] = []
        rest: collections.deque[Rider] = collections.deque()
        for rider in queue:
            if (
                len(taken) < limit
                and rider.keys == head.keys
                and rider.call.path == head.call.path
                and rider.waiting
            ):
                taken.append(rider)
            else:
                rest.append(rider)
        lanes[0].queue = rest
        return taken

    @staticmethod
    def put_back(lanes: Lanes, riders: list[Rider]) -> None:
        """Riders taken along that did not get an outcome wait again, first in line (given
        the lane at once if nobody holds it any more: the one that took them left)."""
        waiting = [rider for rider in riders if rider.waiting]
        if not waiting:
            return
        lane = lanes[0]
        lane.queue.extendleft(reversed(waiting))
        if not lane.held:
            lane.held = True
            _release(lane)

    @staticmethod
    def settle(rider: Rider, outcome: FunctionResult | Turns | None) -> None:
        """A rider taken along is done: ``outcome`` is its result."""
        if rider.wake is not None and not rider.wake.done():
            rider.wake.set_result(outcome)

    def hot_documents(self) -> frozenset[str] | None:
        """The documents whose lanes have re-runs waiting: a first run reading one would
        conflict with them, so it stops at that read and takes its turn."""
        lanes = self._lanes
        if not lanes:
            return None
        hot = frozenset(
            lane.doc for lane in list(lanes.values()) if lane.users > 1 and lane.doc is not None
        )
        return hot or None

    def after_hot_read(self, doc: str) -> Turns:
        """Where a first run stopped at its read of ``doc`` takes turns: the lanes of the
        re-runs waiting to write ``doc`` (none if they are all done by now: it runs again)."""
        for lane in list(self._lanes.values()):
            if lane.doc == doc and lane.users > 0:
                return Turns(list(lane.group), {}, deferred=1)
        return Turns([], {}, deferred=1)

    def queued(self, request: CommitRequest) -> bool:
        """Whether re-runs queue in the lane of a document ``request`` writes (one holds it and
        another waits): the document is hot, and a first attempt that committed now would
        make the lane's re-run conflict again. Such a first attempt joins the queue instead,
        so a queued re-run is not beaten to its document by newcomers (and failed after its
        retries). A single re-run still races everyone, and gives up after its retries."""
        lanes = self._lanes
        if not lanes:
            return False
        for key in lane_keys(request):
            lane = lanes.get(key)
            if lane is not None and lane.users > 1:
                return True
        return False


def _release(lane: _Lane) -> None:
    """Pass ``lane`` to the first rider still waiting for it, else free it."""
    queue = lane.queue
    while queue:
        rider = queue.popleft()
        if rider.wake is not None and not rider.wake.done():
            rider.wake.set_result(None)
            return
    lane.held = False
