"""Who may do what, and where: the roles, the permission table, and the scope of an account.

Two questions are answered separately, so that neither can be forgotten by the other:

1. **May this role do this kind of thing at all?** :data:`PERMISSIONS` (role × action, below,
   as data). A "no" is a 403 before anything is looked up, so it says nothing about whether an
   object exists.
2. **Which rows?** A :class:`Scope`: the territory code prefixes of the account (a district,
   street, community or grid: territory codes are hierarchical, so "inside" is "the code starts
   with the unit's significant digits"), the estates of a property company, the inspector code
   of an inspector. The scope is turned into SQL predicates (:meth:`Scope.sql`) that the queries
   themselves carry — lists, counts, layers, exports and single objects alike — so a row outside
   the scope is never read, and an object outside answers 404 exactly as one that does not
   exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# --- the permission table --------------------------------------------------------------------

ACTIONS: tuple[str, ...] = (
    "reference",          # territory boundaries, jurisdiction look-ups, rules, catalogues, calendar
    "read",               # one object in scope (project, patrol, hazard, lead, report)
    "list",               # lists, counts, map layers, overdue lists, in scope
    "export",             # CSV / GeoJSON downloads of what may be listed
    "analyse",            # hotspot maps, rankings, blind spots, coverage by force, in scope
    "change",             # register, move a loop, upload patrols, record hazards, leads, incidents
    "report",             # file a public report (Open311)
    "plan",               # patrol route plans and assignments
    "import_boundaries",  # validate and import territory boundaries
    "manage_users",       # accounts and roles
    "calendar",           # set holidays and adjusted working days
    "maintain",           # repairs and daily jobs (expire registrations, rebuild summaries)
)

ROLES: tuple[str, ...] = ("grid_worker", "community", "property", "street_official",
                          "district_official", "dispatcher", "inspector", "public_reporter",
                          "admin")

# One row per role, one column per action in the order of ACTIONS: "x" allowed, "." not.
#                          ref read list exp  ana  chg  rep  plan imp  usr  cal  mnt
_TABLE: dict[str, str] = {
    "grid_worker":       "x    x    x    .    .    x    x    .    .    .    .    .",
    "community":         "x    x    x    x    x    x    x    .    .    .    .    .",
    "property":          "x    x    x    .    .    x    x    .    .    .    .    .",
    "street_official":   "x    x    x    x    x    x    x    x    .    .    .    .",
    "district_official": "x    x    x    x    x    x    x    x    x    .    x    .",
    "dispatcher":        "x    x    x    x    x    .    x    x    .    .    .    .",
    "inspector":         "x    x    x    .    .    x    x    .    .    .    .    .",
    "public_reporter":   ".    .    .    .    .    .    x    .    .    .    .    .",
    "admin":             "x    x    x    x    x    x    x    x    x    x    x    x",
}

PERMISSIONS: dict[str, frozenset[str]] = {
    role: frozenset(a for a, mark in zip(ACTIONS, row.split(), strict=True) if mark == "x")
    for role, row in _TABLE.items()
}

# The levels an account's scope code may have, per role (empty: no territory code).
SCOPE_LEVELS: dict[str, tuple[str, ...]] = {
    "grid_worker": ("grid",),
    "community": ("community",),
    "property": ("district",),
    "street_official": ("street",),
    "district_official": ("district",),
    "dispatcher": ("street", "district"),
    "inspector": ("grid", "community", "street", "district"),
    "public_reporter": (),
    "admin": (),
}
# Roles whose own patrols are filed under their name: they may upload only their own.
FIELD_ROLES = ("grid_worker", "inspector", "property")

ROLE_NAMES_ZH = {
    "grid_worker": "网格员", "community": "社区工作站", "property": "物业服务企业",
    "street_official": "街道城建/安监", "district_official": "区级主管部门", "dispatcher": "调度员",
    "inspector": "巡查员", "public_reporter": "公众举报人", "admin": "系统管理员",
}

assert set(PERMISSIONS) == set(ROLES) == set(SCOPE_LEVELS)


def allowed(role: str, action: str) -> bool:
    """Whether ``role`` may perform ``action`` at all (its scope decides where)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    return action in PERMISSIONS.get(role, frozenset())


# --- the scope --------------------------------------------------------------------------------

CODE_COLUMNS = ("grid_code", "community_code", "street_code", "district_code")


def code_prefix(code: str) -> str:
    """The significant digits of a territory code: what every code inside it starts with."""
    from app.config import code_scheme
    from gis.codes import level_of

    scheme = code_scheme()
    return code[: scheme.significant(level_of(code, scheme=scheme))]


