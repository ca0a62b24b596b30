"""Every ``model_name`` a config may give, declared once (DESIGN rule 1), free of torch.

An entry is a recipe: the lazily imported class that builds it, its family, its body (the
encoder/decoder pair), its latent flow, the input levels it reads and the defaults of its
``[model_params]``. What a model provides to a loss is derived from the recipe, never listed
twice; a test builds every entry and checks its real output against ``provides``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bead.errors import UsageError
from bead.levels import parse_levels

_AUTOENCODER = "bead.models.autoencoder:Autoencoder"
_DENSITY = "bead.models.density:FlowDensity"

# Model settings each body and flow understands, with their defaults.
_CONV = {"channels": [32, 16], "hidden": 128}
_MLP = {"hidden": [128, 64]}
_SETS = {"hidden": 64, "slot_embedding": 16}
_MULTI = {"hidden": 128, "set_hidden": 64, "slot_embedding": 16}
_PLANAR = {"num_flows": 6}
_MLP_BN = {"hidden": [200, 100, 50], "batch_norm": True, "dropout": [0.5, 0.4, 0.3, 0.2]}
_TRANSFORMER = {"d_model": 32, "heads": 4, "layers": 2, "dropout": 0.1}
_ORTHOGONAL = {"num_flows": 4, "num_ortho_vecs": 5}
_HOUSEHOLDER = {"num_flows": 4, "num_householder": 8}
_TRIANGULAR = {"num_flows": 4}
_IAF = {"num_flows": 4, "flow_hidden": [60, 60], "forget_bias": 1.0}
_CONVFLOW = {"num_flows": 4, "kernel_size": 7}
_NSF_AR = {"num_flows": 4, "bins": 8, "flow_hidden": [64, 64]}
_DENSITY_PARAMS = {"transforms": 4, "hidden_features": [128, 128], "noise": 0.05,
                   "drop_angles": True}


# Bodies whose decoder also predicts, per slot, the logit of it being a real object.
OCCUPANCY_BODIES = frozenset({"multi", "particle_transformer"})
POSTERIORS = ("gaussian", "dirichlet")


def _frozen(*parts: Mapping[str, Any]) -> Mapping[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(part)
    return MappingProxyType(merged)


@dataclass(frozen=True)
class ModelEntry:
    """The recipe of one ``model_name``.

    ``levels``: ``"single"`` (exactly one input level, any), ``"any"`` (one or several), or an
    explicit ``+`` list of the levels the model can read (a subset of them, at least one).
    """

    target: str
    family: str  # "ae" | "vae" | "density"
    summary: str
    body: str | None = None  # "mlp" | "conv" | "deepsets" | "multi" | "transformer" | ...
    flow: str | None = None  # a latent flow kind (bead.models.flows), VAE family only
    levels: str = "single"
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    posterior: str = "gaussian"  # VAE family: "gaussian" | "dirichlet" (Laplace bridge)

    def __post_init__(self) -> None:
        if self.posterior not in POSTERIORS or (self.posterior != "gaussian"
                                                and self.family != "vae"):
            raise ValueError(f"posterior {self.posterior!r} needs the vae family and one of "
                             f"{', '.join(POSTERIORS)}")

    @property
    def provides(self) -> frozenset[str]:
        """The ModelOutput parts this model fills."""
        if self.family == "density":
            return frozenset({"log_prob", "zk"})  # zk: the event in the base space
        parts = {"recon", "zk"}
        if self.family == "vae":
            parts |= {"mu", "logvar", "z0"}
        if self.posterior == "dirichlet":
            parts.add("alpha")
        if self.flow is not None:
            parts.add("ldj")
        if self.body in OCCUPANCY_BODIES:
            parts.add("occupancy")
        return frozenset(parts)

    def accepts(self, levels: tuple[str, ...]) -> bool:
        if self.levels == "single":
            return len(levels) == 1
        if self.levels == "any":
            return len(levels) >= 1
        return bool(levels) and set(levels) <= set(self.levels.split("+"))

    def describe_levels(self) -> str:
        return {"single": "exactly one input level",
                "any": "any input levels"}.get(self.levels, f"levels within {self.levels}")


MODELS: Mapping[str, ModelEntry] = MappingProxyType({
    "AE": ModelEntry(
        _AUTOENCODER, "ae", "dense autoencoder on the masked, flattened set", body="mlp",
        params=_frozen(_MLP)),
    "ConvAE": ModelEntry(
        _AUTOENCODER, "ae", "convolutional autoencoder over the slots x features image",
        body="conv", params=_frozen(_CONV)),
    "ConvVAE": ModelEntry(
        _AUTOENCODER, "vae", "convolutional VAE (diagonal Gaussian posterior)", body="conv",
        params=_frozen(_CONV)),
    "Planar_ConvVAE": ModelEntry(
        _AUTOENCODER, "vae", "ConvVAE + planar flows on the latent", body="conv",
        flow="planar", params=_frozen(_CONV, _PLANAR)),
    "DeepSetsVAE": ModelEntry(
        _AUTOENCODER, "vae", "permutation-invariant masked set encoder (mean + max pooling)",
        body="deepsets", params=_frozen(_SETS)),
    "SetVAE": ModelEntry(
        _AUTOENCODER, "vae", "multi-level VAE: event MLP + masked set encoders per level, "
        "reconstructs every level and its multiplicity", body="multi", levels="any",
        params=_frozen(_MULTI)),
    "AE_Dropout_BN": ModelEntry(
        _AUTOENCODER, "ae", "AE with BatchNorm after every hidden layer (own modules in encoder "
        "and decoder) and dropout 0.5/0.4/0.3 after the encoder layers, 0.2 on the code",
        body="mlp", params=_frozen(_MLP_BN)),
    "Dirichlet_ConvVAE": ModelEntry(
        _AUTOENCODER, "vae", "ConvVAE whose decoder reads softmax(z): a Dirichlet posterior "
        "through the Laplace bridge of the Gaussian (alpha)", body="conv",
        posterior="dirichlet", params=_frozen(_CONV)),
    "OrthogonalSylvester_ConvVAE": ModelEntry(
        _AUTOENCODER, "vae", "ConvVAE + orthogonal Sylvester flows (M orthonormal vectors)",
        body="conv", flow="orthogonal_sylvester", params=_frozen(_CONV, _ORTHOGONAL)),
    "HouseholderSylvester_ConvVAE": ModelEntry(
        _AUTOENCODER, "vae", "ConvVAE + Householder Sylvester flows", body="conv",
        flow="householder_sylvester", params=_frozen(_CONV, _HOUSEHOLDER)),
    "TriangularSylvester_ConvVAE": ModelEntry(
        _AUTOENCODER, "vae", "ConvVAE + triangular Sylvester flows", body="conv",
        flow="triangular_sylvester", params=_frozen(_CONV, _TRIANGULAR)),
    "IAF_ConvVAE": ModelEntry(
        _AUTOENCODER, "vae", "ConvVAE + inverse autoregressive flows", body="conv",
        flow="iaf", params=_frozen(_CONV, _IAF)),
    "ConvFlow_ConvVAE": ModelEntry(
        _AUTOENCODER, "vae", "ConvVAE + convolutional flows (dilated 1-D convolutions over the "
        "latent)", body="conv", flow="convflow", params=_frozen(_CONV, _CONVFLOW)),
    "NSFAR_ConvVAE": ModelEntry(
        _AUTOENCODER, "vae", "ConvVAE + autoregressive rational-quadratic spline flows (zuko)",
        body="conv", flow="nsf_ar", params=_frozen(_CONV, _NSF_AR)),
    "TransformerAE": ModelEntry(
        _AUTOENCODER, "ae", "pre-norm transformer encoder over the slots (slot positions "
        "embedded, padding masked), pooled to the code; slot-query transformer decoder",
        body="transformer", params=_frozen(_TRANSFORMER)),
    "ParticleTransformerAE": ModelEntry(
        _AUTOENCODER, "ae", "permutation-invariant masked particle transformer (masked mean + "
        "learned-query attention pooling); order-free set decoder with occupancy",
        body="particle_transformer", params=_frozen(_TRANSFORMER)),
    "ParticleTransformerVAE": ModelEntry(
        _AUTOENCODER, "vae", "VAE form of ParticleTransformerAE", body="particle_transformer",
        params=_frozen(_TRANSFORMER)),
    "MAF_Density": ModelEntry(
        _DENSITY, "density", "masked autoregressive flow density of event + jet features, "
        "scored by -log p(x)", levels="event+jet", params=_frozen(_DENSITY_PARAMS, {
            "kind": "maf"})),
    "NSF_Density": ModelEntry(
        _DENSITY, "density", "neural spline flow density of event + jet features, scored by "
        "-log p(x)", levels="event+jet", params=_frozen(_DENSITY_PARAMS, {
            "kind": "nsf", "bins": 8})),
})


def model_entry(name: str) -> ModelEntry:
    """The entry of ``name``; a UsageError naming ``model_name`` (with a did-you-mean) if none."""
    if name not in MODELS:
        raise unknown_name_error("model_name", name, list(MODELS))
    return MODELS[name]


def unknown_name_error(key: str, name: str, valid: list[str]) -> UsageError:
    """A usage error for a name that is not declared, suggesting the closest one."""
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return UsageError(f"{key} = '{name}' is unknown{hint}; valid: {', '.join(valid)}")


def check_model_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The model's settings with ``params`` applied; an unknown key or a value of the wrong
    type is a UsageError listing that model's valid keys."""
    defaults = model_entry(name).params
    unknown = [k for k in params if k not in defaults]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(defaults), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UsageError(f"model_params.{unknown[0]}: not a setting of {name}{hint}; valid: "
                         + (", ".join(defaults) or "none"))
    merged = dict(defaults)
    for key, value in params.items():
        if not _same_type(defaults[key], value):
            raise UsageError(f"model_params.{key} = {value!r}: {name} expects "
                             f"{type(defaults[key]).__name__} like {defaults[key]!r}")
        merged[key] = list(value) if isinstance(value, tuple) else value
    return merged


def _same_type(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, list | tuple):
        return (isinstance(value, list | tuple) and len(value) > 0
                and all(_same_type(default[0], v) for v in value))
    return isinstance(value, type(default))


# The levels a model reads when the config names the model but no input_level, richest first.
PREFERRED_LEVELS = ("event+jet", "jet", "constituent", "event")


def model_default_levels(model: str) -> str:
    """``model``'s own default ``input_level``: the first of PREFERRED_LEVELS it reads."""
    entry = model_entry(model)
    return next(text for text in PREFERRED_LEVELS if entry.accepts(parse_levels(text)))
