"""scripts/bench runs every workload on a tiny size, on both databases and on PostgreSQL through a
PgBouncer of its own, reports every figure and cleans up after itself. No timing assertions
(issue 6): a MISS is a figure, not a failure."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

from tests.support.services import REPO, rabbitmqctl

BENCH = REPO / "scripts" / "bench.py"
DBS = ("sqlite", "postgresql", "postgresql-pgbouncer")


def _bench_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("rabbitrun_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _bench_vhosts() -> set[str]:
    return {line.strip() for line in rabbitmqctl("list_vhosts").splitlines() if "rabbitrun-bench-" in line}


def _pgbouncers() -> list[str]:
    """PgBouncers the bench started (their config lives in its temporary directory)."""
    found = subprocess.run(["pgrep", "-af", "rabbitrun-bench-pgbouncer-"], capture_output=True, text=True)
    return found.stdout.splitlines()


def test_bench_reports_every_workload_on_a_tiny_size(tmp_path: Path) -> None:
    bench = _bench_module()
    out = tmp_path / "bench.json"
    vhosts_before = _bench_vhosts()

    run = subprocess.run(
        [sys.executable, str(BENCH), "--size", "tiny", "--repeat", "1", "--db", ",".join(DBS), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["size"] == "tiny" and report["repeat"] == 1
    assert {"cpu", "cpus", "python", "rabbitmq", "postgresql", "pgbouncer"} <= set(report["machine"])
    for db in DBS:
        rows = {r["key"]: r for r in report["rows"] if r["db"] == db}
        expected = set(bench.FIGURE_KEYS) - (set() if db.startswith("postgresql") else {"w3_cpu_postgresql_ms"})
        assert set(rows) == expected, (db, expected ^ set(rows))
        for key, row in rows.items():
            assert len(row["values"]) == 1, (db, key)
            assert math.isfinite(row["median"]) and row["median"] >= 0, (db, key, row)
            assert row["min"] <= row["median"] <= row["max"], (db, key, row)
            assert f"{db:<20} {row['figure']}" in run.stdout, (db, key)
            if row["target"]:
                assert row["verdict"] in {"PASS", "MISS"}, (db, key, row)
        judged = ["w2_per_task_ms", "w3_tps", "w5_worker_idle_rss_mb", "w5_child_uss_mb"]
        if db.startswith("postgresql"):
            judged += ["w1_cli_s", "w3_ratio", "w6_scale_s", "w6_cpu_growth"]
        for key in judged:
            assert rows[key]["verdict"] in {"PASS", "MISS"}, (db, key)
        assert rows["w3_tps"]["median"] > 0 and rows["ceiling_tps"]["median"] > 0
        assert rows["w3_cpu_rabbitmq_ms"]["median"] > 0  # the broker's share of each task is visible
        # W7: the killed worker's two attempts ran again as the same try, none lost
        assert (rows["w7_lost"]["median"], rows["w7_retries_used"]["median"]) == (0, 0), (db, rows["w7_lost"])
    assert "target(s) missed" in run.stdout
    assert _bench_vhosts() <= vhosts_before  # its vhosts are gone (and with them its queues)
    assert not _pgbouncers(), "the run's PgBouncer is still running"
