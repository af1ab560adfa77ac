"""Interval algebra over key bytes, checked against brute-force models."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

from reactor.core.intervals import Interval, IntervalMap, IntervalSet

# A small universe of keys, dense enough that boundaries, successors and prefixes collide.
_ALPHABET = [0x00, 0x01, 0x7F, 0xFF]
UNIVERSE = sorted(
    {b""}
    | {bytes([a]) for a in _ALPHABET}
    | {bytes([a, b]) for a in _ALPHABET for b in _ALPHABET}
    | {bytes([a, b, c]) for a in _ALPHABET for b in _ALPHABET for c in _ALPHABET}
)
keys = st.sampled_from(UNIVERSE)
intervals = st.builds(Interval, keys, st.none() | keys)
# Points ([k, k + b"\x00")) take their own path in IntervalMap; make them common.
map_intervals = intervals | keys.map(Interval.point)


class TestInterval:
    def test_contains(self) -> None:
        interval = Interval(b"b", b"d")
        assert interval.contains(b"b")
        assert interval.contains(b"c\xff")
        assert not interval.contains(b"d")
        assert not interval.contains(b"a\xff")
        assert Interval(b"b", None).contains(b"\xff" * 10)
        assert Interval.everything().contains(b"")

    def test_is_empty(self) -> None:
        assert Interval(b"b", b"b").is_empty
        assert Interval(b"c", b"b").is_empty
        assert not Interval(b"b", b"b\x00").is_empty
        assert not Interval(b"b", None).is_empty

    def test_point_holds_one_key(self) -> None:
        point = Interval.point(b"k")
        assert [k for k in UNIVERSE + [b"k", b"k\x00"] if point.contains(k)] == [b"k"]

    @settings(max_examples=200, deadline=None)
    @given(intervals, intervals)
    def test_overlaps(self, a: Interval, b: Interval) -> None:
        probes = UNIVERSE + [a.start, b.start]
        shared = any(a.contains(k) and b.contains(k) for k in probes)
        assert a.overlaps(b) == b.overlaps(a) == shared


def _model_contains(added: list[Interval], key: bytes) -> bool:
    return any(interval.contains(key) for interval in added)


def _assert_normalized(interval_set: IntervalSet) -> None:
    items = interval_set.intervals
    for interval in items:
        assert not interval.is_empty
    for before, after in zip(items, items[1:], strict=False):
        assert before.end is not None and before.end < after.start  # disjoint, not touching


class TestIntervalSet:
    def test_merges_touching_and_overlapping(self) -> None:
        interval_set = IntervalSet([Interval(b"a", b"c"), Interval(b"c", b"d")])
        assert interval_set.intervals == (Interval(b"a", b"d"),)
        interval_set.add(Interval(b"f", b"g"))
        interval_set.add(Interval(b"x", None))
        interval_set.add(Interval(b"b", b"b"))  # empty: ignored
        assert len(interval_set) == 3
        interval_set.add(Interval(b"b", b"y"))
        assert interval_set.intervals == (Interval(b"a", None),)
        assert repr(interval_set) == "IntervalSet([Interval(start=b'a', end=None)])"

    def test_empty(self) -> None:
        interval_set = IntervalSet()
        assert not interval_set
        assert len(interval_set) == 0
        assert not interval_set.contains(b"")
        assert not interval_set.overlaps(Interval.everything())
        assert interval_set == IntervalSet.from_intervals([Interval(b"z", b"a")])

    def test_equality_and_hash(self) -> None:
        assert IntervalSet([Interval(b"a", b"b")]) != IntervalSet([Interval(b"a", b"c")])
        assert IntervalSet() != "not a set"
        with pytest.raises(TypeError):
            hash(IntervalSet())

    @settings(max_examples=300, deadline=None)
    @given(st.lists(intervals, max_size=12), st.lists(intervals, max_size=12), intervals)
    def test_against_brute_force(
        self, added: list[Interval], other: list[Interval], probe: Interval
    ) -> None:
        interval_set = IntervalSet.from_intervals(added)
        _assert_normalized(interval_set)
        for key in UNIVERSE:
            assert interval_set.contains(key) == _model_contains(added, key)
            assert (key in interval_set) == _model_contains(added, key)
        assert interval_set.overlaps(probe) == any(probe.overlaps(i) for i in added)

        union = interval_set.union(IntervalSet(other))
        _assert_normalized(union)
        assert union == IntervalSet(added + other) == (IntervalSet(other) | interval_set)
        for key in UNIVERSE:
            assert union.contains(key) == _model_contains(added + other, key)
        # union() must not change its operands
        assert interval_set == IntervalSet(added)

    @settings(max_examples=100, deadline=None)
    @given(st.lists(intervals, max_size=10), st.randoms(use_true_random=False))
    def test_insertion_order_does_not_matter(
        self, added: list[Interval], rnd: random.Random
    ) -> None:
        shuffled = list(added)
        rnd.shuffle(shuffled)
        assert IntervalSet(added) == IntervalSet(shuffled)
        assert list(IntervalSet(added)) == list(IntervalSet(shuffled).intervals)


class TestIntervalMap:
    def test_basic(self) -> None:
        index: IntervalMap[str] = IntervalMap()
        assert not index
        index.add(Interval(b"a", b"m"), "q1")
        index.add(Interval(b"a", b"m"), "q2")
        index.add(Interval(b"k", None), "q2")
        index.add(Interval.point(b"c"), "q3")
        index.add(Interval(b"z", b"a"), "q4")  # empty: counted, never stabbed
        assert len(index) == 5
        assert index.stab(b"c") == {"q1", "q2", "q3"}
        assert index.stab(b"l") == {"q1", "q2"}
        assert index.stab(b"z") == {"q2"}
        assert index.stab(b"") == set()
        index.remove(Interval(b"a", b"m"), "q2")
        assert index.stab(b"c") == {"q1", "q3"}
        index.remove(Interval(b"z", b"a"), "q4")
        assert len(index) == 3

    def test_multiset(self) -> None:
        index: IntervalMap[str] = IntervalMap()
        for interval in (Interval(b"a", b"b"), Interval.point(b"a"), Interval(b"b", b"a")):
            index.add(interval, "q")
            index.add(interval, "q")
            index.remove(interval, "q")
            assert index.stab(b"a") == ({"q"} if not interval.is_empty else set())
            index.remove(interval, "q")
            assert index.stab(b"a") == set()
            with pytest.raises(KeyError):
                index.remove(interval, "q")
        assert len(index) == 0

    @pytest.mark.parametrize(
        "interval", [Interval(b"a", b"b"), Interval.point(b"a"), Interval(b"b", b"a")]
    )
    def test_remove_unknown(self, interval: Interval) -> None:
        index: IntervalMap[str] = IntervalMap()
        index.add(interval, "other")
        with pytest.raises(KeyError):
            index.remove(interval, "q")
        with pytest.raises(KeyError):
            index.remove(Interval(b"\x01", b"\x02"), "q")
        assert len(index) == 1

    @settings(max_examples=250, deadline=None)
    @given(st.data())
    def test_against_brute_force(self, data: st.DataObject) -> None:
        index: IntervalMap[int] = IntervalMap()
        model: Counter[tuple[Interval, int]] = Counter()
        for _ in range(data.draw(st.integers(0, 40), label="steps")):
            remove = data.draw(st.booleans(), label="remove?")
            if model and remove:
                pair = data.draw(st.sampled_from(list(model)), label="pair")
                index.remove(*pair)
                model[pair] -= 1
                if not model[pair]:
                    del model[pair]
            else:
                pair = (data.draw(map_intervals, label="interval"), data.draw(st.integers(0, 4)))
                index.add(*pair)
                model[pair] += 1
        assert len(index) == sum(model.values())
        for key in UNIVERSE:
            expected = {owner for (interval, owner) in model if interval.contains(key)}
            assert index.stab(key) == expected

    def test_many_intervals(self) -> None:
        rnd = random.Random(7)

        def key() -> bytes:
            return rnd.randbytes(rnd.randint(0, 3))

        index: IntervalMap[int] = IntervalMap()
        live: list[tuple[Interval, int]] = []
        for owner in range(3000):
            start = key()
            roll = rnd.random()
            if roll < 0.4:
                interval = Interval.point(start)
            elif roll < 0.45:
                interval = Interval(start, None)
            else:
                interval = Interval(start, start + key())
            index.add(interval, owner % 500)
            live.append((interval, owner % 500))
        rnd.shuffle(live)
        for pair in live[:1000]:
            index.remove(*pair)
        live = live[1000:]
        assert len(index) == len(live)
        probes = [start for (start, _), _ in live[:50]] + [key() for _ in range(50)]
        for probe in probes:
            expected = {owner for interval, owner in live if interval.contains(probe)}
            assert index.stab(probe) == expected
        for pair in live:
            index.remove(*pair)
        assert len(index) == 0
        assert index.stab(b"") == set()
