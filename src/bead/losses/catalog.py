"""Every ``loss_function`` a config may give, declared once (DESIGN rule 1), free of torch.

A loss is a weighted sum of named terms (``bead.losses.objective``); its entry lists the terms,
and what it requires of a model is derived from them, so a model/loss pair is checked when the
config loads. ``primary_score`` names the per-event component a user should cut on.

Most terms are per event, and so also anomaly scores. Batch-level terms (``BATCH_TERMS``: the
contrastive terms, which compare the events of a batch with each other, and the parameter
norms, which do not depend on the event at all) are training terms only: they add to the loss
and to the history, never to the scores. The names of the CRVSTAL augmentations live here too,
so the config can check them without torch.
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
    # contrastive, EMD and parameter-norm terms
    "supcon": frozenset({"zk"}),
    "ntxent": frozenset({"zk"}),
    "emd": frozenset({"recon"}),
    "l1": frozenset(),
    "l2": frozenset(),
})
# The config key that weighs each term in the total (None: weight 1).
TERM_WEIGHTS: Mapping[str, str | None] = MappingProxyType({
    "reco": None, "kl": "reg_param", "flow_kl": "reg_param", "nll": None,
    "dirichlet_kl": "reg_param", "dirichlet_flow_kl": "reg_param",
    "chamfer": None, "sinkhorn": None,
    "supcon": "contrastive_weight", "ntxent": "contrastive_weight", "emd": "emd_weight",
    "l1": "l1_weight", "l2": "l2_weight",
})
# Config keys a term reads at every step besides its weight (so schedules may anneal them too).
TERM_SETTINGS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "supcon": ("contrastive_temperature",),
    "ntxent": ("contrastive_temperature", "ntxent_sigma"),
})
# Terms with one value per batch, not per event: training terms, never scores.
BATCH_TERMS = frozenset({"supcon", "ntxent", "l1", "l2"})
# Terms that contrast augmented views of each event (they need ``augmentations``).
VIEW_TERMS = frozenset({"ntxent"})

# The CRVSTAL augmentations (bead.losses.views), in the order they are applied.
AUGMENTATIONS: Mapping[str, str] = MappingProxyType({
    "rotate_phi": "one random rotation in phi of the whole event (every phi sin/cos pair)",
    "smear_eta_phi": "Gaussian eta/phi smearing of every object, width ntxent_sigma",
    "smear_pt": "Gaussian smearing of every scaled pt, width ntxent_sigma",
    "drop_soft": "each constituent of the softer half of the event dropped with probability 1/2",
    "split_collinear": "one random constituent split in two at the same position",
})
# The config's default: every symmetry and resolution effect, the set changes on half the views.
DEFAULT_AUGMENTATIONS: Mapping[str, float] = MappingProxyType({
    "rotate_phi": 1.0, "smear_eta_phi": 1.0, "smear_pt": 1.0, "drop_soft": 0.5,
    "split_collinear": 0.5,
})


@dataclass(frozen=True)
class LossEntry:
    summary: str
    terms: tuple[str, ...]
    primary_score: str = "total"

    @property
    def requires(self) -> frozenset[str]:
        return frozenset().union(*(TERM_REQUIRES[t] for t in self.terms))

    @property
    def weight_keys(self) -> tuple[str, ...]:
        """The config keys this loss reads at every step (term weights and term settings):
        what an ``annealing_params`` entry may target."""
        keys = [TERM_WEIGHTS[t] for t in self.terms] + [
            k for t in self.terms for k in TERM_SETTINGS.get(t, ())]
        return tuple(dict.fromkeys(k for k in keys if k is not None))

    @property
    def score_terms(self) -> tuple[str, ...]:
        return tuple(t for t in self.terms if t not in BATCH_TERMS)

    @property
    def batch_terms(self) -> tuple[str, ...]:
        return tuple(t for t in self.terms if t in BATCH_TERMS)

    @property
    def uses_views(self) -> bool:
        return any(t in VIEW_TERMS for t in self.terms)


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
    # supervised contrastive (CRVSTAL) on the generator labels
    "VAESupConLoss": LossEntry("VAELoss + w * SupCon of the latents on the generator labels",
                               ("reco", "kl", "supcon")),
    "VAEFlowSupConLoss": LossEntry("VAEFlowLoss + w * SupCon of the latents on the generator "
                                   "labels", ("reco", "flow_kl", "supcon")),
    # NT-Xent between two augmented views of each event (CRVSTAL)
    "NTXentVAELoss": LossEntry("VAELoss + w * NT-Xent between two augmented views",
                               ("reco", "kl", "ntxent")),
    "NTXentVAEFlowLoss": LossEntry("VAEFlowLoss + w * NT-Xent between two augmented views",
                                   ("reco", "flow_kl", "ntxent")),
    "NTXentDVAELoss": LossEntry("DVAELoss + w * NT-Xent between two augmented views",
                                ("reco", "dirichlet_kl", "ntxent")),
    "NTXentDVAEFlowLoss": LossEntry("DVAEFlowLoss + w * NT-Xent between two augmented views",
                                    ("reco", "dirichlet_flow_kl", "ntxent")),
    # per-event EMD, parameter L1 / L2
    "VAELossEMD": LossEntry("VAELoss + emd_weight * per-event 1-D EMD of every feature",
                            ("reco", "kl", "emd")),
    "VAELossL1": LossEntry("VAELoss + l1_weight * sum |theta|", ("reco", "kl", "l1")),
    "VAELossL2": LossEntry("VAELoss + l2_weight * sum theta^2", ("reco", "kl", "l2")),
    "VAEFlowLossEMD": LossEntry("VAEFlowLoss + emd_weight * per-event 1-D EMD of every feature",
                                ("reco", "flow_kl", "emd")),
    "VAEFlowLossL1": LossEntry("VAEFlowLoss + l1_weight * sum |theta|", ("reco", "flow_kl", "l1")),
    "VAEFlowLossL2": LossEntry("VAEFlowLoss + l2_weight * sum theta^2",
                               ("reco", "flow_kl", "l2")),
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
        provides = model_entry(model_name).provides
        why = "; ".join(
            f"its {t} term needs {', '.join(sorted(TERM_REQUIRES[t] - provides))}"
            for t in loss_entry(loss_name).terms if TERM_REQUIRES[t] - provides)
        raise UsageError(
            f"model_name = '{model_name}' cannot be used with loss_function = '{loss_name}' "
            f"({why}, which the model does not produce); losses that fit it: {', '.join(fits)}"
        )


def augmentation_probabilities(value: Mapping[str, float] | list[str]) -> dict[str, float]:
    """``augmentations`` as {name: probability per event and view}, in the order they are
    applied: a list means probability 1 each. An unknown name or a probability outside (0, 1]
    is a UsageError (with a did-you-mean)."""
    given = dict.fromkeys(value, 1.0) if isinstance(value, list) else dict(value)
    for name, p in given.items():
        if name not in AUGMENTATIONS:
            raise unknown_name_error("augmentations", name, list(AUGMENTATIONS))
        if not 0.0 < p <= 1.0:
            raise UsageError(f"augmentations.{name} = {p!r}: give the probability that a view "
                             "of an event gets it, in (0, 1]")
    return {name: float(given[name]) for name in AUGMENTATIONS if name in given}


def check_levels(model_name: str, levels: tuple[str, ...], input_level: str) -> None:
    """UsageError naming both keys when the model cannot read the requested levels."""
    entry = model_entry(model_name)
    if not entry.accepts(levels):
        fits = [n for n, e in MODELS.items() if e.accepts(levels)]
        raise UsageError(
            f"model_name = '{model_name}' cannot read input_level = '{input_level}' (it reads "
            f"{entry.describe_levels()}); models that read it: {', '.join(fits) or 'none'}")



def model_default_loss(model: str) -> str:
    """The loss a model gets when the config names the model but no loss: its family's own
    objective (a density's likelihood, a flow VAE's ELBO, the Dirichlet KL, an order-free set
    loss for a set decoder, else the Gaussian ELBO or plain reconstruction)."""
    entry = model_entry(model)
    if entry.family == "density":
        return "FlowNLLLoss"
    vae = entry.family == "vae"
    if entry.posterior == "dirichlet":
        return "DVAEFlowLoss" if entry.flow else "DVAELoss"
    if entry.body == "particle_transformer":
        return "VAEChamferLoss" if vae else "ChamferLoss"
    if entry.flow:
        return "VAEFlowLoss"
    return "VAELoss" if vae else "AELoss"
