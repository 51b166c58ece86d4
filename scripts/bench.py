"""The rabbitrun benchmark (issue 6): real scheduler and worker processes, real RabbitMQ, SQLite or
PostgreSQL; timings read from the product's own metadata (queued_at, start/end dates).

Run through `scripts/bench` (which makes sure the services and .venv exist):
    scripts/bench [--db sqlite,postgresql] [--repeat 3] [--size full|tiny] [--json .bench/results.json]

Each run gets its own vhost, RABBITRUN_HOME and (for PostgreSQL) database; everything it starts
is stopped by PID and everything it creates is removed afterwards. Targets are printed beside the
figures; a MISS never fails the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DAGS = ROOT / "scripts" / "bench_dags"
PG_ADMIN = os.environ.get("RABBITRUN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SIZES = {"full": {"fan": 1000, "scale": 10000, "runs": 100, "ceiling": 2000},
         "tiny": {"fan": 20, "scale": 200, "runs": 3, "ceiling": 100}}
# (figure, target, lower is better) for PostgreSQL; SQLite targets differ where the issue says so
TARGETS = {"W1 trigger->success s": (0.5, True), "W2 per-task overhead ms": (10.0, True),
           "W3 tasks/s": (300.0, False), "W5 worker idle RSS MB": (80.0, True), "W5 child USS MB": (8.0, True),
           "W6 10000 tasks queued+confirmed s": (3.0, True)}
SQLITE_TARGETS = {"W2 per-task overhead ms": (20.0, True), "W3 tasks/s": (150.0, False)}


def sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


class Installation:
    """One throwaway rabbitrun installation: vhost, home, database, processes."""

    def __init__(self, db: str, size: dict[str, int]) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.vhost = f"rabbitrun-bench-{self.id}"
        self.home = Path(tempfile.mkdtemp(prefix="rabbitrun-bench-"))
        self.db = db
        self.pg_db = f"rr_bench_{self.id}"
        self.procs: dict[str, subprocess.Popen[str]] = {}
        sh("rabbitmqctl", "-q", "add_vhost", self.vhost)
        sh("rabbitmqctl", "-q", "set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        if db == "postgresql":
            self._psql(f'CREATE DATABASE "{self.pg_db}"')
            base = PG_ADMIN.rsplit("/", 1)[0]
            url = f"{base}/{self.pg_db}"
        else:
            url = f"sqlite:///{self.home / 'rabbitrun.db'}"
        self.env = {**os.environ, "RABBITRUN_HOME": str(self.home),
                    "RABBITRUN__BROKER__URL": f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}",
                    "RABBITRUN__DATABASE__URL": url, "RABBITRUN__CORE__DAGS_FOLDER": str(DAGS),
                    "RABBITRUN__CORE__LOAD_EXAMPLES": "false", "RABBITRUN__SCHEDULER__SCHEDULER_ID": "bench",
                    "RABBITRUN__WORKER__CONCURRENCY": "2", "RABBITRUN__WORKER__HOSTNAME": "bench@worker",
                    "RABBITRUN_BENCH_FAN": str(size["fan"]), "RABBITRUN_BENCH_SCALE": str(size["scale"])}
        self.cli("db", "init")

    def _psql(self, sql: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        u = make_url(PG_ADMIN)
        with psycopg.connect(f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}",
                             autocommit=True) as conn:
            conn.execute(sql)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rabbitrun", *args], env=self.env, capture_output=True,
                              text=True, check=True)

    def start(self, role: str, ready: str) -> int:
        log = (self.home / f"{role}.log").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "rabbitrun", role], env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, text=True)
        self.procs[role] = proc
        deadline = time.monotonic() + 60
        while ready not in (self.home / f"{role}.log").read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{role} did not start:\n{(self.home / f'{role}.log').read_text()[-2000:]}")
            time.sleep(0.05)
        return proc.pid

    def stop(self, role: str) -> None:
        proc = self.procs.pop(role, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        for role in list(self.procs):
            self.stop(role)
        sh("rabbitmqctl", "-q", "delete_vhost", self.vhost, check=False)
        if self.db == "postgresql":
            self._psql(f'DROP DATABASE IF EXISTS "{self.pg_db}" WITH (FORCE)')
        shutil.rmtree(self.home, ignore_errors=True)

    def sql(self, query: str, **params: Any) -> list[Any]:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.env["RABBITRUN__DATABASE__URL"])
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(query), params).all())
        finally:
            engine.dispose()

    def trigger_and_wait(self, dag_id: str) -> tuple[str, float]:
        run_id = f"bench__{uuid.uuid4().hex[:10]}"
        started = time.perf_counter()
        self.cli("dags", "trigger", dag_id, "--run-id", run_id, "--wait", "--timeout", "900")
        return run_id, time.perf_counter() - started

    def tis(self, run_id: str) -> list[Any]:
        from datetime import UTC, datetime

        rows = self.sql("SELECT task_id, queued_at, start_date, end_date FROM task_instance WHERE run_id = :r",
                        r=run_id)

        def fix(value: Any) -> Any:  # SQLite hands back naive UTC text
            value = datetime.fromisoformat(value) if isinstance(value, str) else value
            return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)

        return [(r[0], fix(r[1]), fix(r[2]), fix(r[3])) for r in rows]


# --- process measurements -----------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def uss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0
    private = sum(int(line.split()[1]) for line in text.splitlines() if line.startswith(("Private_Clean",
                                                                                           "Private_Dirty")))
    return private / 1024


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


# --- workloads --------------------------------------------------------------------------------------


def workloads(inst: Installation, size: dict[str, int]) -> dict[str, float]:
    figures: dict[str, float] = {}
    inst.start("scheduler", "ready: reply queue")
    worker = inst.start("worker", " ready: queues=")
    time.sleep(1)
    figures["W5 worker idle RSS MB"] = rss_mb(worker)
    zygote = children_of(worker)
    spares = [c for z in zygote for c in children_of(z)]
    figures["W5 child USS MB"] = max((uss_mb(p) for p in spares), default=float("nan"))

    _, figures["W1 trigger->success s"] = inst.trigger_and_wait("bench_one")

    run_id, wall = inst.trigger_and_wait("bench_chain10")
    rows = sorted(inst.tis(run_id), key=lambda r: int(r[0][1:]))
    span = (rows[-1][3] - rows[0][1]).total_seconds()
    figures["W2 chain10 run s"] = span
    figures["W2 per-task overhead ms"] = span / 10 * 1000
    figures["W2 upstream end->downstream start ms"] = statistics.median(
        (b[2] - a[3]).total_seconds() * 1000 for a, b in zip(rows, rows[1:]))

    peak = [rss_mb(worker)]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            try:
                peak.append(rss_mb(worker))
            except OSError:
                return
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    run_id, _ = inst.trigger_and_wait("bench_fan")
    sampling.set()
    rows = inst.tis(run_id)
    span = (max(r[3] for r in rows) - min(r[1] for r in rows)).total_seconds()
    figures["W3 tasks/s"] = len(rows) / span
    lags = [(r[2] - r[1]).total_seconds() * 1000 for r in rows]
    figures["W3 lag p50 ms"], figures["W3 lag p95 ms"] = pct(lags, 50), pct(lags, 95)
    figures["W5 worker RSS under W3 MB"] = max(peak)

    _, figures["W4 xcom+variable s"] = inst.trigger_and_wait("bench_xcom")

    inst.stop("worker")  # W6: nothing consumes; measure queueing alone
    scheduler_pid = inst.procs["scheduler"].pid
    figures.update(scale(inst, scheduler_pid, size))
    figures["W5 scheduler RSS MB"] = rss_mb(scheduler_pid)
    return figures


def scale(inst: Installation, scheduler_pid: int, size: dict[str, int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, dag_id, runs in ((f"{size['scale']} tasks", "bench_scale", 1),
                                (f"{size['runs']}x100 runs", "bench_fan100", size["runs"])):
        from rabbitrun import client
        from rabbitrun.settings import load_settings

        settings = load_settings(env=inst.env)
        cpu_before = cpu_s(scheduler_pid)
        started = time.perf_counter()
        for _ in range(runs):  # the library call `dags trigger` makes, without 100 CLI start-ups
            client.trigger(settings, dag_id)
        total = runs * (size["scale"] if dag_id == "bench_scale" else 100)
        while True:
            queued = inst.sql("SELECT count(*) FROM task_instance WHERE state = 'queued' AND dag_id = :d",
                              d=dag_id)
            if queued[0][0] >= total:
                break
            if time.perf_counter() - started > 600:
                raise SystemExit(f"W6 {label}: only {queued[0][0]} of {total} queued after 600 s")
            time.sleep(0.05)
        out[f"W6 {label} queued+confirmed s"] = time.perf_counter() - started
        out[f"W6 {label} scheduler CPU ms/task"] = (cpu_s(scheduler_pid) - cpu_before) * 1000 / total
    return out


def fork_ceiling(n: int) -> float:
    """A bare aio-pika consumer that forks a no-op child per message (prefetch 2), in a fresh process."""
    code = f"""
