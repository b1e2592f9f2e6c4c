"""The ``xiaosan projects`` and ``xiaosan calendar`` commands, and ``xiaosan demo activity``."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gis._errors import GisError

projects_app = typer.Typer(help="Registrations of small works: import, export, clocks.",
                           no_args_is_help=True)
calendar_app = typer.Typer(help="The working-day calendar (holidays, 调休).", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@projects_app.command("import")
def projects_import(
    path: Annotated[Path, typer.Argument(help="CSV (columns as the API's fields; lon/lat or "
                                              "site as GeoJSON) or GeoJSON features")],
    actor: str = "cli-import",
    report: Annotated[Path | None, typer.Option(help="Write the per-row report as JSON")] = None,
):
    """Register every row; bad rows are reported and skipped, good rows are kept."""
    from app.db import session_factory
    from app.services.project_import import import_rows, read_rows

    try:
        rows = read_rows(path)
    except (GisError, OSError) as exc:
        _fail(str(exc))
    with session_factory()() as session:
        result = import_rows(session, rows=rows, actor=actor, source=f"import:{path.name}")
        session.commit()
    table = Table(title=f"{len(result.errors)} bad row(s)")
    for col in ("row", "field", "problem"):
        table.add_column(col)
    for bad in result.errors[:50]:
        for problem in bad["problems"]:
            table.add_row(str(bad["row"]), problem["field"], problem["message"])
    if result.errors:
        console.print(table)
    if report:
        report.write_text(json.dumps({"rows": result.rows, "stored": result.stored,
                                      "errors": result.errors}, ensure_ascii=False, indent=1))
    refused = sum(s["state"] == "refused" for s in result.stored)
    console.print(f"[green]{len(result.stored)} of {result.rows} rows registered[/] "
                  f"({refused} refused by the rules), {len(result.errors)} rejected")
    if result.errors:
        raise typer.Exit(1)


@projects_app.command("export")
def projects_export(out: Annotated[Path, typer.Option("--out", "-o")],
                    state: str | None = None, street: str | None = None):
    """Write the projects as CSV."""
    from app.db import session_factory
    from app.services.project_views import csv_rows, filtered

    with session_factory()() as session, out.open("w", encoding="utf-8", newline="") as fh:
        for chunk in csv_rows(session, filtered(state=state, street=street)):
            fh.write(chunk)
    console.print(f"written {out}")


@projects_app.command("overdue")
def projects_overdue(
    on: Annotated[str | None, typer.Option(help="YYYY-MM-DD; default today")] = None,
    by: Annotated[str, typer.Option(help="street, community, grid or actor")] = "street",
):
    """Overdue clocks, grouped by place or by who must act."""
    from app.db import session_factory
    from app.services.lifecycle import overdue_summary

    day = date.fromisoformat(on) if on else None
    with session_factory()() as session:
        try:
            groups = overdue_summary(session, by=by, on=day)
        except GisError as exc:
            _fail(str(exc))
    table = Table(title=f"overdue by {by}")
    for col in ("code", "name", "total", "clocks"):
        table.add_column(col)
    for g in groups:
        table.add_row(str(g["code"]), str(g["name"]), str(g["total"]), json.dumps(g["clocks"]))
    console.print(table)


@projects_app.command("expire")
def projects_expire(actor: str = "system"):
    """Expire the registrations whose validity has ended (run daily)."""
    from app.db import session_factory
    from app.services.lifecycle import expire_due

    with session_factory()() as session:
        n = expire_due(session, actor=actor)
        session.commit()
    console.print(f"{n} registration(s) expired")


@projects_app.command("import-places")
def projects_import_places(
    path: Path,
    district: Annotated[str, typer.Option(help="12-digit district code")],
    crs: Annotated[str, typer.Option(help="wgs84 or gcj02")] = "wgs84",
    kind: Annotated[str | None, typer.Option(help="school, hospital, factory…")] = None,
    actor: str = "cli",
):
    """Import special closed areas (schools, hospitals, factories) from GeoJSON."""
    from app.db import session_factory
    from app.services.places import import_places

    with session_factory()() as session:
        try:
            n = import_places(session, path=path, district_code=district, crs=crs, kind=kind,
                              actor=actor)
            session.commit()
        except GisError as exc:
            _fail(f"{exc}; nothing was imported")
    console.print(f"[green]{n} places imported[/]")


@calendar_app.command("show")
def calendar_show(year: int):
    """The holidays and adjusted working days of a year."""
    from app.db import session_factory
    from app.services.calendar import year_days

    with session_factory()() as session:
        days = year_days(session, year)
    if not days:
        console.print(f"{year}: not known yet (weekday rule); add it with `calendar set`")
    for d in days:
        console.print(f"{d.day} {'work' if d.is_workday else 'rest'} {d.name or ''} ({d.source})")


@calendar_app.command("set")
def calendar_set(
    days: Annotated[list[str], typer.Argument(help="YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD")],
    actor: Annotated[str, typer.Option(help="the official making the change")],
    workday: Annotated[bool, typer.Option("--workday/--holiday")] = False,
    name: str | None = None,
    reason: str | None = None,
):
    """Set days as holidays or (adjusted) working days."""
    from datetime import timedelta

    from app.db import session_factory
    from app.services.calendar import upsert_days

    entries = []
    try:
        for item in days:
            first, _, last = item.partition("..")
            start, end = date.fromisoformat(first), date.fromisoformat(last or first)
            for i in range((end - start).days + 1):
                entries.append({"day": start + timedelta(days=i), "is_workday": workday,
                                "name": name})
    except ValueError as exc:
        _fail(f"days: {exc}")
    with session_factory()() as session:
        try:
            changed = upsert_days(session, days=entries, actor=actor, reason=reason)
            session.commit()
        except GisError as exc:
            _fail(str(exc))
    console.print(f"[green]{len(changed)} day(s) set[/]")


@calendar_app.command("seed")
def calendar_seed(actor: str = "cli"):
    """Add the days the installed chinesecalendar package knows and the table lacks."""
    from app.db import session_factory
    from app.services.calendar import seed_from_library

    with session_factory()() as session:
        n = seed_from_library(session, actor=actor)
        session.commit()
    console.print(f"{n} day(s) added")


def demo_activity(
    seed: Annotated[int, typer.Option(help="random seed")] = 1,
    year: Annotated[int | None, typer.Option(help="default: last year")] = None,
    rate: Annotated[int, typer.Option(help="registrations per year")] = 7000,
):
    """A year of synthetic registrations through the loop (idempotent per seed and year)."""
    from app.config import get_settings
    from app.db import session_factory
    from app.services.activity import generate_activity

    with session_factory()() as session:
        result = generate_activity(session, seed=seed, year=year, rate=rate,
                                   district_code=get_settings().demo_district)
        session.commit()
    console.print(result.summary())
    if result.states:
        console.print(json.dumps(result.states, ensure_ascii=False))
