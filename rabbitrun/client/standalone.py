"""`rabbitrun standalone`: a scheduler and a worker as child processes of one command.

They run as separate processes (not threads) because the worker must fork its
zygote from a clean process. Their output is prefixed and forwarded; SIGTERM or
SIGINT is passed on, and the command exits when both have stopped.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
from typing import IO

from rabbitrun.settings import Settings

log = logging.getLogger("rabbitrun.standalone")
READY_LINE = "rabbitrun standalone ready"


def run_standalone(settings: Settings, concurrency: int | None) -> int:
    queues = ",".join(_all_queues(settings))
    worker_cmd = [sys.executable, "-m", "rabbitrun", "worker", "--queues", queues]
    if concurrency:
        worker_cmd += ["--concurrency", str(concurrency)]
    commands = {"scheduler": [sys.executable, "-m", "rabbitrun", "scheduler"], "worker": worker_cmd}
    children = {
        name: subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, bufsize=1) for name, cmd in commands.items()
    }
    ready = {name: threading.Event() for name in children}
    threads = [
        threading.Thread(target=_forward, args=(name, proc.stderr, ready[name]), daemon=True)
        for name, proc in children.items()
    ]
    for t in threads:
        t.start()

    def stop(signum: int, _frame: object) -> None:
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    announced = False
    while any(p.poll() is None for p in children.values()):
        if not announced and all(e.is_set() for e in ready.values()):
            log.info(
                "%s: scheduler pid %s, worker pid %s", READY_LINE, children["scheduler"].pid, children["worker"].pid
            )
            announced = True
        if any(p.poll() is not None for p in children.values()):
            stop(signal.SIGTERM, None)  # one died: take the other down too
        for p in children.values():
            try:
                p.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
    for t in threads:
        t.join(timeout=2)
    return int(max(abs(p.returncode or 0) for p in children.values()))


def _all_queues(settings: Settings) -> list[str]:
    from pathlib import Path

    from rabbitrun.broker.topology import load_topology

    path = Path(settings.broker.topology_file) if settings.broker.topology_file else None
    return list(load_topology(path, settings.broker).queue_names())


def _forward(name: str, stream: IO[str] | None, ready: threading.Event) -> None:
    if stream is None:
        return
    for line in stream:
        if " ready" in line and ("scheduler" in line or "worker" in line):
            ready.set()
        sys.stderr.write(f"{name} | {line}")
        sys.stderr.flush()
