"""`rabbitrun tasks run | clear | set-state | states | logs | list | state`."""

from __future__ import annotations

import click

from rabbitrun.cli.common import settings_from
from rabbitrun.errors import EXIT_FAILURE


@click.group()
def tasks() -> None:
    """Task instances: run one attempt, show states, read logs."""


@tasks.command("run")
@click.argument("dag_id")
@click.argument("task_id")
@click.argument("run_id")
@click.option("--map-index", type=int, default=-1, show_default=True)
@click.option("--try-number", type=int, help="Claim this queued try (default: start a new try).")
@click.pass_context
def run(ctx: click.Context, dag_id: str, task_id: str, run_id: str, map_index: int, try_number: int | None) -> None:
    """Run one attempt in this process, the same code path a worker's task child uses."""
    from rabbitrun import client
    from rabbitrun.settings import default_hostname

    outcome = client.run_task(
        settings_from(ctx),
        dag_id,
        task_id,
        run_id,
        map_index=map_index,
        try_number=try_number,
        hostname=default_hostname(),
    )
    click.echo(
        f"{dag_id}.{task_id} {run_id} try={outcome.key.try_number}: {outcome.state}"
        + (f" ({outcome.error})" if outcome.error else "")
    )
    if outcome.exit_code:
        ctx.exit(EXIT_FAILURE)


@tasks.command("clear")
@click.argument("dag_id")
@click.option("-t", "--task-regex", default=".*", show_default=True, help="Tasks whose id matches.")
@click.option("--run-id", help="Only this run (default: all runs).")
@click.option("-d", "--downstream", is_flag=True, help="Also clear their downstream tasks.")
@click.option("-s", "--start-date", help="Only runs with a logical date at or after this ISO date.")
@click.option("-e", "--end-date", help="Only runs with a logical date at or before this ISO date.")
@click.option("-y", "--yes", is_flag=True, help="Accepted for Airflow's spelling: clear never asks.")
@click.option("--dry-run", is_flag=True)
@click.pass_context
def clear(
    ctx: click.Context,
    dag_id: str,
    task_regex: str,
    run_id: str | None,
    downstream: bool,
    start_date: str | None,
    end_date: str | None,
    yes: bool,
    dry_run: bool,
) -> None:
    """Re-run finished task instances: they get a new try and replace their XComs."""
    from rabbitrun.client.lookup import parse_date
    from rabbitrun.client.runs import clear_following_markers

    cleared = clear_following_markers(
        settings_from(ctx),
        dag_id,
        task_regex=task_regex,
        run_id=run_id,
        downstream=downstream,
        dry_run=dry_run,
        start=parse_date(start_date) if start_date else None,
        end=parse_date(end_date) if end_date else None,
    )
    for dag, run, task in cleared:  # an ExternalTaskMarker's clear reaches other DAGs
        click.echo(f"{'would clear' if dry_run else 'cleared'} {dag}.{task} run={run}")
    click.echo(f"{len(cleared)} task instance(s)")


@tasks.command("set-state")
@click.argument("dag_id")
@click.argument("task_id")
@click.argument("run_id")
@click.argument("state", type=click.Choice(["success", "failed"]))
@click.option("--map-index", type=int, default=-1, show_default=True)
@click.pass_context
def set_state(ctx: click.Context, dag_id: str, task_id: str, run_id: str, state: str, map_index: int) -> None:
    """Mark a task instance success or failed (Airflow's mark success/failed); downstream continues."""
    from rabbitrun import client

    marked = client.set_task_state(settings_from(ctx), dag_id, task_id, run_id, state, map_index=map_index)
    click.echo(f"{dag_id}.{task_id} run={run_id}: {marked.previous} -> {state}")
    if marked.reset_downstream:
        click.echo(f"downstream to evaluate again: {', '.join(marked.reset_downstream)}")


