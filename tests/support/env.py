"""One test's environment: RABBITRUN_HOME, database, prefix, and the real processes it starts."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import wait_until


@dataclass
class Env:
    """Environment for rabbitrun processes of one test, and the matching settings."""

    home: Path
    vars: dict[str, str]
    prefix: str
    children: list[subprocess.Popen[str]] = field(default_factory=list)

    def settings(self) -> Any:
        from rabbitrun.settings import load_settings

        return load_settings(env=self.vars)  # the home is this test's own: its rabbitrun.toml too

    def cli(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rabbitrun", *args], env=self.vars, capture_output=True, text=True, timeout=timeout_s
        )

    def start(self, *args: str, ready: str) -> subprocess.Popen[str]:
        """Start a long-running rabbitrun process; wait for its ready line in its log."""
        log_path = self.home / f"{args[0]}-{len(self.children)}.log"
        fh = log_path.open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "rabbitrun", *args], env=self.vars, stdout=fh, stderr=subprocess.STDOUT, text=True
        )
        proc.log_path = log_path  # type: ignore[attr-defined]
        self.children.append(proc)

        def is_ready() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"{args[0]} exited with {proc.returncode}:\n{log_path.read_text()}")
            return ready in log_path.read_text()

        wait_until(is_ready, 30, what=f"{args[0]} ready")
        return proc

    def scheduler(self, *extra: str) -> subprocess.Popen[str]:
        return self.start("scheduler", *extra, ready="ready: reply queue")

    def worker(self, *extra: str) -> subprocess.Popen[str]:
        return self.start("worker", *extra, ready=" ready: queues=")

    def stop_all(self) -> None:
        for proc in self.children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.children:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.args[3]} ---\n" + p.log_path.read_text()  # type: ignore[attr-defined]
            for p in self.children
        )
