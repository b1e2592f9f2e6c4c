"""``xiaosan users``: add, list, change a password, disable. Passwords are never arguments:
they come from a prompt (typed twice, not echoed) or from standard input (``--password-stdin``),
so they stay out of the shell history and the process list."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from app.access import ROLES
from gis._errors import GisError

users_app = typer.Typer(help="Accounts and roles.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            _fail("password: nothing on standard input")
        return value
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


PasswordStdin = Annotated[bool, typer.Option("--password-stdin",
                                             help="Read the password from standard input")]


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}")],
    scope: Annotated[str | None, typer.Option(
        help="Territory code: grid, community, street or district, as the role needs")] = None,
    estate: Annotated[list[int] | None, typer.Option(
        help="Estate id (property companies; repeat for several)")] = None,
    inspector_code: Annotated[str | None, typer.Option(help="Inspector code (inspectors)")] = None,
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    password_stdin: PasswordStdin = False,
    actor: str = "cli",
):
    """Add an account."""
    from app.db import session_factory
    from app.services.users import create_user

    password = _password(password_stdin)
    with session_factory()() as session:
        try:
            user = create_user(session, username=username, password=password, role=role,
                               scope_code=scope, estate_ids=estate or [],
                               inspector_code=inspector_code, display_name=name, actor=actor)
            session.commit()
        except GisError as exc:
            session.rollback()
            _fail(str(exc))
    console.print(f"[green]added[/] {user.username} ({user.role}"
                  f"{', ' + user.scope_code if user.scope_code else ''})")


@users_app.command("list")
def users_list():
    """Every account, its role and scope."""
    from app.db import session_factory
    from app.services.users import list_users

    with session_factory()() as session:
        rows = list_users(session)
    # Plain tab-separated lines (never truncated, easy to grep), header first.
    lines = ["username\trole\tscope\testates\tinspector\tactive\tname"]
    for u in rows:
        lines.append("\t".join([u.username, u.role, u.scope_code or "",
                                ",".join(map(str, u.estate_ids or [])), u.inspector_code or "",
                                "yes" if u.active else "no", u.display_name]))
    print("\n".join(lines))


@users_app.command("passwd")
def users_passwd(username: str, password_stdin: PasswordStdin = False, actor: str = "cli"):
    """Set a new password (tokens issued before stop working)."""
    from app.db import session_factory
    from app.services.users import set_password

    password = _password(password_stdin)
    with session_factory()() as session:
        try:
            set_password(session, username=username, password=password, actor=actor)
            session.commit()
        except GisError as exc:
            session.rollback()
            _fail(str(exc))
    console.print(f"[green]password changed[/] for {username}")


@users_app.command("disable")
def users_disable(username: str, reason: str | None = None, actor: str = "cli"):
    """Disable an account (kept for the audit log; its tokens stop working)."""
    from app.db import session_factory
    from app.services.users import disable_user

    with session_factory()() as session:
        try:
            disable_user(session, username=username, actor=actor, reason=reason)
            session.commit()
        except GisError as exc:
            session.rollback()
            _fail(str(exc))
    console.print(f"[green]disabled[/] {username}")


def demo_accounts_step(session) -> None:
    """Part of ``xiaosan demo load``: the demo accounts, and where their password is."""
    from app.config import get_settings
    from app.services.users import ensure_demo_accounts

    accounts, path = ensure_demo_accounts(session, district_code=get_settings().demo_district)
    session.commit()
    where = f"password in {path}" if path else "password from XIAOSAN_DEMO_PASSWORD"
    console.print(f"  {'accounts':<10} {len(accounts)} demo accounts ({where})")


def print_demo_accounts() -> None:
    """Part of ``xiaosan serve``: the demo accounts file, when there is one."""
    from app.services.users import DEMO_FILE

    if DEMO_FILE.is_file():
        console.print(f"[bold]demo accounts[/] ({DEMO_FILE}):")
        console.print(DEMO_FILE.read_text(encoding="utf-8"), markup=False, highlight=False)
