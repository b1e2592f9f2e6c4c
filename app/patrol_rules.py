"""The patrol rules: forces, visit frequency by risk, visit inference, track cleaning, hazards.

Defaults follow ``../shared/DOMAIN.md``; a district overrides any field of
:class:`PatrolRules` with a JSON file named by ``XIAOSAN_PATROL_RULES_FILE`` (read once per
process; unknown keys are an error, so a typo cannot pass silently).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from typing import Any

FORCES = {
    "supervisor": "专职安全监管员",
    "grid_worker": "网格员",
    "property": "物业服务企业",
    "public": "公众",
}
HAZARD_TYPES = {
    "fall_from_height": "高处坠落",
    "electric_shock": "触电",
    "fire": "火灾",
    "struck_by_object": "物体打击",
    "collapse": "坍塌",
    "poisoning_asphyxia": "中毒窒息（有限空间）",
    "machinery": "机械伤害",
    "other": "其他",
}
SEVERITIES = {"immediate": "立即整改", "general": "一般隐患", "major": "重大隐患"}
ANSWERS = ("ok", "problem", "na")

# The checklist (巡查指引) by kind of work; a category may add its own items.
DEFAULT_CHECKLISTS: dict[str, list[tuple[str, str]]] = {
    "common": [
        ("signboard", "责任公示牌已设置"),
        ("registered_scope", "施工内容与登记一致"),
        ("briefing", "已完成安全交底"),
        ("site_order", "现场材料堆放有序、通道畅通"),
    ],
    "small_project": [
        ("temp_electricity", "临时用电规范（漏电保护、无私拉乱接）"),
        ("fire_safety", "动火有审批、有监护，灭火器配备"),
        ("structure", "未变动主体及承重结构"),
        ("special_workers", "特种作业人员持证上岗"),
    ],
    "sporadic_work": [
        ("harness", "高处作业系挂安全带"),
        ("cordon", "作业区域设置警戒"),
        ("tools", "工具设备完好"),
    ],
    "confined_space": [
        ("ventilate_test", "先通风、再检测、后作业"),
        ("watcher", "全程专人监护"),
    ],
    "scaffolding": [("scaffold", "脚手架搭设规范、验收合格")],
}


@dataclass(frozen=True)
class PatrolRules:
    """Everything patrol coverage and hazards decide by; one immutable object per process."""

    # A site needs a visit every N days: high-risk every 3, others every 7 (configurable).
    due_days_high_risk: int = 3
    due_days_other: int = 7
    # Project states whose sites patrols must reach (work may be under way).
    active_states: tuple[str, ...] = ("accepted", "briefed", "in_progress", "completion_declared")
    # A patrol point within this distance of a site counts as a visit.
    visit_distance_m: float = 50.0
    # A track visits a site when it stays within ``visit_distance_m`` this long.
    dwell_minutes: float = 3.0
    # Track cleaning.
    max_speed_mps: float = 30.0
    max_gap_s: float = 1800.0
    min_run_fixes: int = 3
    # Working days to rectify a hazard, by severity (0: the same day).
    rectify_working_days: dict[str, int] = field(
        default_factory=lambda: {"immediate": 0, "general": 3, "major": 10}
    )
    # An unregistered work within this distance of an active registration of the same kind of
    # work (or any category when the report names none) is matched to it.
    lead_match_distance_m: float = 80.0
    checklists: dict[str, list[tuple[str, str]]] = field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_CHECKLISTS.items()}
    )
    upload_batch_max: int = 5000

    def due_days(self, high_risk: bool) -> int:
        return self.due_days_high_risk if high_risk else self.due_days_other

    def checklist_for(self, kind: str | None, risk_factors: list[str] | None = None
                      ) -> list[tuple[str, str]]:
        items = list(self.checklists.get("common", []))
        if kind:
            items += self.checklists.get(kind, [])
        for factor in risk_factors or []:
            items += self.checklists.get(factor, [])
        return items

    def all_checklist_codes(self) -> set[str]:
        return {code for items in self.checklists.values() for code, _ in items}

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def patrol_rules_from_mapping(overrides: dict[str, Any]) -> PatrolRules:
    known = {f.name for f in fields(PatrolRules)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"patrol rules: unknown setting(s) {', '.join(unknown)}")
    values = dict(overrides)
    if "active_states" in values:
        values["active_states"] = tuple(values["active_states"])
    if "checklists" in values:
        values["checklists"] = {k: [tuple(i) for i in v] for k, v in values["checklists"].items()}
    return replace(PatrolRules(), **values)


@lru_cache(maxsize=1)
def get_patrol_rules() -> PatrolRules:
    path = os.environ.get("XIAOSAN_PATROL_RULES_FILE")
    if not path:
        return PatrolRules()
    with open(path, encoding="utf-8") as fh:
        return patrol_rules_from_mapping(json.load(fh))
