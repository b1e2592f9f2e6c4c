"""Daily patrol planning: which inspector visits which sites, in which order, and when.

The problem is a prize-collecting vehicle routing problem with time windows and several
depots: each inspector leaves a start location at the start of the shift and must be back at
an end location by its end; a site takes a service (inspection) time and may have a window
for the *start* of the inspection; **mandatory** sites (high-risk works, complaints, a
briefing due today) must be served whenever at all possible; **optional** sites carry a value,
and the plan collects as much value as it can, then spends as little travel time as it can.
Prizes are scaled so that this order is (for practical purposes) lexicographic: one more
mandatory site beats any set of optional ones, and more value beats less travel.

Solver
    PyVRP's iterated local search, chosen by measurement against OR-Tools routing and VROOM
    (``bench/``, 2 shared cores, 10 s per plan). Solomon VRPTW, 37 instances, fleet fixed at
    the best-known vehicle count: this planner served every customer on 37/37 (mean gap to
    the best-known distance 0.35 %), PyVRP with defaults on 35/37 (0.09 %), VROOM on 26/37,
    OR-Tools with defaults on none, OR-Tools with guided local search on 19/37. TSPLIB
    (< 100 cities, 4 s): mean gap 0.05 %, max 0.75 %, against VROOM's 0.62 % and 4.71 %.
    A 10-inspector, 300-site Futian day: value 502 against VROOM's 499 (exploration level 5),
    with 686 against 710 travel minutes. The search stops at the caller's deadline
    (``deadline_s``, wall clock, model building included), or earlier once it has converged;
    PyVRP checks its stop criterion between iterations of a few milliseconds (measured
    overshoot ≤ 3 ms on the Futian day), so it runs in-process, without a subprocess to kill.
    Sites are reached only by the inspectors allowed to visit them (one routing profile per
    allowed set), and each site's granular neighbourhood keeps only sites a common inspector
    may visit. Mandatory sites are first *required*; if no feasible plan is found within
    70 % of the time, they become optional with an overwhelming prize, so that the plan serves
    as many as can be served and names the rest.

What comes back
    Per inspector, the ordered stops with arrival, start and departure times, the totals,
    and the break if any; and every site left out, with a reason from :data:`REASONS`:

    ``'not_in_any_area'``
        outside every inspector's allowed sites (``Inspector.allowed_sites``, pins);
    ``'unreachable'``
        no road path (a row or column of ``inf`` in the matrix: off the network), or too
        far to get there, inspect and get back within any eligible shift;
    ``'time_window'``
        its window cannot be met by any eligible inspector, even visiting it alone;
    ``'no_time_left'``
        feasible alone, but did not fit (shift time, ``max_stops``, ``max_workload``);
    ``'mandatory_infeasible'``
        a mandatory site left out for any of the reasons above; ``LeftOut.constraint``
        names the constraint (:data:`CONSTRAINTS`).

Breaks
    PyVRP has no break model. The first half of the search reserves each break by ending that
    shift ``duration_s`` earlier; the break is then placed on each route where the inspector
    is (after a stop, or on arrival while waiting for a window) so that the day ends earliest,
    and the second half of the search, warm-started, treats the break as a visit at that
    place with its time window: later windows are then planned exactly. If a route still
    cannot take its break, its least valuable optional stop is dropped (``'no_time_left'``,
    constraint ``'break'``), and dropped sites are re-inserted wherever they fit.

Workload balance
    The search minimises travel, which happily gives one inspector a full day and the next
    one a light one (two inspectors sharing an office, sites clustered near one of them).
    With ``balance`` (plan_day) the finished plan is evened out by relocating stops from the
    busiest inspector (working time = travel + inspection, plus ``prior_load_s``: what they
    already did this week) to lighter eligible ones, as long as each move lowers the busier
    of the two by at least a minute and adds at most ``balance`` seconds of travel per second
    it takes off. Sites served, mandatory or not, never change: only who serves them.
    :func:`plan_week` balances by default, carrying each inspector's load from day to day, so
    the week is fair across inspectors and not only across days. What it did is in
    :class:`Balance` (load spread before and after, moves, extra travel).

Pins
    ``pins`` restricts a site to one inspector; ``fixed_orders`` gives an inspector's first
    stops in a fixed order (served before anything else, whatever their priority). The solver
    then starts that inspector at the last fixed stop when it is left.

Times are seconds since midnight of the plan's day (any origin works if used consistently);
matrix entries are travel seconds, ``inf`` where there is no path.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from gis._errors import GisError
from gis.matrix import TravelMatrix
from gis.roads import MODES

__all__ = [
    "REASONS",
    "CONSTRAINTS",
    "Break",
    "Inspector",
    "Site",
    "Stop",
    "BreakTaken",
    "Balance",
    "InspectorRoute",
    "LeftOut",
    "Plan",
    "plan_day",
    "PeriodicSite",
    "WeekPlan",
    "plan_week",
]

logger = logging.getLogger(__name__)

REASONS = ("not_in_any_area", "unreachable", "time_window", "no_time_left", "mandatory_infeasible")
"""Why a site is not in the plan."""

CONSTRAINTS = (
    "area",
    "reachability",
    "shift_length",
    "time_window",
    "max_stops",
    "max_workload",
    "shift_time",
    "break",
)
"""The constraint behind a left-out site (``LeftOut.constraint``)."""

_REASON_OF = {
    "area": "not_in_any_area",
    "reachability": "unreachable",
    "shift_length": "unreachable",
    "time_window": "time_window",
    "max_stops": "no_time_left",
    "max_workload": "no_time_left",
    "shift_time": "no_time_left",
    "break": "no_time_left",
}
_EPS = 1e-6
_INFEASIBLE_COST = np.iinfo(np.int64).max
_UNLIMITED = 1 << 40  # capacity "without limit" and the cost of a forbidden move
# Wall time kept after the search to build the result, and to fit breaks (at most 10 %).
_POST_MARGIN_S = 0.1
_POST_MARGIN_BREAKS_S = 0.25
# Share of the search spent looking for a plan that serves every mandatory site before
# settling for one that serves as many as it can (the rest then says why).
_PHASE1_SHARE = 0.7
_NUM_NEIGHBOURS = 50  # granular neighbourhood size
# Late-acceptance history of PyVRP's iterated local search (see _search).
_HISTORY_SINGLE_ROUTE = 300
_HISTORY_ROUTES = 30
# Converged after this many iterations without improvement (small problems return early).
_PATIENCE_BASE = 5000
_PATIENCE_PER_CLIENT = 100
_PASS1_SHARE = 0.5  # with breaks: share of the search before breaks become clients
# Balancing: time kept for it at the end of the deadline; smallest gain worth a move.
_BALANCE_RESERVE_SHARE = 0.1
_BALANCE_RESERVE_MAX_S = 1.0
_BALANCE_MIN_GAIN_S = 60.0
_BALANCE_POSITIONS = 3  # cheapest insertion positions tried per route


@dataclass(frozen=True)
class Break:
    """A break in an inspector's shift (lunch).

    Attributes
    ----------
    earliest_start_s, latest_start_s
        Window for the start of the break.
    duration_s
        Length of the break.
    """

    earliest_start_s: float
    latest_start_s: float
    duration_s: float


@dataclass(frozen=True)
class Inspector:
    """A patrol inspector's day.

    Attributes
    ----------
    id
        Unique id.
    start_index
        Matrix index of where the day starts (office, home).
    shift_start_s, shift_end_s
        The shift: leave the start no earlier, be at the end no later.
    end_index
        Matrix index of where the day ends; default ``start_index``.
    rest
        Optional break.
    mode
        ``'walk'``, ``'ebike'`` or ``'car'``: picks the matrix when one per mode is given.
    allowed_sites
        Ids of the sites this inspector may visit (their grid / community), or ``None`` for any.
    max_stops
        Most sites in a day, or ``None``.
    max_workload
        Most workload points in a day (``Site.workload``), or ``None``.
    """

    id: str
    start_index: int
    shift_start_s: float
    shift_end_s: float
    _: KW_ONLY
    end_index: int | None = None
    rest: Break | None = None
    mode: str = "walk"
    allowed_sites: frozenset[str] | None = None
    max_stops: int | None = None
    max_workload: int | None = None


@dataclass(frozen=True)
class Site:
    """A site to inspect.

    Attributes
    ----------
    id
        Unique id.
    location_index
        Matrix index of the site.
    service_s
        Time on site (the inspection).
    time_window
        ``(earliest, latest)`` start of the inspection, or ``None`` for any time in the shift.
    mandatory
        Must be served if at all feasible.
    value
        Worth of an optional visit (ignored for mandatory ones); 0 means never worth a detour.
    workload
        Workload points (for ``Inspector.max_workload``; e.g. a high-risk check counts more).
    """

    id: str
    location_index: int
    service_s: float
    _: KW_ONLY
    time_window: tuple[float, float] | None = None
    mandatory: bool = False
    value: float = 1.0
    workload: int = 1


@dataclass(frozen=True)
class Stop:
    """One visit in a route. ``wait_s`` is spent on site before the window opens."""

    site_id: str
    location_index: int
    arrival_s: float
    start_s: float
    departure_s: float
    wait_s: float
    travel_s: float
    distance_m: float
    fixed: bool = False


@dataclass(frozen=True)
class BreakTaken:
    """The break as planned: after ``after_stops`` stops, where the inspector then is."""

    start_s: float
    end_s: float
    after_stops: int


@dataclass(frozen=True)
class InspectorRoute:
    """An inspector's planned day.

    Attributes
    ----------
    inspector_id
        The inspector.
    stops
        Visits in order.
    depart_s, return_s
        Leaving the start location, reaching the end location.
    travel_s, service_s, wait_s
        Totals.
    distance_m
        Total distance (NaN when no distance matrix was given).
    value
        Value of the optional sites served.
    rest
        The break, if the inspector has one.
    start_index, end_index
        Matrix indices of the start and end locations.
    """

    inspector_id: str
    stops: tuple[Stop, ...]
    depart_s: float
    return_s: float
    travel_s: float
    service_s: float
    wait_s: float
    distance_m: float
    value: float
    rest: BreakTaken | None
    start_index: int
    end_index: int

    @property
    def site_ids(self) -> tuple[str, ...]:
        """Site ids in visiting order."""
        return tuple(s.site_id for s in self.stops)

    @property
    def location_sequence(self) -> tuple[int, ...]:
        """Matrix indices from start to end, for :func:`gis.matrix.route_geometry`."""
        return (self.start_index, *(s.location_index for s in self.stops), self.end_index)


@dataclass(frozen=True)
class Balance:
    """What workload balancing did to a day's plan.

    Loads are working seconds (travel + inspection) per inspector, ``prior_load_s`` included.

    Attributes
    ----------
    load_before_s, load_after_s
        Inspector id → load before and after balancing.
    spread_before_s, spread_after_s
        Busiest minus lightest load, before and after.
    stdev_before_s, stdev_after_s
        Standard deviation of the loads, before and after.
    moves
        Stops relocated.
    extra_travel_s
        Travel added by the moves.
    """

    load_before_s: dict[str, float]
    load_after_s: dict[str, float]
    spread_before_s: float
    spread_after_s: float
    stdev_before_s: float
    stdev_after_s: float
    moves: int
    extra_travel_s: float


@dataclass(frozen=True)
class LeftOut:
    """A site not in the plan, with a reason from :data:`REASONS`."""

    site_id: str
    reason: str
    constraint: str
    detail: str


@dataclass(frozen=True)
class Plan:
    """A day's plan.

    Attributes
    ----------
    routes
        One per inspector, in input order (possibly without stops).
    left_out
        Every site not served, in input order.
    value
        Value of the optional sites served.
    mandatory_served, mandatory_total
        Mandatory sites served / given.
    travel_s, distance_m
        Totals over routes.
    solver
        What produced the plan (``'pyvrp'``, ``'pyvrp+soft-mandatory'``, ``'trivial'``).
    solve_s
        Wall time of :func:`plan_day`.
    balance
        What workload balancing did, or ``None`` when it was not asked for.
    """

    routes: tuple[InspectorRoute, ...]
    left_out: tuple[LeftOut, ...]
    value: float
    mandatory_served: int
    mandatory_total: int
    travel_s: float
    distance_m: float
    solver: str
    solve_s: float
    balance: Balance | None = None

    @property
    def served_site_ids(self) -> frozenset[str]:
        """Ids of all sites served."""
        return frozenset(sid for r in self.routes for sid in r.site_ids)

    def route_of(self, inspector_id: str) -> InspectorRoute:
        """The route of one inspector."""
        for r in self.routes:
            if r.inspector_id == inspector_id:
                return r
        msg = f"no inspector {inspector_id!r} in this plan"
        raise GisError(msg)

    def left_out_reasons(self) -> dict[str, str]:
        """Site id → reason, for the sites left out."""
        return {lo.site_id: lo.reason for lo in self.left_out}


# ---------------------------------------------------------------------------------------
# Input normalisation and validation


@dataclass(eq=False)
class _Problem:
    inspectors: list[Inspector]
    sites: list[Site]
    durations: dict[str, NDArray[np.float64]]  # mode -> matrix
    distances: dict[str, NDArray[np.float64]] | None
    pinned: dict[str, str]  # site id -> inspector id
    fixed: dict[str, list[int]]  # inspector id -> site positions in order
    site_pos: dict[str, int]
    insp_pos: dict[str, int]
    n_locations: int = 0
    # Filled by _prefix_states: where each inspector is free to plan from.
    free_loc: list[int] = field(default_factory=list)
    free_time: list[float] = field(default_factory=list)
    free_stops: list[int] = field(default_factory=list)
    free_work: list[int] = field(default_factory=list)


def _as_matrices(durations: object, name: str, modes: set[str]) -> dict[str, NDArray[np.float64]]:
    if isinstance(durations, TravelMatrix):
        durations = durations.durations_s if name == "durations" else durations.distances_m
    if isinstance(durations, Mapping):
        out: dict[str, NDArray[np.float64]] = {}
        for mode in modes:
            if mode not in durations:
                msg = f"{name}: no matrix for travel mode {mode!r} (given: {sorted(durations)})"
                raise GisError(msg)
            m = durations[mode]
            if isinstance(m, TravelMatrix):
                m = m.durations_s if name == "durations" else m.distances_m
            out[mode] = np.asarray(m, dtype=float)
        return out
    matrix = np.asarray(durations, dtype=float)
    return {mode: matrix for mode in modes}


def _check_matrix(matrix: NDArray, name: str, n_needed: int, shape: tuple | None) -> None:
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        msg = f"{name} must be a square matrix, got shape {matrix.shape}"
        raise GisError(msg)
    if shape is not None and matrix.shape != shape:
        msg = f"{name} has shape {matrix.shape}, but the travel times have shape {shape}"
        raise GisError(msg)
    if matrix.shape[0] < n_needed:
        msg = f"{name} has {matrix.shape[0]} locations but index {n_needed - 1} is used"
        raise GisError(msg)
    if np.isnan(matrix).any():
        msg = f"{name} contains NaN; use inf for 'no path'"
        raise GisError(msg)
    if (matrix < 0).any():
        msg = f"{name} contains negative travel values"
        raise GisError(msg)
    if np.any(np.diagonal(matrix) != 0):
        msg = f"{name} must have a zero diagonal (travel from a place to itself)"
        raise GisError(msg)


def _validate(
    inspectors: Sequence[Inspector],
    sites: Sequence[Site],
    durations: object,
    distances: object | None,
    pins: Mapping[str, str] | None,
    fixed_orders: Mapping[str, Sequence[str]] | None,
) -> _Problem:
    inspectors = list(inspectors)
    sites = list(sites)
    if not inspectors:
        msg = "no inspectors: a plan needs at least one"
        raise GisError(msg)
    insp_pos: dict[str, int] = {}
    for k, insp in enumerate(inspectors):
        if not isinstance(insp, Inspector):
            msg = f"inspectors[{k}] is a {type(insp).__name__}, not an Inspector"
            raise GisError(msg)
        if insp.id in insp_pos:
            msg = f"inspector id {insp.id!r} appears twice"
            raise GisError(msg)
        insp_pos[insp.id] = k
        if insp.mode not in MODES:
            msg = f"inspector {insp.id!r}: mode {insp.mode!r} is not one of {', '.join(MODES)}"
            raise GisError(msg)
        if not (math.isfinite(insp.shift_start_s) and math.isfinite(insp.shift_end_s)):
            msg = f"inspector {insp.id!r}: shift times must be finite numbers of seconds"
            raise GisError(msg)
        if insp.shift_end_s <= insp.shift_start_s:
            msg = (
                f"inspector {insp.id!r}: shift ends ({_hhmm(insp.shift_end_s)}) "
                f"before it starts ({_hhmm(insp.shift_start_s)})"
            )
            raise GisError(msg)
        for label, value in (("max_stops", insp.max_stops), ("max_workload", insp.max_workload)):
            if value is not None and (int(value) != value or value < 0):
                msg = (
                    f"inspector {insp.id!r}: {label} must be a non-negative integer, got {value!r}"
                )
                raise GisError(msg)
        rest = insp.rest
        if rest is not None:
            if not (0 < rest.duration_s and rest.earliest_start_s <= rest.latest_start_s):
                msg = (
                    f"inspector {insp.id!r}: break needs a positive duration and "
                    f"earliest start <= latest start, got {rest}"
                )
                raise GisError(msg)
            if (
                rest.earliest_start_s < insp.shift_start_s
                or rest.latest_start_s + rest.duration_s > insp.shift_end_s
            ):
                msg = f"inspector {insp.id!r}: break {rest} does not fit inside the shift"
                raise GisError(msg)
    site_pos: dict[str, int] = {}
    for i, site in enumerate(sites):
        if not isinstance(site, Site):
            msg = f"sites[{i}] is a {type(site).__name__}, not a Site"
            raise GisError(msg)
        if site.id in site_pos:
            msg = f"site id {site.id!r} appears twice"
            raise GisError(msg)
        site_pos[site.id] = i
        if not (math.isfinite(site.service_s) and site.service_s >= 0):
            msg = f"site {site.id!r}: service time must be >= 0 s, got {site.service_s!r}"
            raise GisError(msg)
        if not (math.isfinite(site.value) and site.value >= 0):
            msg = f"site {site.id!r}: value must be a finite number >= 0, got {site.value!r}"
            raise GisError(msg)
        if int(site.workload) != site.workload or site.workload < 0:
            msg = (
                f"site {site.id!r}: workload must be a non-negative integer, got {site.workload!r}"
            )
            raise GisError(msg)
        if site.time_window is not None:
            early, late = site.time_window
            if not (math.isfinite(early) and math.isfinite(late) and early <= late):
                msg = (
                    f"site {site.id!r}: time window {site.time_window} is not (earliest <= latest)"
                )
                raise GisError(msg)

    n_needed = 1 + max(
        [
            max(i.start_index, i.end_index if i.end_index is not None else i.start_index)
            for i in inspectors
        ]
        + [s.location_index for s in sites]
    )
    negative = [i.id for i in inspectors if min(i.start_index, i.end_index or 0) < 0]
    negative += [s.id for s in sites if s.location_index < 0]
    if negative:
        msg = f"negative matrix index for {negative[0]!r}"
        raise GisError(msg)
    modes = {i.mode for i in inspectors}
    dur = _as_matrices(durations, "durations", modes)
    shape = None
    for mode, m in dur.items():
        _check_matrix(m, f"durations[{mode}]", n_needed, shape)
        shape = m.shape
    dist = None
    if distances is not None:
        dist = _as_matrices(distances, "distances", modes)
        for mode, m in dist.items():
            _check_matrix(m, f"distances[{mode}]", n_needed, shape)

    pinned: dict[str, str] = {}
    for sid, iid in (pins or {}).items():
        if sid not in site_pos:
            msg = f"pin: unknown site {sid!r}"
            raise GisError(msg)
        if iid not in insp_pos:
            msg = f"pin: site {sid!r} is pinned to unknown inspector {iid!r}"
            raise GisError(msg)
        allowed = inspectors[insp_pos[iid]].allowed_sites
        if allowed is not None and sid not in allowed:
            msg = f"contradictory pin: site {sid!r} is pinned to {iid!r}, whose area excludes it"
            raise GisError(msg)
        pinned[sid] = iid
    fixed: dict[str, list[int]] = {}
    seen: dict[str, str] = {}
    for iid, order in (fixed_orders or {}).items():
        if iid not in insp_pos:
            msg = f"fixed order for unknown inspector {iid!r}"
            raise GisError(msg)
        allowed = inspectors[insp_pos[iid]].allowed_sites
        positions = []
        for sid in order:
            if sid not in site_pos:
                msg = f"fixed order of {iid!r}: unknown site {sid!r}"
                raise GisError(msg)
            if sid in seen:
                where = "twice" if seen[sid] == iid else f"also in the fixed order of {seen[sid]!r}"
                msg = f"contradictory pins: site {sid!r} is in the fixed order of {iid!r} {where}"
                raise GisError(msg)
            if pinned.get(sid, iid) != iid:
                msg = (
                    f"contradictory pins: site {sid!r} is in the fixed order of {iid!r} "
                    f"but pinned to {pinned[sid]!r}"
                )
                raise GisError(msg)
            if allowed is not None and sid not in allowed:
                msg = (
                    f"contradictory pins: site {sid!r} is in the fixed order of {iid!r}, "
                    "whose area excludes it"
                )
                raise GisError(msg)
            seen[sid] = iid
            positions.append(site_pos[sid])
        if positions:
            fixed[iid] = positions
    return _Problem(
        inspectors=inspectors,
        sites=sites,
        durations=dur,
        distances=dist,
        pinned=pinned,
        fixed=fixed,
        site_pos=site_pos,
        insp_pos=insp_pos,
        n_locations=int(shape[0]) if shape else 0,
    )


def _end_index(insp: Inspector) -> int:
    return insp.start_index if insp.end_index is None else insp.end_index


def _rest_s(insp: Inspector) -> float:
    return insp.rest.duration_s if insp.rest is not None else 0.0


def _prefix_states(prob: _Problem) -> None:
    """Schedule each fixed prefix; record where and when each inspector is free to plan."""
    for insp in prob.inspectors:
        T = prob.durations[insp.mode]
        loc, t = insp.start_index, float(insp.shift_start_s)
        stops = work = 0
        for pos in prob.fixed.get(insp.id, []):
            site = prob.sites[pos]
            t += T[loc, site.location_index]
            if not math.isfinite(t):
                msg = f"fixed order of {insp.id!r}: no path to site {site.id!r}"
                raise GisError(msg)
            if site.time_window is not None:
                if t > site.time_window[1] + _EPS:
                    msg = (
                        f"fixed order of {insp.id!r} cannot be kept: it reaches site {site.id!r} "
                        f"at {_hhmm(t)}, after its window closes at {_hhmm(site.time_window[1])}"
                    )
                    raise GisError(msg)
                t = max(t, site.time_window[0])
            t += site.service_s
            loc = site.location_index
            stops += 1
            work += int(site.workload)
        back = t + T[loc, _end_index(insp)]
        if prob.fixed.get(insp.id) and back > insp.shift_end_s - _rest_s(insp) + _EPS:
            msg = (
                f"fixed order of {insp.id!r} cannot be kept: the inspector would be back at "
                f"{_hhmm(back)}, after the shift ends (minus the break) at "
                f"{_hhmm(insp.shift_end_s - _rest_s(insp))}"
            )
            raise GisError(msg)
        for label, used, cap in (
            ("max_stops", stops, insp.max_stops),
            ("max_workload", work, insp.max_workload),
        ):
            if cap is not None and used > cap:
                msg = f"fixed order of {insp.id!r} has {used} {label} points, above {label}={cap}"
                raise GisError(msg)
        prob.free_loc.append(loc)
        prob.free_time.append(t)
        prob.free_stops.append(stops)
        prob.free_work.append(work)


def _hhmm(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "never"
    s = int(round(seconds))
    return f"{s // 3600:02d}:{(s % 3600) // 60:02d}"


# ---------------------------------------------------------------------------------------
# Eligibility: who may serve what, and is it feasible alone?

_STAGE = {
    "area": 0,
    "reachability": 1,
    "shift_length": 2,
    "time_window": 3,
    "max_stops": 4,
    "max_workload": 4,
}


def _alone_check(prob: _Problem, k: int, s: int) -> str | None:
    """None if inspector k can serve site s alone (after any fixed prefix), else the constraint."""
    insp = prob.inspectors[k]
    site = prob.sites[s]
    if insp.allowed_sites is not None and site.id not in insp.allowed_sites:
        return "area"
    if prob.pinned.get(site.id, insp.id) != insp.id:
        return "area"
    T = prob.durations[insp.mode]
    loc, end = prob.free_loc[k], _end_index(insp)
    there, back = T[loc, site.location_index], T[site.location_index, end]
    if not (math.isfinite(there) and math.isfinite(back)):
        return "reachability"
    limit = insp.shift_end_s - _rest_s(insp) + _EPS
    arrive = prob.free_time[k] + there
    if arrive + site.service_s + back > limit:
        return "shift_length"
    if site.time_window is not None:
        begin = max(arrive, site.time_window[0])
        if begin > site.time_window[1] + _EPS or begin + site.service_s + back > limit:
            return "time_window"
    if insp.max_stops is not None and prob.free_stops[k] + 1 > insp.max_stops:
        return "max_stops"
    if insp.max_workload is not None and prob.free_work[k] + site.workload > insp.max_workload:
        return "max_workload"
    return None


def _eligibility(prob: _Problem) -> tuple[NDArray[np.bool_], dict[int, str]]:
    """Feasible-alone matrix (inspector × site) and, for sites nobody can serve, why."""
    n_k, n_s = len(prob.inspectors), len(prob.sites)
    ok = np.zeros((n_k, n_s), dtype=bool)
    blocked: dict[int, str] = {}
    in_prefix = {pos for positions in prob.fixed.values() for pos in positions}
    for s in range(n_s):
        if s in in_prefix:
            continue
        worst = None
        for k in range(n_k):
            why = _alone_check(prob, k, s)
            if why is None:
                ok[k, s] = True
            elif worst is None or _STAGE[why] > _STAGE[worst]:
                worst = why
        if not ok[:, s].any():
            blocked[s] = worst or "area"
    return ok, blocked


def _check_inspectors(prob: _Problem) -> None:
    """An inspector who cannot reach any of the sites open to them is a configuration error."""
    for k, insp in enumerate(prob.inspectors):
        T = prob.durations[insp.mode]
        end = _end_index(insp)
        if not math.isfinite(T[prob.free_loc[k], end]):
            msg = f"inspector {insp.id!r}: no path from the start location to the end location"
            raise GisError(msg)
        if insp.id in prob.fixed:
            continue
        open_sites = [
            s
            for s in prob.sites
            if (insp.allowed_sites is None or s.id in insp.allowed_sites)
            and prob.pinned.get(s.id, insp.id) == insp.id
        ]
        if not open_sites:
            continue
        loc = np.array([s.location_index for s in open_sites])
        service = np.array([s.service_s for s in open_sites])
        round_trip = T[insp.start_index, loc] + service + T[loc, end]
        available = insp.shift_end_s - insp.shift_start_s - _rest_s(insp)
        if not (round_trip <= available + _EPS).any():
            msg = (
                f"inspector {insp.id!r} cannot reach any of their {len(open_sites)} sites within "
                f"the shift {_hhmm(insp.shift_start_s)}–{_hhmm(insp.shift_end_s)} by {insp.mode} "
                f"(shortest round trip {np.min(round_trip) / 60:.0f} min, "
                f"{available / 60:.0f} min available): check the start location, mode and shift"
            )
            raise GisError(msg)


# ---------------------------------------------------------------------------------------
# The PyVRP model


@dataclass(eq=False)
class _Model:
    data: object  # pyvrp.ProblemData
    client_site: list[int]  # client index -> site position (-1 for a break)
    vehicle_insp: list[int]  # vehicle type index -> inspector position
    mandatory_clients: list[int]
    rest_client: dict[int, int]  # inspector position -> client index of their break
    allowed: NDArray[np.bool_]  # vehicle type x client: may visit


def _build_model(
    prob: _Problem,
    ok: NDArray[np.bool_],
    *,
    soft_mandatory: bool,
    rest_loc: Mapping[int, int] | None = None,
) -> _Model:
    """The PyVRP data. ``rest_loc`` (inspector -> matrix index) turns breaks into clients."""
    from pyvrp import Client, Depot, Location, ProblemData, VehicleType

    rest_loc = rest_loc or {}
    candidates = [s for s in range(len(prob.sites)) if ok[:, s].any()]
    vehicles = [k for k in range(len(prob.inspectors)) if ok[k, candidates].any()]
    rests = [k for k in vehicles if k in rest_loc]
    n_v, n_c = len(vehicles), len(candidates)
    # Locations: a start and an end depot per vehicle, then one location per client (so that
    # a client can be forbidden to a vehicle by its row and column in that vehicle's profile).
    loc_index = [prob.free_loc[k] for k in vehicles]
    loc_index += [_end_index(prob.inspectors[k]) for k in vehicles]
    loc_index += [prob.sites[s].location_index for s in candidates]
    loc_index += [rest_loc[k] for k in rests]
    L = np.array(loc_index, dtype=np.int64)
    first_client = 2 * n_v

    base: dict[str, NDArray[np.int64]] = {}
    max_finite = 1.0
    for mode in {prob.inspectors[k].mode for k in vehicles}:
        sub = prob.durations[mode][np.ix_(L, L)]
        finite = np.isfinite(sub)
        if finite.any():
            max_finite = max(max_finite, float(sub[finite].max()))
        base[mode] = np.where(finite, np.ceil(sub - _EPS), _UNLIMITED).astype(np.int64)
    # Lexicographic objective via prizes: adding a site never costs more than two longest legs.
    prize_unit = int(2 * max_finite) + 1
    optional_total = sum(
        int(round(prob.sites[s].value * prize_unit))
        for s in candidates
        if not prob.sites[s].mandatory
    )
    shift_total = sum(
        int(prob.inspectors[k].shift_end_s - prob.inspectors[k].shift_start_s) for k in vehicles
    )
    mandatory_prize = optional_total + shift_total + 1

    profiles: dict[tuple[str, bytes], int] = {}
    matrices: list[NDArray[np.int64]] = []
    vehicle_types = []
    allowed = np.zeros((n_v, n_c + len(rests)), dtype=bool)
    use_load = any(
        prob.inspectors[k].max_stops is not None or prob.inspectors[k].max_workload is not None
        for k in vehicles
    )
    for v, k in enumerate(vehicles):
        insp = prob.inspectors[k]
        mask = np.concatenate([ok[k, candidates], np.array([r == k for r in rests], dtype=bool)])
        allowed[v] = mask
        key = (insp.mode, np.packbits(mask).tobytes())
        if key not in profiles:
            m = base[insp.mode].copy()
            banned = first_client + np.flatnonzero(~mask)
            m[banned, :] = _UNLIMITED
            m[:, banned] = _UNLIMITED
            m[banned, banned] = 0
            profiles[key] = len(matrices)
            matrices.append(m)
        capacity = []
        if use_load:
            capacity = [
                _UNLIMITED if insp.max_stops is None else insp.max_stops - prob.free_stops[k],
                _UNLIMITED if insp.max_workload is None else insp.max_workload - prob.free_work[k],
            ]
        # Without a break client, the break is reserved by ending the shift earlier.
        reserve = 0.0 if k in rest_loc else _rest_s(insp)
        vehicle_types.append(
            VehicleType(
                num_available=1,
                capacity=capacity,
                start_depot=v,
                end_depot=n_v + v,
                tw_early=int(math.ceil(prob.free_time[k] - _EPS)),
                tw_late=int(math.floor(insp.shift_end_s - reserve + _EPS)),
                unit_distance_cost=1,
                unit_duration_cost=0,
                profile=profiles[key],
                name=insp.id,
            )
        )
    clients = []
    mandatory_clients = []
    for c, s in enumerate(candidates):
        site = prob.sites[s]
        early, late = site.time_window if site.time_window is not None else (0.0, None)
        if site.mandatory:
            mandatory_clients.append(c)
        clients.append(
            Client(
                location=first_client + c,
                delivery=[1, int(site.workload)] if use_load else [],
                service_duration=int(math.ceil(site.service_s - _EPS)),
                tw_early=int(math.ceil(early - _EPS)),
                tw_late=int(math.floor(late + _EPS)) if late is not None else _UNLIMITED,
                prize=mandatory_prize if site.mandatory else int(round(site.value * prize_unit)),
                required=site.mandatory and not soft_mandatory,
                name=site.id,
            )
        )
    rest_client = {}
    for j, k in enumerate(rests):
        rest = prob.inspectors[k].rest
        assert rest is not None
        rest_client[k] = n_c + j
        clients.append(
            Client(
                location=first_client + n_c + j,
                delivery=[0, 0] if use_load else [],
                service_duration=int(math.ceil(rest.duration_s - _EPS)),
                tw_early=int(math.ceil(rest.earliest_start_s - _EPS)),
                tw_late=int(math.floor(rest.latest_start_s + _EPS)),
                required=True,
                name=f"break:{prob.inspectors[k].id}",
            )
        )
    depots = [Depot(location=i) for i in range(2 * n_v)]
    locations = [Location(x=0.0, y=0.0) for _ in range(L.size)]
    data = ProblemData(locations, clients, depots, vehicle_types, matrices, matrices)
    return _Model(
        data=data,
        client_site=candidates + [-1] * len(rests),
        vehicle_insp=vehicles,
        mandatory_clients=mandatory_clients,
        rest_client=rest_client,
        allowed=allowed,
    )


class _Deadline:
    """PyVRP stop criterion: a wall-clock end; an early end once the search has converged
    (``patience`` iterations without a better plan); and optionally an early give-up when
    the best plan is still infeasible (mandatory sites that cannot all be served)."""

    def __init__(self, t_end: float, *, patience: int, give_up_infeasible_at: float | None = None):
        self.t_end = t_end
        self.patience = patience
        self.give_up_at = give_up_infeasible_at
        self.best = _INFEASIBLE_COST
        self.stale = 0

    def __call__(self, best_cost: int) -> bool:
        now = time.perf_counter()
        if now >= self.t_end:
            return True
        if best_cost < self.best:
            self.best, self.stale = best_cost, 0
        else:
            self.stale += 1
            if self.stale >= self.patience and best_cost != _INFEASIBLE_COST:
                return True
        if self.give_up_at is None or now < self.give_up_at:
            return False
        return best_cost == _INFEASIBLE_COST


def _patience(model: _Model) -> int:
    """Iterations without improvement after which the search is taken as converged."""
    return _PATIENCE_BASE + _PATIENCE_PER_CLIENT * model.data.num_clients


def _neighbours(model: _Model) -> dict:
    """Granular neighbourhoods: PyVRP's (travel and time-window aware), keeping only the
    clients that a common vehicle may visit.

    PyVRP's own lists take the minimum over routing profiles, so with patrol areas most
    neighbours of a site would lie in other areas, where no move can use them: take a wider
    list and filter it.
    """
    from pyvrp import Activity, ActivityType
    from pyvrp.search import NeighbourhoodParams, compute_neighbours

    data = model.data
    n_c = data.num_clients
    if n_c <= 1:
        return {Activity(ActivityType.CLIENT, c): [] for c in range(n_c)}
    if model.allowed.all():
        params = NeighbourhoodParams(num_neighbours=min(_NUM_NEIGHBOURS, n_c - 1))
        return compute_neighbours(data, params)
    wide = compute_neighbours(
        data, NeighbourhoodParams(num_neighbours=min(4 * _NUM_NEIGHBOURS, n_c - 1))
    )
    allowed = model.allowed.astype(np.int32)
    share = (allowed.T @ allowed) > 0  # client x client: some vehicle may visit both
    return {
        act: [other for other in near if share[act.idx, other.idx]][:_NUM_NEIGHBOURS]
        for act, near in wide.items()
    }


def _search(model: _Model, stop: _Deadline, seed: int, initial: object | None = None) -> object:
    """PyVRP's ``solve``, with our neighbourhoods; warnings go to the log."""
    from pyvrp import (
        IteratedLocalSearch,
        PenaltyManager,
        RandomNumberGenerator,
        Solution,
        SolveParams,
    )
    from pyvrp.exceptions import PenaltyBoundWarning, ScalingWarning
    from pyvrp.IteratedLocalSearch import IteratedLocalSearchParams
    from pyvrp.search import LocalSearch, PerturbationManager

    data = model.data
    params = SolveParams()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PenaltyBoundWarning)
        warnings.simplefilter("always", ScalingWarning)
        rng = RandomNumberGenerator(seed=seed)
        ls = LocalSearch(data, rng, _neighbours(model), PerturbationManager(params.perturbation))
        for op in params.operators:
            if op.supports(data):
                ls.add_operator(op(data))
        pm = PenaltyManager(params.penalty.midpoint_penalties(data), params.penalty)
        if initial is None:
            initial = ls(Solution.make_random(data, rng), pm.max_cost_evaluator(), exhaustive=True)
        # Late-acceptance history. PyVRP's default (300) suits long runs and single routes
        # (TSPLIB: gr96 at 0-0.8 % in 4 s, against 3-4 % with 30); with several inspectors,
        # windows and a few seconds, 30 converges within the deadline (Solomon at the
        # best-known fleet: every customer served on all 37; Futian days: more value, less
        # travel).
        single = data.num_vehicles == 1
        ils = IteratedLocalSearchParams(
            history_length=_HISTORY_SINGLE_ROUTE if single else _HISTORY_ROUTES
        )
        algo = IteratedLocalSearch(data, pm, ls, initial, ils)
        result = algo.run(stop, collect_stats=False)
    for w in caught:
        logger.debug("pyvrp: %s", str(w.message).strip())
    return result.best


