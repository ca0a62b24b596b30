"""The project configuration: one validated, immutable object (SPEC §3).

Keys keep the original BEAD names so existing users feel at home; every key has one bound and a
one-line description, and cross-field checks (a model/loss pair that fits) run when a file is
loaded, so a chain stops before its first step.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from bead.errors import UsageError
from bead.levels import parse_levels
from bead.losses.catalog import (
    AUGMENTATIONS,
    DEFAULT_AUGMENTATIONS,
    LOSSES,
    augmentation_probabilities,
    check_compatible,
    check_levels,
    loss_entry,
    model_default_loss,
)
from bead.models.catalog import MODELS, check_model_params, model_default_levels
from bead.project import check_name

if TYPE_CHECKING:
    from bead.training.schedule import AnnealEntry

SCALERS = ("minmax", "standard", "robust", "log", "l2", "power", "quantile", "maxabs", "sincos")
_BRANCH = r"^[A-Za-z_][A-Za-z0-9_]*$"  # a ROOT tree or branch name, as NanoAOD/Delphes spell them


class SignalPointEntry(BaseModel):
    """One ``[[gen_signal_points]]`` table; a value left out takes the matching gen_* key."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    zprime_mass: float | None = Field(None, gt=0.0)
    dark_meson_mass: float | None = Field(None, gt=0.0)
    rinv: float | None = Field(None, ge=0.0, le=1.0)
    alpha_dark: float | None = Field(None, gt=0.0, le=1.0)
    decay: Literal["mass_insertion", "democratic"] = "mass_insertion"


