"""`rabbitrun inspect ...` and `rabbitrun control ...`: ask and steer live workers over AMQP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from rabbitrun.cli.common import settings_from

_common = [
    click.option("-d", "--destination", help="Only this worker (its --hostname)."),
    click.option(
        "-t", "--timeout", "timeout_s", type=float, default=2.0, show_default=True, help="Seconds to wait for replies."
    ),
    click.option("--json", "as_json", is_flag=True, help="Print the replies as JSON."),
]


def _options(func: Any) -> Any:
    for option in reversed(_common):
        func = option(func)
    return func


def _ask(
    ctx: click.Context, command: str, args: dict[str, Any], destination: str | None, timeout_s: float, as_json: bool
) -> None:
    from rabbitrun.client import control as control_client
    from rabbitrun.errors import EXIT_FAILURE

    replies = asyncio.run(
        control_client.control(settings_from(ctx), command, args, destination=destination, timeout_s=timeout_s)
    )
    if as_json:
        click.echo(json.dumps([reply.to_wire() for reply in replies], indent=2, default=str))
    for reply in [] if as_json else replies:
        click.echo(f"-> {reply.hostname}: {'OK' if reply.ok else 'ERROR'}")
        data = reply.data if reply.ok else reply.error
        text = json.dumps(data, indent=4, default=str) if not isinstance(data, str) else data
        click.echo("\n".join("    " + line for line in text.splitlines()))
    if not replies:
        who = f"worker {destination!r}" if destination else "worker"
        click.echo(f"Error: no {who} answered within {timeout_s:g}s", err=True)
        ctx.exit(EXIT_FAILURE)


@click.group()
def inspect() -> None:
    """Ask live workers (like `celery inspect`)."""


def _inspect_command(name: str, command: str, help_text: str) -> None:
    @inspect.command(name, help=help_text)
    @_options
    @click.pass_context
    def cmd(ctx: click.Context, destination: str | None, timeout_s: float, as_json: bool) -> None:
        _ask(ctx, command, {}, destination, timeout_s, as_json)


for _name, _command, _help in [
    ("ping", "ping", "Which workers are alive."),
    ("active", "active", "Attempts running now, with their task process pids."),
    ("reserved", "reserved", "Deliveries received and waiting for a free slot."),
    ("stats", "stats", "Outcome counts, concurrency, prefetch, pids, uptime, broker, RSS."),
    ("active-queues", "active_queues", "Queues each worker consumes."),
    ("registered", "registered", "DAGs known to the workers' metadata DB."),
]:
    _inspect_command(_name, _command, _help)


@click.group()
def control() -> None:
    """Steer live workers (like `celery control`)."""


@control.command("shutdown")
@_options
@click.pass_context
def shutdown(ctx: click.Context, destination: str | None, timeout_s: float, as_json: bool) -> None:
    """Warm shutdown, as SIGTERM."""
    _ask(ctx, "shutdown", {}, destination, timeout_s, as_json)


@control.command("add-consumer")
@click.argument("queue")
@_options
@click.pass_context
def add_consumer(ctx: click.Context, queue: str, destination: str | None, timeout_s: float, as_json: bool) -> None:
    """Start consuming QUEUE."""
    _ask(ctx, "add_consumer", {"queue": queue}, destination, timeout_s, as_json)


@control.command("cancel-consumer")
@click.argument("queue")
@_options
@click.pass_context
def cancel_consumer(ctx: click.Context, queue: str, destination: str | None, timeout_s: float, as_json: bool) -> None:
    """Stop consuming QUEUE (running tasks finish)."""
    _ask(ctx, "cancel_consumer", {"queue": queue}, destination, timeout_s, as_json)


@control.command("pool-grow")
@click.argument("n", type=int, default=1)
@_options
@click.pass_context
def pool_grow(ctx: click.Context, n: int, destination: str | None, timeout_s: float, as_json: bool) -> None:
    """N more task process slots (and prefetch)."""
    _ask(ctx, "pool_grow", {"n": n}, destination, timeout_s, as_json)


@control.command("pool-shrink")
@click.argument("n", type=int, default=1)
@_options
@click.pass_context
def pool_shrink(ctx: click.Context, n: int, destination: str | None, timeout_s: float, as_json: bool) -> None:
    """N fewer task process slots (running tasks finish)."""
    _ask(ctx, "pool_shrink", {"n": n}, destination, timeout_s, as_json)
