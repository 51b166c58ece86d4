"""Logging: the long-running processes to stderr (or a rotated file), attempts to per-try files.

An attempt's lines, its ``print()`` output included, go to
``{base_log_folder}/{log_relpath(key)}`` with secrets masked; the process's own
handlers are put back when the attempt ends.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from logging.handlers import RotatingFileHandler
from pathlib import Path

from rabbitrun.keys import TaskInstanceKey, log_relpath
from rabbitrun.names import TASK_LOGGER
from rabbitrun.settings import Settings


def configure_process_logging(
    settings: Settings, log_file: str | None = None, filters: Sequence[logging.Filter] = ()
) -> None:
    """stderr, or a size-rotated file (``[logging] process_log_file`` / ``--log-file``); ``filters``
    (the masking of the configuration's secrets) apply to every record."""
    path = log_file or settings.logging.process_log_file
    handler: logging.Handler
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(
            path,
            maxBytes=settings.logging.process_log_max_bytes,
            backupCount=settings.logging.process_log_backup_count,
            encoding="utf-8",
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s - %(message)s"))
    for extra in filters:
        handler.addFilter(extra)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.logging.level)
    for noisy in ("aio_pika", "aiormq", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class _StreamToLogger:
    """sys.stdout/sys.stderr replacement so print() lands in the attempt's log."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        self._logger, self._level, self._buf = logger, level, ""

    def write(self, text: str) -> int:
        self._buf += text
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            self._logger.log(self._level, line)
        return len(text)

    def flush(self) -> None:
        if self._buf:
            self._logger.log(self._level, self._buf)
            self._buf = ""

    def isatty(self) -> bool:
        return False


@contextmanager
def attempt_log(settings: Settings, key: TaskInstanceKey, masker: logging.Filter) -> Iterator[Path]:
    """Send the task logger, root logger and print() to the per-try log file, secrets masked."""
    path = Path(settings.logging.base_log_folder) / log_relpath(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(settings.logging.log_format))
    handler.addFilter(masker)
    root = logging.getLogger()
    old_level, old_out, old_err, old_handlers = root.level, sys.stdout, sys.stderr, root.handlers[:]
    root.handlers[:] = [handler]  # the attempt's lines go to its file, not to the worker's stderr
    root.setLevel(settings.logging.level)
    task_logger = logging.getLogger(TASK_LOGGER)
    sys.stdout = _StreamToLogger(task_logger, logging.INFO)
    sys.stderr = _StreamToLogger(task_logger, logging.WARNING)
    try:
        yield path
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = old_out, old_err
        root.handlers[:] = old_handlers
        root.setLevel(old_level)
        handler.close()