class Config(BaseModel):
    """Every setting of a project; defaults give a good result out of the box."""

    # allow_inf_nan=False: ``lr = inf`` passes every gt/ge bound, so it must be refused by type.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, validate_default=True,
                              allow_inf_nan=False)

    # --- data ---
    file_type: Literal["h5", "parquet"] = Field(
        "h5", description="store format written by convert_csv")
    h5_compression: Literal["none", "gzip"] = Field(
        "none", description="HDF5 store compression: none (fastest) or gzip (level 1 + shuffle: "
        "half the size, twice the conversion time)")
    parallel_workers: int = Field(
        2, ge=1, le=256, description="worker processes for generation, CSV conversion and plotting")
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
    input_level: str = Field(
        "event+jet", description="objects the model sees: event, jet, constituent, or several "
        "joined by '+' (event+jet)")
    input_features: Literal["all", "4momentum", "4momentum_btag", "pj_custom"] = Field(
        "all", description="feature set per object")
    seed: int = Field(42, ge=0, description="seed for splits, initialisation and shuffling")

    # --- model and loss ---
    model_name: str = Field("MAF_Density", description="model class (see README for the list)")
    model_init: Literal["xavier", "default"] = Field("xavier", description="weight initialisation")
    latent_space_size: int = Field(12, ge=1, le=1024, description="latent dimension")
    model_params: dict[str, Any] = Field(
        default_factory=dict, description="settings of the chosen model, e.g. {hidden = 256} "
        "(an unknown key lists the model's valid ones; README: Models)")
    loss_function: str = Field("FlowNLLLoss", description="loss class (see README for the list)")
    reg_param: float = Field(1e-3, ge=0.0, description="beta: weight of the KL / flow term")

    # --- contrastive, EMD and regularisation terms, annealing (README: Losses, Annealing) ---
    contrastive_weight: float = Field(
        0.005, ge=0.0, le=1e3, description="weight of the SupCon / NT-Xent term")
    contrastive_temperature: float = Field(
        0.07, ge=1e-3, le=10.0, description="temperature of the SupCon / NT-Xent similarities")
    ntxent_sigma: float = Field(
        0.1, ge=0.0, le=10.0, description="width of the NT-Xent eta/phi and pt smearing, in "
        "scaled feature units (phi: radians)")
    augmentations: dict[str, float] | list[str] = Field(
        default_factory=lambda: dict(DEFAULT_AUGMENTATIONS),
        description="NT-Xent views: {name = probability per view} (a list: probability 1) of "
        + ", ".join(AUGMENTATIONS))
    emd_weight: float = Field(
        1.0, ge=0.0, le=1e3, description="weight of the per-event EMD term (the *EMD losses)")
    l1_weight: float = Field(
        1e-6, ge=0.0, le=1.0, description="weight of sum |theta| (the *L1 losses; the "
        "original applied reg_param twice: 0.001^2)")
    l2_weight: float = Field(
        1e-6, ge=0.0, le=1.0, description="weight of sum theta^2 (the *L2 losses)")
    annealing_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-epoch schedules of the loss's weights, e.g. "
        "{reg_param = {strategy = \"constant_pace\", start_value = 0.0, end_value = 0.001, "
        "total_steps = 10}} (README: Annealing)")

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
    data_mode: Literal["auto", "memory", "stream"] = Field(
        "auto", description="training inputs: all in memory, streamed from disk a few blocks at "
        "a time, or auto (streamed above a quarter of the free memory)")
    weighted_training: bool = Field(
        False, description="weight the training loss by evtwt (needs non-negative weights)")
    intermittent_model_saving: bool = Field(False, description="save a checkpoint periodically")
    intermittent_saving_patience: int = Field(10, ge=1, description="epochs between checkpoints")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    use_amp: bool = Field(
        False, description="mixed precision: bf16 where supported, else fp16 with a gradient "
        "scaler (CUDA); bf16 on CPU")
    use_ddp: bool = Field(
        False, description="distributed data-parallel; on by itself under torchrun, true also "
        "for a single process")
    ddp_timeout_s: float = Field(
        1800.0, ge=10.0, le=604800.0, description="DDP: seconds a rank waits for the others "
        "(also while rank 0 alone runs a chain's other modes)")
    compile: bool = Field(
        False, description="torch.compile the model for training (eager mode if it fails)")
    deterministic_algorithm: bool = Field(False, description="torch deterministic algorithms")
    activation_extraction: bool = Field(
        False, description="save layer activations when scoring (not yet: ignored)")

    # --- evaluation (detect) ---
    holdout_generator: str = Field(
        "", pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9.-]*(\+[A-Za-z0-9][A-Za-z0-9.-]*)*$",
        description="enrichment test: background generator(s) training skips ('+' joins "
        "several); detect measures the cut efficiency on their bkg_test events; empty = off")
    bootstrap_resamples: int = Field(
        100, ge=0, le=100000,
        description="seeded bootstrap resamples for the uncertainties of AUC and eps_s in "
        "metrics.json; 0 = off")

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
    overlay_roc_score: str = Field(
        "", max_length=64,
        description="score drawn per project in the overlay; empty: each one's primary score")

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
    gen_signal_points: list[SignalPointEntry] = Field(
        default_factory=list,
        description="signal grid: a list of {zprime_mass, dark_meson_mass, rinv, alpha_dark, "
        "decay = mass_insertion|democratic} tables, one sig_test file each; values left out "
        "take the gen_* keys above; empty = the single point above")
    gen_seed: int = Field(1, ge=0, description="generation seed (same seed: identical files)")
    dask_scheduler: str = Field(
        "", max_length=512, pattern=r"^((tcp|tls|ucx|ws|wss|inproc)://\S+)?$",
        description="Dask scheduler address (tcp://host:8786) to generate on; empty: local "
        "processes (parallel_workers)")
    dask_timeout_s: float = Field(
        30.0, gt=0.0, le=3600.0, description="seconds to wait for the Dask scheduler to answer")

    # --- ROOT input (convert_root) ---
    root_format: Literal["auto", "delphes", "nanoaod"] = Field(
        "auto", description="ROOT file format: auto (detected from the tree), delphes or nanoaod")
    root_tree: str = Field(
        "auto", min_length=1, pattern=_BRANCH,
        description="tree name; auto: Delphes (Delphes files) or Events (NanoAOD)")
    root_jet_branch: str = Field(
        "auto", min_length=1, pattern=_BRANCH,
        description="jet collection; auto: Jet (Delphes) or FatJet (NanoAOD); e.g. FatJet, Jet")
    root_cands_branch: str = Field(
        "PFCands", min_length=1, pattern=_BRANCH,
        description="NanoAOD constituents, indexed by <jet><cands>_jetIdx / _pFCandsIdx")
    root_met_branch: str = Field(
        "auto", min_length=1, pattern=_BRANCH,
        description="MET; auto: MissingET (Delphes, else -sum of EFlow) or MET; e.g. PuppiMET")
    root_btag_branch: str = Field(
        "auto", min_length=1, pattern=_BRANCH,
        description="jet b-tag field; auto: BTag / btagDDBvLV2 / btagDeepFlavB; none: no b-tag")
    root_btag_wp: float = Field(
        0.5, ge=0.0, description="NanoAOD: b-tagged when the discriminator >= this working point")
    root_btag_bit: int = Field(
        0, ge=0, le=31, description="Delphes: the bit of the BTag bitmask that means b-tagged")
    root_jet_pt_min: float = Field(
        0.0, ge=0.0, description="jets below this pt [GeV] are dropped at conversion (counted)")
    root_jet_eta_max: float = Field(
        0.0, ge=0.0, description="jets above this |eta| are dropped at conversion; 0: no cut")
    root_min_jets: int = Field(
        0, ge=0, le=1000,
        description="events with fewer jets after the jet cuts are dropped (counted)")

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

    @field_validator("input_level")
    @classmethod
    def _check_input_level(cls, value: str) -> str:
        parse_levels(value)
        return value

    @field_validator("model_name")
    @classmethod
    def _check_model_name(cls, value: str) -> str:
        return _registered(value, MODELS, "model")

    @field_validator("loss_function")
    @classmethod
    def _check_loss_function(cls, value: str) -> str:
        return _registered(value, LOSSES, "loss")

    @field_validator("overlay_roc_projects")
    @classmethod
    def _check_overlay_projects(cls, value: list[str]) -> list[str]:
        """Checked here, not only when plotting, so the error names the key and the file."""
        for entry in value:
            parts = entry.split("/")
            if len(parts) > 2:
                raise ValueError(f"{entry!r}: use 'workspace/project' (or 'project' for this "
                                 "workspace)")
            # A lone 'project' means this workspace; "ws" stands in to check the project name.
            workspace, project = parts if len(parts) == 2 else ("ws", parts[0])
            try:
                check_name("workspace", workspace)
                check_name("project", project)
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

    @model_validator(mode="after")
    def _check_generation(self) -> Config:
        """The generation settings as a whole (say, a Z' too light for its dark mesons), so a
        bad signal point is a config error when the file is loaded, not when generate runs."""
        from bead.generate.settings import GenerationSettings  # torch-free

        try:
            GenerationSettings.from_config(self)
        except UsageError as err:
            raise ValueError(str(err)) from None
        return self


