"""Hotspot maps through the API and the CLI, on synthetic hazards planted in the demo district.

Every test writes its projects, patrol visits and hazards into the rolled-back test session:
two active projects and one visit per project in every grid, hazards drawn at random at a
uniform rate, and where a test says so a planted cluster of falls from height in a few
adjacent grids.
"""

from __future__ import annotations

import csv
import io
import json
import math
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import text
from typer.testing import CliRunner

from gis.hotspots import hotspot_table
from gis.weights import contiguity_weights, read_gal

DISTRICT = "440304000000"
NOT_ENOUGH = "not enough data for a hotspot test: "
YEAR = ("2024-01-01", "2024-12-31")
HOT = {"hot_99", "hot_95", "hot_90"}
SOURCE = "hotspot-test"


@dataclass(frozen=True)
class Territory:
    grids: pd.DataFrame  # code, community, street, lon, lat (a point inside the grid)
    neighbours: dict[str, list[str]]


@pytest.fixture(scope="module")
def territory(engine) -> Territory:
    from app.services.territory import current_units

    with engine.connect() as conn:
        rows = conn.execute(text(
            """SELECT g.code, g.parent_code AS community, c.parent_code AS street,
                      ST_X(ST_PointOnSurface(g.geom)) AS lon, ST_Y(ST_PointOnSurface(g.geom)) AS lat
               FROM grids g JOIN communities c ON c.code = g.parent_code AND c.valid_to IS NULL
               WHERE g.valid_to IS NULL AND g.district_code = :d ORDER BY g.code"""),
            {"d": DISTRICT}).all()
    grids = pd.DataFrame([r._asdict() for r in rows])
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        polygons = current_units(session, "grid", district_code=DISTRICT).set_index("code")
    w = contiguity_weights(polygons)
    neighbours = {
        code: [str(w.ids[j]) for j in w.sparse[i].indices] for i, code in enumerate(w.ids)
    }
    return Territory(grids=grids, neighbours=neighbours)


def _cluster(territory: Territory, *, near: tuple[float, float]) -> list[str]:
    """A grid well inside the district near ``near`` (lon, lat) and three of its neighbours."""
    grids = territory.grids
    order = np.argsort(np.hypot(grids["lon"] - near[0], grids["lat"] - near[1]).to_numpy())
    for i in order:
        code = grids["code"].iloc[i]
        if len(territory.neighbours[code]) >= 5:
            return [code, *territory.neighbours[code][:3]]
    raise AssertionError("no interior grid")


def _spots(territory: Territory) -> dict[str, list[str]]:
    """Planted clusters P1, P2, P3 and the busy grid E, far from one another."""
    lon0, lat0, lon1, lat1 = (territory.grids["lon"].min(), territory.grids["lat"].min(),
                              territory.grids["lon"].max(), territory.grids["lat"].max())
    at = lambda fx, fy: (lon0 + fx * (lon1 - lon0), lat0 + fy * (lat1 - lat0))  # noqa: E731
    return {"P1": _cluster(territory, near=at(0.3, 0.5)),
            "P2": _cluster(territory, near=at(0.75, 0.5)),
            "P3": _cluster(territory, near=at(0.5, 0.2)),
            "E": _cluster(territory, near=at(0.5, 0.8))[:1]}


