"""Shared test helpers: where the read-only fixtures of ../shared live."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


@pytest.fixture
def shared_fixture():
    """Path to a file in ../shared/fixtures, skipping when that folder is not beside the repo."""

    def get(name: str) -> Path:
        path = SHARED_FIXTURES / name
        if not path.is_file():
            pytest.skip(f"shared fixture {path} not available (needs ../shared beside the repo)")
        return path

    return get
