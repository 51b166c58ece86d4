"""`rabbitrun dags list | trigger`."""

from __future__ import annotations

import json
import sys

import click

from rabbitrun.cli.common import settings_from
from rabbitrun.errors import EXIT_FAILURE, EXIT_OK, DagError


@click.group()
def dags() -> None:
    """DAGs in the dags folder, and their runs."""


_OUTPUT = click.option(
    "-o", "--output", type=click.Choice(["table", "json", "yaml", "plain"]), help="Airflow's output formats."
)


@dags.command("list")
@_OUTPUT
@click.pass_context
def list_(ctx: click.Context, output: str | None) -> None:
    """List DAGs; import errors are reported (file, line, exception) below the DAGs that loaded."""
    from rabbitrun import client
    from rabbitrun.client.lookup import render

    listing = client.list_dags(settings_from(ctx))
    if output:
        rows = [{"dag_id": d, "fileloc": ref, "schedule": sched} for d, ref, sched in listing.dags]
        click.echo(render(rows, output, ["dag_id", "fileloc", "schedule"]))
    else:
        click.echo(f"{'dag_id':<32} {'file':<40} schedule")
        for dag_id, ref, schedule in listing.dags:
            click.echo(f"{dag_id:<32} {ref:<40} {schedule}")
    if listing.import_errors:  # on stderr, so `-o json` output stays parseable
        click.echo(f"\n{len(listing.import_errors)} DAG file(s) failed to import:", err=True)
        for ref, line, exception in listing.import_errors:
            click.echo(f"  {ref}:{line if line else '?'}: {exception}", err=True)


@dags.command("list-import-errors")
@_OUTPUT
@click.pass_context
def list_import_errors(ctx: click.Context, output: str | None) -> None:
    """DAG files that failed to import: file, line and exception (Airflow's command of that name)."""
    from rabbitrun import client
    from rabbitrun.client.lookup import render

    errors = client.list_dags(settings_from(ctx)).import_errors
    rows = [{"filepath": ref, "line": line, "error": exc} for ref, line, exc in errors]
    if output:
        click.echo(render(rows, output, ["filepath", "line", "error"]))
        return
    if not errors:
        click.echo("No data found")  # Airflow's words for an empty listing
    for ref, line, exception in errors:
        click.echo(f"{ref}:{line if line else '?'}: {exception}")


@dags.command("state")
@click.argument("dag_id")
@click.argument("run")
@click.pass_context
def state(ctx: click.Context, dag_id: str, run: str) -> None:
    """The state of DAG_ID's run RUN: a run id, or a logical date as in Airflow."""
    from rabbitrun.client.lookup import find_run

    click.echo(find_run(settings_from(ctx), dag_id, run).state)


@dags.command("trigger")
@click.argument("dag_id")
@click.option("-r", "--run-id", help="Run id (default manual__<timestamp>).")
@click.option("-c", "--conf", help="JSON object passed to the run as dag_run.conf / params.")
@click.option("-e", "--logical-date", "--exec-date", "logical_date", help="ISO date: the run's logical date.")
@click.option("--wait", is_flag=True, help="Show progress until the run ends; exit 1 if it fails.")
@click.option("--timeout", type=float, help="With --wait: give up after this many seconds.")
@click.pass_context
def trigger(
    ctx: click.Context,
    dag_id: str,
    run_id: str | None,
    conf: str | None,
    logical_date: str | None,
    wait: bool,
    timeout: float | None,
) -> None:
    """Create a DAG run for the scheduler to execute."""
    from rabbitrun import client
    from rabbitrun.client.lookup import parse_date

    try:
        conf_obj = json.loads(conf) if conf else {}
    except json.JSONDecodeError as exc:
        raise DagError(f"--conf is not valid JSON: {exc}") from exc
    if not isinstance(conf_obj, dict):
        raise DagError("--conf must be a JSON object")
    settings = settings_from(ctx)
    when = parse_date(logical_date) if logical_date else None
    run_id = client.trigger(settings, dag_id, run_id=run_id, conf=conf_obj, logical_date=when)
    click.echo(f"triggered {dag_id} run_id={run_id}")
    if not wait:
        return
    final = client.wait_for_run(settings, dag_id, run_id, on_progress=_show_progress(dag_id), timeout_s=timeout)
    if sys.stderr.isatty():
        click.echo("", err=True)
    click.echo(f"{dag_id} {run_id}: {final.state}")
    ctx.exit(EXIT_OK if final.state == "success" else EXIT_FAILURE)


