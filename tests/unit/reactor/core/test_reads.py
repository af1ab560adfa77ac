"""ReadSet: per index, the key intervals a transaction depended on, and which writes hit them."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from reactor.core.intervals import Interval
from reactor.core.reads import ReadSet

keys = st.binary(max_size=3)
intervals = st.builds(
    lambda a, b, open_end: Interval(min(a, b), None if open_end else max(a, b)),
    keys,
    keys,
    st.booleans(),
)
index_ids = st.sampled_from(["t.by_id", "t.by_n", "u.by_id"])


def _reads(*entries: tuple[str, Interval]) -> ReadSet:
    read_set = ReadSet()
    for index_id, interval in entries:
        read_set.add(index_id, interval)
    return read_set


class TestAdd:
    def test_a_new_read_set_is_empty(self) -> None:
        read_set = ReadSet()

        assert list(read_set.items()) == []
        assert read_set.interval_count() == 0
        assert not read_set.contains("t.by_id", b"")

    def test_empty_intervals_are_not_recorded(self) -> None:
        read_set = _reads(("t.by_n", Interval(b"b", b"b")), ("t.by_n", Interval(b"c", b"a")))

        assert list(read_set.items()) == []
        assert read_set.interval_count() == 0

    def test_intervals_are_kept_per_index_and_merged_within_one(self) -> None:
        read_set = _reads(
            ("t.by_n", Interval(b"a", b"c")),
            ("t.by_n", Interval(b"b", b"d")),
            ("t.by_id", Interval(b"a", b"b")),
        )

        assert sorted(read_set.items()) == [
            ("t.by_id", Interval(b"a", b"b")),
            ("t.by_n", Interval(b"a", b"d")),
        ]
        assert read_set.interval_count() == 2

    def test_a_point_holds_its_key_alone(self) -> None:
        read_set = ReadSet()
        read_set.add_point("t.by_id", b"k")

        assert list(read_set.items()) == [("t.by_id", Interval(b"k", b"k\x00"))]
        assert read_set.contains("t.by_id", b"k")
        assert not read_set.contains("t.by_id", b"k\x00")
        assert not read_set.contains("t.by_id", b"j\xff")
        assert not read_set.contains("u.by_id", b"k")

    def test_an_open_interval_holds_every_larger_key(self) -> None:
        read_set = _reads(("t.by_n", Interval(b"m", None)))

        assert read_set.contains("t.by_n", b"m")
        assert read_set.contains("t.by_n", b"\xff" * 8)
        assert not read_set.contains("t.by_n", b"l\xff")


class TestOverlaps:
    def test_no_write_in_a_read_index_is_no_overlap(self) -> None:
        read_set = _reads(("t.by_n", Interval.everything()))

        assert read_set.overlaps({"t.by_id": [b"a"], "u.by_n": [b"a"]}) is None
        assert read_set.overlaps({}) is None

    def test_the_first_written_key_inside_is_reported(self) -> None:
        read_set = _reads(("t.by_n", Interval(b"b", b"d")), ("t.by_id", Interval.point(b"x")))

        assert read_set.overlaps({"t.by_n": [b"a", b"d", b"c", b"b"]}) == ("t.by_n", b"c")
        assert read_set.overlaps({"t.by_n": [b"a"], "t.by_id": [b"x"]}) == ("t.by_id", b"x")

    def test_the_end_of_an_interval_is_excluded(self) -> None:
        read_set = _reads(("t.by_n", Interval(b"b", b"d")))

        assert read_set.overlaps({"t.by_n": [b"d", b"a"]}) is None

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.tuples(index_ids, intervals), max_size=8),
        st.dictionaries(index_ids, st.lists(keys, max_size=4), max_size=3),
    )
    def test_overlaps_agrees_with_contains(
        self, entries: list[tuple[str, Interval]], writes: dict[str, list[bytes]]
    ) -> None:
        read_set = _reads(*entries)

        hit = read_set.overlaps(writes)

        inside = [(i, k) for i, ks in writes.items() for k in ks if read_set.contains(i, k)]
        if hit is None:
            assert inside == []
        else:
            assert hit == inside[0]


class TestContains:
    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(index_ids, intervals), max_size=8), index_ids, keys)
    def test_a_key_is_contained_iff_some_added_interval_holds_it(
        self, entries: list[tuple[str, Interval]], index_id: str, key: bytes
    ) -> None:
        read_set = _reads(*entries)

        expected = any(i == index_id and interval.contains(key) for i, interval in entries)

        assert read_set.contains(index_id, key) == expected


class TestMerge:
    def test_merge_adds_every_interval_of_the_others(self) -> None:
        read_set = _reads(("t.by_n", Interval(b"a", b"b")))
        first = _reads(("t.by_n", Interval(b"b", b"c")))
        second = _reads(("u.by_id", Interval.point(b"x")))

        read_set.merge([first, second])

        assert sorted(read_set.items()) == [
            ("t.by_n", Interval(b"a", b"c")),
            ("u.by_id", Interval(b"x", b"x\x00")),
        ]
        assert list(first.items()) == [("t.by_n", Interval(b"b", b"c"))]

    @settings(max_examples=100, deadline=None)
    @given(
        st.lists(st.tuples(index_ids, intervals), max_size=6),
        st.lists(st.tuples(index_ids, intervals), max_size=6),
        index_ids,
        keys,
    )
    def test_a_merge_holds_the_union(
        self,
        left: list[tuple[str, Interval]],
        right: list[tuple[str, Interval]],
        index_id: str,
        key: bytes,
    ) -> None:
        merged = _reads(*left)
        other = _reads(*right)

        merged.merge([other])

        assert merged.contains(index_id, key) == (
            _reads(*left).contains(index_id, key) or other.contains(index_id, key)
        )
        assert merged.interval_count() <= _reads(*left).interval_count() + other.interval_count()


def test_repr_names_the_indexes_and_intervals() -> None:
    text = repr(_reads(("t.by_n", Interval(b"a", b"b"))))

    assert text.startswith("ReadSet(")
    assert "t.by_n" in text and "Interval(start=b'a', end=b'b')" in text