def _client_visits(route: object) -> list[int]:
    return [act.idx for act in route.schedule() if act.is_client()]


def _routes_of(model: _Model, best: object) -> dict[int, list[int]]:
    """Inspector position -> site positions (breaks left out)."""
    routes: dict[int, list[int]] = {}
    if not best.is_feasible():
        # Large prizes can outweigh PyVRP's bounded penalties (a site more valuable than the
        # capped penalty of one stop over max_stops). Keep the routes: _fit_route trims them
        # back to what each inspector may do, and _reinsert fills in what fits.
        logger.info("the search ended on an infeasible plan; its routes are repaired")
        return _routes_of_any(model, best)
    for route in best.routes():
        k = model.vehicle_insp[route.vehicle_type()]
        routes[k] = [
            model.client_site[c] for c in _client_visits(route) if model.client_site[c] >= 0
        ]
    return routes


def _warm_start(model: _Model, seqs: dict[int, list[int]], rest_pos: Mapping[int, int]) -> object:
    """A PyVRP solution from routes (site positions), with break clients at ``rest_pos``."""
    from pyvrp import Route, Solution

    client_of = {s: c for c, s in enumerate(model.client_site) if s >= 0}
    routes = []
    for v, k in enumerate(model.vehicle_insp):
        visits = [client_of[s] for s in seqs.get(k, []) if s in client_of]
        if k in model.rest_client:
            visits.insert(min(rest_pos.get(k, 0), len(visits)), model.rest_client[k])
        if visits:
            routes.append(Route(model.data, visits, v))
    return Solution(model.data, routes)