def _show_progress(dag_id: str):  # type: ignore[no-untyped-def]
    tty = sys.stderr.isatty()

    def show(p):  # type: ignore[no-untyped-def]
        line = (
            f"{dag_id}: {p.state:<8} {p.done}/{p.total} done, {p.queued} queued, {p.running} running, "
            f"{p.waiting} waiting, {p.failed} failed"
        )
        click.echo(f"\r{line:<90}" if tty else line, err=True, nl=not tty)

    return show


@dags.command("pause")
@click.argument("dag_id")
@click.pass_context
def pause(ctx: click.Context, dag_id: str) -> None:
    """Start no new runs of DAG_ID (queued runs wait) until unpaused."""
    from rabbitrun import client

    client.set_paused(settings_from(ctx), dag_id, True)
    click.echo(f"{dag_id} paused")


@dags.command("unpause")
@click.argument("dag_id")
@click.pass_context
def unpause(ctx: click.Context, dag_id: str) -> None:
    from rabbitrun import client

    client.set_paused(settings_from(ctx), dag_id, False)
    click.echo(f"{dag_id} unpaused")


@dags.command("delete")
@click.argument("dag_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def delete(ctx: click.Context, dag_id: str, yes: bool) -> None:
    """Delete a DAG's runs, task instances and XComs from the metadata DB (not its file)."""
    from rabbitrun import client

    if not yes:
        click.confirm(f"Delete all metadata of {dag_id}?", abort=True)
    click.echo(f"deleted {client.delete_dag(settings_from(ctx), dag_id)} run(s) of {dag_id}")


@dags.command("set-state")
@click.argument("dag_id")
@click.argument("run_id")
@click.argument("state", type=click.Choice(["success", "failed"]))
@click.pass_context
def set_state(ctx: click.Context, dag_id: str, run_id: str, state: str) -> None:
    """Mark a DAG run success or failed with its unfinished tasks (Airflow's mark success/failed)."""
    from rabbitrun import client

    marked = client.set_run_state(settings_from(ctx), dag_id, run_id, state)
    click.echo(f"{dag_id} run={run_id}: {marked.previous} -> {state}")


@dags.command("test")
@click.argument("dag_id")
@click.argument("logical_date", required=False)
@click.option("-c", "--conf", help="JSON object for dag_run.conf / params.")
@click.pass_context
def test(ctx: click.Context, dag_id: str, logical_date: str | None, conf: str | None) -> None:
    """Run the whole DAG in this process, without broker or workers, for debugging.

    LOGICAL_DATE (ISO, as Airflow's ``dags test``) is the run's logical date; default now."""
    from rabbitrun.client.lookup import parse_date
    from rabbitrun.scheduler.inprocess import run_dag_in_process

    when = parse_date(logical_date) if logical_date else None
    run_id, rows = run_dag_in_process(
        settings_from(ctx), dag_id, conf=json.loads(conf) if conf else None, logical_date=when
    )
    for r in rows:
        name = f"{r.task_id}[{r.map_index}]" if r.map_index >= 0 else r.task_id  # mapped instances apart
        click.echo(f"{name:<24} {r.state:<16} try={r.try_number} {r.reason or ''}")
    final = "success" if all(r.state in ("success", "skipped") for r in rows) else "failed"
    click.echo(f"{dag_id} {run_id}: {final}")
    ctx.exit(EXIT_OK if final == "success" else EXIT_FAILURE)


@dags.command("backfill")
@click.argument("dag_id")
@click.option("-s", "--start-date", required=True, help="ISO date/time (UTC if naive).")
@click.option("-e", "--end-date", required=True, help="ISO date/time (UTC if naive).")
@click.option("--wait", is_flag=True, help="Show progress until every backfill run ends.")
@click.pass_context
def backfill(ctx: click.Context, dag_id: str, start_date: str, end_date: str, wait: bool) -> None:
    """Create (and with --wait, follow) one run per schedule interval in [start, end]."""
    from datetime import UTC, datetime

    from rabbitrun import client

    def parse(text: str) -> datetime:
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise DagError(f"{text!r} is not an ISO date") from exc
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    settings = settings_from(ctx)
    run_ids = client.backfill(settings, dag_id, parse(start_date), parse(end_date))
    click.echo(f"{len(run_ids)} backfill run(s) of {dag_id}")
    failed = 0
    for number, run_id in enumerate(run_ids, 1):
        if wait:
            final = client.wait_for_run(settings, dag_id, run_id, on_progress=lambda p: None)
            failed += final.state != "success"
            click.echo(f"[{number}/{len(run_ids)}] {run_id}: {final.state}")
    ctx.exit(EXIT_FAILURE if failed else EXIT_OK)
