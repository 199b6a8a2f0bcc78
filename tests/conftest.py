"""Shared test fixtures: project paths and the optional real-photo set beside the repo."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "clothing-small"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real clothing photos (read in place, never copied); skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real photo set not found at {SHARED_DATA} (see README: shared data)")
    return SHARED_DATA
