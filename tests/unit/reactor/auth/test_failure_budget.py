"""FailureBudget: a token bucket of failed attempts per peer, on a time the test passes in."""

from __future__ import annotations

import pytest

from reactor.auth.failure_budget import FailureBudget


def test_a_peer_may_fail_burst_times_then_waits_for_a_refill() -> None:
    budget = FailureBudget(burst=3, refill_s=2.0)

    assert [budget.reserve("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert budget.reserve("a", 0.0) == pytest.approx(2.0)
    assert budget.reserve("a", 1.5) == pytest.approx(0.5)
    assert budget.reserve("a", 2.0) == 0.0  # one token refilled
    assert budget.reserve("a", 2.0) == pytest.approx(2.0)


def test_refill_stops_at_burst() -> None:
    budget = FailureBudget(burst=2, refill_s=1.0)
    budget.reserve("a", 0.0)

    assert budget.remaining("a", 1000.0) == 2


def test_a_success_gives_its_token_back() -> None:
    budget = FailureBudget(burst=1, refill_s=60.0)

    assert budget.reserve("a", 0.0) == 0.0
    budget.release("a", 0.0)
    assert budget.reserve("a", 0.0) == 0.0
    assert budget.reserve("a", 0.0) > 0


def test_peers_have_separate_budgets() -> None:
    budget = FailureBudget(burst=1, refill_s=60.0)

    assert budget.reserve("a", 0.0) == 0.0
    assert budget.reserve("a", 0.0) > 0
    assert budget.reserve("b", 0.0) == 0.0


def test_at_most_max_peers_buckets_are_kept_least_recent_first_out() -> None:
    budget = FailureBudget(burst=1, refill_s=60.0, max_peers=2)
    budget.reserve("a", 0.0)
    budget.reserve("b", 0.0)
    budget.reserve("a", 0.0)  # a is now the most recent
    budget.reserve("c", 0.0)  # evicts b

    assert budget.remaining("a", 0.0) == 0
    assert budget.remaining("b", 0.0) == 1  # forgotten: a fresh bucket
    assert len(budget._buckets) == 2


@pytest.mark.parametrize(("burst", "refill_s"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_bad_settings_are_refused(burst: int, refill_s: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        FailureBudget(burst=burst, refill_s=refill_s)
