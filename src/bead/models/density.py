"""Normalising-flow densities of the background, scored by -log p(x) (zuko's MAF and NSF).

An autoencoder's reconstruction error is not a density; a flow is: it learns log p(x) of the
background exactly (up to training), and an event the background makes improbable scores high.
The model reads the event vector and the jet slots (pt-ordered by preparation, which handles
the permutation of jets), concatenated into one vector per event:

- azimuthal angles (phi, met_phi, j1_phi and their sin/cos columns) are left out when
  ``drop_angles`` (the default): the physics is symmetric in phi, and a sin/cos pair lies on a
  circle, on which a density in the plane is unbounded;
- with the jet level present, the event level's ``j1_*`` columns are left out: they repeat the
  first jet slot exactly, and an exact copy is a degenerate direction for a density;
- each jet slot carries its mask bit (so a missing jet is seen), its padded features are 0;
- inputs are soft-clamped, ``20·tanh(x/20)`` (identity to 0.1 % within |x| < 6, in the
  standardised units of preparation), so an event far outside the training range gets a large
  but finite score; the density is that of the clamped features;
- during training, Gaussian noise of width ``noise`` is added to every input (dequantisation):
  counts, b-tags and constant columns would otherwise let the flow pile density on single
  values without bound. Scoring uses the clean inputs, so scores are deterministic.

MAF (Papamakarios et al. 2017) stacks affine autoregressive transforms; NSF (Durkan et al.
2019) rational-quadratic spline ones, more flexible per transform.
"""

from __future__ import annotations

import torch
import zuko
from torch import Tensor

from bead.errors import DataError, UsageError
from bead.levels import Layout
from bead.models.base import BeadModel, ModelOutput
from bead.models.batch import Batch
from bead.models.catalog import ModelEntry

CLAMP = 20.0
_ANGLES = ("phi", "met_phi", "j1_phi")


def is_angle(feature: str) -> bool:
    """Whether a prepared column is an azimuth or one of its sin/cos columns."""
    return feature.removesuffix("_sin").removesuffix("_cos") in _ANGLES


def density_columns(layout: Layout, levels: tuple[str, ...],
                    drop_angles: bool = True) -> dict[str, list[int]]:
    """The columns of each level a density reads (see the module docstring)."""
    def kept(level: str, feature: str) -> bool:
        if drop_angles and is_angle(feature):
            return False
        return not (level == "event" and "jet" in levels and feature.startswith("j1_"))
    return {lv: [i for i, f in enumerate(layout[lv].features) if kept(lv, f)] for lv in levels}


def density_inputs(batch: Batch, columns: dict[str, list[int]] | dict[str, Tensor]) -> Tensor:
    """[B, D] float32 vector of the kept columns (padded slots 0), each set level's mask bits,
    soft-clamped to ±CLAMP."""
    parts = []
    for level, keep in columns.items():
        lv = batch[level]
        zero = torch.zeros((), dtype=lv.x.dtype, device=lv.x.device)
        xm = torch.where(lv.mask.unsqueeze(-1), lv.x, zero)
        parts.append(xm[..., keep].flatten(1))
        if level != "event":
            parts.append(lv.mask.to(xm.dtype))
    x = torch.cat(parts, dim=1).float()
    return CLAMP * torch.tanh(x / CLAMP)


class FlowDensity(BeadModel):
    """log p(x) of the event + jet features by a masked autoregressive or spline flow."""

    def __init__(self, entry: ModelEntry, layout: Layout, levels: tuple[str, ...],
                 latent_dim: int, params: dict) -> None:
        super().__init__(layout, levels, latent_dim)
        self.noise = float(params["noise"])
        keep = density_columns(layout, levels, bool(params["drop_angles"]))
        for lv in levels:
            self.register_buffer(f"keep_{lv}", torch.tensor(keep[lv], dtype=torch.long),
                                 persistent=False)
        n_in = sum(len(keep[lv]) * layout[lv].n_slots for lv in levels)
        n_in += sum(layout[lv].n_slots for lv in levels if lv != "event")  # mask bits
        if n_in < 2:
            raise DataError(f"{entry.target}: a density model needs at least two input "
                            f"features, the inputs give {n_in}")
        self.n_inputs = n_in
        hidden = tuple(int(h) for h in params["hidden_features"])
        if params["kind"] == "nsf":
            self.flow = zuko.flows.NSF(n_in, transforms=int(params["transforms"]),
                                       bins=int(params["bins"]), hidden_features=hidden)
        elif params["kind"] == "maf":
            self.flow = zuko.flows.MAF(n_in, transforms=int(params["transforms"]),
                                       hidden_features=hidden)
        else:
            raise UsageError(f"model_params.kind: {params['kind']!r} is not maf or nsf")

    def features(self, batch: Batch) -> Tensor:
        """The flow's input vector [B, n_inputs] (see the module docstring)."""
        for level in self.levels:
            self.masked(batch, level)  # checks the shapes the model was built for
        return density_inputs(batch, {lv: getattr(self, f"keep_{lv}") for lv in self.levels})

    def forward(self, batch: Batch) -> ModelOutput:
        x = self.features(batch)
        if self.training and self.noise > 0:
            x = x + self.noise * torch.randn_like(x)
        dist = self.flow()
        z, ladj = dist.transform.call_and_ladj(x)  # log_prob without transforming twice
        return ModelOutput(log_prob=dist.base.log_prob(z) + ladj, zk=z)
