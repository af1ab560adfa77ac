from __future__ import annotations

import logging

import pytest

from client_sdk.request_manager import RequestManager, RequestStatus
from reactor.sync.messages import (
    Action,
    ActionResponse,
    FunctionResult,
    Mutation,
    MutationResponse,
    RequestId,
    Timestamp,
)

OK = FunctionResult(True, 1.0)
FAIL = FunctionResult(False, error_message="boom")


def r(n: int) -> RequestId:
    return RequestId(n)


def ok_response(request_id: int, ts: int, value: object = 1.0) -> MutationResponse:
    return MutationResponse(r(request_id), FunctionResult(True, value), Timestamp(ts))


class TestIds:
    def test_shared_increasing_counter(self) -> None:
        manager = RequestManager()
        assert manager.add_mutation("m:a", {}, sent=True) == Mutation(0, "m:a", {})
        assert manager.add_action("a:b", {"x": 1.0}, sent=True) == Action(1, "a:b", {"x": 1.0})
        assert manager.add_mutation("m:a", {}, sent=False).request_id == 2
        assert len(manager) == 3
        assert manager.udf_path(r(1)) == "a:b"
        assert manager.udf_path(r(7)) is None
        assert manager.status(r(2)) is RequestStatus.NOT_SENT

    def test_ids_survive_restart_and_resolution(self) -> None:
        manager = RequestManager()
        manager.add_action("a", {}, sent=True)
        manager.on_response(ActionResponse(r(0), OK))
        manager.restart()
        assert manager.add_mutation("m", {}, sent=True).request_id == 1


class TestMutationResolution:
    def test_success_waits_for_a_transition_at_or_after_its_ts(self) -> None:
        manager = RequestManager()
        manager.add_mutation("m:a", {}, sent=True)
        assert manager.on_response(ok_response(0, 100)) is None
        assert manager.status(r(0)) is RequestStatus.COMPLETED
        assert manager.remove_completed(Timestamp(99)) == []
        assert manager.remove_completed(Timestamp(100)) == [(0, OK)]
        assert manager.status(r(0)) is None
        assert len(manager) == 0

    def test_later_transition_also_resolves(self) -> None:
        manager = RequestManager()
        manager.add_mutation("m:a", {}, sent=True)
        manager.on_response(ok_response(0, 100))
        assert manager.remove_completed(Timestamp(500)) == [(0, OK)]

    def test_transition_before_response_does_not_count(self) -> None:
        # The Transition (ts 200 ≥ 100) arrives first: nothing is waiting yet, so the
        # mutation resolves only at the *next* Transition.
        manager = RequestManager()
        manager.add_mutation("m:a", {}, sent=True)
        assert manager.remove_completed(Timestamp(200)) == []
        assert manager.on_response(ok_response(0, 100)) is None
        assert manager.status(r(0)) is RequestStatus.COMPLETED
        assert manager.remove_completed(Timestamp(200)) == [(0, OK)]

    def test_failure_resolves_immediately(self) -> None:
        manager = RequestManager()
        manager.add_mutation("m:a", {}, sent=True)
        response = MutationResponse(r(0), FAIL)
        assert manager.on_response(response) == FAIL
        assert manager.status(r(0)) is None

    def test_several_resolve_in_request_order(self) -> None:
        manager = RequestManager()
        for _ in range(4):
            manager.add_mutation("m:a", {}, sent=True)
        manager.on_response(ok_response(2, 30, "c"))
        manager.on_response(ok_response(0, 10, "a"))
        manager.on_response(ok_response(1, 50, "b"))
        done = manager.remove_completed(Timestamp(30))
        assert done == [(0, FunctionResult(True, "a")), (2, FunctionResult(True, "c"))]
        assert manager.status(r(1)) is RequestStatus.COMPLETED
        assert manager.status(r(3)) is RequestStatus.REQUESTED

    def test_duplicate_and_unknown_responses_are_ignored(self) -> None:
        manager = RequestManager()
        manager.add_mutation("m:a", {}, sent=True)
        manager.on_response(ok_response(0, 10, "first"))
        assert manager.on_response(ok_response(0, 99, "second")) is None
        assert manager.on_response(ok_response(5, 10)) is None
        assert manager.remove_completed(Timestamp(10)) == [(0, FunctionResult(True, "first"))]
        assert manager.on_response(ok_response(0, 10)) is None  # already resolved

    def test_wrong_kind_response_is_ignored(self, caplog: pytest.LogCaptureFixture) -> None:
        manager = RequestManager()
        manager.add_mutation("m:a", {}, sent=True)
        manager.add_action("a:b", {}, sent=True)
        with caplog.at_level(logging.WARNING):
            assert manager.on_response(ActionResponse(r(0), OK)) is None
            assert manager.on_response(ok_response(1, 5)) is None
        assert "not one" in caplog.text
        assert manager.status(r(0)) is RequestStatus.REQUESTED
        assert manager.status(r(1)) is RequestStatus.REQUESTED


