"""Where supervision does not reach: unpatrolled sites, blind spots by grid, uncovered land.

A site is *due* a visit every N days, N by risk (:class:`app.patrol_rules.PatrolRules`: high
risk every 3, others every 7). It is *overdue* when the last visit (or, if it was never visited,
the day work was allowed to start) lies more than N days back.

Two ways to answer, which agree (``tests/test_coverage.py``):

- **now** (``on`` omitted or today): the projects in an active state joined to
  ``project_visit_summary`` by primary key — an index scan over the active projects, whatever
  the number of patrol points;
- **as of a past day**: the projects active on that day by their dates, and their last visit
  on or before it from ``patrol_visits`` — for reports on a closed period and as the check of
  the summary.

Blind spots now count each grid's active and overdue sites from ``grid_dues``
(:mod:`app.services.grid_dues`: sites per grid, state, risk and due base, kept by triggers),
which gives the numbers of the first way without joining every active site on each request.
"""

from __future__ import annotations

import copy
from datetime import date, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app import jsonio
from app.access import Scope
from app.patrol_rules import PatrolRules, get_patrol_rules
from app.services import grid_dues
from app.services.registration import today_cn

# The day from which a never-visited site is due a visit.
_DUE_FROM = grid_dues.due_from("p")
# When a project stopped being a site (historical mode): finished, closed, expired or revoked.
_ENDED_ON = ("LEAST(p.finished_on, p.closed_on, "
             "CASE WHEN p.state = 'expired' THEN p.valid_until END, "
             "CASE WHEN p.state = 'revoked' THEN (p.updated_at AT TIME ZONE 'Asia/Shanghai')::date "
             "END)")


def _place_filter(district: str | None, street: str | None, community: str | None,
                  grid: str | None) -> tuple[str, dict[str, Any]]:
    cond, params = [], {}
    for name, value in (("district_code", district), ("street_code", street),
                        ("community_code", community), ("grid_code", grid)):
        if value:
            cond.append(f"p.{name} = :{name}")
            params[name] = value
    return (" AND ".join(cond) or "true"), params


def _is_now(on: date | None) -> bool:
    return on is None or on >= today_cn()


def _active_sites_sql(on: date | None, rules: PatrolRules, where: str) -> str:
    """Active sites with ``last_on`` (last visit on or before the day) and ``due_from``."""
    if _is_now(on):
        return f"""
            SELECT p.*, s.last_visit_on AS last_on, s.last_force, s.visits AS visit_count
            FROM projects p LEFT JOIN project_visit_summary s ON s.project_id = p.id
            WHERE p.state = ANY(:active) AND {where}"""
    return f"""
        SELECT p.*, v.last_on, v.last_force, v.visit_count
        FROM projects p
        LEFT JOIN LATERAL (
            SELECT max(visited_on) AS last_on, count(*) AS visit_count,
                   (array_agg(force ORDER BY arrived_at DESC))[1] AS last_force
            FROM patrol_visits WHERE project_id = p.id AND visited_on <= :on) v ON true
        WHERE p.accepted_on <= :on AND {where}
          AND p.state NOT IN ('submitted', 'returned', 'refused')
          AND ({_ENDED_ON} IS NULL OR {_ENDED_ON} > :on)"""


