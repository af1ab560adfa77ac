"""How a function's result goes on the wire: a run's ``FunctionResult`` as the sync protocol's
query outcome (query results, mutation and action responses).

The one meeting point of the engine's results and the wire types, so that neither the query
cache nor the sans-I/O protocol imports the other.
"""

from __future__ import annotations

from reactor.engine.executor import FunctionResult
from reactor.sync.protocol import QueryFailure, QueryOutcome, QuerySuccess

__all__ = ["outcome_of"]


def outcome_of(result: FunctionResult) -> QueryOutcome:
    """The wire outcome of a run."""
    if result.success:
        return QuerySuccess(result.value_json, result.log_lines, result.journal)
    return QueryFailure(
        result.error_message, result.error_data_json, result.log_lines, result.journal
    )
