"""The broker topology from the operator's side: declaring it on RabbitMQ, exporting it as
management-API definitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rabbitrun.settings import Settings


def _topology(settings: Settings) -> Any:
    from rabbitrun.broker.topology import load_topology

    path = Path(settings.broker.topology_file) if settings.broker.topology_file else None
    return load_topology(path, settings.broker)


def declare_topology(settings: Settings, *, scheduler_id: str | None = None) -> Any:
    import asyncio

    from rabbitrun.broker.connection import connect
    from rabbitrun.broker.topology import declare_topology as declare
    from rabbitrun.names import Names

    async def main() -> Any:
        connection = await connect(settings.broker, "cli", "topology")
        try:
            return await declare(
                connection, _topology(settings), Names(settings.broker.prefix), scheduler_id=scheduler_id
            )
        finally:
            await connection.close()

    return asyncio.run(main())


def export_topology(settings: Settings, *, vhost: str = "/", scheduler_ids: tuple[str, ...] = ()) -> str:
    from rabbitrun.broker.topology import export_definitions
    from rabbitrun.names import Names

    defs = export_definitions(
        _topology(settings),
        Names(settings.broker.prefix),
        vhost=vhost,
        scheduler_ids=scheduler_ids or (settings.scheduler.scheduler_id,),
    )
    return json.dumps(defs, indent=2, sort_keys=True)