def unpatrolled_sites(
    session: Session,
    *,
    on: date | None = None,
    district: str | None = None,
    street: str | None = None,
    community: str | None = None,
    grid: str | None = None,
    limit: int | None = None,
    rules: PatrolRules | None = None,
    scope: Scope | None = None,
) -> list[dict[str, Any]]:
    """Active sites overdue for a visit, worst first (days since the last visit × risk).

    ``scope`` (an account's) keeps the sites inside it; None: all.
    """
    rules = rules or get_patrol_rules()
    day = on or today_cn()
    where, params = _place_filter(district, street, community, grid)
    predicate, scope_params = (scope or Scope.everything()).sql("p", geom="site")
    where = f"{where} AND {predicate}"
    params.update(scope_params)
    weight_high = rules.due_days_other / rules.due_days_high_risk
    sql = f"""
        WITH a AS ({_active_sites_sql(on, rules, where)})
        SELECT p.id, p.reg_no, p.title, p.kind, p.category, p.state, p.high_risk,
               p.district_code, p.street_code, p.street_name, p.community_code,
               p.community_name, p.grid_code, p.grid_name, p.last_on, p.last_force,
               coalesce(p.visit_count, 0) AS visit_count,
               CAST(:day AS date) - coalesce(p.last_on, {_DUE_FROM}) AS days_since,
               CASE WHEN p.high_risk THEN :due_high ELSE :due_other END AS due_days,
               ST_X(ST_PointOnSurface(p.site)) AS lon, ST_Y(ST_PointOnSurface(p.site)) AS lat
        FROM a p
        WHERE coalesce(p.last_on, {_DUE_FROM})
              < CAST(:day AS date) - CASE WHEN p.high_risk THEN :due_high ELSE :due_other END
        ORDER BY (CAST(:day AS date) - coalesce(p.last_on, {_DUE_FROM}))
                 * CASE WHEN p.high_risk THEN :w ELSE 1.0 END DESC, p.id
        {"LIMIT :limit" if limit else ""}"""
    params.update(active=list(rules.active_states), on=day, day=day, w=weight_high,
                  due_high=rules.due_days_high_risk, due_other=rules.due_days_other,
                  limit=limit)
    rows = session.execute(text(sql), params).mappings().all()
    out = []
    for r in rows:
        item = dict(r)
        item["never_visited"] = item["last_on"] is None
        item["overdue_days"] = item["days_since"] - item["due_days"]
        item["priority"] = round(item["days_since"] * (weight_high if item["high_risk"] else 1), 2)
        out.append(item)
    return out


def sites_geojson(items: list[dict[str, Any]]) -> dict[str, Any]:
    features = []
    for item in items:
        props = {k: (v.isoformat() if isinstance(v, date) else v)
                 for k, v in item.items() if k not in ("lon", "lat")}
        features.append({"type": "Feature", "id": item["id"],
                         "geometry": {"type": "Point", "coordinates": [round(item["lon"], 7),
                                                                       round(item["lat"], 7)]},
                         "properties": props})
    return {"type": "FeatureCollection", "features": features}


def _per_grid_sql(on: date | None, rules: PatrolRules, where: str, counts: str) -> str:
    """The CTE ``per_grid``: active, overdue and high-risk sites per grid (see blind_spots)."""
    overdue = ("{base} < CAST(:day AS date) "
               "- CASE WHEN {p}high_risk THEN :due_high ELSE :due_other END")
    if counts == "kept":
        cond = overdue.format(base="base_on", p="")
        return f"""per_grid AS (
            SELECT grid_code, sum(sites) AS active_sites,
                   coalesce(sum(sites) FILTER (WHERE {cond}), 0) AS overdue_sites,
                   coalesce(sum(sites) FILTER (WHERE high_risk), 0) AS high_risk_sites
            FROM {grid_dues.TABLE}
            WHERE district_code = :district_code AND state = ANY(:active)
            GROUP BY grid_code)"""
    cond = overdue.format(base=f"coalesce(p.last_on, {_DUE_FROM})", p="p.")
    return f"""a AS ({_active_sites_sql(on, rules, where)}),
        per_grid AS (
            SELECT p.grid_code, count(*) AS active_sites,
                   count(*) FILTER (WHERE {cond}) AS overdue_sites,
                   count(*) FILTER (WHERE p.high_risk) AS high_risk_sites
            FROM a p GROUP BY p.grid_code)"""


