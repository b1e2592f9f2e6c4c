"""Hotspot maps of hazards and incidents: rates per exposure, tested, over time.

Reads the hazards, incidents, projects and patrol visits of a district (or one street or
community) from PostGIS and hands them to the pure statistics in :mod:`gis`:
aggregation units (:mod:`gis.aggregation`), contiguity weights (:mod:`gis.weights`), Gi* /
Local Moran with FDR (:mod:`gis.hotspots`), kernel density and DBSCAN (:mod:`gis.density`),
two-period change and emerging hot spots (:mod:`gis.emerging`, whose module docstring holds
the emerging-class rules).

Exposure (the denominator of a rate):

- ``per_project``: projects active at any time in the period — ``accepted_on <= end`` and
  (``closed_on`` is null or ``>= start``) — located by a point on their site;
- ``per_visit``: patrol visits in the period, located by the site visited;
- ``count``: no denominator (raw counts; the map then shows where there is more work).

A unit whose exposure is below ``min_exposure`` has status ``no_exposure``: it has no rate
and is left out of the test (its neighbours may become islands). Events and exposure points
inside no unit are counted and reported (``n_outside``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.config import get_settings
from app.patrol_rules import HAZARD_TYPES, SEVERITIES
from app.rules import KINDS, get_rules
from app.services.registration import today_cn
from app.services.territory import current_units
from gis._errors import GisError, NotEnoughDataError
from gis.aggregation import count_points, fishnet_units, h3_units, rate
from gis.density import dbscan_clusters, kernel_density
from gis.emerging import EMERGING_CLASSES, EmergingHotSpots, compare_periods, space_time_counts
from gis.hotspots import GI_CLASSES, LISA_CLASSES, hotspot_table
from gis.weights import Weights, contiguity_weights

log = logging.getLogger(__name__)

EVENTS = {"hazards": "隐患", "incidents": "事故"}
MEASURES = {
    "per_project": "per active project (active at any time in the period)",
    "per_visit": "per patrol visit in the period",
    "count": "raw count (not normalised by exposure)",
}
UNIT_KINDS = ("grid", "h3", "fishnet")
STATISTICS = ("gi_star", "local_moran")
MAX_SPAN_DAYS = 5 * 366 + 1
_NOT_ENOUGH = "not enough data for a hotspot test: "
EMERGING_RULE = (
    "Gi* (binary queen contiguity, analytic, FDR within each bin) on every time bin; a unit "
    "is hot/cold in a bin when significant at alpha; Mann-Kendall trend on its z-scores; "
    "classes new, consecutive, intensifying, persistent, diminishing, sporadic, oscillating, "
    "historical (hot or cold), no_pattern, island: see the module docstring of gis/emerging.py"
)
COMPARE_RULE = (
    "Gi* (FDR) in each period; hot/cold = significant at 1 - alpha or stronger; change "
    "classes new_hot, persisting_hot, ceased_hot, hot_to_cold and the cold mirror images, "
    "none, island (gis.emerging.compare_periods); units without exposure in either period "
    "are no_exposure"
)


@dataclass(frozen=True)
class Filters:
    """What is mapped, where, validated: the same for every period of a request."""

    district: str
    events: str = "hazards"
    hazard_types: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    kind: str | None = None
    category: str | None = None
    street: str | None = None
    community: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "district": self.district,
            "events": self.events,
            "hazard_type": list(self.hazard_types) or None,
            "severity": list(self.severities) or None,
            "kind": self.kind,
            "category": self.category,
            "street": self.street,
            "community": self.community,
        }


@dataclass
class HotspotResult:
    """Units (geometry and per-unit columns, EPSG:4326) and the metadata of a map."""

    units: gpd.GeoDataFrame
    meta: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _split(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(p.strip() for v in items for p in v.split(",") if p.strip()))


def _one_of(name: str, value: str, allowed: Any) -> None:
    if value not in allowed:
        msg = f"{name}: unknown value {value!r}; one of {', '.join(allowed)}"
        raise GisError(msg)


def check_period(
    start: date | None, end: date | None, *, name: str = "period"
) -> tuple[date, date]:
    """The period (inclusive dates), default the year up to today; start after end is an error."""
    end = end or today_cn()
    start = start or end - timedelta(days=364)
    if start > end:
        msg = f"{name}: start {start} is after end {end}"
        raise GisError(msg)
    if (end - start).days > MAX_SPAN_DAYS:
        msg = f"{name}: {start} to {end} is longer than five years"
        raise GisError(msg)
    return start, end


def make_filters(
    session: Session,
    *,
    district: str | None = None,
    events: str = "hazards",
    hazard_type: str | list[str] | None = None,
    severity: str | list[str] | None = None,
    kind: str | None = None,
    category: str | None = None,
    street: str | None = None,
    community: str | None = None,
) -> Filters:
    """Check every filter value; an unknown one raises ``GisError`` naming the field."""
    _one_of("events", events, EVENTS)
    hazard_types = _split(hazard_type)
    for value in hazard_types:
        _one_of("hazard_type", value, HAZARD_TYPES)
    severities = _split(severity)
    if severities and events != "hazards":
        msg = "severity: applies to hazards only (incidents are graded by deaths and injuries)"
        raise GisError(msg)
    for value in severities:
        _one_of("severity", value, SEVERITIES)
    if kind is not None:
        _one_of("kind", kind, KINDS)
    if category is not None:
        categories = get_rules().categories
        _one_of("category", category, categories)
        if kind is not None and categories[category][0] != kind:
            msg = f"category: {category} is {categories[category][0]} work, not {kind}"
            raise GisError(msg)
    district = district or get_settings().demo_district
    found = session.execute(
        text("SELECT code FROM districts WHERE code = :c AND valid_to IS NULL"), {"c": district}
    ).first()
    if found is None:
        msg = f"district: no current district {district!r}"
        raise GisError(msg)
    for level, table, code in (("street", "streets", street), ("community", "communities",
                                                                 community)):
        if code is None:
            continue
        row = session.execute(
            text(f"SELECT district_code FROM {table} WHERE code = :c AND valid_to IS NULL"),
            {"c": code},
        ).first()
        if row is None or row.district_code != district:
            msg = f"{level}: no current {level} {code!r} in district {district}"
            raise GisError(msg)
    if street and community and not community.startswith(street[:9]):
        msg = f"community: {community} is not in street {street}"
        raise GisError(msg)
    return Filters(district=district, events=events, hazard_types=hazard_types,
                   severities=severities, kind=kind, category=category, street=street,
                   community=community)


# --------------------------------------------------------------------------------------------
# Units and weights
# --------------------------------------------------------------------------------------------


def _area(session: Session, filters: Filters) -> gpd.GeoDataFrame:
    level, code = (("community", filters.community) if filters.community else
                   ("street", filters.street) if filters.street else
                   ("district", filters.district))
    return current_units(session, level, codes=[code])


def build_units(
    session: Session,
    filters: Filters,
    *,
    units: str = "grid",
    resolution: int = 9,
    cell_m: float = 500.0,
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """The aggregation units of the study area, indexed by ``unit_id``, with a ``name``."""
    _one_of("units", units, UNIT_KINDS)
    if units == "grid":
        grids = current_units(session, "grid", district_code=filters.district)
        if filters.community:
            grids = grids[grids["parent_code"] == filters.community]
        elif filters.street:
            communities = current_units(session, "community", district_code=filters.district)
            inside = communities.loc[communities["parent_code"] == filters.street, "code"]
            grids = grids[grids["parent_code"].isin(set(inside))]
        frame = gpd.GeoDataFrame(
            {"name": grids["name"].to_numpy()},
            geometry=grids.geometry.to_numpy(),
            index=pd.Index(grids["code"].to_numpy(), name="unit_id", dtype=object),
            crs=4326,
        )
        return frame, {"kind": "grid", "n": len(frame), "source": "official grids (current)"}
    area = _area(session, filters)
    try:
        if units == "h3":
            frame = h3_units(area, int(resolution))
            about = {"kind": "h3", "resolution": int(resolution)}
        else:
            frame = fishnet_units(area, float(cell_m))
            about = {"kind": "fishnet", "cell_m": float(cell_m),
                     "metric_crs": frame.attrs["metric_crs"]}
    except NotEnoughDataError:
        raise
    except GisError as exc:
        field_name = "resolution" if units == "h3" else "cell_m"
        raise GisError(f"{field_name}: {exc}") from exc
    frame["name"] = None
    frame.index = frame.index.rename("unit_id")
    return frame, {**about, "n": len(frame)}


def _weights(frame: gpd.GeoDataFrame) -> Weights:
    return contiguity_weights(frame, rule="queen")


# --------------------------------------------------------------------------------------------
# Points from the database
# --------------------------------------------------------------------------------------------


def _points(rows: list[Any], columns: dict[str, list[Any]]) -> gpd.GeoDataFrame:
    geometry = shapely.points([r.lon for r in rows], [r.lat for r in rows]) if rows else []
    return gpd.GeoDataFrame(columns, geometry=list(geometry), crs=4326)


def _place_clause(filters: Filters, alias: str) -> str:
    if filters.community:
        return f"{alias}.community_code = :community"
    if filters.street:
        return f"{alias}.street_code = :street"
    return f"{alias}.district_code = :district"


def _params(filters: Filters, start: date, end: date) -> dict[str, Any]:
    return {"district": filters.district, "street": filters.street,
            "community": filters.community, "start": start, "end": end,
            "types": list(filters.hazard_types), "severities": list(filters.severities),
            "kind": filters.kind, "category": filters.category}


def load_events(session: Session, filters: Filters, start: date, end: date) -> gpd.GeoDataFrame:
    """Hazards (found) or incidents (occurred) in the period matching the filters."""
    if filters.events == "hazards":
        table, day, type_col, work_kind = "hazards", "found_on", "hazard_type", "p.kind"
    else:
        table, day, type_col, work_kind = "incidents", "occurred_on", "incident_type", \
            "COALESCE(p.kind, e.work_kind)"
    where = [_place_clause(filters, "e"), f"e.{day} BETWEEN :start AND :end"]
    if filters.hazard_types:
        where.append(f"e.{type_col} = ANY(:types)")
    if filters.severities:
        where.append("e.severity = ANY(:severities)")
    if filters.kind:
        where.append(f"{work_kind} = :kind")
    if filters.category:
        where.append("p.category = :category")
    rows = session.execute(
        text(
            f"""SELECT e.id, e.{day} AS day, e.{type_col} AS type,
                       ST_X(e.location) AS lon, ST_Y(e.location) AS lat
                FROM {table} e LEFT JOIN projects p ON p.id = e.project_id
                WHERE {' AND '.join(where)} ORDER BY e.id"""
        ),
        _params(filters, start, end),
    ).all()
    return _points(rows, {"id": [r.id for r in rows], "day": [r.day for r in rows],
                          "type": [r.type for r in rows]})


def _project_where(filters: Filters) -> list[str]:
    where = [_place_clause(filters, "p"), "p.accepted_on IS NOT NULL"]
    if filters.kind:
        where.append("p.kind = :kind")
    if filters.category:
        where.append("p.category = :category")
    return where


def load_projects(session: Session, filters: Filters, start: date, end: date) -> gpd.GeoDataFrame:
    """Projects active at any time in the period, located by a point on their site."""
    where = _project_where(filters) + [
        "p.accepted_on <= :end", "(p.closed_on IS NULL OR p.closed_on >= :start)"]
    rows = session.execute(
        text(
            f"""SELECT p.id, p.accepted_on, p.closed_on,
                       ST_X(ST_PointOnSurface(p.site)) AS lon,
                       ST_Y(ST_PointOnSurface(p.site)) AS lat
                FROM projects p WHERE {' AND '.join(where)} ORDER BY p.id"""
        ),
        _params(filters, start, end),
    ).all()
    return _points(rows, {"id": [r.id for r in rows],
                          "accepted_on": [r.accepted_on for r in rows],
                          "closed_on": [r.closed_on for r in rows]})


def load_visits(session: Session, filters: Filters, start: date, end: date) -> gpd.GeoDataFrame:
    """Patrol visits in the period to the projects the filters select, located by the site."""
    where = _project_where(filters) + ["v.visited_on BETWEEN :start AND :end"]
    rows = session.execute(
        text(
            f"""SELECT v.id, v.visited_on AS day,
                       ST_X(ST_PointOnSurface(p.site)) AS lon,
                       ST_Y(ST_PointOnSurface(p.site)) AS lat
                FROM patrol_visits v JOIN projects p ON p.id = v.project_id
                WHERE {' AND '.join(where)} ORDER BY v.id"""
        ),
        _params(filters, start, end),
    ).all()
    return _points(rows, {"id": [r.id for r in rows], "day": [r.day for r in rows]})


def _exposure_points(session: Session, filters: Filters, measure: str, start: date,
                     end: date) -> gpd.GeoDataFrame:
    if measure == "per_visit":
        return load_visits(session, filters, start, end)
    return load_projects(session, filters, start, end)


def _no_events(filters: Filters, start: date, end: date) -> NotEnoughDataError:
    chosen = {k: v for k, v in filters.describe().items() if v and k not in ("district",
                                                                             "events")}
    where = f" with {chosen}" if chosen else ""
    return NotEnoughDataError(
        f"{_NOT_ENOUGH}no {filters.events} from {start} to {end} in district "
        f"{filters.district}{where}"
    )


# --------------------------------------------------------------------------------------------
# The map
# --------------------------------------------------------------------------------------------


def _unit_values(
    frame: gpd.GeoDataFrame, events: gpd.GeoDataFrame, exposure: gpd.GeoDataFrame,
    *, measure: str, min_exposure: float,
) -> tuple[pd.DataFrame, int, int]:
    """``n``, ``exposure``, ``rate`` (Float64, NA without exposure), ``status`` per unit."""
    n, n_outside = count_points(frame, events)
    exposed, exposure_outside = count_points(frame, exposure)
    if measure == "count":
        table = pd.DataFrame({"n": n, "exposure": exposed,
                              "rate": pd.array(n.to_numpy(float), dtype="Float64"),
                              "status": "ok"})
    else:
        rates = rate(n, exposed, min_denominator=min_exposure)
        table = pd.DataFrame({"n": n, "exposure": exposed, "rate": rates["rate"],
                              "status": rates["status"]})
    return table, n_outside, exposure_outside


def hotspot_map(
    session: Session,
    *,
    filters: Filters,
    start: date | None = None,
    end: date | None = None,
    measure: str = "per_project",
    units: str = "grid",
    resolution: int = 9,
    cell_m: float = 500.0,
    statistic: str = "gi_star",
    fdr: bool = True,
    alpha: float = 0.05,
    min_exposure: float = 1.0,
) -> HotspotResult:
    """Per-unit counts, exposure, rate, z, p and class for one period, with the metadata."""
    began = time.perf_counter()
    _one_of("measure", measure, MEASURES)
    _one_of("statistic", statistic, STATISTICS)
    _check_levels(alpha, min_exposure)
    start, end = check_period(start, end)
    frame, about = build_units(session, filters, units=units, resolution=resolution,
                               cell_m=cell_m)
    events = load_events(session, filters, start, end)
    if len(events) == 0:
        raise _no_events(filters, start, end)
    exposure = _exposure_points(session, filters, measure, start, end)
    values, n_outside, exposure_outside = _unit_values(
        frame, events, exposure, measure=measure, min_exposure=min_exposure)
    w = _weights(frame)
    tested = hotspot_table(values["rate"], w, statistic=statistic, fdr=fdr, alpha=alpha)
    out = frame.join(values).join(tested.drop(columns=["value"]))
    out.loc[values["status"] == "no_exposure", "class"] = "no_exposure"
    classes = GI_CLASSES if statistic == "gi_star" else LISA_CLASSES
    meta = {
        "units": about,
        "measure": measure,
        "measure_means": MEASURES[measure],
        "events": filters.events,
        "statistic": statistic,
        "fdr": fdr,
        "alpha": alpha if statistic == "local_moran" else None,
        "confidence_levels": [0.99, 0.95, 0.90] if statistic == "gi_star" else None,
        "min_exposure": min_exposure if measure != "count" else None,
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "filters": filters.describe(),
        "n_events": len(events),
        "n_outside": n_outside,
        "n_exposure": len(exposure) if measure != "count" else None,
        "n_exposure_outside": exposure_outside if measure != "count" else None,
        "n_no_exposure": int((values["status"] == "no_exposure").sum()),
        "islands": [str(u) for u in out.index[out["class"] == "island"]],
        "weights": {"rule": "queen contiguity, binary (Gi*) / row-standardised (LISA), among "
                            "units with exposure", **tested.attrs["weights"]},
        "class_counts": _class_counts(out["class"], classes),
        "computed_ms": round((time.perf_counter() - began) * 1000.0, 1),
    }
    return HotspotResult(units=out, meta=_jsonable(meta))


def _check_levels(alpha: float, min_exposure: float) -> None:
    if not 0.0 < alpha < 1.0:
        msg = f"alpha: must be between 0 and 1, got {alpha!r}"
        raise GisError(msg)
    if not np.isfinite(min_exposure) or min_exposure <= 0:
        msg = f"min_exposure: must be positive, got {min_exposure!r}"
        raise GisError(msg)


def _class_counts(classes: pd.Series, order: tuple[str, ...]) -> dict[str, int]:
    counts = classes.value_counts()
    keys = [*order, "no_exposure", *sorted(set(counts.index) - set(order) - {"no_exposure"})]
    return {k: int(counts.get(k, 0)) for k in keys}


# --------------------------------------------------------------------------------------------
# Two periods
# --------------------------------------------------------------------------------------------


def compare(
    session: Session,
    *,
    filters: Filters,
    a_start: date,
    a_end: date,
    b_start: date,
    b_end: date,
    measure: str = "per_project",
    units: str = "grid",
    resolution: int = 9,
    cell_m: float = 500.0,
    fdr: bool = True,
    alpha: float = 0.05,
    min_exposure: float = 1.0,
) -> HotspotResult:
    """Gi* hot spots of period a (earlier) against period b (later), unit by unit."""
    began = time.perf_counter()
    _one_of("measure", measure, MEASURES)
    if alpha not in (0.01, 0.05, 0.1):
        msg = f"alpha: must be 0.01, 0.05 or 0.1 (the map's levels), got {alpha!r}"
        raise GisError(msg)
    _check_levels(alpha, min_exposure)
    periods = {"a": check_period(a_start, a_end, name="period a"),
               "b": check_period(b_start, b_end, name="period b")}
    if periods["a"][0] > periods["b"][0]:
        msg = "period a: must start before period b (a is the earlier period)"
        raise GisError(msg)
    frame, about = build_units(session, filters, units=units, resolution=resolution,
                               cell_m=cell_m)
    columns, meta_periods = {}, {}
    for name, (start, end) in periods.items():
        events = load_events(session, filters, start, end)
        if len(events) == 0:
            exc = _no_events(filters, start, end)
            raise NotEnoughDataError(str(exc).replace(_NOT_ENOUGH, f"{_NOT_ENOUGH}period {name}: "))
        exposure = _exposure_points(session, filters, measure, start, end)
        values, n_outside, _ = _unit_values(frame, events, exposure, measure=measure,
                                            min_exposure=min_exposure)
        columns[name] = values
        meta_periods[name] = {"start": start.isoformat(), "end": end.isoformat(),
                              "n_events": len(events), "n_outside": n_outside}
    both = ((columns["a"]["status"] == "ok") & (columns["b"]["status"] == "ok")).to_numpy()
    if not both.any():
        raise NotEnoughDataError(f"{_NOT_ENOUGH}no unit has exposure in both periods")
    w = _weights(frame)
    tested_ids = frame.index[both]
    tested_w = w if both.all() else w.subset(tested_ids)
    result = compare_periods(
        columns["a"]["rate"][both].to_numpy(float), columns["b"]["rate"][both].to_numpy(float),
        tested_w, alpha=alpha, fdr=fdr)
    out = frame.copy()
    for name in ("a", "b"):
        for col in ("n", "exposure", "rate"):
            out[f"{col}_{name}"] = columns[name][col]
    out["z_a"], out["z_b"] = 0.0, 0.0
    out["class_a"], out["class_b"], out["change"] = "no_exposure", "no_exposure", "no_exposure"
    for col in ("z_a", "z_b", "class_a", "class_b", "change"):
        out.loc[tested_ids, col] = result[col].to_numpy()
    out["status"] = np.where(both, "ok", "no_exposure")
    changes = ("new_hot", "persisting_hot", "ceased_hot", "hot_to_cold", "new_cold",
               "persisting_cold", "ceased_cold", "cold_to_hot", "none", "island")
    meta = {
        "units": about, "measure": measure, "measure_means": MEASURES[measure],
        "events": filters.events, "statistic": "gi_star", "fdr": fdr, "alpha": alpha,
        "periods": meta_periods, "filters": filters.describe(), "rule": COMPARE_RULE,
        "n_outside": sum(p["n_outside"] for p in meta_periods.values()),
        "islands": [str(u) for u in out.index[out["change"] == "island"]],
        "weights": {"rule": "queen contiguity, binary, among units with exposure in both "
                            "periods", **tested_w.describe()},
        "class_counts": _class_counts(out["change"], changes),
        "computed_ms": round((time.perf_counter() - began) * 1000.0, 1),
    }
    return HotspotResult(units=out, meta=_jsonable(meta))


# --------------------------------------------------------------------------------------------
# Emerging hot spots (space-time cube)
# --------------------------------------------------------------------------------------------


def _exposure_cube(frame: gpd.GeoDataFrame, exposure: gpd.GeoDataFrame, measure: str,
                   bins: pd.PeriodIndex, start: date, end: date) -> pd.DataFrame:
    if measure == "per_visit":
        cube, _ = space_time_counts(frame, exposure, time_col="day", freq=bins.freqstr[0],
                                    start=start, end=end)
        return cube.reindex(columns=bins, fill_value=0)
    accepted = pd.to_datetime(exposure["accepted_on"])
    closed = pd.to_datetime(exposure["closed_on"])
    columns = {}
    for period in bins:
        active = (accepted <= period.end_time) & (closed.isna() | (closed >= period.start_time))
        columns[period] = count_points(frame, exposure.loc[active.to_numpy()])[0]
    return pd.DataFrame(columns, index=frame.index)


def emerging(
    session: Session,
    *,
    filters: Filters,
    start: date | None = None,
    end: date | None = None,
    freq: str = "M",
    measure: str = "per_project",
    units: str = "grid",
    resolution: int = 9,
    cell_m: float = 500.0,
    fdr: bool = True,
    alpha: float = 0.05,
    min_exposure: float = 1.0,
) -> HotspotResult:
    """Emerging hot spot class of each unit over monthly (or weekly) bins."""
    began = time.perf_counter()
    _one_of("measure", measure, MEASURES)
    _one_of("freq", freq, ("M", "W"))
    _check_levels(alpha, min_exposure)
    if end is None and start is None:
        last = pd.Period(today_cn(), freq)
        end, start = last.end_time.date(), (last - 11).start_time.date()
    start, end = check_period(start, end)
    frame, about = build_units(session, filters, units=units, resolution=resolution,
                               cell_m=cell_m)
    events = load_events(session, filters, start, end)
    if len(events) == 0:
        raise _no_events(filters, start, end)
    cube, n_outside = space_time_counts(frame, events, time_col="day", freq=freq, start=start,
                                        end=end)
    bins, counts_total = cube.columns, cube.sum(axis=1)
    exposed = np.ones(len(frame), dtype=bool)
    if measure != "count":
        exposure = _exposure_points(session, filters, measure, start, end)
        exposure_cube = _exposure_cube(frame, exposure, measure, bins, start, end)
        exposed = (exposure_cube >= min_exposure).all(axis=1).to_numpy()
        if not exposed.any():
            raise NotEnoughDataError(
                f"{_NOT_ENOUGH}no unit has exposure in every one of the {len(bins)} bins; "
                "use larger units or measure=count")
        values = cube[exposed].to_numpy(float) / exposure_cube[exposed].to_numpy(float)
        cube = pd.DataFrame(values, index=frame.index[exposed], columns=bins)
    w = _weights(frame)
    tested_w = w if exposed.all() else w.subset(frame.index[exposed])
    result = EmergingHotSpots(cube, tested_w, alpha=alpha, fdr=fdr)
    out = frame.copy()
    out["n"] = counts_total
    out["category"] = "no_exposure"
    out["trend_z"], out["trend_p"], out["bins_hot"], out["bins_cold"] = 0.0, 1.0, 0, 0
    ids = tested_w.ids
    out.loc[ids, "category"] = result.category.to_numpy()
    out.loc[ids, "trend_z"] = result.trend_z.to_numpy()
    out.loc[ids, "trend_p"] = result.trend_p.to_numpy()
    out.loc[ids, "bins_hot"] = result.hot.sum(axis=1).to_numpy()
    out.loc[ids, "bins_cold"] = result.cold.sum(axis=1).to_numpy()
    out["status"] = np.where(exposed, "ok", "no_exposure")
    meta = {
        "units": about, "measure": measure, "measure_means": MEASURES[measure],
        "events": filters.events, "statistic": "gi_star", "fdr": fdr, "alpha": alpha,
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "freq": freq, "bins": [str(b) for b in bins], "filters": filters.describe(),
        "rule": EMERGING_RULE,
        "exposure_rule": None if measure == "count" else (
            "units tested only where exposure reaches min_exposure in every bin"),
        "n_events": len(events), "n_outside": n_outside,
        "islands": [str(u) for u in out.index[out["category"] == "island"]],
        "weights": {"rule": "queen contiguity, binary, among tested units",
                    **tested_w.describe()},
        "class_counts": _class_counts(out["category"], EMERGING_CLASSES),
        "computed_ms": round((time.perf_counter() - began) * 1000.0, 1),
    }
    return HotspotResult(units=out, meta=_jsonable(meta))


# --------------------------------------------------------------------------------------------
# Density and clusters of the points
# --------------------------------------------------------------------------------------------


def density(
    session: Session,
    *,
    filters: Filters,
    start: date | None = None,
    end: date | None = None,
    cell_m: float = 100.0,
    bandwidth_m: float | None = None,
    output: str = "contours",
) -> dict[str, Any]:
    """Quartic kernel density of the events as cells or contours (a FeatureCollection)."""
    _one_of("output", output, ("contours", "cells"))
    start, end = check_period(start, end)
    events = load_events(session, filters, start, end)
    if len(events) == 0:
        raise _no_events(filters, start, end)
    try:
        surface = kernel_density(events, cell_m=cell_m, bandwidth_m=bandwidth_m,
                                 extent=_area(session, filters))
    except NotEnoughDataError:
        raise
    except GisError as exc:
        raise GisError(f"cell_m: {exc}") from exc
    layer = surface.contours() if output == "contours" else surface.cells()
    collection = _collection(layer.drop(columns=[c for c in ("row", "col") if c in layer]))
    return _jsonable({
        **collection,
        "output": output,
        "cell_m": surface.cell_m,
        "bandwidth_m": round(surface.bandwidth_m, 1),
        "bandwidth_rule": surface.bandwidth_rule,
        "density_unit": "events per km²",
        "max_density": float(surface.values.max()),
        "metric_crs": surface.crs,
        "n_points": surface.n_points,
        "note": "density of raw events, not normalised by exposure; use /api/hotspots for rates",
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "filters": filters.describe(),
    })


def clusters(
    session: Session,
    *,
    filters: Filters,
    start: date | None = None,
    end: date | None = None,
    eps_m: float = 200.0,
    min_samples: int = 5,
    hull: str = "convex",
) -> dict[str, Any]:
    """DBSCAN clusters of the events (metres) and their outlines (a FeatureCollection)."""
    _one_of("hull", hull, ("convex", "concave"))
    start, end = check_period(start, end)
    events = load_events(session, filters, start, end)
    if len(events) == 0:
        raise _no_events(filters, start, end)
    result = dbscan_clusters(events, eps_m=eps_m, min_samples=min_samples, hull=hull)
    layer = result.clusters.copy()
    if len(layer):
        counts = events.assign(cluster=result.labels.to_numpy())
        by_type = counts[counts["cluster"] >= 0].groupby("cluster")["type"].agg(
            lambda s: s.value_counts().to_dict())
        layer["types"] = [by_type.get(c, {}) for c in layer["cluster"]]
        layer["area_m2"] = layer["area_m2"].round(1)
    return _jsonable({
        **_collection(layer),
        "eps_m": result.eps_m,
        "min_samples": result.min_samples,
        "hull": hull,
        "n_points": len(events),
        "n_clusters": len(layer),
        "n_noise": result.n_noise,
        "metric_crs": result.metric_crs,
        "note": "clusters of raw events, not normalised by exposure",
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "filters": filters.describe(),
    })


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _round_geometries(geoms: Any) -> list[dict[str, Any] | None]:
    rounded = shapely.transform(np.asarray(geoms, dtype=object), lambda xy: np.round(xy, 6))
    return [None if g is None else json.loads(shapely.to_geojson(g)) for g in rounded]


def _value(v: Any) -> Any:
    """A JSON value: numpy scalars as Python ones, NA/NaN/inf as null."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer, int)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, pd.Period | pd.Timestamp | date):
        return str(v)
    return v


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return _value(obj)


