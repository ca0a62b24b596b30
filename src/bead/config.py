"""The project configuration: one validated, immutable object, stored as TOML (SPEC §3).

Keys keep the original BEAD names so existing users feel at home. The TOML file is data, never
executed; a legacy ``<proj>_config.py`` is converted by reading its literal assignments.
"""

from __future__ import annotations

import ast
import difflib
import sys
from pathlib import Path
from typing import Any, Literal

import tomlkit
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bead.errors import UsageError
from bead.fileio import atomic_write_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SCALERS = ("minmax", "standard", "robust", "log", "l2", "power", "quantile", "maxabs", "sincos")


class Config(BaseModel):
    """Every setting of a project; defaults give a good result out of the box."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, validate_default=True)

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
    overlay_roc_filename: str = Field("combined_roc", description="overlay file name (no suffix)")

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


def _closest(key: str) -> str:
    match = difflib.get_close_matches(key, list(Config.model_fields), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def make_config(values: dict[str, Any], source: str = "config") -> Config:
    """Validate ``values`` into a Config; any problem is a UsageError naming the key."""
    try:
        return Config(**values)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "?"
        if first["type"] == "extra_forbidden":
            raise UsageError(f"{source}: unknown key '{key}'{_closest(key)}") from None
        msg = first["msg"].removeprefix("Value error, ")
        raise UsageError(f"{source}: key '{key}': {msg} (got {first.get('input')!r})") from None


def load_config(path: Path) -> Config:
    """Read and validate a project TOML file."""
    if not path.is_file():
        raise UsageError(f"{path}: config file not found (run new_project first)")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{path}: invalid TOML: {err}") from None
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


# Keys of legacy configs that have no meaning here (paths and names now come from the CLI),
# and legacy keys of features this version does not implement yet. Both are reported, not kept.
# Original keys that are accepted, so configs carry over, but do nothing yet.
NOT_YET_IMPLEMENTED = ("invert_normalizations", "use_ddp", "activation_extraction")

LEGACY_IGNORED = ("workspace_name", "project_name", "input_path", "separate_model_saving",
                  "output_path", "data_path", "annealing_params", "contrastive_temperature",
                  "contrastive_weight", "ntxent_sigma", "efp_nmax", "efp_dmax", "efp_beta",
                  "efp_measure", "efp_normed", "efp_include_composites")


def read_legacy_config(path: Path) -> tuple[Config, list[str]]:
    """Parse a legacy ``set_config(c)`` file without running it.

    Returns the config and the legacy keys that were deliberately not carried over. Any
    assignment whose value is not a literal is an error naming its line.
    """
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError) as err:
        raise UsageError(f"{path}: cannot read legacy config: {err}") from None
    values: dict[str, Any] = {}
    ignored: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                    and target.value.id == "c"):
                continue
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                raise UsageError(f"{path}:{node.lineno}: key '{target.attr}': value is not a "
                                 "literal; set it by hand in the TOML") from None
            if target.attr in LEGACY_IGNORED:
                ignored.append(target.attr)
            else:
                values[target.attr] = list(value) if isinstance(value, tuple) else value
    if not values:
        raise UsageError(f"{path}: no 'c.<key> = <value>' assignments found")
    return make_config(values, source=str(path)), ignored