def _solve_model(
    prob: _Problem, ok: NDArray[np.bool_], t_end: float, seed: int
) -> tuple[dict[int, list[int]], str]:
    """Routes as inspector position -> site positions (without fixed prefixes), and a label.

    Pass 1 reserves each break by ending the shift earlier. With breaks, pass 2 (the second
    half of the time) makes each break a client at the place pass 1 gave it, warm-started
    from pass 1, so that windows after the break are planned exactly.
    """
    now = time.perf_counter()
    has_rest = any(prob.inspectors[k].rest is not None for k in range(len(prob.inspectors)))
    t_pass1 = now + (_PASS1_SHARE if has_rest else 1.0) * max(t_end - now, 0.0)
    model = _build_model(prob, ok, soft_mandatory=False)
    give_up = now + _PHASE1_SHARE * (t_pass1 - now) if model.mandatory_clients else None
    best = _search(
        model, _Deadline(t_pass1, patience=_patience(model), give_up_infeasible_at=give_up), seed
    )
    soft = not best.is_feasible()
    label = "pyvrp"
    if soft:
        logger.info("no plan serves every mandatory site; planning them as top-priority optional")
        soft_model = _build_model(prob, ok, soft_mandatory=True)
        warm = _warm_start(soft_model, _routes_of_any(model, best), {})
        stop = _Deadline(max(t_pass1, time.perf_counter() + 0.05), patience=_patience(soft_model))
        best = _search(soft_model, stop, seed, warm)
        model, label = soft_model, "pyvrp+soft-mandatory"
    routes = _routes_of(model, best)
    if not has_rest:
        return routes, label
    # Place the breaks on the pass-1 routes; give each its place as a client.
    rest_loc: dict[int, int] = {}
    rest_pos: dict[int, int] = {}
    seqs: dict[int, list[int]] = dict(routes)
    for k, insp in enumerate(prob.inspectors):
        if insp.rest is None or k not in model.vehicle_insp:
            continue
        prefix = prob.fixed.get(insp.id, [])
        seq = _fit_route(prob, k, prefix + routes.get(k, []), len(prefix), {})
        timed = _schedule(prob, k, seq, len(prefix))
        seqs[k] = seq[len(prefix) :]
        if timed is None or timed.rest is None or timed.rest_stop < len(prefix):
            continue  # the break falls in the fixed prefix: keep the reservation
        rest_loc[k] = timed.rest_location
        rest_pos[k] = timed.rest_stop - len(prefix)
    exact = _build_model(prob, ok, soft_mandatory=soft, rest_loc=rest_loc)
    warm = _warm_start(exact, seqs, rest_pos)
    stop = _Deadline(max(t_end, time.perf_counter() + 0.05), patience=_patience(exact))
    best = _search(exact, stop, seed + 1, warm)
    if not best.is_feasible():
        # Rounding can make the warm start infeasible, and the search may not repair it in
        # time: keep the pass-1 routes, whose breaks are placed (or stops dropped) afterwards.
        logger.info("no feasible plan with breaks as visits; keeping the first pass")
        return routes, label
    return _routes_of(exact, best), label


