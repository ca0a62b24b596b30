"""The project configuration: one validated, immutable object, stored as TOML (SPEC §3).

Keys keep the original BEAD names so existing users feel at home. The TOML file is data, never
executed; a legacy ``<proj>_config.py`` is converted by reading its literal assignments.
"""

from __future__ import annotations

import ast
import difflib
import logging
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any, Literal

import tomlkit
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bead.errors import UsageError
from bead.fileio import atomic_write_text
from bead.names import LOSS_REQUIRES, MODEL_PROVIDES, check_compatible

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

log = logging.getLogger(__name__)

SCALERS = ("minmax", "standard", "robust", "log", "l2", "power", "quantile", "maxabs", "sincos")


class Config(BaseModel):
    """Every setting of a project; defaults give a good result out of the box."""

    # allow_inf_nan=False: ``lr = inf`` passes every gt/ge bound, so it must be refused by type.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, validate_default=True,
                              allow_inf_nan=False)

    # --- data ---
    file_type: Literal["h5", "parquet"] = Field(
        "h5", description="store format written by convert_csv")
    parallel_workers: int = Field(2, ge=1, le=256, description="worker processes for generation")
    chunk_size: int = Field(10000, ge=1, description="events per chunk when converting CSVs")
    on_bad_row: Literal["error", "skip"] = Field(
        "error", description="malformed CSV rows: stop with an error, or skip and report counts")
    num_jets: int = Field(2, ge=1, le=64, description="leading jets kept per event")
    num_constits: int = Field(15, ge=1, le=512, description="leading constituents kept per jet")
    normalizations: str = Field(
        "pj_custom", description="pj_custom, or a '+' chain of " + ", ".join(SCALERS))
    invert_normalizations: bool = Field(
        False, description="write reconstructions back in physical units (not yet: ignored)")
    train_size: float = Field(0.8, gt=0.0, lt=1.0, description="training fraction of bkg_train")
    input_level: Literal["event", "jet", "constituent"] = Field(
        "jet", description="which objects the model sees (jet gave the best demo AUC)")
    input_features: Literal["all", "4momentum", "4momentum_btag", "pj_custom"] = Field(
        "all", description="feature set per object")
    seed: int = Field(42, ge=0, description="seed for splits, initialisation and shuffling")

    # --- model and loss ---
    model_name: str = Field("Planar_ConvVAE", description="model class (see README for the list)")
    model_init: Literal["xavier", "default"] = Field("xavier", description="weight initialisation")
    latent_space_size: int = Field(12, ge=1, le=1024, description="latent dimension")
    loss_function: str = Field("VAEFlowLoss", description="loss class (see README for the list)")
    reg_param: float = Field(1e-3, ge=0.0, description="beta: weight of the KL / flow term")

    # --- training ---
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd", "radam", "adagrad"] = Field(
        "adamw", description="optimizer")
    epochs: int = Field(40, ge=1, description="maximum number of epochs")
    lr: float = Field(1e-3, gt=0.0, description="learning rate")
    batch_size: int = Field(256, ge=1, description="events per batch")
    early_stopping: bool = Field(True, description="stop when validation loss stops improving")
    early_stopping_patience: int = Field(8, ge=1, description="epochs without improvement")
    min_delta: float = Field(0.0, ge=0.0, description="smallest change that counts as improvement")
    lr_scheduler: bool = Field(True, description="ReduceLROnPlateau on the validation loss")
    lr_scheduler_patience: int = Field(4, ge=1, description="epochs before the LR is reduced")
    gradient_clip: float = Field(5.0, ge=0.0, description="max gradient norm; 0 disables")
    weighted_training: bool = Field(
        False, description="weight the training loss by evtwt (needs non-negative weights)")
    intermittent_model_saving: bool = Field(False, description="save a checkpoint periodically")
    intermittent_saving_patience: int = Field(10, ge=1, description="epochs between checkpoints")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    use_amp: bool = Field(False, description="mixed precision on GPU (bf16 where supported)")
    use_ddp: bool = Field(
        False, description="distributed data-parallel under torchrun (not yet: ignored)")
    deterministic_algorithm: bool = Field(False, description="torch deterministic algorithms")
    activation_extraction: bool = Field(
        False, description="save layer activations when scoring (not yet: ignored)")

    # --- plots ---
    latent_space_plot_style: Literal["pca", "tsne", "umap", "trimap"] = Field(
        "pca", description="embedding for latent-space plots (umap/trimap need the viz extra)")
    subsample_plot: bool = Field(True, description="subsample events for latent plots")
    subsample_size: int = Field(5000, ge=10, description="events per latent plot when subsampling")
    overlay_roc: bool = Field(False, description="also draw the cross-project ROC overlay")
    overlay_roc_projects: list[str] = Field(
        default_factory=list, description="projects ('ws/proj' or 'proj') in the ROC overlay")
    overlay_roc_save_location: str = Field(
        "overlay_roc", description="folder under output/plots for the overlay")
    overlay_roc_filename: str = Field(
        "combined_roc", description="overlay file name (a .pdf/.png suffix is dropped)")

    # --- event generation (generate mode) ---
    gen_bkg_train_events: int = Field(2000, ge=0, description="events per bkg_train generator")
    gen_bkg_test_events: int = Field(1000, ge=0, description="events per bkg_test generator")
    gen_sig_events: int = Field(1000, ge=0, description="signal events")
    gen_generators: list[str] = Field(
        default_factory=lambda: ["pythia", "a14", "vincia"],
        description="background generators: pythia, a14, vincia")
    gen_pthat_min: float = Field(500.0, gt=0.0, description="QCD PhaseSpace:pTHatMin [GeV]")
    gen_sqrt_s: float = Field(13000.0, gt=0.0, description="centre-of-mass energy [GeV]")
    gen_jet_r: float = Field(0.8, gt=0.0, le=2.0, description="anti-kT radius")
    gen_jet_eta_max: float = Field(2.5, gt=0.0, description="|eta| limit for jet inputs")
    gen_jet_pt_min: float = Field(200.0, ge=0.0, description="jet pt threshold [GeV]")
    gen_met_eta_max: float = Field(4.9, gt=0.0, description="|eta| limit for the MET sum")
    gen_min_jets: int = Field(2, ge=1, description="events with fewer jets are regenerated")
    gen_zprime_mass: float = Field(1500.0, gt=0.0, description="SVJ Z' mass [GeV]")
    gen_dark_meson_mass: float = Field(20.0, gt=0.0, description="SVJ dark meson mass [GeV]")
    gen_rinv: float = Field(0.3, ge=0.0, le=1.0, description="SVJ invisible fraction r_inv")
    gen_alpha_dark: float = Field(0.2, gt=0.0, le=1.0, description="SVJ dark coupling")
    gen_seed: int = Field(1, ge=0, description="generation seed (same seed: identical files)")

    @field_validator("normalizations")
    @classmethod
    def _check_normalizations(cls, value: str) -> str:
        if value == "pj_custom":
            return value
        steps = value.split("+")
        bad = [s for s in steps if s not in SCALERS]
        if bad:
            raise ValueError(f"unknown scaler {bad[0]!r}; use pj_custom or a '+' chain of "
                             + ", ".join(SCALERS))
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        ok = value in ("auto", "cpu", "cuda", "mps") or (
            value.startswith("cuda:") and value[5:].isdigit())
        if not ok:
            raise ValueError("use auto, cpu, cuda, cuda:N or mps")
        return value

    @field_validator("model_name")
    @classmethod
    def _check_model_name(cls, value: str) -> str:
        return _registered(value, MODEL_PROVIDES, "model")

    @field_validator("loss_function")
    @classmethod
    def _check_loss_function(cls, value: str) -> str:
        return _registered(value, LOSS_REQUIRES, "loss")

    @field_validator("overlay_roc_projects")
    @classmethod
    def _check_overlay_projects(cls, value: list[str]) -> list[str]:
        """Checked here, not only when plotting, so the error names the key and the file."""
        from bead.project import ProjectPaths  # same name rule as -p; project imports config

        for entry in value:
            parts = entry.split("/")
            if len(parts) > 2:
                raise ValueError(f"{entry!r}: use 'workspace/project' (or 'project' for this "
                                 "workspace)")
            # A lone 'project' means this workspace; "ws" stands in to check the project name.
            workspace, project = parts if len(parts) == 2 else ("ws", parts[0])
            try:
                ProjectPaths(Path(), workspace, project)
            except UsageError as err:
                raise ValueError(f"{entry!r}: {err}") from None
        return value

    @field_validator("overlay_roc_save_location")
    @classmethod
    def _check_save_location(cls, value: str) -> str:
        """A folder under output/plots: an absolute path or '..' would write outside it."""
        path = PurePath(value)
        if path.is_absolute() or ".." in path.parts or "\\" in value:
            raise ValueError("use a relative folder under output/plots (no '..', no '\\')")
        return value

    @field_validator("overlay_roc_filename")
    @classmethod
    def _strip_plot_suffix(cls, value: str) -> str:
        """Original configs say 'combined_roc.pdf'; both .pdf and .png are written anyway."""
        base = value
        for suffix in (".pdf", ".png"):
            if base.lower().endswith(suffix):
                base = base[: -len(suffix)]
        if not base.strip():
            raise ValueError("give a file name, e.g. 'combined_roc'")
        return base


