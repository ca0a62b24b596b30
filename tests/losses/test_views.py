"""CRVSTAL augmentations: physics-preserving views of an event, on the prepared features."""

from __future__ import annotations

import math

import pytest
import torch

from bead.errors import UsageError
from bead.levels import LevelLayout
from bead.losses.catalog import AUGMENTATIONS, augmentation_probabilities
from bead.losses.views import augment, azimuth_pairs, check_augmentations
from bead.models.batch import Batch, Level

LAYOUT = {
    "event": LevelLayout(1, ("met", "met_phi_sin", "met_phi_cos", "ht")),
    "jet": LevelLayout(3, ("pt", "eta", "phi_sin", "phi_cos", "mass")),
    "constituent": LevelLayout(8, ("pt", "eta", "phi_sin", "phi_cos", "deta", "dphi",
                                   "is_photon")),
}


def physical_batch(b: int = 64, seed: int = 0) -> Batch:
    """Scaled-looking features with true sin/cos azimuths and ragged multiplicities."""
    gen = torch.Generator().manual_seed(seed)
    levels = {}
    for level, lo in LAYOUT.items():
        mask = torch.rand(b, lo.n_slots, generator=gen) < 0.6
        mask[:, 0] = True
        x = torch.randn(b, lo.n_slots, lo.n_features, generator=gen, dtype=torch.float64)
        for i_sin, i_cos in azimuth_pairs(lo.features):
            phi = torch.rand(b, lo.n_slots, generator=gen, dtype=torch.float64) * 2 * math.pi
            x[..., i_sin], x[..., i_cos] = torch.sin(phi), torch.cos(phi)
        levels[level] = Level(x * mask.unsqueeze(-1), mask)
    return Batch(levels, torch.ones(b), torch.zeros(b, dtype=torch.long), torch.arange(b))


def view(batch: Batch, names: dict[str, float] | list[str], sigma: float = 0.1,
         seed: int = 1) -> Batch:
    return augment(batch, LAYOUT, augmentation_probabilities(names), sigma,
                   torch.Generator().manual_seed(seed))


def column(level: str, name: str) -> int:
    return LAYOUT[level].features.index(name)


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_every_augmentation_changes_the_event_and_keeps_padded_slots_padded(name: str) -> None:
    batch = physical_batch()
    out = view(batch, [name])
    changed = False
    for level, lv in batch.levels.items():
        new = out[level]
        assert new.x.shape == lv.x.shape and new.mask.dtype == torch.bool
        assert torch.all(new.x[~new.mask] == 0), f"{name} wrote into a padded {level} slot"
        added = new.mask & ~lv.mask
        if name == "split_collinear" and level == "constituent":
            # exactly one new real slot in every event that had a free one
            assert torch.equal(added.sum(1), (~lv.mask).any(1).long())
        else:
            assert not added.any(), f"{name} turned a padded {level} slot real"
        changed |= not torch.equal(new.x, lv.x) or not torch.equal(new.mask, lv.mask)
    assert changed, f"{name} changed nothing"


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_views_are_reproducible_from_the_seed(name: str) -> None:
    batch = physical_batch()
    a, b, c = view(batch, [name], seed=3), view(batch, [name], seed=3), view(batch, [name], seed=4)
    for level in batch.levels:
        assert torch.equal(a[level].x, b[level].x) and torch.equal(a[level].mask, b[level].mask)
    assert any(not torch.equal(a[lv].x, c[lv].x) for lv in batch.levels)


def test_a_phi_rotation_keeps_every_phi_invariant_feature() -> None:
    batch = physical_batch()
    out = view(batch, ["rotate_phi"])
    angles = {}
    for level, lo in LAYOUT.items():
        pairs = azimuth_pairs(lo.features)
        rotated = {i for pair in pairs for i in pair}
        for i in set(range(lo.n_features)) - rotated:  # pt, eta, deta, dphi, mass, met, ...
            assert torch.equal(out[level].x[..., i], batch[level].x[..., i]), lo.features[i]
        i_sin, i_cos = pairs[0]
        old = torch.atan2(batch[level].x[..., i_sin], batch[level].x[..., i_cos])
        new = torch.atan2(out[level].x[..., i_sin], out[level].x[..., i_cos])
        delta = torch.remainder(new - old, 2 * math.pi)
        real = batch[level].mask
        norm = out[level].x[..., i_sin] ** 2 + out[level].x[..., i_cos] ** 2
        torch.testing.assert_close(norm[real], torch.ones_like(norm[real]))
        angles[level] = delta
    # one angle per event, the same for every object of every level: every difference of
    # azimuths (between jets, between a jet and the MET) is unchanged
    first = angles["event"][:, 0]
    assert first.std() > 1.0  # really rotated, by angles spread over the circle
    for level, delta in angles.items():
        real = batch[level].mask
        diff = torch.remainder(delta - first.unsqueeze(1) + math.pi, 2 * math.pi) - math.pi
        assert diff[real].abs().max() < 1e-9, level


