"""Transitions of a fan-out share their encoded head (``SharedTransitions``), and what each
session sends is exactly what it would send without sharing."""

from __future__ import annotations

import json

from reactor.sync.protocol import QuerySuccess, ServerSession, SharedTransitions

CONNECT = json.dumps(
    {
        "type": "Connect",
        "sessionId": "00000000-0000-0000-0000-000000000000",
        "connectionCount": 0,
        "lastCloseReason": "InitialConnect",
        "clientTs": 1_000,
    }
)


def subscribed(query_id: int = 0, *, now_ms: int = 5_000) -> ServerSession:
    session = ServerSession()
    session.receive(CONNECT, now_ms=now_ms)
    session.receive(
        json.dumps(
            {
                "type": "ModifyQuerySet",
                "baseVersion": 0,
                "newVersion": 1,
                "modifications": [
                    {"type": "Add", "queryId": query_id, "udfPath": "tasks:board", "args": [{}]}
                ],
            }
        )
    )
    return session


def test_equal_transitions_share_one_head_and_keep_their_own_tail() -> None:
    first = QuerySuccess(b"[1]")
    sessions = [subscribed(now_ms=5_000 + i) for i in range(3)]  # three clock skews
    plain = subscribed(now_ms=5_000)
    for session in [*sessions, plain]:
        session.build_transition(10, {0: first}, server_ts=11)
    shared = SharedTransitions()
    second = QuerySuccess(b"[1,2]")
    sent = [s.transition_for(20, {0: second}, server_ts=21, shared=shared) for s in sessions]
    expected = plain.transition_for(20, {0: second}, server_ts=21)
    assert expected is not None and None not in sent
    assert sent[0] == expected  # same session state, same bytes as without sharing
    decoded = [json.loads(frame or b"") for frame in sent]
    assert [d["clientClockSkew"] for d in decoded] == [-4_000, -4_001, -4_002]
    assert all(d["modifications"] == decoded[0]["modifications"] for d in decoded)
    assert all(d["endVersion"] == decoded[0]["endVersion"] for d in decoded)
    assert len(shared._heads) == 1  # one head encoded for the three of them


def test_different_transitions_are_not_shared() -> None:
    shared = SharedTransitions()
    outcome = QuerySuccess(b'"x"')

    def three() -> list[tuple[ServerSession, int]]:
        behind, ahead, other_id = subscribed(), subscribed(), subscribed(query_id=7)
        ahead.build_transition(5, {0: QuerySuccess(b'"old"')})  # another start version
        return [(behind, 0), (ahead, 0), (other_id, 7)]

    frames = [s.transition_for(9, {q: outcome}, shared=shared) for s, q in three()]
    alone = [s.transition_for(9, {q: outcome}) for s, q in three()]
    assert frames == alone  # each is what the session would have sent without sharing
    decoded = [json.loads(frame or b"") for frame in frames]
    assert decoded[0]["startVersion"] != decoded[1]["startVersion"]
    assert decoded[2]["modifications"][0]["queryId"] == 7
    assert len(shared._heads) == 3


def test_a_newer_fan_out_drops_older_heads_and_the_cache_is_bounded() -> None:
    shared = SharedTransitions(max_heads=2)
    for ts in (1, 2, 3):
        subscribed().transition_for(ts, {0: QuerySuccess(b"1")}, shared=shared)
        assert len(shared._heads) == 1  # only the newest ts is kept
    for query_id in (1, 2, 3):
        subscribed(query_id).transition_for(4, {query_id: QuerySuccess(b"1")}, shared=shared)
        assert len(shared._heads) <= 2


def modify(session: ServerSession, base: int, *modifications: dict[str, object]) -> None:
    session.receive(
        json.dumps(
            {
                "type": "ModifyQuerySet",
                "baseVersion": base,
                "newVersion": base + 1,
                "modifications": list(modifications),
            }
        )
    )


