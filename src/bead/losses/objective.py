"""The objective owns one step (DESIGN rule 3): it calls the model (a second time on two
augmented views of each event when a term contrasts them), builds the named terms of its
``loss_function`` and weighs them into the total; the trainer only keeps time and hardware.

Per-event terms ([B]) are also anomaly scores in ``detect``. Batch-level terms (the catalog's
``BATCH_TERMS``: SupCon, NT-Xent, the parameter norms) are one scalar per batch: they are added
to the loss and reported (``StepResult.batch_terms``, epoch means in the history), never scores.
Term weights and term settings have names (``reg_param``, ``contrastive_temperature``, ...) and
live in ``weights``, read at every step, so a schedule that changes them changes training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from bead.errors import UsageError
from bead.levels import Layout
from bead.losses.catalog import (
    BATCH_TERMS,
    DEFAULT_AUGMENTATIONS,
    TERM_REQUIRES,
    TERM_WEIGHTS,
    augmentation_probabilities,
    loss_entry,
)
from bead.losses.sets import chamfer, sinkhorn
from bead.losses.terms import (
    kl_standard_normal,
    level_sum,
    log_normal_diag,
    log_standard_normal,
    masked_emd,
    masked_mse,
    nt_xent,
    occupancy_bce,
    parameter_norm,
    supervised_contrastive,
    weighted_mean,
)
from bead.losses.views import augment, check_augmentations
from bead.models.base import BeadModel, ModelOutput
from bead.models.batch import Batch
from bead.models.dirichlet import bridged_prior_logvar, dirichlet_kl

# A term: (batch, output) -> (its per-event value, the per-event components it reports).
Term = Callable[[Batch, ModelOutput], tuple[Tensor, dict[str, Tensor]]]


def reconstruction(batch: Batch, out: ModelOutput) -> tuple[Tensor, dict[str, Tensor]]:
    """Sum over the reconstructed levels of each level's per-element masked MSE, plus each set
    level's occupancy cross-entropy when the model predicts it (``card_<level>``)."""
    assert out.recon is not None
    parts: dict[str, Tensor] = {}
    for level, recon in out.recon.items():
        parts[f"reco_{level}"] = masked_mse(batch[level].x, recon, batch[level].mask)
    for level, logits in (out.occupancy or {}).items():
        parts[f"card_{level}"] = occupancy_bce(logits, batch[level].mask)
    return level_sum("reco", parts)


def gaussian_kl(batch: Batch, out: ModelOutput) -> tuple[Tensor, dict[str, Tensor]]:
    """Closed-form KL(N(mu, exp(logvar)) || N(0, 1))."""
    kl = kl_standard_normal(out.mu, out.logvar)  # type: ignore[arg-type]
    return kl, {"kl": kl}


