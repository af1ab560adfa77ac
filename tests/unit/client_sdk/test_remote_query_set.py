from __future__ import annotations

import pytest

from client_sdk.errors import ProtocolMismatch
from client_sdk.remote_query_set import RemoteQuerySet
from reactor.sync.messages import (
    INITIAL_VERSION,
    FunctionResult,
    QueryFailed,
    QueryId,
    QueryRemoved,
    QueryUpdated,
    StateModification,
    StateVersion,
    Timestamp,
    Transition,
)


def v(qs: int, identity: int, ts: int) -> StateVersion:
    return StateVersion(qs, identity, Timestamp(ts))


def t(start: StateVersion, end: StateVersion, *mods: StateModification) -> Transition:
    return Transition(start, end, tuple(mods))


def updated(query_id: int, value: object) -> QueryUpdated:
    return QueryUpdated(QueryId(query_id), value)


def test_starts_at_zero() -> None:
    remote = RemoteQuerySet()
    assert remote.version == INITIAL_VERSION == v(0, 0, 0)
    assert remote.results == {}


def test_transitions_chain() -> None:
    remote = RemoteQuerySet()
    assert remote.transition(t(v(0, 0, 0), v(1, 0, 10), updated(0, 1.0))) == [0]
    assert remote.version == v(1, 0, 10)
    assert remote.transition(t(v(1, 0, 10), v(1, 0, 20), updated(0, 2.0), updated(1, "x"))) == [
        0,
        1,
    ]
    assert remote.version == v(1, 0, 20)
    assert remote.result(QueryId(0)) == FunctionResult(True, 2.0)
    assert remote.result(QueryId(1)) == FunctionResult(True, "x")


def test_empty_transition_only_moves_the_version() -> None:
    remote = RemoteQuerySet()
    assert remote.transition(t(v(0, 0, 0), v(0, 0, 5))) == []
    assert remote.version == v(0, 0, 5)


def test_failed_and_removed() -> None:
    remote = RemoteQuerySet()
    remote.transition(
        t(
            v(0, 0, 0),
            v(2, 0, 1),
            updated(0, 1.0),
            QueryFailed(QueryId(1), "boom", error_data={"x": 1.0}, has_error_data=True),
            QueryFailed(QueryId(2), "plain"),
        )
    )
    assert remote.result(QueryId(1)) == FunctionResult(
        False, error_message="boom", error_data={"x": 1.0}, has_error_data=True
    )
    assert remote.result(QueryId(2)) == FunctionResult(False, error_message="plain")
    touched = remote.transition(
        t(v(2, 0, 1), v(3, 0, 1), QueryRemoved(QueryId(0)), QueryRemoved(QueryId(9)))
    )
    assert touched == [0, 9]
    assert remote.result(QueryId(0)) is None
    assert set(remote.results) == {1, 2}


@pytest.mark.parametrize(
    "start",
    # Each differs from the current {1, 0, 10} in one field, or is the initial version.
    [v(0, 0, 10), v(2, 0, 10), v(1, 1, 10), v(1, 0, 9), v(1, 0, 11), v(0, 0, 0)],
)
def test_wrong_start_version_is_rejected_without_applying(start: StateVersion) -> None:
    remote = RemoteQuerySet()
    remote.transition(t(v(0, 0, 0), v(1, 0, 10), updated(0, 1.0)))
    with pytest.raises(ProtocolMismatch, match="Invalid start version") as info:
        remote.transition(t(start, v(2, 0, 20), updated(0, 99.0)))
    assert info.value.close_reason == "StartVersionMismatch"
    assert remote.version == v(1, 0, 10)
    assert remote.result(QueryId(0)) == FunctionResult(True, 1.0)


def test_first_transition_must_start_at_zero() -> None:
    with pytest.raises(ProtocolMismatch, match=r"ts: 5\}, expected \{querySet: 0"):
        RemoteQuerySet().transition(t(v(0, 0, 5), v(1, 0, 6)))


def test_timestamps_compare_by_value() -> None:
    remote = RemoteQuerySet()
    remote.transition(t(v(0, 0, 0), v(1, 0, 1 << 62)))
    remote.transition(t(v(1, 0, 1 << 62), v(1, 0, (1 << 62) + 1)))
    assert remote.version.ts == (1 << 62) + 1
