"""The asyncio side of the process model: hands envelopes to the zygote, enforces
time limits on the children and collects how each one ended.

Soft limit (``execution_timeout``) -> SIGTERM to the child's process group, which
the runner turns into TaskTimeout inside the task; hard limit (soft limit +
``kill_grace_s``) -> SIGKILL. A child that dies without reporting (SIGKILL, OOM
killer) is reported as such; the caller records it in the DB.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from rabbitrun import protocol
from rabbitrun.settings import Settings
from rabbitrun.worker.zygote import ZygoteHandle, start_zygote, write_frame

log = logging.getLogger("rabbitrun.worker")


@dataclass
class ChildReport:
    """How one task child ended: its own outcome frame (if it got to write one) and its exit status."""

    envelope_id: str
    outcome: protocol.OutcomeFrame | None = None
    exit_status: int | None = None  # negative: killed by that signal
    pid: int | None = None
    timed_out: str = ""  # "soft" or "hard" when the worker enforced a limit
    # the worker itself stopped this child for its shutdown: whatever it died of, the attempt is not
    # the task's failure, and goes back to the queue (a SIGTERM can land before the child's handler)
    stopped_for_shutdown: bool = False
    fenced: str = ""  # the worker killed it because it lost its lease (why): released, not failed

    @property
    def state(self) -> str | None:
        return self.outcome.state if self.outcome else None

    def death_reason(self) -> str:
        if self.timed_out == "hard":
            return "hard time limit exceeded: task process killed with SIGKILL"
        status = self.exit_status
        if status is not None and status < 0:
            return f"task process was killed by {signal.Signals(-status).name} (e.g. OOM killer or kill -9)"
        return f"task process exited with code {status} without reporting an outcome"

    def crash_reason(self) -> str:
        """The child caught its own crash and reported the traceback: its last line says what went wrong."""
        error = self.outcome.error if self.outcome else ""
        lines = [line.strip() for line in error.splitlines() if line.strip()]
        what = lines[-1][:300] if lines else "no error reported"
        return f"task process crashed (exit code {self.exit_status}): {what}"


@dataclass
class _Running:
    """One task child: ``reported`` resolves at its outcome frame (or exit), ``done`` at its exit."""

    envelope: protocol.TaskEnvelope
    report: ChildReport
    done: asyncio.Future[ChildReport]
    reported: asyncio.Future[ChildReport]
    started_at: float = 0.0
    timers: list[asyncio.TimerHandle] = field(default_factory=list)


class Supervisor:
    """Owns the zygote; one ``run()`` call per task, awaited until the child is reaped."""

    def __init__(self, settings: Settings, hostname: str) -> None:
        self._settings, self._hostname = settings, hostname
        self._zygote: ZygoteHandle | None = None
        self._running: dict[str, _Running] = {}  # by run token: one per delivery, even for duplicates
        self._buffer = bytearray()
        self._tokens = itertools.count(1)

    def start_zygote(self) -> None:
        """Fork the zygote; must run before any thread exists in this process."""
        self._zygote = start_zygote(self._settings, self._hostname)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._zygote is not None
        loop.add_reader(self._zygote.event_fd, self._on_events)

    @property
    def zygote_pid(self) -> int | None:
        return self._zygote.pid if self._zygote else None

    def running(self) -> list[tuple[protocol.TaskEnvelope, int | None]]:
        return [(r.envelope, r.report.pid) for r in self._running.values()]

    async def run(
        self, envelope: protocol.TaskEnvelope, on_reported: Callable[[ChildReport], None] | None = None
    ) -> ChildReport:
        """Run one task child to its exit. ``on_reported`` is called as soon as the child has
        reported its outcome (its DB writes are done), which may be before it has exited."""
        assert self._zygote is not None
        loop = asyncio.get_running_loop()
        token = f"{next(self._tokens)}"
        entry = _Running(envelope, ChildReport(envelope.id), loop.create_future(), loop.create_future())
        if on_reported is not None:
            entry.reported.add_done_callback(lambda f: on_reported(f.result()))
        self._running[token] = entry
        os.write(self._zygote.command_fd, protocol.encode_frame(protocol.RunFrame(token, envelope)))
        try:
            return await entry.done
        finally:
            for timer in entry.timers:
                timer.cancel()
            self._running.pop(token, None)

    def _on_events(self) -> None:
        assert self._zygote is not None
        try:
            data = os.read(self._zygote.event_fd, 65536)
        except BlockingIOError:
            return
        if not data:
            log.error("the zygote (pid %s) is gone; no task can start", self._zygote.pid)
            asyncio.get_running_loop().remove_reader(self._zygote.event_fd)
            for entry in self._running.values():
                _resolve(entry.reported, entry.report)
                _resolve(entry.done, entry.report)
            return
        self._buffer.extend(data)
        for frame in protocol.split_frames(self._buffer):
            if isinstance(frame, protocol.ReportFrame):
                running = self._running.get(frame.token)
                if running is not None:
                    self._apply(running, frame)

    def _apply(self, entry: _Running, frame: protocol.ReportFrame) -> None:
        if isinstance(frame, protocol.StartedFrame):
            entry.report.pid = frame.pid
            entry.started_at = asyncio.get_running_loop().time()
            self._arm_limits(entry)
        elif isinstance(frame, protocol.OutcomeFrame):
            entry.report.outcome = frame
            _resolve(entry.reported, entry.report)
        else:
            entry.report.exit_status = frame.status
            _resolve(entry.reported, entry.report)
            _resolve(entry.done, entry.report)

    def _arm_limits(self, entry: _Running) -> None:
        timeout = entry.envelope.execution_timeout_s
        if not timeout:
            return
        loop = asyncio.get_running_loop()
        entry.timers.append(loop.call_later(timeout, self._signal, entry, signal.SIGTERM, "soft"))
        entry.timers.append(
            loop.call_later(timeout + self._settings.worker.kill_grace_s, self._signal, entry, signal.SIGKILL, "hard")
        )

    def _signal(self, entry: _Running, sig: signal.Signals, limit: str) -> None:
        if entry.done.done() or entry.report.pid is None:
            return
        if limit:
            entry.report.timed_out = limit
            log.warning("%s: %s time limit reached, sending %s", entry.envelope.key, limit, sig.name)
        try:
            os.killpg(entry.report.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # not yet its own group leader: signal the process itself
            os.kill(entry.report.pid, sig)

    def terminate_all(self, sig: signal.Signals = signal.SIGTERM, *, for_shutdown: bool = True) -> int:
        """Signal every running child (shutdown); returns how many were signalled."""
        count = 0
        for entry in list(self._running.values()):
            if entry.report.pid is not None and not entry.done.done():
                entry.report.stopped_for_shutdown = entry.report.stopped_for_shutdown or for_shutdown
                self._signal(entry, sig, "")
                count += 1
        return count

    def fence(self, why: str) -> int:
        """SIGKILL every running child: this worker can no longer prove it holds their leases."""
        for entry in self._running.values():
            if not entry.done.done():
                entry.report.fenced = why
        return self.terminate_all(signal.SIGKILL, for_shutdown=False)

    def stop(self) -> None:
        """Tell the zygote to exit and reap it."""
        if self._zygote is None:
            return
        try:
            write_frame(self._zygote.command_fd, protocol.StopFrame())
            os.close(self._zygote.command_fd)
        except OSError:
            pass
        try:
            os.waitpid(self._zygote.pid, 0)
        except ChildProcessError:
            pass
        self._zygote = None


def _resolve(future: asyncio.Future[ChildReport], report: ChildReport) -> None:
    if not future.done():
        future.set_result(report)