def _routes_of_any(model: _Model, best: object) -> dict[int, list[int]]:
    """Like :func:`_routes_of`, also for an infeasible solution (a warm start)."""
    routes: dict[int, list[int]] = {}
    for route in best.routes():
        k = model.vehicle_insp[route.vehicle_type()]
        routes[k] = [
            model.client_site[c] for c in _client_visits(route) if model.client_site[c] >= 0
        ]
    return routes


# ---------------------------------------------------------------------------------------
# Schedules, breaks and the result


@dataclass(eq=False)
class _Timed:
    stops: list[Stop]
    back: float
    rest: BreakTaken | None
    rest_location: int = -1  # matrix index where the break is taken
    rest_stop: int = -1  # index of the stop the break comes before (len = before the way back)


def _simulate(
    prob: _Problem, k: int, seq: list[int], n_fixed: int, rest_at: int | None, *, build: bool
) -> _Timed | None:
    """Earliest schedule of ``seq`` (site positions), or None if it breaks a constraint.

    ``rest_at`` places the break: ``2i`` before the leg to stop ``i`` (where the inspector is,
    ``i = len(seq)`` being the way back), ``2i + 1`` on arrival at stop ``i``, before the
    inspection (so that it can use time spent waiting for a window). Without ``build`` only
    the return time is computed (a fast feasibility check).
    """
    insp = prob.inspectors[k]
    T = prob.durations[insp.mode]
    Dm = prob.distances[insp.mode] if prob.distances is not None and build else None
    rest_def = insp.rest
    loc, t = insp.start_index, float(insp.shift_start_s)
    stops: list[Stop] = []
    rest = None
    rest_location = rest_stop = -1
    n = len(seq)
    for i in range(n + 1):
        if rest_at == 2 * i:
            assert rest_def is not None
            begin = max(t, rest_def.earliest_start_s)
            if begin > rest_def.latest_start_s + _EPS:
                return None
            rest = BreakTaken(start_s=begin, end_s=begin + rest_def.duration_s, after_stops=i)
            rest_location, rest_stop = loc, i
            t = rest.end_s
        nxt = prob.sites[seq[i]].location_index if i < n else _end_index(insp)
        travel = float(T[loc, nxt])
        arrive = t + travel
        if i == n:
            if arrive > insp.shift_end_s + _EPS:
                return None
            return _Timed(
                stops=stops,
                back=arrive,
                rest=rest,
                rest_location=rest_location,
                rest_stop=rest_stop,
            )
        site = prob.sites[seq[i]]
        ready = arrive
        if rest_at == 2 * i + 1:
            assert rest_def is not None
            begin = max(arrive, rest_def.earliest_start_s)
            if begin > rest_def.latest_start_s + _EPS:
                return None
            rest = BreakTaken(start_s=begin, end_s=begin + rest_def.duration_s, after_stops=i)
            rest_location, rest_stop = nxt, i
            ready = rest.end_s
        start = ready
        if site.time_window is not None:
            if ready > site.time_window[1] + _EPS:
                return None
            start = max(ready, site.time_window[0])
        t = start + site.service_s
        if build:
            stops.append(
                Stop(
                    site_id=site.id,
                    location_index=site.location_index,
                    arrival_s=arrive,
                    start_s=start,
                    departure_s=t,
                    wait_s=start - ready,
                    travel_s=travel,
                    distance_m=float(Dm[loc, nxt]) if Dm is not None else math.nan,
                    fixed=i < n_fixed,
                )
            )
        loc = nxt
    raise AssertionError("unreachable")  # pragma: no cover


