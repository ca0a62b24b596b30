"""Cost of the loss zoo's terms: one training step (forward, backward, optimizer step) of a
model with each loss, as a ratio to the same step with the model's plain ELBO loss.

A batch of ``--batch`` events of ``--jets`` x ``--constits`` constituents with pj_custom-like
named features (so the NT-Xent augmentations find their columns) is trained on, in this
process, one step of each loss in turn, ``--repeats`` x ``--steps`` times. Each line is the
fastest of its steps, so load from other jobs, which slows some steps, hits every loss alike.
NT-Xent encodes two augmented views besides the clean event (three forward passes of the
model in all); the ``augment`` line times building one view alone.

    python benchmarks/losses.py [--model Planar_ConvVAE] [--batch 256] [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import torch

from bead.config import Config
from bead.levels import LevelLayout
from bead.losses.catalog import DEFAULT_AUGMENTATIONS
from bead.losses.objective import Objective
from bead.losses.views import augment
from bead.models.batch import Batch, Level
from bead.models.registry import build_model
from bead.training.checkpoint import WEIGHT_KEYS

FEATURES = ("pt", "eta", "phi_sin", "phi_cos", "deta", "dphi", "jet_btag", "is_charged_hadron",
            "is_neutral_hadron", "is_photon", "is_electron", "is_muon")
LOSSES = {"Planar_ConvVAE": ("VAEFlowLoss", "VAEFlowSupConLoss", "NTXentVAEFlowLoss",
                             "VAEFlowLossEMD", "VAEFlowLossL1", "VAEFlowLossL2"),
          "ConvVAE": ("VAELoss", "VAESupConLoss", "NTXentVAELoss", "VAELossEMD", "VAELossL1",
                      "VAELossL2")}


def make_batch(n: int, slots: int, seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, slots, generator=gen) < 0.7
    mask[:, 0] = True
    x = torch.randn(n, slots, len(FEATURES), generator=gen)
    phi = torch.rand(n, slots, generator=gen) * 6.283
    x[..., 2], x[..., 3] = torch.sin(phi), torch.cos(phi)
    return Batch({"constituent": Level(x * mask.unsqueeze(-1), mask)}, torch.ones(n),
                 torch.randint(0, 3, (n,), generator=gen), torch.arange(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="Planar_ConvVAE", choices=list(LOSSES))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--jets", type=int, default=2)
    parser.add_argument("--constits", type=int, default=15)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    slots = args.jets * args.constits
    layout = {"constituent": LevelLayout(slots, FEATURES)}
    batch = make_batch(args.batch, slots)
    weights = {k: float(getattr(Config(), k)) for k in WEIGHT_KEYS}
    runs = {}
    for loss in LOSSES[args.model]:
        model = build_model(args.model, layout, ("constituent",), 12)
        runs[loss] = (model, Objective(loss, weights, layout=layout),
                      torch.optim.AdamW(model.parameters(), lr=1e-3))
    best = dict.fromkeys([*runs, "augment"], float("inf"))
    for _ in range(args.repeats * args.steps):  # one step of each loss in turn
        for loss, (model, objective, optimizer) in runs.items():
            model.train()
            started = time.perf_counter()
            result = objective.step(model, batch)
            optimizer.zero_grad(set_to_none=True)
            result.total.backward()
            optimizer.step()
            best[loss] = min(best[loss], time.perf_counter() - started)
        started = time.perf_counter()
        augment(batch, layout, dict(DEFAULT_AUGMENTATIONS), 0.1)
        best["augment"] = min(best["augment"], time.perf_counter() - started)
    base = best[LOSSES[args.model][0]]
    print(f"{args.model}, {args.batch} events of {slots} constituent slots x {len(FEATURES)} "
          f"features, {torch.get_num_threads()} threads; fastest of {args.repeats * args.steps} "
          "steps each")
    print(f"{'training step':<38} {'ms':>8} {'vs ' + LOSSES[args.model][0]:>16}")
    for name, seconds in best.items():
        label = "augment (one view, default augmentations)" if name == "augment" else name
        print(f"{label:<38} {seconds * 1e3:8.2f} {seconds / base:15.2f}x")


if __name__ == "__main__":
    main()
