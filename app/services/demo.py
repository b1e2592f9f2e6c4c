"""Load the demo district (Futian, Shenzhen) shipped in ``grid_data/demo``.

Idempotent: a level whose shipped file is already the source of the current units is skipped,
so a second run costs a few queries.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.config import code_scheme
from app.models import BoundaryImport
from app.models.territory import LEVELS
from app.services.territory import import_level
from grid_data.demo_data import demo_level_path
from grid_data.importer import read_boundary_file

log = logging.getLogger(__name__)


def _fingerprint(path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"{path.name}#sha256:{digest}"


def load_demo(
    session: Session,
    *,
    progress: Callable[[str, str], None] | None = None,
    activity: bool = False,
    activity_seed: int = 1,
    activity_year: int | None = None,
    patrols: bool = False,
) -> dict[str, str]:
    """Import the four demo levels top-down; returns level → 'loaded' or 'up to date'.

    Then the synthetic estates and special places (quick), and with ``activity`` a year of
    synthetic registrations (:mod:`app.services.activity`; a few seconds).
    """
    outcome: dict[str, str] = {}
    for level in LEVELS:
        path = demo_level_path(level)
        source = f"grid_data/demo/{_fingerprint(path)}"
        latest = session.scalar(
            select(BoundaryImport.source_file)
            .where(BoundaryImport.level == level)
            .order_by(BoundaryImport.id.desc())
            .limit(1)
        )
        if latest == source:
            outcome[level] = "up to date"
        else:
            boundary = read_boundary_file(path, level=level, scheme=code_scheme())
            boundary = type(boundary)(
                level=level,
                frame=boundary.frame,
                source_file=source,
                source_crs=boundary.source_crs,
            )
            result = import_level(session, boundary, actor="demo-loader")
            session.commit()
            outcome[level] = f"loaded {result.inserted}"
        if progress:
            progress(level, outcome[level])
    from app.config import get_settings
    from app.services.places import load_demo_layers

    district = get_settings().demo_district
    layers = load_demo_layers(session, district_code=district)
    from app.services.inspectors import load_demo_roster

    layers["inspectors"] = load_demo_roster(session, district_code=district)
    session.commit()
    outcome["layers"] = f"loaded {layers}" if any(layers.values()) else "up to date"
    if progress:
        progress("layers", outcome["layers"])
    if activity:
        from app.services.activity import generate_activity

        result = generate_activity(
            session, seed=activity_seed, year=activity_year, district_code=district
        )
        session.commit()
        outcome["activity"] = result.summary()
        if progress:
            progress("activity", outcome["activity"])
    if activity and patrols:  # patrols, hazards, incidents, leads on those projects
        from app.services.patrol_activity import generate_patrols

        outcome["patrols"] = generate_patrols(session, district_code=district,
                                              seed=activity_seed).summary()
        session.commit()
        if progress:
            progress("patrols", outcome["patrols"])
    if activity:
        # Bulk loads leave the planner's statistics stale until autovacuum comes round, and
        # the coverage queries then pick nested loops that take seconds instead of 0.1 s.
        session.execute(text("ANALYZE"))
        session.commit()
    return outcome