def _schedule(
    prob: _Problem, k: int, seq: list[int], n_fixed: int = 0, *, build: bool = True
) -> _Timed | None:
    """The schedule that ends earliest over the possible break positions (None: infeasible)."""
    if prob.inspectors[k].rest is None:
        return _simulate(prob, k, seq, n_fixed, None, build=build)
    best: _Timed | None = None
    for at in range(2 * len(seq) + 1):
        timed = _simulate(prob, k, seq, n_fixed, at, build=False)
        if timed is not None and (best is None or timed.back < best.back - _EPS):
            best, best_at = timed, at
    if best is None or not build:
        return best
    return _simulate(prob, k, seq, n_fixed, best_at, build=True)


def _fit_route(
    prob: _Problem, k: int, seq: list[int], n_fixed: int, dropped: dict[int, str]
) -> list[int]:
    """Drop stops from a solver route until it keeps the inspector's area, pins, max_stops and
    max_workload, and its schedule (with the break) fits."""
    insp = prob.inspectors[k]
    seq = seq[:n_fixed] + [
        s
        for s in seq[n_fixed:]
        if (insp.allowed_sites is None or prob.sites[s].id in insp.allowed_sites)
        and prob.pinned.get(prob.sites[s].id, insp.id) == insp.id
    ]
    while True:
        over_stops = insp.max_stops is not None and len(seq) > insp.max_stops
        over_work = insp.max_workload is not None and (
            sum(prob.sites[s].workload for s in seq) > insp.max_workload
        )
        free = list(range(n_fixed, len(seq)))
        if not (over_stops or over_work) or not free:
            break
        optional = [i for i in free if not prob.sites[seq[i]].mandatory]
        victim = min(
            optional or free,
            key=lambda i: (prob.sites[seq[i]].value if optional else 0.0, -i),
        )
        dropped[seq[victim]] = "max_stops" if over_stops else "max_workload"
        del seq[victim]
    while _schedule(prob, k, seq, n_fixed, build=False) is None:
        free = list(range(n_fixed, len(seq)))
        insp = prob.inspectors[k]
        if not free:
            msg = (
                f"fixed order of {insp.id!r} leaves no room for the break "
                f"{_hhmm(insp.rest.earliest_start_s)}–{_hhmm(insp.rest.latest_start_s)}"
                if insp.rest is not None
                else f"fixed order of {insp.id!r} cannot be scheduled"
            )
            raise GisError(msg)
        optional = [i for i in free if not prob.sites[seq[i]].mandatory]
        pool = sorted(
            optional or free,
            key=lambda i: (prob.sites[seq[i]].value if optional else 0.0, -i),
        )
        # The least valuable optional stop whose removal is enough (else the least valuable
        # one, and go on); mandatory stops only when no optional one is left.
        victim = next(
            (
                i
                for i in pool
                if _schedule(prob, k, seq[:i] + seq[i + 1 :], n_fixed, build=False) is not None
            ),
            pool[0],
        )
        dropped[seq[victim]] = "break" if insp.rest is not None else "shift_time"
        logger.debug(
            "inspector %s: site %s dropped to fit the break", insp.id, prob.sites[seq[victim]].id
        )
        del seq[victim]
    return seq


