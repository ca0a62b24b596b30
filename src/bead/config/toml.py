"""Config files: the project TOML (data, never executed), read, validated and written."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import tomlkit

from bead.config.schema import Config, make_config
from bead.errors import UsageError
from bead.fileio import atomic_write_text
from bead.project import ProjectPaths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

log = logging.getLogger(__name__)


def read_text(path: Path) -> str:
    """The file as text; unreadable or non-UTF-8 bytes are a UsageError naming the file.

    A leading BOM (Windows editors) is dropped: TOML and Python would both reject it.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UsageError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not UTF-8 text (byte {err.start})") from None
    return text.removeprefix("\ufeff")


def load_config(path: Path) -> Config:
    """Read and validate a project TOML file."""
    if not path.is_file():
        raise UsageError(f"{path}: config file not found (run new_project first)")
    try:
        values = tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{path}: invalid TOML: {err}") from None
    if not values:  # valid TOML, but more likely truncated than meant
        log.warning("%s: empty config: using every default", path)
    return make_config(values, source=str(path))


def config_to_toml(config: Config) -> str:
    """Every key with its value and a one-line comment, grouped as in the Config class."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment("BEAD project configuration. Data only: it is never executed."))
    values = config.model_dump(exclude_none=True)
    for name, field in Config.model_fields.items():
        value = _inline(values[name])
        doc.add(tomlkit.nl())
        doc.add(tomlkit.comment(field.description or name))
        doc.add(name, value)
    return tomlkit.dumps(doc)


def _inline(value: object) -> object:
    """Tables as inline tables: a ``[table]`` or ``[[table]]`` header in the middle of the file
    would swallow every key written after it."""
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        for key, item in value.items():  # nested tables inline too (annealing_params)
            table.append(key, _inline(item))
        return table
    if not (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
        return value
    array = tomlkit.array()
    array.multiline(True)
    for entry in value:
        table = tomlkit.inline_table()
        table.update(entry)
        array.append(table)
    return array


def save_config(config: Config, path: Path) -> None:
    atomic_write_text(path, config_to_toml(config))


def load_project_config(paths: ProjectPaths) -> Config:
    """The config of an existing project; a missing project says how to create it."""
    if not paths.project_dir.is_dir():
        raise UsageError(
            f"project '{paths.workspace}/{paths.project}' not found under {paths.root} "
            f"(create it with: bead -m new_project -p {paths.workspace} {paths.project})")
    return load_config(paths.config_file)


def create_project(paths: ProjectPaths, config: Config | None = None) -> Path:
    """Create workspace folders and the project with a fully commented default config.

    An existing config is never overwritten: the user may have edited it.
    """
    paths.create_folders()
    if paths.config_file.exists():
        log.info("config %s exists; left unchanged", paths.config_file)
    else:
        save_config(config or Config(), paths.config_file)
        log.info("wrote %s config %s", "default" if config is None else "converted",
                 paths.config_file)
    return paths.config_file