import asyncio, os, time, uuid, sqlalchemy, aio_pika
async def main():
    conn = await aio_pika.connect("amqp://guest:guest@127.0.0.1/")
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=2)
    q = await ch.declare_queue("rabbitrun-bench-ceiling-" + uuid.uuid4().hex[:6], exclusive=True)
    for _ in range({n}):
        await ch.default_exchange.publish(aio_pika.Message(b"x"), routing_key=q.name)
    done = asyncio.Event(); count = 0
    loop = asyncio.get_running_loop()
    async def handle(m):
        nonlocal count
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        await loop.run_in_executor(None, os.waitpid, pid, 0)
        await m.ack(); count += 1
        if count == {n}: done.set()
    t = time.perf_counter()
    await q.consume(handle)
    await done.wait()
    print({n} / (time.perf_counter() - t))
    await conn.close()
asyncio.run(main())
"""
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


# --- report -----------------------------------------------------------------------------------------


def verdict(name: str, value: float, db: str) -> str:
    target = (SQLITE_TARGETS if db == "sqlite" else {}).get(name) or TARGETS.get(name)
    if target is None:
        return ""
    limit, lower = target
    ok = value <= limit if lower else value >= limit
    return f"{'PASS' if ok else 'MISS'} ({'<=' if lower else '>='} {limit:g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--json", default=str(ROOT / ".bench" / "results.json"))
    args = parser.parse_args()
    size = SIZES[args.size]
    results: dict[str, dict[str, list[float]]] = {}
    for db in args.db.split(","):
        for attempt in range(args.repeat):
            inst = Installation(db, size)
            try:
                figures = workloads(inst, size)
            finally:
                inst.close()
            figures["fork-per-task ceiling tasks/s"] = fork_ceiling(size["ceiling"])
            figures["W3 / ceiling"] = figures["W3 tasks/s"] / figures["fork-per-task ceiling tasks/s"]
            for name, value in figures.items():
                results.setdefault(db, {}).setdefault(name, []).append(value)
            print(f"[{db} run {attempt + 1}/{args.repeat} done]", file=sys.stderr)
    machine = f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"\nrabbitrun benchmark, size={args.size}, repeat={args.repeat}, {machine}")
    print(f"{'db':<11} {'figure':<42} {'min':>10} {'median':>10} {'max':>10}  target")
    table = []
    for db, figures in results.items():
        for name, values in figures.items():
            row = {"db": db, "figure": name, "min": min(values), "median": statistics.median(values),
                   "max": max(values), "verdict": verdict(name, statistics.median(values), db)}
            table.append(row)
            print(f"{db:<11} {name:<42} {row['min']:>10.3f} {row['median']:>10.3f} {row['max']:>10.3f}  "
                  f"{row['verdict']}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"machine": machine, "size": args.size, "rows": table}, indent=2))
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
