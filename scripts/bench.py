"""The rabbitrun benchmark (issue 6): real scheduler and worker processes, real RabbitMQ, SQLite or
PostgreSQL; timings read from the product's own data (the CLI's wall time, queued_at / start_date /
end_date of DAG runs and task instances, /proc for memory and CPU).

Run it through scripts/bench (which makes sure RabbitMQ, PostgreSQL, pgbouncer and .venv exist):

    scripts/bench [--db sqlite,postgresql[,postgresql-pgbouncer]] [--repeat 3] [--size full|tiny]
                  [--json .bench/results.json]

Each repeat is a fresh installation: its own vhost, RABBITRUN_HOME and (PostgreSQL) database, one
scheduler and one worker (--concurrency 2) started as `python -m rabbitrun ...` and stopped by PID
with SIGTERM; everything it creates is removed afterwards. `postgresql-pgbouncer` is PostgreSQL
with the worker (so its task processes) connecting through a PgBouncer in session mode that the run
starts on a free port and stops by PID, the scheduler and the CLI directly: the deployment the
README recommends for many short tasks, measured against the same targets. Targets from the issue are printed
beside the medians; a MISS never fails the run (exit 0), a broken run does (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# rabbitmqctl needs the broker's Erlang cookie: root has it, a normal user goes through sudo.
RABBITMQCTL = ["rabbitmqctl"] if os.geteuid() == 0 else ["sudo", "-n", "rabbitmqctl"]

ROOT = Path(__file__).resolve().parent.parent
DAGS = ROOT / "scripts" / "bench_dags"
CEILING = ROOT / "scripts" / "bench_ceiling.py"
PG_ADMIN_URL = os.environ.get("RABBITRUN_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("RABBITRUN_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
TASK_QUEUE = "rabbitrun.q.default"  # the bench has a vhost of its own, so no name prefix
RUN_TIMEOUT_S = 900
DBS = ("sqlite", "postgresql", "postgresql-pgbouncer")
PGBOUNCER = os.environ.get("RABBITRUN_BENCH_PGBOUNCER", "/usr/sbin/pgbouncer")


@dataclass(frozen=True)
class Size:
    fan: int  # W3 tasks (also a W6 step)
    scale: int  # W6 tasks in one run
    runs: int  # W6 runs of 100 tasks
    ceiling: int  # messages for the fork-per-task ceiling


SIZES = {
    "full": Size(fan=1000, scale=10000, runs=100, ceiling=2000),
    "tiny": Size(fan=20, scale=200, runs=3, ceiling=100),
}


@dataclass(frozen=True)
class Figure:
    key: str
    label: str  # may use {fan}, {scale}, {runs}
    unit: str
    pg: tuple[str, float] | None = None  # target on PostgreSQL: ("<=" | ">=", limit)
    sqlite: tuple[str, float] | None = None


# Targets: issue 6 ("medians, PostgreSQL, 2 cores, one worker with concurrency 2"; SQLite: W2, W3).
# Memory targets do not depend on the database and apply to both. "Scheduler CPU per task roughly
# constant from 100 to 10,000 tasks" is read as: growth <= 2x.
FIGURES = [
    Figure("cli_help_s", "CLI start-up, `rabbitrun --help`", "s"),
    Figure("w1_cli_s", "W1 one task: `dags trigger --wait`, incl. CLI start", "s", ("<=", 0.5)),
    Figure("w1_run_s", "W1 one task: run created -> success (DB)", "s"),
    Figure("w2_cli_s", "W2 chain of 10: `dags trigger --wait`", "s"),
    Figure("w2_run_s", "W2 chain of 10: run created -> success (DB)", "s"),
    Figure("w2_per_task_ms", "W2 per-task overhead (run wall / 10)", "ms", ("<=", 10), ("<=", 20)),
    Figure("w2_gap_ms", "W2 upstream end -> downstream start, median", "ms"),
    Figure("w3_tps", "W3 {fan} independent tasks: tasks/s", "tasks/s", (">=", 300), (">=", 150)),
    Figure("w3_ratio", "W3 tasks/s / fork-per-task ceiling", "x", (">=", 0.75)),
    Figure("w3_lag_p50_ms", "W3 queued -> started lag p50", "ms"),
    Figure("w3_lag_p95_ms", "W3 queued -> started lag p95", "ms"),
    Figure("w3_lag_p99_ms", "W3 queued -> started lag p99", "ms"),
    Figure("w3_task_p50_ms", "W3 task started -> ended, median", "ms"),
    Figure("w3_cpu_scheduler_ms", "W3 CPU per task: scheduler", "ms"),
    Figure("w3_cpu_worker_ms", "W3 CPU per task: worker parent (asyncio)", "ms"),
    Figure("w3_cpu_children_ms", "W3 CPU per task: zygote + task children", "ms"),
    Figure("w3_cpu_postgresql_ms", "W3 CPU per task: PostgreSQL (postmaster + backends)", "ms"),
    Figure("w3_cpu_rabbitmq_ms", "W3 CPU per task: RabbitMQ (beam.smp)", "ms"),
    Figure("ceiling_tps", "fork-per-task ceiling (bare aio-pika consumer)", "tasks/s"),
    Figure("ceiling_fork_ms", "fork-per-task ceiling: os.fork() call, mean", "ms"),
    Figure("w4_cli_s", "W4 XCom push -> pull + Variable: `dags trigger --wait`", "s"),
    Figure("w4_run_s", "W4 XCom push -> pull + Variable: run created -> success", "s"),
    Figure("w5_worker_idle_rss_mb", "W5 worker RSS idle (asyncio parent)", "MB", ("<=", 80), ("<=", 80)),
    Figure("w5_zygote_rss_mb", "W5 worker zygote RSS idle (shared with children)", "MB"),
    Figure("w5_worker_w3_rss_mb", "W5 worker RSS under W3, peak (parent)", "MB"),
    Figure("w5_child_uss_mb", "W5 task child USS, median of per-child peaks", "MB", ("<=", 8), ("<=", 8)),
    Figure("w5_child_uss_max_mb", "W5 task child USS, largest", "MB"),
    Figure("w5_scheduler_rss_mb", "W5 scheduler RSS, {scale}-task run queued", "MB"),
    Figure("w6_100_s", "W6 1 run x 100 tasks queued + confirmed (median of 10)", "s"),
    Figure("w6_100_cpu_ms", "W6 1 run x 100 tasks: scheduler CPU per task (10 runs)", "ms"),
    Figure("w6_fan_s", "W6 1 run x {fan} tasks queued + confirmed", "s"),
    Figure("w6_fan_cpu_ms", "W6 1 run x {fan} tasks: scheduler CPU per task", "ms"),
    Figure("w6_scale_s", "W6 1 run x {scale} tasks queued + confirmed", "s", ("<=", 3)),
    Figure("w6_scale_cpu_ms", "W6 1 run x {scale} tasks: scheduler CPU per task", "ms"),
    Figure("w6_runs_s", "W6 {runs} runs x 100 tasks queued + confirmed", "s"),
    Figure("w6_runs_cpu_ms", "W6 {runs} runs x 100 tasks: scheduler CPU per task", "ms"),
    Figure("w6_cpu_growth", "W6 CPU per task, {scale} tasks / 100 tasks", "x", ("<=", 2)),
    # issue 15: a lost worker's attempts run again elsewhere, same try, within 15 s (default settings)
    Figure(
        "w7_restart_s", "W7 worker SIGKILLed: kill -> its tasks restarted elsewhere, max", "s", ("<=", 15), ("<=", 15)
    ),
    Figure("w7_lost", "W7 worker SIGKILLed: tasks not succeeded", "tasks", ("<=", 0), ("<=", 0)),
    Figure("w7_retries_used", "W7 worker SIGKILLed: retries used up (try_number > 1)", "tasks", ("<=", 0), ("<=", 0)),
]
FIGURE_KEYS = [f.key for f in FIGURES]


class BenchError(Exception):
    """The product did not do what a workload needs (a run failed, a process did not start)."""


# --- /proc ------------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def uss_mb(pid: int) -> float:
    """Private (unshared) memory: what the process costs on top of the pages it shares."""
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return (
        sum(int(line.split()[1]) for line in text.splitlines() if line.startswith(("Private_Clean:", "Private_Dirty:")))
        / 1024
    )


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cpu_with_reaped_s(pid: int) -> float:
    """CPU of the process and of its children it has reaped (cutime + cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def server_cpu_s(program: str) -> float | None:
    """CPU of a shared service's process tree so far, or None when it does not run here: the oldest
    process named ``program`` (postmaster, beam.smp) with the children it reaped, plus its live ones
    (PostgreSQL backends). The bench runs alone, so the difference over a workload is that workload's."""
    found = subprocess.run(["pgrep", "-o", "-x", program], capture_output=True, text=True).stdout.split()
    if not found:
        return None
    root = int(found[0])
    total = cpu_with_reaped_s(root)
    for child in children(root):
        with contextlib.suppress(OSError):  # a backend that just exited is in the root's reaped CPU
            total += cpu_s(child)
    return total


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            pass
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def as_utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite hands raw SQL back as naive UTC text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- the broker, seen from the side -----------------------------------------------------------------


class BrokerProbe:
    """One AMQP connection on a background loop: queue depth (passive declare) and purge."""

    def __init__(self, url: str) -> None:
        import aio_pika

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def connect() -> Any:
            conn = await aio_pika.connect(url, client_properties={"connection_name": "rabbitrun-bench probe"})
            return conn, await conn.channel()

        self.connection, self.channel = self._run(connect())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def depth(self, queue: str) -> int:
        async def go() -> int:
            q = await self.channel.declare_queue(queue, passive=True)
            return int(q.declaration_result.message_count or 0)

        return self._run(go())

    def purge(self, queue: str) -> None:
        async def go() -> None:
            await (await self.channel.declare_queue(queue, passive=True)).purge()

        self._run(go())

    def close(self) -> None:
        try:
            self._run(self.connection.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


# --- one throwaway installation ---------------------------------------------------------------------


class Installation:
    def __init__(self, db: str, size: Size) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.db = db
        self.vhost = f"rabbitrun-bench-{self.id}"
        self.home = Path(tempfile.mkdtemp(prefix="rabbitrun-bench-"))
        self.pg_db = f"rabbitrun_bench_{self.id}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.engine: Any = None
        self.created: list[str] = []
        self.amqp_url = f"{AMQP_URL.rstrip('/')}/{self.vhost}"
        self.size = size
        self.env: dict[str, str] = {}
        self.worker_env: dict[str, str] | None = None  # when the worker's settings differ
        self.pgbouncer: PgBouncer | None = None

    def setup(self) -> None:
        """Create vhost, database and home (close() removes whatever of them exists)."""
        db, size = self.db, self.size
        rabbitmqctl("add_vhost", self.vhost)
        self.created.append("vhost")
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        if db.startswith("postgresql"):
            pg_admin(f'CREATE DATABASE "{self.pg_db}"')
            self.created.append("database")
            db_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{self.pg_db}"
            if db == "postgresql-pgbouncer":
                self.pgbouncer = PgBouncer(self.home / "pgbouncer.log")
        else:
            db_url = f"sqlite:///{self.home / 'rabbitrun.db'}"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("RABBITRUN")}  # no stray settings
        self.env = {
            **inherited,
            "RABBITRUN_HOME": str(self.home),
            "RABBITRUN__BROKER__URL": self.amqp_url,
            "RABBITRUN__BROKER__PREFIX": "",
            "RABBITRUN__DATABASE__URL": db_url,
            "RABBITRUN__CORE__DAGS_FOLDER": str(DAGS),
            "RABBITRUN__CORE__LOAD_EXAMPLES": "false",
            "RABBITRUN__SCHEDULER__SCHEDULER_ID": f"bench-{self.id}",
            "RABBITRUN__WORKER__CONCURRENCY": "2",
            "RABBITRUN_BENCH_FAN": str(size.fan),
            "RABBITRUN_BENCH_SCALE": str(size.scale),
        }
        if self.pgbouncer is not None:  # the worker and its task processes connect through it
            self.worker_env = {**self.env, "RABBITRUN__DATABASE__URL": self.pgbouncer.url_for(db_url)}
        self.cli("db", "init")
        self.cli("variables", "set", "bench_var", "42")
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self.engine = create_engine(db_url, poolclass=NullPool)

    def cli(self, *args: str, timeout_s: float = RUN_TIMEOUT_S) -> float:
        """Run `python -m rabbitrun ARGS`; return its wall time (interpreter start included)."""
        started = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "rabbitrun", *args],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(
                f"`rabbitrun {' '.join(args)}` still running after {timeout_s:.0f} s{self.logs_tail()}"
            ) from exc
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise BenchError(
                f"`rabbitrun {' '.join(args)}` exited {done.returncode}:\n"
                f"{(done.stdout + done.stderr)[-3000:]}{self.logs_tail()}"
            )
        return elapsed

    def start(self, role: str, ready: str, *, name: str = "", hostname: str = "") -> int:
        """Start `rabbitrun ROLE`, known as ``name`` (default: the role) and logging to ``name``.log."""
        name = name or role
        log_path = self.home / f"{name}.log"
        with log_path.open("ab") as log:
            env = self.worker_env if role == "worker" and self.worker_env else self.env
            if hostname:
                env = {**env, "RABBITRUN__WORKER__HOSTNAME": hostname}
            proc = subprocess.Popen(
                [sys.executable, "-m", "rabbitrun", role],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        deadline = time.monotonic() + 120
        while ready not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"{role} did not log {ready!r}:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.02)
        return proc.pid

    def stop(self, role: str) -> None:
        proc = self.procs.pop(role, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            print(f"  {role} pid {proc.pid} ignored SIGTERM for 90 s; SIGKILL", file=sys.stderr)
            proc.kill()
            proc.wait()

    def logs_tail(self) -> str:
        out = ""
        for role in ("scheduler", "worker"):
            path = self.home / f"{role}.log"
            if path.exists():
                out += f"\n--- {role}.log (tail) ---\n" + path.read_text(errors="replace")[-2000:]
        return out

    def close(self) -> None:
        for role in list(self.procs):
            self.stop(role)
        if self.engine is not None:
            self.engine.dispose()
        if self.pgbouncer is not None:
            self.pgbouncer.stop()
        if "vhost" in self.created:
            rabbitmqctl("delete_vhost", self.vhost, check=False)
        if "database" in self.created:
            pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_db}" WITH (FORCE)')
        shutil.rmtree(self.home, ignore_errors=True)

    def sql(self, query: str, **params: Any) -> list[Any]:
        from sqlalchemy import bindparam, text

        statement = text(query)
        for name, value in params.items():
            if isinstance(value, (list, tuple)):
                statement = statement.bindparams(bindparam(name, expanding=True))
        with self.engine.connect() as conn:
            return list(conn.execute(statement, params).all())

    def trigger_wait(self, dag_id: str) -> tuple[str, float]:
        run_id = f"bench__{uuid.uuid4().hex[:12]}"
        wall = self.cli("dags", "trigger", dag_id, "--run-id", run_id, "--wait", "--timeout", str(RUN_TIMEOUT_S))
        state = self.sql("SELECT state FROM dag_run WHERE dag_id = :d AND run_id = :r", d=dag_id, r=run_id)
        if not state or state[0][0] != "success":
            raise BenchError(f"{dag_id} run {run_id}: {state}{self.logs_tail()}")
        return run_id, wall

    def run_span_s(self, dag_id: str, run_id: str) -> float:
        ((queued, ended),) = self.sql(
            "SELECT queued_at, end_date FROM dag_run WHERE dag_id = :d AND run_id = :r", d=dag_id, r=run_id
        )
        return (as_utc(ended) - as_utc(queued)).total_seconds()

    def task_rows(self, dag_id: str, run_id: str) -> list[tuple[str, datetime, datetime, datetime]]:
        rows = self.sql(
            "SELECT task_id, queued_at, start_date, end_date FROM task_instance WHERE dag_id = :d AND run_id = :r",
            d=dag_id,
            r=run_id,
        )
        return [(r[0], as_utc(r[1]), as_utc(r[2]), as_utc(r[3])) for r in rows]


class PgBouncer:
    """A PgBouncer of the run's own in front of PG_ADMIN_URL's server, in session mode, for the
    worker: a task process's connection then gets a server backend that is already up and warm
    instead of forking a new one (~4 ms of PostgreSQL CPU each, measured here). The scheduler keeps
    its direct pool: its connections live long, and a proxy hop on each of its statements only
    costs (W6 took 5.1 -> 7.2 s through it). Trusts 127.0.0.1 as the server does."""

    def __init__(self, log_path: Path) -> None:
        from sqlalchemy.engine import make_url

        if not Path(PGBOUNCER).exists():
            raise BenchError(f"{PGBOUNCER} not found: scripts/ensure-pgbouncer installs it")
        server = make_url(PG_ADMIN_URL)
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rabbitrun-bench-pgbouncer-"))
        user = server.username or "postgres"
        (self.dir / "users.txt").write_text(f'"{user}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            f"[databases]\n* = host={server.host or '127.0.0.1'} port={server.port or 5432}\n"
            f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir / 'users.txt'}\npool_mode = session\n"
            "max_client_conn = 1000\ndefault_pool_size = 20\n"
        )
        self.dir.chmod(0o755)  # pgbouncer refuses to run as root: as root it runs as postgres (-u)
        for f in self.dir.iterdir():
            f.chmod(0o644)
        as_user = ["-u", "postgres"] if os.geteuid() == 0 else []
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [PGBOUNCER, *as_user, str(self.dir / "pgbouncer.ini")],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"pgbouncer did not listen on {self.port}:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def url_for(self, url: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # safe shutdown: it waits for clients (all gone by now)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def rabbitmqctl(*args: str, check: bool = True) -> None:
    done = subprocess.run([*RABBITMQCTL, "-q", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise BenchError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")


def pg_admin(statement: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(PG_ADMIN_URL)
    conninfo = psycopg.conninfo.make_conninfo(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password or None,
        dbname=url.database or "postgres",
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(statement)


# --- workloads ----------------------------------------------------------------------------------------


class Sampler(threading.Thread):
    """Every 10 ms during W3: the worker parent's RSS and the USS of each task child of the zygote."""

    def __init__(self, worker: int, zygote: int) -> None:
        super().__init__(daemon=True)
        self.worker, self.zygote = worker, zygote
        self.stop_event = threading.Event()
        self.worker_rss: list[float] = []
        self.child_uss: dict[int, float] = {}

    def run(self) -> None:
        while not self.stop_event.wait(0.01):
            try:
                self.worker_rss.append(rss_mb(self.worker))
                kids = children(self.zygote)
            except OSError:
                return
            for pid in kids:
                try:
                    self.child_uss[pid] = max(self.child_uss.get(pid, 0.0), uss_mb(pid))
                except OSError:
                    pass  # exited meanwhile


def workloads(inst: Installation, size: Size) -> dict[str, float]:
    f: dict[str, float] = {}
    f["cli_help_s"] = inst.cli("--help")
    scheduler = inst.start("scheduler", "ready: reply queue")
    worker = inst.start("worker", " ready: queues=")
    time.sleep(1.0)  # let the zygote fill its spares
    zygotes = children(worker)
    if len(zygotes) != 1:
        raise BenchError(f"expected one zygote under worker {worker}, found {zygotes}")
    f["w5_worker_idle_rss_mb"] = rss_mb(worker)
    f["w5_zygote_rss_mb"] = rss_mb(zygotes[0])

    run_id, f["w1_cli_s"] = inst.trigger_wait("bench_one")
    f["w1_run_s"] = inst.run_span_s("bench_one", run_id)

    run_id, f["w2_cli_s"] = inst.trigger_wait("bench_chain10")
    f["w2_run_s"] = inst.run_span_s("bench_chain10", run_id)
    f["w2_per_task_ms"] = f["w2_run_s"] / 10 * 1000
    chain = sorted(inst.task_rows("bench_chain10", run_id), key=lambda r: int(r[0][1:]))
    f["w2_gap_ms"] = statistics.median((b[2] - a[3]).total_seconds() * 1000 for a, b in zip(chain, chain[1:]))

    sampler = Sampler(worker, zygotes[0])
    cpu_before = [cpu_s(scheduler), cpu_s(worker), cpu_with_reaped_s(zygotes[0])]
    services = {"rabbitmq": "beam.smp", **({"postgresql": "postgres"} if inst.db.startswith("postgresql") else {})}
    services_before = {key: server_cpu_s(program) for key, program in services.items()}
    sampler.start()
    try:
        run_id, _ = inst.trigger_wait("bench_fan")
    finally:
        sampler.stop_event.set()
        sampler.join()
    cpu_after = [cpu_s(scheduler), cpu_s(worker), cpu_with_reaped_s(zygotes[0])]
    services_after = {key: server_cpu_s(program) for key, program in services.items()}
    rows = inst.task_rows("bench_fan", run_id)
    for key, before, after in zip(("scheduler", "worker", "children"), cpu_before, cpu_after):
        f[f"w3_cpu_{key}_ms"] = (after - before) * 1000 / len(rows)
    for key, service_before in services_before.items():
        service_after = services_after[key]
        if service_before is not None and service_after is not None:
            f[f"w3_cpu_{key}_ms"] = (service_after - service_before) * 1000 / len(rows)
    f["w3_tps"] = len(rows) / inst.run_span_s("bench_fan", run_id)
    lags = [(r[2] - r[1]).total_seconds() * 1000 for r in rows]
    f["w3_lag_p50_ms"], f["w3_lag_p95_ms"], f["w3_lag_p99_ms"] = (pct(lags, p) for p in (50, 95, 99))
    f["w3_task_p50_ms"] = statistics.median((r[3] - r[2]).total_seconds() * 1000 for r in rows)
    f["w5_worker_w3_rss_mb"] = max(sampler.worker_rss, default=rss_mb(worker))
    peaks = list(sampler.child_uss.values())
    if not peaks:
        raise BenchError("no task child of the zygote was seen during W3")
    f["w5_child_uss_mb"], f["w5_child_uss_max_mb"] = statistics.median(peaks), max(peaks)

    run_id, f["w4_cli_s"] = inst.trigger_wait("bench_xcom")
    f["w4_run_s"] = inst.run_span_s("bench_xcom", run_id)

    f.update(lost_worker(inst))
    inst.start("worker", " ready: queues=")  # W6 expects the first worker's process to stop

    inst.stop("worker")  # W6: nothing consumes, the scheduler queues and publishes alone
    probe = BrokerProbe(inst.amqp_url)
    try:
        f.update(scheduler_scale(inst, probe, scheduler, size))
    finally:
        try:
            probe.purge(TASK_QUEUE)
        finally:
            probe.close()
    inst.stop("scheduler")
    inst.stop("worker")
    ceiling = fork_ceiling(inst.amqp_url, size.ceiling)
    f["ceiling_tps"], f["ceiling_fork_ms"] = ceiling["tasks_per_s"], ceiling["fork_ms"]
    f["w3_ratio"] = f["w3_tps"] / f["ceiling_tps"]
    return f


def lost_worker(inst: Installation) -> dict[str, float]:
    """W7: SIGKILL the worker (its process group: the host is gone) while it runs two tasks of
    bench_lost, with a second worker up, at default lease settings. Measured from the database: the
    restarted attempts' new start time minus the kill, tasks that did not succeed, tries used up."""
    inst.start("worker", " ready: queues=", name="worker2", hostname=f"second@{inst.id}")
    run_id = f"bench__{uuid.uuid4().hex[:12]}"
    inst.cli("dags", "trigger", "bench_lost", "--run-id", run_id)
    doomed = inst.procs["worker"]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    first_host = ""
    while not first_host:  # two on one worker (concurrency 2): kill that one
        rows = inst.sql(
            "SELECT hostname, count(*) FROM task_instance WHERE dag_id = 'bench_lost' AND run_id = :r "
            "AND state = 'running' GROUP BY hostname",
            r=run_id,
        )
        first_host = next((h for h, n in rows if n == 2 and not h.startswith("second@")), "")
        if time.monotonic() > deadline:
            raise BenchError(f"W7: the first worker never ran two tasks of bench_lost{inst.logs_tail()}")
        time.sleep(0.02)
    family, todo = [], [doomed.pid]  # the worker, its zygote and their task processes: the host is gone
    while todo:
        pid = todo.pop()
        family.append(pid)
        todo.extend(children(pid))
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    killed_at = datetime.now(UTC)
    doomed.wait()
    inst.procs.pop("worker")
    while True:
        state = inst.sql("SELECT state FROM dag_run WHERE dag_id = 'bench_lost' AND run_id = :r", r=run_id)
        if state and state[0][0] in ("success", "failed"):
            break
        if time.monotonic() > deadline:
            raise BenchError(f"W7: bench_lost {run_id} did not finish{inst.logs_tail()}")
        time.sleep(0.1)
    rows = inst.sql(
        "SELECT state, try_number, infra_retries, start_date FROM task_instance "
        "WHERE dag_id = 'bench_lost' AND run_id = :r",
        r=run_id,
    )
    restarts = [(as_utc(start) - killed_at).total_seconds() for _, _, lost, start in rows if lost]
    inst.stop("worker2")
    return {
        "w7_restart_s": max(restarts) if restarts else float("nan"),
        "w7_lost": float(sum(1 for state, *_ in rows if state != "success")),
        "w7_retries_used": float(sum(1 for _, try_number, *_ in rows if try_number > 1)),
    }


def scheduler_scale(inst: Installation, probe: BrokerProbe, scheduler: int, size: Size) -> dict[str, float]:
    """W6: from the first trigger until every task instance is QUEUED in the DB and its message is in
    the broker's queue (confirmed publishes only), and the scheduler's CPU time meanwhile."""
    from rabbitrun import client
    from rabbitrun.settings import load_settings

    settings = load_settings(env=inst.env)
    out: dict[str, float] = {}
    tick_s = 1 / os.sysconf("SC_CLK_TCK")

    def queue_runs(dag_id: str, runs: int, tasks: int) -> tuple[float, float]:
        """Trigger `runs` runs the way `dags trigger` does; wait until all their tasks are queued and
        in the broker's queue; return (seconds, scheduler CPU seconds)."""
        total = runs * tasks
        probe.purge(TASK_QUEUE)
        cpu_before = cpu_s(scheduler)
        started = time.perf_counter()
        run_ids = [client.trigger(settings, dag_id) for _ in range(runs)]
        while True:
            elapsed = time.perf_counter() - started
            ((queued,),) = inst.sql(
                "SELECT count(*) FROM task_instance WHERE dag_id = :d AND run_id IN :r AND state = 'queued'",
                d=dag_id,
                r=run_ids,
            )
            if queued >= total and probe.depth(TASK_QUEUE) >= total:
                break
            if elapsed > RUN_TIMEOUT_S:
                raise BenchError(
                    f"W6 {dag_id} x{runs}: {queued} of {total} queued, "
                    f"{probe.depth(TASK_QUEUE)} in {TASK_QUEUE} after {elapsed:.0f} s"
                    f"{inst.logs_tail()}"
                )
            time.sleep(min(0.05, 0.005 + elapsed / 50))
        elapsed = time.perf_counter() - started
        time.sleep(0.05)  # confirms and bookkeeping that follow the last publish
        return elapsed, max(cpu_s(scheduler) - cpu_before, tick_s)

    # 100 tasks: ten runs one after the other (CPU is counted in 10 ms ticks), median time, mean CPU
    small = [queue_runs("bench_fan100", 1, 100) for _ in range(10)]
    out["w6_100_s"] = statistics.median(s for s, _ in small)
    out["w6_100_cpu_ms"] = sum(c for _, c in small) * 1000 / (len(small) * 100)
    for key, dag_id, runs, tasks in (
        ("fan", "bench_fan", 1, size.fan),
        ("scale", "bench_scale", 1, size.scale),
        ("runs", "bench_fan100", size.runs, 100),
    ):
        elapsed, cpu = queue_runs(dag_id, runs, tasks)
        out[f"w6_{key}_s"], out[f"w6_{key}_cpu_ms"] = elapsed, cpu * 1000 / (runs * tasks)
        if key == "scale":
            out["w5_scheduler_rss_mb"] = rss_mb(scheduler)
    out["w6_cpu_growth"] = out["w6_scale_cpu_ms"] / out["w6_100_cpu_ms"]
    return out


def fork_ceiling(amqp_url: str, n: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, str(CEILING), amqp_url, str(n)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise BenchError(f"fork-per-task ceiling failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


# --- report ---------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    rabbit = subprocess.run([*RABBITMQCTL, "-q", "version"], capture_output=True, text=True).stdout.strip()
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "rabbitmq": rabbit,
        "sqlite": sqlite3.sqlite_version,
    }


def pg_version() -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(PG_ADMIN_URL)
    with psycopg.connect(host=url.host, port=url.port or 5432, user=url.username, dbname=url.database) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


def pgbouncer_version() -> str:
    done = subprocess.run([PGBOUNCER, "--version"], capture_output=True, text=True)
    return done.stdout.split("\n", 1)[0].removeprefix("PgBouncer ").strip() or "?"


def verdict(figure: Figure, db: str, median: float) -> tuple[str, str]:
    target = figure.pg if db.startswith("postgresql") else figure.sqlite
    if target is None:
        return "", ""
    op, limit = target
    ok = median <= limit if op == "<=" else median >= limit
    return f"{op} {limit:g}", "PASS" if ok else "MISS"


def report(
    results: dict[str, list[dict[str, float]]], size: Size, args: argparse.Namespace, info: dict[str, Any]
) -> list[dict[str, Any]]:
    rows = []
    print(
        f"\nrabbitrun benchmark: size={args.size} (W3 {size.fan}, W6 {size.scale} and {size.runs} x 100),"
        f" repeat={args.repeat}"
    )
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    for db, runs in results.items():
        print(f"\n{db:<20} {'figure':<58} {'min':>9} {'median':>9} {'max':>9} {'unit':<8} target")
        for figure in FIGURES:
            values = [run[figure.key] for run in runs if figure.key in run]
            if not values:
                continue
            median = statistics.median(values)
            target, outcome = verdict(figure, db, median)
            label = figure.label.format(fan=size.fan, scale=size.scale, runs=size.runs)
            rows.append(
                {
                    "db": db,
                    "key": figure.key,
                    "figure": label,
                    "unit": figure.unit,
                    "values": values,
                    "min": min(values),
                    "median": median,
                    "max": max(values),
                    "target": target,
                    "verdict": outcome,
                }
            )
            print(
                f"{db:<20} {label:<58} {fmt(min(values)):>9} {fmt(median):>9} {fmt(max(values)):>9} "
                f"{figure.unit:<8} {outcome + ' (' + target + ')' if target else ''}"
            )
    misses = [f"{r['db']}: {r['figure']}" for r in rows if r["verdict"] == "MISS"]
    print(f"\n{len(misses)} target(s) missed" + (":\n  " + "\n  ".join(misses) if misses else ""))
    return rows


def fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql, postgresql-pgbouncer"
    )
    parser.add_argument("--repeat", type=int, default=3, help="fresh installations per database (default 3)")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--json", default=str(ROOT / ".bench" / "results.json"), help="where to write results")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    if not dbs or set(dbs) - set(DBS) or args.repeat < 1:
        parser.error(f"--db takes {', '.join(DBS)}; --repeat at least 1")
    size = SIZES[args.size]
    info = machine()
    if any(db.startswith("postgresql") for db in dbs):
        info["postgresql"] = pg_version()
    if "postgresql-pgbouncer" in dbs:
        info["pgbouncer"] = pgbouncer_version()
    started = datetime.now(UTC)
    results: dict[str, list[dict[str, float]]] = {}
    for db in dbs:
        for attempt in range(1, args.repeat + 1):
            t0 = time.perf_counter()
            inst = Installation(db, size)
            try:
                inst.setup()
                figures = workloads(inst, size)
            except BenchError as exc:
                print(f"benchmark failed ({db}, run {attempt}): {exc}", file=sys.stderr)
                return 1
            finally:
                inst.close()
            results.setdefault(db, []).append(figures)
            print(f"[{db} run {attempt}/{args.repeat}: {time.perf_counter() - t0:.0f} s]", file=sys.stderr, flush=True)
    rows = report(results, size, args, info)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "started_at": started.isoformat(timespec="seconds"),
                "size": args.size,
                "sizes": size.__dict__,
                "repeat": args.repeat,
                "machine": info,
                "rows": rows,
                "runs": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