@dataclass(frozen=True)
class Scope:
    """Where an account may see and act.

    ``prefixes`` None: no territorial limit (admin); an empty tuple: nothing. ``estate_ids``
    None: no estate limit; otherwise only what lies on those estates. ``inspector_code``: the
    name the account's own patrols are filed under (they stay visible to it wherever they are).
    """

    prefixes: tuple[str, ...] | None = None
    estate_ids: tuple[int, ...] | None = None
    inspector_code: str | None = None
    level: str | None = None
    code: str | None = None

    @classmethod
    def everything(cls) -> Scope:
        return cls()

    @classmethod
    def nothing(cls) -> Scope:
        return cls(prefixes=())

    @classmethod
    def of_account(cls, *, role: str, scope_code: str | None, estate_ids: list[int] | None,
                   inspector_code: str | None, username: str) -> Scope:
        """The scope of an account, from its role and territory code (fail closed)."""
        if role == "admin":
            return cls.everything()
        own = inspector_code or (username if role in FIELD_ROLES else None)
        if not scope_code or not SCOPE_LEVELS.get(role):
            return cls(prefixes=(), inspector_code=own)
        from app.config import code_scheme
        from gis._errors import GisError
        from gis.codes import level_of

        try:
            level = level_of(scope_code, scheme=code_scheme())
        except GisError:  # a malformed stored code sees nothing rather than failing
            return cls(prefixes=(), inspector_code=own)
        if level not in SCOPE_LEVELS[role]:
            return cls(prefixes=(), inspector_code=own)
        estates = tuple(estate_ids or ()) if role == "property" else None
        return cls(prefixes=(code_prefix(scope_code),), estate_ids=estates,
                   inspector_code=own, level=level, code=scope_code)

    @property
    def unrestricted(self) -> bool:
        return self.prefixes is None and self.estate_ids is None

    @property
    def district(self) -> str | None:
        """The one district the scope lies in (None: unrestricted or several)."""
        if not self.prefixes:
            return None
        districts = {p[:6] for p in self.prefixes}
        return f"{districts.pop()}000000" if len(districts) == 1 else None

    def covers_code(self, code: str | None) -> bool:
        """Whether a territory code (of any level) lies inside the territorial scope.

        The estate limit is not checked here (it is spatial): callers that need it use
        :meth:`sql` against the row.
        """
        if self.prefixes is None:
            return True
        if not code:
            return False
        return any(code.startswith(p) for p in self.prefixes)

    def covers_unit(self, code: str | None) -> bool:
        """Whether the whole unit ``code`` lies inside the scope (a street inside a district
        scope: yes; the street of a community scope: no)."""
        if self.unrestricted:
            return True
        if self.estate_ids is not None:
            return False
        # Codes are zero-padded below their level and a unit's own segment is never zeros, so
        # a unit's full code starts with a scope prefix exactly when the unit lies inside.
        return self.covers_code(code)

    def sql(self, alias: str = "t", *, geom: str | None = "location",
            codes: tuple[str, ...] = CODE_COLUMNS, own: str | None = None,
            key: str = "scope") -> tuple[str, dict[str, Any]]:
        """A SQL predicate (and its parameters) keeping the rows of ``alias`` in scope.

        A row is inside when its most specific known code (``coalesce`` of ``codes``, grid
        first) starts with one of the prefixes, and — for a property company — its ``geom``
        intersects one of the company's estates. ``own`` names a column (``inspector_id``)
        whose rows equal to the account's inspector code stay visible wherever they are.
        ``key`` keeps parameter names apart when one statement holds several predicates.
        """
        a = f"{alias}." if alias else ""
        conds: list[str] = []
        params: dict[str, Any] = {}
        if self.prefixes is not None:
            if self.prefixes and codes:
                cols = [a + c for c in codes]
                known = cols[0] if len(cols) == 1 else f"coalesce({', '.join(cols)})"
                conds.append(f"{known} LIKE ANY(CAST(:{key}_prefixes AS text[]))")
                params[f"{key}_prefixes"] = [p + "%" for p in self.prefixes]
            else:
                conds.append("false")
        if self.estate_ids is not None:
            if geom and self.estate_ids:
                conds.append(
                    f"EXISTS (SELECT 1 FROM estates {key}_e WHERE {key}_e.id = "
                    f"ANY(CAST(:{key}_estates AS integer[])) "
                    f"AND ST_Intersects({key}_e.geom, {a}{geom}))")
                params[f"{key}_estates"] = list(self.estate_ids)
            else:
                conds.append("false")
        predicate = " AND ".join(conds) or "true"
        if own and self.inspector_code and conds:
            predicate = f"(({predicate}) OR {a}{own} = :{key}_own)"
            params[f"{key}_own"] = self.inspector_code
        return f"({predicate})", params

    def clause(self, alias: str = "t", **kwargs: Any):
        """:meth:`sql` as a SQLAlchemy ``text`` clause for ``select(...).where(...)``."""
        from sqlalchemy import text

        predicate, params = self.sql(alias, **kwargs)
        return text(predicate).bindparams(**params)

    def describe(self) -> dict[str, Any]:
        return {"unrestricted": self.unrestricted, "code": self.code, "level": self.level,
                "prefixes": list(self.prefixes) if self.prefixes is not None else None,
                "estate_ids": list(self.estate_ids) if self.estate_ids is not None else None,
                "inspector_code": self.inspector_code}
