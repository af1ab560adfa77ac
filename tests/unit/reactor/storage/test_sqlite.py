"""``check_batch``: the single-process engine's conflict check, a pure function of the write log
and the batch (the engine's storage is covered by ``tests/conformance``)."""

from __future__ import annotations

from collections.abc import Iterable

from reactor.core.intervals import Interval
from reactor.core.persistence import Commit, CommitRequest, DocumentLogEntry, MutationRecord
from reactor.core.reads import ReadSet
from reactor.core.write_log import WriteLog
from reactor.storage.sqlite import check_batch
from schema.errors import OptimisticConcurrencyError

INDEX = "tasks.by_id"


class Clock:
    """``next_ts``: hands out 100, 101, ... and remembers how many it gave."""

    def __init__(self, start: int = 100) -> None:
        self.next = start
        self.given: list[int] = []

    def __call__(self) -> int:
        ts = self.next
        self.next += 1
        self.given.append(ts)
        return ts


def request(
    begin_ts: int,
    writes: Iterable[bytes] = (),
    *,
    reads: Iterable[bytes] = (),
    table: str = "tasks",
    mutation: MutationRecord | None = None,
) -> CommitRequest:
    read_set = ReadSet()
    for key in reads:
        read_set.add_point(INDEX, key)
    written = list(writes)

    def build(ts: int) -> Commit:
        docs = [DocumentLogEntry(key.decode(), table, b"{}", None) for key in written]
        return Commit(ts, docs)

    return CommitRequest(
        begin_ts,
        read_set,
        {INDEX: written},
        build,
        table,
        mutations=() if mutation is None else (mutation,),
    )


def log_with(*commits: tuple[int, bytes]) -> WriteLog:
    log = WriteLog()
    for ts, key in commits:
        log.append(ts, {INDEX: [key]}, "tasks")
    return log


def test_an_empty_batch_takes_no_timestamp() -> None:
    clock = Clock()
    assert check_batch([], WriteLog(), clock) == ([], [])
    assert clock.given == []


def test_independent_requests_get_increasing_timestamps_and_their_records() -> None:
    clock = Clock()
    first = request(0, [b"a"])
    second = request(0, [b"b"])
    results, accepted = check_batch([first, second], WriteLog(), clock)
    assert results == [100, 101]
    assert [req for req, _ in accepted] == [first, second]
    assert [commit.ts for _, commit in accepted] == [100, 101]
    assert [commit.documents[0].id for _, commit in accepted] == ["a", "b"]


def test_the_mutation_record_goes_into_the_commit() -> None:
    record = MutationRecord("session", 3, b"null")
    _, accepted = check_batch([request(0, [b"a"], mutation=record)], WriteLog(), Clock())
    assert accepted[0][1].mutations == (record,)


def test_a_logged_commit_after_the_snapshot_conflicts() -> None:
    clock = Clock()
    results, accepted = check_batch(
        [request(10, [b"z"], reads=[b"k"])], log_with((11, b"k")), clock
    )
    (conflict,) = results
    assert isinstance(conflict, OptimisticConcurrencyError)
    assert conflict.write_ts == 11
    assert conflict.table == "tasks"
    assert accepted == []
    assert clock.given == []  # a refused request takes no timestamp


def test_a_logged_commit_at_or_before_the_snapshot_does_not() -> None:
    results, _ = check_batch([request(11, [b"z"], reads=[b"k"])], log_with((11, b"k")), Clock())
    assert results == [100]


def test_a_written_commit_not_yet_published_conflicts_after_the_snapshot_only() -> None:
    unsynced = log_with((11, b"k"))  # written (readable), its fsync still running
    results, _ = check_batch(
        [request(10, [b"z"], reads=[b"k"]), request(11, [b"y"], reads=[b"k"])],
        WriteLog(),
        Clock(),
        unsynced,
    )
    conflict, accepted = results
    assert isinstance(conflict, OptimisticConcurrencyError)
    assert conflict.write_ts == 11
    assert accepted == 100


def test_a_logged_commit_of_another_key_does_not() -> None:
    results, _ = check_batch([request(10, [b"z"], reads=[b"k"])], log_with((11, b"j")), Clock())
    assert results == [100]


def test_a_request_conflicts_with_one_accepted_earlier_in_the_batch() -> None:
    clock = Clock()
    writer = request(0, [b"k"])
    reader = request(0, [b"z"], reads=[b"k"])
    bystander = request(0, [b"y"], reads=[b"q"])
    results, accepted = check_batch([writer, reader, bystander], WriteLog(), clock)
    assert results[0] == 100
    conflict = results[1]
    assert isinstance(conflict, OptimisticConcurrencyError)
    assert conflict.write_ts == 100
    assert conflict.table == "tasks"
    assert results[2] == 101
    assert [req for req, _ in accepted] == [writer, bystander]


def test_a_refused_request_does_not_make_later_ones_conflict() -> None:
    # The refused request's writes never happen, so a later reader of them is fine.
    refused = request(10, [b"k"], reads=[b"old"])
    reader = request(10, [b"z"], reads=[b"k"])
    results, accepted = check_batch([refused, reader], log_with((11, b"old")), Clock())
    assert isinstance(results[0], OptimisticConcurrencyError)
    assert results[1] == 100
    assert [req for req, _ in accepted] == [reader]


def test_a_range_read_conflicts_with_a_write_inside_it() -> None:
    reads = ReadSet()
    reads.add(INDEX, Interval(b"a", b"m"))
    ranged = CommitRequest(10, reads, {}, lambda ts: Commit(ts), "tasks")
    results, _ = check_batch([ranged], log_with((12, b"c")), Clock())
    assert isinstance(results[0], OptimisticConcurrencyError)
    assert results[0].write_ts == 12


def test_a_snapshot_older_than_the_log_remembers_conflicts() -> None:
    log = log_with((5, b"a"), (6, b"b"))
    log.trim(now_ns=6 + 120_000_000_000)  # forgets both commits
    assert log.purged_through == 6
    results, accepted = check_batch([request(4, [b"z"], reads=[b"q"])], log, Clock())
    assert isinstance(results[0], OptimisticConcurrencyError)
    assert results[0].write_ts == 6
    assert accepted == []