def _registered(value: str, registry: Iterable[str], kind: str) -> str:
    """``value`` if it is a registered name, else a ValueError suggesting the closest one."""
    valid = list(registry)
    if value not in valid:
        close = difflib.get_close_matches(value, valid, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown {kind}{hint}; valid: {', '.join(valid)}")
    return value


def _closest(key: str, names: Iterable[str] = ()) -> str:
    """A did-you-mean hint: a misspelt key is the commonest config error."""
    match = difflib.get_close_matches(key, [*Config.model_fields, *names], n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _where(source: str, line: int | None) -> str:
    """``file:line`` when the line is known (legacy files), else ``file``."""
    return f"{source}:{line}" if line else source


def make_config(values: dict[str, Any], source: str = "config",
                lines: Mapping[str, int] | None = None) -> Config:
    """Validate ``values`` into a Config; any problem is a UsageError naming the key.

    ``lines`` maps keys to the line that set them (legacy files), so the error can name it; with
    several problems the one on the earliest line is reported.
    """
    lines = lines or {}
    try:
        config = Config(**values)
    except ValidationError as err:
        first = min(err.errors(), key=lambda e: lines.get(str(e["loc"][0]) if e["loc"] else "", 0))
        key = ".".join(str(p) for p in first["loc"]) or "?"
        where = _where(source, lines.get(str(first["loc"][0])) if first["loc"] else None)
        if first["type"] == "extra_forbidden":
            raise UsageError(f"{where}: unknown key '{key}'{_closest(key)}") from None
        msg = first["msg"].removeprefix("Value error, ")
        raise UsageError(f"{where}: key '{key}': {msg} (got {first.get('input')!r})") from None
    # Checked when the file is loaded, not only at train time. Not in a Config validator: a
    # Config built in code keeps the pair check (and its UsageError) for train.
    try:
        check_compatible(config.model_name, config.loss_function)
    except UsageError as err:
        line = lines.get("loss_function") or lines.get("model_name")
        raise UsageError(f"{_where(source, line)}: {err}") from None
    return config


def _read_text(path: Path) -> str:
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
        values = tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{path}: invalid TOML: {err}") from None
    if not values:  # valid TOML, but more likely truncated than meant
        log.warning("%s: empty config: using every default", path)
    return make_config(values, source=str(path))


def config_to_toml(config: Config) -> str:
    """Every key with its value and a one-line comment, grouped as in the Config class."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment("BEAD project configuration. Data only: it is never executed."))
    for name, field in Config.model_fields.items():
        value = getattr(config, name)
        doc.add(tomlkit.nl())
        doc.add(tomlkit.comment(field.description or name))
        doc.add(name, value)
    return tomlkit.dumps(doc)


def save_config(config: Config, path: Path) -> None:
    atomic_write_text(path, config_to_toml(config))


# Keys of original BEAD configs that are reported and left out, never an error:
# keys with no meaning here (paths and names come from the CLI; ROC per signal is always drawn;
# the test split comes from bkg_test files) ...
LEGACY_UNUSED = ("workspace_name", "project_name", "input_path", "output_path", "data_path",
                 "separate_model_saving", "skip_to_roc", "plot_roc_per_signal", "test_size")
# ... and keys of features of the original that this version does not have.
LEGACY_UNSUPPORTED = (
    "annealing_params", "contrastive_temperature", "contrastive_weight", "ntxent_sigma",
    "plot_test_loss_histogram", "plot_only_test_loss_histogram", "test_loss_histogram_component",
    "efp_mode", "efp_nmax", "efp_dmax", "efp_extended_mode", "efp_beta", "efp_beta_list",
    "efp_measure", "efp_normed", "efp_include_composites", "efp_eps", "efp_embedding_dim",
    "efp_gate_type", "efp_gate_threshold", "efp_dropout_rate", "efp_use_layer_norm",
    "efp_monitor_sparsity", "efp_standardize_meanvar", "efp_cache_dir", "efp_n_jobs",
    "efp_device", "efp_feature_prefix", "efp_use_true_energy",
    "enable_transformer", "transformer_mode", "transformer_d_model", "transformer_n_heads",
    "transformer_n_layers", "transformer_d_ff", "transformer_dropout", "transformer_activation",
    "transformer_norm_first", "transformer_use_class_attention", "transformer_max_jets",
    "transformer_output_dim", "transformer_output_activation",
    "transformer_positional_encoding", "transformer_token_type_embeddings",
    "transformer_gradient_checkpointing", "transformer_attention_dropout",
    "transformer_layer_norm_eps",
)
LEGACY_IGNORED = LEGACY_UNUSED + LEGACY_UNSUPPORTED

# Original keys that are accepted, so configs carry over, but do nothing yet.
NOT_YET_IMPLEMENTED = ("invert_normalizations", "use_ddp", "activation_extraction")


def _root_name(node: ast.expr) -> str | None:
    """The name at the root of ``c.a.b[0]``-like expressions, else None."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _first_key(node: ast.expr) -> str:
    """'a' for ``c.a``, ``c.a.b`` or ``c.a[0]``: the config key a write goes to."""
    key = "?"
    while isinstance(node, ast.Attribute | ast.Subscript):
        if isinstance(node, ast.Attribute):
            key = node.attr
        node = node.value
    return key


def _legacy_assignments(
    tree: ast.Module, path: Path
) -> list[tuple[str, ast.expr | None, int]]:
    """(key, value, line) of every plain ``c.key = value`` in the body of ``set_config(c)`` or
    at module level.

    Any other write to ``c`` (``+=``, an annotation, a ``c.key = ...`` under if/for/while/with/
    try or in another function, ``setattr(c, ...)``) would need running the file to know its
    effect, so it is an error naming its line instead of being dropped or misread. Writes to a
    LEGACY_IGNORED key are returned with no value, whatever their form.
    """
    bodies: list[tuple[list[ast.stmt], str]] = [(tree.body, "c")]
    for stmt in tree.body:
        if (isinstance(stmt, ast.FunctionDef) and stmt.name == "set_config"
                and stmt.args.args):
            bodies.append((stmt.body, stmt.args.args[0].arg))
    roots = {root for _, root in bodies}
    found: list[tuple[str, ast.expr | None, int]] = []
    plain: set[int] = set()
    for body, root in bodies:
        for stmt in body:
            if not isinstance(stmt, ast.Assign):
                continue
            for target in stmt.targets:
                if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                        and target.value.id == root):
                    plain.add(id(target))
                    found.append((target.attr, stmt.value, stmt.lineno))
    bad: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute | ast.Subscript)
                and isinstance(node.ctx, ast.Store | ast.Del) and id(node) not in plain
                and _root_name(node) in roots):
            target, what = node, ("not a plain literal assignment (write c.<key> = <value> "
                                  "directly in set_config)")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and _root_name(node.func) in roots):
            target, what = node.func, "changed by a call; only c.<key> = <value> is read"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("setattr", "delattr") and node.args
              and _root_name(node.args[0]) in roots):
            target, what = node.args[0], (f"{node.func.id}() on the config; only "
                                          "c.<key> = <value> is read")
        else:
            continue
        key = _first_key(target)
        if key in LEGACY_IGNORED:  # left out anyway, however it is written
            found.append((key, None, node.lineno))
        else:
            bad.append((node.lineno, f"key '{key}': {what}"))
    if bad:
        line, msg = min(bad)
        raise UsageError(f"{path}:{line}: {msg}")
    return sorted(found, key=lambda item: item[2])


