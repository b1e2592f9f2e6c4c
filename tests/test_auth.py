"""Authentication: the password flow, tokens, throttling, the login page and its cookie, CORS,
the signing key, accounts from the command line, and the demo accounts."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import text

from app import security
from app.access import PERMISSIONS, ROLES, SCOPE_LEVELS
from app.security import COOKIE_NAME, create_access_token, decode_access_token
from app.services import users

PASSWORD = "correct horse battery"


@pytest.fixture
def account(session):
    """A street official with a known password (in the test's transaction)."""
    street = session.scalar(text("SELECT min(code) FROM streets WHERE valid_to IS NULL"))
    user = users.create_user(session, username=f"auth-{uuid.uuid4().hex[:8]}",
                             password=PASSWORD, role="street_official", scope_code=street,
                             display_name="张科长", actor="tests")
    session.commit()
    return user


def _login(c, username, password):
    return c.post("/auth/token", data={"username": username, "password": password})


def test_password_flow_gives_a_15_minute_token_that_names_the_account(client_as, account):
    anon = client_as(None)
    r = _login(anon, account.username.upper(), PASSWORD)  # names are not case-sensitive
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == account.username and claims["exp"] - claims["iat"] == pytest.approx(
        900, abs=1)
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    me = anon.get("/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["role"] == "street_official"
    assert me.json()["scope"]["prefixes"] == [account.scope_code[:9]]
    assert set(me.json()["actions"]) == PERMISSIONS["street_official"]
    assert anon.get("/auth/me").status_code == 401


def test_passwords_are_stored_as_argon2_and_never_audited(session, account):
    stored = session.scalar(text("SELECT password_hash FROM users WHERE username = :u"),
                            {"u": account.username})
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    audit = session.execute(text("SELECT coalesce(data::text, '') || coalesce(reason, '') "
                                 "FROM audit_log WHERE entity = 'user'")).scalars().all()
    assert audit and not any(PASSWORD in a or "$argon2" in a for a in audit)


def test_bad_tokens_are_401(client_as, account):
    anon = client_as(None)
    now = datetime.now(UTC)
    expired = create_access_token(account.username, account.role,
                                  now=now - timedelta(minutes=16))
    forged = jwt.encode({"sub": account.username, "iat": now.timestamp(),
                         "exp": (now + timedelta(minutes=5)).timestamp(), "typ": "access"},
                        "x" * 40, algorithm="HS256")
    unsigned = jwt.encode({"sub": account.username, "iat": now.timestamp(),
                           "exp": (now + timedelta(minutes=5)).timestamp(), "typ": "access"},
                          None, algorithm="none")
    nobody = create_access_token("no-such-account", "admin")
    for token in (expired, forged, unsigned, nobody, "garbage"):
        r = anon.get("/api/projects", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token
        assert r.headers["www-authenticate"] == "Bearer"
    assert decode_access_token(expired) is None
    good = create_access_token(account.username, account.role)
    assert anon.get("/api/projects",
                    headers={"Authorization": f"Bearer {good}"}).status_code == 200


def test_five_failures_per_account_then_429_until_they_age_out(client_as, account, session):
    anon = client_as(None)
    for _ in range(5):
        assert _login(anon, account.username, "wrong password!").status_code == 401
    stored = session.scalar(text("SELECT count(*) FROM login_failures WHERE username = :u"),
                            {"u": account.username})
    assert stored == 5
    r = _login(anon, account.username, PASSWORD)  # even the right password: guessing stops
    assert r.status_code == 429
    wait = int(r.headers["retry-after"])
    assert 0 < wait <= 15 * 60
    # Fifteen minutes later (the failures moved back in time), the account may log in again.
    session.execute(text("UPDATE login_failures SET at = at - interval '15 minutes 1 second'"))
    assert _login(anon, account.username, PASSWORD).status_code == 200
    # A successful login forgets the account's failures.
    assert session.scalar(text("SELECT count(*) FROM login_failures WHERE username = :u"),
                          {"u": account.username}) == 0


def test_five_failures_from_one_address_then_429_for_any_account(client_as, account):
    anon = client_as(None)
    for i in range(5):
        assert _login(anon, f"guess-{i}-{uuid.uuid4().hex[:6]}", "x" * 12).status_code == 401
    r = _login(anon, account.username, PASSWORD)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


def test_a_wrong_name_and_a_wrong_password_answer_alike(client_as, account):
    anon = client_as(None)
    a = _login(anon, account.username, "not the password")
    b = _login(anon, "nobody-here", "not the password")
    assert a.status_code == b.status_code == 401 and a.json() == b.json()


def test_login_page_in_two_languages_without_external_assets(client_as):
    anon = client_as(None)
    zh = anon.get("/login")
    assert zh.status_code == 200 and '<html lang="zh-CN">' in zh.text and "登录" in zh.text
    en = anon.get("/login", params={"lang": "en"})
    assert '<html lang="en">' in en.text and "Log in" in en.text and "Password" in en.text
    for page in (zh.text, en.text):
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
        assert 'name="username"' in page and 'type="password"' in page


def test_login_form_sets_a_strict_httponly_cookie_that_authenticates(client_as, account):
    anon = client_as(None)
    r = anon.post("/login", data={"username": account.username, "password": PASSWORD,
                                  "next": "/api/projects"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/api/projects"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    for attr in ("HttpOnly", "SameSite=strict", "Path=/", "Max-Age=900"):
        assert attr.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # plain http on loopback; https sets Secure
    token = cookie.split(";")[0].split("=", 1)[1]
    anon.cookies.set(COOKIE_NAME, token)
    assert anon.get("/auth/me").json()["username"] == account.username
    out = anon.get("/logout", follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"].startswith("/login")
    assert f'{COOKIE_NAME}=""' in out.headers["set-cookie"] or "max-age=0" in \
        out.headers["set-cookie"].lower()


def test_login_failures_and_open_redirects(client_as, account):
    anon = client_as(None)
    r = anon.post("/login", data={"username": account.username, "password": "nope-nope-nope",
                                  "lang": "en"}, follow_redirects=False)
    assert r.status_code == 401 and "Wrong username or password" in r.text
    assert "set-cookie" not in r.headers
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        r = anon.post("/login", data={"username": account.username, "password": PASSWORD,
                                      "next": evil}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/", evil


def test_a_page_without_login_answers_401_with_a_way_to_the_login(client_as):
    anon = client_as(None)
    page = anon.get("/map/territory?district=440304000000", headers={"Accept": "text/html"})
    assert page.status_code == 401
    assert 'url=/login?next=/map/territory%3Fdistrict%3D440304000000' in page.text
    api = anon.get("/api/projects", headers={"Accept": "application/json"})
    assert api.status_code == 401 and api.json()["detail"].startswith("authentication required")


def test_cors_is_closed_unless_origins_are_configured(client, monkeypatch):
    pre = client.options("/api/projects", headers={
        "Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in pre.headers
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from app.api.auth import install

    monkeypatch.setenv("XIAOSAN_CORS_ORIGINS", "https://ops.example")
    small = FastAPI()
    install(small)

    @small.get("/x")
    def x():
        return {}

    with TestClient(small) as c:
        ok = c.options("/x", headers={"Origin": "https://ops.example",
                                      "Access-Control-Request-Method": "GET"})
        other = c.options("/x", headers={"Origin": "https://evil.example",
                                         "Access-Control-Request-Method": "GET"})
    assert ok.headers["access-control-allow-origin"] == "https://ops.example"
    assert "access-control-allow-origin" not in other.headers


def test_signing_key_from_the_environment_random_when_unset_short_refused(monkeypatch, caplog):
    monkeypatch.setattr(security, "_key", None)
    monkeypatch.delenv("XIAOSAN_SECRET_KEY", raising=False)
    with caplog.at_level(logging.WARNING, logger="app.security"):
        first = security.secret_key()
    assert len(first) == 64 and "XIAOSAN_SECRET_KEY is not set" in caplog.text
    assert security.secret_key() == first  # once per process
    monkeypatch.setattr(security, "_key", None)
    monkeypatch.setenv("XIAOSAN_SECRET_KEY", "too-short")
    with pytest.raises(security.InsecureKeyError, match="at least 32"):
        security.secret_key()
    monkeypatch.setattr(security, "_key", None)
    monkeypatch.setenv("XIAOSAN_SECRET_KEY", "k" * 40)
    token = create_access_token("someone", "admin")
    assert jwt.decode(token, "k" * 40, algorithms=["HS256"])["sub"] == "someone"


def test_account_rules(session):
    street = session.scalar(text("SELECT min(code) FROM streets WHERE valid_to IS NULL"))
    grid = session.scalar(text("SELECT min(code) FROM grids WHERE valid_to IS NULL"))
    bad = [
        ({"role": "street_official", "scope_code": grid}, "scope_code"),  # a grid, not a street
        ({"role": "grid_worker", "scope_code": None}, "scope_code"),
        ({"role": "grid_worker", "scope_code": "440304001999001"}, "scope_code"),  # no such grid
        ({"role": "admin", "scope_code": street}, "scope_code"),
        ({"role": "property", "scope_code": "440304000000"}, "estate_ids"),
        ({"role": "property", "scope_code": "440304000000", "estate_ids": [999999]},
         "estate_ids"),
        ({"role": "pilot"}, "role"),
    ]
    for kwargs, field in bad:
        with pytest.raises(users.AccessError, match=f"^{field}:"):
            users.create_user(session, username=f"x-{uuid.uuid4().hex[:6]}",
                              password=PASSWORD, actor="tests", **kwargs)
    with pytest.raises(users.AccessError, match="^password:"):
        users.create_user(session, username="short-pw", password="short", role="admin",
                          actor="tests")
    with pytest.raises(users.AccessError, match="^username:"):
        users.create_user(session, username="Bad Name!", password=PASSWORD, role="admin",
                          actor="tests")


def test_users_cli_add_list_passwd_disable(cli, session):
    from typer.testing import CliRunner

    from app.cli import app

    name = f"cli-{uuid.uuid4().hex[:8]}"
    street = session.scalar(text("SELECT min(code) FROM streets WHERE valid_to IS NULL"))
    runner = CliRunner()
    r = runner.invoke(app, ["users", "add", name, "--role", "street_official", "--scope",
                            street, "--password-stdin"], input=f"{PASSWORD}\n")
    assert r.exit_code == 0, r.output
    assert PASSWORD not in r.output
    listed = cli("users", "list")
    assert listed.exit_code == 0 and name in listed.output
    r = runner.invoke(app, ["users", "passwd", name], input="new password 1\nnew password 1\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "add", name, "--role", "admin", "--password-stdin"],
                      input=f"{PASSWORD}\n")
    assert r.exit_code == 2 and "exists already" in r.output
    assert cli("users", "disable", name, "--reason", "left").exit_code == 0
    from app.db import session_factory
    from app.services.users import authenticate

    with session_factory()() as s:
        row = s.execute(text("SELECT active, password_hash FROM users WHERE username = :u"),
                        {"u": name}).one()
        assert row.active is False
        assert security.verify_password(row.password_hash, "new password 1")
        assert authenticate(s, username=name, password="new password 1") is None  # disabled


def test_demo_accounts_one_per_role_in_two_streets(session, client_as, tmp_path, monkeypatch):
    monkeypatch.delenv("XIAOSAN_DEMO_PASSWORD", raising=False)
    accounts, path = users.ensure_demo_accounts(session, district_code="440304000000",
                                                root=tmp_path)
    session.commit()
    assert path == tmp_path / "var" / "demo-accounts.txt" and path.stat().st_mode & 0o077 == 0
    password = re.search(r"^password: (\S+)$", path.read_text(), re.M).group(1)
    assert {a.role for a in accounts} == set(ROLES)
    for role in ROLES:
        mine = [a for a in accounts if a.role == role]
        if SCOPE_LEVELS[role] and role not in ("district_official", "property"):
            streets = {a.scope_code[:9] for a in mine}
            assert len(mine) == 2 and len(streets) == 2, role
    props = [a for a in accounts if a.role == "property"]
    assert len(props) == 2 and props[0].estate_ids != props[1].estate_ids
    # Again: the same password from the file, no new accounts.
    again, _ = users.ensure_demo_accounts(session, district_code="440304000000", root=tmp_path)
    assert [a.username for a in again] == [a.username for a in accounts]
    assert session.scalar(text("SELECT count(*) FROM users WHERE username LIKE 'demo-%'")) == len(
        accounts)
    r = client_as(None).post("/auth/token", data={"username": "demo-grid-a",
                                                  "password": password})
    assert r.status_code == 200
    monkeypatch.setenv("XIAOSAN_DEMO_PASSWORD", "from-the-environment")
    other = tmp_path / "elsewhere"
    _, none = users.ensure_demo_accounts(session, district_code="440304000000", root=other)
    assert none is None and not other.exists()
