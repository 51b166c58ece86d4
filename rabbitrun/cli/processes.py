"""`rabbitrun scheduler | worker | standalone`: the long-running processes."""

from __future__ import annotations

import click

from rabbitrun.cli.common import settings_from


@click.command()
@click.option("--scheduler-id", help="Names this scheduler's durable reply queue (default: host name).")
@click.pass_context
def scheduler(ctx: click.Context, scheduler_id: str | None) -> None:
    """Run the scheduler: start runs, queue ready tasks, react to results."""
    from rabbitrun.logs import configure_process_logging
    from rabbitrun.scheduler.loop import run_scheduler
    from rabbitrun.secrets import settings_masker

    settings = settings_from(ctx, {"scheduler": {"scheduler_id": scheduler_id}})
    configure_process_logging(settings, filters=[settings_masker(settings).filter()])
    ctx.exit(run_scheduler(settings))


@click.command()
@click.option("-q", "--queues", help="Comma-separated logical queues to consume (default: default).")
@click.option("-c", "--concurrency", type=int, help="Task processes at once; also the prefetch count.")
@click.option("-n", "--hostname", help="Worker name shown in the management UI (default: worker@<host>).")
@click.option("--autoscale", help="MAX,MIN: grow and shrink task processes with the backlog (like Celery).")
@click.option("--log-file", help="Write the worker's log here, rotated by [logging] process_log_max_bytes.")
@click.pass_context
def worker(
    ctx: click.Context,
    queues: str | None,
    concurrency: int | None,
    hostname: str | None,
    autoscale: str | None,
    log_file: str | None,
) -> None:
    """Run a worker: consume task queues and fork one process per task."""
    from rabbitrun.logs import configure_process_logging
    from rabbitrun.secrets import settings_masker
    from rabbitrun.worker.main import run_worker

    settings = settings_from(
        ctx, {"worker": {"queues": queues, "concurrency": concurrency, "hostname": hostname, "autoscale": autoscale}}
    )
    configure_process_logging(settings, log_file, [settings_masker(settings).filter()])
    ctx.exit(run_worker(settings))


@click.command()
@click.option("-c", "--concurrency", type=int, help="Worker concurrency.")
@click.pass_context
def standalone(ctx: click.Context, concurrency: int | None) -> None:
    """db init + topology + a scheduler + one worker on every queue, for a laptop."""
    from rabbitrun import client
    from rabbitrun.client.standalone import run_standalone
    from rabbitrun.logs import configure_process_logging
    from rabbitrun.secrets import settings_masker

    settings = settings_from(ctx, {"worker": {"concurrency": concurrency}})
    configure_process_logging(settings, filters=[settings_masker(settings).filter()])
    client.db_init(settings)
    ctx.exit(run_standalone(settings, concurrency))