def _reinsert(
    prob: _Problem,
    ok: NDArray[np.bool_],
    seqs: list[list[int]],
    n_fixed: list[int],
    dropped: dict[int, str],
    t_stop: float,
) -> None:
    """Put unserved sites back where they fit, after breaks have been placed.

    Mandatory sites first, then by value; cheapest feasible insertion, trying the few
    cheapest positions of each route. It stops at ``t_stop`` (wall clock).
    """
    served = {s for seq in seqs for s in seq}
    todo = {s for s in range(len(prob.sites)) if ok[:, s].any() and s not in served}
    order = sorted(
        todo,
        key=lambda s: (not prob.sites[s].mandatory, s not in dropped, -prob.sites[s].value),
    )
    for s in order:
        site = prob.sites[s]
        best = None
        for k in np.flatnonzero(ok[:, s]):
            insp = prob.inspectors[k]
            seq = seqs[k]
            if insp.max_stops is not None and len(seq) + 1 > insp.max_stops:
                continue
            work = sum(prob.sites[x].workload for x in seq)
            if insp.max_workload is not None and work + site.workload > insp.max_workload:
                continue
            T = prob.durations[insp.mode]
            locs = [insp.start_index] + [prob.sites[x].location_index for x in seq]
            locs.append(_end_index(insp))
            a = np.array(locs[:-1])[n_fixed[k] :]
            b = np.array(locs[1:])[n_fixed[k] :]
            delta = T[a, site.location_index] + T[site.location_index, b] - T[a, b]
            for j in np.argsort(delta)[:5]:
                if time.perf_counter() > t_stop:
                    return
                if not np.isfinite(delta[j]) or (best is not None and delta[j] >= best[0]):
                    break
                pos = n_fixed[k] + int(j)
                trial = seq[:pos] + [s] + seq[pos:]
                if _schedule(prob, k, trial, n_fixed[k], build=False) is not None:
                    best = (float(delta[j]), int(k), trial)
                    break
        if best is not None:
            seqs[best[1]] = best[2]
            dropped.pop(s, None)


def _route_result(prob: _Problem, k: int, timed: _Timed) -> InspectorRoute:
    insp = prob.inspectors[k]
    T = prob.durations[insp.mode]
    Dm = prob.distances[insp.mode] if prob.distances is not None else None
    last = timed.stops[-1].location_index if timed.stops else insp.start_index
    back_travel = float(T[last, _end_index(insp)])
    back_dist = float(Dm[last, _end_index(insp)]) if Dm is not None else math.nan
    value = sum(
        prob.sites[prob.site_pos[s.site_id]].value
        for s in timed.stops
        if not prob.sites[prob.site_pos[s.site_id]].mandatory
    )
    return InspectorRoute(
        inspector_id=insp.id,
        stops=tuple(timed.stops),
        depart_s=float(insp.shift_start_s),
        return_s=timed.back,
        travel_s=sum(s.travel_s for s in timed.stops) + back_travel,
        service_s=sum(s.departure_s - s.start_s for s in timed.stops),
        wait_s=sum(s.wait_s for s in timed.stops),
        distance_m=sum(s.distance_m for s in timed.stops) + back_dist,
        value=float(value),
        rest=timed.rest,
        start_index=insp.start_index,
        end_index=_end_index(insp),
    )


_DETAIL = {
    "area": "outside the allowed sites of every inspector (area or pin)",
    "reachability": "no road path between it and an eligible inspector's start or end",
    "shift_length": "too far to reach, inspect and return within any eligible shift",
    "time_window": "its time window cannot be met by any eligible inspector, even alone",
    "max_stops": "every eligible inspector has reached max_stops",
    "max_workload": "every eligible inspector has reached max_workload",
    "shift_time": "feasible alone, but no eligible inspector had time left for it",
    "break": "dropped so that the inspector's break fits",
}


def _left_out(
    prob: _Problem,
    ok: NDArray[np.bool_],
    blocked: dict[int, str],
    dropped: dict[int, str],
    routes: list[InspectorRoute],
) -> list[LeftOut]:
    served = {sid for r in routes for sid in r.site_ids}
    out = []
    for s, site in enumerate(prob.sites):
        if site.id in served:
            continue
        if s in blocked:
            constraint = blocked[s]
        elif s in dropped:
            constraint = dropped[s]
        else:
            eligible = np.flatnonzero(ok[:, s])
            full_stops = all(
                prob.inspectors[k].max_stops is not None
                and len(routes[k].stops) >= prob.inspectors[k].max_stops
                for k in eligible
            )
            full_work = all(
                prob.inspectors[k].max_workload is not None
                and sum(prob.sites[prob.site_pos[x]].workload for x in routes[k].site_ids)
                + site.workload
                > prob.inspectors[k].max_workload
                for k in eligible
            )
            constraint = (
                "max_stops" if full_stops else "max_workload" if full_work else "shift_time"
            )
        reason = "mandatory_infeasible" if site.mandatory else _REASON_OF[constraint]
        detail = _DETAIL[constraint]
        if site.mandatory:
            detail = f"mandatory site not served ({constraint}): {detail}"
        out.append(LeftOut(site_id=site.id, reason=reason, constraint=constraint, detail=detail))
    return out


# ---------------------------------------------------------------------------------------
# Workload balance


def _prior_loads(prob: _Problem, prior_load_s: Mapping[str, float] | None) -> list[float]:
    prior = [0.0] * len(prob.inspectors)
    for iid, value in (prior_load_s or {}).items():
        if iid not in prob.insp_pos:
            msg = f"prior_load_s: unknown inspector {iid!r}"
            raise GisError(msg)
        if not (math.isfinite(value) and value >= 0):
            msg = f"prior_load_s: load of {iid!r} must be a number of seconds >= 0, got {value!r}"
            raise GisError(msg)
        prior[prob.insp_pos[iid]] = float(value)
    return prior


def _work_s(prob: _Problem, k: int, seq: list[int]) -> tuple[float, float]:
    """(travel, travel + inspection) seconds of inspector k doing ``seq``."""
    insp = prob.inspectors[k]
    T = prob.durations[insp.mode]
    locs = [insp.start_index, *(prob.sites[s].location_index for s in seq), _end_index(insp)]
    travel = float(sum(T[a, b] for a, b in zip(locs[:-1], locs[1:], strict=True)))
    return travel, travel + float(sum(prob.sites[s].service_s for s in seq))


