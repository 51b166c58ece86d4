"""scripts/bench runs every workload on a tiny size and reports every figure (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

FIGURES = ["W1 trigger->success s", "W2 per-task overhead ms", "W2 upstream end->downstream start ms",
           "W3 tasks/s", "W3 lag p50 ms", "W3 lag p95 ms", "W4 xcom+variable s", "W5 worker idle RSS MB",
           "W5 child USS MB", "W5 worker RSS under W3 MB", "W5 scheduler RSS MB",
           "W6 200 tasks queued+confirmed s", "W6 200 tasks scheduler CPU ms/task", "W6 3x100 runs queued+confirmed s",
           "fork-per-task ceiling tasks/s", "W3 / ceiling"]


def test_bench_reports_every_workload_on_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--size", "tiny", "--repeat", "1",
                          "--db", "postgresql", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    reported = {r["figure"]: r for r in rows if r["db"] == "postgresql"}
    for figure in FIGURES:
        assert figure in reported, figure
        assert reported[figure]["median"] > 0, figure
    assert "W3 tasks/s" in run.stdout and "target" in run.stdout