def blind_spots(
    session: Session,
    *,
    district: str,
    on: date | None = None,
    window_days: int = 30,
    rules: PatrolRules | None = None,
    scope: Scope | None = None,
    counts: str | None = None,
) -> list[dict[str, Any]]:
    """Per grid: active sites, overdue sites, days since the last patrol, visits per active
    site and hazards per visit over ``window_days``; ``blind_spot`` where sites go unseen.

    ``scope`` (an account's) keeps the grids inside it; every number is per grid, so nothing
    from outside shows. ``counts``: where the active and overdue sites are counted from —
    ``"kept"``, the per-grid rows of ``grid_dues`` (the default now), or ``"sites"``, the
    active sites and their visit summaries (the default for a past day, when the sites are
    those active then and their last visit is read from the visits).
    """
    rules = rules or get_patrol_rules()
    counts = counts or ("kept" if _is_now(on) else "sites")
    if counts not in ("kept", "sites") or (counts == "kept" and not _is_now(on)):
        raise ValueError(f"counts={counts!r}: 'kept' answers for today, 'sites' for any day")
    day = on or today_cn()
    since = day - timedelta(days=window_days - 1)
    where, params = _place_filter(district, None, None, None)
    grid_scope, scope_params = (scope or Scope.everything()).sql(
        "g", codes=("code",), geom="geom")
    params.update(scope_params)
    sql = f"""
        WITH {_per_grid_sql(on, rules, where, counts)},
        effort AS (
            SELECT grid_code, sum(visits) AS visits, sum(site_days) AS site_days,
                   max(day) FILTER (WHERE patrols > 0) AS last_patrol_on
            FROM grid_days
            WHERE district_code = :district_code AND day BETWEEN :since AND :day
            GROUP BY grid_code),
        hz AS (
            SELECT grid_code, count(*) AS hazards FROM hazards
            WHERE district_code = :district_code AND found_on BETWEEN :since AND :day
            GROUP BY grid_code)
        SELECT g.code AS grid_code, g.name AS grid_name, g.parent_code AS community_code,
               coalesce(pg.active_sites, 0) AS active_sites,
               coalesce(pg.overdue_sites, 0) AS overdue_sites,
               coalesce(pg.high_risk_sites, 0) AS high_risk_sites,
               lp.last_patrol_on, CAST(:day AS date) - lp.last_patrol_on AS days_since_patrol,
               coalesce(ef.visits, 0)::int AS visits, coalesce(ef.site_days, 0)::int AS site_days,
               coalesce(hz.hazards, 0) AS hazards
        FROM grids g
        LEFT JOIN per_grid pg ON pg.grid_code = g.code
        LEFT JOIN effort ef ON ef.grid_code = g.code
        LEFT JOIN hz ON hz.grid_code = g.code
        -- The last patrol: in the window from its days, else (rarely) the grid's newest before.
        CROSS JOIN LATERAL (SELECT coalesce(ef.last_patrol_on, (
            SELECT patrol_on FROM patrols WHERE grid_code = g.code AND patrol_on <= :day
            ORDER BY patrol_on DESC LIMIT 1)) AS last_patrol_on) lp
        WHERE g.valid_to IS NULL AND g.district_code = :district_code AND {grid_scope}
        ORDER BY coalesce(pg.overdue_sites, 0) DESC, coalesce(pg.active_sites, 0) DESC, g.code"""
    params.update(active=list(rules.active_states), on=day, day=day, since=since,
                  due_high=rules.due_days_high_risk, due_other=rules.due_days_other)
    outlines = grid_outlines(session, district)
    out = []
    for r in session.execute(text(sql), params).mappings():
        item = dict(r)
        item["geometry"] = outlines.get(item["grid_code"])
        active = item["active_sites"]
        item["visits_per_active_site"] = round(item["visits"] / active, 2) if active else None
        item["hazards_per_visit"] = (round(item["hazards"] / item["visits"], 4)
                                     if item["visits"] else None)
        item["no_patrols"] = active > 0 and item["visits"] == 0 and (
            item["days_since_patrol"] is None or item["days_since_patrol"] >= window_days)
        item["blind_spot"] = active > 0 and (item["overdue_sites"] > 0 or item["no_patrols"])
        out.append(item)
    return out


def most_overdue_grid(session: Session, district: str, allowed: set[str], *,
                      rules: PatrolRules | None = None) -> str | None:
    """The grid among ``allowed`` with the most sites overdue for a visit today (then the most
    active sites, then the code), counted as the blind spots count them (``grid_dues``): what
    a desk opened with no grid of its own shows first."""
    rules = rules or get_patrol_rules()
    day = today_cn()
    rows = session.execute(text(
        f"""WITH {_per_grid_sql(None, rules, "", "kept")}
            SELECT grid_code FROM per_grid
            ORDER BY overdue_sites DESC, active_sites DESC, grid_code"""),
        {"district_code": district, "active": list(rules.active_states), "day": day,
         "due_high": rules.due_days_high_risk, "due_other": rules.due_days_other}).scalars()
    return next((code for code in rows if code in allowed), None)


def blind_spots_geojson(items: list[dict[str, Any]], *, only_blind: bool = False) -> dict:
    features = []
    for item in items:
        if only_blind and not item["blind_spot"]:
            continue
        props = dict(item)
        del props["geometry"]
        if props["last_patrol_on"] is not None:  # the one date of a grid's numbers
            props["last_patrol_on"] = props["last_patrol_on"].isoformat()
        features.append({"type": "Feature", "id": item["grid_code"],
                         "geometry": item["geometry"], "properties": props})
    return {"type": "FeatureCollection", "features": features}