def _balance(
    prob: _Problem,
    ok: NDArray[np.bool_],
    seqs: list[list[int]],
    n_fixed: list[int],
    rate: float,
    prior: list[float],
    t_stop: float,
) -> Balance:
    """Relocate stops from busy to lighter inspectors (in place); see "Workload balance".

    Steepest descent: the busiest inspector (load over available shift time) that has an
    improving move gives up the stop whose best move lowers the busier of the pair most; a
    move must gain at least a minute and cost at most ``rate`` travel seconds per second
    gained. Each move lowers the sorted loads, so the loop ends; it also stops at ``t_stop``.
    """
    n_k = len(prob.inspectors)
    ids = [i.id for i in prob.inspectors]
    cap = [max(i.shift_end_s - i.shift_start_s - _rest_s(i), 1.0) for i in prob.inspectors]
    unit = float(np.mean(cap))
    travel, load = zip(*(_work_s(prob, k, seqs[k]) for k in range(n_k)), strict=True)
    travel, load = list(travel), list(load)
    before = {ids[k]: prior[k] + load[k] for k in range(n_k)}
    moves, extra_total = 0, 0.0
    while n_k > 1 and time.perf_counter() < t_stop:
        score = [(prior[k] + load[k]) / cap[k] for k in range(n_k)]
        best = None
        for a in sorted(range(n_k), key=lambda k: -score[k]):
            seq_a = seqs[a]
            for i in range(n_fixed[a], len(seq_a)):
                if time.perf_counter() > t_stop:
                    break
                s = seq_a[i]
                site = prob.sites[s]
                rest = seq_a[:i] + seq_a[i + 1 :]
                travel_a, load_a = _work_s(prob, a, rest)
                saved = travel[a] - travel_a
                rest_ok: bool | None = None
                for b in np.flatnonzero(ok[:, s]):
                    b = int(b)
                    if b == a or score[b] >= score[a]:
                        continue
                    insp = prob.inspectors[b]
                    seq_b = seqs[b]
                    if insp.max_stops is not None and len(seq_b) + 1 > insp.max_stops:
                        continue
                    if insp.max_workload is not None and (
                        sum(prob.sites[x].workload for x in seq_b) + site.workload
                        > insp.max_workload
                    ):
                        continue
                    T = prob.durations[insp.mode]
                    locs = [insp.start_index, *(prob.sites[x].location_index for x in seq_b)]
                    locs.append(_end_index(insp))
                    p = np.array(locs[:-1])[n_fixed[b] :]
                    q = np.array(locs[1:])[n_fixed[b] :]
                    delta = T[p, site.location_index] + T[site.location_index, q] - T[p, q]
                    for j in np.argsort(delta)[:_BALANCE_POSITIONS]:
                        if not np.isfinite(delta[j]):
                            break
                        load_b = load[b] + float(delta[j]) + site.service_s
                        new_max = max((prior[a] + load_a) / cap[a], (prior[b] + load_b) / cap[b])
                        gain = (score[a] - new_max) * unit
                        extra = float(delta[j]) - saved
                        if gain < _BALANCE_MIN_GAIN_S or extra > rate * gain + _EPS:
                            break  # later positions cost more travel: no better
                        if best is not None and (score[a], -gain, extra) >= best[0]:
                            break
                        pos = n_fixed[b] + int(j)
                        trial = seq_b[:pos] + [s] + seq_b[pos:]
                        if _schedule(prob, b, trial, n_fixed[b], build=False) is None:
                            continue
                        if rest_ok is None:
                            rest_ok = _schedule(prob, a, rest, n_fixed[a], build=False) is not None
                        if not rest_ok:
                            break
                        best = ((score[a], -gain, extra), a, b, rest, trial, extra)
                        break
            if best is not None:
                break  # the busiest inspector with an improving move gives up one stop
        if best is None:
            break
        _, a, b, rest, trial, extra = best
        seqs[a], seqs[b] = rest, trial
        for k in (a, b):
            travel[k], load[k] = _work_s(prob, k, seqs[k])
        moves += 1
        extra_total += extra
    after = {ids[k]: prior[k] + load[k] for k in range(n_k)}
    if moves:
        logger.info(
            "balance: %d moves, load spread %.0f -> %.0f min, %+.0f min travel",
            moves,
            (max(before.values()) - min(before.values())) / 60,
            (max(after.values()) - min(after.values())) / 60,
            extra_total / 60,
        )
    return Balance(
        load_before_s=before,
        load_after_s=after,
        spread_before_s=max(before.values()) - min(before.values()),
        spread_after_s=max(after.values()) - min(after.values()),
        stdev_before_s=float(np.std(list(before.values()))),
        stdev_after_s=float(np.std(list(after.values()))),
        moves=moves,
        extra_travel_s=extra_total,
    )


def plan_day(
    inspectors: Sequence[Inspector],
    sites: Sequence[Site],
    durations: NDArray | TravelMatrix | Mapping[str, NDArray | TravelMatrix],
    *,
    distances: NDArray | Mapping[str, NDArray] | None = None,
    deadline_s: float = 10.0,
    pins: Mapping[str, str] | None = None,
    fixed_orders: Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
    balance: float | None = None,
    prior_load_s: Mapping[str, float] | None = None,
) -> Plan:
    """Plan one day of patrols.

    Parameters
    ----------
    inspectors
        The inspectors on duty.
    sites
        Candidate sites (mandatory and optional).
    durations
        Travel seconds between matrix indices, ``inf`` where there is no path: one matrix (or
        :class:`~gis.matrix.TravelMatrix`) for everyone, or one per travel mode
        (``{'walk': ..., 'ebike': ...}``) picked by ``Inspector.mode``.
    distances
        Metres, same layout; only reported (the plan minimises time). A ``TravelMatrix``
        passed as ``durations`` brings its own distances.
    deadline_s
        Wall-clock limit for the whole call; the search stops in time to return by then.
    pins
        Site id → inspector id: only that inspector may visit the site.
    fixed_orders
        Inspector id → site ids: that inspector's first stops, in this order. These sites are
        served whatever their priority (they are the dispatcher's decision).
    seed
        Random seed of the search (same inputs and seed → same plan, given the same time).
    balance
        Even out the inspectors' working time: travel seconds the plan may add per second
        taken off the busier inspector of a move (``1.0`` is a fair trade; ``0`` only free
        moves); ``None`` (default) does not balance. See "Workload balance" above.
    prior_load_s
        Inspector id → working seconds already done (earlier days of a week), counted in
        the balance; missing ids count 0.

    Returns
    -------
    Plan

    Raises
    ------
    GisError
        No inspectors; duplicated ids; matrix shape or index errors; a shift or break that
        does not make sense; an inspector who cannot reach any site open to them; pins that
        contradict each other or the areas; a fixed order that cannot be kept.
    """
    t0 = time.perf_counter()
    if not (math.isfinite(deadline_s) and deadline_s > 0):
        msg = f"deadline_s must be a positive number of seconds, got {deadline_s!r}"
        raise GisError(msg)
    if distances is None and isinstance(durations, TravelMatrix):
        distances = durations
    elif (
        distances is None
        and isinstance(durations, Mapping)
        and durations
        and all(isinstance(m, TravelMatrix) for m in durations.values())
    ):
        distances = durations
    if balance is not None and not (math.isfinite(balance) and balance >= 0):
        msg = f"balance must be a number >= 0 (travel seconds per second of load), got {balance!r}"
        raise GisError(msg)
    prob = _validate(inspectors, sites, durations, distances, pins, fixed_orders)
    prior = _prior_loads(prob, prior_load_s)
    _prefix_states(prob)
    _check_inspectors(prob)
    ok, blocked = _eligibility(prob)

    solved: dict[int, list[int]] = {}
    label = "trivial"
    reserve = 0.0
    if balance is not None and len(prob.inspectors) > 1:
        reserve = min(_BALANCE_RESERVE_SHARE * deadline_s, _BALANCE_RESERVE_MAX_S)
    if ok.any():
        margin = _POST_MARGIN_S
        if any(i.rest is not None for i in prob.inspectors):
            margin += _POST_MARGIN_BREAKS_S
        t_end = t0 + deadline_s - min(margin, 0.1 * deadline_s) - reserve
        solved, label = _solve_model(prob, ok, t_end, seed)
    dropped: dict[int, str] = {}
    n_fixed = [len(prob.fixed.get(insp.id, [])) for insp in prob.inspectors]
    seqs = [
        _fit_route(prob, k, prob.fixed.get(insp.id, []) + solved.get(k, []), n_fixed[k], dropped)
        for k, insp in enumerate(prob.inspectors)
    ]
    if dropped or label != "pyvrp":
        _reinsert(prob, ok, seqs, n_fixed, dropped, t0 + deadline_s - _POST_MARGIN_S / 2 - reserve)
    balanced = None
    if balance is not None:
        t_stop = t0 + deadline_s - min(_POST_MARGIN_S / 2, 0.05 * deadline_s)
        balanced = _balance(prob, ok, seqs, n_fixed, float(balance), prior, t_stop)
    routes = []
    for k in range(len(prob.inspectors)):
        timed = _schedule(prob, k, seqs[k], n_fixed[k])
        assert timed is not None  # _fit_route and _reinsert keep every route feasible
        routes.append(_route_result(prob, k, timed))
    left_out = _left_out(prob, ok, blocked, dropped, routes)
    n_mandatory = sum(s.mandatory for s in prob.sites)
    served = {sid for r in routes for sid in r.site_ids}
    plan = Plan(
        routes=tuple(routes),
        left_out=tuple(left_out),
        value=float(sum(r.value for r in routes)),
        mandatory_served=sum(1 for s in prob.sites if s.mandatory and s.id in served),
        mandatory_total=n_mandatory,
        travel_s=float(sum(r.travel_s for r in routes)),
        distance_m=float(sum(r.distance_m for r in routes)),
        solver=label,
        solve_s=time.perf_counter() - t0,
        balance=balanced,
    )
    logger.info(
        "plan: %d/%d sites served (%d/%d mandatory), %d left out, %.0f min travel, %.2f s",
        len(served),
        len(prob.sites),
        plan.mandatory_served,
        n_mandatory,
        len(left_out),
        plan.travel_s / 60,
        plan.solve_s,
    )
    return plan