def test_rotate_phi_refuses_an_azimuth_that_is_not_a_sin_cos_pair() -> None:
    layout = {"jet": LevelLayout(2, ("pt", "eta", "phi"))}
    with pytest.raises(UsageError, match=r"rotate_phi needs every azimuth as a sin/cos pair.*"
                                         r"jet features have phi"):
        check_augmentations(layout, {"rotate_phi": 1.0, "smear_pt": 1.0})
    check_augmentations(layout, {"smear_pt": 1.0})


def test_smearing_moves_only_its_columns_by_about_sigma() -> None:
    batch = physical_batch(b=512)
    for names, moved in ((["smear_eta_phi"], {"eta", "deta", "dphi", "phi_sin", "phi_cos",
                                               "met_phi_sin", "met_phi_cos"}),
                         (["smear_pt"], {"pt"})):
        out = view(batch, names, sigma=0.05)
        for level, lo in LAYOUT.items():
            real = batch[level].mask
            for i, name in enumerate(lo.features):
                shift = (out[level].x[..., i] - batch[level].x[..., i])[real]
                if name in moved and name.endswith(("_sin", "_cos")):
                    assert 0 < shift.abs().mean() < 0.05, (names, level, name)
                elif name in moved:
                    assert shift.std().item() == pytest.approx(0.05, rel=0.15), (level, name)
                else:
                    assert torch.all(shift == 0), (names, level, name)
        same = view(batch, names, sigma=0.0)
        assert all(torch.allclose(same[lv].x, batch[lv].x) for lv in LAYOUT)


def test_drop_soft_drops_only_from_the_softer_half_never_the_hardest() -> None:
    batch = physical_batch(b=512)
    out = view(batch, ["drop_soft"])
    lv, new = batch["constituent"], out["constituent"]
    pt = lv.x[..., column("constituent", "pt")]
    dropped = lv.mask & ~new.mask
    n_real = lv.mask.sum(1)
    softer = (pt.unsqueeze(2) > pt.unsqueeze(1)) & lv.mask.unsqueeze(1)  # [b, i, j]: j softer
    n_softer = softer.sum(2)  # real slots softer than each slot
    assert torch.all(n_softer[dropped] < (n_real.unsqueeze(1).expand_as(dropped))[dropped] // 2)
    hardest = torch.where(lv.mask, pt, torch.full_like(pt, -math.inf)).argmax(1)
    assert not dropped[torch.arange(len(pt)), hardest].any()
    eligible = (n_real // 2).sum()
    assert 0.4 < dropped.sum() / eligible < 0.6  # probability 1/2 each
    kept = new.mask
    assert torch.equal(new.x[kept], lv.x[kept])


def test_collinear_split_conserves_pt_in_the_log_scale_and_keeps_the_position() -> None:
    batch = physical_batch(b=256)
    out = view(batch, ["split_collinear"])
    lv, new = batch["constituent"], out["constituent"]
    ipt = column("constituent", "pt")
    added = new.mask & ~lv.mask
    split = added.any(1)
    assert split.float().mean() > 0.5  # every event with a free slot
    rows = torch.nonzero(split).squeeze(1)
    daughter = added[rows].float().argmax(1)
    changed = (new.x[rows] != lv.x[rows]).any(-1) & lv.mask[rows]
    assert torch.all(changed.sum(1) == 1)
    parent = changed.float().argmax(1)
    d = new.x[rows, daughter]
    p_new, p_old = new.x[rows, parent], lv.x[rows, parent]
    others = [i for i in range(len(LAYOUT["constituent"].features)) if i != ipt]
    assert torch.equal(d[:, others], p_old[:, others])  # same eta, phi, deta, dphi, pid
    assert torch.equal(p_new[:, others], p_old[:, others])
    torch.testing.assert_close(torch.exp(p_new[:, ipt]) + torch.exp(d[:, ipt]),
                               torch.exp(p_old[:, ipt]))
    frac = torch.exp(p_new[:, ipt] - p_old[:, ipt])
    assert frac.min() >= 0.1 - 1e-9 and frac.max() <= 0.9 + 1e-9


def test_probabilities_apply_each_augmentation_to_that_share_of_the_events() -> None:
    batch = physical_batch(b=2000)
    out = view(batch, {"smear_pt": 0.25})
    touched = (out["jet"].x != batch["jet"].x).any(-1).any(-1)
    assert 0.2 < touched.float().mean() < 0.3


def test_bad_augmentation_settings_are_usage_errors() -> None:
    with pytest.raises(UsageError, match=r"augmentations = 'rotate_ph' is unknown \(did you "
                                         r"mean 'rotate_phi'\?\); valid: rotate_phi, "):
        augmentation_probabilities(["rotate_ph"])
    with pytest.raises(UsageError, match=r"augmentations.drop_soft = 1.5: .*\(0, 1\]"):
        augmentation_probabilities({"drop_soft": 1.5})
    assert list(augmentation_probabilities(["drop_soft", "rotate_phi"])) == [
        "rotate_phi", "drop_soft"]  # applied in the catalog's order
    event_only = {"event": LevelLayout(1, ("met", "ht"))}
    with pytest.raises(UsageError, match="none of drop_soft, split_collinear acts on these "
                                         r"inputs \(event: met, ht\)"):
        check_augmentations(event_only, {"drop_soft": 0.5, "split_collinear": 0.5})
    with pytest.raises(UsageError, match="augmentations is empty"):
        check_augmentations(event_only, {})
