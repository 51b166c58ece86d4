"""The zygote: a single-threaded, pre-warmed process that forks one child per task.

The asyncio consumer cannot fork safely (aio-pika and the DB pool use threads
and locks), so it forks this process first, before importing them. The zygote
imports the runner, SQLAlchemy and every DAG file once, freezes the GC so
children share those pages copy-on-write, and then only forks: a task pays
neither an interpreter start, nor imports, nor a DAG parse (DESIGN.md,
Worker process model).

Pipes: the parent writes ``run``/``stop`` frames to the zygote; the zygote
writes ``started``/``exited`` frames back, and each child writes its own
``outcome`` frame straight to that same pipe (each frame is one ``write``
under PIPE_BUF, so frames from many writers never interleave).
The child never uses a connection of its parent: it builds its own engine.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import functools
import gc
import logging
import os
import selectors
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

from rabbitrun import protocol
from rabbitrun.errors import ProtocolError
from rabbitrun.settings import Settings
from rabbitrun.states import OutcomeKind

PIPE_BUF = 4096
log = logging.getLogger("rabbitrun.worker.zygote")


@dataclass(frozen=True, slots=True)
class ZygoteHandle:
    pid: int
    command_fd: int  # parent writes frames here
    event_fd: int  # parent reads frames here


def start_zygote(settings: Settings, hostname: str) -> ZygoteHandle:
    """Fork the zygote. Call before the caller starts any thread."""
    cmd_r, cmd_w = os.pipe()
    evt_r, evt_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the zygote
        os.close(cmd_w)
        os.close(evt_r)
        code = 0
        try:
            _Zygote(settings, hostname, cmd_r, evt_w).serve()
        except BaseException:  # noqa: BLE001 - process boundary
            traceback.print_exc()
            code = 70
        os._exit(code)
    os.close(cmd_r)
    os.close(evt_w)
    os.set_blocking(evt_r, False)
    return ZygoteHandle(pid, cmd_w, evt_r)


def write_frame(fd: int, frame: protocol.Frame) -> None:
    data = protocol.encode_frame(frame)
    if len(data) > PIPE_BUF and isinstance(frame, protocol.OutcomeFrame):  # keep writes atomic: the error
        data = protocol.encode_frame(dataclasses.replace(frame, error=frame.error[:1000]))  # is what can be long
    os.write(fd, data)


class _Zygote:
    def __init__(self, settings: Settings, hostname: str, cmd_fd: int, evt_fd: int) -> None:
        self.settings, self.hostname = settings, hostname
        self.cmd_fd, self.evt_fd = cmd_fd, evt_fd
        self.children: dict[int, str] = {}  # pid -> run token (one per delivery)
        self.buffer = bytearray()
        self.spares: list[_Spare] = []
        self.dead_spares: set[int] = set()
        self.spare_count = max(0, settings.worker.spare_processes)

    def serve(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides about shutdown
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self._warm_up()
        selector = selectors.DefaultSelector()
        selector.register(self.cmd_fd, selectors.EVENT_READ, "cmd")
        selector.register(wake_r, selectors.EVENT_READ, "wake")
        while True:
            for sel_key, _ in selector.select(timeout=1.0):
                if sel_key.data == "wake":
                    _drain(wake_r)
                elif not self._read_commands():
                    self._kill_children()
                    return
            self._reap()

    def _warm_up(self) -> None:
        """Import what tasks need and parse every DAG once, then freeze the heap."""
        from rabbitrun import runner  # noqa: F401 - imported for the children
        from rabbitrun.authoring import DagBag
        from rabbitrun.models.engine import make_engine, retrying, session_factory

        retrying(self.settings.database)  # imports tenacity here, once, not in every child

        # One engine, created and warmed here: children inherit its initialised dialect and
        # compiled-statement cache (no per-task SQL compilation), but no connection: the pool
        # is emptied before any fork, and each child starts a fresh pool of its own.
        # No pre-ping: a child's connection is fresh (made just before its task), and a connection
        # dropped later is a transient error that `retrying` answers with a new one. A ping per
        # checkout would cost each attempt two more round trips.
        self.engine = make_engine(dataclasses.replace(self.settings.database, pool_pre_ping=False))
        self.sessions = session_factory(self.engine)
        _warm_statement_cache(self.sessions)
        self.engine.dispose()
        self.dagbag = DagBag(_dags_folder(self.settings), include_examples=self.settings.core.load_examples)
        for ref, err in self.dagbag.import_errors.items():
            log.warning("DAG file %s failed to import: %s", ref, err.exception)
        _libc()
        gc.collect()
        gc.freeze()  # children inherit these objects; don't let their GC touch (and copy) the pages
        self._fill_spares()

    def _read_commands(self) -> bool:
        try:
            data = os.read(self.cmd_fd, 65536)
        except InterruptedError:
            return True
        if not data:  # the parent is gone
            return False
        self.buffer.extend(data)
        for frame in protocol.split_frames(self.buffer):
            if isinstance(frame, protocol.RunFrame):
                self._fork_child(frame)
            elif isinstance(frame, protocol.StopFrame):
                return False
        return True

    def _fork_child(self, frame: protocol.RunFrame) -> None:
        """Hand the envelope to a spare child (forked and connected in advance), then replace it."""
        spare = self._take_spare()
        os.write(spare.assign_fd, protocol.encode_frame(frame))
        os.close(spare.assign_fd)
        self.children[spare.pid] = frame.token
        write_frame(self.evt_fd, protocol.StartedFrame(frame.token, spare.pid))
        self._fill_spares()

    def _take_spare(self) -> _Spare:
        while self.spares:
            spare = self.spares.pop(0)
            if spare.pid in self.dead_spares:  # died while idle (e.g. the DB refused it): discard
                self.dead_spares.discard(spare.pid)
                os.close(spare.assign_fd)
                continue
            return spare
        return self._fork_spare()

    def _fill_spares(self) -> None:
        while len(self.spares) < self.spare_count:
            self.spares.append(self._fork_spare())

    def _fork_spare(self) -> _Spare:
        """Fork a child that connects to the DB now and waits for its one envelope.

        Fork, process set-up and the DB connection are paid before a task
        arrives, so they stay off the critical path of a delivery.
        """
        assign_r, assign_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(assign_w)
            code = 70
            token = ""
            try:
                self._become_child()
                frame = _read_one_frame(assign_r)
                if frame is None:  # the zygote is gone or replaced this spare
                    os._exit(0)
                clock_start = time.monotonic()  # the supervisor's time limits count from (just after) here
                token = frame.token
                code = self._child(frame.envelope, token, clock_start)
            except BaseException:  # noqa: BLE001 - process boundary: report, never raise past fork
                if token:
                    crashed = protocol.OutcomeFrame(token, OutcomeKind.CRASHED, error=traceback.format_exc()[-1000:])
                    write_frame(self.evt_fd, crashed)
            finally:
                os._exit(code)
        os.close(assign_r)
        return _Spare(pid, assign_w)

    def _become_child(self) -> None:
        zygote = os.getppid()
        os.setpgid(0, 0)  # own process group: a time limit also reaches the task's subprocesses
        _die_with_parent(zygote)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        os.close(self.cmd_fd)
        for spare in self.spares:
            os.close(spare.assign_fd)
        self.engine.dispose(close=False)  # a pool of this child's own; never the zygote's connections
        # Connect now (the pooled connection then serves the attempt). On PostgreSQL also warm the
        # new backend with the attempt's statements on a key no row has (SQLite has nothing to warm,
        # and the rolled-back insert would take its one write lock).
        try:
            from rabbitrun.models import attempts

            with attempts.attempt_db(self.sessions) as db:  # the connection then waits in the child's pool
                if self.engine.dialect.name == "postgresql":
                    from rabbitrun.models.base import utcnow

                    attempts.warm_connection(db, utcnow(), str(os.getpid()))
        except Exception as exc:  # noqa: BLE001 - the attempt will connect again and report the error
            log.warning("spare task process could not pre-connect to the DB: %s", exc)

    def _child(self, envelope: protocol.TaskEnvelope, token: str, clock_start: float) -> int:
        from rabbitrun import runner
        from rabbitrun.errors import DagError

        try:
            self._ensure_dag(envelope)
        except DagError as exc:
            write_frame(self.evt_fd, protocol.OutcomeFrame(token, OutcomeKind.REJECTED, error=str(exc)))
            return 2
        outcome = runner.run_attempt(
            self.settings,
            self.sessions,
            self.dagbag,
            envelope.key,
            hostname=self.hostname,
            in_process=False,
            clock_start=clock_start,
            envelope_id=envelope.id,
        )
        write_frame(
            self.evt_fd,
            protocol.OutcomeFrame(
                token, outcome.state, outcome.claimed, outcome.started_at, outcome.ended_at, outcome.error
            ),
        )
        sys.stdout.flush()
        return outcome.exit_code

    def _ensure_dag(self, envelope: protocol.TaskEnvelope) -> None:
        """Import the envelope's DAG file when this zygote did not load it (new or changed file)."""
        dag_id = envelope.key.dag_id
        if dag_id not in self.dagbag.dags or self.dagbag.file_ref(dag_id) != envelope.dag_file:
            self.dagbag.load_file(envelope.dag_file)
        self.dagbag.get_dag(dag_id).get_task(envelope.key.task_id)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            token = self.children.pop(pid, None)
            if token is not None:
                write_frame(self.evt_fd, protocol.ExitedFrame(token, pid, os.waitstatus_to_exitcode(status)))
            elif any(spare.pid == pid for spare in self.spares):
                self.dead_spares.add(pid)

    def _kill_children(self) -> None:
        """The parent died: its unacked deliveries go back to the queue, so stop their tasks."""
        for spare in self.spares:
            os.close(spare.assign_fd)  # idle spares read EOF and exit
        for pid in list(self.children):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError as exc:
                if exc.errno != errno.ESRCH:
                    raise


