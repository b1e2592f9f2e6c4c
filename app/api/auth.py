"""Logging in and out: the OAuth2 password flow for programs, a form and a cookie for people.

``POST /auth/token`` (form fields ``username``, ``password``) answers a Bearer token valid for
15 minutes. ``/login`` is the same for a browser: it sets the token as an HttpOnly,
SameSite=Strict cookie (sent back only to this site, never readable by a script) and returns to
the page asked for. Five failures in 15 minutes for one account name or from one address, and
the next attempt is answered 429 with ``Retry-After``.
"""

from __future__ import annotations

import os
from html import escape
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from app.access import PERMISSIONS
from app.api.access import CurrentUser, NotAuthenticated, UsersAccess
from app.api.deps import SessionDep
from app.security import COOKIE_NAME, TOKEN_MINUTES, create_access_token, secret_key
from app.services import users

router = APIRouter(tags=["auth"])


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = TOKEN_MINUTES * 60


def client_ip(request: Request) -> str:
    """The caller's address as the server sees it (a proxy in front must be trusted to set
    it: run uvicorn with ``--proxy-headers`` and ``--forwarded-allow-ips`` for that)."""
    return request.client.host if request.client else "unknown"


def _login(session, request: Request, username: str, password: str):
    """The account, or an HTTPException (429 throttled, 401 wrong); failures are committed."""
    ip = client_ip(request)
    wait = users.retry_after(session, username=username, client_ip=ip)
    if wait is not None:
        raise HTTPException(429, "too many failed logins: try again later",
                            headers={"Retry-After": str(wait)})
    user = users.authenticate(session, username=username, password=password)
    if user is None:
        users.record_failure(session, username=username, client_ip=ip)
        session.commit()
        raise HTTPException(401, "username or password is wrong",
                            headers={"WWW-Authenticate": "Bearer"})
    users.clear_failures(session, username=username)
    session.commit()
    return user


@router.post("/auth/token", response_model=TokenOut)
def token(request: Request, session: SessionDep,
          form: Annotated[OAuth2PasswordRequestForm, Depends()]):
    """OAuth2 password flow: a Bearer token for 15 minutes."""
    user = _login(session, request, form.username, form.password)
    return TokenOut(access_token=create_access_token(user.username, user.role))


@router.get("/auth/me")
def me(user: CurrentUser):
    """Who the token belongs to, what the role may do and where."""
    scope = users.scope_of(user)
    return {"username": user.username, "display_name": user.display_name, "role": user.role,
            "scope_code": user.scope_code, "estate_ids": list(user.estate_ids or []),
            "inspector_code": user.inspector_code, "actions": sorted(PERMISSIONS[user.role]),
            "scope": scope.describe()}


@router.get("/api/users")
def list_accounts(session: SessionDep, access: UsersAccess):
    """Every account (no password hashes)."""
    return [{"username": u.username, "display_name": u.display_name, "role": u.role,
             "scope_code": u.scope_code, "estate_ids": list(u.estate_ids or []),
             "inspector_code": u.inspector_code, "active": u.active,
             "created_at": u.created_at, "changed_at": u.changed_at}
            for u in users.list_users(session)]


# --- the login page --------------------------------------------------------------------------

TEXT = {
    "zh": {"title": "登录 · 小散工程安全纳管", "heading": "登录", "username": "用户名",
           "password": "密码", "submit": "登录", "other": "English", "other_lang": "en",
           "wrong": "用户名或密码错误。", "throttled": "登录失败次数过多，请 {s} 秒后再试。",
           "html_lang": "zh-CN", "out": "已退出登录。"},
    "en": {"title": "Log in · Small works safety supervision", "heading": "Log in",
           "username": "Username", "password": "Password", "submit": "Log in",
           "other": "中文", "other_lang": "zh", "wrong": "Wrong username or password.",
           "throttled": "Too many failed logins: try again in {s} seconds.",
           "html_lang": "en", "out": "You are logged out."},
}


