"""The long-running processes' own log: stderr or a size-rotated file."""

from __future__ import annotations


def test_process_log_rotates_by_size(tmp_path: object) -> None:
    import logging
    from pathlib import Path

    from rabbitrun.logs import configure_process_logging
    from rabbitrun.settings import load_settings

    folder = Path(str(tmp_path))
    settings = load_settings(
        home=folder,
        read_file=False,
        env={"RABBITRUN__LOGGING__PROCESS_LOG_MAX_BYTES": "2000", "RABBITRUN__LOGGING__PROCESS_LOG_BACKUP_COUNT": "2"},
    )
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_process_logging(settings, str(folder / "worker.log"))
        for i in range(200):
            logging.getLogger("rabbitrun.worker").info("line %s of the worker's own log", i)
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    assert sorted(p.name for p in folder.glob("worker.log*")) == ["worker.log", "worker.log.1", "worker.log.2"]
