"""The closed loop (闭环纳管): the states a registration moves through, its clocks, and who is late.

submitted → accepted / returned / refused → briefed → in_progress → completion_declared → closed,
plus an extension (once), expiry and revocation. Every move names who and why, checks its date
against the previous step, updates the clocks in Chinese working days and is audited.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.access import Scope
from app.models import AuditEntry, Project
from app.rules import Rules, get_rules
from app.services import audit
from app.services import calendar as workcal
from app.services.registration import apply_decision, decide, parse_registration, today_cn
from gis._errors import GisError

ACTIVE = ("accepted", "briefed", "in_progress")
TERMINAL = ("refused", "closed", "revoked")
STATES = ("submitted", "returned", "refused", "accepted", "briefed", "in_progress",
          "completion_declared", "closed", "expired", "revoked")
REVOKE_GROUNDS = {
    "false_declaration": "虚假申报",
    "permit_dodging": "刻意规避施工许可证办理",
    "beyond_scope": "超出登记范围施工",
    "illegal_building": "违法建设",
}


@dataclass(frozen=True)
class Move:
    sources: tuple[str, ...]
    target: str | None  # None: the state does not change (extension) or is restored
    needs_reason: bool = False


MOVES: dict[str, Move] = {
    "accept": Move(("submitted",), "accepted"),
    "return": Move(("submitted",), "returned", needs_reason=True),
    "refuse": Move(("submitted",), "refused", needs_reason=True),
    "resubmit": Move(("returned",), "submitted"),
    "brief": Move(("accepted",), "briefed"),
    "start": Move(("briefed",), "in_progress"),
    "declare_completion": Move(("briefed", "in_progress"), "completion_declared"),
    # Patrol staff verify a declaration, or close a project they find finished (000 row 15).
    "close": Move(("completion_declared", "in_progress", "briefed", "accepted"), "closed"),
    "extend": Move(ACTIVE + ("expired",), None),
    "expire": Move(ACTIVE, "expired"),
    "revoke": Move(("submitted", "returned", "accepted", "briefed", "in_progress",
                    "completion_declared", "expired"), "revoked", needs_reason=True),
}


def allowed_actions(state: str) -> list[str]:
    return [name for name, move in MOVES.items() if state in move.sources]


def _last_event_date(project: Project) -> date:
    dates = [project.submitted_on, project.accepted_on, project.briefed_on, project.started_on,
             project.completion_declared_on]
    return max(d for d in dates if d is not None)


def _restore_state(session: Session, project: Project) -> str:
    """The state a project was in before it expired (read back from the audit log)."""
    before = session.scalar(
        select(AuditEntry.from_state)
        .where(AuditEntry.entity == "project", AuditEntry.entity_id == project.reg_no,
               AuditEntry.to_state == "expired")
        .order_by(AuditEntry.id.desc()).limit(1)
    )
    return before or "accepted"


def transition(
    session: Session,
    *,
    project: Project,
    action: str,
    actor: str,
    on: date | None = None,
    reason: str | None = None,
    ground: str | None = None,
    finished_on: date | None = None,
    new_planned_end: date | None = None,
    changes: dict[str, Any] | None = None,
    rules: Rules | None = None,
) -> Project:
    """Move ``project`` by ``action``; raises :class:`GisError` (field: why) when not allowed."""
    rules = rules or get_rules()
    move = MOVES.get(action)
    if move is None:
        raise GisError(f"action: unknown action {action!r} (one of {', '.join(MOVES)})")
    if project.state not in move.sources:
        allowed = ", ".join(allowed_actions(project.state)) or "none"
        raise GisError(f"action: cannot {action} a project that is {project.state} "
                       f"(allowed: {allowed})")
    if not actor or not actor.strip():
        raise GisError("actor: who acts is required")
    if move.needs_reason and not (reason and reason.strip()):
        raise GisError(f"reason: a reason is required to {action}")
    on = on or today_cn()
    last = _last_event_date(project)
    if on < last:
        raise GisError(f"on: {on} is before the project's last step ({last})")
    cal = workcal.load(session)
    before = project.state
    target = move.target
    data: dict[str, Any] = {"on": on.isoformat()}

    if action == "accept":
        project.accepted_on = on
        project.briefing_due = cal.add_working_days(on, rules.briefing_working_days)
        project.valid_until = workcal.add_months(on, rules.validity_months)
        project.receipt_no = f"HZ{project.reg_no[2:]}"
        data["late"] = on > project.review_due
    elif action == "resubmit":
        _resubmit(session, project, changes or {}, rules)
        project.submitted_on = on
        days = rules.review_working_days if project.channel == "online" else 0
        project.review_due = cal.add_working_days(on, days)
        if project.state == "refused":  # the corrected declaration is refused by the rules
            target = "refused"
            reason = project.state_reason
    elif action == "brief":
        project.briefed_on = on
        project.completion_due = cal.add_working_days(project.planned_end,
                                                      rules.completion_working_days)
        data["late"] = project.briefing_due is not None and on > project.briefing_due
    elif action == "start":
        project.started_on = on
    elif action == "declare_completion":
        finished = finished_on or on
        if finished > on:
            raise GisError(f"finished_on: {finished} is after the declaration date {on}")
        if finished < (project.briefed_on or project.accepted_on):
            raise GisError("finished_on: before the safety briefing")
        project.finished_on = finished
        project.completion_declared_on = on
        project.completion_due = cal.add_working_days(finished, rules.completion_working_days)
        data["late"] = on > project.completion_due
    elif action == "close":
        if before != "completion_declared" and not reason:
            reason = "found finished on patrol"
        project.closed_on = on
        project.finished_on = project.finished_on or finished_on or on
        data["verified_on_site"] = True
    elif action == "extend":
        if project.extensions >= rules.max_extensions:
            raise GisError(f"action: the registration was already extended "
                           f"{project.extensions} time(s); at most {rules.max_extensions}")
        project.extensions += 1
        project.valid_until = workcal.add_months(project.valid_until or on,
                                                 rules.extension_months)
        if new_planned_end is not None:
            if new_planned_end < project.planned_start:
                raise GisError("new_planned_end: must not be before planned_start")
            project.planned_end = new_planned_end
            if project.briefed_on:
                project.completion_due = cal.add_working_days(new_planned_end,
                                                              rules.completion_working_days)
        target = _restore_state(session, project) if before == "expired" else before
        data["valid_until"] = project.valid_until.isoformat()
    elif action == "revoke":
        if ground not in REVOKE_GROUNDS:
            raise GisError(f"ground: one of {', '.join(REVOKE_GROUNDS)} is required to revoke")
        data["ground"] = ground
        reason = f"{REVOKE_GROUNDS[ground]}: {reason}"

    project.state = target
    project.state_reason = reason
    project.updated_at = _now(session)
    audit.record(
        session, actor=actor, entity="project", entity_id=project.reg_no, action=action,
        from_state=before, to_state=target, reason=reason, district_code=project.district_code,
        data=data,
    )
    session.flush()
    return project


def _now(session: Session):
    return session.scalar(text("SELECT now()"))


def _as_raw(project: Project, session: Session) -> dict[str, Any]:
    site = json.loads(_site_json(session, project.id))
    return {
        "kind": project.kind, "category": project.category, "title": project.title,
        "address": project.address, "site": site, "builder": dict(project.builder),
        "contractor": dict(project.contractor), "investment_cny": project.investment_cny,
        "floor_area_m2": project.floor_area_m2, "planned_start": project.planned_start,
        "planned_end": project.planned_end, "risk_factors": list(project.risk_factors),
        "public_area": project.public_area, "channel": project.channel,
        "above_limit_reference": project.above_limit_reference,
    }


def _site_json(session: Session, project_id: int) -> str:
    return session.scalar(text("SELECT ST_AsGeoJSON(site, 9) FROM projects WHERE id = :i"),
                          {"i": project_id})


def _resubmit(session: Session, project: Project, changes: dict[str, Any], rules: Rules) -> None:
    """Apply the applicant's corrections and decide again (the site may move, the rules fire)."""
    raw = _as_raw(project, session)
    raw.update(changes)
    if "site" in changes and "crs" not in changes:
        raw["crs"] = "wgs84"
    reg = parse_registration(raw, rules=rules)
    decision = decide(session, reg, rules=rules)
    apply_decision(project, reg, decision, rules)
    if decision.outcome == "refused":
        project.state = "refused"
        project.state_reason = "; ".join(
            r["message"] for r in decision.reasons if r.get("outcome") == "refused")


