"""`rabbitrun topology declare | export`."""

from __future__ import annotations

import click

from rabbitrun.cli.common import settings_from


@click.group()
def topology() -> None:
    """Exchanges, queues and bindings, from the topology file."""


@topology.command("declare")
@click.option("--scheduler-id", help="Also declare this scheduler's durable reply queue.")
@click.option("--file", "file_", help="Topology file (default: broker.topology_file or the packaged default).")
@click.pass_context
def declare(ctx: click.Context, scheduler_id: str | None, file_: str | None) -> None:
    """Declare everything idempotently; a conflict names the object and the argument."""
    from rabbitrun import client

    settings = settings_from(ctx, {"broker": {"topology_file": file_}})
    report = client.declare_topology(settings, scheduler_id=scheduler_id or settings.scheduler.scheduler_id)
    click.echo(str(report))


@topology.command("export")
@click.option("--vhost", default="/", show_default=True)
@click.option("--file", "file_", help="Topology file (default: broker.topology_file or the packaged default).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to a file.")
@click.pass_context
def export(ctx: click.Context, vhost: str, file_: str | None, output: str | None) -> None:
    """Print RabbitMQ definitions JSON for the management UI's "Import definitions"."""
    from rabbitrun import client

    text = client.export_topology(settings_from(ctx, {"broker": {"topology_file": file_}}), vhost=vhost)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)
