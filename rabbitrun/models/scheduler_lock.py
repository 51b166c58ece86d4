"""One scheduler per SQLite database: an exclusive ``flock`` on a lock file beside the DB.

SQLite has no row locks to share work with, so a second scheduler would queue
the same tasks as the first. The lock is held for the scheduler's lifetime
and released by the kernel when the process exits, however it exits, so a
crashed scheduler never leaves a stale lock behind. PostgreSQL needs no lock
here: schedulers share its work through row locks (see rabbitrun.scheduler.runs and .readiness).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

from rabbitrun.errors import SchedulerAlreadyRunning
from rabbitrun.settings import DatabaseSettings

SUFFIX = ".scheduler.lock"


def lock_path(db: DatabaseSettings) -> Path | None:
    """``<db file>.scheduler.lock`` for a SQLite file database; None when no lock is needed."""
    url = make_url(str(db.url))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(f"{url.database}{SUFFIX}")


def acquire(db: DatabaseSettings) -> IO[str] | None:
    """Take the lock, or raise SchedulerAlreadyRunning naming the holder; keep the returned file
    open for as long as this scheduler runs (closing it releases the lock)."""
    path = lock_path(db)
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = path.open("a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise SchedulerAlreadyRunning(
            f"another scheduler (pid {holder}) is already running against the SQLite database "
            f"{str(path)[: -len(SUFFIX)]}: SQLite supports one scheduler; use PostgreSQL to run "
            f"several (lock file {path})"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh
