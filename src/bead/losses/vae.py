"""Reconstruction, VAE and flow-VAE objectives."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from bead.losses.base import BeadLoss, LossResult
from bead.losses.terms import (
    kl_standard_normal,
    log_normal_diag,
    log_standard_normal,
    masked_mse,
    weighted_mean,
)
from bead.models.base import ModelOutput


def _result(components: dict[str, Tensor], weight: Tensor | None) -> LossResult:
    return LossResult(total=weighted_mean(components["total"], weight), components=components)


class AELoss(BeadLoss):
    """Reconstruction only: masked MSE."""

    def __call__(
        self, x: Tensor, mask: Tensor, out: ModelOutput, weight: Tensor | None = None
    ) -> LossResult:
        reco = masked_mse(x, out.recon, mask)
        return _result({"reco": reco, "total": reco}, weight)


class VAELoss(BeadLoss):
    """Negative ELBO of a Gaussian VAE: reco + β·KL(q(z|x) || N(0, 1)), β = reg_param."""

    requires: ClassVar[frozenset[str]] = frozenset({"mu", "logvar"})

    def __call__(
        self, x: Tensor, mask: Tensor, out: ModelOutput, weight: Tensor | None = None
    ) -> LossResult:
        self.check_output(out)
        reco = masked_mse(x, out.recon, mask)
        kl = kl_standard_normal(out.mu, out.logvar)
        return _result({"reco": reco, "kl": kl, "total": reco + self.reg_param * kl}, weight)


class VAEFlowLoss(BeadLoss):
    """Negative ELBO of a flow VAE, one Monte-Carlo sample per event:

    reco + β·(log q0(z0) − Σ_k log|det ∂f_k/∂z| − log p(zK)),

    with q0 = N(mu, exp(logvar)) and p = N(0, 1). The original BEAD used β·(KL(q0) − ldj), which
    scores the base sample against the prior instead of the flow output. Without a flow (ldj
    None) zK = z0 and this is an unbiased estimate of VAELoss.

    The KL estimate is reported as the three terms that add up to it (``log_q0``, ``neg_ldj``
    = −ldj, ``nll_pk`` = −log p(zK)); ``nll_pk`` grows for latents far from the prior, so as a
    score, like ``reco`` and ``kl``, higher means more anomalous.
    """

    requires: ClassVar[frozenset[str]] = frozenset({"mu", "logvar", "z0"})

    def __call__(
        self, x: Tensor, mask: Tensor, out: ModelOutput, weight: Tensor | None = None
    ) -> LossResult:
        self.check_output(out)
        reco = masked_mse(x, out.recon, mask)
        zk = out.zk if out.zk is not None else out.z0
        log_q0 = log_normal_diag(out.z0, out.mu, out.logvar)
        log_pk = log_standard_normal(zk)
        ldj = out.ldj.to(log_q0.dtype) if out.ldj is not None else torch.zeros_like(log_q0)
        kl = log_q0 - ldj - log_pk
        components = {
            "reco": reco, "log_q0": log_q0, "neg_ldj": -ldj, "nll_pk": -log_pk, "kl": kl,
            "total": reco + self.reg_param * kl,
        }
        return _result(components, weight)