def _collection(layer: gpd.GeoDataFrame) -> dict[str, Any]:
    geometries = _round_geometries(layer.geometry.to_numpy())
    props = pd.DataFrame(layer.drop(columns=layer.geometry.name))
    records = props.to_dict(orient="records")
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "geometry": g, "properties": _jsonable(r)}
                         for g, r in zip(geometries, records, strict=True)]}


def _rounded_columns(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    for col in out.columns:
        if col.startswith("rate") or col.startswith("z") or col == "trend_z":
            out[col] = out[col].astype("Float64").round(6)
        elif col in ("p", "trend_p"):
            out[col] = out[col].astype(float).map(lambda v: float(f"{v:.6g}"))
    return out


def feature_collection(result: HotspotResult) -> dict[str, Any]:
    """The result as an RFC 7946 FeatureCollection (6 decimals), metadata at the top level."""
    props = _rounded_columns(result.units).reset_index()
    geometries = _round_geometries(result.units.geometry.to_numpy())
    features = [
        {"type": "Feature", "id": _value(r["unit_id"]), "geometry": g,
         "properties": _jsonable(r)}
        for g, r in zip(geometries, props.to_dict(orient="records"), strict=True)
    ]
    return {"type": "FeatureCollection", **result.meta, "features": features}


def csv_text(result: HotspotResult) -> str:
    """One row per unit, with the centroid's lon/lat (the metadata is in the GeoJSON)."""
    frame = _rounded_columns(result.units).reset_index()
    centroid = shapely.centroid(result.units.geometry.to_numpy())
    frame["lon"] = np.round(shapely.get_x(centroid), 6)
    frame["lat"] = np.round(shapely.get_y(centroid), 6)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return buffer.getvalue()
