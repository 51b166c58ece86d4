"""`rabbitrun pools set | list | delete`: slot pools that cap how many tasks run at once."""

from __future__ import annotations

import click

from rabbitrun.cli.common import settings_from


@click.group()
def pools() -> None:
    """Slot pools: a task with pool=NAME holds pool_slots of NAME while queued or running."""


@pools.command("set", context_settings={"ignore_unknown_options": True})  # SLOTS may be -1
@click.argument("name")
@click.argument("slots", type=click.IntRange(min=-1))
@click.argument("description_arg", metavar="[DESCRIPTION]", required=False)
@click.option("--description", help="Kept when not given.")
@click.pass_context
def set_(ctx: click.Context, name: str, slots: int, description_arg: str | None, description: str | None) -> None:
    """Create pool NAME with SLOTS slots (-1: unlimited), or resize it.

    DESCRIPTION may follow SLOTS, as in Airflow's ``pools set NAME SLOTS DESCRIPTION``."""
    from rabbitrun.client import pools as pool_admin
    from rabbitrun.errors import PoolError

    if description_arg is not None and description is not None and description_arg != description:
        raise PoolError(name, f"two descriptions given ({description_arg!r} and --description {description!r})")
    description = description if description is not None else description_arg

    info = pool_admin.set_pool(settings_from(ctx), name, slots, description)
    size = "unlimited" if info.slots < 0 else str(info.slots)
    click.echo(f"pool {info.pool} set: {size} slots ({info.occupied} in use)")


@pools.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """Pools with their slots, slots in use, queued and running task instances."""
    from rabbitrun.client import pools as pool_admin

    click.echo("pool\tslots\toccupied\tqueued\trunning\tdescription")
    for p in pool_admin.list_pools(settings_from(ctx)):
        click.echo(f"{p.pool}\t{p.slots}\t{p.occupied}\t{p.queued}\t{p.running}\t{p.description or ''}")


@pools.command("delete")
@click.argument("name")
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    """Delete pool NAME; tasks naming it fail when they become ready (the default pool stays)."""
    from rabbitrun.client import pools as pool_admin

    pool_admin.delete_pool(settings_from(ctx), name)
    click.echo(f"pool {name} deleted")
