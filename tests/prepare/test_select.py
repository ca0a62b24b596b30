"""Leading-object selection and feature columns on hand-built events."""

from __future__ import annotations

import numpy as np
import pytest

from bead.io.events import EventChunk
from bead.prepare.features import PID_CLASSES, build_features, feature_names, particle_class
from bead.prepare.select import select_leading


def make_chunk(events: list[list[tuple[int, list[tuple[int, float, float, float]]]]],
               met: float = 50.0) -> EventChunk:
    """events -> jets (btag, constituents) -> constituents (pid, pt, eta, phi)."""
    jets = [jet for ev in events for jet in ev]
    cons = [c for _, constits in jets for c in constits]
    arr = np.array(cons, dtype=float).reshape(-1, 4)
    n = len(events)
    return EventChunk(
        evt_id=np.arange(100, 100 + n), evt_weight=np.ones(n), met=np.full(n, met),
        met_phi=np.full(n, 0.5), num_jets=np.array([len(ev) for ev in events], dtype=np.int64),
        jet_num_constits=np.array([len(c) for _, c in jets], dtype=np.int64),
        jet_btag=np.array([b for b, _ in jets], dtype=np.int64),
        con_pid=arr[:, 0].astype(np.int64), con_pt=arr[:, 1], con_eta=arr[:, 2],
        con_phi=arr[:, 3],
    )


# Event 0: three jets in file order with pts ~10, ~30, ~20 (constituents unsorted);
# event 1: one jet with a single constituent; event 2: no jets.
EVENTS = [
    [
        (0, [(211, 4.0, 0.1, 0.0), (22, 6.0, 0.1, 0.0)]),
        (1, [(211, 5.0, 1.0, 1.0), (130, 20.0, 1.0, 1.0), (11, 1.0, 1.0, 1.0),
             (13, 4.0, 1.0, 1.0)]),
        (0, [(2212, 20.0, -1.0, 2.0)]),
    ],
    [(1, [(22, 7.0, 0.5, -1.0)])],
    [],
]


def test_keeps_leading_jets_and_constituents_in_pt_order():
    chunk = make_chunk(EVENTS)
    sel = select_leading(chunk, num_jets=2, num_constits=3)

    assert sel.jet_src.shape == (3, 2) and sel.con_src.shape == (3, 2, 3)
    # event 0: the ~30 GeV jet (file jet 1) leads, then the 20 GeV jet (file jet 2)
    np.testing.assert_array_equal(sel.jet_src[0], [1, 2])
    np.testing.assert_array_equal(sel.jet_mask, [[True, True], [True, False], [False, False]])
    # constituents of file jet 1 are file constituents 2..5 with pts 5, 20, 1, 4
    np.testing.assert_array_equal(chunk.con_pt[sel.con_src[0, 0]], [20.0, 5.0, 4.0])
    np.testing.assert_array_equal(sel.con_mask[0, 1], [True, False, False])
    np.testing.assert_array_equal(sel.con_mask[1], [[True, False, False], [False] * 3])
    assert not sel.con_mask[2].any()
    assert (sel.con_src[~sel.con_mask] == -1).all()
    # the 10 GeV jet (2 constituents) was dropped, and the 1 GeV constituent truncated
    assert sel.n_jets_dropped == 1
    assert sel.n_constits_truncated == 1
    assert sel.n_constits_in_dropped_jets == 2


def test_selection_larger_than_content_pads_everything_else():
    chunk = make_chunk(EVENTS)
    sel = select_leading(chunk, num_jets=5, num_constits=10)
    assert sel.jet_mask.sum() == chunk.n_jets
    assert sel.con_mask.sum() == chunk.n_constits
    assert sel.n_jets_dropped == sel.n_constits_truncated == sel.n_constits_in_dropped_jets == 0
    # jets within an event are in decreasing pt
    pts = np.where(sel.jet_mask, sel.jet_pt[np.maximum(sel.jet_src, 0)], -1)
    assert (np.diff(pts[0, :3]) <= 0).all()


