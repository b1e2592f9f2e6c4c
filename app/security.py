"""Passwords (argon2) and short-lived access tokens (JWT, HS256).

The signing key comes from ``XIAOSAN_SECRET_KEY``. Without it the process makes a random key
and says so in the log: tokens then die with the process and several workers do not accept
each other's tokens, which is safe but only fit for a demo. A key shorter than 32 characters is
refused: a guessable key lets anyone mint an administrator's token.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

log = logging.getLogger(__name__)

TOKEN_MINUTES = 15
ALGORITHM = "HS256"
COOKIE_NAME = "xiaosan_token"
MIN_KEY_LENGTH = 32

_hasher = PasswordHasher()
_key_lock = threading.Lock()
_key: str | None = None
# Verified against when the account does not exist, so that a wrong name costs as long as a
# wrong password and the answer time does not tell which accounts exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class InsecureKeyError(RuntimeError):
    pass


def secret_key() -> str:
    """The signing key (read once per process)."""
    global _key
    with _key_lock:
        if _key is None:
            configured = os.environ.get("XIAOSAN_SECRET_KEY", "")
            if configured:
                if len(configured) < MIN_KEY_LENGTH:
                    raise InsecureKeyError(
                        f"XIAOSAN_SECRET_KEY: at least {MIN_KEY_LENGTH} characters are needed "
                        "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')")
                _key = configured
            else:
                log.warning("XIAOSAN_SECRET_KEY is not set: using a random key for this process "
                            "only; tokens will not survive a restart")
                _key = secrets.token_hex(32)
        return _key


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; a missing hash still costs one verification."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def create_access_token(username: str, role: str, *, key: str | None = None,
                        minutes: int = TOKEN_MINUTES, now: datetime | None = None) -> str:
    """A signed token naming the account; valid ``minutes`` from ``now``."""
    issued = now or datetime.now(UTC)
    # ``iat`` keeps its fraction (RFC 7519 allows it): a password changed in the same second
    # as a token was issued must still revoke it.
    claims = {"sub": username, "role": role, "iat": round(issued.timestamp(), 6),
              "exp": int((issued + timedelta(minutes=minutes)).timestamp()), "typ": "access"}
    return jwt.encode(claims, key or secret_key(), algorithm=ALGORITHM)


def decode_access_token(token: str, *, key: str | None = None) -> dict[str, Any] | None:
    """The token's claims, or None when it is forged, expired or malformed."""
    try:
        claims = jwt.decode(token, key or secret_key(), algorithms=[ALGORITHM],
                            options={"require": ["sub", "exp", "iat"]})
    except jwt.PyJWTError:
        return None
    if claims.get("typ") != "access" or not isinstance(claims.get("sub"), str):
        return None
    return claims
