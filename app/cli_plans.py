"""The ``xiaosan plans`` and ``xiaosan inspectors`` commands: the day's patrol routes."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gis._errors import GisError

plans_app = typer.Typer(help="Patrol route plans: candidates, make, re-plan, show, export.",
                        no_args_is_help=True)
inspectors_app = typer.Typer(help="The patrol inspector roster.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
DateOpt = Annotated[str, typer.Option("--date", help="today, tomorrow or YYYY-MM-DD")]
StreetOpt = Annotated[str | None, typer.Option("--street", help="street code")]
DistrictOpt = Annotated[str | None, typer.Option("--district", help="12-digit; default the demo")]


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _day(value: str) -> date:
    from app.services.registration import today_cn

    word = value.strip().lower()
    if word == "today":
        return today_cn()
    if word == "tomorrow":
        return today_cn() + timedelta(days=1)
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"date: {value} is not today, tomorrow or YYYY-MM-DD")
    raise AssertionError  # pragma: no cover


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    out = {}
    for v in values or []:
        key, sep, val = v.partition("=")
        if not sep or not key or not val:
            _fail(f"{option}: {v!r} is not KEY=VALUE")
        out[key.strip()] = val.strip()
    return out


def _progress(message: str) -> None:
    err.print(f"[dim]… {message}[/]")


class _Spinner:
    """A spinner on the terminal while the solver works, and each step as a line."""

    def __enter__(self):
        self._status = err.status("planning…")
        self._status.__enter__()
        return self

    def __call__(self, message: str) -> None:
        self._status.update(f"{message}…")
        _progress(message)

    def __exit__(self, *exc) -> None:
        self._status.__exit__(*exc)


def _print_plan(data: dict) -> None:
    s = data["summary"]
    head = (f"plan {data['id']} v{data['version']} · {data['kind']} {data['date']} · "
            f"{data['street_code'] or data['district_code']} · {data['status']}")
    console.print(f"[bold]{head}[/]")
    console.print(f"matrix: {data['matrix_source']}"
                  + (f" ([yellow]{data['matrix_note']}[/])" if data.get("matrix_note") else ""))
    console.print(f"served {s['served']} · left out {s['left_out']} · mandatory "
                  f"{s['mandatory_served']}/{s['mandatory_total']} · travel {s['travel_min']} min"
                  f" · {s['timings']}")
    for w in s.get("warnings") or []:
        console.print(f"[yellow]warning:[/] {w}")
    for r in data["routes"]:
        title = (f"{r['inspector']} {r['name']} · {r['mode']} · day {r['day_index']} "
                 f"{r['depart'] or '—'}–{r['return'] or '—'} · {r['distance_m'] / 1000:.1f} km")
        if r["break"]:
            title += f" · break {r['break']['start']}–{r['break']['end']}"
        table = Table(title=title, title_justify="left")
        for col in ("#", "ETA", "start", "leave"):
            table.add_column(col, no_wrap=True)
        table.add_column("site", no_wrap=True)
        for col in ("title", "why"):
            table.add_column(col)
        for st in r["stops"]:
            table.add_row(str(st["seq"]), st["eta"], st["start"], st["depart"], st["site"],
                          ("[red]必[/] " if st["mandatory"] else "") + (st["title"] or ""),
                          st["why"] or "")
        if r["note"]:
            table.add_row("", "", "", "", "", f"[yellow]{r['note']}[/]", "")
        console.print(table)
    if data["left_out"]:
        table = Table(title=f"left out ({len(data['left_out'])})", title_justify="left")
        table.add_column("day")
        table.add_column("site", no_wrap=True)
        for col in ("mandatory", "reason", "原因", "constraint", "detail"):
            table.add_column(col)
        for lo in data["left_out"]:
            table.add_row(str(lo["day_index"]), lo["site"], "yes" if lo["mandatory"] else "",
                          lo["reason"], lo["reason_zh"], lo["constraint"], lo["detail"])
        console.print(table)


@plans_app.command("candidates")
def plans_candidates(date: DateOpt = "tomorrow", street: StreetOpt = None,
                     district: DistrictOpt = None,
                     limit: Annotated[int, typer.Option(help="rows to print")] = 40):
    """The sites to plan: overdue sites and hazard re-inspections due."""
    from app.db import session_factory
    from app.services import route_plans as rp
    from app.services.inspectors import list_inspectors

    day = _day(date)
    with session_factory()() as session:
        try:
            district_code, street_code = rp.resolve_scope(session, district, street)
            roster = list_inspectors(session, district=district_code, street=street_code)
            items = rp.candidates(session, day=day, district=district_code, street=street_code,
                                  inspectors=roster or None)
        except GisError as exc:
            _fail(str(exc))
    table = Table(title=f"{len(items)} candidates for {day} "
                        f"({sum(c['mandatory'] for c in items)} mandatory)")
    table.add_column("site", no_wrap=True)
    for col in ("kind", "mandatory", "value", "min", "window", "title", "why"):
        table.add_column(col)
    for c in items[:limit]:
        table.add_row(c["site"], c["kind"], "yes" if c["mandatory"] else "", f"{c['value']:g}",
                      str(c["service_min"]), "–".join(c["window"] or []), c["title"] or "",
                      c["why"])
    console.print(table)


@plans_app.command("make")
def plans_make(
    date: DateOpt = "tomorrow",
    street: StreetOpt = None,
    district: DistrictOpt = None,
    inspector: Annotated[list[str] | None, typer.Option(
        "--inspector", help="inspector code (repeat); default everyone on duty")] = None,
    deadline: Annotated[float, typer.Option(help="seconds for the solver")] = 10.0,
    mode: Annotated[str | None, typer.Option(help="walk, ebike or car for everyone")] = None,
    matrix: Annotated[str, typer.Option(help="auto, roads or straight_line")] = "auto",
    pin: Annotated[list[str] | None, typer.Option(help="SITE=INSPECTOR (repeat)")] = None,
    fixed: Annotated[list[str] | None, typer.Option(
        help="INSPECTOR=SITE1,SITE2 first stops in order (repeat)")] = None,
    week: Annotated[int, typer.Option(help="plan this many days (a week plan) instead")] = 0,
    actor: Annotated[str, typer.Option(help="who plans (audited)")] = "cli",
    as_json: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False,
):
    """Plan a day (or ``--week N`` days): per inspector the stops with ETAs, and the left-out
    sites with reasons."""
    from app.db import session_factory
    from app.services import route_plans as rp

    day = _day(date)
    fixed_orders = {k: [s for s in v.split(",") if s] for k, v in _pairs(fixed, "--fixed").items()}
    with session_factory()() as session:
        try:
            with _Spinner() as progress:
                if week:
                    plan = rp.make_week_plan(
                        session, start=day, actor=actor, days=week, district=district,
                        street=street, inspector_codes=inspector or None,
                        deadline_s=deadline, mode=mode, matrix=matrix, progress=progress)
                else:
                    plan = rp.make_plan(
                        session, day=day, actor=actor, district=district, street=street,
                        inspector_codes=inspector or None, deadline_s=deadline, mode=mode,
                        pins=_pairs(pin, "--pin"), fixed_orders=fixed_orders, matrix=matrix,
                        progress=progress)
            session.commit()
        except GisError as exc:
            session.rollback()
            _fail(str(exc))
        data = rp.plan_json(session, plan.id)
    if as_json:
        console.print_json(json.dumps(data, ensure_ascii=False, default=str))
    else:
        _print_plan(data)


@plans_app.command("replan")
def plans_replan(
    plan_id: Annotated[int, typer.Argument(help="the plan to re-plan")],
    pin: Annotated[list[str] | None, typer.Option(help="SITE=INSPECTOR (repeat)")] = None,
    fixed: Annotated[list[str] | None, typer.Option(
        help="INSPECTOR=SITE1,SITE2 (repeat)")] = None,
    deadline: Annotated[float | None, typer.Option(help="seconds for the solver")] = None,
    actor: Annotated[str, typer.Option(help="who plans (audited)")] = "cli",
):
    """A new version of a plan with pins / fixed orders (the others are kept)."""
    from app.db import session_factory
    from app.services import route_plans as rp

    with session_factory()() as session:
        try:
            parent = rp.get_plan(session, plan_id)
            pins = {**(parent.inputs.get("pins") or {}), **_pairs(pin, "--pin")}
            fixed_orders = dict(parent.inputs.get("fixed_orders") or {})
            fixed_orders.update({k: [s for s in v.split(",") if s]
                                 for k, v in _pairs(fixed, "--fixed").items()})
            with _Spinner() as progress:
                plan = rp.replan(session, plan_id=plan_id, actor=actor, pins=pins,
                                 fixed_orders=fixed_orders, deadline_s=deadline,
                                 progress=progress)
            session.commit()
        except rp.PlanNotFound as exc:
            _fail(str(exc), 1)
        except GisError as exc:
            session.rollback()
            _fail(str(exc))
        _print_plan(rp.plan_json(session, plan.id))


@plans_app.command("show")
def plans_show(plan_id: Annotated[int, typer.Argument()],
               as_json: Annotated[bool, typer.Option("--json")] = False):
    """A stored plan."""
    from app.db import session_factory
    from app.services import route_plans as rp

    with session_factory()() as session:
        try:
            data = rp.plan_json(session, plan_id)
        except rp.PlanNotFound as exc:
            _fail(str(exc), 1)
    if as_json:
        console.print_json(json.dumps(data, ensure_ascii=False, default=str))
    else:
        _print_plan(data)


@plans_app.command("list")
def plans_list(street: StreetOpt = None, district: DistrictOpt = None,
               limit: Annotated[int, typer.Option()] = 20):
    """Stored plans, newest first."""
    from app.db import session_factory
    from app.services import route_plans as rp

    with session_factory()() as session:
        items = rp.list_plans(session, district=district, street=street, limit=limit)
    table = Table(title="route plans")
    for col in ("id", "v", "root", "status", "kind", "date", "area", "matrix", "served", "left",
                "mandatory"):
        table.add_column(col, no_wrap=col in ("id", "date", "area"))
    for p in items:
        table.add_row(str(p["id"]), str(p["version"]), str(p["root_id"]), p["status"], p["kind"],
                      p["date"], p["street_code"] or p["district_code"], p["matrix_source"],
                      str(p["served"]), str(p["left_out_count"]),
                      f"{p['mandatory_served']}/{p['mandatory_total']}")
    console.print(table)


@plans_app.command("export")
def plans_export(
    plan_id: Annotated[int, typer.Argument()],
    fmt: Annotated[str, typer.Option("--format", help="geojson or gpx")] = "geojson",
    output: Annotated[Path, typer.Option("-o", "--output", help="file to write")] = Path(
        "plan.geojson"),
):
    """Write a plan as GeoJSON or GPX 1.1."""
    from app.db import session_factory
    from app.services import route_plans as rp

    if fmt not in ("geojson", "gpx"):
        _fail("format: must be geojson or gpx")
    with session_factory()() as session:
        try:
            if fmt == "gpx":
                output.write_bytes(rp.plan_gpx(session, plan_id))
            else:
                output.write_text(json.dumps(rp.plan_geojson(session, plan_id),
                                             ensure_ascii=False), encoding="utf-8")
        except rp.PlanNotFound as exc:
            _fail(str(exc), 1)
    console.print(f"[green]wrote[/] {output}")


@inspectors_app.command("list")
def inspectors_list(street: StreetOpt = None, district: DistrictOpt = None,
                    all_: Annotated[bool, typer.Option("--all", help="inactive too")] = False):
    """The roster."""
    from app.db import session_factory
    from app.services.inspectors import list_inspectors

    with session_factory()() as session:
        items = list_inspectors(session, district=district, street=street, active_only=not all_)
    table = Table(title=f"{len(items)} inspectors")
    table.add_column("code", no_wrap=True)
    for col in ("name", "mode", "shift", "lunch", "start", "area", "max stops"):
        table.add_column(col)
    for i in items:
        lunch = i["lunch"]
        table.add_row(i["code"], i["name"], i["mode"], f"{i['shift_start']}–{i['shift_end']}",
                      f"{lunch['earliest']}–{lunch['latest']} {lunch['minutes']} min"
                      if lunch else "", f"{i['start'][0]:.5f},{i['start'][1]:.5f}",
                      "street" if i["allowed_grids"] is None
                      else f"{len(i['allowed_grids'])} grids", str(i["max_stops"] or ""))
    console.print(table)


@inspectors_app.command("load-demo")
def inspectors_load_demo():
    """Create the synthetic demo roster (two per street) if it is not there."""
    from app.config import get_settings
    from app.db import session_factory
    from app.services.inspectors import load_demo_roster

    with session_factory()() as session:
        n = load_demo_roster(session, district_code=get_settings().demo_district)
        session.commit()
    console.print(f"{n} inspectors added" if n else "demo roster already there")