def test_a_fan_out_gives_each_session_its_own_frame_and_shares_the_common_part() -> None:
    """Sessions differing in clock skew, query-set version, start version, or that already hold
    the result, each get exactly the Transition they would get alone (a JSON comparison with
    the plain encoder), and those whose only difference is the tail share one head object."""
    first, second = QuerySuccess(b"[1]"), QuerySuccess(b"[1,2]")

    def sessions() -> list[ServerSession]:
        skews = [subscribed(now_ms=5_000 + i) for i in range(3)]
        no_connect = ServerSession()  # never sent a Connect: no clientClockSkew at all
        modify(no_connect, 0, {"type": "Add", "queryId": 0, "udfPath": "tasks:board", "args": [{}]})
        newer_set = subscribed()  # added and removed another query: query set version 3
        behind = subscribed()  # its last Transition is older: another start version
        holds = subscribed()  # already holds ``second``: an empty Transition
        all_ = [*skews, no_connect, newer_set, behind, holds]
        for session in all_:
            session.build_transition(10, {0: first}, server_ts=11)
        modify(newer_set, 1, {"type": "Add", "queryId": 5, "udfPath": "tasks:board", "args": [{}]})
        newer_set.build_transition(12, {0: first, 5: first}, server_ts=13)
        modify(newer_set, 2, {"type": "Remove", "queryId": 5})
        newer_set.build_transition(14, {}, server_ts=15)
        behind.sent_version = behind.sent_version.__class__(1, 0, 3)
        holds.build_transition(15, {0: second}, server_ts=16)
        return all_

    shared = SharedTransitions()
    outcomes = {0: second}  # one mapping for them all, as the query cache delivers a fan-out
    sent = [s.transition_for(20, outcomes, server_ts=21, shared=shared) for s in sessions()]
    alone = [s.transition_for(20, {0: second}, server_ts=21) for s in sessions()]
    assert None not in sent and sent == alone
    decoded = [json.loads(frame or b"") for frame in sent]
    skews = [d.get("clientClockSkew") for d in decoded]
    assert skews == [-4_000, -4_001, -4_002, None, -4_000, -4_000, -4_000]
    assert {d["serverTs"] for d in decoded} == {21}
    assert decoded[4]["endVersion"]["querySet"] == 3
    assert decoded[4]["startVersion"]["querySet"] == 3
    assert decoded[5]["startVersion"]["ts"] != decoded[0]["startVersion"]["ts"]
    assert decoded[6]["modifications"] == []
    assert all(d["modifications"] == decoded[0]["modifications"] for d in decoded[:6])
    # One head for the three skews and the session without a Connect; one each for the
    # other query set, the other start version and the empty Transition.
    heads = [head for _, head in shared._heads.values()]
    assert len(heads) == 4
    assert sum(frame.startswith(heads[0]) for frame in sent if frame) == 4


def test_a_new_outcome_at_the_same_versions_is_not_answered_from_the_cache() -> None:
    """Two queries' entries (say one per identity) under the same query id and versions: each
    session gets its own outcome, though their heads are filed under the same key."""
    shared = SharedTransitions()
    mine, theirs = QuerySuccess(b'"mine"'), QuerySuccess(b'"theirs"')
    frames = [
        subscribed().transition_for(9, {0: outcome}, shared=shared)
        for outcome in (mine, theirs, mine)
    ]
    values = [json.loads(frame or b"")["modifications"][0]["value"] for frame in frames]
    assert values == ["mine", "theirs", "mine"]


def test_the_server_ts_of_a_slice_is_encoded_once() -> None:
    shared = SharedTransitions()
    assert shared.server_ts_tail(123) == b"123}"
    assert shared.server_ts_tail(123) is shared.server_ts_tail(123)
    assert shared.server_ts_tail(124) == b"124}"


def test_sessions_in_different_states_interleaved_in_a_fan_out_get_their_own_frames() -> None:
    """What a fan-out decides for one session is reused by the next only when it is in the same
    state: in any order, each frame is what that session would send alone."""
    first, second = QuerySuccess(b"[1]"), QuerySuccess(b"[2]")

    def sessions() -> list[ServerSession]:
        same = [subscribed(now_ms=5_000 + i) for i in range(3)]
        other_query = subscribed(query_id=7)  # the outcome is not for its query: no change
        holds = subscribed()  # already holds the new result: no change
        other_set = subscribed()  # another query-set version
        later = subscribed()  # its last Transition is later than the fan-out's ts
        equal = subscribed()  # same versions, but holds an equal copy of the new result
        for session in [*same, other_query, holds, other_set, later]:
            session.build_transition(10, {0: first, 7: first}, server_ts=11)
        equal.build_transition(10, {0: QuerySuccess(b"[2]")}, server_ts=11)
        holds.build_transition(12, {0: second}, server_ts=13)
        modify(other_set, 1, {"type": "Add", "queryId": 3, "udfPath": "t:q", "args": [{}]})
        other_set.build_transition(14, {0: first, 3: first}, server_ts=15)
        later.build_transition(30, {0: first}, server_ts=31)
        return [same[0], other_query, same[1], holds, same[2], other_set, later, equal]

    for order in ([0, 1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1, 0], [0, 7, 2, 4, 1, 3, 5, 6]):
        shared, outcomes = SharedTransitions(), {0: second}
        group, alone_group = sessions(), sessions()
        sent = [group[i].transition_for(20, outcomes, server_ts=21, shared=shared) for i in order]
        alone = [alone_group[i].transition_for(20, {0: second}, server_ts=21) for i in order]
        assert sent == alone, order
        # and the next Transition of each (nothing changed) still matches
        again = [group[i].transition_for(25, outcomes, server_ts=26, shared=shared) for i in order]
        alone_again = [alone_group[i].transition_for(25, {0: second}, server_ts=26) for i in order]
        assert again == alone_again, order
    decoded = [json.loads(frame or b"") for frame in sent]
    assert [bool(d["modifications"]) for d in decoded] == [
        True, False, True, True, False, False, True, True
    ]  # fmt: skip
