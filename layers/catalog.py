"""The map layers, one definition each: what they show, how they are queried, styled and served.

A layer is data, not code: its titles (zh/en), geometry kind, the SQL it is read with (or the
service that computes it), the time column that ``since``/``until`` filter, the attribute
filters it accepts and their allowed values, its style (colours by a property, with a legend),
its popup fields, the link to an object's own page, and whether a map should load it as
GeoJSON or as vector tiles. :mod:`app.services.layers` runs these definitions;
``GET /api/layers`` hands them to the pages (:func:`catalogue`).

Served as **tiles** are the layers that grow with the city (projects, patrols, tracks: tens of
thousands to millions of rows); as **GeoJSON** the bounded ones (boundaries, hazards, incidents,
and the analyses, which are computed per request). Every SQL layer answers both ways; the
``served_as`` field says which a map should use.

Point layers are **aggregated** in tiles below ``aggregate_below`` (see :data:`CELLS_PER_TILE`):
each tile is cut into cells of equal size in Web Mercator and a cell emits one point (the mean
of its points) with ``count``, so a low-zoom tile carries at most 64 × 64 features whatever the
number of rows under it. A layer with ``aggregate_long_below`` is also aggregated up to that zoom
when the period asked for is longer than :data:`LONG_PERIOD_DAYS` (a year of patrols in a
street-sized tile is hundreds of thousands of points, a week a few thousand).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from app.patrol_rules import FORCES, HAZARD_TYPES, SEVERITIES
from app.rules import KINDS, get_rules

Geometry = Literal["point", "line", "polygon"]
Served = Literal["geojson", "tiles"]

# Cells per tile edge in aggregated tiles: 4,096 cells at most, 8 px each on a 512 px tile.
CELLS_PER_TILE = 64
# The MVT grid (ST_AsMVT's default) and the clipping buffer of line and polygon tiles.
TILE_EXTENT = 4096
TILE_BUFFER = 64
TILE_URL = "/tiles/{name}/{z}/{x}/{y}.pbf"
GEOJSON_URL = "/api/layers/{name}"
MAX_ZOOM = 22
# A period longer than this (days) is "long": see Layer.aggregate_long_below.
LONG_PERIOD_DAYS = 31
# The loops' states (app.services.lifecycle.STATES, app.services.hazards.HAZARD_MOVES), named
# here so that the map layers depend on the domain's words, not on its services; a test checks
# that they stay the same.
STATES = ("submitted", "returned", "refused", "accepted", "briefed", "in_progress",
          "completion_declared", "closed", "expired", "revoked")
ACTIVE_PROJECT_STATES = ("accepted", "briefed", "in_progress", "completion_declared")
HAZARD_STATES = ("found", "ordered", "rectified", "verified", "escalated")
OPEN_STATES = ("found", "ordered")


# --- the parts of a definition ---------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    zh: str
    en: str

    def json(self) -> dict[str, str]:
        return {"zh": self.zh, "en": self.en}


@dataclass(frozen=True)
class Filter:
    """One query parameter of a layer.

    ``enum``: comma list of ``values`` (or of ``aliases``, which expand to several values);
    ``code``: comma list of current territory codes of ``level``; ``text``: comma list of
    identifiers (letters, digits, ``-_.@``; an inspector's code); ``number``: one number in
    [``minimum``, ``maximum``]. ``column`` is the SQL expression compared (SQL layers); service
    layers hand the value to their service instead. ``sql_values`` maps a value to what the
    column holds (``risk=high`` → ``high_risk = true``).
    """

    name: str
    label: Label
    kind: Literal["enum", "code", "text", "number"] = "enum"
    column: str | None = None
    values: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()
    value_labels: dict[str, Label] = field(default_factory=dict)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sql_values: dict[str, Any] = field(default_factory=dict)
    level: str | None = None
    many: bool = True
    default: str | None = None
    minimum: float | None = None
    maximum: float | None = None

    def allowed(self) -> tuple[str, ...]:
        return self.values() if callable(self.values) else self.values

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "label": self.label.json(), "kind": self.kind,
                               "many": self.many, "default": self.default}
        if self.kind == "enum":
            out["values"] = list(self.allowed())
            out["aliases"] = {k: list(v) for k, v in self.aliases.items()}
            out["value_labels"] = {k: v.json() for k, v in self.value_labels.items()}
        elif self.kind == "code":
            out["level"] = self.level
        elif self.kind == "number":
            out["minimum"], out["maximum"] = self.minimum, self.maximum
        return out


@dataclass(frozen=True)
class LegendEntry:
    value: str | None
    label: Label
    colour: str

    def json(self) -> dict[str, Any]:
        return {"value": self.value, "label_zh": self.label.zh, "label_en": self.label.en,
                "colour": self.colour}


@dataclass(frozen=True)
class Style:
    """Colour by one property (``colours``: value → colour; anything else ``default``).

    ``outline_by`` draws a second, independent cue (the outline of a point or the dash of a
    line) from another property, e.g. the risk of a project whose fill is its state.
    """

    property: str | None
    legend: tuple[LegendEntry, ...]
    default: str = "#6b7280"
    outline_by: str | None = None
    outline: tuple[LegendEntry, ...] = ()
    radius: float = 5.0
    weight: float = 2.0
    opacity: float = 0.9
    fill_opacity: float = 0.35

    def json(self) -> dict[str, Any]:
        return {
            "property": self.property,
            "colours": {e.value: e.colour for e in self.legend if e.value is not None},
            "default": self.default,
            "outline_by": self.outline_by,
            "outline_colours": {e.value: e.colour for e in self.outline if e.value is not None},
            "radius": self.radius, "weight": self.weight, "opacity": self.opacity,
            "fill_opacity": self.fill_opacity,
        }

    def legend_json(self) -> list[dict[str, Any]]:
        return [e.json() for e in (*self.legend, *self.outline)]


@dataclass(frozen=True)
class PopupField:
    field: str
    label: Label

    def json(self) -> dict[str, str]:
        return {"field": self.field, "label_zh": self.label.zh, "label_en": self.label.en}


@dataclass(frozen=True)
class Sql:
    """How a SQL layer is read. The table's alias is ``t``; ``geom`` is in EPSG:4326.

    ``index_geom`` is the indexed column the ``&&`` prefilters run on (``geom`` may be an
    expression of it: a point on the surface of a site). ``scope`` tells how an account's scope
    applies (:meth:`app.access.Scope.sql` arguments); None: reference data, seen by all.
    ``district`` names the district-code column that a date-filtered tile query may also
    constrain, so that the (district, day) B-tree can answer instead of the spatial index.
    ``requires``: tables that may not exist yet; the layer is empty while any is missing.
    ``lonlat``: stored columns holding ``geom``'s longitude and latitude, where an index on the
    period carries them: the points near a tile are then read without the table's rows.
    ``cell_key``: a stored column with the key of ``geom``'s zoom-24 cell (``gis/cellkey.py``),
    third in a (district, time, key) index: a tile of a bounded period then reads each day's
    range of its keys.
    """

    from_: str
    geom: str
    index_geom: str
    columns: dict[str, str]
    id: str | None = None
    where: str = "true"
    time: str | None = None
    district: str | None = None
    order: str = "1"
    scope: dict[str, Any] | None = None
    requires: tuple[str, ...] = ()
    cluster_sums: dict[str, str] = field(default_factory=dict)
    rollup: Rollup | None = None
    lonlat: tuple[str, str] | None = None
    cell_key: str | None = None


@dataclass(frozen=True)
class Rollup:
    """The cells of a point layer counted ahead of time, for its aggregated tiles.

    A table ``table`` holds, per stored cell zoom (``levels``: a tile of zoom z aggregates into
    cells of zoom z + 6), per combination of the ``dims`` columns (named as in the source table)
    and, with ``time``, per day, per ten-day period (旬), per month and per quarter of that date
    column, the number of points and the sums of their longitudes and latitudes. Statement
    triggers on the source table keep it (:mod:`app.services.rollups`), so a district-wide tile
    of a year of patrols reads a few thousand cells instead of a million points, and gives the
    same tile.
    A query the cells cannot answer exactly (a filter or scope on a column not in ``dims``)
    reads the points.
    """

    table: str
    levels: tuple[int, ...]
    dims: tuple[str, ...]
    time: str | None = None
    # Levels from this one up keep months and quarters only (no days, no 旬): the fine cells of
    # the long periods drawn at street zoom (see Layer.aggregate_long_below), a fraction of the
    # rows days would take. There the days of a period that are not whole months are counted
    # from the points.
    months_from: int | None = None
    # Fine levels up to this one keep the 旬 too: a period that is not whole months then counts
    # at most the 18 days around its 旬 from the points (the cells of a zoom-13 tile of the last
    # 365 days: 2 days of points instead of 23), for an eighth more rows.
    dekads_to: int | None = None

    def spans_at(self, level: int) -> str:
        """The bucket spans kept at a level: 'dxmq' (day, 旬, month, quarter), 'xmq', 'mq', or
        'a' (no time)."""
        if self.time is None:
            return "a"
        if self.months_from is None or level < self.months_from:
            return "dxmq"
        return "xmq" if self.dekads_to is not None and level <= self.dekads_to else "mq"


@dataclass(frozen=True)
class Service:
    """A layer computed by an application service (analyses): GeoJSON only."""

    name: str


@dataclass(frozen=True)
class Layer:
    name: str
    title: Label
    group: Literal["territory", "supervision", "analysis", "planning"]
    geometry: Geometry
    served_as: Served
    source: Sql | Service
    style: Style
    popup: tuple[PopupField, ...]
    filters: tuple[Filter, ...] = ()
    time_label: Label | None = None
    default_days: int | None = None
    link: str | None = None
    public_link: str | None = None
    min_zoom: int = 0
    max_zoom: int = MAX_ZOOM
    aggregate_below: int | None = None
    # Also aggregated below this zoom when the period is longer than LONG_PERIOD_DAYS.
    aggregate_long_below: int | None = None
    geojson_cap: int = 10_000
    action: Literal["list", "analyse"] = "list"
    note: Label | None = None

    @property
    def has_time(self) -> bool:
        return self.time_label is not None

    @property
    def tiles(self) -> bool:
        return isinstance(self.source, Sql)

    def filter(self, name: str) -> Filter | None:
        return next((f for f in self.filters if f.name == name), None)

    def aggregated(self, z: int, long_period: bool) -> bool:
        """Whether a tile of zoom ``z`` holds cells rather than points; ``long_period``: the
        period asked for is longer than LONG_PERIOD_DAYS, or unbounded."""
        if self.geometry != "point" or self.aggregate_below is None:
            return False
        if z < self.aggregate_below:
            return True
        return (long_period and self.aggregate_long_below is not None
                and z < self.aggregate_long_below)

    def json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title.json(),
            "group": self.group,
            "geometry": self.geometry,
            "served_as": self.served_as,
            "urls": {"geojson": GEOJSON_URL.format(name=self.name),
                     "tiles": (TILE_URL.replace("{name}", self.name) if self.tiles else None)},
            "min_zoom": self.min_zoom,
            "max_zoom": self.max_zoom,
            "aggregate_below_zoom": self.aggregate_below if self.geometry == "point" else None,
            "aggregate_long_below_zoom": (self.aggregate_long_below
                                          if self.geometry == "point" else None),
            "time": ({"label": self.time_label.json(), "default_days": self.default_days}
                     if self.time_label else None),
            "filters": [f.json() for f in self.filters],
            "style": self.style.json(),
            "legend": self.style.legend_json(),
            "popup": [p.json() for p in self.popup],
            "link": self.link,
            "public_link": self.public_link,
            "geojson_cap": self.geojson_cap,
            "action": self.action,
            "note": self.note.json() if self.note else None,
        }


# --- shared vocabulary -------------------------------------------------------------------------


def L(zh: str, en: str) -> Label:  # noqa: N802 - reads as a literal
    return Label(zh, en)


STATE_LABELS = {
    "submitted": L("待受理", "submitted"), "returned": L("退回补正", "returned"),
    "refused": L("不予登记", "refused"), "accepted": L("已受理", "accepted"),
    "briefed": L("已安全交底", "briefed"), "in_progress": L("施工中", "in progress"),
    "completion_declared": L("已申报完工", "completion declared"),
    "closed": L("已完工核销", "closed"), "expired": L("登记已过期", "expired"),
    "revoked": L("登记已撤销", "revoked"),
}
STATE_COLOURS = {
    "submitted": "#a78bfa", "returned": "#c4b5fd", "refused": "#9ca3af",
    "accepted": "#60a5fa", "briefed": "#2563eb", "in_progress": "#f97316",
    "completion_declared": "#facc15", "closed": "#16a34a", "expired": "#7f1d1d",
    "revoked": "#4b5563",
}
HAZARD_STATE_LABELS = {
    "found": L("已发现", "found"), "ordered": L("已责令整改", "ordered"),
    "rectified": L("已整改待核查", "rectified, to verify"), "verified": L("已核查", "verified"),
    "escalated": L("已移交执法", "escalated"),
}
HAZARD_STATE_COLOURS = {"found": "#dc2626", "ordered": "#f97316", "rectified": "#2563eb",
                        "verified": "#16a34a", "escalated": "#7c3aed"}
FORCE_COLOURS = {"supervisor": "#1d4ed8", "grid_worker": "#059669", "property": "#d97706",
                 "public": "#db2777"}
FORCE_LABELS_EN = {"supervisor": "safety supervisor", "grid_worker": "grid worker",
                   "property": "property company", "public": "the public"}
GI_STYLE = (
    ("hot_99", "热点（99% 置信）", "Hot spot, 99 %", "#b2182b"),
    ("hot_95", "热点（95% 置信）", "Hot spot, 95 %", "#ef8a62"),
    ("hot_90", "热点（90% 置信）", "Hot spot, 90 %", "#fddbc7"),
    ("not_significant", "不显著", "Not significant", "#f7f7f7"),
    ("cold_90", "冷点（90% 置信）", "Cold spot, 90 %", "#d1e5f0"),
    ("cold_95", "冷点（95% 置信）", "Cold spot, 95 %", "#67a9cf"),
    ("cold_99", "冷点（99% 置信）", "Cold spot, 99 %", "#2166ac"),
    ("island", "孤立单元", "Island (no neighbour)", "#bdbdbd"),
    ("no_exposure", "无在施工程", "No exposure", "#e5e7eb"),
)

NAME = PopupField("name", L("名称", "Name"))
CODE = PopupField("code", L("代码", "Code"))


def _place_filters(alias: str = "t", *, district: bool = True) -> tuple[Filter, ...]:
    out = [
        Filter("street", L("街道", "Street"), "code", f"{alias}.street_code", level="street"),
        Filter("community", L("社区", "Community"), "code", f"{alias}.community_code",
               level="community"),
        Filter("grid", L("网格", "Grid"), "code", f"{alias}.grid_code", level="grid"),
    ]
    if district:
        out.insert(0, Filter("district", L("区", "District"), "code", f"{alias}.district_code",
                             level="district"))
    return tuple(out)


def _legend(labels: dict[str, Label], colours: dict[str, str],
            order: tuple[str, ...]) -> tuple[LegendEntry, ...]:
    return tuple(LegendEntry(v, labels[v], colours[v]) for v in order)


def _categories() -> tuple[str, ...]:
    return tuple(get_rules().categories)


# --- territory ---------------------------------------------------------------------------------


def _unit_layer(name: str, table: str, level: str, title: Label, style: Style,
                parent: str | None, min_zoom: int) -> Layer:
    filters = [Filter("district", L("区", "District"), "code", "t.district_code",
                      level="district")]
    if parent == "district":
        filters.append(Filter("street", L("街道", "Street"), "code", "t.code", level="street"))
    if parent == "street":
        filters.append(Filter("street", L("街道", "Street"), "code", "t.parent_code",
                              level="street"))
        filters.append(Filter("community", L("社区", "Community"), "code", "t.code",
                              level="community"))
    if parent == "community":
        filters.append(Filter(
            "street", L("街道", "Street"), "code",
            "(SELECT c.parent_code FROM communities c WHERE c.code = t.parent_code "
            "AND c.valid_to IS NULL)", level="street"))
        filters.append(Filter("community", L("社区", "Community"), "code", "t.parent_code",
                              level="community"))
        filters.append(Filter("grid", L("网格", "Grid"), "code", "t.code", level="grid"))
    columns = {"code": "t.code", "name": "t.name", "level": f"'{level}'",
               "district_code": "t.district_code"}
    if parent:
        columns["parent_code"] = "t.parent_code"
    return Layer(
        name=name, title=title, group="territory", geometry="polygon", served_as="geojson",
        source=Sql(from_=f"{table} t", geom="t.geom", index_geom="t.geom", columns=columns,
                   where="t.valid_to IS NULL", order="t.code"),
        style=style, popup=(NAME, CODE), filters=tuple(filters),
        link=f"/api/territory/{level}/{{code}}", min_zoom=min_zoom, geojson_cap=5000,
    )


BOUNDARIES = (
    _unit_layer("districts", "districts", "district", L("区界", "District boundary"),
                Style(None, (LegendEntry(None, L("区界", "District"), "#1f2937"),),
                      default="#1f2937", weight=3.5, fill_opacity=0.0), None, 0),
    _unit_layer("streets", "streets", "street", L("街道", "Streets"),
                Style(None, (LegendEntry(None, L("街道界", "Street"), "#b91c1c"),),
                      default="#b91c1c", weight=2.5, fill_opacity=0.05), "district", 0),
    _unit_layer("communities", "communities", "community", L("社区", "Communities"),
                Style(None, (LegendEntry(None, L("社区界", "Community"), "#1d4ed8"),),
                      default="#1d4ed8", weight=1.5, fill_opacity=0.0), "street", 0),
    _unit_layer("grids", "grids", "grid", L("网格", "Grids"),
                Style(None, (LegendEntry(None, L("网格界", "Grid"), "#6b7280"),),
                      default="#6b7280", weight=0.7, fill_opacity=0.0), "community", 12),
)


# --- supervision -------------------------------------------------------------------------------

PROJECTS = Layer(
    name="projects", title=L("工程（状态与风险）", "Projects by state and risk"),
    group="supervision", geometry="point", served_as="tiles",
    source=Sql(
        from_="projects t", index_geom="t.site", id="t.id",
        # A site is mostly a point; a polygon is represented by a point inside it.
        geom="CASE WHEN ST_GeometryType(t.site) = 'ST_Point' THEN t.site "
             "ELSE ST_PointOnSurface(t.site) END",
        columns={
            "id": "t.id", "reg_no": "t.reg_no", "public_id": "t.public_id", "title": "t.title",
            "state": "t.state",
            "risk": "CASE WHEN t.high_risk THEN 'high' ELSE 'normal' END",
            "kind": "t.kind", "category": "t.category", "street_name": "t.street_name",
            "community_name": "t.community_name", "grid_code": "t.grid_code",
            "grid_name": "t.grid_name", "submitted_on": "t.submitted_on",
            "planned_end": "t.planned_end",
        },
        time="t.submitted_on", order="t.id",
        scope={"geom": "site"},
        cluster_sums={"high_risk": "t.high_risk",
                      "active": "t.state IN ('accepted', 'briefed', 'in_progress', "
                                "'completion_declared')"},
        rollup=Rollup("project_cells", levels=tuple(range(15, 21)),
                      dims=("state", "high_risk", "kind", "category", "street_code",
                            "district_code")),
    ),
    filters=(
        Filter("state", L("状态", "State"), "enum", "t.state", values=STATES,
               value_labels=STATE_LABELS, aliases={"active": ACTIVE_PROJECT_STATES}),
        Filter("risk", L("风险", "Risk"), "enum", "t.high_risk", values=("high", "normal"),
               value_labels={"high": L("高风险", "high risk"), "normal": L("一般", "normal")},
               sql_values={"high": True, "normal": False}),
        Filter("kind", L("类型", "Kind"), "enum", "t.kind", values=tuple(KINDS)),
        Filter("category", L("类别", "Category"), "enum", "t.category", values=_categories),
        *_place_filters(),
    ),
    time_label=L("登记日期", "Submitted on"),
    style=Style(
        "state", _legend(STATE_LABELS, STATE_COLOURS, STATES), outline_by="risk",
        outline=(LegendEntry("high", L("高风险（红色描边）", "High risk (red outline)"),
                             "#b91c1c"),
                 LegendEntry("normal", L("一般风险（白色描边）", "Normal risk (white outline)"),
                             "#ffffff")),
        radius=5.0),
    popup=(PopupField("reg_no", L("登记编号", "Registration")),
           PopupField("title", L("工程名称", "Title")), PopupField("state", L("状态", "State")),
           PopupField("risk", L("风险", "Risk")), PopupField("category", L("类别", "Category")),
           PopupField("grid_name", L("网格", "Grid")),
           PopupField("submitted_on", L("登记日期", "Submitted on"))),
    link="/api/projects/{id}", public_link="/p/{public_id}",
    min_zoom=9, aggregate_below=15, geojson_cap=5000,
)

_PATROL_SOURCE = dict(
    from_="patrols t", index_geom="t.location", id="t.id",
    columns={"id": "t.id", "force": "t.force", "inspector_id": "t.inspector_id",
             "inspector_name": "t.inspector_name", "patrol_on": "t.patrol_on",
             "started_at": "t.started_at", "grid_code": "t.grid_code",
             "has_track": "t.track IS NOT NULL"},
    time="t.patrol_on", district="t.district_code", order="t.started_at DESC, t.id",
    scope={"geom": "location", "own": "inspector_id"},
)
_PATROL_FILTERS = (
    Filter("force", L("巡查力量", "Force"), "enum", "t.force", values=tuple(FORCES),
           value_labels={k: L(v, FORCE_LABELS_EN[k]) for k, v in FORCES.items()}),
    Filter("inspector", L("巡查人员", "Inspector"), "text", "t.inspector_id"),
    *_place_filters(),
)
_FORCE_LEGEND = tuple(LegendEntry(k, L(v, FORCE_LABELS_EN[k]), FORCE_COLOURS[k])
                      for k, v in FORCES.items())
_WEEK = L("默认显示最近 7 天（最长的巡查周期）；用 since/until 查看其他时段。",
          "Shows the last 7 days by default (the longest patrol period); use since/until.")

PATROLS = Layer(
    name="patrols", title=L("巡查点位", "Patrol points"), group="supervision",
    geometry="point", served_as="tiles",
    source=Sql(geom="t.location",
               rollup=Rollup("patrol_cells", levels=tuple(range(15, 23)),
                             dims=("street_code", "district_code"), time="patrol_on",
                             months_from=19, dekads_to=19),
               lonlat=("t.lon", "t.lat"), cell_key="t.cell_key",
               **_PATROL_SOURCE),  # type: ignore[arg-type]
    filters=_PATROL_FILTERS, time_label=L("巡查日期", "Patrol day"), default_days=7,
    style=Style("force", _FORCE_LEGEND, radius=3.0),
    popup=(PopupField("force", L("巡查力量", "Force")),
           PopupField("inspector_id", L("巡查人员", "Inspector")),
           PopupField("started_at", L("时间", "Time")), PopupField("grid_code", L("网格", "Grid"))),
    link="/api/patrols/{id}", min_zoom=9, aggregate_below=16, aggregate_long_below=17,
    geojson_cap=10_000, note=_WEEK,
)

TRACKS = Layer(
    name="tracks", title=L("巡查轨迹", "Patrol tracks"), group="supervision",
    geometry="line", served_as="tiles",
    source=Sql(geom="ST_Force2D(t.track)", where="t.track IS NOT NULL",
               **_PATROL_SOURCE),  # type: ignore[arg-type]
    filters=_PATROL_FILTERS, time_label=L("巡查日期", "Patrol day"), default_days=7,
    style=Style("force", _FORCE_LEGEND, weight=2.0, opacity=0.7),
    popup=(PopupField("force", L("巡查力量", "Force")),
           PopupField("inspector_id", L("巡查人员", "Inspector")),
           PopupField("patrol_on", L("巡查日期", "Patrol day"))),
    link="/api/patrols/{id}", min_zoom=12, geojson_cap=2000, note=_WEEK,
)

HAZARDS = Layer(
    name="hazards", title=L("隐患", "Hazards"), group="supervision", geometry="point",
    served_as="geojson",
    source=Sql(
        from_="hazards t", geom="t.location", index_geom="t.location", id="t.id",
        columns={"id": "t.id", "hazard_type": "t.hazard_type", "severity": "t.severity",
                 "state": "t.state", "found_on": "t.found_on", "due_on": "t.due_on",
                 "overdue": "(t.state IN ('found', 'ordered') AND t.due_on < CURRENT_DATE)",
                 "project_id": "t.project_id", "grid_code": "t.grid_code"},
        time="t.found_on", order="t.found_on DESC, t.id", scope={"geom": "location"},
        cluster_sums={"open": "t.state IN ('found', 'ordered')",
                      "major": "t.severity = 'major'"},
    ),
    filters=(
        Filter("state", L("状态", "State"), "enum", "t.state", values=HAZARD_STATES,
               value_labels=HAZARD_STATE_LABELS, aliases={"open": OPEN_STATES}),
        Filter("severity", L("等级", "Severity"), "enum", "t.severity",
               values=tuple(SEVERITIES)),
        Filter("hazard_type", L("隐患类型", "Type"), "enum", "t.hazard_type",
               values=tuple(HAZARD_TYPES)),
        *_place_filters(),
    ),
    time_label=L("发现日期", "Found on"),
    style=Style("state", _legend(HAZARD_STATE_LABELS, HAZARD_STATE_COLOURS, HAZARD_STATES),
                radius=6.0),
    popup=(PopupField("hazard_type", L("隐患类型", "Type")),
           PopupField("severity", L("等级", "Severity")), PopupField("state", L("状态", "State")),
           PopupField("found_on", L("发现日期", "Found on")),
           PopupField("due_on", L("整改期限", "Due on"))),
    link="/api/hazards/{id}", min_zoom=9, aggregate_below=14, geojson_cap=10_000,
)

INCIDENT_CLASS = ("fatal", "injury", "none")
INCIDENTS = Layer(
    name="incidents", title=L("事故", "Incidents"), group="supervision", geometry="point",
    served_as="geojson",
    source=Sql(
        from_="incidents t", geom="t.location", index_geom="t.location", id="t.id",
        columns={"id": "t.id", "incident_type": "t.incident_type",
                 "occurred_on": "t.occurred_on", "deaths": "t.deaths", "injuries": "t.injuries",
                 "casualties": "CASE WHEN t.deaths > 0 THEN 'fatal' WHEN t.injuries > 0 "
                               "THEN 'injury' ELSE 'none' END",
                 "project_id": "t.project_id", "grid_code": "t.grid_code"},
        time="t.occurred_on", order="t.occurred_on DESC, t.id", scope={"geom": "location"},
        cluster_sums={"fatal": "t.deaths > 0"},
    ),
    filters=(
        Filter("incident_type", L("事故类型", "Type"), "enum", "t.incident_type",
               values=tuple(HAZARD_TYPES)),
        Filter("casualties", L("伤亡", "Casualties"), "enum",
               "CASE WHEN t.deaths > 0 THEN 'fatal' WHEN t.injuries > 0 THEN 'injury' "
               "ELSE 'none' END", values=INCIDENT_CLASS),
        *_place_filters(),
    ),
    time_label=L("发生日期", "Occurred on"),
    style=Style("casualties", (
        LegendEntry("fatal", L("有死亡", "Fatal"), "#7f1d1d"),
        LegendEntry("injury", L("有受伤", "Injuries"), "#dc2626"),
        LegendEntry("none", L("无伤亡", "No casualties"), "#f59e0b")), radius=7.0),
    popup=(PopupField("incident_type", L("事故类型", "Type")),
           PopupField("occurred_on", L("发生日期", "Occurred on")),
           PopupField("deaths", L("死亡", "Deaths")),
           PopupField("injuries", L("受伤", "Injuries"))),
    link="/api/projects/{project_id}", min_zoom=9, aggregate_below=12, geojson_cap=10_000,
)


# --- analyses (computed per request by the application's services) -------------------------

_EVENT_FILTERS = (
    Filter("district", L("区", "District"), "code", level="district", many=False),
    Filter("street", L("街道", "Street"), "code", level="street", many=False),
    Filter("community", L("社区", "Community"), "code", level="community", many=False),
    Filter("events", L("事件", "Events"), "enum", values=("hazards", "incidents"), many=False,
           default="hazards",
           value_labels={"hazards": L("隐患", "hazards"), "incidents": L("事故", "incidents")}),
    Filter("hazard_type", L("类型", "Type"), "enum", values=tuple(HAZARD_TYPES)),
    Filter("severity", L("等级", "Severity"), "enum", values=tuple(SEVERITIES)),
    Filter("kind", L("工程类型", "Kind of work"), "enum", values=tuple(KINDS), many=False),
    Filter("category", L("工程类别", "Category"), "enum", values=_categories, many=False),
)

HEAT = Layer(
    name="heat", title=L("隐患密度", "Density (heat)"), group="analysis", geometry="polygon",
    served_as="geojson", source=Service("density"),
    filters=(*_EVENT_FILTERS,
             Filter("cell_m", L("格网边长（米）", "Cell side (m)"), "number", many=False,
                    default="100", minimum=20, maximum=1000),
             Filter("bandwidth_m", L("带宽（米）", "Bandwidth (m)"), "number", many=False,
                    minimum=50, maximum=5000)),
    time_label=L("事件日期", "Event day"), default_days=365,
    style=Style("band", (
        LegendEntry("low", L("较高密度（峰值 25% 以上）", "Above 25 % of the peak"), "#fed976"),
        LegendEntry("medium", L("高密度（峰值 50% 以上）", "Above 50 % of the peak"), "#fd8d3c"),
        LegendEntry("high", L("最高密度（峰值 75% 以上）", "Above 75 % of the peak"), "#bd0026")),
        fill_opacity=0.45, weight=0.5),
    popup=(PopupField("band", L("密度等级", "Band")),
           PopupField("level", L("密度（每平方公里）", "Density (per km²)"))),
    action="analyse", geojson_cap=5000,
    note=L("原始事件的核密度，未按工程数量标准化；比率请看热点图层。",
           "Kernel density of raw events, not normalised by exposure; see hot spots for rates."),
)

HOTSPOTS = Layer(
    name="hotspots", title=L("隐患热点（Gi*）", "Hot spots (Gi*)"), group="analysis",
    geometry="polygon", served_as="geojson", source=Service("hotspots"),
    filters=(*_EVENT_FILTERS,
             Filter("measure", L("度量", "Measure"), "enum",
                    values=("per_project", "per_visit", "count"), many=False,
                    default="per_project")),
    time_label=L("事件日期", "Event day"), default_days=365,
    style=Style("class", tuple(LegendEntry(v, L(zh, en), c) for v, zh, en, c in GI_STYLE),
                fill_opacity=0.6, weight=0.5),
    popup=(PopupField("name", L("网格", "Grid")), PopupField("class", L("类别", "Class")),
           PopupField("n", L("事件数", "Events")), PopupField("rate", L("比率", "Rate")),
           PopupField("z", L("Z 值", "z"))),
    action="analyse", geojson_cap=5000,
)

BLIND_CLASSES = (
    ("overdue_many", "4 个及以上超期工地", "4 or more overdue sites", "#7f1d1d"),
    ("overdue_few", "2–3 个超期工地", "2–3 overdue sites", "#dc2626"),
    ("overdue_one", "1 个超期工地", "1 overdue site", "#f87171"),
    ("no_patrols", "有工地但窗口期内无巡查", "Sites but no patrol in the window", "#f59e0b"),
)
BLIND_SPOTS = Layer(
    name="blind_spots", title=L("巡查盲区（网格）", "Blind spots (grids)"), group="analysis",
    geometry="polygon", served_as="geojson", source=Service("blind_spots"),
    filters=(Filter("district", L("区", "District"), "code", level="district", many=False),),
    time_label=L("巡查窗口", "Patrol window"), default_days=30,
    style=Style("blind_class",
                tuple(LegendEntry(v, L(zh, en), c) for v, zh, en, c in BLIND_CLASSES),
                fill_opacity=0.55, weight=0.7),
    popup=(PopupField("grid_name", L("网格", "Grid")),
           PopupField("active_sites", L("在施工地", "Active sites")),
           PopupField("overdue_sites", L("超期未巡工地", "Overdue sites")),
           PopupField("days_since_patrol", L("距上次巡查（天）", "Days since a patrol")),
           PopupField("visits", L("窗口内巡查次数", "Visits in the window"))),
    link="/api/territory/grid/{grid_code}", action="analyse", geojson_cap=5000,
    note=L("until 为统计日（默认今天），since 至 until 为巡查窗口（默认 30 天）。",
           "until is the day of the count (default today); since..until is the patrol window."),
)

UNCOVERED = Layer(
    name="uncovered", title=L("网格未覆盖区域", "Land no grid covers"), group="analysis",
    geometry="polygon", served_as="geojson", source=Service("uncovered"),
    filters=(Filter("district", L("区", "District"), "code", level="district", many=False),
             Filter("min_area_m2", L("最小面积（平方米）", "Minimum area (m²)"), "number",
                    many=False, default="50", minimum=0, maximum=1e7)),
    style=Style("kind", (LegendEntry("no_grid", L("无网格覆盖", "No grid"), "#111827"),),
                fill_opacity=0.5, weight=1.0),
    popup=(PopupField("area_m2", L("面积（平方米）", "Area (m²)")),),
    geojson_cap=5000,
)

# --- planning ----------------------------------------------------------------------------------

ROUTES = Layer(
    name="routes", title=L("巡查路线", "Patrol routes"), group="planning", geometry="line",
    served_as="geojson",
    source=Sql(
        from_="route_plan_routes t JOIN route_plans p ON p.id = t.plan_id",
        geom="t.geometry", index_geom="t.geometry", id="t.id",
        columns={"id": "t.id", "plan_id": "t.plan_id", "version": "p.version",
                 "status": "p.status", "route_date": "t.route_date",
                 "inspector_code": "t.inspector_code", "colour": "t.colour",
                 "distance_m": "round(t.distance_m::numeric, 1)",
                 "travel_min": "round((t.travel_s / 60.0)::numeric, 1)",
                 "street_code": "p.street_code", "matrix_source": "p.matrix_source"},
        # The newest version of each plan lineage only: a re-plan supersedes its parent.
        where=("t.geometry IS NOT NULL AND p.version = (SELECT max(n.version) FROM route_plans n"
               " WHERE n.root_id = p.root_id)"),
        time="t.route_date", order="t.route_date, t.plan_id, t.inspector_code",
        scope={"alias": "p", "geom": None, "codes": ("street_code", "district_code")},
        requires=("route_plans", "route_plan_routes"),
    ),
    filters=(
        Filter("status", L("状态", "Status"), "enum", "p.status", values=("draft", "issued"),
               value_labels={"draft": L("草稿", "draft"), "issued": L("已下发", "issued")}),
        Filter("inspector", L("巡查员", "Inspector"), "text", "t.inspector_code"),
        Filter("district", L("区", "District"), "code", "p.district_code", level="district"),
        Filter("street", L("街道", "Street"), "code", "p.street_code", level="street"),
    ),
    time_label=L("路线日期", "Route day"),
    style=Style("colour", (LegendEntry(None, L("每名巡查员一种颜色", "One colour per inspector"),
                                       "#2563eb"),), weight=4.0, opacity=0.85),
    popup=(PopupField("inspector_code", L("巡查员", "Inspector")),
           PopupField("route_date", L("日期", "Day")),
           PopupField("distance_m", L("里程（米）", "Distance (m)")),
           PopupField("travel_min", L("行程（分钟）", "Travel (min)")),
           PopupField("status", L("状态", "Status"))),
    link="/api/plans/{plan_id}", geojson_cap=5000,
    note=L("每个计划只显示最新版本；颜色取自路线本身（colour 属性）。",
           "Only the newest version of each plan; the colour is the route's own (colour)."),
)

LAYERS: dict[str, Layer] = {layer.name: layer for layer in (
    *BOUNDARIES, PROJECTS, PATROLS, TRACKS, HAZARDS, INCIDENTS, HEAT, HOTSPOTS, BLIND_SPOTS,
    UNCOVERED, ROUTES)}

# Query parameters every layer understands besides its filters.
COMMON_PARAMS = ("bbox", "since", "until")


def get(name: str) -> Layer | None:
    return LAYERS.get(name)


def catalogue() -> dict[str, Any]:
    """The catalogue a map page reads: every layer, its URLs, filters, legend and popup."""
    return {
        "layers": [layer.json() for layer in LAYERS.values()],
        "tile_url": TILE_URL,
        "geojson_url": GEOJSON_URL,
        "tiles": {"format": "application/vnd.mapbox-vector-tile", "extent": TILE_EXTENT,
                  "scheme": "xyz", "crs": "EPSG:3857",
                  "aggregated": {"cells_per_tile": CELLS_PER_TILE,
                                 "properties": ["count", "<layer sums>"],
                                 "note": "below aggregate_below_zoom a point layer's tile holds "
                                         "one point per occupied cell (the mean of its points) "
                                         "with count and per-layer sums; at and above it, the "
                                         "points themselves with their properties; below "
                                         "aggregate_long_below_zoom too when the period is "
                                         f"longer than {LONG_PERIOD_DAYS} days"}},
        "common_params": {"bbox": "minlon,minlat,maxlon,maxlat (WGS84)",
                          "since": "YYYY-MM-DD (inclusive)", "until": "YYYY-MM-DD (inclusive)"},
    }
