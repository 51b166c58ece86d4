"""Airflow arguments rabbitrun accepts but does not act on: the warn-once log, the removed-feature
errors (SLA, SubDAG) and the "did you mean" for a misspelt argument.

Airflow DAG files pass many arguments that only matter to Airflow's own machinery (e-mail alerts,
executor_config, UI colours). Refusing them would make ports fail for nothing, dropping them
silently would hide that they do nothing here: each is stored and logged once per process and
name, the first time a DAG file gives it a value other than its default.
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Iterable

from rabbitrun.errors import DagDefinitionError

__all__ = ["closest_name_error", "removed_sla", "warn_unimplemented"]

_log = logging.getLogger("rabbitrun.authoring")

# once per process and name: a DAG file parsed every refresh must not flood the scheduler's log
_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_unimplemented(owner: str, name: str, why: str) -> None:
    """Log once that ``name`` is accepted for Airflow compatibility and has no effect here."""
    key = f"{owner}.{name}"
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    _log.warning(
        "%s argument %r is accepted for Airflow compatibility but has no effect in rabbitrun: %s", owner, name, why
    )


def removed_sla(owner: str, name: str) -> DagDefinitionError:
    """``sla``/``sla_miss_callback`` were removed in Airflow 3: say what replaces them."""
    return DagDefinitionError(
        f"{owner}: {name!r} is not supported (SLAs were removed in Airflow 3); use execution_timeout or "
        "dagrun_timeout with on_failure_callback, or a task that checks the deadline and alerts"
    )


def closest_name_error(owner: str, unknown: Iterable[str], valid: Iterable[str]) -> DagDefinitionError:
    """A clear error for misspelt keyword arguments, naming the closest valid one for each."""
    choices = sorted(set(valid))
    parts = []
    for name in sorted(unknown):
        near = difflib.get_close_matches(name, choices, n=1)
        parts.append(f"{name!r} (did you mean {near[0]!r}?)" if near else repr(name))
    return DagDefinitionError(f"{owner} got unknown argument(s): {', '.join(parts)}")