def _seed(session, territory: Territory, *, hazards: list[tuple], busy: dict[str, int] | None
          = None, kind: str = "small_project") -> None:
    """Two active projects (one visit each) per grid, ``busy`` grids more; then the hazards.

    ``hazards``: (grid code, found_on, hazard_type, severity) — located at the grid's point
    with a few metres of jitter so that no two coincide.
    """
    grids = territory.grids.set_index("code")
    busy = busy or {}
    per_grid = [busy.get(code, 2) for code in grids.index]
    codes = np.repeat(grids.index.to_numpy(), per_grid)
    session.execute(text(
        f"""INSERT INTO projects (reg_no, public_id, district_code, street_code, street_name,
              community_code, community_name, grid_code, grid_name, kind, category, title,
              address, site, site_input_crs, builder, contractor, investment_cny, floor_area_m2,
              planned_start, planned_end, risk_factors, public_area, channel,
              above_limit_reference, above_limit, high_risk, special_area, reviewer_kind,
              reviewer_code, reviewer_name, departments, decision, state, submitted_on,
              review_due, accepted_on, source, created_by)
            SELECT 'HS' || n, 'hs' || n, :d, g.street, 's', g.community, 'c', g.code, 'g',
                   :kind, 'residential_fitout', 't', 'a',
                   ST_SetSRID(ST_MakePoint(g.lon, g.lat), 4326), 'wgs84', '{{}}', '{{}}',
                   10000, 50, '2023-12-01', '2025-06-30', '[]', false, 'online', false, false,
                   false, false, 'community_workstation', g.community, 'w', '[]', '{{}}',
                   'in_progress', '2023-11-25', '2023-11-28', '2023-11-28', '{SOURCE}', 'test'
            FROM unnest(CAST(:codes AS text[])) WITH ORDINALITY AS u(code, n)
            JOIN (SELECT * FROM unnest(CAST(:gc AS text[]), CAST(:gm AS text[]),
                  CAST(:gs AS text[]), CAST(:lon AS float8[]), CAST(:lat AS float8[])))
                 AS g(code, community, street, lon, lat) ON g.code = u.code"""),
        {"d": DISTRICT, "kind": kind, "codes": list(codes), "gc": list(grids.index),
         "gm": list(grids["community"]), "gs": list(grids["street"]),
         "lon": list(grids["lon"]), "lat": list(grids["lat"])})
    patrol = session.execute(text(
        """INSERT INTO patrols (district_code, client_id, inspector_id, force, started_at,
              patrol_on, location, payload_hash, source)
           VALUES (:d, 'hs-1', 'hs-inspector', 'supervisor', '2024-01-15T09:00:00+08:00',
                   '2024-01-15', ST_SetSRID(ST_MakePoint(114.05, 22.54), 4326), 'x', :s)
           RETURNING id"""), {"d": DISTRICT, "s": SOURCE}).scalar_one()
    session.execute(text(
        """INSERT INTO patrol_visits (district_code, patrol_id, project_id, force, visited_on,
              arrived_at, how)
           SELECT :d, :p, id, 'supervisor', '2024-01-15', '2024-01-15T09:00:00+08:00', 'declared'
           FROM projects WHERE source = :s"""), {"d": DISTRICT, "p": patrol, "s": SOURCE})
    _insert_hazards(session, territory, hazards)


def _insert_hazards(session, territory: Territory, hazards: list[tuple]) -> None:
    if not hazards:
        return
    grids = territory.grids.set_index("code")
    frame = pd.DataFrame(hazards, columns=["code", "day", "type", "severity"])
    k = frame.groupby("code").cumcount().to_numpy()
    angle = k * 2.39996  # golden angle: points spread on a small spiral, none on another
    radius = 1e-5 * np.sqrt(k)  # ≤ ~10 m for 100 points
    lon = grids.loc[frame["code"], "lon"].to_numpy() + radius * np.cos(angle)
    lat = grids.loc[frame["code"], "lat"].to_numpy() + radius * np.sin(angle)
    session.execute(text(
        f"""INSERT INTO hazards (district_code, project_id, location, grid_code, street_code,
              community_code, hazard_type, severity, found_on, found_by, responsible, due_on,
              state, source)
            SELECT :d, (SELECT min(id) FROM projects p WHERE p.grid_code = h.code
                        AND p.source = '{SOURCE}'),
                   ST_SetSRID(ST_MakePoint(h.lon, h.lat), 4326), h.code, g.street_code,
                   g.community_code, h.type, h.severity, h.day, 'test', '{{}}', h.day, 'found',
                   '{SOURCE}'
            FROM unnest(CAST(:codes AS text[]), CAST(:lon AS float8[]), CAST(:lat AS float8[]),
                        CAST(:types AS text[]), CAST(:sev AS text[]), CAST(:days AS date[]))
                 AS h(code, lon, lat, type, severity, day)
            JOIN LATERAL (SELECT street_code, community_code FROM projects
                          WHERE grid_code = h.code AND source = '{SOURCE}' LIMIT 1) g ON true"""),
        {"d": DISTRICT, "codes": list(frame["code"]), "lon": list(lon), "lat": list(lat),
         "types": list(frame["type"]), "sev": list(frame["severity"]),
         "days": list(pd.to_datetime(frame["day"]).dt.date)})


