"""`rabbitrun status | health | events` and `rabbitrun broker check`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import click

from rabbitrun.cli.common import settings_from
from rabbitrun.errors import EXIT_UNAVAILABLE


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Queues (depth, unacked, consumers, rates), live workers and task instance counts."""
    from rabbitrun.client import status as status_client

    result = asyncio.run(status_client.status(settings_from(ctx)))
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    click.echo(f"management API: {result['management_api']}")
    click.echo(f"{'queue':<44} {'ready':>7} {'unacked':>8} {'consumers':>9} {'publish/s':>10} {'deliver/s':>10}")
    for q in result["queues"]:
        if q.get("missing"):
            click.echo(f"{q['name']:<44} missing: run `rabbitrun topology declare`")
            continue
        click.echo(
            f"{q['name']:<44} {q['ready']:>7} {_n(q['unacked']):>8} {q['consumers']:>9} "
            f"{_n(q['publish_rate']):>10} {_n(q['deliver_rate']):>10}"
        )
    click.echo(f"\nworkers online: {len(result['workers'])}")
    for host, beat in sorted(result["workers"].items()):
        seen = datetime.fromtimestamp(beat["last_heartbeat_at"], UTC).isoformat(timespec="seconds")
        click.echo(
            f"  {host:<30} last heartbeat {seen}  active {beat.get('active')}/{beat.get('concurrency')}  "
            f"queues {','.join(beat.get('queues', []))}"
        )
    counts = result["task_instances"]
    click.echo(
        "\ntask instances: "
        + (counts.get("error") or ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
    )


def _n(value: Any) -> str:
    return "-" if value is None else (f"{value:.1f}" if isinstance(value, float) else str(value))


@click.group()
def broker() -> None:
    """The RabbitMQ side."""


@broker.command("check")
@click.pass_context
def broker_check(ctx: click.Context) -> None:
    """Exit non-zero unless the broker is reachable and the topology is declared."""
    from rabbitrun.client import status as status_client

    problems = asyncio.run(status_client.broker_check(settings_from(ctx)))
    for problem in problems:
        click.echo(f"unhealthy: {problem}", err=True)
    if problems:
        ctx.exit(EXIT_UNAVAILABLE)
    click.echo("ok: broker reachable, topology declared")


@click.command()
@click.pass_context
def health(ctx: click.Context) -> None:
    """Broker check + DB check, for systemd/Kubernetes probes (non-zero with a reason)."""
    from rabbitrun import client
    from rabbitrun.client import status as status_client
    from rabbitrun.errors import RabbitrunError

    settings = settings_from(ctx)
    problems = []
    try:
        problems += asyncio.run(status_client.broker_check(settings))
    except RabbitrunError as exc:
        problems.append(str(exc))
    try:
        client.db_check(settings)
    except RabbitrunError as exc:
        problems.append(str(exc))
    for problem in problems:
        click.echo(f"unhealthy: {problem}", err=True)
    if problems:
        ctx.exit(EXIT_UNAVAILABLE)
    click.echo("ok: broker and database healthy")


@click.command()
@click.option("--dag", "dag_id", help="Only task events of this DAG.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--duration", type=float, help="Stop after this many seconds (default: until Ctrl-C).")
@click.option("--heartbeats", is_flag=True, help="Also show worker heartbeats.")
@click.pass_context
def events(ctx: click.Context, dag_id: str | None, as_json: bool, duration: float | None, heartbeats: bool) -> None:
    """Tail task and worker events live from the events exchange."""
    from rabbitrun.client import control as control_client
    from rabbitrun.names import task_events_pattern
    from rabbitrun.protocol import Event

    patterns = [task_events_pattern(dag_id)] + (["worker.#"] if heartbeats else ["worker.*.worker_offline"])

    def show(key: str, message: Event) -> None:
        event = message.to_wire()
        if as_json:
            click.echo(json.dumps({"routing_key": key, **event}, default=str))
        else:
            what = " ".join(f"{k}={event[k]}" for k in ("run_id", "try_number", "state", "error") if event.get(k))
            click.echo(
                f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {key} {event.get('hostname')} {what}".rstrip()
            )

    try:
        asyncio.run(control_client.tail(settings_from(ctx), patterns, show, duration_s=duration))
    except KeyboardInterrupt:
        ctx.exit(0)
