"""The peers benchmark's argument checks and its table (the benchmark itself is not run here:
it installs PostgreSQL and Parse Server and takes minutes; ``python -m bench peers``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.common import BenchError
from bench.peers import section
from bench.peers.section import HARNESS, best_limits, peers_rows, render_peers

NODE = shutil.which("node")


def _harness(*args: str) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    return subprocess.run(
        [NODE, str(HARNESS), *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fly", '{"target": "reactor"}'], 'unknown role "fly"; expected one of subscribers'),
        (["bank", "[1]"], "CONFIG_JSON must be a JSON object"),
        (
            ["bank", '{"target": "firebase"}'],
            'config.target must be one of reactor, parse, got "firebase"',
        ),
        (
            ["writer", '{"target": "parse", "count": 1}'],
            "config.http is required for role writer on parse",
        ),
        (
            ["subscribers", '{"target": "reactor", "url": "ws://x", "count": 1, "query": "all"}'],
            'config.query must be "mine" or "board", got "all"',
        ),
    ],
)
def test_harness_refuses_a_bad_invocation_naming_what_is_wrong(
    args: list[str], message: str
) -> None:
    done = _harness(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "usage: node harness.mjs ROLE CONFIG_JSON" in done.stderr
    assert done.stdout == ""


def test_peers_cannot_be_mixed_with_other_sections(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["push", "peers"])
    assert exited.value.code == 2
    assert "the peers section runs alone" in capsys.readouterr().err


def _side(push_p50: float, tps: float, failures: int, rss: float) -> dict[str, Any]:
    return {
        "push_distinct": {
            "connections": 1000,
            "latency_ms": {"p50": push_p50, "p99": 2 * push_p50},
        },
        "bank_uncontended": {"transfers_per_s": tps},
        "bank_contended": {
            "transfers_per_s": tps / 2,
            "occ_failures": failures,
            "other_failures": 0,
        },
        "idle_rss": {"per_conn_kib": rss},
        "balance": {"conserved": True, "after": 1.0, "expected": 1.0},
    }


def test_the_table_puts_the_servers_side_by_side_with_ratios_and_limits() -> None:
    results = {
        "limits": {"sqlite_txn_per_s": 8000.0, "ws_rtt_ms": {"p50": 0.1, "p99": 0.2}},
        "reactor": _side(push_p50=2.0, tps=2000.0, failures=3, rss=20.0),
        "parse": _side(push_p50=8.0, tps=1000.0, failures=0, rss=10.0),
    }
    rows = {r[0]: r for r in peers_rows(results)}
    push = rows["push, 1,000 conns on distinct queries, p50"]
    assert push[1:] == ("2.00 ms", "8.00 ms", "0.25x (better)", "ws echo RTT p50 0.100 ms (20.00x)")
    bank = rows["transfers/s, 50 clients, uncontended"]
    assert bank[1:4] == ("2,000 /s", "1,000 /s", "2.00x (better)")
    assert bank[4] == "SQLite 2-row txn 8,000/s (0.25x)"
    assert rows["idle subscribed connection, server RSS"][3] == "2.00x (worse)"
    assert rows["  failed transfers (OCC / other), contended"][1:3] == ("3 / 0", "0 / 0")
    assert rows["Reactor: total balance conserved"][1] == "yes"
    assert rows["transfer p99, 200 clients"][1:3] == ("n/a", "n/a")  # not measured: said so

    report = {"machine": {"date": "2026-12-05"}, "quick": True, "results": results, "errors": {}}
    text = render_peers(report)
    assert "Parse has no multi-object read-modify-write" in text
    assert "--quick" in text
    report["errors"] = {"peers": "installing PostgreSQL: apt-get is not installed"}
    assert "peers: FAILED: installing PostgreSQL" in render_peers(report)


def test_the_raw_limit_is_the_better_of_the_start_and_the_end_of_the_run() -> None:
    start = {"sqlite_txn_per_s": 300.0, "ws_rtt_ms": {"p50": 0.5, "p99": 0.9}}
    end = {"sqlite_txn_per_s": 6000.0, "ws_rtt_ms": {"p50": 0.1, "p99": 1.2}}
    assert best_limits(start, end) == {
        "sqlite_txn_per_s": 6000.0,
        "ws_rtt_ms": {"p50": 0.1, "p99": 0.9},
    }
    assert best_limits(start, {}) == {**start, "ws_rtt_ms": start["ws_rtt_ms"]}
    results = {
        "limits": start,
        "limits_after": end,
        "reactor": _side(push_p50=2.0, tps=3000.0, failures=0, rss=20.0),
    }
    rows = {r[0]: r for r in peers_rows(results)}
    assert rows["transfers/s, 50 clients, uncontended"][4] == "SQLite 2-row txn 6,000/s (0.50x)"


def _path_with(tmp_path: Path, *programs: str) -> str:
    """A PATH directory holding only ``programs`` (links to the real ones)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in programs:
        real = shutil.which(program)
        assert real is not None, program
        (bin_dir / program).symlink_to(real)
    return str(bin_dir)


def test_without_postgresql_and_apt_get_the_section_fails_at_once_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(section, "PG_ROOT", tmp_path / "no-postgresql")
    monkeypatch.setenv("PATH", _path_with(tmp_path))
    with pytest.raises(BenchError, match="apt-get is not available to install it"):
        section.ensure_postgres()


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_without_parse_server_and_npm_the_section_fails_at_once_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(section, "PEERS_DIR", tmp_path)  # no node_modules there
    monkeypatch.setenv("PATH", _path_with(tmp_path, "node"))
    with pytest.raises(
        BenchError, match="npm is not installed: cannot install parse-server 9.10.0"
    ):
        section.ensure_node_modules()
    monkeypatch.setenv("PATH", str(tmp_path / "bin-empty"))
    with pytest.raises(BenchError, match="node is not installed"):
        section.ensure_node_modules()


def test_a_setup_command_that_fails_is_reported_with_its_output(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="starting X: no-such-program-xyz is not installed"):
        section._run(["no-such-program-xyz"], "starting X", 5)
    with pytest.raises(BenchError, match=r"(?s)exited with 3:\nboom"):
        section._run(["sh", "-c", "echo boom >&2; exit 3"], "starting Y", 5)
    with pytest.raises(BenchError, match="did not finish in 1 s"):
        section._run(["sleep", "5"], "waiting", 1)
