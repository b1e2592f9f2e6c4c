"""The ``xiaosan patrols`` and ``xiaosan coverage`` commands (rich tables), and demo patrols."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from app import jsonio
from gis._errors import GisError

patrols_app = typer.Typer(help="Patrols: upload offline batches, import GPS tracks.",
                          no_args_is_help=True)
coverage_app = typer.Typer(help="Where supervision does not reach; rankings.",
                           no_args_is_help=True)
console = Console()
err = Console(stderr=True)
DistrictOpt = Annotated[str | None, typer.Option(help="12-digit code; default the demo")]
OnOpt = Annotated[str | None, typer.Option(help="YYYY-MM-DD; default today")]


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        _fail(f"date: {value} is not YYYY-MM-DD")
    return None


def _district(value: str | None) -> str:
    from app.config import get_settings

    return value or get_settings().demo_district


@patrols_app.command("upload")
def patrols_upload(
    path: Annotated[Path, typer.Argument(help="JSON: a list of records or {records: [...]}")],
    source: str = "cli",
):
    """Upload a batch of queued patrol records (idempotent: a second run stores nothing new)."""
    from app.db import session_factory
    from app.services.patrols import upload

    data = json.loads(path.read_text(encoding="utf-8"))
    records = data["records"] if isinstance(data, dict) else data
    with session_factory()() as session:
        try:
            results = upload(session, records=records, source=source)
            session.commit()
        except GisError as exc:
            _fail(str(exc))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    bad = [r for r in results if r.status in ("error", "conflict")]
    if bad:
        table = Table(title=f"{len(bad)} record(s) not stored")
        for col in ("#", "client_id", "status", "problem"):
            table.add_column(col)
        for r in bad[:50]:
            table.add_row(str(r.index), str(r.client_id), r.status,
                          "; ".join(e["msg"] for e in r.errors))
        console.print(table)
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))


@patrols_app.command("import-track")
def patrols_import_track(
    path: Annotated[Path, typer.Argument(help="GPX, or CSV with lon, lat, time")],
    inspector_id: Annotated[str, typer.Option(help="who walked it")],
    force: Annotated[str, typer.Option(help="supervisor, grid_worker, property or public")],
    client_id: Annotated[str | None, typer.Option(help="default: the file name")] = None,
    project: Annotated[list[str] | None, typer.Option(help="a site visited (repeatable)")] = None,
):
    """A patrol from a GPS track: jumps dropped, gaps split, visits inferred from dwell."""
    from app.db import session_factory
    from app.services.patrols import record_from_track_file, upload

    try:
        record = record_from_track_file(
            path.read_bytes(), filename=path.name, inspector_id=inspector_id,
            client_id=client_id or path.name, force=force, project_ids=project or [])
    except GisError as exc:
        _fail(str(exc))
    with session_factory()() as session:
        (result,) = upload(session, records=[record], source=f"track:{path.name}")
        session.commit()
        if result.status in ("error", "conflict"):
            _fail("; ".join(e["msg"] for e in result.errors))
        report = session.scalar(
            text("SELECT track_report FROM patrols WHERE id = :i"),
            {"i": result.id})
    console.print(f"patrol {result.id}: {result.status}, {result.visits} visit(s)")
    console.print_json(json.dumps(report))


@coverage_app.command("unpatrolled")
def coverage_unpatrolled(district: DistrictOpt = None, on: OnOpt = None,
                         street: str | None = None, limit: int = 40,
                         city: Annotated[bool, typer.Option(help="every district")] = False):
    """Active sites overdue for a visit, worst first."""
    from app.db import session_factory
    from app.services.coverage import unpatrolled_sites

    with session_factory()() as session:
        items = unpatrolled_sites(session, on=_day(on),
                                  district=None if city else _district(district), street=street)
    table = Table(title=f"{len(items)} site(s) overdue for a patrol")
    for col in ("reg_no", "street", "community", "grid", "risk", "last visit", "days",
                "due every", "priority"):
        table.add_column(col)
    for i in items[:limit]:
        table.add_row(i["reg_no"], i["street_name"], i["community_name"], i["grid_code"],
                      "high" if i["high_risk"] else "", str(i["last_on"] or "never"),
                      str(i["days_since"]), str(i["due_days"]), f"{i['priority']:.1f}")
    console.print(table)


@coverage_app.command("blind-spots")
def coverage_blind_spots(district: DistrictOpt = None, on: OnOpt = None,
                         window_days: int = 30, limit: int = 40,
                         geojson: Annotated[Path | None, typer.Option(help="write here")] = None):
    """Grids where sites go unseen: overdue sites, days since the last patrol, effort vs load."""
    from app.db import session_factory
    from app.services.coverage import blind_spots, blind_spots_geojson

    with session_factory()() as session:
        items = blind_spots(session, district=_district(district), on=_day(on),
                            window_days=window_days)
    blind = [i for i in items if i["blind_spot"]]
    table = Table(title=f"{len(blind)} blind-spot grid(s) of {len(items)}")
    for col in ("grid", "name", "active", "overdue", "high risk", "days since patrol",
                "visits/site", "hazards/visit"):
        table.add_column(col)
    for i in blind[:limit]:
        table.add_row(i["grid_code"], i["grid_name"], str(i["active_sites"]),
                      str(i["overdue_sites"]), str(i["high_risk_sites"]),
                      str(i["days_since_patrol"] if i["days_since_patrol"] is not None
                          else "never"),
                      str(i["visits_per_active_site"]), str(i["hazards_per_visit"]))
    console.print(table)
    if not any(i["active_sites"] for i in items):
        console.print(f"no active sites on {on or 'today'}; for the demo try --on with a day "
                      "of its activity year (e.g. the last day of last year)")
    if geojson:
        geojson.write_bytes(jsonio.dumps(blind_spots_geojson(items, only_blind=True)))
        console.print(f"written {geojson}")


@coverage_app.command("ranking")
def coverage_ranking(
    district: DistrictOpt = None,
    level: str = "street",
    since: OnOpt = None,
    until: OnOpt = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="write CSV here")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="write a print page here")]
    = None,
):
    """Streets or communities ranked over a period (排名通报); CSV and a printable page."""
    from app.db import session_factory
    from app.services import rankings
    from app.services.registration import today_cn

    end = _day(until) or today_cn()
    start = _day(since) or end - timedelta(days=29)
    with session_factory()() as session:
        try:
            rows = rankings.ranking(session, district=_district(district), level=level,
                                    since=start, until=end)
        except GisError as exc:
            _fail(str(exc))
    table = Table(title=f"ranking {level} {start} – {end}")
    for _, zh in rankings.COLUMNS:
        table.add_column(zh)
    for r in rows:
        table.add_row(*[str(r.get(en, "")) for en, _ in rankings.COLUMNS])
    console.print(table)
    if csv_out:
        csv_out.write_text(rankings.to_csv(rows), encoding="utf-8")
        console.print(f"written {csv_out}")
    if html_out:
        html_out.write_text(rankings.to_html(rows, title="排名通报", since=start, until=end),
                            encoding="utf-8")
        console.print(f"written {html_out}")


@coverage_app.command("recompute")
def coverage_recompute(district: DistrictOpt = None):
    """Rebuild the per-project last-visit summary from the visits, and check it."""
    from app.db import session_factory
    from app.services.patrols import recompute_visit_summary, summary_drift

    with session_factory()() as session:
        n = recompute_visit_summary(session, district_code=district)
        session.commit()
        drift = summary_drift(session, district_code=district)
    console.print(f"{n} project summaries rebuilt; drift {drift}")


def demo_patrols(seed: int = 1):
    """Synthetic patrols, hazards, incidents and leads on the demo's projects (idempotent)."""
    from app.db import session_factory
    from app.services.patrol_activity import generate_patrols

    with session_factory()() as session:
        result = generate_patrols(session, district_code=_district(None), seed=seed)
        session.commit()
    console.print(result.summary())