def read_legacy_config(path: Path) -> tuple[Config, list[str]]:
    """Parse a legacy ``set_config(c)`` file without running it.

    Returns the config and the legacy keys that were deliberately not carried over (see
    LEGACY_IGNORED). Every error names the line: a value that is not a literal, a write to ``c``
    that is not a plain assignment, an unknown key, a bad value.
    """
    text = _read_text(path)
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as err:
        raise UsageError(f"{_where(str(path), err.lineno)}: cannot read legacy config: "
                         f"{err.msg}") from None
    except ValueError as err:  # null bytes, on Python < 3.12
        raise UsageError(f"{path}: cannot read legacy config: {err}") from None
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    ignored: list[str] = []
    for key, node, line in _legacy_assignments(tree, path):
        if key in LEGACY_IGNORED or node is None:  # left out: never evaluated
            if key not in ignored:
                ignored.append(key)
            continue
        if key not in Config.model_fields:
            raise UsageError(f"{path}:{line}: unknown key '{key}'"
                             f"{_closest(key, LEGACY_IGNORED)}")
        try:
            value = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            raise UsageError(f"{path}:{line}: key '{key}': value is not a literal; set it by "
                             "hand in the TOML") from None
        value = list(value) if isinstance(value, tuple) else value
        if key in values and values[key] != value:
            log.warning("%s:%d: key '%s' set again (before: line %d); the last value is used",
                        path, line, key, lines[key])
        values[key] = value
        lines[key] = line
    if not values:
        raise UsageError(f"{path}: no 'c.<key> = <value>' assignments found")
    return make_config(values, source=str(path), lines=lines), ignored
