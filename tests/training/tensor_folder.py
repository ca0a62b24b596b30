"""Builds tiny tensor folders in the prepare_inputs layout (formats §2), so training and
detection tests do not depend on the preparation stage.

Background constituents are low-rank (two latent factors times fixed loadings, plus a little
noise): a model can learn them. Signal uses other loadings and an offset, so it is anomalous.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from bead.config import Config
from bead.prepare.manifest import (
    MANIFEST,
    Manifest,
    SampleEntry,
    preparation_key,
    preparation_settings,
)
from bead.prepare.observables import OBSERVABLES

J, C, FC, FJ, FE = 2, 3, 3, 4, 3  # jets, constituents per jet, features per level


def _sample(n: int, loadings: torch.Tensor, offset: float, gen: torch.Generator,
            weight: float) -> dict[str, torch.Tensor]:
    z = torch.randn(n, loadings.shape[0], generator=gen)
    flat = z @ loadings + offset + 0.05 * torch.randn(n, loadings.shape[1], generator=gen)
    constituents = flat.view(n, J * C, FC)
    n_real = torch.randint(1, C + 1, (n, J), generator=gen)  # real constituents per jet
    cmask = (torch.arange(C).view(1, 1, C) < n_real.unsqueeze(-1)).view(n, J * C)
    constituents = constituents * cmask.unsqueeze(-1)
    jets = torch.cat([constituents.view(n, J, C, FC).sum(2),
                      n_real.unsqueeze(-1).float() / C], dim=-1)
    return {
        "constituents": constituents.float().contiguous(),
        "constituent_mask": cmask.contiguous(),
        "jets": jets.float().contiguous(),
        "jet_mask": torch.ones(n, J, dtype=torch.bool),
        "events": torch.cat([z, z[:, :1] ** 2], dim=1).float().contiguous(),
        # raw observables: the first one follows the anomaly offset, like a MET would
        "observables": torch.cat([offset + torch.rand(n, 1, generator=gen),
                                  torch.rand(n, len(OBSERVABLES) - 1, generator=gen)], 1),
        "weight": torch.full((n,), weight),
        "evt_id": torch.arange(n, dtype=torch.int64),
    }


def make_tensor_folder(
    root: Path,
    bkg_generators: tuple[str, ...] = ("pythia", "herwig"),
    n_train: int = 400,
    n_test: int = 200,
    n_signal: int = 200,
    signals: tuple[str, ...] = ("sig_test_svj_a",),
    seed: int = 0,
    train_size: float = 0.75,
    features: dict[str, list[str]] | None = None,
) -> Path:
    """Write ``manifest.json`` (with the package's own writer) and one safetensors file per
    sample under ``root``; ``features`` renames the columns (augmentations find theirs by
    name)."""
    root.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    bkg_loadings = torch.randn(2, J * C * FC, generator=gen)
    samples = []

    def add(stem: str, flag: str, generator: str, n: int, tensors: dict) -> None:
        save_file(tensors, str(root / f"{stem}.safetensors"))
        samples.append(SampleEntry(stem=stem, flag=flag, generator=generator, tag=None,
                                   file=f"{stem}.safetensors", n_events=n, source=f"{stem}.h5"))

    for g in bkg_generators:
        train = _sample(n_train, bkg_loadings, 0.0, gen, 1.0)
        train["is_val"] = torch.rand(n_train, generator=gen) >= train_size
        add(f"bkg_train_{g}", "bkg_train", g, n_train, train)
    for g in bkg_generators:
        add(f"bkg_test_{g}", "bkg_test", g, n_test, _sample(n_test, bkg_loadings, 0.0, gen, 1.0))
    for i, stem in enumerate(signals):
        loadings = torch.randn(2, J * C * FC, generator=gen)
        add(stem, "sig_test", stem.split("_")[2], n_signal,
            _sample(n_signal, loadings, 1.0 + i, gen, 0.5))
    settings_of = Config(num_jets=J, num_constits=C, train_size=train_size)
    Manifest(
        path=root / MANIFEST, generators=sorted(bkg_generators), samples=samples,
        scalers_sha256=f"toy-{seed}", settings=preparation_settings(settings_of),
        features=features or {"constituent": ["a", "b", "c"], "jet": ["a", "b", "c", "n"],
                              "event": ["z0", "z1", "z0sq"]},
        observables=list(OBSERVABLES), key=preparation_key(settings_of),
    ).write()
    return root


def small_config(**overrides: object) -> Config:
    """An AE on the toy set: trains in well under a second per epoch on a CPU."""
    values: dict[str, object] = {"model_name": "AE", "loss_function": "AELoss",
                                 "latent_space_size": 4, "batch_size": 64, "epochs": 4,
                                 "device": "cpu", "input_level": "constituent",
                                 "num_jets": J, "num_constits": C, "train_size": 0.75}
    values.update(overrides)
    return Config(**values)