def _background(territory: Territory, *, seed: int, per_grid: float, start: str, end: str,
                hazard_type: str = "fall_from_height") -> list[tuple]:
    """Hazards at a uniform rate: Poisson(per_grid) per grid, days uniform in the period."""
    rng = np.random.default_rng(seed)
    first, span = date.fromisoformat(start), (date.fromisoformat(end)
                                              - date.fromisoformat(start)).days
    out = []
    for code, n in zip(territory.grids["code"], rng.poisson(per_grid, len(territory.grids)),
                       strict=True):
        for _ in range(int(n)):
            day = first + timedelta(days=int(rng.integers(0, span + 1)))
            out.append((code, day, hazard_type, "general"))
    return out


def _planted(codes: list[str], n: int, start: str, hazard_type: str = "fall_from_height",
             severity: str = "major") -> list[tuple]:
    day = date.fromisoformat(start)
    return [(c, day + timedelta(days=k % 28), hazard_type, severity) for c in codes
            for k in range(n)]


def _classes(body: dict, key: str = "class") -> dict[str, str]:
    return {f["id"]: f["properties"][key] for f in body["features"]}


def _map(client, **params):
    params = {"start": YEAR[0], "end": YEAR[1], **params}
    return client.get("/api/hotspots", params=params)


@pytest.fixture
def planted(session, territory):
    """P1 planted (20 falls per grid), E busy: 60 projects and 30 hazards (a normal rate)."""
    spots = _spots(territory)
    hazards = _background(territory, seed=11, per_grid=1.0, start=YEAR[0], end=YEAR[1])
    hazards += _planted(spots["P1"], 20, "2024-03-01")
    hazards += _planted(spots["E"], 30, "2024-05-01", severity="general")
    _seed(session, territory, hazards=hazards, busy={spots["E"][0]: 60})
    return spots


# --------------------------------------------------------------------------------------------
# The map
# --------------------------------------------------------------------------------------------


def test_planted_cluster_is_hot_under_gi_star_with_fdr(client, planted):
    response = _map(client)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    assert body["type"] == "FeatureCollection"
    assert body["units"] == {"kind": "grid", "n": 1072, "source": "official grids (current)"}
    assert body["measure"] == "per_project" and body["statistic"] == "gi_star" and body["fdr"]
    assert body["n_outside"] == 0 and isinstance(body["islands"], list)
    assert body["weights"]["n_units"] == 1072 and "queen" in body["weights"]["rule"]
    classes = _classes(body)
    assert all(classes[c] == "hot_99" for c in planted["P1"])
    hot = {c for c, k in classes.items() if k in HOT}
    # The hot area is the planted cluster and grids next to it, nothing elsewhere.
    near = set(planted["P1"]).union(*(body_neighbours(body, c) for c in planted["P1"]))
    assert hot <= near
    props = body["features"][0]["properties"]
    assert {"unit_id", "n", "exposure", "rate", "z", "p", "class", "status"} <= set(props)
    assert sum(body["class_counts"].values()) == 1072
    assert "NaN" not in response.text and "Infinity" not in response.text
    coordinate = body["features"][0]["geometry"]["coordinates"][0][0][0]
    assert all(len(str(v).split(".")[1]) <= 6 for v in coordinate)


def body_neighbours(body: dict, code: str) -> set[str]:
    """Grids whose geometry touches ``code``'s (from the response itself)."""
    shapes = {f["id"]: shapely.geometry.shape(f["geometry"]) for f in body["features"]}
    target = shapes[code]
    return {c for c, g in shapes.items() if g.distance(target) < 1e-5}


