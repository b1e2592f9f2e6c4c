"""The registration rules: taxonomy, thresholds, risk factors, reviewers and departments.

The defaults follow the seeds (002 Dapeng rules, 000 Xiamen revision, 001 Huli): see
``../shared/DOMAIN.md``. A district changes them without touching code by pointing
``XIAOSAN_RULES_FILE`` at a JSON file holding any of the fields of :class:`Rules` (lists and
dicts replace the defaults wholesale; read once per process, see :func:`get_rules`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from typing import Any

KINDS = {"small_project": "限额以下小型工程", "sporadic_work": "零星作业"}

# category code → (kind, Chinese name, department codes). 001 lists the kinds of small works,
# 002 art. 9 who looks after which sporadic work.
DEFAULT_CATEGORIES: dict[str, tuple[str, str, list[str]]] = {
    "small_building": ("small_project", "小型房屋建筑工程", ["housing"]),
    "municipal": ("small_project", "小型市政工程", ["urban_management", "housing"]),
    "water": ("small_project", "小型水务工程", ["water"]),
    "transport": ("small_project", "小型交通工程", ["transport"]),
    "port": ("small_project", "小型港口工程", ["transport"]),
    "power": ("small_project", "小型电力工程", ["power"]),
    "telecom": ("small_project", "小型通信工程", ["industry"]),
    "landscaping": ("small_project", "小型园林绿化工程", ["urban_management"]),
    "underground_pipeline": ("small_project", "地下管线工程", ["water", "housing"]),
    "non_residential_fitout": ("small_project", "非住宅装饰装修工程", ["housing", "commerce"]),
    "residential_fitout": ("small_project", "住宅室内装饰装修工程", ["housing"]),
    "air_conditioner": ("sporadic_work", "空调安装维修拆除", ["emergency"]),
    "solar_heater": ("sporadic_work", "太阳能热水器安装维修拆除", ["emergency"]),
    "cctv": ("sporadic_work", "监控设备安装维修拆除", ["emergency"]),
    "rain_canopy": ("sporadic_work", "雨篷安装维修拆除", ["urban_management"]),
    "anti_theft_grille": ("sporadic_work", "防盗网安装维修拆除", ["emergency"]),
    "ev_charger": ("sporadic_work", "新能源汽车充电设施", ["development_finance", "power"]),
    "ebike_charger": ("sporadic_work", "电动自行车充电设施", ["transport", "power"]),
    "billboard": ("sporadic_work", "户外广告设施", ["urban_management"]),
    "facade_cleaning": ("sporadic_work", "建筑外墙清洗", ["urban_management"]),
    "tree_pruning": ("sporadic_work", "绿化枝叶修剪", ["urban_management"]),
    "industrial_equipment": ("sporadic_work", "工业环保设备设施安装维护", ["environment"]),
    "shop_signage": ("sporadic_work", "商铺招牌及商贸设施作业", ["commerce"]),
    "hotel_facility": ("sporadic_work", "酒店民宿设施作业", ["culture_tourism"]),
}

# 002 art. 7–9: the departments of a district (新区 in Dapeng; 区 elsewhere).
DEFAULT_DEPARTMENTS: dict[str, str] = {
    "housing": "住房和建设局",
    "water": "水务局",
    "transport": "交通运输局",
    "urban_management": "城市管理和综合执法局",
    "commerce": "商务局",
    "culture_tourism": "文化广电旅游体育局",
    "education_health": "教育局 / 卫生健康局",
    "industry": "科技创新和工业信息化局",
    "development_finance": "发展和财政局",
    "planning": "规划和自然资源局",
    "environment": "生态环境局",
    "power": "供电局",
    "fire": "消防救援大队",
    "police": "公安分局",
    "emergency": "应急管理局",
}

RISK_FACTORS: dict[str, str] = {
    "work_at_height": "室外高处作业",
    "scaffolding": "脚手架",
    "lifting_machinery": "起重机械",
    "confined_space": "有限空间作业",
    "structural_alteration": "变动主体或承重结构",
    "whole_building_renovation": "整栋楼宇改造",
    "factory_conversion": "厂房改造",
    "apartment_conversion": "大型住宅改公寓",
    "hot_work": "动火作业",
    "temporary_electricity": "临时用电",
    "demolition": "拆除作业",
    "excavation": "土方开挖",
    "change_of_use": "改变房屋用途",
    "illegal_extension": "违法加建改建扩建",
    "structure_endangering_equipment": "安装影响结构安全的设备",
}

# 002 art. 3: never allowed in a small work, whatever else is declared.
DEFAULT_FORBIDDEN: dict[str, str] = {
    "structural_alteration": "altering the main or load-bearing structure is forbidden "
    "(002 art. 3)",
    "change_of_use": "changing the use of the building is forbidden (002 art. 3)",
    "illegal_extension": "extra storeys, basements or rooftop extensions are forbidden "
    "(002 art. 3)",
    "structure_endangering_equipment": (
        "installing equipment that endangers the structure is forbidden (002 art. 3)"
    ),
}

# DOMAIN.md "High-risk small project" (002 art. 8, 15, 16, 19; 003).
DEFAULT_HIGH_RISK = [
    "whole_building_renovation",
    "factory_conversion",
    "apartment_conversion",
    "scaffolding",
    "lifting_machinery",
    "work_at_height",
    "confined_space",
]

# Special closed areas (000 row 5) → the department that coordinates work inside them (002 art. 9).
DEFAULT_SPECIAL_KINDS: dict[str, tuple[str, str]] = {
    "school": ("学校", "education_health"),
    "hospital": ("医院", "education_health"),
    "factory": ("工业厂区", "industry"),
    "elderly_care": ("养老机构", "education_health"),
}

REVIEWERS = {
    "street_construction_office": "街道办事处城建部门",
    "community_workstation": "社区工作站",
    "property_company": "物业服务企业",
}


@dataclass(frozen=True)
class Rules:
    """Everything registration decides by; one immutable object per process."""

    limit_investment_cny: float = 1_000_000.0
    limit_floor_area_m2: float = 500.0
    special_area_distance_m: float = 50.0
    # Working days (002 art. 15, 16, 18) and validity (art. 13).
    review_working_days: int = 3
    briefing_working_days: int = 3
    completion_working_days: int = 3
    validity_months: int = 6
    extension_months: int = 6
    max_extensions: int = 1
    categories: dict[str, tuple[str, str, list[str]]] = field(
        default_factory=lambda: dict(DEFAULT_CATEGORIES)
    )
    departments: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_DEPARTMENTS))
    forbidden: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_FORBIDDEN))
    high_risk_factors: list[str] = field(default_factory=lambda: list(DEFAULT_HIGH_RISK))
    special_kinds: dict[str, tuple[str, str]] = field(
        default_factory=lambda: dict(DEFAULT_SPECIAL_KINDS)
    )
    # Every sporadic work is also the emergency management office's (002 art. 9: 统筹).
    always_for_kind: dict[str, list[str]] = field(
        default_factory=lambda: {"sporadic_work": ["emergency"]}
    )

    def category_kind(self, category: str) -> str | None:
        entry = self.categories.get(category)
        return entry[0] if entry else None

    def category_departments(self, category: str) -> list[str]:
        entry = self.categories.get(category)
        return list(entry[2]) if entry else []

    def department_name(self, code: str) -> str:
        return self.departments.get(code, code)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def rules_from_mapping(overrides: dict[str, Any]) -> Rules:
    """Defaults with ``overrides`` applied; unknown keys are an error (a typo must not pass)."""
    known = {f.name for f in fields(Rules)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"rules: unknown setting(s) {', '.join(unknown)}")
    values = dict(overrides)
    if "categories" in values:
        values["categories"] = {
            k: (v[0], v[1], list(v[2])) for k, v in values["categories"].items()
        }
    if "special_kinds" in values:
        values["special_kinds"] = {k: (v[0], v[1]) for k, v in values["special_kinds"].items()}
    return replace(Rules(), **values)


@lru_cache(maxsize=1)
def get_rules() -> Rules:
    path = os.environ.get("XIAOSAN_RULES_FILE")
    if not path:
        return Rules()
    with open(path, encoding="utf-8") as fh:
        return rules_from_mapping(json.load(fh))
