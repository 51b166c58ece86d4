"""What every command module shares: settings from the CLI flags, JSON files in and out.

Kept apart from :mod:`rabbitrun.cli.main` so that the command modules never import the
group that registers them (no import circle).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from rabbitrun.settings import Settings, load_settings


def settings_from(ctx: click.Context, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Settings:
    """Load the one settings object, with CLI flags as the highest layer."""
    clean = {s: {k: v for k, v in kv.items() if v is not None} for s, kv in (overrides or {}).items()}
    return load_settings(overrides={s: kv for s, kv in clean.items() if kv})


def read_json_object(path: str) -> dict[str, Any]:
    """A JSON object from a file given on the command line, or a ConfigError naming the file."""
    import json

    from rabbitrun.errors import ConfigError

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not a readable JSON file: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data


def write_json(path: str, data: object) -> None:
    import json

    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
