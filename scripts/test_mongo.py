"""The MongoDB engine's test suites, through the real PyMongo driver.

Runs the storage conformance suites: the integration tests, whose ``running_deployment`` then
uses a fresh MongoDB database instead of SQLite (then a part of them again with app code in
function runner processes) (``tests/mongo``, the engine's own tests, runs
in the main suite). The server is
``REACTOR_TEST_MONGODB_URL`` when set (a replica set: the change-stream feed is used), else
the mongoeco emulator from ``.venv-mongoeco`` (the commit-log polling feed; see
docs/mongodb.md for what it cannot show). Exits non-zero on any failure, and when no MongoDB
is available at all (``--optional`` makes that a note and exit 0, for ``make test``).

    .venv/bin/python scripts/test_mongo.py [--optional] [pytest args...]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reactor.testing.mongo import mongoeco_python, mongoeco_server, test_mongodb_url  # noqa: E402

CONFORMANCE = [
    "tests/integration/test_transactions.py",
    "tests/integration/test_documents.py",
    "tests/integration/test_invalidation.py",
    "tests/integration/test_idempotency.py",
    "tests/integration/test_scheduler.py",
    "tests/integration/test_crons.py",
    "tests/integration/test_files.py",
    "tests/integration/test_example_teamtasks.py",
    "tests/integration/test_sync_ping.py",
]
# Run a second time with app code in function runner processes (each its own MongoDB client,
# reading at the snapshot the server gives it), as ``reactor serve`` runs it. test_crons.py
# runs on a manual clock, which keeps app code in-process: a second pass would repeat the first.
ON_RUNNERS = [
    "tests/integration/test_transactions.py",
    "tests/integration/test_documents.py",
    "tests/integration/test_invalidation.py",
    "tests/integration/test_idempotency.py",
    "tests/integration/test_scheduler.py",
    "tests/integration/test_files.py",
    "tests/integration/test_example_teamtasks.py",
    "tests/integration/test_sync_ping.py",
]
# Tests of the embedded engine itself, or of a property MongoDB does not promise.
NOT_ON_MONGODB = {
    # reads the SQLite file's version tables
    "test_pruning_forgets_superseded_versions_but_not_current_data",
    # counts re-runs exactly: on MongoDB a query's snapshot may already hold a commit the feed
    # has not published yet, and that commit re-runs it once more (correct, not minimal)
    "test_one_write_among_a_thousand_owners_reruns_exactly_one_query",
    # expects the job's success to be visible as soon as its mutation's write is; on MongoDB
    # the two commits reach this process's feed one after the other
    "test_actions_run_functions_and_schedule_immediately",
}
# The emulator's concurrent transactions conflict server-wide, without MongoDB's
# TransientTransactionError label, and a failed one can poison its pooled session: heavy
# concurrency there fails for reasons a real MongoDB does not have.
NOT_ON_EMULATOR = {"test_concurrent_transfers_conserve_the_total"}
# Through function runners on the emulator: the reload's index creation (a write outside any
# transaction) fails the emulator's transactions in flight server-wide, and the query right
# after it, in a runner the reload just restarted, then timed out; one CI run in two on
# 2026-12-05, not analysed further (it passes in-process on the emulator and on SQLite).
NOT_ON_EMULATOR_RUNNERS = {"test_a_reload_back_fills_an_index_while_serving"}


def _pytest(cmd: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    """Run pytest (its output passed through): its exit code and the ids of failed tests."""
    proc = subprocess.Popen(
        [*cmd, "-rf"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    assert proc.stdout is not None
    failed = []
    for line in proc.stdout:
        sys.stdout.write(line)
        if line.startswith("FAILED "):
            failed.append(line.split()[1])
    sys.stdout.flush()
    return proc.wait(), failed


def main(argv: list[str]) -> int:
    optional = "--optional" in argv
    args = [a for a in argv if a != "--optional"]
    url = test_mongodb_url()
    python = str(ROOT / ".venv" / "bin" / "python")
    if url is None and not mongoeco_python(ROOT).exists():
        print(
            "MongoDB suites not run: no MongoDB (set REACTOR_TEST_MONGODB_URL, or install "
            "Python 3.13 and run scripts/install for the mongoeco emulator)",
            file=sys.stderr,
        )
        return 0 if optional else 1

    def run(base: str, emulator: bool) -> int:
        storage = base + ("&" if "?" in base else "?") + "reactorFeed=poll" if emulator else base
        excluded = NOT_ON_MONGODB | (NOT_ON_EMULATOR if emulator else set())
        where = "the mongoeco emulator" if emulator else base
        for suites, runners in ((CONFORMANCE, False), (ON_RUNNERS, True)):
            env = dict(os.environ, REACTOR_TEST_STORAGE=storage)
            skipped = excluded
            if runners:
                env["REACTOR_TEST_RUNNERS"] = "1"
                skipped = excluded | (NOT_ON_EMULATOR_RUNNERS if emulator else set())
            deselect = " and ".join(f"not {name}" for name in sorted(skipped))
            cmd = [python, "-m", "pytest", "-q", *suites, "-k", deselect, *args]
            how = ", app code in function runners" if runners else ""
            print(f"MongoDB suites against {where}{how}", file=sys.stderr)
            code, failed = _pytest(cmd, env)
            if code == 1 and emulator and failed:
                # The emulator fails every transaction in flight when any write lands outside
                # one (a real MongoDB conflicts per document): on a loaded machine a test can
                # lose its commit to that. The tests that failed run once more, alone; this
                # note stays in the log either way. A real MongoDB gets no second run.
                print(
                    f"MongoDB suites: re-running {len(failed)} failed test(s) once on the "
                    f"emulator (server-wide write conflicts, see docs/mongodb.md): "
                    f"{' '.join(failed)}",
                    file=sys.stderr,
                )
                code, _ = _pytest([python, "-m", "pytest", "-q", *failed], env)
            if code != 0:
                return 1 if code == 5 else code
        return 0

    if url is not None:
        return run(url, emulator=False)
    with mongoeco_server(ROOT) as base:
        return run(base, emulator=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
