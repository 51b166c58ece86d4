"""The asyncio side of the process model: hands envelopes to the zygote, enforces
time limits on the children and collects how each one ended.

Each task process has its own task channel (a socket pair, its end passed through the zygote):
the supervisor reads its frames and has the :class:`ChannelService` of the delivery answer them, one
at a time, so the task's data requests and its finish are served by the worker that owns the attempt.

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
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from rabbitrun import protocol
from rabbitrun.errors import ProtocolError
from rabbitrun.settings import Settings
from rabbitrun.worker.zygote import ZygoteHandle, send_run, start_zygote

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
    channel_error: str = ""  # it sent what the worker cannot accept: killed, and the attempt failed
    claim: protocol.ClaimedAttempt | None = None  # the worker's claim of the attempt (None: it lost)

    @property
    def state(self) -> str | None:
        return self.outcome.state if self.outcome else None

    def death_reason(self) -> str:
        if self.channel_error:
            return f"task process killed: {self.channel_error}"
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


class ChannelService(Protocol):
    """Answers one task process's requests for the worker (``rabbitrun.worker.channel``)."""

    async def data(self, request: protocol.DataRequest) -> protocol.DataReply: ...

    async def finish(self, frame: protocol.FinishFrame) -> tuple[protocol.FinishReply, protocol.OutcomeFrame]:
        """Record the attempt's end: the reply for the task, and the outcome of the delivery."""
        ...