def test_uniform_rate_control_has_no_hot_spot(client, session, territory):
    hazards = _background(territory, seed=5, per_grid=1.0, start=YEAR[0], end=YEAR[1])
    _seed(session, territory, hazards=hazards)
    response = _map(client)
    assert response.status_code == 200, response.text
    counts = response.json()["class_counts"]
    assert counts["hot_99"] == counts["hot_95"] == counts["hot_90"] == 0
    assert counts["not_significant"] + counts["island"] + counts["cold_90"] + counts[
        "cold_95"] + counts["cold_99"] == 1072


def test_exposure_normalisation_matters(client, planted):
    busy = planted["E"][0]
    per_project = _map(client).json()
    counts = _map(client, measure="count").json()
    assert _classes(per_project)[busy] == "not_significant"
    assert _classes(counts)[busy] == "hot_99"
    feature = next(f for f in per_project["features"] if f["id"] == busy)
    assert feature["properties"]["exposure"] == 60  # 30 planted + background, per 60
    assert feature["properties"]["rate"] == pytest.approx(feature["properties"]["n"] / 60)
    assert 0.5 <= feature["properties"]["rate"] < 0.6
    assert counts["measure"] == "count" and "not normalised" in counts["measure_means"]
    # Per patrol visit (one visit per project here) agrees with per project.
    per_visit = _map(client, measure="per_visit").json()
    assert all(_classes(per_visit)[c] == "hot_99" for c in planted["P1"])
    assert _classes(per_visit)[busy] == "not_significant"


def test_units_without_exposure_are_reported_not_tested(client, session, planted):
    lonely = planted["P2"][0]
    # Its projects closed before the year began (projects are never deleted).
    session.execute(text("UPDATE projects SET closed_on = '2023-12-20' WHERE grid_code = :g"),
                    {"g": lonely})
    body = _map(client).json()
    feature = next(f for f in body["features"] if f["id"] == lonely)
    assert feature["properties"]["status"] == "no_exposure"
    assert feature["properties"]["class"] == "no_exposure"
    assert feature["properties"]["rate"] is None and feature["properties"]["exposure"] == 0
    assert body["n_no_exposure"] == 1 and body["class_counts"]["no_exposure"] == 1


def test_local_moran_option(client, planted):
    response = _map(client, statistic="local_moran")
    assert response.status_code == 200, response.text
    body = response.json()
    classes = _classes(body)
    assert sum(classes[c] == "HH" for c in planted["P1"]) >= 3
    assert set(classes.values()) <= {"HH", "LL", "HL", "LH", "not_significant", "island",
                                     "no_exposure"}


def test_h3_and_fishnet_units(client, planted, territory):
    grids = territory.grids.set_index("code")
    lon, lat = grids.loc[planted["P1"][0], ["lon", "lat"]]
    hexes = _map(client, units="h3", resolution=8)
    assert hexes.status_code == 200, hexes.text
    body = hexes.json()
    assert body["units"]["kind"] == "h3" and body["units"]["resolution"] == 8
    assert _classes(body)[h3.latlng_to_cell(lat, lon, 8)] in HOT
    assert body["n_outside"] == 0
    cells = _map(client, units="fishnet", cell_m=1000)
    assert cells.status_code == 200, cells.text
    body = cells.json()
    assert body["units"]["kind"] == "fishnet" and body["units"]["cell_m"] == 1000
    point = shapely.Point(lon, lat)
    inside = [f for f in body["features"] if shapely.geometry.shape(f["geometry"]).contains(point)]
    assert inside and inside[0]["properties"]["class"] in HOT


