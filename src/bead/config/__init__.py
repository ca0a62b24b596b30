"""The project configuration (SPEC §3): schema, TOML files and the legacy import.

Free of torch, so loading a config stays fast.
"""

from bead.config.legacy import NOT_YET_IMPLEMENTED, read_legacy_config
from bead.config.schema import SCALERS, Config, make_config
from bead.config.toml import (
    config_to_toml,
    create_project,
    load_config,
    load_project_config,
    save_config,
)

__all__ = ["NOT_YET_IMPLEMENTED", "SCALERS", "Config", "config_to_toml", "create_project",
           "load_config", "load_project_config", "make_config", "read_legacy_config",
           "save_config"]