def _warm_statement_cache(sessions: Any) -> None:
    """Run a whole attempt's statements once on throwaway rows in a transaction that is rolled
    back, so they are compiled before the fork and no child pays SQL compilation. A DB that is
    down here is not fatal: children then compile on their own."""
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import configure_mappers

    from rabbitrun.keys import TaskInstanceKey
    from rabbitrun.models import attempts, xcom
    from rabbitrun.models.base import utcnow
    from rabbitrun.models.tables import DagRun, TaskInstance
    from rabbitrun.states import TaskState

    configure_mappers()
    key = TaskInstanceKey("~warmup~", "~warmup~", "~warmup~")  # "~" is not allowed in dag ids
    now = utcnow()
    try:
        with sessions() as session:
            session.add(DagRun(dag_id=key.dag_id, run_id=key.run_id, state="running", logical_date=now))
            session.flush()
            session.add(
                TaskInstance(
                    dag_id=key.dag_id,
                    task_id=key.task_id,
                    run_id=key.run_id,
                    map_index=-1,
                    state=TaskState.QUEUED.value,
                    try_number=1,
                    queue="~",
                )
            )
            session.flush()
            attempts.claim(session, key, hostname="", pid=0, now=now, commit=False)
            xcom.set_xcom(session, key, xcom.RETURN_VALUE, 1, allow_pickle=False, max_bytes=0)
            attempts.finish(session, key, attempts.Finish(TaskState.SUCCESS, now), started_at=now, commit=False)
            attempts.claim(session, key.with_try(2), hostname="", pid=0, now=now, commit=False)  # the losing path
            session.rollback()
    except SQLAlchemyError as exc:
        log.warning("could not warm the statement cache: %s", exc)


