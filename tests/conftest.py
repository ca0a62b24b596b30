"""Shared test helpers: where the read-only fixtures of ../shared live."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_fixtures() -> Path:
    """``../shared/fixtures`` beside the repository (the main checkout, CI); a worktree that
    lives elsewhere finds the workplace's ``/work/shared/fixtures``."""
    beside = REPO.parent / "shared" / "fixtures"
    workplace = Path("/work/shared/fixtures")
    return beside if beside.is_dir() or not workplace.is_dir() else workplace


SHARED_FIXTURES = _shared_fixtures()


@pytest.fixture
def shared_fixture():
    """Path to a file in ../shared/fixtures, skipping when that folder is not beside the repo."""

    def get(name: str) -> Path:
        path = SHARED_FIXTURES / name
        if not path.is_file():
            pytest.skip(f"shared fixture {path} not available (needs ../shared beside the repo "
                        "or /work/shared)")
        return path

    return get
