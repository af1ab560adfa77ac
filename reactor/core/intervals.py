"""Half-open intervals over index-key bytes: a single ``Interval``, a normalized union
``IntervalSet``, and ``IntervalMap``, the stabbing index that finds the owners (subscriptions) of
every interval containing a written key.

It knows nothing about how keys are encoded (``schema.ordering``) or what an owner is
(``reactor.engine.subscriptions``); keys are plain ``bytes`` compared bytewise.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Hashable, Iterable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar

__all__ = ["Interval", "IntervalMap", "IntervalSet"]

T = TypeVar("T", bound=Hashable)


class Interval(NamedTuple):
    """The keys ``k`` with ``start <= k < end``; ``end=None`` means no upper bound."""

    start: bytes
    end: bytes | None

    @classmethod
    def point(cls, key: bytes) -> Interval:
        """The interval holding ``key`` alone (``key + b"\\x00"`` is its immediate successor)."""
        return cls(key, key + b"\x00")

    @classmethod
    def everything(cls) -> Interval:
        """The interval holding every key."""
        return cls(b"", None)

    def contains(self, key: bytes) -> bool:
        end = self.end
        return self.start <= key and (end is None or key < end)

    @property
    def is_empty(self) -> bool:
        end = self.end
        return end is not None and end <= self.start

    def overlaps(self, other: Interval) -> bool:
        """Whether some key lies in both intervals."""
        if self.is_empty or other.is_empty:
            return False
        return (self.end is None or other.start < self.end) and (
            other.end is None or self.start < other.end
        )


class IntervalSet:
    """A union of intervals, kept normalized: sorted, disjoint, non-empty, and with touching
    intervals merged, so two sets holding the same keys are equal.

    Invariant: ``_starts[i] < _ends[i] <= ... < _starts[i + 1]`` (strictly, since touching
    intervals are merged); only the last end may be ``None``.
    """

    __slots__ = ("_ends", "_starts")
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self, intervals: Iterable[Interval] = ()) -> None:
        self._starts: list[bytes] = []
        self._ends: list[bytes | None] = []
        for interval in intervals:
            self.add(interval)

    @classmethod
    def from_intervals(cls, intervals: Iterable[Interval]) -> IntervalSet:
        return cls(intervals)

    def add(self, interval: Interval) -> None:
        """Add the keys of ``interval``; O(log n) to locate plus the cost of the splice."""
        start, end = interval
        if end is not None and end <= start:
            return
        starts, ends = self._starts, self._ends
        # ``lo``: the first interval that overlaps or touches the new one; it either starts at
        # or before ``start`` and reaches it, or starts after ``start``.
        lo = bisect_right(starts, start) - 1
        if lo < 0:
            lo = 0
        else:
            reach = ends[lo]
            if reach is not None and reach < start:
                lo += 1
        # ``hi``: one past the last interval starting at or before ``end``.
        hi = len(starts) if end is None else bisect_right(starts, end)
        if lo < hi:
            if starts[lo] < start:
                start = starts[lo]
            last = ends[hi - 1]
            if end is not None and (last is None or last > end):
                end = last
        starts[lo:hi] = [start]
        ends[lo:hi] = [end]

    def contains(self, key: bytes) -> bool:
        """Whether ``key`` is in the set; O(log n)."""
        i = bisect_right(self._starts, key) - 1
        if i < 0:
            return False
        end = self._ends[i]
        return end is None or key < end

    __contains__ = contains

    def overlaps(self, interval: Interval) -> bool:
        """Whether some key of ``interval`` is in the set; O(log n)."""
        start, end = interval
        if end is not None and end <= start:
            return False
        starts = self._starts
        i = bisect_right(starts, start) - 1
        if i >= 0:
            last = self._ends[i]
            if last is None or start < last:
                return True
        # The next interval starts after ``start``; it overlaps iff it starts before ``end``.
        i += 1
        return i < len(starts) and (end is None or starts[i] < end)

    def union(self, other: IntervalSet) -> IntervalSet:
        result = IntervalSet()
        result._starts = list(self._starts)
        result._ends = list(self._ends)
        for interval in other:
            result.add(interval)
        return result

    __or__ = union

    @property
    def intervals(self) -> tuple[Interval, ...]:
        return tuple(map(Interval, self._starts, self._ends))

    def __iter__(self) -> Iterator[Interval]:
        return map(Interval, self._starts, self._ends)

    def __len__(self) -> int:
        """The number of disjoint intervals (not keys)."""
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IntervalSet):
            return NotImplemented
        return self._starts == other._starts and self._ends == other._ends

    def __repr__(self) -> str:
        return f"IntervalSet({list(self)!r})"


class _Node:
    """A treap node: one distinct non-point interval and the owners that added it.

    Ordered by ``(start, seq)``; heap-ordered by ``priority``; ``max_end`` is the largest
    ``end`` in the subtree (``None`` = unbounded), which lets ``stab`` skip subtrees.
    """

    __slots__ = ("end", "left", "max_end", "owners", "priority", "right", "seq", "start")

    def __init__(self, start: bytes, end: bytes | None, seq: int, priority: float) -> None:
        self.start = start
        self.end = end
        self.seq = seq
        self.priority = priority
        self.owners: dict[Any, int] = {}
        self.left: _Node | None = None
        self.right: _Node | None = None
        self.max_end: bytes | None = end


def _update(node: _Node) -> None:
    m = node.end
    if m is not None:
        left, right = node.left, node.right
        if left is not None:
            lm = left.max_end
            if lm is None:
                node.max_end = None
                return
            if lm > m:
                m = lm
        if right is not None:
            rm = right.max_end
            if rm is None:
                node.max_end = None
                return
            if rm > m:
                m = rm
    node.max_end = m


def _insert(node: _Node | None, new: _Node) -> _Node:
    if node is None:
        return new
    if new.start < node.start or (new.start == node.start and new.seq < node.seq):
        child = _insert(node.left, new)
        if child.priority > node.priority:
            node.left = child.right
            _update(node)
            child.right = node
            _update(child)
            return child
        node.left = child
    else:
        child = _insert(node.right, new)
        if child.priority > node.priority:
            node.right = child.left
            _update(node)
            child.left = node
            _update(child)
            return child
        node.right = child
    _update(node)
    return node


def _merge(left: _Node | None, right: _Node | None) -> _Node | None:
    """Join two treaps where every key of ``left`` is below every key of ``right``."""
    if left is None:
        return right
    if right is None:
        return left
    if left.priority > right.priority:
        left.right = _merge(left.right, right)
        _update(left)
        return left
    right.left = _merge(left, right.left)
    _update(right)
    return right


def _delete(node: _Node | None, target: _Node) -> _Node | None:
    if node is None:
        raise AssertionError("IntervalMap tree lost a node")  # pragma: no cover
    if node is target:
        return _merge(node.left, node.right)
    if target.start < node.start or (target.start == node.start and target.seq < node.seq):
        node.left = _delete(node.left, target)
    else:
        node.right = _delete(node.right, target)
    _update(node)
    return node


class IntervalMap(Generic[T]):
    """A multiset of ``(interval, owner)`` pairs answering "which owners' intervals hold this
    key?" (``stab``).

    Each distinct interval is stored once, with a count per owner, so many owners reading the
    same range share one entry. Point intervals (``[k, k + b"\\x00")``, what ``db.get`` reads)
    live in a dict keyed by ``k``. Other non-empty intervals live in a treap ordered by start
    and augmented with the subtree's largest end; empty intervals are only counted.

    Costs, with n distinct intervals and k matches: ``add``/``remove`` O(log n) expected;
    ``stab`` visits only subtrees holding a match, O(log n + k) when the matches cluster (the
    common case) and O(log n + k·log n) at worst, the classic augmented-tree bound.
    """

    __slots__ = ("_by_interval", "_count", "_empty", "_next_seq", "_points", "_random", "_root")

    def __init__(self) -> None:
        self._root: _Node | None = None
        self._by_interval: dict[tuple[bytes, bytes | None], _Node] = {}
        self._points: dict[bytes, dict[T, int]] = {}
        self._empty: dict[tuple[Interval, T], int] = {}
        self._count = 0
        self._next_seq = 0
        # Priorities need only be independent of the keys; a fixed seed keeps runs repeatable.
        self._random = random.Random(0x5EED)

    def add(self, interval: Interval, owner: T) -> None:
        """Record that ``owner`` holds ``interval`` (a multiset: adding twice needs two removes)."""
        start, end = interval
        self._count += 1
        if end is not None:
            if end <= start:
                pair = (Interval(start, end), owner)
                self._empty[pair] = self._empty.get(pair, 0) + 1
                return
            if len(end) == len(start) + 1 and end[-1] == 0 and end.startswith(start):
                owners = self._points.get(start)
                if owners is None:
                    self._points[start] = {owner: 1}
                else:
                    owners[owner] = owners.get(owner, 0) + 1
                return
        node = self._by_interval.get((start, end))
        if node is None:
            node = _Node(start, end, self._next_seq, self._random.random())
            self._next_seq += 1
            self._by_interval[(start, end)] = node
            self._root = _insert(self._root, node)
        node.owners[owner] = node.owners.get(owner, 0) + 1

    def remove(self, interval: Interval, owner: T) -> None:
        """Remove one earlier ``add(interval, owner)``.

        Raises:
            KeyError: that pair is not in the map.
        """
        start, end = interval
        if end is not None:
            if end <= start:
                pair = (Interval(start, end), owner)
                count = self._empty.get(pair)
                if count is None:
                    raise KeyError((interval, owner))
                if count == 1:
                    del self._empty[pair]
                else:
                    self._empty[pair] = count - 1
                self._count -= 1
                return
            if len(end) == len(start) + 1 and end[-1] == 0 and end.startswith(start):
                owners = self._points.get(start)
                if owners is None or owner not in owners:
                    raise KeyError((interval, owner))
                _decrement(owners, owner)
                if not owners:
                    del self._points[start]
                self._count -= 1
                return
        node = self._by_interval.get((start, end))
        if node is None or owner not in node.owners:
            raise KeyError((interval, owner))
        _decrement(node.owners, owner)
        if not node.owners:
            del self._by_interval[(start, end)]
            self._root = _delete(self._root, node)
        self._count -= 1

    def stab(self, key: bytes) -> set[T]:
        """The owners of every interval that contains ``key``."""
        result: set[T] = set()
        owners = self._points.get(key)
        if owners is not None:
            result.update(owners)
        node = self._root
        if node is None or (node.max_end is not None and node.max_end <= key):
            return result
        stack = [node]
        pop, push = stack.pop, stack.append
        # Invariant: every node on the stack has a subtree max_end above ``key``.
        while stack:
            node = pop()
            left = node.left
            if left is not None:
                m = left.max_end
                if m is None or m > key:
                    push(left)
            if node.start <= key:
                end = node.end
                if end is None or key < end:
                    result.update(node.owners)
                right = node.right
                if right is not None:
                    m = right.max_end
                    if m is None or m > key:
                        push(right)
        return result

    def __len__(self) -> int:
        """The number of ``(interval, owner)`` pairs held, counting repeats."""
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0


def _decrement(counts: dict[T, int], owner: T) -> None:
    count = counts[owner]
    if count == 1:
        del counts[owner]
    else:
        counts[owner] = count - 1
