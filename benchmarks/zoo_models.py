"""Cost of the model zoo's pieces, as ratios against a baseline run side by side in this call.

1. Set distances: forward + backward of ``sinkhorn_distance`` (geomloss) and of the masked MSE
   against ``masked_chamfer`` (the baseline), on random padded sets of --events x --slots x
   --features (default 512 x 45 x 8: 3 jets x 15 constituents).
2. Models: one training step (forward, loss, backward) of each zoo model with its default loss,
   against ``ConvVAE`` + ``VAELoss`` (the baseline), on a toy constituent batch of the same size.

Rounds are interleaved and the best of --repeats is kept, so load from other jobs hits every
entry alike; the ratios (>1: slower than the baseline) are what to read.

    python benchmarks/zoo_models.py [--events 512] [--slots 45] [--features 8] [--repeats 3]
                                    [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from bead.levels import LevelLayout
from bead.losses.objective import Objective
from bead.losses.sets import masked_chamfer, sinkhorn_distance
from bead.losses.terms import masked_mse
from bead.models.batch import Batch, Level
from bead.models.registry import build_model

MODELS = {
    "ConvVAE": "VAELoss", "Planar_ConvVAE": "VAEFlowLoss",
    "OrthogonalSylvester_ConvVAE": "VAEFlowLoss", "HouseholderSylvester_ConvVAE": "VAEFlowLoss",
    "TriangularSylvester_ConvVAE": "VAEFlowLoss", "IAF_ConvVAE": "VAEFlowLoss",
    "ConvFlow_ConvVAE": "VAEFlowLoss", "NSFAR_ConvVAE": "VAEFlowLoss",
    "Dirichlet_ConvVAE": "DVAELoss", "AE_Dropout_BN": "AELoss", "TransformerAE": "AELoss",
    "ParticleTransformerVAE": "VAEChamferLoss",
}


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=512)
    parser.add_argument("--slots", type=int, default=45)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n, s, f = args.events, args.slots, args.features
    x = torch.randn(n, s, f)
    mask = torch.rand(n, s) < 0.6
    mask[:, 0] = True
    x = x * mask.unsqueeze(-1)

    def distance_step(distance: Callable) -> Callable[[], object]:
        def run() -> None:
            y = (x + 0.1 * torch.randn_like(x)).requires_grad_()
            distance(x, mask, y, mask).sum().backward()
        return run

    distances = {"masked_chamfer": distance_step(masked_chamfer),
                 "sinkhorn_distance": distance_step(sinkhorn_distance),
                 "masked_mse": distance_step(lambda a, m, b, _: masked_mse(a, b, m))}
    layout = {"constituent": LevelLayout(s, tuple(f"f{i}" for i in range(f)))}
    batch = Batch({"constituent": Level(x, mask)}, torch.ones(n),
                  torch.zeros(n, dtype=torch.long), torch.arange(n))
    steps = {}
    for name, loss in MODELS.items():
        model = build_model(name, layout, ("constituent",), 8, {})
        objective = Objective(loss, {"reg_param": 1e-3})

        def run(model=model, objective=objective) -> None:
            objective.step(model, batch).total.backward()
        run()  # warm-up
        steps[name] = run
    timings: dict[str, list[float]] = {k: [] for k in [*distances, *steps]}
    for _ in range(args.repeats):
        for name, fn in [*distances.items(), *steps.items()]:
            timings[name].append(best_of(fn, 1))
    print(f"{n} events x {s} slots x {f} features, {args.threads} thread(s), best of "
          f"{args.repeats}")
    print("set distances, forward + backward (ratio to masked_chamfer):")
    base = min(timings["masked_chamfer"])
    for name in distances:
        t = min(timings[name])
        print(f"  {name:28s} {t * 1e3:9.1f} ms  {t / base:6.2f}x")
    print("one training step with the default loss (ratio to ConvVAE + VAELoss):")
    base = min(timings["ConvVAE"])
    for name in steps:
        t = min(timings[name])
        print(f"  {name:28s} {t * 1e3:9.1f} ms  {t / base:6.2f}x  ({MODELS[name]})")


if __name__ == "__main__":
    main()
