"""A run's result as the sync protocol's query outcome."""

from __future__ import annotations

from reactor.engine.executor import FunctionResult
from reactor.server.outcomes import outcome_of
from reactor.sync.protocol import QueryFailure, QuerySuccess


def test_a_success_carries_its_encoded_value_log_lines_and_journal() -> None:
    result = FunctionResult(True, value=[1.0], value_json=b"[1.0]", log_lines=("[LOG] hi",))
    result.journal = "j1"
    outcome = outcome_of(result)
    assert outcome == QuerySuccess(b"[1.0]", ("[LOG] hi",), "j1")


def test_a_failure_carries_its_message_and_error_data() -> None:
    result = FunctionResult(
        False, error_message="Uncaught ConvexError: no", error_data_json=b'{"code":1}'
    )
    outcome = outcome_of(result)
    assert outcome == QueryFailure("Uncaught ConvexError: no", b'{"code":1}', (), None)


def test_equal_results_have_equal_fingerprints_and_different_ones_do_not() -> None:
    a = outcome_of(FunctionResult(True, value_json=b"1"))
    b = outcome_of(FunctionResult(True, value_json=b"1"))
    c = outcome_of(FunctionResult(True, value_json=b"2"))
    assert a.fingerprint == b.fingerprint != c.fingerprint