def uncovered_areas(session: Session, *, district: str, min_area_m2: float = 50.0) -> dict:
    """Parts of the district that no current grid covers ("no blind spots", 000 row 4).

    The union of a district's thousand grids takes tens of milliseconds and changes only with
    the territory, which is versioned (a change adds rows and closes others): the answer is
    kept per version of the district's outline and grids (:func:`_territory_version`).
    """
    return copy.deepcopy(_kept(_UNCOVERED, session, district, min_area_m2, limit=64,
                               compute=lambda: _uncovered_areas(session, district,
                                                                min_area_m2)))


_UNCOVERED: dict[tuple, dict] = {}


def _kept(cache: dict[tuple, Any], session: Session, district: str, *key: Any, limit: int,
          compute: Any) -> Any:
    """``compute()`` kept in ``cache`` per database, district, ``key`` and territory version
    (:func:`_territory_version`), the oldest entry dropped past ``limit``."""
    full = (str(session.get_bind().engine.url), district, *key,
            _territory_version(session, district))
    value = cache.get(full)
    if value is None:
        value = compute()
        if len(cache) >= limit:
            cache.pop(next(iter(cache)))
        cache[full] = value
    return value


def grid_outlines(session: Session, district: str) -> dict[str, jsonio.RawJSON]:
    """The GeoJSON geometry (6 decimals) of each current grid of the district, by code: kept
    per territory version, as the outlines change only with it."""
    return _kept(_OUTLINES, session, district, limit=16, compute=lambda: {
        code: jsonio.RawJSON(gj) for code, gj in session.execute(text(
            """SELECT code, ST_AsGeoJSON(geom, 6) FROM grids
               WHERE district_code = :d AND valid_to IS NULL"""), {"d": district})})


_OUTLINES: dict[tuple, dict[str, jsonio.RawJSON]] = {}


def _territory_version(session: Session, district: str) -> tuple:
    """What changes whenever the district's outline or grids do: the newest row id, the last
    closing time and the number of current rows of each (two index scans)."""
    version = "row(max(id), max(valid_to), count(*) FILTER (WHERE valid_to IS NULL))::text"
    return tuple(session.execute(text(
        f"""SELECT (SELECT {version} FROM districts WHERE code = :d),
                   (SELECT {version} FROM grids WHERE district_code = :d)"""),
        {"d": district}).one())


def _uncovered_areas(session: Session, district: str, min_area_m2: float) -> dict:
    rows = session.execute(text(
        """WITH d AS (SELECT geom FROM districts WHERE code = :d AND valid_to IS NULL),
                g AS (SELECT ST_Union(geom) AS geom FROM grids
                      WHERE district_code = :d AND valid_to IS NULL),
                diff AS (SELECT (ST_Dump(ST_Difference(d.geom, coalesce(g.geom,
                                 'SRID=4326;POLYGON EMPTY'::geometry)))).geom AS geom FROM d, g)
           SELECT ST_AsGeoJSON(geom, 6)::json AS gj, ST_Area(geom::geography) AS area_m2
           FROM diff WHERE ST_Area(geom::geography) >= :min ORDER BY 2 DESC"""),
        {"d": district, "min": min_area_m2}).all()
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": r.gj,
         "properties": {"area_m2": round(r.area_m2, 1), "kind": "no_grid"}} for r in rows]}


def coverage_by_force(
    session: Session, *, district: str, since: date, until: date, scope: Scope | None = None
) -> dict[str, Any]:
    """Site-days covered (once per site and day, whoever came) and the credit of each force.

    ``scope`` (an account's) counts the visits to sites inside it only.
    """
    predicate, scope_params = (scope or Scope.everything()).sql("t", geom="site")
    visits = f"""patrol_visits v JOIN projects t ON t.id = v.project_id AND {predicate}
                 WHERE v.district_code = :d AND v.visited_on BETWEEN :s AND :u"""
    params = {"d": district, "s": since, "u": until, **scope_params}
    row = session.execute(text(
        f"""SELECT count(DISTINCT (v.project_id, v.visited_on)) AS site_days,
                   count(*) AS visits FROM {visits}"""), params).one()
    forces = session.execute(text(
        f"""SELECT v.force, count(DISTINCT (v.project_id, v.visited_on)) AS site_days,
                   count(*) AS visits
            FROM {visits} GROUP BY v.force ORDER BY 2 DESC"""), params).all()
    return {"site_days": row.site_days, "visits": row.visits,
            "by_force": {f.force: {"site_days": f.site_days, "visits": f.visits}
                         for f in forces}}