def test_filters(client, session, planted, territory):
    # The planted falls are severity "major"; fires elsewhere do not change the falls map.
    fires = _planted(planted["P2"], 20, "2024-06-01", hazard_type="fire")
    _insert_hazards(session, territory, fires)
    falls = _classes(_map(client, hazard_type="fall_from_height").json())
    assert all(falls[c] not in HOT for c in planted["P2"])
    fire = _classes(_map(client, hazard_type="fire").json())
    assert all(fire[c] == "hot_99" for c in planted["P2"])
    major = _map(client, severity="major", hazard_type="fall_from_height", measure="count")
    assert major.json()["n_events"] == 80  # the planted P1 falls
    assert _map(client, severity="major,general").json()["n_events"] == _map(client).json()[
        "n_events"]
    assert _map(client, kind="small_project").json()["n_events"] == _map(client).json()[
        "n_events"]
    street = territory.grids.set_index("code").loc[planted["P1"][0], "street"]
    in_street = _map(client, street=street)
    assert in_street.status_code == 200, in_street.text
    body = in_street.json()
    assert body["units"]["n"] < 1072 and body["filters"]["street"] == street
    assert _classes(body)[planted["P1"][0]] in HOT


def test_csv_export(client, planted):
    response = client.get("/api/hotspots.csv", params={"start": YEAR[0], "end": YEAR[1]})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 1072
    assert {"unit_id", "n", "exposure", "rate", "z", "p", "class", "lon", "lat"} <= set(rows[0])
    by_id = {r["unit_id"]: r for r in rows}
    assert by_id[planted["P1"][0]]["class"] == "hot_99"
    assert all(math.isfinite(float(r["z"])) for r in rows)


# --------------------------------------------------------------------------------------------
# Over time
# --------------------------------------------------------------------------------------------


def test_compare_periods(client, session, territory):
    spots = _spots(territory)
    hazards = _background(territory, seed=21, per_grid=1.0, start=YEAR[0], end=YEAR[1])
    hazards += _planted(spots["P1"], 15, "2024-02-01") + _planted(spots["P1"], 15, "2024-08-01")
    hazards += _planted(spots["P2"], 15, "2024-02-01")  # first half only: ceases
    hazards += _planted(spots["P3"], 15, "2024-09-01")  # second half only: new
    _seed(session, territory, hazards=hazards)
    response = client.get("/api/hotspots/compare", params={
        "a_start": "2024-01-01", "a_end": "2024-06-30",
        "b_start": "2024-07-01", "b_end": "2024-12-31"})
    assert response.status_code == 200, response.text
    body = response.json()
    change = _classes(body, "change")
    assert change[spots["P1"][0]] == "persisting_hot"
    assert change[spots["P2"][0]] == "ceased_hot"
    assert change[spots["P3"][0]] == "new_hot"
    assert body["periods"]["a"]["end"] == "2024-06-30" and "rule" in body
    props = next(f for f in body["features"] if f["id"] == spots["P3"][0])["properties"]
    assert props["class_a"] == "not_significant" and props["class_b"] == "hot_99"
    assert props["z_b"] > 3 and props["n_b"] >= 15