def _safe_next(target: str | None) -> str:
    """Only a path of this site (no scheme, no host, no ``//``): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def login_page(lang: str = "zh", *, message: str = "", next_url: str = "/",
               status_code: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    t = TEXT["en" if lang == "en" else "zh"]
    note = f'<p class="msg" role="alert">{escape(message)}</p>' if message else ""
    other = escape(f"/login?lang={t['other_lang']}&next={quote(next_url, safe='/')}")
    html = f"""<!doctype html>
<html lang="{t['html_lang']}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(t['title'])}</title>
<style>body{{font-family:sans-serif;background:#f4f5f7;margin:0}}
main{{max-width:22rem;margin:8vh auto;background:#fff;padding:1.5rem 2rem;
border:1px solid #ddd;border-radius:6px}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.45rem;box-sizing:border-box}}
button{{margin-top:1.2rem;width:100%;padding:.55rem;background:#b40000;color:#fff;border:0;
border-radius:4px;font-size:1rem}}.msg{{color:#b40000}}nav{{text-align:right;font-size:.9rem}}
</style></head><body><main>
<nav><a href="{other}">{escape(t['other'])}</a></nav>
<h1>{escape(t['heading'])}</h1>{note}
<form method="post" action="/login">
<input type="hidden" name="next" value="{escape(next_url, quote=True)}">
<input type="hidden" name="lang" value="{'en' if lang == 'en' else 'zh'}">
<label for="username">{escape(t['username'])}</label>
<input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">{escape(t['password'])}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">{escape(t['submit'])}</button>
</form></main></body></html>"""
    return HTMLResponse(html, status_code=status_code, headers=headers)


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(lang: str = "zh", next: str = "/"):  # noqa: A002 (the usual query name)
    return login_page(lang, next_url=_safe_next(next))


@router.post("/login", include_in_schema=False)
def login_submit(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",  # noqa: A002
    lang: Annotated[str, Form()] = "zh",
):
    t = TEXT["en" if lang == "en" else "zh"]
    target = _safe_next(next)
    try:
        user = _login(session, request, username, password)
    except HTTPException as exc:
        if exc.status_code == 429:
            wait = (exc.headers or {}).get("Retry-After", "900")
            return login_page(lang, message=t["throttled"].format(s=wait), next_url=target,
                              status_code=429, headers={"Retry-After": wait})
        return login_page(lang, message=t["wrong"], next_url=target, status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE_NAME, create_access_token(user.username, user.role),
                        max_age=TOKEN_MINUTES * 60, path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.api_route("/logout", methods=["GET", "POST"], include_in_schema=False)
def logout(lang: str = "zh"):
    response = RedirectResponse(f"/login?lang={'en' if lang == 'en' else 'zh'}",
                                status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response


def install(app: FastAPI) -> None:
    """The 401 page for browsers, and CORS only when ``XIAOSAN_CORS_ORIGINS`` names origins.

    Reads the signing key now, so that a missing one is logged (and a short one refused) when
    the service starts rather than at the first login.
    """
    secret_key()

    @app.exception_handler(NotAuthenticated)
    async def _not_authenticated(request: Request, exc: NotAuthenticated) -> Response:
        headers = dict(exc.headers or {})
        if "text/html" in request.headers.get("accept", ""):
            target = _safe_next(request.url.path + (f"?{request.url.query}"
                                                    if request.url.query else ""))
            url = escape(f"/login?next={quote(target, safe='/')}", quote=True)
            body = (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
                    f'<meta http-equiv="refresh" content="0; url={url}">'
                    f"<title>请登录 · Log in</title></head><body>"
                    f'<p><a href="{url}">请登录 · Log in</a></p></body></html>')
            return HTMLResponse(body, status_code=401, headers=headers)
        return JSONResponse({"detail": exc.detail}, status_code=401, headers=headers)

    origins = [o.strip() for o in os.environ.get("XIAOSAN_CORS_ORIGINS", "").split(",")
               if o.strip()]
    if origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT"],
                           allow_headers=["Authorization", "Content-Type"])

