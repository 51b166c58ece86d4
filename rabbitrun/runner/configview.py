"""``context["conf"]``: rabbitrun's settings as Airflow's configuration object shows them to a task.

``conf.get("core", "dags_folder")``, ``conf.getint("worker", "concurrency")``, ``conf.getboolean(...)``:
values come back as strings, as Airflow's ``AirflowConfigParser`` gives them, and unknown keys raise
unless a ``fallback`` is given. Secrets are never readable here (the DB and broker URLs, the Fernet
key): a task process holds them blanked anyway (``settings.for_task_process``), and an in-process run
must not show more than a worker's task would.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rabbitrun.errors import ConfigError
from rabbitrun.settings import SECTIONS, Secret, Settings

__all__ = ["TaskConfig"]

_MISSING: Any = object()
_TRUE, _FALSE = {"true", "t", "1", "yes", "on"}, {"false", "f", "0", "no", "off", ""}


class TaskConfig:
    """Read-only, secret-free view of the settings, spelled like Airflow's ``conf``."""

    def __init__(self, settings: Settings) -> None:
        self._values: dict[str, dict[str, Any]] = {}
        for section in SECTIONS:
            values = getattr(settings, section)
            self._values[section] = {
                f.name: getattr(values, f.name)
                for f in dataclasses.fields(values)
                if not isinstance(getattr(values, f.name), Secret)
            }
        self._values.setdefault("core", {})["rabbitrun_home"] = str(settings.home)

    def __repr__(self) -> str:
        return f"<TaskConfig sections={sorted(self._values)}>"

    def has_option(self, section: str, key: str) -> bool:
        return key.lower() in self._values.get(section.lower(), {})

    def get(self, section: str, key: str, fallback: Any = _MISSING, **_: Any) -> Any:
        """The value as a string (lists joined by commas); ``fallback`` when the key is unknown."""
        value = self._values.get(section.lower(), {}).get(key.lower(), _MISSING)
        if value is _MISSING:
            if fallback is not _MISSING:
                return fallback
            raise ConfigError(f"section/key [{section}/{key}] not found in config (secrets are not readable by a task)")
        if isinstance(value, bool):
            return str(value)
        if isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        return str(value)

    def getboolean(self, section: str, key: str, fallback: Any = _MISSING, **_: Any) -> bool:
        text = self.get(section, key, fallback=fallback)
        if isinstance(text, bool):
            return text
        lowered = str(text).strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"[{section}/{key}] is {text!r}, not a boolean")

    def getint(self, section: str, key: str, fallback: Any = _MISSING, **_: Any) -> int:
        return int(float(self.get(section, key, fallback=fallback)))

    def getfloat(self, section: str, key: str, fallback: Any = _MISSING, **_: Any) -> float:
        return float(self.get(section, key, fallback=fallback))

    def getsection(self, section: str) -> dict[str, str] | None:
        """Every readable key of a section, as strings; None for an unknown section."""
        values = self._values.get(section.lower())
        return None if values is None else {k: self.get(section, k) for k in values}

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {s: self.getsection(s) or {} for s in self._values}
