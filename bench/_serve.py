"""The benchmarks' app server: the real app under uvicorn on loopback, and an admin token."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from app.db import session_factory

ROOT = Path(__file__).resolve().parents[1]
# The server and the tokens made here must share the signing key.
os.environ.setdefault("XIAOSAN_SECRET_KEY", secrets.token_hex(32))


def admin_token(url: str) -> str:
    from app.security import create_access_token, hash_password
    from app.services.users import create_user

    with session_factory(url)() as session:
        exists = session.scalar(text("SELECT 1 FROM users WHERE username = 'bench-admin'"))
        if not exists:
            create_user(session, username="bench-admin", password="", role="admin",
                        password_hash=hash_password(secrets.token_hex(16)), actor="bench")
            session.commit()
    return create_access_token("bench-admin", "admin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(url: str, **env_extra: str) -> tuple[subprocess.Popen, str]:
    """The app on a free loopback port, ready and warm; ``env_extra``: more settings."""
    port = free_port()
    env = dict(os.environ, DATABASE_URL=url, **env_extra)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port",
         str(port), "--log-level", "warning"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            # Ready when it answers and its warm-up (app/warmup.py) is over.
            if httpx.get(f"{base}/health", timeout=1).json().get("warm", {}).get("done"):
                return proc, base
            time.sleep(0.2)
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise SystemExit("the app server exited at start") from None
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the app server was not ready within 60 s")
