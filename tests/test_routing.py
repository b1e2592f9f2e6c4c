"""gis.routing: daily plans on hand-built matrices, a Futian day, reasons, pins, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gis._errors import GisError
from gis.matrix import travel_matrix
from gis.roads import load_road_network
from gis.routing import (
    REASONS,
    Break,
    Inspector,
    PeriodicSite,
    Plan,
    Site,
    plan_day,
    plan_week,
)

H = 3600.0
FUTIAN = "shenzhen_transbigdata/futian_osm_network_osmnx.graphml"


def line_matrix(n: int, minutes_apart: float = 10.0) -> np.ndarray:
    """Places 0..n-1 on a line, ``minutes_apart`` between neighbours."""
    x = np.arange(n, dtype=float)
    return np.abs(x[:, None] - x[None, :]) * minutes_apart * 60.0


def check_plan(plan: Plan, inspectors, sites, durations) -> None:
    """Every promise of a plan, recomputed from its inputs."""
    by_id = {s.id: s for s in sites}
    served = [sid for r in plan.routes for sid in r.site_ids]
    assert len(served) == len(set(served))
    left = [lo.site_id for lo in plan.left_out]
    assert sorted(served + left) == sorted(by_id)  # each site served or explained, once
    assert all(lo.reason in REASONS for lo in plan.left_out)
    assert all(
        lo.reason == "mandatory_infeasible" for lo in plan.left_out if by_id[lo.site_id].mandatory
    )
    for insp, route in zip(inspectors, plan.routes, strict=True):
        assert route.inspector_id == insp.id
        T = durations[insp.mode] if isinstance(durations, dict) else durations
        t, loc = insp.shift_start_s, insp.start_index
        for stop in route.stops:
            site = by_id[stop.site_id]
            if insp.allowed_sites is not None:
                assert site.id in insp.allowed_sites
            assert stop.travel_s == pytest.approx(T[loc, site.location_index])
            assert stop.arrival_s >= t + stop.travel_s - 1e-6
            assert stop.start_s >= stop.arrival_s - 1e-6
            if site.time_window is not None:
                assert site.time_window[0] - 1e-6 <= stop.start_s <= site.time_window[1] + 1e-6
            assert stop.departure_s == pytest.approx(stop.start_s + site.service_s)
            if route.rest is not None:  # the break does not overlap an inspection
                assert route.rest.end_s <= stop.start_s + 1e-6 or route.rest.start_s >= (
                    stop.departure_s - 1e-6
                )
            t, loc = stop.departure_s, site.location_index
        end = insp.end_index if insp.end_index is not None else insp.start_index
        assert route.return_s >= t + T[loc, end] - 1e-6
        assert route.return_s <= insp.shift_end_s + 1e-6
        if insp.rest is not None:
            assert route.rest is not None
            assert insp.rest.earliest_start_s - 1e-6 <= route.rest.start_s
            assert route.rest.start_s <= insp.rest.latest_start_s + 1e-6
            assert route.rest.end_s - route.rest.start_s == pytest.approx(insp.rest.duration_s)
        if insp.max_stops is not None:
            assert len(route.stops) <= insp.max_stops


def test_mandatory_site_is_kept_over_valuable_optional_ones():
    T = line_matrix(8)
    # Office at 3; two hours: one trip to either end (40 min each way) plus 30 min on site.
    insp = Inspector("wang", 3, 8 * H, 10 * H)
    sites = [
        Site("far-mandatory", 0, 1800, mandatory=True),
        Site("rich-1", 6, 600, value=50),
        Site("rich-2", 7, 600, value=50),
    ]
    plan = plan_day([insp], sites, T, deadline_s=2)
    check_plan(plan, [insp], sites, T)
    assert plan.route_of("wang").site_ids == ("far-mandatory",)
    assert plan.mandatory_served == plan.mandatory_total == 1
    assert plan.left_out_reasons() == {"rich-1": "no_time_left", "rich-2": "no_time_left"}


def test_each_left_out_reason():
    T = line_matrix(10)
    T[9, :] = np.inf  # place 9 has no road to anywhere (off the network)
    T[:, 9] = np.inf
    T[9, 9] = 0.0
    insp = Inspector(
        "li",
        0,
        8 * H,
        12 * H,
        allowed_sites=frozenset({"ok-1", "ok-2", "ok-3", "late", "island", "busy", "m-late"}),
    )
    sites = [
        Site("ok-1", 1, 1200, value=3),
        Site("ok-2", 2, 1200, value=3),
        Site("ok-3", 3, 1200, value=3),
        Site("elsewhere", 2, 600),  # not in li's area
        Site("island", 9, 600),
        Site("late", 8, 600, time_window=(7 * H, 8.5 * H)),  # 80 min away, closes at 08:30
        Site("busy", 7, 3 * H, value=1),  # 70 + 180 + 70 min: longer than the 4 h shift
        Site("m-late", 6, 600, time_window=(8 * H, 8.5 * H), mandatory=True),
    ]
    plan = plan_day([insp], sites, T, deadline_s=2)
    check_plan(plan, [insp], sites, T)
    reasons = plan.left_out_reasons()
    assert reasons["elsewhere"] == "not_in_any_area"
    assert reasons["island"] == "unreachable"
    assert reasons["late"] == "time_window"
    assert reasons["busy"] == "unreachable"  # cannot go, inspect and return within the shift
    left = {lo.site_id: lo for lo in plan.left_out}
    assert left["m-late"].reason == "mandatory_infeasible"
    assert left["m-late"].constraint == "time_window"
    assert "mandatory" in left["m-late"].detail
    assert set(plan.route_of("li").site_ids) == {"ok-1", "ok-2", "ok-3"}


def test_no_time_left_and_max_stops():
    T = line_matrix(6, minutes_apart=5)
    insp = [
        Inspector("a", 0, 8 * H, 10 * H),
        Inspector("b", 0, 8 * H, 17 * H, max_stops=2),
    ]
    sites = [Site(f"s{i}", 1 + i % 5, 1800, value=1 + i % 3) for i in range(12)]
    plan = plan_day(insp, sites, T, deadline_s=2)
    check_plan(plan, insp, sites, T)
    assert len(plan.route_of("b").stops) == 2
    assert len(plan.left_out) == 12 - len(plan.served_site_ids) > 0
    assert {lo.reason for lo in plan.left_out} == {"no_time_left"}
    # The sites kept are the valuable ones: value collected is the best possible.
    assert plan.value == sum(
        sorted((s.value for s in sites), reverse=True)[: len(plan.served_site_ids)]
    )


def test_time_windows_are_respected():
    T = line_matrix(7)
    insp = [Inspector("a", 0, 8 * H, 17 * H), Inspector("b", 6, 8 * H, 17 * H)]
    windows = [(9 * H, 9.5 * H), (14 * H, 15 * H), (8 * H, 8.6 * H), (11 * H, 11.2 * H), None]
    sites = [
        Site(f"w{i}", 1 + i, 1200, time_window=w, mandatory=i % 2 == 0)
        for i, w in enumerate(windows)
    ]
    plan = plan_day(insp, sites, T, deadline_s=2)
    check_plan(plan, insp, sites, T)
    assert plan.served_site_ids == {s.id for s in sites}
    waits = [s.wait_s for r in plan.routes for s in r.stops]
    assert max(waits) > 0  # someone arrives early and waits for a window


def test_break_is_placed_inside_its_window():
    T = line_matrix(5)
    rest = Break(12 * H, 13 * H, H)
    insp = Inspector("zhao", 0, 8 * H, 17 * H, rest=rest)
    sites = [
        Site("morning", 2, 1800, time_window=(9 * H, 10 * H)),
        Site("noon", 3, 1800, time_window=(12 * H, 13.5 * H), mandatory=True),
        Site("afternoon", 4, 1800, time_window=(14 * H, 15 * H)),
        Site("any", 1, 1800),
    ]
    plan = plan_day([insp], sites, T, deadline_s=2)
    check_plan(plan, [insp], sites, T)
    assert plan.served_site_ids == {s.id for s in sites}
    route = plan.route_of("zhao")
    assert route.rest is not None and 12 * H <= route.rest.start_s <= 13 * H


def test_pins_and_fixed_order_are_honoured():
    T = line_matrix(9)
    insp = [Inspector("a", 0, 8 * H, 17 * H), Inspector("b", 8, 8 * H, 17 * H)]
    sites = [Site(f"s{i}", i, 600) for i in range(1, 8)]
    # s1 sits next to a's office, but the dispatcher pins it on b; a must start with s6 then s2.
    plan = plan_day(
        insp, sites, T, deadline_s=2, pins={"s1": "b"}, fixed_orders={"a": ["s6", "s2"]}
    )
    check_plan(plan, insp, sites, T)
    assert "s1" in plan.route_of("b").site_ids
    a_stops = plan.route_of("a").stops
    assert [s.site_id for s in a_stops[:2]] == ["s6", "s2"]
    assert a_stops[0].fixed and a_stops[1].fixed
    assert not any(s.fixed for s in a_stops[2:])


def test_too_many_mandatory_sites_are_named_not_dropped():
    T = line_matrix(6)
    insp = Inspector("sun", 0, 8 * H, 11 * H)
    sites = [Site(f"m{i}", 1 + i % 5, 40 * 60, mandatory=True) for i in range(8)]
    plan = plan_day([insp], sites, T, deadline_s=2)
    check_plan(plan, [insp], sites, T)
    assert plan.solver == "pyvrp+soft-mandatory"
    assert plan.mandatory_served == len(plan.served_site_ids) >= 3
    assert plan.mandatory_served + len(plan.left_out) == 8
    assert {(lo.reason, lo.constraint) for lo in plan.left_out} == {
        ("mandatory_infeasible", "shift_time")
    }


def test_deadline_is_respected():
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 6000, (151, 2))
    T = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) / 4.0
    insp = [Inspector(f"i{k}", 0, 8 * H, 17 * H, rest=Break(12 * H, 13 * H, H)) for k in range(5)]
    sites = [
        Site(
            f"s{i}",
            i,
            900,
            time_window=(10 * H, 12 * H) if i % 7 == 0 else None,
            mandatory=i % 10 == 0,
            value=float(i % 4 + 1),
        )
        for i in range(1, 151)
    ]
    plan = plan_day(insp, sites, T, deadline_s=1.5)
    assert plan.solve_s <= 1.5 + 0.1
    check_plan(plan, insp, sites, T)
    assert plan.mandatory_served == plan.mandatory_total == 15


def test_bad_inputs_are_refused_with_clear_messages():
    T = line_matrix(4)
    a = Inspector("a", 0, 8 * H, 17 * H, allowed_sites=frozenset({"s1"}))
    b = Inspector("b", 0, 8 * H, 17 * H)
    sites = [Site("s1", 1, 600), Site("s2", 2, 600)]
    cases = [
        (([], sites, T), {}, "no inspectors"),
        (([a, b], sites, T[:2, :2]), {}, "index 2 is used"),
        (([a, b], sites, T[:, :3]), {}, "square"),
        (([a, a], sites, T), {}, "appears twice"),
        (([Inspector("c", 0, 17 * H, 8 * H)], sites, T), {}, "shift ends"),
        (([a, b], sites, np.where(T > 0, T, np.nan)), {}, "NaN"),
        (([a, b], sites, T), {"pins": {"s2": "a"}}, "contradictory pin"),
        (([a, b], sites, T), {"pins": {"s9": "a"}}, "unknown site"),
        (([a, b], sites, T), {"fixed_orders": {"b": ["s1"], "a": ["s1"]}}, "contradictory pins"),
        (([a, b], sites, T), {"pins": {"s1": "a"}, "fixed_orders": {"b": ["s1"]}}, "pinned to"),
        (([a, b], [Site("s1", 1, 600, time_window=(9 * H, 8 * H))], T), {}, "time window"),
        (([a, b], sites, T), {"deadline_s": 0}, "deadline_s"),
        (([a, b], sites, {"car": T}), {}, "no matrix for travel mode 'walk'"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(GisError, match=message):
            plan_day(*args, **kwargs)
    # An inspector who cannot reach any of their sites: the shift is shorter than any round trip.
    short = Inspector("short", 0, 8 * H, 8.2 * H)
    with pytest.raises(GisError, match="cannot reach any of their 2 sites"):
        plan_day([short], sites, T)
    # A fixed order that cannot be kept in time.
    late = Site("late", 3, 600, time_window=(8 * H, 8.1 * H))
    with pytest.raises(GisError, match="cannot be kept"):
        plan_day([b], [*sites, late], T, fixed_orders={"b": ["s2", "late"]})


def test_straight_line_matrix_can_be_planned():
    lon = np.array([114.03, 114.02, 114.035, 114.04, 114.025])
    lat = np.array([22.54, 22.53, 22.545, 22.52, 22.55])
    m = travel_matrix(None, lon, lat, mode="ebike")
    insp = Inspector("e", 0, 8 * H, 12 * H, mode="ebike")
    sites = [Site(f"s{i}", i, 900, value=1) for i in range(1, 5)]
    plan = plan_day([insp], sites, m, deadline_s=1)
    assert m.method == "straight_line"
    assert plan.served_site_ids == {s.id for s in sites}
    assert plan.distance_m == pytest.approx(
        sum(
            m.distances_m[a, b]
            for a, b in zip(
                plan.routes[0].location_sequence[:-1],
                plan.routes[0].location_sequence[1:],
                strict=True,
            )
        )
    )


def test_futian_day_30_sites_3_inspectors(realdata, tmp_path):
    net = load_road_network(realdata / FUTIAN, mode="ebike", cache_dir=tmp_path)
    rng = np.random.default_rng(11)
    edges = rng.choice(np.flatnonzero(net.edge_is_canonical), 32, replace=False)
    pts = [net.edge_geometry[e].interpolate(0.5, normalized=True) for e in edges]
    lon = np.array([p.x for p in pts])
    lat = np.array([p.y for p in pts])
    m = travel_matrix(net, lon, lat)
    assert m.reachable.all()
    inspectors = [
        Inspector("zhang", 0, 8.5 * H, 17.5 * H, mode="ebike", rest=Break(12 * H, 13.5 * H, H)),
        Inspector("wang", 1, 8.5 * H, 17.5 * H, mode="ebike", rest=Break(12 * H, 13.5 * H, H)),
        Inspector("li", 0, 13 * H, 17.5 * H, mode="ebike", end_index=1),
    ]
    sites = []
    for i in range(30):
        window = (14 * H, 16 * H) if i % 6 == 0 else None
        sites.append(
            Site(f"site{i:02d}", 2 + i, 1200, time_window=window, mandatory=i % 5 == 0, value=2)
        )
    plan = plan_day(inspectors, sites, {"ebike": m}, deadline_s=3)
    check_plan(plan, inspectors, sites, {"ebike": m.durations_s})
    assert plan.mandatory_served == plan.mandatory_total == 6
    assert len(plan.served_site_ids) >= 25
    assert plan.solve_s <= 3.1
    assert math.isfinite(plan.distance_m) and plan.distance_m > 0
    assert all(s.arrival_s >= 13 * H for s in plan.route_of("li").stops)


def test_plan_week_meets_visit_frequencies():
    T = line_matrix(13, minutes_apart=4)
    inspectors = [Inspector("a", 0, 9 * H, 12 * H), Inspector("b", 12, 9 * H, 12 * H)]
    sites = [
        PeriodicSite(Site(f"h{i}", 1 + i, 1200), high_risk=True, days_since_visit=i % 3)
        for i in range(4)
    ] + [
        PeriodicSite(Site(f"n{i}", 5 + i, 1200, value=2), days_since_visit=None if i < 3 else 5)
        for i in range(7)
    ]
    week = plan_week(inspectors, sites, T, days=7, deadline_s=0.5)
    assert len(week.days) == 7
    visits: dict[str, list[int]] = {}
    for day, plan in enumerate(week.days):
        for sid in plan.served_site_ids:
            visits.setdefault(sid, []).append(day)
        # High-risk visits are mandatory on their day.
        assert all(lo.site_id[0] != "h" for lo in plan.left_out)
    for i in range(4):  # high risk: first visit no later than due, then every 3 days at most
        days = visits[f"h{i}"]
        assert days[0] <= 3 - i % 3
        assert all(b - a <= 3 for a, b in zip(days, days[1:], strict=False))
        assert 7 - 1 - days[-1] < 3
    for i in range(3):  # never visited: due on day 0
        assert visits[f"n{i}"] == [0]
    for i in range(3, 7):  # visited 5 days ago, every 7 days: once, by day 2
        assert len(visits[f"n{i}"]) == 1 and visits[f"n{i}"][0] <= 2
    assert week.visits_made == week.visits_required and not week.missed
    with pytest.raises(GisError, match="days"):
        plan_week(inspectors, sites, T, days=0)


def test_plan_week_balances_free_visits_across_days():
    T = line_matrix(15, minutes_apart=3)
    inspectors = [Inspector("a", 0, 9 * H, 17 * H)]
    # Visited yesterday, weekly: each may go on any day of the week.
    sites = [PeriodicSite(Site(f"s{i}", 1 + i, 1800), days_since_visit=1) for i in range(14)]
    week = plan_week(inspectors, sites, T, days=7, deadline_s=0.3)
    assert [len(a) for a in week.assigned] == [2] * 7
    assert week.visits_made == week.visits_required == 14
    assert max(week.load_s) - min(week.load_s) < 1800 + 3 * 180
