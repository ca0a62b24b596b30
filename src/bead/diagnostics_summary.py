"""Where the diagnostics mode writes its summary, and how to read it without torch (the report
reads it when it is drawn)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bead.errors import DataError

DIAGNOSTICS_DIR = "diagnostics"  # under the project's output/
SUMMARY = "diagnostics.json"
SUMMARY_VERSION = 1


def read_summary(out_dir: Path) -> dict[str, Any] | None:
    """The summary of the last diagnostics run in ``out_dir`` (None when there is none); a
    damaged one is a DataError naming the file."""
    path = Path(out_dir) / SUMMARY
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read JSON: {err}") from None
    if not isinstance(data, dict) or data.get("version") != SUMMARY_VERSION:
        raise DataError(f"{path}: not a diagnostics summary of version {SUMMARY_VERSION} "
                        "(rerun diagnostics)")
    return data