def expire_due(session: Session, *, on: date | None = None, actor: str = "system") -> int:
    """Expire every active registration whose validity ended before ``on``."""
    on = on or today_cn()
    due = session.scalars(
        select(Project).where(Project.state.in_(ACTIVE), Project.valid_until < on)
        .order_by(Project.id)
    ).all()
    for project in due:
        transition(session, project=project, action="expire", actor=actor,
                   on=max(on, _last_event_date(project)),
                   reason=f"registration valid until {project.valid_until}", rules=None)
    return len(due)


# --- overdue --------------------------------------------------------------------------------

OVERDUE_SQL = """
SELECT * FROM (
  SELECT p.id, p.reg_no, p.title, p.state, p.street_code, p.street_name, p.community_code,
         p.community_name, p.grid_code, p.grid_name, 'review' AS clock, p.review_due AS due,
         p.reviewer_kind AS actor_kind, p.reviewer_name AS actor_name
  FROM projects p WHERE p.state = 'submitted' AND p.review_due < :on
  UNION ALL
  SELECT p.id, p.reg_no, p.title, p.state, p.street_code, p.street_name, p.community_code,
         p.community_name, p.grid_code, p.grid_name, 'briefing', p.briefing_due,
         p.reviewer_kind, p.reviewer_name
  FROM projects p WHERE p.state = 'accepted' AND p.briefing_due < :on
  UNION ALL
  SELECT p.id, p.reg_no, p.title, p.state, p.street_code, p.street_name, p.community_code,
         p.community_name, p.grid_code, p.grid_name, 'completion_declaration', p.completion_due,
         'builder', p.builder->>'name'
  FROM projects p WHERE p.state IN ('briefed', 'in_progress') AND p.completion_due < :on
  UNION ALL
  SELECT p.id, p.reg_no, p.title, p.state, p.street_code, p.street_name, p.community_code,
         p.community_name, p.grid_code, p.grid_name, 'validity', p.valid_until,
         'builder', p.builder->>'name'
  FROM projects p WHERE p.state IN ('accepted', 'briefed', 'in_progress')
    AND p.valid_until < :on
) o WHERE (CAST(:district AS text) IS NULL OR o.street_code LIKE :district_prefix)
  AND (CAST(:street AS text) IS NULL OR o.street_code = :street)
  AND (CAST(:community AS text) IS NULL OR o.community_code = :community)
  AND (CAST(:grid AS text) IS NULL OR o.grid_code = :grid)
  AND (CAST(:actor_kind AS text) IS NULL OR o.actor_kind = :actor_kind)
  AND (CAST(:clock AS text) IS NULL OR o.clock = :clock)
  AND EXISTS (SELECT 1 FROM projects t WHERE t.id = o.id AND {scope})
ORDER BY o.due, o.reg_no
"""