# ---------------------------------------------------------------------------------------
# Several days


@dataclass(frozen=True)
class PeriodicSite:
    """A site that needs regular patrol visits.

    Attributes
    ----------
    site
        The site (its ``mandatory`` flag and ``value`` apply to every visit).
    high_risk
        High-risk small works are visited every 3 days, others every 7 (DOMAIN: graded
        daily patrol); ``period_days`` overrides.
    period_days
        Days between visits, or ``None`` for the default of the risk class.
    days_since_visit
        Days since the last visit, or ``None`` if never visited (then it is due on day 0).
    """

    site: Site
    _: KW_ONLY
    high_risk: bool = False
    period_days: int | None = None
    days_since_visit: int | None = None


@dataclass(frozen=True)
class WeekPlan:
    """Plans for several days.

    Attributes
    ----------
    days
        One :class:`Plan` per day.
    assigned
        Site ids given to each day's planner (due visits and visits carried over).
    missed
        ``(day, LeftOut)`` for each visit not made by the end of the horizon, with the reason
        of the last day it was tried.
    visits_required, visits_made
        Visits the frequencies ask for within the horizon, and visits planned.
    load_s
        Estimated workload (service and travel) per day, from the assignment.
    inspector_load_s
        Inspector id → working seconds (travel and inspection) planned over the horizon.
    """

    days: tuple[Plan, ...]
    assigned: tuple[tuple[str, ...], ...]
    missed: tuple[tuple[int, LeftOut], ...]
    visits_required: int
    visits_made: int
    load_s: tuple[float, ...]
    inspector_load_s: dict[str, float] = field(default_factory=dict)


def plan_week(
    inspectors: Sequence[Inspector] | Sequence[Sequence[Inspector]],
    sites: Sequence[PeriodicSite],
    durations: NDArray | TravelMatrix | Mapping[str, NDArray | TravelMatrix],
    *,
    days: int = 7,
    distances: NDArray | Mapping[str, NDArray] | None = None,
    deadline_s: float = 10.0,
    high_risk_period_days: int = 3,
    default_period_days: int = 7,
    seed: int = 0,
    balance: float | None = 1.0,
) -> WeekPlan:
    """Spread periodic visits over days, balancing the daily workload, then plan each day.

    Each site gets a visiting phase: visits on days ``φ, φ + p, φ + 2p, …`` with ``φ`` no later
    than its first due day (visiting early is allowed, late is not), chosen greedily so that
    the busiest day, relative to the inspectors' shift time that day, is as light as
    possible. High-risk visits are mandatory; a visit the day's planner leaves out for lack of
    time is carried to the next day with double value (structural reasons — area,
    reachability, time window — are not retried).

    Parameters
    ----------
    inspectors
        The inspectors on duty every day, or one list per day.
    sites
        The sites and their visiting frequency.
    durations, distances
        As for :func:`plan_day`.
    days
        Length of the horizon.
    deadline_s
        Wall-clock limit **per day** planned.
    high_risk_period_days, default_period_days
        Visiting periods.
    seed
        Random seed of the daily searches.
    balance
        Workload balance across inspectors (see :func:`plan_day`), each day counting what
        every inspector already did on the days before; ``None`` balances days only.

    Returns
    -------
    WeekPlan
    """
    if int(days) != days or days < 1:
        msg = f"days must be a positive integer, got {days!r}"
        raise GisError(msg)
    by_day = _inspectors_by_day(inspectors, days)
    ids = [ps.site.id for ps in sites]
    if len(set(ids)) != len(ids):
        msg = "site ids must be unique in plan_week"
        raise GisError(msg)
    visit_days, required = _assign_days(
        by_day, sites, durations, days, high_risk_period_days, default_period_days
    )
    plans: list[Plan] = []
    assigned: list[tuple[str, ...]] = []
    carried: dict[str, Site] = {}
    missed: list[tuple[int, LeftOut]] = []
    made = 0
    done: dict[str, float] = {}
    for day in range(days):
        todays: dict[str, Site] = dict(carried)
        for i, ps in enumerate(sites):
            if day in visit_days[i] and ps.site.id not in todays:
                todays[ps.site.id] = replace(ps.site, mandatory=ps.site.mandatory or ps.high_risk)
        assigned.append(tuple(todays))
        on_duty = {i.id for i in by_day[day]}
        plan = plan_day(
            by_day[day],
            list(todays.values()),
            durations,
            distances=distances,
            deadline_s=deadline_s,
            seed=seed + day,
            balance=balance,
            prior_load_s={k: v for k, v in done.items() if k in on_duty},
        )
        plans.append(plan)
        for r in plan.routes:
            done[r.inspector_id] = done.get(r.inspector_id, 0.0) + r.travel_s + r.service_s
        made += len(plan.served_site_ids)
        carried = {}
        for lo in plan.left_out:
            retry = lo.constraint in ("shift_time", "max_stops", "max_workload", "break")
            if retry and day + 1 < days:
                site = todays[lo.site_id]
                carried[lo.site_id] = replace(site, value=max(site.value, 0.5) * 2.0)
            else:
                missed.append((day, lo))
    load = _day_loads(by_day, sites, durations, visit_days, days)
    return WeekPlan(
        days=tuple(plans),
        assigned=tuple(assigned),
        missed=tuple(missed),
        visits_required=required,
        visits_made=made,
        load_s=tuple(load),
        inspector_load_s=done,
    )


def _inspectors_by_day(
    inspectors: Sequence[Inspector] | Sequence[Sequence[Inspector]], days: int
) -> list[list[Inspector]]:
    items = list(inspectors)
    if not items:
        msg = "no inspectors: a plan needs at least one"
        raise GisError(msg)
    if all(isinstance(x, Inspector) for x in items):
        return [list(items) for _ in range(days)]
    if len(items) != days:
        msg = f"one list of inspectors per day was expected ({days}), got {len(items)}"
        raise GisError(msg)
    return [list(x) for x in items]


def _visit_load_s(sites: Sequence[PeriodicSite], durations: object, mode: str) -> NDArray:
    """Service time plus a travel estimate (mean of the three nearest other sites)."""
    matrix = _as_matrices(durations, "durations", {mode})[mode]
    loc = np.array([ps.site.location_index for ps in sites], dtype=np.int64)
    sub = matrix[np.ix_(loc, loc)].astype(float)
    np.fill_diagonal(sub, np.inf)
    sub = np.where(np.isfinite(sub), sub, np.nan)
    k = min(3, max(len(sites) - 1, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: isolated sites
        nearest = np.nanmean(np.sort(np.nan_to_num(sub, nan=np.inf), axis=1)[:, :k], axis=1)
    nearest = np.where(np.isfinite(nearest), nearest, 0.0)
    return np.array([ps.site.service_s for ps in sites]) + nearest


def _assign_days(
    by_day: list[list[Inspector]],
    sites: Sequence[PeriodicSite],
    durations: object,
    days: int,
    high_period: int,
    default_period: int,
) -> tuple[list[set[int]], int]:
    if not sites:
        return [], 0
    capacity = np.array(
        [
            max(sum(i.shift_end_s - i.shift_start_s - _rest_s(i) for i in insp), 1.0)
            for insp in by_day
        ]
    )
    load = _visit_load_s(sites, durations, by_day[0][0].mode)
    periods, first_due = [], []
    for ps in sites:
        period = ps.period_days or (high_period if ps.high_risk else default_period)
        if int(period) != period or period < 1:
            msg = f"site {ps.site.id!r}: period_days must be a positive integer, got {period!r}"
            raise GisError(msg)
        since = ps.days_since_visit
        periods.append(int(period))
        first_due.append(0 if since is None else max(0, int(period) - int(since)))
    day_load = np.zeros(days)
    visit_days: list[set[int]] = [set() for _ in sites]
    required = 0
    # Tight sites first (due soonest, then visited most often, then heaviest).
    order = sorted(range(len(sites)), key=lambda i: (first_due[i], periods[i], -load[i]))
    for i in order:
        if first_due[i] >= days:
            continue
        best_days, best_key = None, None
        for phase in range(0, min(first_due[i], periods[i] - 1) + 1):
            candidate = list(range(phase, days, periods[i]))
            trial = day_load.copy()
            trial[candidate] += load[i]
            key = (float(np.max(trial[candidate] / capacity[candidate])), -phase)
            if best_key is None or key < best_key:
                best_days, best_key = candidate, key
        assert best_days is not None
        day_load[best_days] += load[i]
        visit_days[i] = set(best_days)
        required += len(best_days)
    return visit_days, required


def _day_loads(
    by_day: list[list[Inspector]],
    sites: Sequence[PeriodicSite],
    durations: object,
    visit_days: list[set[int]],
    days: int,
) -> list[float]:
    if not sites:
        return [0.0] * days
    load = _visit_load_s(sites, durations, by_day[0][0].mode)
    return [
        float(sum(load[i] for i in range(len(sites)) if d in visit_days[i])) for d in range(days)
    ]
