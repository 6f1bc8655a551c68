"""Fixtures for the r2r-chat tests: private config and data dirs (helpers live in pilot_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads the developer's own config or writes into their history."""
    monkeypatch.setenv("R2R_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("R2R_DATA_DIR", str(tmp_path / "data"))
    return tmp_path
