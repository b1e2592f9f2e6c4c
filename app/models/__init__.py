"""ORM models. Import everything here so Alembic sees the whole metadata."""

from app.models.access import LoginFailure, ServiceRequest, User
from app.models.audit import AuditEntry
from app.models.base import Base
from app.models.patrol import (
    Hazard,
    Incident,
    Patrol,
    PatrolVisit,
    ProjectVisitSummary,
    UnregisteredWork,
    ViolationItem,
)
from app.models.project import CalendarDay, Estate, Project, SpecialPlace
from app.models.route_plan import (
    Inspector,
    RoutePlan,
    RoutePlanLeftOut,
    RoutePlanRoute,
    RoutePlanStop,
)
from app.models.territory import (
    LEVEL_MODELS,
    BoundaryImport,
    Community,
    District,
    Grid,
    Street,
)

__all__ = [
    "Base",
    "AuditEntry",
    "BoundaryImport",
    "District",
    "Street",
    "Community",
    "Grid",
    "LEVEL_MODELS",
    "Project",
    "SpecialPlace",
    "Estate",
    "CalendarDay",
    "Patrol",
    "PatrolVisit",
    "ProjectVisitSummary",
    "ViolationItem",
    "Hazard",
    "UnregisteredWork",
    "Incident",
    "Inspector",
    "RoutePlan",
    "RoutePlanRoute",
    "RoutePlanStop",
    "RoutePlanLeftOut",
    "User",
    "LoginFailure",
    "ServiceRequest",
]
