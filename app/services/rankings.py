"""Rankings (排名通报) of streets or communities over a period, as rows, CSV and a print page.

Per unit: registrations, patrols, site-days covered, hazards found, rectified on time, still
open past their deadline, projects closed, closed out on time (completion declared within its
working-day clock), active and overdue sites at the end of the period. The score weighs three
rates — hazards rectified on time (40), close-outs on time (30), active sites not overdue (30)
— an example weighting a district may change (``weights``); units are ranked by it.
"""

from __future__ import annotations

import csv
import html
import io
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.access import Scope
from app.services.coverage import unpatrolled_sites
from gis._errors import GisError

COLUMNS = [
    ("rank", "排名"), ("code", "代码"), ("name", "名称"), ("registrations", "登记数"),
    ("patrols", "巡查次数"), ("site_days", "覆盖工地·日"), ("hazards_found", "发现隐患"),
    ("hazards_rectified_on_time", "按期整改"), ("hazards_overdue", "逾期未整改"),
    ("closed", "完工核销"), ("closed_on_time", "按期核销"), ("active_sites", "在施工地"),
    ("overdue_sites", "超期未巡查工地"), ("score", "得分"),
]
DEFAULT_WEIGHTS = {"rectified_on_time": 40.0, "closed_on_time": 30.0, "sites_seen": 30.0}


def _counts(session: Session, sql: str, params: dict) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for row in session.execute(text(sql), params).mappings():
        values = dict(row)
        code = values.pop("code")
        out[code] = {k: int(v or 0) for k, v in values.items()}
    return out


def ranking(
    session: Session,
    *,
    district: str,
    level: str = "street",
    since: date,
    until: date,
    weights: dict[str, float] | None = None,
    scope: Scope | None = None,
) -> list[dict[str, Any]]:
    """One row per street (or community) of the district, best first.

    ``scope`` (an account's) keeps the units wholly inside it, ranked among themselves: every
    number of a row is about that unit alone, so nothing from outside shows.
    """
    if level not in ("street", "community"):
        raise GisError("level: must be street or community")
    if until < since:
        raise GisError("until: must not be before since")
    weights = weights or DEFAULT_WEIGHTS
    col = f"{level}_code"
    table = "streets" if level == "street" else "communities"
    p = {"d": district, "s": since, "u": until}
    units = [u for u in session.execute(text(
        f"SELECT code, name FROM {table} WHERE district_code = :d AND valid_to IS NULL "
        "ORDER BY code"), p).all() if scope is None or scope.covers_unit(u.code)]
    metrics: list[dict[str, dict[str, int]]] = [
        _counts(session, f"""SELECT {col} AS code, count(*) AS registrations,
                   count(*) FILTER (WHERE closed_on BETWEEN :s AND :u) AS closed_in_period
                   FROM projects WHERE district_code = :d AND submitted_on BETWEEN :s AND :u
                   GROUP BY 1""", p),
        _counts(session, f"""SELECT {col} AS code, count(*) AS closed,
                   count(*) FILTER (WHERE completion_declared_on IS NOT NULL
                                    AND completion_declared_on <= completion_due) AS closed_on_time
                   FROM projects WHERE district_code = :d AND closed_on BETWEEN :s AND :u
                   GROUP BY 1""", p),
        _counts(session, f"""SELECT {col} AS code, count(*) AS patrols FROM patrols
                   WHERE district_code = :d AND patrol_on BETWEEN :s AND :u GROUP BY 1""", p),
        _counts(session, f"""SELECT p.{col} AS code,
                   count(DISTINCT (v.project_id, v.visited_on)) AS site_days
                   FROM patrol_visits v JOIN projects p ON p.id = v.project_id
                   WHERE v.district_code = :d AND v.visited_on BETWEEN :s AND :u
                   GROUP BY 1""", p),
        _counts(session, f"""SELECT {col} AS code, count(*) AS hazards_found,
                   count(*) FILTER (WHERE rectified_on IS NOT NULL AND rectified_on <= due_on)
                       AS hazards_rectified_on_time,
                   count(*) FILTER (WHERE due_on < :u AND (
                       (state IN ('found', 'ordered'))
                       OR (rectified_on IS NOT NULL AND rectified_on > due_on)))
                       AS hazards_overdue
                   FROM hazards WHERE district_code = :d AND found_on BETWEEN :s AND :u
                   GROUP BY 1""", p),
    ]
    overdue: dict[str, int] = {}
    for site in unpatrolled_sites(session, district=district, on=until):
        overdue[site[col]] = overdue.get(site[col], 0) + 1
    active = _counts(session, f"""SELECT {col} AS code, count(*) AS active_sites FROM projects
        WHERE district_code = :d AND accepted_on <= :u
          AND state NOT IN ('submitted', 'returned', 'refused')
          AND (LEAST(finished_on, closed_on,
                     CASE WHEN state = 'expired' THEN valid_until END) IS NULL
               OR LEAST(finished_on, closed_on,
                        CASE WHEN state = 'expired' THEN valid_until END) > :u)
        GROUP BY 1""", p)
    rows = []
    for unit in units:
        row: dict[str, Any] = {"code": unit.code, "name": unit.name}
        for m in metrics:
            row.update(m.get(unit.code, {}))
        for key in ("registrations", "closed", "closed_on_time", "patrols", "site_days",
                    "hazards_found", "hazards_rectified_on_time", "hazards_overdue"):
            row.setdefault(key, 0)
        row.pop("closed_in_period", None)
        row["active_sites"] = active.get(unit.code, {}).get("active_sites", 0)
        row["overdue_sites"] = overdue.get(unit.code, 0)
        rates = {
            "rectified_on_time": (row["hazards_rectified_on_time"] / row["hazards_found"]
                                  if row["hazards_found"] else 1.0),
            "closed_on_time": row["closed_on_time"] / row["closed"] if row["closed"] else 1.0,
            "sites_seen": (1 - row["overdue_sites"] / row["active_sites"]
                           if row["active_sites"] else 1.0),
        }
        row["score"] = round(sum(weights[k] * max(rates[k], 0.0) for k in weights), 1)
        rows.append(row)
    rows.sort(key=lambda r: (-r["score"], r["overdue_sites"], r["code"]))
    for i, row in enumerate(rows, start=1):
        row["rank"] = i
    return rows


def to_csv(rows: list[dict[str, Any]]) -> str:
    """UTF-8 with a BOM so that spreadsheet programs open the Chinese headers correctly."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([f"{zh} {en}" for en, zh in COLUMNS])
    for row in rows:
        writer.writerow([row.get(en, "") for en, _ in COLUMNS])
    return "\ufeff" + buf.getvalue()


def to_html(rows: list[dict[str, Any]], *, title: str, since: date, until: date) -> str:
    """A printable page (A4 landscape): the ranking table and how it was scored."""
    head = "".join(f"<th>{html.escape(zh)}</th>" for _, zh in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(en, '')))}</td>" for en, _ in COLUMNS)
        + "</tr>" for r in rows)
    weights = "，".join(f"{k} {v:g}" for k, v in DEFAULT_WEIGHTS.items())
    return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>@page {{ size: A4 landscape; margin: 12mm; }}
body {{ font-family: sans-serif; font-size: 11pt; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #444; padding: 3px 6px; text-align: right; }}
td:nth-child(2), td:nth-child(3) {{ text-align: left; }}
th {{ background: #eee; }} @media print {{ .noprint {{ display: none; }} }}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>统计期间 {since.isoformat()} 至 {until.isoformat()}。得分权重（示例）：{weights}。</p>
<p class="noprint"><button onclick="window.print()">打印</button></p>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>"""