class TestActions:
    def test_resolves_on_response_success_or_failure(self) -> None:
        manager = RequestManager()
        manager.add_action("a", {}, sent=True)
        manager.add_action("a", {}, sent=True)
        assert manager.on_response(ActionResponse(r(0), OK)) == OK
        assert manager.on_response(ActionResponse(r(1), FAIL)) == FAIL
        assert len(manager) == 0


class TestReconnect:
    def test_restart_resends_every_mutation_with_the_same_id(self) -> None:
        manager = RequestManager()
        m0 = manager.add_mutation("m:a", {"n": 0.0}, sent=True)  # answered, awaiting Transition
        m1 = manager.add_mutation("m:a", {"n": 1.0}, sent=True)  # unanswered
        m2 = manager.add_mutation("m:a", {"n": 2.0}, sent=False)  # never sent
        manager.on_response(ok_response(0, 10))
        assert manager.connection_lost() == []
        assert manager.restart() == [m0, m1, m2]
        assert manager.status(r(0)) is RequestStatus.COMPLETED
        assert manager.status(r(1)) is RequestStatus.REQUESTED
        assert manager.status(r(2)) is RequestStatus.REQUESTED

    def test_answered_mutation_resolves_on_first_transition_of_new_socket(self) -> None:
        manager = RequestManager()
        manager.add_mutation("m:a", {}, sent=True)
        manager.on_response(ok_response(0, 10, "orig"))
        manager.connection_lost()
        manager.restart()
        # The server de-duplicates and answers again; the duplicate is ignored...
        assert manager.on_response(ok_response(0, 10, "dup")) is None
        # ...and the new socket's first Transition (ts ≥ 10) resolves the original.
        assert manager.remove_completed(Timestamp(12)) == [(0, FunctionResult(True, "orig"))]

    def test_sent_actions_fail_unsent_actions_go_out(self) -> None:
        manager = RequestManager()
        manager.add_action("a:sent", {}, sent=True)
        m = manager.add_mutation("m:a", {}, sent=True)
        unsent = manager.add_action("a:unsent", {}, sent=False)
        assert manager.connection_lost() == [0]
        assert manager.status(r(0)) is None
        assert manager.restart() == [m, unsent]
        assert manager.status(r(2)) is RequestStatus.REQUESTED
        # Now it was sent: a second loss fails it.
        assert manager.connection_lost() == [2]

    def test_restart_without_connection_lost_skips_sent_actions(self) -> None:
        manager = RequestManager()
        manager.add_action("a", {}, sent=True)
        assert manager.restart() == []

    def test_remove_all(self) -> None:
        manager = RequestManager()
        manager.add_action("a", {}, sent=True)
        manager.add_mutation("m", {}, sent=False)
        manager.add_mutation("m", {}, sent=True)
        manager.on_response(ok_response(2, 1))
        assert manager.remove_all() == [0, 1, 2]
        assert len(manager) == 0
        assert manager.remove_completed(Timestamp(5)) == []
