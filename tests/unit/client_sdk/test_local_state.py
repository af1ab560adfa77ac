from __future__ import annotations

from client_sdk.local_state import AuthToken, LocalSyncState, query_key
from reactor.sync.messages import Add, Authenticate, ModifyQuerySet, QueryId, Remove


def q(n: int) -> QueryId:
    return QueryId(n)


class TestSubscribe:
    def test_new_query_gets_an_add_with_chained_versions(self) -> None:
        state = LocalSyncState()
        query_id, message = state.subscribe("m:list", {"a": 1.0})
        assert query_id == 0
        assert message == ModifyQuerySet(0, 1, (Add(0, "m:list", {"a": 1.0}),))
        other_id, message = state.subscribe("m:other", {})
        assert other_id == 1
        assert message == ModifyQuerySet(1, 2, (Add(1, "m:other", {}),))
        assert state.query_set_version == 2

    def test_identical_queries_share_an_id(self) -> None:
        state = LocalSyncState()
        first, _ = state.subscribe("m:list", {"a": 1.0, "b": "x"})
        # Same args, different key order: the same query.
        second, message = state.subscribe("m:list", {"b": "x", "a": 1.0})
        assert second == first
        assert message is None
        assert state.query_set_version == 1
        query = state.query(first)
        assert query is not None and query.subscribers == 2

    def test_different_args_or_path_are_different_queries(self) -> None:
        state = LocalSyncState()
        a, _ = state.subscribe("m:list", {"a": 1.0})
        b, _ = state.subscribe("m:list", {"a": 2.0})
        c, _ = state.subscribe("m:list2", {"a": 1.0})
        assert len({a, b, c}) == 3

    def test_query_key_sorts_nested_keys(self) -> None:
        assert query_key("p", {"x": {"b": 1.0, "a": 2.0}}) == query_key(
            "p", {"x": {"a": 2.0, "b": 1.0}}
        )
        assert query_key("p", {}) != query_key("q", {})


class TestUnsubscribe:
    def test_remove_only_after_last_subscriber(self) -> None:
        state = LocalSyncState()
        query_id, _ = state.subscribe("m:list", {})
        state.subscribe("m:list", {})
        assert state.unsubscribe(query_id) is None
        assert state.has_query(query_id)
        assert state.unsubscribe(query_id) == ModifyQuerySet(1, 2, (Remove(query_id),))
        assert not state.has_query(query_id)

    def test_unknown_and_double_unsubscribe_are_ignored(self) -> None:
        state = LocalSyncState()
        query_id, _ = state.subscribe("m:list", {})
        assert state.unsubscribe(q(42)) is None
        assert state.unsubscribe(query_id) is not None
        assert state.unsubscribe(query_id) is None
        assert state.query_set_version == 2

    def test_ids_are_never_reused(self) -> None:
        state = LocalSyncState()
        first, _ = state.subscribe("m:list", {})
        state.unsubscribe(first)
        again, message = state.subscribe("m:list", {})
        assert again == 1 != first
        assert message == ModifyQuerySet(2, 3, (Add(1, "m:list", {}),))


class TestJournals:
    def test_saved_journal_is_sent_on_restart(self) -> None:
        state = LocalSyncState()
        a, _ = state.subscribe("m:a", {})
        b, _ = state.subscribe("m:b", {"x": 1.0})
        state.save_journal(a, "cursor-1")
        state.save_journal(q(99), "ignored")
        auth, message = state.restart()
        assert auth is None
        assert message == ModifyQuerySet(
            0, 1, (Add(a, "m:a", {}, "cursor-1"), Add(b, "m:b", {"x": 1.0}))
        )

    def test_journal_can_be_cleared(self) -> None:
        state = LocalSyncState()
        a, _ = state.subscribe("m:a", {})
        state.save_journal(a, "j")
        state.save_journal(a, None)
        _, message = state.restart()
        assert message.modifications == (Add(a, "m:a", {}, None),)


class TestRestart:
    def test_empty_restart_still_sends_a_query_set(self) -> None:
        assert LocalSyncState().restart() == (None, ModifyQuerySet(0, 1, ()))

    def test_restart_resets_the_version_and_keeps_ids(self) -> None:
        state = LocalSyncState()
        a, _ = state.subscribe("m:a", {})
        b, _ = state.subscribe("m:b", {})
        c, _ = state.subscribe("m:c", {})
        state.unsubscribe(b)
        assert state.query_set_version == 4
        _, message = state.restart()
        assert [m.query_id for m in message.modifications] == [a, c]
        assert state.query_set_version == 1
        # The next change chains from the restart's version.
        _, nxt = state.subscribe("m:d", {})
        assert nxt is not None and (nxt.base_version, nxt.new_version) == (1, 2)
        assert [x.query_id for x in state.queries()] == [a, c, 3]


class TestAuth:
    def test_set_auth_bumps_identity_version(self) -> None:
        state = LocalSyncState()
        assert state.set_auth(AuthToken("User", "t1")) == Authenticate("User", "t1", 0)
        assert state.set_auth(AuthToken("Admin", "k")) == Authenticate("Admin", "k", 1)
        assert state.set_auth(None) == Authenticate("None", None, 2)
        assert state.identity_version == 3
        assert state.auth is None

    def test_restart_reauthenticates_from_zero(self) -> None:
        state = LocalSyncState()
        state.set_auth(AuthToken("User", "t1"))
        state.set_auth(AuthToken("User", "t2"))
        auth, _ = state.restart()
        assert auth == Authenticate("User", "t2", 0)
        assert state.identity_version == 1
        assert state.set_auth(None) == Authenticate("None", None, 1)

    def test_restart_after_logout_sends_no_authenticate(self) -> None:
        state = LocalSyncState()
        state.set_auth(AuthToken("User", "t1"))
        state.set_auth(None)
        auth, _ = state.restart()
        assert auth is None
        assert state.identity_version == 0
