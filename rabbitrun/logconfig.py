"""Logging of the long-running processes (scheduler, worker, standalone) to stderr.

Task attempts log to their own per-try files (see :mod:`rabbitrun.runner`).
"""

from __future__ import annotations

import logging
import sys

from rabbitrun.settings import Settings


def configure_process_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s - %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.logging.level)
    for noisy in ("aio_pika", "aiormq", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
