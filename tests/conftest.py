"""Shared fixtures: paths to the real public test data beside the project."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The folder of real public data (``../shared/realdata``); tests that need it fail without it."""
    if not REALDATA.is_dir():
        pytest.fail(f"real test data not found at {REALDATA}")
    return REALDATA
