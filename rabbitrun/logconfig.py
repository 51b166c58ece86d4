"""Logging of the long-running processes (scheduler, worker, standalone) to stderr.

Task attempts log to their own per-try files (see :mod:`rabbitrun.runner`).
"""

from __future__ import annotations

import logging
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

from rabbitrun.settings import Settings


def configure_process_logging(settings: Settings, log_file: str | None = None) -> None:
    """stderr, or a size-rotated file (``[logging] process_log_file`` / ``--log-file``)."""
    path = log_file or settings.logging.process_log_file
    handler: logging.Handler
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(path, maxBytes=settings.logging.process_log_max_bytes,
                                      backupCount=settings.logging.process_log_backup_count, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s - %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.logging.level)
    for noisy in ("aio_pika", "aiormq", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