@dataclass(frozen=True, slots=True)
class _Spare:
    pid: int
    assign_fd: int  # the zygote writes the one envelope this child will run, then closes it


def _read_one_frame(fd: int) -> protocol.RunFrame | None:
    buffer = bytearray()
    while True:
        try:
            data = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not data:
            return None
        buffer.extend(data)
        frames = protocol.split_frames(buffer)
        if frames:
            if not isinstance(frames[0], protocol.RunFrame):
                raise ProtocolError(f"a spare task process expects a run frame, got {frames[0].KIND!r}")
            return frames[0]


_PR_SET_PDEATHSIG = 1


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, loaded once in the zygote (its children inherit it, no load per task)."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _die_with_parent(parent: int) -> None:
    """SIGKILL this task process when the zygote dies, however it dies (Linux prctl PDEATHSIG).

    The zygote kills its children when the worker is gone, but if the zygote itself is killed (the
    OOM killer, a `kill -9` of the process group) its children would run on unsupervised while the
    scheduler, once their leases expire, runs the same attempts elsewhere: a task twice at once.
    """
    libc = _libc()
    if libc is None or not hasattr(libc, "prctl"):  # not Linux: the zygote's kill on the worker's exit remains
        return
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the zygote died before the prctl took effect
        os._exit(1)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _dags_folder(settings: Settings) -> Any:
    from pathlib import Path

    return Path(settings.core.dags_folder)
