"""Settings, read once from the environment (prefix ``XIAOSAN_`` except ``DATABASE_URL``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

DEFAULT_DATABASE_URL = "postgresql+psycopg://xiaosan:xiaosan@127.0.0.1:5432/xiaosan"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to know about its surroundings."""

    database_url: str = field(default_factory=lambda: _env("DATABASE_URL", DEFAULT_DATABASE_URL))
    host: str = field(default_factory=lambda: _env("XIAOSAN_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(_env("XIAOSAN_PORT", "8000")))
    # Grid codes extend the 12-digit community code by this many digits (15 in all by default).
    grid_code_digits: int = field(default_factory=lambda: int(_env("XIAOSAN_GRID_DIGITS", "3")))
    # Gaps/overlaps below this many square metres are reported as slivers.
    sliver_m2: float = field(default_factory=lambda: float(_env("XIAOSAN_SLIVER_M2", "50")))
    # The district the demo data and the default map show.
    demo_district: str = field(
        default_factory=lambda: _env("XIAOSAN_DEMO_DISTRICT", "440304000000")
    )
    # The public base URL, used in QR codes and links.
    public_url: str = field(
        default_factory=lambda: _env("XIAOSAN_PUBLIC_URL", "http://127.0.0.1:8000")
    )
    # Upload limits.
    max_upload_bytes: int = field(
        default_factory=lambda: int(_env("XIAOSAN_MAX_UPLOAD_BYTES", str(50 * 1024 * 1024)))
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def code_scheme():
    """The territory's code scheme: 12-digit statistical codes, grids extending communities."""
    from gis.codes import CodeScheme

    return CodeScheme(grid=get_settings().grid_code_digits)