def overdue(
    session: Session,
    *,
    on: date | None = None,
    district: str | None = None,
    street: str | None = None,
    community: str | None = None,
    grid: str | None = None,
    actor_kind: str | None = None,
    clock: str | None = None,
    scope: Scope | None = None,
) -> list[dict[str, Any]]:
    """Every clock that ran out before ``on``, with who must act and how late (working days).

    ``scope`` (an account's) keeps the projects inside it; None: all.
    """
    on = on or today_cn()
    cal = workcal.load(session)
    predicate, scope_params = (scope or Scope.everything()).sql("t", geom="site")
    rows = session.execute(text(OVERDUE_SQL.format(scope=predicate)), {
        "on": on, "district": district, "district_prefix": f"{(district or '')[:6]}%",
        "street": street, "community": community, "grid": grid, "actor_kind": actor_kind,
        "clock": clock, **scope_params,
    }).mappings().all()
    items = []
    for row in rows:
        item = dict(row)
        item["working_days_late"] = cal.working_days_between(row["due"], on)
        items.append(item)
    return items


SUMMARY_KEYS = {
    "street": ("street_code", "street_name"),
    "community": ("community_code", "community_name"),
    "grid": ("grid_code", "grid_name"),
    "actor": ("actor_kind", "actor_name"),
}


def overdue_summary(session: Session, *, by: str, **filters: Any) -> list[dict[str, Any]]:
    """Overdue counts grouped by street, community, grid or who must act."""
    if by not in SUMMARY_KEYS:
        raise GisError(f"by: one of {', '.join(SUMMARY_KEYS)}")
    code_key, name_key = SUMMARY_KEYS[by]
    groups: dict[tuple, dict[str, Any]] = {}
    for item in overdue(session, **filters):
        key = (item[code_key], item[name_key])
        g = groups.setdefault(key, {"code": key[0], "name": key[1], "total": 0, "clocks": {}})
        g["total"] += 1
        g["clocks"][item["clock"]] = g["clocks"].get(item["clock"], 0) + 1
    return sorted(groups.values(), key=lambda g: (-g["total"], str(g["code"])))


def history(session: Session, project: Project) -> list[dict[str, Any]]:
    """The project's audit trail, oldest first."""
    entries = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.entity == "project",
               AuditEntry.entity_id == project.reg_no)
        .order_by(AuditEntry.id)
    ).all()
    return [
        {"at": e.at, "actor": e.actor, "action": e.action, "from_state": e.from_state,
         "to_state": e.to_state, "reason": e.reason, "data": e.data}
        for e in entries
    ]