@tasks.command("states")
@click.argument("dag_id")
@click.argument("run_id")
@click.pass_context
def states(ctx: click.Context, dag_id: str, run_id: str) -> None:
    """State of every task instance of a run, with try number, times, host and reason."""
    from rabbitrun import client

    rows = client.task_states(settings_from(ctx), dag_id, run_id)
    click.echo(
        f"{'task_id':<24} {'map':>4} {'state':<17} {'try':>3} {'start':<26} {'end':<26} "
        f"{'duration':>9} {'hostname':<20} reason"
    )
    for r in rows:
        start = r.start_date.isoformat(timespec="milliseconds") if r.start_date else "-"
        end = r.end_date.isoformat(timespec="milliseconds") if r.end_date else "-"
        dur = f"{r.duration:.3f}" if r.duration is not None else "-"
        click.echo(
            f"{r.task_id:<24} {r.map_index:>4} {r.state:<17} {r.try_number:>3} {start:<26} {end:<26} "
            f"{dur:>9} {r.hostname or '-':<20} {r.reason or ''}"
        )


@tasks.command("logs")
@click.argument("dag_id")
@click.argument("task_id")
@click.argument("run_id")
@click.option("--try", "try_number", type=int, help="Try number (default: the latest).")
@click.option("--map-index", type=int, default=-1)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines of a running attempt until it ends.")
@click.pass_context
def logs(
    ctx: click.Context, dag_id: str, task_id: str, run_id: str, try_number: int | None, map_index: int, follow: bool
) -> None:
    """Print the log of one attempt: the local file, else asked from the worker that ran it.

    With --follow, print its live lines until it ends (at once for an attempt that already ended)."""
    import asyncio

    from rabbitrun import client
    from rabbitrun.errors import LogNotFound

    settings = settings_from(ctx)
    key = client.attempt_key(settings, dag_id, task_id, run_id, try_number=try_number, map_index=map_index)
    if follow:
        final = asyncio.run(
            client.follow(
                settings,
                key,
                lambda text: click.echo(text, nl=False),
                ended=lambda: client.attempt_ended(settings, key),
            )
        )
        click.echo(f"*** attempt ended: {final}", err=True)
        return
    found = asyncio.run(client.read_attempt_log(settings, key))
    if found is None:
        raise LogNotFound(f"no log for {key} at {client.log_path(settings, key)}, nor on a live worker", key=str(key))
    click.echo(f"*** {found[0]}", err=True)
    click.echo(found[1], nl=False)


@tasks.command("list")
@click.argument("dag_id")
@click.option("-t", "--tree", is_flag=True, help="Each root task with its downstream tasks indented.")
@click.pass_context
def list_(ctx: click.Context, dag_id: str, tree: bool) -> None:
    """The task ids of DAG_ID, sorted (Airflow's ``tasks list``)."""
    from rabbitrun import client
    from rabbitrun.client.lookup import task_tree

    dag = client.dagbag(settings_from(ctx)).get_dag(dag_id)
    if not tree:
        for task_id in sorted(dag.task_ids):
            click.echo(task_id)
        return
    for depth, task_id in task_tree(dag):
        click.echo("    " * depth + task_id)


@tasks.command("state")
@click.argument("dag_id")
@click.argument("task_id")
@click.argument("run")
@click.option("--map-index", type=int, default=-1, show_default=True)
@click.pass_context
def state(ctx: click.Context, dag_id: str, task_id: str, run: str, map_index: int) -> None:
    """The state of one task instance of run RUN: a run id, or a logical date as in Airflow."""
    from rabbitrun.client.lookup import task_state

    click.echo(task_state(settings_from(ctx), dag_id, task_id, run, map_index))


@tasks.command("test")
@click.argument("dag_id")
@click.argument("task_id")
@click.argument("logical_date", required=False)
@click.pass_context
def test(ctx: click.Context, dag_id: str, task_id: str, logical_date: str | None) -> None:
    """Run one task in this process, its upstream ignored, leaving no state behind (Airflow's ``tasks test``).

    LOGICAL_DATE (ISO) is the logical date its context sees; default now. Its log is printed too."""
    from rabbitrun import client
    from rabbitrun.client.lookup import parse_date
    from rabbitrun.scheduler.inprocess import test_task_in_process

    settings = settings_from(ctx)
    when = parse_date(logical_date) if logical_date else None
    outcome = test_task_in_process(settings, dag_id, task_id, logical_date=when)
    log = client.log_path(settings, outcome.key)
    if log.is_file():
        click.echo(log.read_text(encoding="utf-8", errors="replace"), nl=False)
    click.echo(f"{dag_id}.{task_id}: {outcome.state}" + (f" ({outcome.error})" if outcome.error else ""))
    if outcome.exit_code:
        ctx.exit(EXIT_FAILURE)
