"""What training leaves in ``models/`` (model.json, best.pt, last.pt, epoch_<n>.pt) and how
later modes rebuild a trained model from it. Files are torch state dicts of plain types, so they
load with ``weights_only=True``; every write is atomic."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bead.config import Config
from bead.errors import DataError
from bead.fileio import atomic_path, atomic_write_json
from bead.levels import Layout, LevelLayout, layout_from_json, layout_to_json, parse_levels
from bead.losses.catalog import augmentation_probabilities, loss_entry
from bead.losses.objective import Objective
from bead.models.base import BeadModel
from bead.models.catalog import check_model_params
from bead.models.registry import build_model

MODEL_JSON = "model.json"
BEST = "best.pt"
LAST = "last.pt"


def epoch_file(epoch: int) -> str:
    return f"epoch_{epoch}.pt"


SPEC_VERSION = 2
# Config keys an objective's term weights and settings are read from (bead.losses.catalog:
# TERM_WEIGHTS, TERM_SETTINGS).
WEIGHT_KEYS = ("reg_param", "contrastive_weight", "contrastive_temperature", "ntxent_sigma",
               "emd_weight", "l1_weight", "l2_weight")


@dataclass(frozen=True)
class ModelSpec:
    """Enough to rebuild the trained model exactly and the objective it was trained with."""

    model_name: str
    levels: tuple[str, ...]
    layout: dict[str, LevelLayout]
    latent_dim: int
    model_params: dict[str, Any]
    loss_function: str
    weights: dict[str, float]
    model_init: str
    scalers_sha256: str  # the preparation (manifest.json) the model was trained on
    prepared_key: str = ""  # the folder of that preparation under data/h5/tensors/processed
    holdout_generator: str = ""  # generators training skipped (the enrichment test)
    # NT-Xent views: augmentation -> probability (empty for losses without views)
    augmentations: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config, layout: Layout, scalers_sha256: str,
                    prepared_key: str = "") -> ModelSpec:
        levels = parse_levels(config.input_level)
        return cls(model_name=config.model_name, levels=levels,
                   layout={lv: layout[lv] for lv in levels},
                   latent_dim=config.latent_space_size,
                   model_params=check_model_params(config.model_name, config.model_params),
                   loss_function=config.loss_function,
                   weights={k: float(getattr(config, k)) for k in WEIGHT_KEYS},
                   model_init=config.model_init, scalers_sha256=scalers_sha256,
                   prepared_key=prepared_key, holdout_generator=config.holdout_generator,
                   augmentations=(augmentation_probabilities(config.augmentations)
                                  if loss_entry(config.loss_function).uses_views else {}))

    def build(self) -> BeadModel:
        return build_model(self.model_name, self.layout, self.levels, self.latent_dim,
                           self.model_params, self.model_init)

    def objective(self) -> Objective:
        return Objective(self.loss_function, self.weights, self.augmentations, self.layout)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["levels"] = list(self.levels)
        data["layout"] = layout_to_json(self.layout)
        return {"version": SPEC_VERSION, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSpec:
        if data.get("version") != SPEC_VERSION:
            raise ValueError(f"model description version {data.get('version')!r} is not "
                             f"{SPEC_VERSION} (trained by an older bead: train again)")
        values = {k: v for k, v in data.items() if k != "version"}
        values["levels"] = tuple(values["levels"])
        values["layout"] = layout_from_json(values["layout"])
        return cls(**values)

    def changed(self, other: ModelSpec) -> list[str]:
        """The fields in which ``other`` differs from this spec."""
        mine, theirs = self.to_json(), other.to_json()
        return [k for k in mine if mine[k] != theirs.get(k)]


def write_model_spec(models_dir: Path, spec: ModelSpec) -> None:
    atomic_write_json(Path(models_dir) / MODEL_JSON, spec.to_json())


def read_model_spec(models_dir: Path) -> ModelSpec:
    """The spec in ``model.json``; DataError when there is no (valid) trained model."""
    path = Path(models_dir) / MODEL_JSON
    if not path.is_file():
        raise DataError(f"{path}: no trained model found (run train first)")
    try:
        return ModelSpec.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError) as err:
        raise DataError(f"{path}: malformed model description: {err}") from None


def save_torch(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: Path, device: torch.device | str = "cpu") -> Any:
    """Load a checkpoint safely (``weights_only``); a damaged file is a DataError."""
    if not Path(path).is_file():
        raise DataError(f"{path}: checkpoint not found (run train first)")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises several types for damaged or unsafe files
        raise DataError(f"{path}: cannot load checkpoint: {err}") from None


def clone_state(model: torch.nn.Module) -> dict[str, Tensor]:
    """A detached copy of the model's weights, to keep the best epoch's state in memory."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def load_trained_model(models_dir: Path, device: torch.device) -> tuple[BeadModel, ModelSpec]:
    """Rebuild the model of ``model.json`` with the weights of ``best.pt``, in eval mode."""
    spec = read_model_spec(models_dir)
    model = spec.build()
    state = load_torch(Path(models_dir) / BEST, device="cpu")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise DataError(f"{Path(models_dir) / BEST}: weights do not fit {MODEL_JSON} "
                        f"({str(err).splitlines()[0]})") from None
    return model.to(device).eval(), spec
