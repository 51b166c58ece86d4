"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rabbitrun.authoring import DagBag
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.migrate import upgrade
from rabbitrun.settings import DatabaseSettings, Secret
from tests.support.world import DAGS, World, settings_for


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[World]:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "sched_dags.py").write_text(DAGS)
    settings = settings_for(tmp_path)
    engine = make_engine(DatabaseSettings(url=Secret(f"sqlite:///{tmp_path / 'rabbitrun.db'}")))
    upgrade(engine)
    dagbag = DagBag(dags, include_examples=False)
    assert not dagbag.import_errors, dagbag.import_errors
    session = session_factory(engine)()
    try:
        yield World(settings, session, dagbag, tmp_path)
    finally:
        session.close()
        engine.dispose()
