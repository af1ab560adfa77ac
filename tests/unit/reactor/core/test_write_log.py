"""The write log's one-lookup answers for points and eq-prefixes agree with a full scan."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from functions.store import Bound, IndexRange
from reactor.core.index_keys import index_key_prefixes, range_interval
from reactor.core.intervals import Interval
from reactor.core.reads import ReadSet
from reactor.core.write_log import WriteLog

FIELDS = ("a", "b")
values = st.one_of(st.sampled_from(["", "a", "a\x00", "a\x00b", "ab", "b"]), st.floats(0, 3))


def doc(a: str | float, b: str | float, n: int) -> dict[str, str | float]:
    return {"a": a, "b": b, "_creationTime": float(n), "_id": f"id{n}"}


ranges = st.one_of(
    st.builds(lambda a: IndexRange(eq=(("a", a),)), values),
    st.builds(lambda a, b: IndexRange(eq=(("a", a), ("b", b))), values, values),
    st.builds(
        lambda a, lo: IndexRange(eq=(("a", a),), lower=Bound("b", lo, False)), values, values
    ),
    st.builds(lambda hi: IndexRange(upper=Bound("a", hi, True)), values),
)


@settings(max_examples=300, deadline=None)
@given(
    writes=st.lists(st.tuples(values, values), min_size=1, max_size=12),
    reads=st.lists(ranges, min_size=1, max_size=3),
    after=st.integers(0, 12),
    point=st.integers(0, 11),
)
def test_fast_path_agrees_with_a_scan(
    writes: list[tuple[str | float, str | float]], reads: list[IndexRange], after: int, point: int
) -> None:
    log = WriteLog()
    keys: list[bytes] = []
    for n, (a, b) in enumerate(writes, start=1):
        key, prefixes = index_key_prefixes(doc(a, b, n), FIELDS)
        keys.append(key)
        log.append(n, {"t.i": [key]}, "t", {"t.i": prefixes})
    read_set = ReadSet()
    for rng in reads:
        read_set.add("t.i", range_interval(rng, FIELDS + ("_creationTime",), index="t.i"))
    if point < len(keys):
        read_set.add_point("t.i", keys[point])
    fast = log.find_conflict(read_set, after)
    slow = log._scan(read_set, after, None)
    assert (fast is None) == (slow is None)


def test_purged_windows_are_reported_as_conflicts() -> None:
    log = WriteLog(max_entries=4)
    for n in range(1, 10):
        log.append(n, {"t.i": [bytes([n])]}, "t", {})
    read_set = ReadSet()
    read_set.add("t.i", Interval(b"\xff", None))  # a range no commit wrote into
    conflict = log.find_conflict(read_set, 1)
    assert conflict is not None and conflict.index_id is None
    assert log.find_conflict(read_set, 9) is None
    assert log.find_conflict(ReadSet(), 1) is None  # nothing read: nothing to be unsure of


def test_a_failed_commit_is_forgotten_but_older_writes_of_its_keys_are_not() -> None:
    log = WriteLog()
    log.append(1, {"t.i": [b"k"]}, "t", {})
    log.append(2, {"t.i": [b"k"]}, "t", {})
    log.remove_after(1)
    read_set = ReadSet()
    read_set.add("t.i", Interval(b"k", b"k\x00"))
    conflict = log.find_conflict(read_set, 0)
    assert conflict is not None and conflict.ts == 1
    assert log.find_conflict(read_set, 1) is None
