"""`rabbitrun config show`."""

from __future__ import annotations

import json

import click

from rabbitrun.cli.common import settings_from


@click.group()
def config() -> None:
    """Effective configuration."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML-like text.")
@click.pass_context
def show(ctx: click.Context, as_json: bool) -> None:
    """Print effective settings (defaults < rabbitrun.toml < environment), secrets masked."""
    settings = settings_from(ctx)
    values = settings.as_dict(masked=True)
    if as_json:
        click.echo(json.dumps({"home": str(settings.home), **values}, indent=2))
        return
    click.echo(f"# RABBITRUN_HOME = {settings.home}")
    for section, entries in values.items():
        click.echo(f"\n[{section}]")
        for key, value in entries.items():
            click.echo(f"{key} = {json.dumps(value)}")
