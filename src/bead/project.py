"""Where a workspace and its projects live on disk, and the name rule (SPEC §2).

It knows no Config: loading and writing a project's config is ``bead.config``'s job.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from bead.errors import UsageError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def workspaces_root(cli_value: str | None = None) -> Path:
    """--workspaces, else $BEAD_WORKSPACES, else ./workspaces (never inside the package)."""
    chosen = cli_value or os.environ.get("BEAD_WORKSPACES") or "workspaces"
    root = Path(chosen).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root}: the workspaces folder is a file (--workspaces, "
                         "$BEAD_WORKSPACES or ./workspaces)")
    return root


def check_name(label: str, name: str) -> None:
    """Workspace and project names: letters, digits, ``_ . -``, not starting with a symbol."""
    if not _NAME.match(name):
        raise UsageError(f"invalid {label} name {name!r}: use letters, digits, _ . -")


@dataclass(frozen=True)
class ProjectPaths:
    """All folders and files of one project and its workspace."""

    root: Path
    workspace: str
    project: str

    def __post_init__(self) -> None:
        check_name("workspace", self.workspace)
        check_name("project", self.project)

    @property
    def workspace_dir(self) -> Path:
        return self.root / self.workspace

    @property
    def data_dir(self) -> Path:
        return self.workspace_dir / "data"

    @property
    def csv_dir(self) -> Path:
        return self.data_dir / "csv"

    @property
    def root_dir(self) -> Path:
        return self.data_dir / "root"

    def store_dir(self, file_type: str) -> Path:
        return self.data_dir / file_type

    @property
    def tensors_dir(self) -> Path:
        return self.data_dir / "h5" / "tensors" / "processed"

    @property
    def project_dir(self) -> Path:
        return self.workspace_dir / self.project

    @property
    def config_file(self) -> Path:
        return self.project_dir / "config" / f"{self.project}_config.toml"

    @property
    def output_dir(self) -> Path:
        return self.project_dir / "output"

    @property
    def models_dir(self) -> Path:
        return self.output_dir / "models"

    @property
    def results_dir(self) -> Path:
        return self.output_dir / "results"

    @property
    def plots_dir(self) -> Path:
        return self.output_dir / "plots"

    def create_folders(self) -> None:
        for folder in (self.csv_dir, self.models_dir, self.results_dir, self.plots_dir,
                       self.config_file.parent):
            folder.mkdir(parents=True, exist_ok=True)
