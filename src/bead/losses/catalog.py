"""Every ``loss_function`` a config may give, declared once (DESIGN rule 1), free of torch.

A loss is a weighted sum of named terms (``bead.losses.terms``); its entry lists the terms,
and what it requires of a model is derived from them, so a model/loss pair is checked when the
config loads. ``primary_score`` names the per-event component a user should cut on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from bead.errors import UsageError
from bead.models.catalog import MODELS, model_entry, unknown_name_error

# The ModelOutput parts each term cannot do without.
TERM_REQUIRES: Mapping[str, frozenset[str]] = MappingProxyType({
    "reco": frozenset({"recon"}),
    "kl": frozenset({"mu", "logvar"}),
    "flow_kl": frozenset({"mu", "logvar", "z0"}),
    "nll": frozenset({"log_prob"}),
    "dirichlet_kl": frozenset({"alpha"}),
    "dirichlet_flow_kl": frozenset({"alpha", "mu", "logvar", "z0"}),
    "chamfer": frozenset({"recon", "occupancy"}),
    "sinkhorn": frozenset({"recon", "occupancy"}),
})
# The config key that weighs each term in the total (None: weight 1).
TERM_WEIGHTS: Mapping[str, str | None] = MappingProxyType({
    "reco": None, "kl": "reg_param", "flow_kl": "reg_param", "nll": None,
    "dirichlet_kl": "reg_param", "dirichlet_flow_kl": "reg_param",
    "chamfer": None, "sinkhorn": None,
})


@dataclass(frozen=True)
class LossEntry:
    summary: str
    terms: tuple[str, ...]
    primary_score: str = "total"

    @property
    def requires(self) -> frozenset[str]:
        return frozenset().union(*(TERM_REQUIRES[t] for t in self.terms))


LOSSES: Mapping[str, LossEntry] = MappingProxyType({
    "AELoss": LossEntry("reconstruction only (masked MSE)", ("reco",)),
    "ReconstructionLoss": LossEntry("the original's name for AELoss", ("reco",)),
    "VAELoss": LossEntry("reco + beta * closed-form KL to N(0, 1)", ("reco", "kl")),
    "VAEFlowLoss": LossEntry("reco + beta * flow ELBO KL (log q0 - sum log|det J| - log p)",
                             ("reco", "flow_kl")),
    "FlowNLLLoss": LossEntry("negative log-likelihood of a density model", ("nll",),
                             primary_score="nll"),
    "DVAELoss": LossEntry("Dirichlet VAE: reco + beta * closed-form KL(Dir(alpha) || Dir(5)) "
                          "of the Laplace-bridge posterior", ("reco", "dirichlet_kl")),
    "DVAEFlowLoss": LossEntry(
        "Dirichlet VAE flow ELBO on the logits: reco + beta * (log q0 - sum log|det J| - log "
        "p(zK)), p = N(0, (1 - 1/K)/5) the Laplace bridge of Dir(5); without a flow a "
        "one-sample KL in the softmax basis", ("reco", "dirichlet_flow_kl")),
    "ChamferLoss": LossEntry("order-free set reconstruction: masked Chamfer distance + "
                             "multiplicity cross-entropy (set decoders)", ("chamfer",)),
    "SinkhornLoss": LossEntry("order-free set reconstruction: Sinkhorn optimal-transport "
                              "distance (geomloss) + multiplicity (set decoders)",
                              ("sinkhorn",)),
    "VAEChamferLoss": LossEntry("ChamferLoss + beta * closed-form KL", ("chamfer", "kl")),
    "VAESinkhornLoss": LossEntry("SinkhornLoss + beta * closed-form KL", ("sinkhorn", "kl")),
})


def loss_entry(name: str) -> LossEntry:
    if name not in LOSSES:
        raise unknown_name_error("loss_function", name, list(LOSSES))
    return LOSSES[name]


def compatible(model_name: str, loss_name: str) -> bool:
    """Whether the model produces every output part the loss needs."""
    return loss_entry(loss_name).requires <= model_entry(model_name).provides


def check_compatible(model_name: str, loss_name: str) -> None:
    """UsageError naming both config values when the pair cannot work together."""
    if not compatible(model_name, loss_name):
        fits = [name for name in LOSSES if compatible(model_name, name)]
        missing = sorted(loss_entry(loss_name).requires - model_entry(model_name).provides)
        raise UsageError(
            f"model_name = '{model_name}' cannot be used with loss_function = '{loss_name}' "
            f"(it does not produce {', '.join(missing)}); losses that fit it: {', '.join(fits)}"
        )


def check_levels(model_name: str, levels: tuple[str, ...], input_level: str) -> None:
    """UsageError naming both keys when the model cannot read the requested levels."""
    entry = model_entry(model_name)
    if not entry.accepts(levels):
        fits = [n for n, e in MODELS.items() if e.accepts(levels)]
        raise UsageError(
            f"model_name = '{model_name}' cannot read input_level = '{input_level}' (it reads "
            f"{entry.describe_levels()}); models that read it: {', '.join(fits) or 'none'}")
