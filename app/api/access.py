"""Request dependencies for authentication and scope: who is asking, may they, and where.

Every route names one action of :data:`app.access.ACTIONS` by taking one parameter::

    @router.get("/things")
    def list_things(session: SessionDep, access: ListAccess): ...

The dependency answers 401 without a valid token (Bearer header or the login cookie), 403
when the role may not perform the action at all, and otherwise hands the route an
:class:`Access` whose ``scope`` the route's queries must carry (``access.where("t")`` gives a
SQL predicate and its parameters; ``access.visible(...)`` checks one row). A route that has no
such parameter is caught by ``tests/test_access_matrix.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import select, text

from app.access import ACTIONS, allowed
from app.access import Scope as Scope
from app.api.deps import SessionDep
from app.models import User
from app.security import COOKIE_NAME, decode_access_token
from app.services.users import scope_of

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


class NotAuthenticated(HTTPException):
    """401: no token, or a forged, expired or revoked one."""

    def __init__(self, detail: str = "authentication required: log in at /login or send a "
                                      "Bearer token from POST /auth/token") -> None:
        super().__init__(401, detail, headers={"WWW-Authenticate": "Bearer"})


def token_of(request: Request, bearer: str | None) -> str | None:
    """The token from the Authorization header, else from the login cookie."""
    return bearer or request.cookies.get(COOKIE_NAME) or None


def user_for_token(session, token: str | None) -> User | None:
    """The active account a token names, if the token is valid and issued after the account's
    last change (a new password or a disabled account revokes older tokens)."""
    if not token:
        return None
    claims = decode_access_token(token)
    if claims is None:
        return None
    user = session.scalar(select(User).where(User.username == claims["sub"]))
    if user is None or not user.active:
        return None
    if float(claims["iat"]) < user.changed_at.timestamp():
        return None
    return user


def current_user(request: Request, session: SessionDep,
                 bearer: Annotated[str | None, Depends(oauth2_scheme)] = None) -> User:
    user = user_for_token(session, token_of(request, bearer))
    if user is None:
        raise NotAuthenticated()
    request.state.user = user.username
    return user


def optional_user(request: Request, session: SessionDep,
                  bearer: Annotated[str | None, Depends(oauth2_scheme)] = None) -> User | None:
    """The account when a valid token came with the request; None for anonymous callers."""
    return user_for_token(session, token_of(request, bearer))


CurrentUser = Annotated[User, Depends(current_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]


@dataclass(frozen=True)
class Access:
    """The account, the action it was let through for, and the scope its queries must carry."""

    user: User
    action: str
    scope: Scope

    def actor(self, claimed: str | None = None) -> str:
        """The name to audit. An administrator may record on behalf of a named person (paper
        records entered afterwards); every other account acts under its own name."""
        if self.user.role == "admin" and claimed:
            return claimed
        return self.user.username

    def where(self, alias: str = "t", **kwargs: Any) -> tuple[str, dict[str, Any]]:
        """SQL predicate and parameters keeping ``alias``'s rows in scope (:meth:`Scope.sql`)."""
        return self.scope.sql(alias, **kwargs)

    def visible(self, session, table: str, row_id: Any, *, id_column: str = "id",
                **kwargs: Any) -> bool:
        """Whether the row ``table.id_column = row_id`` exists and lies in scope."""
        predicate, params = self.scope.sql("t", **kwargs)
        found = session.execute(text(
            f"SELECT 1 FROM {table} t WHERE t.{id_column} = :row_id AND {predicate}"),
            {"row_id": row_id, **params}).first()
        return found is not None

    def require_unit(self, code: str | None, field: str) -> None:
        """403 when a filter names a territory unit outside the scope."""
        if code and not self.scope.covers_unit(code):
            raise HTTPException(403, f"{field}: {code} is outside your area")

    def district(self, requested: str | None, default: str) -> str:
        """The district a district-wide request is about: the one asked for (if in scope),
        else the scope's own, else ``default``."""
        if requested:
            # The scope's own district is fine even for a street account: the queries narrow
            # it further. Another district is not.
            if not self.scope.unrestricted and self.scope.district != requested:
                raise HTTPException(403, f"district: {requested} is outside your area")
            return requested
        return self.scope.district or default


def allow(action: str) -> Callable[..., Access]:
    """A dependency letting through the accounts whose role may perform ``action``."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")

    def dependency(user: CurrentUser) -> Access:
        if not allowed(user.role, action):
            raise HTTPException(403, f"role: a {user.role} account may not {action} here")
        return Access(user=user, action=action, scope=scope_of(user))

    dependency.__name__ = f"allow_{action}"
    dependency.action = action  # type: ignore[attr-defined]
    return dependency


ReferenceAccess = Annotated[Access, Depends(allow("reference"))]
ReadAccess = Annotated[Access, Depends(allow("read"))]
ListAccess = Annotated[Access, Depends(allow("list"))]
ExportAccess = Annotated[Access, Depends(allow("export"))]
AnalyseAccess = Annotated[Access, Depends(allow("analyse"))]
ChangeAccess = Annotated[Access, Depends(allow("change"))]
ReportAccess = Annotated[Access, Depends(allow("report"))]
PlanAccess = Annotated[Access, Depends(allow("plan"))]
BoundariesAccess = Annotated[Access, Depends(allow("import_boundaries"))]
UsersAccess = Annotated[Access, Depends(allow("manage_users"))]
CalendarAccess = Annotated[Access, Depends(allow("calendar"))]
MaintainAccess = Annotated[Access, Depends(allow("maintain"))]
