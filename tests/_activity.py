"""A module's world of synthetic activity, shared by the map-layer tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session


@contextmanager
def activity_world(engine: Engine, seed: int, district_code: str, *,
                   then: Callable[[Session], None] | None = None) -> Iterator[Connection]:
    """A year of synthetic projects and patrols (and ``then``, if given) in one connection
    whose transaction is rolled back on leaving: a module's data, read through
    :func:`savepoint_session`."""
    from app.services.activity import generate_activity
    from app.services.patrol_activity import generate_patrols

    conn = engine.connect()
    outer = conn.begin()
    s = Session(bind=conn, join_transaction_mode="create_savepoint")
    generate_activity(s, seed=seed, district_code=district_code, rate=2500)
    generate_patrols(s, district_code=district_code, seed=seed)
    if then is not None:
        then(s)
    s.flush()
    try:
        yield conn
    finally:
        s.close()
        outer.rollback()
        conn.close()


@contextmanager
def savepoint_session(world: Connection) -> Iterator[Session]:
    """A session inside ``world``'s transaction, its writes undone on leaving (a savepoint)."""
    nested = world.begin_nested()
    s = Session(bind=world, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield s
    finally:
        s.close()
        if nested.is_active:
            nested.rollback()


def world_fixtures(seed: int, district_code: str) -> tuple[Any, Any]:
    """A test module's ``world`` (its :func:`activity_world`, built once) and ``session`` (a
    savepoint in it per test) fixtures: ``world, session = world_fixtures(11, DISTRICT)``."""

    @pytest.fixture(scope="module")
    def world(engine: Engine) -> Iterator[Connection]:
        with activity_world(engine, seed, district_code) as conn:
            yield conn

    @pytest.fixture
    def session(world: Connection) -> Iterator[Session]:
        with savepoint_session(world) as s:
            yield s

    return world, session
