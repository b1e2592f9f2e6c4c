"""The ``xiaosan`` command line: one entry point, a subcommand per area."""

from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.config import code_scheme
from gis._errors import GisError

app = typer.Typer(
    help="小散工程和零星作业安全生产纳管 · small works safety supervision", no_args_is_help=True
)
db_app = typer.Typer(help="Database: create, migrate.", no_args_is_help=True)
boundaries_app = typer.Typer(
    help="Territory boundaries: validate and import.", no_args_is_help=True
)
demo_app = typer.Typer(help="The demo district (Futian, Shenzhen).", no_args_is_help=True)
jurisdiction_app = typer.Typer(
    help="Which street, community and grid a place is in.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(boundaries_app, name="boundaries")
app.add_typer(demo_app, name="demo")
app.add_typer(jurisdiction_app, name="jurisdiction")
from app.cli_projects import calendar_app, demo_activity, projects_app  # noqa: E402

app.add_typer(projects_app, name="projects")
app.add_typer(calendar_app, name="calendar")
demo_app.command("activity")(demo_activity)
from app.cli_patrols import coverage_app, demo_patrols, patrols_app  # noqa: E402

app.add_typer(patrols_app, name="patrols")
app.add_typer(coverage_app, name="coverage")
demo_app.command("patrols")(demo_patrols)
from app.cli_hotspots import hotspots_app  # noqa: E402

app.add_typer(hotspots_app, name="hotspots")
from app.cli_plans import inspectors_app, plans_app  # noqa: E402

app.add_typer(plans_app, name="plans")
app.add_typer(inspectors_app, name="inspectors")
from app.cli_users import demo_accounts_step, print_demo_accounts, users_app  # noqa: E402

app.add_typer(users_app, name="users")

console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@db_app.command("init")
def db_init(url: Annotated[str | None, typer.Option(help="Default: $DATABASE_URL")] = None):
    """Create the database if needed, add PostGIS, migrate to the latest schema."""
    from app.dbsetup import init_database

    try:
        init_database(url)
    except Exception as exc:  # connection refused, no rights, ...
        _fail(f"database: {exc}")
    console.print("[green]database ready[/]")


def _print_report(report, *, limit: int = 30) -> None:
    counts = report.counts()
    table = Table(title="validation report", show_lines=False)
    table.add_column("kind")
    table.add_column("count", justify="right")
    table.add_column("area m²", justify="right")
    frame = report.to_geodataframe()
    for kind, n in sorted(counts.items()):
        area = frame.loc[frame["kind"] == kind, "area_m2"].sum() if "area_m2" in frame else 0
        table.add_row(kind, str(n), f"{area:,.1f}")
    if not counts:
        table.add_row("(no issues)", "0", "0")
    console.print(table)
    if len(frame):
        detail = Table(title=f"issues (first {min(limit, len(frame))} of {len(frame)})")
        for col in ("severity", "kind", "codes", "area_m2", "message"):
            detail.add_column(col)
        for _, row in frame.head(limit).iterrows():
            detail.add_row(
                str(row.get("severity", "")),
                str(row.get("kind", "")),
                str(row.get("codes", "")),
                f"{row.get('area_m2', 0) or 0:,.2f}",
                str(row.get("message", ""))[:80],
            )
        console.print(detail)


def _read(path, level, crs, code_field, name_field, parent_field):
    from grid_data.importer import read_boundary_file

    return read_boundary_file(
        path,
        scheme=code_scheme(),
        level=level,
        crs=crs,
        code_field=code_field,
        name_field=name_field,
        parent_field=parent_field,
    )


LevelArg = Annotated[str, typer.Option("--level", "-l", help="district, street, community or grid")]
CrsOpt = Annotated[str | None, typer.Option(help="EPSG:xxxx or gcj02 (GeoJSON from Chinese maps)")]
ReportOpt = Annotated[Path | None, typer.Option(help="Write the problem places as GeoJSON here")]


@boundaries_app.command("validate")
def boundaries_validate(
    path: Path,
    level: LevelArg,
    crs: CrsOpt = None,
    code_field: str = "code",
    name_field: str = "name",
    parent_field: str = "parent_code",
    report_geojson: ReportOpt = None,
    sliver_m2: float = 50.0,
):
    """Check a boundary file (geometry, gaps, overlaps, slivers, codes) without importing it."""
    from app.db import session_factory
    from app.services.territory import validate_frame

    try:
        boundary = _read(path, level, crs, code_field, name_field, parent_field)
        with session_factory()() as session:
            report = validate_frame(session, boundary, sliver_m2=sliver_m2)
    except GisError as exc:
        _fail(str(exc))
    _print_report(report)
    if report_geojson:
        report_geojson.write_text(json.dumps(report.to_geojson(), ensure_ascii=False))
        console.print(f"problem places written to {report_geojson}")
    if not report.ok(strict=False):
        raise typer.Exit(1)


@boundaries_app.command("import")
def boundaries_import(
    path: Path,
    level: LevelArg,
    crs: CrsOpt = None,
    code_field: str = "code",
    name_field: str = "name",
    parent_field: str = "parent_code",
    strict: Annotated[bool, typer.Option(help="Refuse the import on any issue")] = False,
    report_geojson: ReportOpt = None,
    sliver_m2: float = 50.0,
    actor: str = "cli",
):
    """Import one level from GeoJSON, Shapefile or GeoPackage: all or nothing."""
    from app.db import session_factory
    from app.services.territory import ImportRefused, import_level

    try:
        boundary = _read(path, level, crs, code_field, name_field, parent_field)
    except GisError as exc:
        _fail(str(exc))
    with session_factory()() as session:
        try:
            result = import_level(
                session, boundary, actor=actor, strict=strict, sliver_m2=sliver_m2
            )
            session.commit()
        except ImportRefused as exc:
            session.rollback()
            _print_report(exc.report)
            if report_geojson:
                report_geojson.write_text(json.dumps(exc.report.to_geojson(), ensure_ascii=False))
            _fail(f"{exc}; nothing was imported", 1)
        except GisError as exc:
            session.rollback()
            _fail(f"{exc}; nothing was imported")
    _print_report(result.report)
    if report_geojson:
        report_geojson.write_text(json.dumps(result.report.to_geojson(), ensure_ascii=False))
    console.print(
        f"[green]imported {result.inserted} {level} units[/] "
        f"(import #{result.import_id}, {result.closed} earlier versions closed)"
    )


@demo_app.command("load")
def demo_load(
    activity: Annotated[bool, typer.Option(help="Also a year of synthetic registrations")] = True,
):
    """Create the database if needed and load the demo district (quick when already loaded)."""
    from app.db import session_factory
    from app.dbsetup import init_database
    from app.services.demo import load_demo

    try:
        init_database()
    except Exception as exc:
        _fail(f"database: {exc}")
    with session_factory()() as session:
        load_demo(
            session,
            progress=lambda lvl, what: console.print(f"  {lvl:<10} {what}"),
            activity=activity,
            patrols=activity,
        )
        demo_accounts_step(session)
        if activity:
            _demo_plan_today(session)
    console.print("[green]demo district ready[/]")


def _demo_plan_today(session) -> None:
    """Plan today's patrols for the demo district once, so the pages show a route at first sight."""
    from datetime import date

    from sqlalchemy import select

    from app.models.route_plan import RoutePlan
    from app.services.route_plans import make_plan

    today = date.today()
    if session.scalar(select(RoutePlan.id).where(RoutePlan.plan_date == today).limit(1)):
        console.print("  plan       up to date")
        return
    plan = make_plan(session, day=today, actor="demo-loader", deadline_s=5.0)
    session.commit()
    s = plan.summary
    console.print(
        f"  plan       today's plan #{plan.id}: {s['served']} visits, "
        f"{s['mandatory_served']}/{s['mandatory_total']} mandatory, {s['left_out']} left out"
    )


@jurisdiction_app.command("at")
def jurisdiction_at(
    lon: float,
    lat: float,
    gcj02: Annotated[bool, typer.Option(help="The point is in GCJ-02")] = False,
):
    """The district, street, community and grid of one point."""
    from app.db import session_factory
    from app.services.jurisdiction import assign_point
    from gis.gcj02 import gcj02_to_wgs84

    if gcj02:
        lon, lat = (float(v) for v in gcj02_to_wgs84(lon, lat))
    with session_factory()() as session:
        result = assign_point(session, lon, lat)
    console.print_json(json.dumps(result.as_dict(), ensure_ascii=False))


@jurisdiction_app.command("assign")
def jurisdiction_assign(
    src: Annotated[Path, typer.Argument(help="CSV with lon and lat columns")],
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV written with grid_code etc.")],
    lon_field: str = "lon",
    lat_field: str = "lat",
    gcj02: bool = False,
):
    """Assign every row of a CSV of points to its grid, street and community (bulk, exact)."""
    import numpy as np
    import pandas as pd
    from rich.progress import Progress

    from app.db import session_factory
    from app.services.jurisdiction import grid_locator
    from gis.gcj02 import gcj02_to_wgs84

    try:
        frame = pd.read_csv(src, dtype=str)
    except Exception as exc:
        _fail(f"file: {src} could not be read as CSV ({exc})")
    for field in (lon_field, lat_field):
        if field not in frame.columns:
            _fail(f"{field}: no such column in {src.name} (it has {', '.join(frame.columns)})")
    lon = pd.to_numeric(frame[lon_field], errors="coerce").to_numpy()
    lat = pd.to_numeric(frame[lat_field], errors="coerce").to_numpy()
    bad = np.flatnonzero(~(np.isfinite(lon) & np.isfinite(lat)))
    if len(bad):
        rows = ", ".join(str(i + 2) for i in bad[:5])
        _fail(f"{lon_field}/{lat_field}: not numbers on line(s) {rows}")
    if gcj02:
        lon, lat = gcj02_to_wgs84(lon, lat)
    with session_factory()() as session:
        locator, grids = grid_locator(session)
    if locator is None:
        _fail("grids: none loaded; import the grid level first (xiaosan boundaries import)")
    parent = dict(zip(grids["code"], grids["parent_code"], strict=True))
    codes: list[str | None] = []
    chunk = 200_000
    with Progress(console=err) as progress:
        task = progress.add_task("assigning", total=len(lon))
        for start in range(0, len(lon), chunk):
            codes.extend(
                locator.assign(lon[start : start + chunk], lat[start : start + chunk]).tolist()
            )
            progress.advance(task, min(chunk, len(lon) - start))
    frame["grid_code"] = codes
    frame["community_code"] = [parent.get(c) if c else None for c in codes]
    frame["street_code"] = [c[:9] + "000" if c else None for c in frame["community_code"]]
    frame["district_code"] = [c[:6] + "000000" if c else None for c in frame["community_code"]]
    frame.to_csv(out, index=False, quoting=csv.QUOTE_MINIMAL)
    outside = sum(c is None for c in codes)
    console.print(f"{len(codes)} points assigned, {outside} outside every grid → {out}")


@jurisdiction_app.command("reassign-projects")
def jurisdiction_reassign_projects(actor: str = "cli"):
    """After boundaries are redrawn: move every live project to its current grid (audited)."""
    from app.db import session_factory
    from app.services.jurisdiction import reassign_projects

    with session_factory()() as session:
        with console.status("re-assigning live projects to the current grids"):
            result = reassign_projects(session, actor=actor)
        session.commit()
    console.print(
        f"{result.checked} live projects checked, {result.changed} moved to another grid, "
        f"{len(result.outside)} outside every grid (kept as they were)"
    )
    if result.outside:
        console.print(f"outside: project ids {result.outside[:50]}")


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Default: $XIAOSAN_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="Default: $XIAOSAN_PORT or 8000")] = None,
    load_demo: Annotated[bool, typer.Option(help="Set up the database and demo first")] = True,
):
    """Serve the API and the map pages (sets up the database and the demo district first)."""
    import uvicorn

    from app.config import get_settings

    if load_demo:
        demo_load()
    print_demo_accounts()
    settings = get_settings()
    uvicorn.run("app.main:app", host=host or settings.host, port=port or settings.port)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    app()


if __name__ == "__main__":
    main()
