"""Fixtures for the plotting tests."""

from pathlib import Path

import pytest
from plot_inputs import write_all


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    return write_all(tmp_path / "output" / "results")