def test_emerging_hot_spots(client, session, territory):
    spots = _spots(territory)
    hazards = _background(territory, seed=31, per_grid=3.0, start=YEAR[0], end=YEAR[1])
    for month in (10, 11, 12):
        hazards += _planted(spots["P3"], 8, f"2024-{month:02d}-01")
    _seed(session, territory, hazards=hazards)
    response = client.get("/api/hotspots/emerging", params={"start": YEAR[0], "end": YEAR[1]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["bins"][0] == "2024-01" and len(body["bins"]) == 12
    assert "gis/emerging.py" in body["rule"]
    categories = _classes(body, "category")
    assert categories[spots["P3"][0]] in ("consecutive_hot", "new_hot")
    props = next(f for f in body["features"] if f["id"] == spots["P3"][0])["properties"]
    assert props["bins_hot"] >= 2
    # Too few bins for a trend.
    short = client.get("/api/hotspots/emerging", params={"start": "2024-01-01",
                                                         "end": "2024-06-30"})
    assert short.status_code == 422
    assert short.json()["detail"][0]["msg"].startswith(NOT_ENOUGH)


# --------------------------------------------------------------------------------------------
# Density and clusters
# --------------------------------------------------------------------------------------------


def test_density_surface(client, planted, territory):
    response = client.get("/api/hotspots/density", params={"start": YEAR[0], "end": YEAR[1],
                                                            "cell_m": 100})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["bandwidth_rule"].startswith("0.9 * min(SD") and body["bandwidth_m"] > 0
    assert body["n_points"] > 1000 and body["features"]
    grids = territory.grids.set_index("code")
    top = max(body["features"], key=lambda f: f["properties"]["level"])
    hot_points = [shapely.Point(*grids.loc[c, ["lon", "lat"]]) for c in
                  planted["P1"] + planted["E"]]
    assert any(shapely.geometry.shape(top["geometry"]).buffer(0.001).contains(p)
               for p in hot_points)
    cells = client.get("/api/hotspots/density", params={"start": YEAR[0], "end": YEAR[1],
                                                         "cell_m": 200, "bandwidth_m": 300,
                                                         "output": "cells"}).json()
    assert cells["bandwidth_rule"] == "given" and cells["features"]
    assert all(f["properties"]["density"] > 0 for f in cells["features"])


def test_dbscan_clusters(client, planted, territory):
    response = client.get("/api/hotspots/clusters", params={
        "start": YEAR[0], "end": YEAR[1], "eps_m": 60, "min_samples": 15})
    assert response.status_code == 200, response.text
    body = response.json()
    grids = territory.grids.set_index("code")
    outlines = [shapely.geometry.shape(f["geometry"]) for f in body["features"]]
    for code in planted["P1"] + planted["E"]:
        point = shapely.Point(*grids.loc[code, ["lon", "lat"]])
        assert any(o.contains(point) for o in outlines), code
    assert body["n_clusters"] == len(outlines) == 5
    assert body["n_noise"] > 0 and body["eps_m"] == 60
    for feature in body["features"]:
        props = feature["properties"]
        assert sum(props["types"].values()) == props["n_points"] >= 20


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2024-05-01", "end": "2024-04-01"}, "period"),
        ({"hazard_type": "meteor"}, "hazard_type"),
        ({"severity": "catastrophic"}, "severity"),
        ({"kind": "mega_project"}, "kind"),
        ({"category": "rocket"}, "category"),
        ({"street": "440304999000"}, "street"),
        ({"community": "440304999999"}, "community"),
        ({"units": "hexagons"}, "units"),
        ({"units": "h3", "resolution": 12}, "resolution"),
        ({"measure": "per_month"}, "measure"),
        ({"statistic": "moran"}, "statistic"),
        ({"events": "incidents", "severity": "major"}, "severity"),
        ({"district": "110101000000"}, "district"),
    ],
)
def test_unknown_filter_values_get_a_clear_422(client, params, field):
    response = _map(client, **params)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["msg"].startswith(f"{field}:"), detail
    assert detail["loc"][-1] == field


