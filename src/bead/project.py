"""Where a workspace and its projects live on disk (SPEC §2)."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from bead.config import Config, load_config, save_config
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


@dataclass(frozen=True)
class ProjectPaths:
    """All folders and files of one project and its workspace."""

    root: Path
    workspace: str
    project: str

    def __post_init__(self) -> None:
        for label, name in (("workspace", self.workspace), ("project", self.project)):
            if not _NAME.match(name):
                raise UsageError(f"invalid {label} name {name!r}: use letters, digits, _ . -")

    @property
    def workspace_dir(self) -> Path:
        return self.root / self.workspace

    @property
    def data_dir(self) -> Path:
        return self.workspace_dir / "data"

    @property
    def csv_dir(self) -> Path:
        return self.data_dir / "csv"

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

    def load_config(self) -> Config:
        if not self.project_dir.is_dir():
            raise UsageError(
                f"project '{self.workspace}/{self.project}' not found under {self.root} "
                f"(create it with: bead -m new_project -p {self.workspace} {self.project})")
        return load_config(self.config_file)


def create_project(paths: ProjectPaths, config: Config | None = None) -> Path:
    """Create workspace folders and the project with a fully commented default config.

    An existing config is never overwritten: the user may have edited it.
    """
    for folder in (paths.csv_dir, paths.models_dir, paths.results_dir, paths.plots_dir,
                   paths.config_file.parent):
        folder.mkdir(parents=True, exist_ok=True)
    if paths.config_file.exists():
        log.info("config %s exists; left unchanged", paths.config_file)
    else:
        save_config(config or Config(), paths.config_file)
        log.info("wrote %s config %s", "default" if config is None else "converted",
                 paths.config_file)
    return paths.config_file