def test_selection_matches_a_per_event_sort_on_random_events():
    rng = np.random.default_rng(3)
    events = [[(0, [(211, float(rng.exponential(10)), 0.0, 0.0)
                    for _ in range(rng.integers(0, 6))])
               for _ in range(rng.integers(0, 5))] for _ in range(200)]
    chunk = make_chunk(events)
    sel = select_leading(chunk, num_jets=3, num_constits=4)
    jet_start = 0
    con_start = np.cumsum(chunk.jet_num_constits) - chunk.jet_num_constits
    for e, ev in enumerate(events):
        ids = np.arange(jet_start, jet_start + len(ev))
        jet_start += len(ev)
        order = ids[np.argsort(-sel.jet_pt[ids], kind="stable")][:3]
        np.testing.assert_array_equal(sel.jet_src[e, : len(order)], order)
        assert (sel.jet_src[e, len(order):] == -1).all()
        for slot, jet in enumerate(order):
            cids = con_start[jet] + np.arange(chunk.jet_num_constits[jet])
            want = cids[np.argsort(-chunk.con_pt[cids], kind="stable")][:4]
            np.testing.assert_array_equal(sel.con_src[e, slot, : len(want)], want)
            assert (sel.con_src[e, slot, len(want):] == -1).all()


def test_particle_classes():
    pids = np.array([211, -211, 321, 2212, -2212, 2112, 130, 310, 3122, 22, 11, -11, 13, -13,
                     12, 3222, 3112])
    names = [PID_CLASSES[k] for k in particle_class(pids)]
    assert names == [
        "is_charged_hadron", "is_charged_hadron", "is_charged_hadron", "is_charged_hadron",
        "is_charged_hadron", "is_neutral_hadron", "is_neutral_hadron", "is_neutral_hadron",
        "is_neutral_hadron", "is_photon", "is_electron", "is_electron", "is_muon", "is_muon",
        "is_neutral_hadron", "is_charged_hadron", "is_charged_hadron",
    ]


@pytest.mark.parametrize("input_features", ["4momentum", "4momentum_btag", "pj_custom", "all"])
def test_feature_shapes_and_padding(input_features):
    chunk = make_chunk(EVENTS)
    sel = select_leading(chunk, num_jets=2, num_constits=3)
    feats = build_features(chunk, sel, input_features)
    con, jet, ev = feats["constituent"], feats["jet"], feats["event"]
    assert con.values.shape == (3, 6, len(feature_names(input_features, "constituent")))
    assert jet.values.shape == (3, 2, len(feature_names(input_features, "jet")))
    assert ev.values.shape == (3, len(feature_names(input_features, "event")))
    assert (con.values[~con.mask] == 0).all() and (jet.values[~jet.mask] == 0).all()
    np.testing.assert_array_equal(con.mask, sel.con_mask.reshape(3, 6))


def test_feature_values():
    chunk = make_chunk(EVENTS)
    sel = select_leading(chunk, num_jets=2, num_constits=3)
    feats = build_features(chunk, sel, "all")
    con, jet, ev = feats["constituent"], feats["jet"], feats["event"]
    c = {n: con.values[..., i] for i, n in enumerate(con.names)}
    j = {n: jet.values[..., i] for i, n in enumerate(jet.names)}
    e = {n: ev.values[..., i] for i, n in enumerate(ev.names)}
    # slot 0 of event 0: the 20 GeV K_L of the b-tagged leading jet (jet-major layout)
    assert c["pt"][0, 0] == 20.0 and c["is_neutral_hadron"][0, 0] == 1.0
    assert c["jet_btag"][0, 0] == 1.0 and c["jet_btag"][0, 3] == 0.0
    assert c["pt"][0, 3] == 20.0 and c["is_charged_hadron"][0, 3] == 1.0  # the proton
    np.testing.assert_allclose(c["deta"][0, :3], 0.0, atol=1e-6)  # collinear jet
    assert j["num_constits"][0, 0] == 4 and j["b_tagged"][0, 0] == 1
    np.testing.assert_allclose(j["pt"][0, 0], 30.0, rtol=1e-6)
    np.testing.assert_allclose(e["ht"], [60.0, 7.0, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(e["num_jets"], [3, 1, 0])
    np.testing.assert_array_equal(e["n_btag"], [1, 1, 0])
    np.testing.assert_allclose(e["j1_pt"], [30.0, 7.0, 0.0], rtol=1e-6)
    assert e["mjj"][1] == pytest.approx(0.0, abs=1e-3)  # one massless jet
    assert e["mjj"][0] > 0 and e["mt"][0] > 0 and e["mt"][2] == pytest.approx(0.0, abs=1e-6)