@dataclass
class _Running:
    """One task child: ``reported`` resolves at its outcome (or exit), ``done`` at its exit."""

    envelope: protocol.TaskEnvelope
    report: ChildReport
    done: asyncio.Future[ChildReport]
    reported: asyncio.Future[ChildReport]
    channel: socket.socket
    service: ChannelService
    started_at: float = 0.0
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    buffer: bytearray = field(default_factory=bytearray)
    requests: list[protocol.ChannelFrame] = field(default_factory=list)
    serving: asyncio.Task[None] | None = None
    # a signal for a child the zygote has not started yet (claimed, its DAG file still loading):
    # sent the moment it starts, so a shutdown or a fence never misses a task that is about to run
    pending_signal: signal.Signals | None = None


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
        self,
        envelope: protocol.TaskEnvelope,
        claim: protocol.ClaimedAttempt,
        service: ChannelService,
        on_reported: Callable[[ChildReport], None] | None = None,
    ) -> ChildReport:
        """Run one task child to its exit. ``on_reported`` is called as soon as the attempt's end is
        known (its finish recorded), which may be before the child has exited."""
        assert self._zygote is not None
        loop = asyncio.get_running_loop()
        token = f"{next(self._tokens)}"
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setblocking(False)
        report = ChildReport(envelope.id, claim=claim)
        entry = _Running(envelope, report, loop.create_future(), loop.create_future(), ours, service)
        if on_reported is not None:
            entry.reported.add_done_callback(lambda f: on_reported(f.result()))
        self._running[token] = entry
        loop.add_reader(ours, self._on_channel, entry)
        try:
            send_run(self._zygote, protocol.RunFrame(token, envelope, claim), theirs)
        finally:
            theirs.close()  # the task process holds it now
        try:
            return await entry.done
        finally:
            for timer in entry.timers:
                timer.cancel()
            self._close_channel(entry)
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
            if entry.pending_signal is not None:
                self._signal(entry, entry.pending_signal, "")
        elif isinstance(frame, protocol.ExitedFrame):
            entry.report.exit_status = frame.status
            asyncio.get_running_loop().create_task(self._exited(entry))

    async def _exited(self, entry: _Running) -> None:
        """The child is reaped: read what it wrote last, let a request in flight (its finish) be
        answered, then the delivery is done. Never before: a finish recorded after the exit is seen
        would race the parent's own record of a death."""
        self._on_channel(entry)
        while entry.serving is not None:
            await asyncio.wait([entry.serving])
        _resolve(entry.reported, entry.report)
        _resolve(entry.done, entry.report)

    # --- the task channel ----------------------------------------------------------------

    def _on_channel(self, entry: _Running) -> None:
        """Read what the task process sent; its requests are served one at a time, in order."""
        while entry.channel.fileno() >= 0:
            try:
                data = entry.channel.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._close_channel(entry)
                return
            entry.buffer.extend(data)
            try:
                frames = protocol.split_channel_frames(entry.buffer)
            except ProtocolError as exc:
                self._refuse(entry, f"its task channel sent an invalid frame ({exc.reason})")
                return
            for frame in frames:
                if isinstance(frame, protocol.OutcomeFrame):  # it could not run (REJECTED) or crashed
                    if entry.report.outcome is None:
                        entry.report.outcome = frame
                elif isinstance(frame, protocol.DataRequest | protocol.FinishFrame):
                    entry.requests.append(frame)
                else:
                    self._refuse(entry, f"its task channel sent a {frame.KIND!r} frame, which only the worker sends")
                    return
            if entry.requests and entry.serving is None:
                entry.serving = asyncio.get_running_loop().create_task(self._serve(entry))

    async def _serve(self, entry: _Running) -> None:
        loop = asyncio.get_running_loop()
        try:
            while entry.requests:
                request = entry.requests.pop(0)
                reply: protocol.ChannelFrame
                if isinstance(request, protocol.FinishFrame):
                    if entry.report.outcome is not None:
                        self._refuse(entry, "it sent a second finish")
                        return
                    reply, outcome = await entry.service.finish(request)
                    entry.report.outcome = outcome
                    _resolve(entry.reported, entry.report)
                else:
                    assert isinstance(request, protocol.DataRequest)
                    reply = await entry.service.data(request)
                if entry.channel.fileno() < 0:  # the child is gone: nobody to answer
                    return
                try:
                    await loop.sock_sendall(entry.channel, protocol.encode_channel_frame(reply))
                except OSError:  # it died meanwhile: its exit says the rest
                    return
        except ProtocolError as exc:
            self._refuse(entry, f"its task channel broke the protocol ({exc.reason})")
        except Exception:  # a bug in serving must not leave the task waiting forever
            log.exception("%s: serving its task channel failed", entry.envelope.key)
            self._refuse(entry, "the worker could not serve its request")
        finally:
            entry.serving = None

    def _refuse(self, entry: _Running, why: str) -> None:
        """A task process that breaks the channel's rules is killed; its attempt fails as a death."""
        log.error("%s: %s; killing its task process", entry.envelope.key, why)
        entry.report.channel_error = entry.report.channel_error or why
        entry.requests.clear()
        self._close_channel(entry)
        self._signal(entry, signal.SIGKILL, "")

    def _close_channel(self, entry: _Running) -> None:
        if entry.channel.fileno() >= 0:
            asyncio.get_running_loop().remove_reader(entry.channel)
            entry.channel.close()

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
        if entry.done.done():
            return
        if entry.report.pid is None:  # not started yet: it gets the signal as it starts
            if entry.pending_signal is None or sig == signal.SIGKILL:
                entry.pending_signal = sig
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
            if not entry.done.done():
                entry.report.stopped_for_shutdown = entry.report.stopped_for_shutdown or for_shutdown
                self._signal(entry, sig, "")
                count += 1
        return count

    def fence(self, why: str) -> int:
        """SIGKILL every running child not fenced yet: this worker can no longer prove it holds their
        leases. Returns how many were killed now (a watchdog calls it again while they die)."""
        count = 0
        for entry in list(self._running.values()):
            if not entry.done.done() and not entry.report.fenced:
                entry.report.fenced = why
                self._signal(entry, signal.SIGKILL, "")
                count += 1
        return count

    def stop(self) -> None:
        """Tell the zygote to exit and reap it."""
        if self._zygote is None:
            return
        try:
            self._zygote.commands.send(protocol.encode_frame(protocol.StopFrame()))
            self._zygote.commands.close()
        except OSError:
            pass
        self._zygote.process.wait()
        os.close(self._zygote.event_fd)
        self._zygote = None


def _resolve(future: asyncio.Future[ChildReport], report: ChildReport) -> None:
    if not future.done():
        future.set_result(report)
