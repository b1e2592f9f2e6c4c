"""The ``xiaosan hotspots`` commands: map, compare, emerging (GeoJSON or CSV out)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gis._errors import GisError

hotspots_app = typer.Typer(help="Hot spots of hazards and incidents: rates, change, trends.",
                           no_args_is_help=True)
console = Console()
err = Console(stderr=True)

Day = Annotated[str | None, typer.Option(help="YYYY-MM-DD")]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="file.geojson or file.csv")]
District = Annotated[str | None, typer.Option(help="12-digit code; default the demo")]
Events = Annotated[str, typer.Option(help="hazards or incidents")]
HazardType = Annotated[str | None, typer.Option(help="comma list: fall_from_height, fire…")]
Severity = Annotated[str | None, typer.Option(help="immediate, general, major (hazards)")]
Kind = Annotated[str | None, typer.Option(help="small_project or sporadic_work")]
Category = Annotated[str | None, typer.Option(help="project category code")]
Street = Annotated[str | None, typer.Option(help="street code")]
Community = Annotated[str | None, typer.Option(help="community code")]
Measure = Annotated[str, typer.Option(help="per_project, per_visit or count")]
Units = Annotated[str, typer.Option(help="grid, h3 or fishnet")]
Resolution = Annotated[int, typer.Option(help="H3 resolution 8-10")]
CellM = Annotated[float, typer.Option(help="fishnet cell side in metres")]


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"{name}: {value!r} is not a date (YYYY-MM-DD)")
    return None


def _run(build, out: Path | None, title: str) -> None:
    """Open a session, build the result, print the summary, write the file."""
    from app.db import session_factory
    from app.services import hotspots

    if out is not None and out.suffix.lower() not in (".geojson", ".json", ".csv"):
        _fail(f"out: {out.name} must end in .geojson, .json or .csv")
    try:
        with session_factory()() as session:
            result = build(session, hotspots)
    except GisError as exc:
        _fail(str(exc))
    _summary(result.meta, title)
    if out is not None:
        if out.suffix.lower() == ".csv":
            out.write_text(hotspots.csv_text(result), encoding="utf-8")
        else:
            collection = hotspots.feature_collection(result)
            out.write_text(json.dumps(collection, ensure_ascii=False), encoding="utf-8")
        console.print(f"written {out}")


def _summary(meta: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    table.add_column("class")
    table.add_column("units", justify="right")
    for name, n in meta["class_counts"].items():
        if n or not name.startswith(("new_", "consecutive_", "intensifying_", "persistent_",
                                     "diminishing_", "sporadic_", "oscillating_",
                                     "historical_")):
            table.add_row(name, str(n))
    console.print(table)
    units = meta["units"]
    size = units.get("resolution") or units.get("cell_m") or ""
    period = meta.get("period") or meta.get("periods")
    console.print(
        f"{units['kind']} {size} · {units['n']} units · {meta['events']} {meta['measure_means']}"
        f" · {meta['statistic']}{' + FDR' if meta['fdr'] else ''} · "
        f"{meta.get('n_outside', 0)} event(s) outside every unit · "
        f"{len(meta['islands'])} island(s) · period {json.dumps(period)}"
    )


def _filters(session, hotspots, district, events, hazard_type, severity, kind, category,
             street, community):
    return hotspots.make_filters(session, district=district, events=events,
                                 hazard_type=hazard_type, severity=severity, kind=kind,
                                 category=category, street=street, community=community)


@hotspots_app.command("map")
def hotspots_map(
    start: Day = None, end: Day = None, district: District = None,
    events: Events = "hazards", hazard_type: HazardType = None, severity: Severity = None,
    kind: Kind = None, category: Category = None, street: Street = None,
    community: Community = None, measure: Measure = "per_project", units: Units = "grid",
    resolution: Resolution = 9, cell_m: CellM = 500.0,
    statistic: Annotated[str, typer.Option(help="gi_star or local_moran")] = "gi_star",
    fdr: Annotated[bool, typer.Option(help="False-discovery-rate correction")] = True,
    out: Out = None,
):
    """Hot and cold spots of hazard or incident rates (Gi* with FDR by default)."""
    s, e = _day(start, "start"), _day(end, "end")

    def build(session, hotspots):
        filters = _filters(session, hotspots, district, events, hazard_type, severity, kind,
                           category, street, community)
        return hotspots.hotspot_map(session, filters=filters, start=s, end=e, measure=measure,
                                    units=units, resolution=resolution, cell_m=cell_m,
                                    statistic=statistic, fdr=fdr)

    _run(build, out, "hot spots")


@hotspots_app.command("compare")
def hotspots_compare(
    a_start: Annotated[str, typer.Option(help="earlier period, first day")],
    a_end: Annotated[str, typer.Option(help="earlier period, last day")],
    b_start: Annotated[str, typer.Option(help="later period, first day")],
    b_end: Annotated[str, typer.Option(help="later period, last day")],
    district: District = None, events: Events = "hazards", hazard_type: HazardType = None,
    severity: Severity = None, kind: Kind = None, category: Category = None,
    street: Street = None, community: Community = None, measure: Measure = "per_project",
    units: Units = "grid", resolution: Resolution = 9, cell_m: CellM = 500.0,
    out: Out = None,
):
    """New, persisting and ceased hot spots between two periods."""
    days = [_day(v, n) for v, n in ((a_start, "a_start"), (a_end, "a_end"),
                                     (b_start, "b_start"), (b_end, "b_end"))]

    def build(session, hotspots):
        filters = _filters(session, hotspots, district, events, hazard_type, severity, kind,
                           category, street, community)
        return hotspots.compare(session, filters=filters, a_start=days[0], a_end=days[1],
                                b_start=days[2], b_end=days[3], measure=measure, units=units,
                                resolution=resolution, cell_m=cell_m)

    _run(build, out, "change between periods")


@hotspots_app.command("emerging")
def hotspots_emerging(
    start: Day = None, end: Day = None, district: District = None,
    events: Events = "hazards", hazard_type: HazardType = None, severity: Severity = None,
    kind: Kind = None, category: Category = None, street: Street = None,
    community: Community = None, measure: Measure = "per_project", units: Units = "grid",
    resolution: Resolution = 9, cell_m: CellM = 500.0,
    freq: Annotated[str, typer.Option(help="M (months) or W (weeks)")] = "M",
    out: Out = None,
):
    """Emerging hot spot classes over monthly bins (rules: gis/emerging.py)."""
    s, e = _day(start, "start"), _day(end, "end")

    def build(session, hotspots):
        filters = _filters(session, hotspots, district, events, hazard_type, severity, kind,
                           category, street, community)
        return hotspots.emerging(session, filters=filters, start=s, end=e, freq=freq,
                                 measure=measure, units=units, resolution=resolution,
                                 cell_m=cell_m)

    _run(build, out, "emerging hot spots")
