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