def flow_kl(batch: Batch, out: ModelOutput,
            prior_logvar: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
    """One-sample estimate log q0(z0) − Σ log|det ∂f/∂z| − log p(zK) of the flow posterior's KL,
    p = N(0, exp(prior_logvar)).

    The original BEAD used KL(q0) − ldj, which scores the base sample against the prior instead
    of the flow output. The three parts (``log_q0``, ``neg_ldj``, ``nll_pk``) add up to ``kl``;
    ``nll_pk`` grows for latents far from the prior, so as a score higher means more anomalous.
    """
    zk = out.zk if out.zk is not None else out.z0
    log_q0 = log_normal_diag(out.z0, out.mu, out.logvar)  # type: ignore[arg-type]
    if prior_logvar == 0.0:
        log_pk = log_standard_normal(zk)  # type: ignore[arg-type]
    else:
        log_pk = log_normal_diag(zk, torch.zeros_like(zk), torch.full_like(zk, prior_logvar))  # type: ignore[arg-type]
    ldj = out.ldj.to(log_q0.dtype) if out.ldj is not None else torch.zeros_like(log_q0)
    kl = log_q0 - ldj - log_pk
    return kl, {"log_q0": log_q0, "neg_ldj": -ldj, "nll_pk": -log_pk, "kl": kl}


def negative_log_likelihood(batch: Batch, out: ModelOutput) -> tuple[Tensor, dict[str, Tensor]]:
    nll = -out.log_prob.to(torch.promote_types(out.log_prob.dtype, torch.float32))  # type: ignore[union-attr]
    return nll, {"nll": nll}


# Dirichlet VAE: the concentration of the symmetric Dirichlet prior, as in the original BEAD.
DIRICHLET_PRIOR = 5.0


def dirichlet_kl_term(batch: Batch, out: ModelOutput) -> tuple[Tensor, dict[str, Tensor]]:
    """Closed-form KL(Dir(alpha) || Dir(5·1)) of the Laplace-bridge posterior (``kl``)."""
    kl = dirichlet_kl(out.alpha, DIRICHLET_PRIOR)  # type: ignore[arg-type]
    return kl, {"kl": kl}


def dirichlet_flow_kl(batch: Batch, out: ModelOutput) -> tuple[Tensor, dict[str, Tensor]]:
    """The flow ELBO's KL of a Dirichlet VAE, taken where a flow acts: on the logits.

    A flow moves the Gaussian logits z0 -> zK, after which the Laplace-bridge alpha (a
    function of mu, logvar) no longer describes the posterior, so ``KL(Dir(alpha)) − ldj``
    would mix two spaces. Instead the prior Dir(5·1) is bridged to the logits too, N(0,
    (1 − 1/K)/5), and the estimate is ``flow_kl`` against it: log q0(z0) − Σ log|det J| −
    log p(zK). Without a flow it is a one-sample estimate of the same KL in the softmax basis.
    """
    prior = bridged_prior_logvar(out.mu.shape[-1], DIRICHLET_PRIOR)  # type: ignore[union-attr]
    return flow_kl(batch, out, prior_logvar=prior)


def earth_movers(batch: Batch, out: ModelOutput) -> tuple[Tensor, dict[str, Tensor]]:
    """Sum over the reconstructed levels of the per-event 1-D EMD of every feature over the
    real slots (``terms.masked_emd``)."""
    assert out.recon is not None
    return level_sum("emd", {f"emd_{level}": masked_emd(batch[level].x, recon, batch[level].mask)
                              for level, recon in out.recon.items()})


TERMS: dict[str, Term] = {"reco": reconstruction, "kl": gaussian_kl, "flow_kl": flow_kl,
                          "nll": negative_log_likelihood, "emd": earth_movers,
                          "dirichlet_kl": dirichlet_kl_term,
                          "dirichlet_flow_kl": dirichlet_flow_kl,
                          "chamfer": chamfer, "sinkhorn": sinkhorn}


# A batch-level term: (objective, model, batch, output of the clean batch) -> a scalar.
BatchTerm = Callable[["Objective", BeadModel, Batch, ModelOutput], Tensor]


def supcon(objective: Objective, model: BeadModel, batch: Batch, out: ModelOutput) -> Tensor:
    """SupCon of the latents zK on the generator labels the batch carries."""
    return supervised_contrastive(out.zk, batch.generator,  # type: ignore[arg-type]
                                  objective.weights["contrastive_temperature"], batch.weight)


def ntxent(objective: Objective, model: BeadModel, batch: Batch, out: ModelOutput) -> Tensor:
    """NT-Xent between the latents of two independent augmented views of every event, both
    encoded in one call of the model (the loss's other terms use the clean event)."""
    views = Batch.cat([objective.view(batch, model.layout), objective.view(batch, model.layout)])
    z = model(views).zk
    assert z is not None
    z1, z2 = z.chunk(2)
    return nt_xent(z1, z2, objective.weights["contrastive_temperature"], batch.weight)


def l1_norm(objective: Objective, model: BeadModel, batch: Batch, out: ModelOutput) -> Tensor:
    return parameter_norm(model.parameters(), 1)


def l2_norm(objective: Objective, model: BeadModel, batch: Batch, out: ModelOutput) -> Tensor:
    return parameter_norm(model.parameters(), 2)


BATCH_LEVEL: dict[str, BatchTerm] = {"supcon": supcon, "ntxent": ntxent, "l1": l1_norm,
                                     "l2": l2_norm}
assert set(BATCH_LEVEL) == BATCH_TERMS, "objective and catalog disagree on batch-level terms"


@dataclass
class StepResult:
    """``total``: the scalar to backpropagate (the weighted batch mean of the per-event total
    plus every weighted batch-level term); ``components``: per-event [B] tensors, always
    including "total" (the per-event terms only), each a score; ``batch_terms``: the unweighted
    scalar of each batch-level term, training terms that are never scores."""

    total: Tensor
    components: dict[str, Tensor]
    output: ModelOutput
    batch_terms: dict[str, Tensor] = field(default_factory=dict)


class Objective:
    """The ``loss_function`` ``name`` with its named weights (config keys such as reg_param,
    contrastive_temperature) and, for a loss that contrasts views, the ``augmentations``
    (name -> probability; None: the catalog's defaults). With ``layout`` the augmentations are
    checked against the inputs now, otherwise at the first step."""

    def __init__(self, name: str, weights: dict[str, float],
                 augmentations: dict[str, float] | list[str] | None = None,
                 layout: Layout | None = None) -> None:
        self.name = name
        self.entry = loss_entry(name)
        missing = sorted(k for k in self.entry.weight_keys if k not in weights)
        if missing:
            raise UsageError(f"loss_function = '{name}' needs the weight(s) {', '.join(missing)}")
        self.weights = dict(weights)
        self.augmentations = augmentation_probabilities(
            DEFAULT_AUGMENTATIONS if augmentations is None else augmentations)
        self._checked: Layout | None = None
        if layout is not None and self.entry.uses_views:
            self._check_views(layout)

    def in_force(self) -> dict[str, float]:
        """The weights and settings this loss reads, as they are now (a schedule changes them)."""
        return {k: float(self.weights[k]) for k in self.entry.weight_keys}

    def weight(self, term: str) -> float:
        key = TERM_WEIGHTS[term]
        return 1.0 if key is None else self.weights[key]

    def _check_views(self, layout: Layout) -> None:
        if self._checked is None or dict(self._checked) != dict(layout):
            check_augmentations(layout, self.augmentations)
            self._checked = layout

    def view(self, batch: Batch, layout: Layout) -> Batch:
        """One random augmented view of every event of ``batch``."""
        self._check_views(layout)
        return augment(batch, layout, self.augmentations, self.weights["ntxent_sigma"])

    @property
    def primary_score(self) -> str:
        return self.entry.primary_score

    def check_output(self, out: ModelOutput) -> None:
        """Fail clearly when the model did not produce what a term needs."""
        for term in self.entry.terms:
            missing = sorted(p for p in TERM_REQUIRES[term] if getattr(out, p) is None)
            if missing:
                raise UsageError(
                    f"loss_function = '{self.name}' needs the model output "
                    f"{', '.join(missing)}, which this model does not produce: this model "
                    "cannot be used with this loss")

    def components(self, batch: Batch, out: ModelOutput) -> dict[str, Tensor]:
        """Every per-event component and their weighted sum, ``total``."""
        self.check_output(out)
        components: dict[str, Tensor] = {}
        total = None
        for term in self.entry.score_terms:
            value, parts = TERMS[term](batch, out)
            components.update(parts)
            weighted = self.weight(term) * value
            total = weighted if total is None else total + weighted
        components["total"] = total  # type: ignore[assignment]
        return components

    def step(self, model: BeadModel, batch: Batch, batch_terms: bool = True) -> StepResult:
        """One forward pass and the loss of ``batch`` (training or validation). Without
        ``batch_terms`` the batch-level terms are skipped (scoring needs only the per-event
        ones, and NT-Xent costs a second forward pass)."""
        out = model(batch)
        components = self.components(batch, out)
        total = weighted_mean(components["total"], batch.weight)
        terms: dict[str, Tensor] = {}
        if batch_terms:
            for term in self.entry.batch_terms:
                terms[term] = BATCH_LEVEL[term](self, model, batch, out)
                total = total + self.weight(term) * terms[term]
        return StepResult(total, components, out, terms)
