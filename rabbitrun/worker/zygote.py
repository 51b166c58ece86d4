"""The zygote: a single-threaded, pre-warmed process that forks one task process per delivery.

The asyncio worker cannot fork safely (aio-pika and the DB pool use threads and locks), and it
holds what a task must never see: the DB URL, the Fernet key, the broker password. So the zygote is
a fresh interpreter (``python -m rabbitrun.worker.zygote``), started with an environment that has
none of them and settings with every secret blanked (:func:`rabbitrun.settings.for_task_process`),
sent over its command socket. It imports the runner and every DAG file once, freezes the GC so
children share those pages copy-on-write, and then only forks: a task pays neither an interpreter
start, nor imports, nor a DAG parse (DESIGN.md, Worker process model and Task process boundary).

Channels: the worker sends ``run``/``stop`` frames on a SOCK_SEQPACKET socket, each run frame with
the task process's end of its own task channel (SCM_RIGHTS); the zygote hands both to a spare child
and writes ``started``/``exited`` frames back on its event pipe. A task process speaks only on its
task channel (``rabbitrun.protocol.channel``): data requests, its finish, or why it could not run.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import gc
import logging
import os
import pickle
import selectors
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

from rabbitrun import protocol
from rabbitrun.errors import ProtocolError
from rabbitrun.settings import Settings, for_task_process, task_process_environ
from rabbitrun.states import OutcomeKind

PIPE_BUF = 4096
_MAX_COMMAND = 1 << 20  # a run frame: an envelope and its claim (kilobytes)
log = logging.getLogger("rabbitrun.worker.zygote")


@dataclass(frozen=True, slots=True)
class ZygoteHandle:
    process: subprocess.Popen[bytes]
    commands: socket.socket  # parent sends run/stop frames here (run frames with a channel fd)
    event_fd: int  # parent reads started/exited frames here

    @property
    def pid(self) -> int:
        return self.process.pid


def start_zygote(settings: Settings, hostname: str) -> ZygoteHandle:
    """Start the zygote: a fresh interpreter without the worker's secrets (see the module docstring)."""
    commands, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    evt_r, evt_w = os.pipe()
    env = task_process_environ(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # imports resolve as in the worker
    process = subprocess.Popen(
        [sys.executable, "-m", "rabbitrun.worker.zygote", str(theirs.fileno()), str(evt_w)],
        pass_fds=(theirs.fileno(), evt_w),
        env=env,
    )
    theirs.close()
    os.close(evt_w)
    commands.send(pickle.dumps((for_task_process(settings), hostname)))  # its first message
    os.set_blocking(evt_r, False)
    return ZygoteHandle(process, commands, evt_r)


def send_run(handle: ZygoteHandle, frame: protocol.RunFrame, channel: socket.socket) -> None:
    """One run frame, with the task process's end of its channel (the zygote passes it on)."""
    socket.send_fds(handle.commands, [protocol.encode_frame(frame)], [channel.fileno()])


def write_frame(fd: int, frame: protocol.Frame) -> None:
    os.write(fd, protocol.encode_frame(frame))


def main(argv: list[str]) -> int:
    """``python -m rabbitrun.worker.zygote CMD_FD EVT_FD``: started by :func:`start_zygote` only."""
    from rabbitrun.data.access import forbid_direct_db
    from rabbitrun.logs import configure_process_logging

    commands = socket.socket(fileno=int(argv[1]))
    evt_fd = int(argv[2])
    first = commands.recv(_MAX_COMMAND)
    if not first:
        return 0
    settings, hostname = pickle.loads(first)  # noqa: S301 - from the worker that started this process
    configure_process_logging(settings)
    forbid_direct_db("a task process (the worker serves its Variables, Connections and XComs)")
    try:
        _Zygote(settings, hostname, commands, evt_fd).serve()
    except BaseException:  # noqa: BLE001 - process boundary
        traceback.print_exc()
        return 70
    return 0


class _Zygote:
    def __init__(self, settings: Settings, hostname: str, commands: socket.socket, evt_fd: int) -> None:
        self.settings, self.hostname = settings, hostname
        self.commands, self.evt_fd = commands, evt_fd
        self.children: dict[int, str] = {}  # pid -> run token (one per delivery)
        self.spares: list[_Spare] = []
        self.dead_spares: set[int] = set()
        self.spare_count = max(0, settings.worker.spare_processes)
        self.wake: tuple[int, int] = (-1, -1)

    def serve(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides about shutdown
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        wake_r, wake_w = self.wake = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self._warm_up()
        selector = selectors.DefaultSelector()
        selector.register(self.commands, selectors.EVENT_READ, "cmd")
        selector.register(wake_r, selectors.EVENT_READ, "wake")
        while True:
            for sel_key, _ in selector.select(timeout=1.0):
                if sel_key.data == "wake":
                    _drain(wake_r)
                elif not self._read_command():
                    self._kill_children()
                    return
            self._reap()

    def _warm_up(self) -> None:
        """Import what tasks need and parse every DAG once, then freeze the heap."""
        from pathlib import Path

        from rabbitrun import runner  # noqa: F401 - imported for the children
        from rabbitrun.authoring import DagBag

        self.dagbag = DagBag(
            _dags_folder(self.settings),
            include_examples=self.settings.core.load_examples,
            airflow_compat=self.settings.core.airflow_compat,
            plugins_folder=Path(self.settings.core.plugins_folder) if self.settings.core.plugins_folder else None,
        )
        for ref, err in self.dagbag.import_errors.items():
            log.warning("DAG file %s failed to import: %s", ref, err.exception)
        _libc()
        gc.collect()
        gc.freeze()  # children inherit these objects; don't let their GC touch (and copy) the pages
        self._fill_spares()

    def _read_command(self) -> bool:
        try:
            data, fds, _, _ = socket.recv_fds(self.commands, _MAX_COMMAND, 1)
        except InterruptedError:
            return True
        if not data:  # the parent is gone
            for fd in fds:
                os.close(fd)
            return False
        frames = protocol.split_frames(bytearray(data))
        frame = frames[0] if len(frames) == 1 else None
        if isinstance(frame, protocol.StopFrame):
            return False
        if not isinstance(frame, protocol.RunFrame) or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise ProtocolError("the zygote expects one run frame with its channel, or a stop frame")
        self._fork_child(frame, data, fds[0])
        return True

    def _fork_child(self, frame: protocol.RunFrame, data: bytes, channel_fd: int) -> None:
        """Hand the run frame and its channel to a spare child (forked in advance), then replace it."""
        spare = self._take_spare()
        try:
            socket.send_fds(spare.assign, [data], [channel_fd])
        finally:
            os.close(channel_fd)  # the child holds it now: no later spare may inherit it
            spare.assign.close()
        self.children[spare.pid] = frame.token
        write_frame(self.evt_fd, protocol.StartedFrame(frame.token, spare.pid))
        self._fill_spares()

    def _take_spare(self) -> _Spare:
        while self.spares:
            spare = self.spares.pop(0)
            if spare.pid in self.dead_spares:  # died while idle: discard
                self.dead_spares.discard(spare.pid)
                spare.assign.close()
                continue
            return spare
        return self._fork_spare()

    def _fill_spares(self) -> None:
        while len(self.spares) < self.spare_count:
            self.spares.append(self._fork_spare())

    def _fork_spare(self) -> _Spare:
        """Fork a child that waits for its one run frame: the fork and the process set-up are paid
        before a task arrives, so they stay off the critical path of a delivery."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            ours.close()
            code = 70
            link: Any = None
            token = ""
            try:
                self._become_child()
                received = _read_run(theirs)
                if received is None:  # the zygote is gone or replaced this spare
                    os._exit(0)
                clock_start = time.monotonic()  # the supervisor's time limits count from (just after) here
                frame, channel = received
                from rabbitrun.runner import WorkerLink

                token, link = frame.token, WorkerLink(channel)
                code = self._child(frame, link, clock_start)
            except BaseException:  # noqa: BLE001 - process boundary: report, never raise past fork
                if link is not None:
                    crashed = protocol.OutcomeFrame(token, OutcomeKind.CRASHED, error=traceback.format_exc()[-1000:])
                    with contextlib.suppress(OSError):
                        link.send(crashed)
            finally:
                os._exit(code)
        theirs.close()
        return _Spare(pid, ours)

    def _become_child(self) -> None:
        zygote = os.getppid()
        os.setpgid(0, 0)  # own process group: a time limit also reaches the task's subprocesses
        _die_with_parent(zygote)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        self.commands.close()
        for fd in (self.evt_fd, *self.wake):  # a task speaks on its own channel only: no forged events
            os.close(fd)
        for spare in self.spares:
            spare.assign.close()

    def _child(self, frame: protocol.RunFrame, link: Any, clock_start: float) -> int:
        from rabbitrun import runner
        from rabbitrun.errors import DagError

        envelope = frame.envelope
        try:
            self._ensure_dag(envelope)
        except DagError as exc:
            link.send(protocol.OutcomeFrame(frame.token, OutcomeKind.REJECTED, error=str(exc)))
            return 2
        outcome = runner.run_for_worker(
            self.settings,
            link,
            self.dagbag,
            envelope.key,
            frame.claim,
            hostname=self.hostname,
            clock_start=clock_start,
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
            spare.assign.close()  # idle spares read EOF and exit
        for pid in list(self.children):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError as exc:
                if exc.errno != errno.ESRCH:
                    raise


@dataclass(frozen=True, slots=True)
class _Spare:
    pid: int
    assign: socket.socket  # the zygote sends the one run frame (and channel) this child runs, then closes it


def _read_run(sock: socket.socket) -> tuple[protocol.RunFrame, socket.socket] | None:
    """A spare's one run frame and its task channel; None when the zygote closed it instead."""
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, _MAX_COMMAND, 1)
            break
        except InterruptedError:
            continue
    sock.close()
    if not data:
        return None
    frames = protocol.split_frames(bytearray(data))
    if len(frames) != 1 or not isinstance(frames[0], protocol.RunFrame) or len(fds) != 1:
        raise ProtocolError("a spare task process expects one run frame with its channel")
    return frames[0], socket.socket(fileno=fds[0])


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


if __name__ == "__main__":
    sys.exit(main(sys.argv))
