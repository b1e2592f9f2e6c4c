"""The synthetic patrol generator: rates, forces, blind spots, determinism, summary exactness."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text

from app.services import coverage, patrols
from app.services.activity import generate_activity
from app.services.patrol_activity import generate_patrols

DISTRICT = "440304000000"


def test_demo_patrols_have_forces_hazard_rate_and_blind_spots(session):
    generate_activity(session, seed=3, year=2024, district_code=DISTRICT, rate=1500,
                      as_of=date(2025, 1, 31))
    result = generate_patrols(session, district_code=DISTRICT, seed=3, as_of=date(2025, 1, 31))
    assert result.patrols > 5000 and result.visits == result.patrols
    assert 0.003 < result.hazards / result.visits < 0.012
    forces = dict(session.execute(text("SELECT force, count(*) FROM patrols GROUP BY 1")).all())
    assert set(forces) == {"supervisor", "grid_worker", "property", "public"}
    assert forces["supervisor"] > forces["grid_worker"] > forces["public"]
    top = session.execute(text("SELECT hazard_type FROM hazards GROUP BY 1 "
                               "ORDER BY count(*) DESC LIMIT 1")).scalar()
    assert top == "fall_from_height"
    assert patrols.summary_drift(session, district_code=DISTRICT) == 0
    spots = coverage.blind_spots(session, district=DISTRICT, on=date(2024, 12, 31))
    named = [s["grid_code"] for s in spots if s["blind_spot"] and s["overdue_sites"]]
    assert len(named) >= 5
    again = generate_patrols(session, district_code=DISTRICT, seed=3, as_of=date(2025, 1, 31))
    assert again.skipped
