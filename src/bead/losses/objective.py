"""The objective owns one step (DESIGN rule 3): it calls the model, builds the named terms of
its ``loss_function`` and weighs them into the total; the trainer only keeps time and hardware.

Every term is per event ([B]), so each is also an anomaly score in ``detect``. Term weights have
names (``reg_param``, ...) and live in ``weights``, read at every step, so a schedule that
changes them changes training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from bead.errors import UsageError
from bead.losses.catalog import TERM_REQUIRES, TERM_WEIGHTS, loss_entry
from bead.losses.sets import chamfer, sinkhorn
from bead.losses.terms import (
    kl_standard_normal,
    log_normal_diag,
    log_standard_normal,
    masked_mse,
    occupancy_bce,
    weighted_mean,
)
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
    total = torch.stack(list(parts.values())).sum(0)
    components = {"reco": total}
    if len(parts) > 1:
        components.update(parts)
    return total, components


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


TERMS: dict[str, Term] = {"reco": reconstruction, "kl": gaussian_kl, "flow_kl": flow_kl,
                          "nll": negative_log_likelihood,
                          "dirichlet_kl": dirichlet_kl_term,
                          "dirichlet_flow_kl": dirichlet_flow_kl,
                          "chamfer": chamfer, "sinkhorn": sinkhorn}


@dataclass
class StepResult:
    """``total``: the scalar to backpropagate (weighted batch mean of the per-event total);
    ``components``: per-event [B] tensors, always including "total", each a score."""

    total: Tensor
    components: dict[str, Tensor]
    output: ModelOutput


class Objective:
    """The ``loss_function`` ``name`` with its named weights (config keys such as reg_param)."""

    def __init__(self, name: str, weights: dict[str, float]) -> None:
        self.name = name
        self.entry = loss_entry(name)
        needed = {TERM_WEIGHTS[t] for t in self.entry.terms} - {None}
        missing = sorted(str(k) for k in needed if k not in weights)
        if missing:
            raise UsageError(f"loss_function = '{name}' needs the weight(s) {', '.join(missing)}")
        self.weights = dict(weights)

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
        for term in self.entry.terms:
            value, parts = TERMS[term](batch, out)
            components.update(parts)
            key = TERM_WEIGHTS[term]
            weighted = value if key is None else self.weights[key] * value
            total = weighted if total is None else total + weighted
        components["total"] = total  # type: ignore[assignment]
        return components

    def step(self, model: BeadModel, batch: Batch) -> StepResult:
        """One forward pass and the loss of ``batch`` (training or validation)."""
        out = model(batch)
        components = self.components(batch, out)
        return StepResult(weighted_mean(components["total"], batch.weight), components, out)
