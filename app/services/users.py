"""Accounts: create, change a password, disable, authenticate with throttling; demo accounts.

Every change is audited (entity ``user``); a password never reaches the log or the audit.
Failed logins are kept in ``login_failures``: five in fifteen minutes for one account name, or
from one client address, and the next attempt is refused (429) until the oldest of them ages
out — whether or not the password is then right, or guessing would simply go on.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from app.access import ROLES, SCOPE_LEVELS, Scope
from app.config import code_scheme
from app.models import Estate, LoginFailure, User
from app.models.territory import LEVEL_MODELS
from app.security import hash_password, verify_password
from app.services import audit
from gis._errors import GisError
from gis.codes import level_of

MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
MIN_PASSWORD = 10
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")


class AccessError(GisError):
    """A refused account change (the message names the field)."""


def normalise_username(username: str) -> str:
    return (username or "").strip().lower()


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise AccessError(f"password: at least {MIN_PASSWORD} characters")


def _check_scope(session: Session, role: str, scope_code: str | None,
                 estate_ids: list[int] | None) -> None:
    levels = SCOPE_LEVELS[role]
    if not levels:
        if scope_code:
            raise AccessError(f"scope_code: a {role} account has no territory")
        if estate_ids:
            raise AccessError(f"estate_ids: a {role} account has no estates")
        return
    if not scope_code:
        raise AccessError(f"scope_code: a {role} account needs a {' or '.join(levels)} code")
    try:
        level = level_of(scope_code, scheme=code_scheme())
    except GisError as exc:
        raise AccessError(f"scope_code: {exc}") from exc
    if level not in levels:
        raise AccessError(f"scope_code: a {role} account needs a {' or '.join(levels)} code, "
                          f"{scope_code} is a {level}")
    table = LEVEL_MODELS[level].__tablename__
    found = session.scalar(text(f"SELECT 1 FROM {table} WHERE code = :c AND valid_to IS NULL"),
                           {"c": scope_code})
    if not found:
        raise AccessError(f"scope_code: no current {level} {scope_code}")
    if role == "property":
        if not estate_ids:
            raise AccessError("estate_ids: a property account needs at least one estate")
        known = set(session.scalars(select(Estate.id).where(
            Estate.id.in_(estate_ids), Estate.district_code.like(scope_code[:6] + "%"))))
        missing = sorted(set(estate_ids) - known)
        if missing:
            raise AccessError(f"estate_ids: no estate {missing[0]} in district {scope_code}")
    elif estate_ids:
        raise AccessError(f"estate_ids: only property accounts have estates, not {role}")


def create_user(session: Session, *, username: str, password: str, role: str,
                scope_code: str | None = None, estate_ids: list[int] | None = None,
                inspector_code: str | None = None, display_name: str | None = None,
                actor: str, password_hash: str | None = None) -> User:
    """Add an account (checked; audited). ``password_hash`` skips hashing (fixtures, imports)."""
    name = normalise_username(username)
    if not USERNAME_RE.match(name):
        raise AccessError("username: 2-64 characters: letters, digits, . _ @ -")
    if role not in ROLES:
        raise AccessError(f"role: one of {', '.join(ROLES)}")
    if password_hash is None:
        _check_password(password)
    _check_scope(session, role, scope_code, estate_ids)
    if session.scalar(select(User.id).where(User.username == name)) is not None:
        raise AccessError(f"username: {name} exists already")
    user = User(username=name, display_name=(display_name or name)[:100],
                password_hash=password_hash or hash_password(password), role=role,
                scope_code=scope_code, estate_ids=sorted(set(estate_ids or [])),
                inspector_code=inspector_code or None, active=True)
    session.add(user)
    session.flush()
    audit.record(session, actor=actor, entity="user", entity_id=name, action="create",
                 to_state="active", district_code=(scope_code or "")[:6].ljust(12, "0")
                 if scope_code else None,
                 data={"role": role, "scope_code": scope_code, "estate_ids": user.estate_ids,
                       "inspector_code": user.inspector_code})
    return user


def get_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == normalise_username(username)))


def _require(session: Session, username: str) -> User:
    user = get_user(session, username)
    if user is None:
        raise AccessError(f"username: no account {normalise_username(username)}")
    return user


def set_password(session: Session, *, username: str, password: str, actor: str) -> User:
    """A new password; tokens issued before now stop working."""
    _check_password(password)
    user = _require(session, username)
    user.password_hash = hash_password(password)
    user.changed_at = func.clock_timestamp()
    audit.record(session, actor=actor, entity="user", entity_id=user.username, action="passwd")
    session.flush()
    return user


def disable_user(session: Session, *, username: str, actor: str,
                 reason: str | None = None) -> User:
    """Disable an account (never deleted: the audit log names it); its tokens stop working."""
    user = _require(session, username)
    if user.active:
        user.active = False
        user.changed_at = func.clock_timestamp()
        audit.record(session, actor=actor, entity="user", entity_id=user.username,
                     action="disable", from_state="active", to_state="disabled", reason=reason)
        session.flush()
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.role, User.username)))


def scope_of(user: User) -> Scope:
    return Scope.of_account(role=user.role, scope_code=user.scope_code,
                            estate_ids=list(user.estate_ids or []),
                            inspector_code=user.inspector_code, username=user.username)


# --- logging in -------------------------------------------------------------------------------


def retry_after(session: Session, *, username: str, client_ip: str,
                now: datetime | None = None) -> int | None:
    """Seconds until a login may be tried again, or None when it may be tried now."""
    now = now or datetime.now(UTC)
    since = now - FAILURE_WINDOW
    waits = []
    for column, value in ((LoginFailure.username, normalise_username(username)),
                          (LoginFailure.client_ip, client_ip)):
        fifth = session.scalar(
            select(LoginFailure.at).where(column == value, LoginFailure.at > since)
            .order_by(LoginFailure.at.desc()).offset(MAX_FAILURES - 1).limit(1))
        if fifth is not None:
            waits.append((fifth + FAILURE_WINDOW - now).total_seconds())
    if not waits:
        return None
    return max(1, math.ceil(max(waits)))


def record_failure(session: Session, *, username: str, client_ip: str,
                   now: datetime | None = None) -> None:
    session.add(LoginFailure(username=normalise_username(username)[:64], client_ip=client_ip[:64],
                             at=now or datetime.now(UTC)))
    session.flush()


def authenticate(session: Session, *, username: str, password: str) -> User | None:
    """The active account with this name and password, or None (same cost either way)."""
    user = get_user(session, username)
    ok = verify_password(user.password_hash if user else None, password or "")
    if not ok or user is None or not user.active:
        return None
    return user


def clear_failures(session: Session, *, username: str) -> None:
    """A successful login forgets the account's failures (not the address's)."""
    session.execute(delete(LoginFailure).where(
        LoginFailure.username == normalise_username(username)))


# --- demo accounts ----------------------------------------------------------------------------

DEMO_FILE = Path("var") / "demo-accounts.txt"


@dataclass
class DemoAccount:
    username: str
    role: str
    scope_code: str | None
    estate_ids: list[int]
    inspector_code: str | None


def demo_accounts(session: Session, *, district_code: str) -> list[DemoAccount]:
    """One account per role, in two streets (a, b) where the role is territorial.

    The two streets are the first two (by code) that hold a demo estate, so that the property
    accounts have estates in them too; grid and community accounts take the first grid and
    community of each street.
    """
    rows = session.execute(text(
        """SELECT s.code AS street, min(e.id) AS estate
           FROM streets s JOIN estates e ON ST_Intersects(s.geom, ST_PointOnSurface(e.geom))
           WHERE s.valid_to IS NULL AND s.district_code = :d AND e.district_code = :d
           GROUP BY s.code ORDER BY s.code LIMIT 2"""), {"d": district_code}).all()
    out = [DemoAccount("demo-admin", "admin", None, [], None),
           DemoAccount("demo-public", "public_reporter", None, [], None),
           DemoAccount("demo-district", "district_official", district_code, [], None)]
    for suffix, row in zip("ab", rows, strict=False):
        street = row.street
        community = session.scalar(text(
            "SELECT min(code) FROM communities WHERE valid_to IS NULL AND parent_code = :s"),
            {"s": street})
        grid = session.scalar(text(
            "SELECT min(code) FROM grids WHERE valid_to IS NULL AND parent_code = :c"),
            {"c": community})
        out += [
            DemoAccount(f"demo-street-{suffix}", "street_official", street, [], None),
            DemoAccount(f"demo-dispatcher-{suffix}", "dispatcher", street, [], None),
            DemoAccount(f"demo-community-{suffix}", "community", community, [], None),
            DemoAccount(f"demo-grid-{suffix}", "grid_worker", grid, [], None),
            DemoAccount(f"demo-inspector-{suffix}", "inspector", street, [],
                        f"DEMO-INSP-{suffix.upper()}"),
            DemoAccount(f"demo-property-{suffix}", "property", district_code, [row.estate],
                        None),
        ]
    return out


def demo_password(root: Path | None = None) -> tuple[str, Path | None]:
    """The demo accounts' password: ``XIAOSAN_DEMO_PASSWORD``, else the one written once to
    ``var/demo-accounts.txt`` (created with a random password the first time)."""
    configured = os.environ.get("XIAOSAN_DEMO_PASSWORD")
    if configured:
        return configured, None
    path = (root or Path.cwd()) / DEMO_FILE
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("password:"):
                return line.split(":", 1)[1].strip(), path
    return secrets.token_urlsafe(12), path


def ensure_demo_accounts(session: Session, *, district_code: str,
                         root: Path | None = None) -> tuple[list[DemoAccount], Path | None]:
    """Create the demo accounts that are missing and set their password (idempotent).

    Returns the accounts and the file the password was written to (None when it came from
    the environment). The caller commits.
    """
    password, path = demo_password(root)
    accounts = demo_accounts(session, district_code=district_code)
    hashed = hash_password(password)
    for acc in accounts:
        user = get_user(session, acc.username)
        if user is None:
            create_user(session, username=acc.username, password=password, role=acc.role,
                        scope_code=acc.scope_code, estate_ids=acc.estate_ids,
                        inspector_code=acc.inspector_code, password_hash=hashed,
                        display_name=f"演示 {acc.role}", actor="demo-loader")
        elif not verify_password(user.password_hash, password):
            user.password_hash = hashed
            user.changed_at = func.clock_timestamp()
            audit.record(session, actor="demo-loader", entity="user", entity_id=user.username,
                         action="passwd")
    session.flush()
    if path is not None and not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# Demo accounts of the local demo database (not for production).",
                 f"password: {password}", ""]
        lines += [f"{a.username:<22} {a.role:<18} {a.scope_code or ''}" for a in accounts]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        path.chmod(0o600)
    return accounts, path