def test_not_enough_data_is_a_clear_422(client, session, territory):
    # No hazards at all in the period (and none in the test database).
    empty = _map(client)
    assert empty.status_code == 422
    assert empty.json()["detail"][0]["msg"].startswith(NOT_ENOUGH + "no hazards from 2024-01-01")
    # One hazard per grid and two projects everywhere: all rates equal.
    spots = _spots(territory)
    _seed(session, territory, hazards=[(c, date(2024, 3, 1), "fire", "general")
                                       for c in territory.grids["code"]])
    flat = _map(client)
    assert flat.status_code == 422
    assert "all 1072 values are equal" in flat.json()["detail"][0]["msg"]
    # A period with no data, and a filter that selects nothing.
    assert _map(client, start="2020-01-01", end="2020-12-31").status_code == 422
    nothing = _map(client, hazard_type="collapse")
    assert nothing.json()["detail"][0]["msg"].startswith(NOT_ENOUGH)
    # A single unit: a fishnet of one cell over one community (no demo community has
    # fewer than three grids).
    community = territory.grids["community"].iloc[0]
    huge = _map(client, units="fishnet", cell_m=50_000, community=community)
    assert huge.status_code == 422
    assert "only 1 unit" in huge.json()["detail"][0]["msg"]
    for path in ("/api/hotspots/density", "/api/hotspots/clusters"):
        response = client.get(path, params={"start": "2020-01-01", "end": "2020-12-31"})
        assert response.status_code == 422
        assert response.json()["detail"][0]["msg"].startswith(NOT_ENOUGH)
    bad = client.get("/api/hotspots/compare", params={
        "a_start": "2024-07-01", "a_end": "2024-12-31", "b_start": "2024-01-01",
        "b_end": "2024-06-30"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["msg"].startswith("period a:")
    assert spots  # the territory was usable


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


@pytest.fixture
def run_cli(session, monkeypatch):
    """The CLI on the test session (so it sees this test's uncommitted rows)."""
    import app.db
    from app.cli import app as cli_app

    # nullcontext: the CLI's ``with`` must not close (and so roll back) the test's session.
    monkeypatch.setattr(app.db, "session_factory", lambda *a, **k: lambda: nullcontext(session))
    runner = CliRunner()
    return lambda *args: runner.invoke(cli_app, [str(a) for a in args])


def test_cli_map_compare_emerging(run_cli, planted, tmp_path):
    out = tmp_path / "map.geojson"
    result = run_cli("hotspots", "map", "--start", YEAR[0], "--end", YEAR[1], "--out", out)
    assert result.exit_code == 0, result.output
    assert "hot_99" in result.output and "1072 units" in result.output
    body = json.loads(out.read_text())
    assert all(_classes(body)[c] == "hot_99" for c in planted["P1"])
    table = tmp_path / "compare.csv"
    result = run_cli("hotspots", "compare", "--a-start", "2024-01-01", "--a-end", "2024-06-30",
                     "--b-start", "2024-07-01", "--b-end", "2024-12-31", "--out", table)
    assert result.exit_code == 0, result.output
    assert "change" in table.read_text().splitlines()[0]
    result = run_cli("hotspots", "emerging", "--start", YEAR[0], "--end", YEAR[1],
                     "--measure", "count", "--units", "h3", "--resolution", "8")
    assert result.exit_code == 0, result.output
    assert "emerging hot spots" in result.output


def test_cli_bad_input_is_one_line(run_cli):
    result = run_cli("hotspots", "map", "--start", "2024-05-01", "--end", "2024-04-01")
    assert result.exit_code == 2
    assert "period: start 2024-05-01 is after end 2024-04-01" in result.output
    assert "Traceback" not in result.output
    result = run_cli("hotspots", "map", "--start", YEAR[0], "--end", YEAR[1])
    assert result.exit_code == 2 and NOT_ENOUGH in result.output


# --------------------------------------------------------------------------------------------
# Reference parity through the table function the service calls
# --------------------------------------------------------------------------------------------


def test_service_table_matches_pysal_reference(realdata: Path):
    # The service calls gis.hotspots.hotspot_table (Gi*: binary weights; LISA: row-
    # standardised) with nullable Float64 rates: check that path against esda, to 1e-6.
    ref = realdata / "pysal_esda_reference"
    import geopandas as gpd

    frame = gpd.read_file(ref / "columbus" / "columbus.shp")
    values = frame.set_index("POLYID")["CRIME"].astype("Float64")
    w = read_gal(ref / "columbus" / "columbus.gal")
    expected = pd.read_csv(ref / "expected_columbus_CRIME.csv")
    gi = expected[(expected["stat"] == "G_Local") & (expected["transform"] == "B")
                  & (expected["star"].astype(str) == "True")].set_index("POLYID").loc[w.ids]
    table = hotspot_table(values, w, statistic="gi_star")
    np.testing.assert_allclose(table["z"].to_numpy(float), gi["Z"].to_numpy(float), atol=1e-6)
    lisa = expected[expected["stat"] == "Moran_Local"].set_index("POLYID").loc[w.ids]
    table = hotspot_table(values, w, statistic="local_moran")
    np.testing.assert_allclose(table["z"].to_numpy(float), lisa["Z"].to_numpy(float), atol=1e-6)
