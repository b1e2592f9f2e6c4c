"""Registration (信息登记): check the declaration, decide on it, route it, store it.

:func:`parse_registration` reads a declaration from JSON or a CSV row and lists *every* problem
in one go (002 art. 15: "一次性告知"); :func:`decide` applies the rules (limit, forbidden works,
high risk, jurisdiction, special closed areas, reviewer, departments) and says why;
:func:`submit` stores the project with its decision and audit entry, in one transaction.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.geoinput import parse_geojson
from app.models import Project
from app.rules import KINDS, REVIEWERS, RISK_FACTORS, Rules, get_rules
from app.services import audit
from app.services import calendar as workcal
from app.services.jurisdiction import Jurisdiction, assign_geometry
from gis._errors import GeometryError, GisError

CHINA_TZ = ZoneInfo("Asia/Shanghai")
SITE_TYPES = ("Point", "Polygon", "MultiPolygon")
PHONE = re.compile(r"^\+?[0-9][0-9 \-]{5,22}[0-9]$")
TRUE = {"true", "1", "yes", "y", "是", "t"}
FALSE = {"false", "0", "no", "n", "否", "f", ""}


def today_cn() -> date:
    """Today in China (the clocks run on Beijing time, whatever the server's zone)."""
    return datetime.now(CHINA_TZ).date()


class RegistrationProblems(GisError):
    """The declaration is incomplete or wrong: every problem, each with its field."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))


@dataclass
class Registration:
    """A declaration that passed the checks: typed, site in WGS84."""

    kind: str
    category: str
    title: str
    address: str
    site: dict[str, Any]
    site_input_crs: str
    builder: dict[str, str]
    contractor: dict[str, str]
    investment_cny: Decimal
    floor_area_m2: Decimal
    planned_start: date
    planned_end: date
    risk_factors: list[str]
    public_area: bool = False
    channel: str = "online"
    above_limit_reference: bool = False
    submitted_on: date | None = None


@dataclass
class Decision:
    outcome: str  # "submitted" (awaiting review) or "refused"
    jurisdiction: Jurisdiction
    above_limit: bool
    high_risk: bool
    special_area: bool
    reviewer_kind: str
    reviewer_code: str
    reviewer_name: str
    departments: list[str]
    reasons: list[dict[str, Any]] = field(default_factory=list)
    special_places: list[dict[str, Any]] = field(default_factory=list)
    estate: dict[str, Any] | None = None

    def as_dict(self, rules: Rules) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "above_limit": self.above_limit,
            "high_risk": self.high_risk,
            "special_area": self.special_area,
            "reviewer": {"kind": self.reviewer_kind, "code": self.reviewer_code,
                         "name": self.reviewer_name},
            "departments": [{"code": d, "name": rules.department_name(d)}
                            for d in self.departments],
            "special_places": self.special_places,
            "estate": self.estate,
            "reasons": self.reasons,
        }


# --- parsing --------------------------------------------------------------------------------


def _text(raw: dict, key: str, problems: list, *, required: bool = True, max_len: int = 200):
    value = raw.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.append((key, "missing"))
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        problems.append((key, "must be text"))
        return None
    value = str(value).strip()
    if len(value) > max_len:
        problems.append((key, f"longer than {max_len} characters"))
    return value


def _number(raw: dict, key: str, problems: list) -> Decimal | None:
    value = raw.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        problems.append((key, "missing"))
        return None
    try:
        if isinstance(value, bool):
            raise InvalidOperation
        number = Decimal(str(value).replace(",", "").strip())
    except InvalidOperation:
        problems.append((key, f"not a number: {value!r}"))
        return None
    if not number.is_finite() or number < 0:
        problems.append((key, "must be a number ≥ 0"))
        return None
    return number


def _date(raw: dict, key: str, problems: list, *, required: bool = True) -> date | None:
    value = raw.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.append((key, "missing"))
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        problems.append((key, f"not a date (YYYY-MM-DD): {value!r}"))
        return None


def _bool(raw: dict, key: str, problems: list, default: bool = False) -> bool:
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() in TRUE:
        return True
    if str(value).strip().lower() in FALSE:
        return False
    problems.append((key, f"must be true or false, not {value!r}"))
    return default


def _party(raw: dict, key: str, problems: list) -> dict[str, str]:
    """builder / contractor: an object, or flat ``builder_name`` … columns (CSV)."""
    value = raw.get(key)
    if value is None:
        value = {f: raw.get(f"{key}_{f}") for f in ("name", "contact", "phone")}
    if not isinstance(value, dict):
        problems.append((key, "must be an object with name, contact and phone"))
        return {}
    party: dict[str, str] = {}
    for part, required in (("name", True), ("contact", False), ("phone", True)):
        sub: list[tuple[str, str]] = []
        v = _text(value, part, sub, required=required)
        problems.extend((f"{key}.{f}", m) for f, m in sub)
        if v is not None:
            party[part] = v
    phone = party.get("phone")
    if phone and not PHONE.match(phone):
        problems.append((f"{key}.phone", f"not a phone number: {phone!r}"))
    return party


def _site(raw: dict, problems: list) -> tuple[dict[str, Any] | None, str]:
    crs = str(raw.get("crs") or "wgs84").strip().lower()
    if crs not in ("wgs84", "gcj02"):
        problems.append(("crs", "must be wgs84 or gcj02"))
        crs = "wgs84"
    geometry = raw.get("site")
    if geometry is None and raw.get("lon") not in (None, "") and raw.get("lat") not in (None, ""):
        try:
            geometry = {"type": "Point", "coordinates": [float(raw["lon"]), float(raw["lat"])]}
        except (TypeError, ValueError):
            problems.append(("site", "lon and lat must be numbers"))
            return None, crs
    if geometry is None or geometry == "":
        problems.append(("site", "missing (a GeoJSON Point or Polygon, or lon and lat)"))
        return None, crs
    if isinstance(geometry, str):
        try:
            geometry = json.loads(geometry)
        except json.JSONDecodeError:
            problems.append(("site", "not valid GeoJSON"))
            return None, crs
    if isinstance(geometry, dict) and geometry.get("type") == "Feature":
        geometry = geometry.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") not in SITE_TYPES:
        problems.append(("site", f"must be a GeoJSON geometry of type {', '.join(SITE_TYPES)}"))
        return None, crs
    # Structure, vertex count, finite degrees inside China, validity, area; 2D, RFC winding.
    try:
        return parse_geojson(geometry, "site", types=SITE_TYPES, crs=crs), crs
    except GeometryError as exc:
        problems.append(("site", str(exc).removeprefix("site: ")))
        return None, crs


def parse_registration(raw: dict[str, Any], *, rules: Rules | None = None) -> Registration:
    """A checked declaration, or :class:`RegistrationProblems` listing everything wrong."""
    rules = rules or get_rules()
    problems: list[tuple[str, str]] = []
    kind = _text(raw, "kind", problems)
    if kind is not None and kind not in KINDS:
        problems.append(("kind", f"must be one of {', '.join(KINDS)}"))
    category = _text(raw, "category", problems)
    if category is not None:
        category_kind = rules.category_kind(category)
        if category_kind is None:
            problems.append(("category", f"unknown category {category!r} (see /api/rules)"))
        elif kind in KINDS and category_kind != kind:
            problems.append(("category", f"{category} is a {category_kind}, not a {kind}"))
    title = _text(raw, "title", problems)
    address = _text(raw, "address", problems, max_len=500)
    site, crs = _site(raw, problems)
    builder = _party(raw, "builder", problems)
    contractor = _party(raw, "contractor", problems)
    investment = _number(raw, "investment_cny", problems)
    area = _number(raw, "floor_area_m2", problems)
    start = _date(raw, "planned_start", problems)
    end = _date(raw, "planned_end", problems)
    if start and end and end < start:
        problems.append(("planned_end", f"must not be before planned_start ({start})"))
    factors = raw.get("risk_factors") or []
    if isinstance(factors, str):
        factors = [f.strip() for f in re.split(r"[;,|\s]+", factors) if f.strip()]
    if not isinstance(factors, list) or not all(isinstance(f, str) for f in factors):
        problems.append(("risk_factors", "must be a list of risk factor codes"))
        factors = []
    unknown = [f for f in factors if f not in RISK_FACTORS]
    if unknown:
        problems.append(("risk_factors", f"unknown: {', '.join(unknown)} (see /api/rules)"))
    channel = str(raw.get("channel") or "online").strip()
    if channel not in ("online", "window"):
        problems.append(("channel", "must be online or window"))
    public_area = _bool(raw, "public_area", problems)
    reference = _bool(raw, "above_limit_reference", problems)
    submitted_on = _date(raw, "submitted_on", problems, required=False)
    if problems:
        raise RegistrationProblems(problems)
    return Registration(
        kind=kind, category=category, title=title, address=address, site=site,
        site_input_crs=crs, builder=builder, contractor=contractor, investment_cny=investment,
        floor_area_m2=area, planned_start=start, planned_end=end,
        risk_factors=list(dict.fromkeys(factors)), public_area=public_area, channel=channel,
        above_limit_reference=reference, submitted_on=submitted_on,
    )


# --- deciding -------------------------------------------------------------------------------


def _special_places(session: Session, site_json: str, distance_m: float) -> list[dict[str, Any]]:
    # A degree box first (index), then the exact distance on the spheroid.
    rows = session.execute(
        text(
            """
            WITH s AS (SELECT ST_SetSRID(ST_GeomFromGeoJSON(:gj), 4326) AS g)
            SELECT p.id, p.kind, p.name, p.synthetic,
                   ST_Distance(p.geom::geography, s.g::geography) AS d
            FROM special_places p, s
            WHERE ST_DWithin(p.geom, s.g, :deg)
              AND ST_DWithin(p.geom::geography, s.g::geography, :m)
            ORDER BY d, p.id"""
        ),
        {"gj": site_json, "m": distance_m, "deg": distance_m / 50_000.0},
    ).all()
    return [
        {"id": r.id, "kind": r.kind, "name": r.name, "distance_m": round(r.d, 1),
         "synthetic": r.synthetic}
        for r in rows
    ]


def _estate(session: Session, site_json: str) -> dict[str, Any] | None:
    row = session.execute(
        text(
            """
            WITH s AS (SELECT ST_SetSRID(ST_GeomFromGeoJSON(:gj), 4326) AS g)
            SELECT e.id, e.name, e.property_company, e.property_phone, e.synthetic
            FROM estates e, s
            WHERE ST_Intersects(e.geom, s.g)
            ORDER BY ST_Area(ST_Intersection(e.geom, s.g)) DESC, e.id LIMIT 1"""
        ),
        {"gj": site_json},
    ).first()
    if row is None:
        return None
    return {"id": row.id, "name": row.name, "property_company": row.property_company,
            "property_phone": row.property_phone, "synthetic": row.synthetic}


def decide(session: Session, reg: Registration, *, rules: Rules | None = None) -> Decision:
    """Apply the rules to a checked declaration. A site outside every grid is an error."""
    rules = rules or get_rules()
    where = assign_geometry(session, reg.site)
    if where.grid is None or where.community is None or where.street is None:
        missing = ", ".join(where.missing)
        raise GisError(f"site: outside the supervised territory (no {missing} covers it)")
    site_json = json.dumps(reg.site)
    reasons: list[dict[str, Any]] = []

    forbidden = [f for f in reg.risk_factors if f in rules.forbidden]
    for f in forbidden:
        reasons.append({"rule": "forbidden", "factor": f, "outcome": "refused",
                        "message": rules.forbidden[f]})
    above = (reg.investment_cny >= Decimal(str(rules.limit_investment_cny))
             and reg.floor_area_m2 >= Decimal(str(rules.limit_floor_area_m2)))
    if above and not reg.above_limit_reference:
        reasons.append({
            "rule": "above_limit", "outcome": "refused",
            "message": (
                f"investment {reg.investment_cny} CNY ≥ {rules.limit_investment_cny:,.0f} and "
                f"floor area {reg.floor_area_m2} m² ≥ {rules.limit_floor_area_m2:,.0f}: above the "
                "limit; apply for a construction permit (施工许可) at the housing and "
                "construction department instead"
            ),
        })
    high_factors = [f for f in reg.risk_factors if f in rules.high_risk_factors]
    for f in high_factors:
        reasons.append({"rule": "high_risk", "factor": f,
                        "message": f"{RISK_FACTORS[f]}: high-risk small project"})
    if above and reg.above_limit_reference:
        reasons.append({"rule": "high_risk", "factor": "above_limit_reference",
                        "message": "above the limit, registered as a reference project "
                                   "(限额以上参照纳管, 002 art. 2): supervised as high risk"})
    high_risk = bool(high_factors) or (above and reg.above_limit_reference)

    places = _special_places(session, site_json, rules.special_area_distance_m)
    if places:
        near = places[0]
        reasons.append({"rule": "special_area", "message": (
            f"within {rules.special_area_distance_m:g} m of {near['name']} ({near['kind']}, "
            f"{near['distance_m']} m): the owner must let patrol staff in (000 row 5)")})
    estate = _estate(session, site_json)

    if high_risk:
        reviewer = ("street_construction_office", where.street.code,
                    f"{where.street.name}城建部门")
    elif estate is not None:
        reviewer = ("property_company", f"estate:{estate['id']}", estate["property_company"])
    else:
        reviewer = ("community_workstation", where.community.code,
                    f"{where.community.name}社区工作站")
    reasons.append({"rule": "reviewer", "message": (
        f"reviewed by {reviewer[2]} ({REVIEWERS[reviewer[0]]}; 002 art. 15: high-risk by the "
        "street's construction office, others by the community workstation or the estate's "
        "property company)")})

    departments = rules.category_departments(reg.category)
    departments += rules.always_for_kind.get(reg.kind, [])
    for p in places:
        if p["kind"] in rules.special_kinds:
            departments.append(rules.special_kinds[p["kind"]][1])
    departments = list(dict.fromkeys(departments))
    outcome = "refused" if any(r.get("outcome") == "refused" for r in reasons) else "submitted"
    return Decision(
        outcome=outcome, jurisdiction=where, above_limit=above, high_risk=high_risk,
        special_area=bool(places), reviewer_kind=reviewer[0], reviewer_code=reviewer[1],
        reviewer_name=reviewer[2], departments=departments, reasons=reasons,
        special_places=places, estate=estate,
    )


# --- storing --------------------------------------------------------------------------------


def next_ids(session: Session, n: int) -> list[int]:
    return list(session.scalars(
        text("SELECT nextval(pg_get_serial_sequence('projects', 'id')) "
             "FROM generate_series(1, :n)"),
        {"n": n},
    ))


def reg_no_for(district_code: str, submitted_on: date, project_id: int) -> str:
    return f"XS{district_code[:6]}{submitted_on:%Y}{project_id:07d}"


def apply_decision(project: Project, reg: Registration, decision: Decision, rules: Rules) -> None:
    """Copy the declaration and the decision onto the row (new or resubmitted)."""
    where = decision.jurisdiction
    district = where.district.code if where.district else where.street.code[:6] + "0" * 6
    project.district_code = district
    project.street_code, project.street_name = where.street.code, where.street.name
    project.community_code, project.community_name = where.community.code, where.community.name
    project.grid_code, project.grid_name = where.grid.code, where.grid.name
    for name in ("kind", "category", "title", "address", "site_input_crs", "builder",
                 "contractor", "investment_cny", "floor_area_m2", "planned_start", "planned_end",
                 "risk_factors", "public_area", "channel", "above_limit_reference"):
        setattr(project, name, getattr(reg, name))
    project.site = f"SRID=4326;{shape(reg.site).wkt}"
    project.above_limit = decision.above_limit
    project.high_risk = decision.high_risk
    project.special_area = decision.special_area
    project.reviewer_kind = decision.reviewer_kind
    project.reviewer_code = decision.reviewer_code
    project.reviewer_name = decision.reviewer_name
    project.departments = decision.departments
    project.decision = decision.as_dict(rules)


def submit(
    session: Session,
    *,
    raw: dict[str, Any],
    actor: str,
    source: str = "api",
    today: date | None = None,
    rules: Rules | None = None,
) -> Project:
    """Check, decide, store and audit one registration. Raises before anything is written."""
    rules = rules or get_rules()
    reg = parse_registration(raw, rules=rules)
    decision = decide(session, reg, rules=rules)
    submitted_on = reg.submitted_on or today or today_cn()
    cal = workcal.load(session)
    project_id = next_ids(session, 1)[0]
    project = Project(id=project_id, public_id=secrets.token_urlsafe(9), source=source,
                      created_by=actor, extensions=0)
    apply_decision(project, reg, decision, rules)
    project.reg_no = reg_no_for(project.district_code, submitted_on, project_id)
    project.submitted_on = submitted_on
    # Online: answered within N working days; at a window: on the spot (002 art. 15).
    days = rules.review_working_days if reg.channel == "online" else 0
    project.review_due = cal.add_working_days(submitted_on, days)
    project.state = decision.outcome
    refusals = [r["message"] for r in decision.reasons if r.get("outcome") == "refused"]
    project.state_reason = "; ".join(refusals) or None
    session.add(project)
    session.flush()
    audit.record(
        session, actor=actor, entity="project", entity_id=project.reg_no, action="submit",
        from_state=None, to_state="submitted", district_code=project.district_code,
        reason=f"registration via {reg.channel}", data={"source": source},
    )
    if decision.outcome == "refused":
        audit.record(
            session, actor="system", entity="project", entity_id=project.reg_no, action="refuse",
            from_state="submitted", to_state="refused", district_code=project.district_code,
            reason=project.state_reason, data={"reasons": decision.reasons},
        )
    return project