def _registered(value: str, registry: Iterable[str], kind: str) -> str:
    """``value`` if it is a registered name, else a ValueError suggesting the closest one."""
    valid = list(registry)
    if value not in valid:
        close = difflib.get_close_matches(value, valid, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown {kind}{hint}; valid: {', '.join(valid)}")
    return value


def annealing_entries(config: Config) -> list[AnnealEntry]:
    """``annealing_params`` checked against the loss and the bounds of each target key; a
    UsageError names the entry."""
    from bead.training.schedule import parse_annealing  # torch-free

    return parse_annealing(config.annealing_params, config.loss_function,
                           loss_entry(config.loss_function).weight_keys, config.epochs,
                           config.lr_scheduler, _check_bounds)


def _check_bounds(key: str, value: float) -> None:
    """ValueError when ``value`` is outside the bounds of the Config field ``key``."""
    field = Config.model_fields[key]
    try:
        TypeAdapter(Annotated[(float, *field.metadata)]).validate_python(value)
    except ValidationError as err:
        raise ValueError(err.errors()[0]["msg"]) from None


def closest(key: str, names: Iterable[str] = ()) -> str:
    """A did-you-mean hint: a misspelt key is the commonest config error."""
    match = difflib.get_close_matches(key, [*Config.model_fields, *names], n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def where(source: str, line: int | None) -> str:
    """``file:line`` when the line is known (legacy files), else ``file``."""
    return f"{source}:{line}" if line else source


def _follow_the_model(values: dict[str, Any]) -> dict[str, Any]:
    """A config that names a model but not its loss or input level gets the model's own
    defaults, not the default model's (which may not fit it)."""
    model = values.get("model_name")
    if not isinstance(model, str) or model not in MODELS:
        return values
    return {"loss_function": model_default_loss(model),
            "input_level": model_default_levels(model), **values}


def make_config(values: dict[str, Any], source: str = "config",
                lines: Mapping[str, int] | None = None) -> Config:
    """Validate ``values`` into a Config; any problem is a UsageError naming the key.

    ``lines`` maps keys to the line that set them (legacy files), so the error can name it; with
    several problems the one on the earliest line is reported.
    """
    lines = lines or {}
    values = _follow_the_model(values)
    try:
        config = Config(**values)
    except ValidationError as err:
        first = min(err.errors(), key=lambda e: lines.get(str(e["loc"][0]) if e["loc"] else "", 0))
        key = ".".join(str(p) for p in first["loc"]) or "?"
        place = where(source, lines.get(str(first["loc"][0])) if first["loc"] else None)
        if not first["loc"]:  # a check of the whole config: its message names the keys
            raise UsageError(f"{place}: {first['msg'].removeprefix('Value error, ')}") from None
        if first["type"] == "extra_forbidden":
            raise UsageError(f"{place}: unknown key '{key}'{closest(key)}") from None
        msg = first["msg"].removeprefix("Value error, ")
        raise UsageError(f"{place}: key '{key}': {msg} (got {first.get('input')!r})") from None
    # Checked when the file is loaded, not only at train time. Not in a Config validator: a
    # Config built in code keeps the pair check (and its UsageError) for train.
    checks = (
        (("loss_function", "model_name"),
         lambda: check_compatible(config.model_name, config.loss_function)),
        (("input_level", "model_name"), lambda: check_levels(
            config.model_name, parse_levels(config.input_level), config.input_level)),
        (("model_params", "model_name"),
         lambda: check_model_params(config.model_name, config.model_params)),
        (("augmentations",), lambda: augmentation_probabilities(config.augmentations)),
        (("annealing_params", "loss_function"), lambda: annealing_entries(config)),
    )
    for keys, check in checks:
        try:
            check()
        except UsageError as err:
            line = next((lines[k] for k in keys if k in lines), None)
            raise UsageError(f"{where(source, line)}: {err}") from None
    return config
