"""ONNX export: the graph that onnxruntime runs gives the scores detect wrote, for every model
family, at any batch size; the sidecar holds the input contract; failures write nothing.

Each project is a real workspace (tiny toy tensors from tests/training/tensor_folder.py, with a
scalers.json fitted by the package's own scalers) run through ``train_detect_export`` by the CLI.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "training"))
from tensor_folder import make_tensor_folder, small_config

from bead.cli import main
from bead.config import create_project
from bead.errors import BeadError, DataError, MissingExtraError
from bead.evaluation.scores import read_scores
from bead.export import (
    ATOL,
    EXPORT_DIR,
    LATENT,
    ONNX_FILE,
    OPSET,
    RTOL,
    SIDECAR,
    STEP_FORMULAS,
    export_model,
    import_extras,
    read_sidecar,
)
from bead.models.bodies import ConvBody
from bead.prepare.manifest import SCALERS, prepared_dir, read_manifest
from bead.prepare.scalers import STEPS, LevelScaler, Scalers
from bead.project import ProjectPaths

ort = pytest.importorskip("onnxruntime")

# (model_name, loss_function, input_level, model_params): a conv VAE with a latent flow, a
# multi-level set VAE and both flow densities, kept small so that tracing stays quick.
PROJECTS = {
    "Planar_ConvVAE": ("VAEFlowLoss", "jet", {"channels": [8, 8], "hidden": 32,
                                              "num_flows": 3}),
    "SetVAE": ("VAEFlowLoss", "event+jet+constituent", {"hidden": 32, "set_hidden": 16,
                                                        "slot_embedding": 4}),
    "MAF_Density": ("FlowNLLLoss", "event+jet", {"transforms": 2, "hidden_features": [16, 16]}),
    "NSF_Density": ("FlowNLLLoss", "event+jet", {"transforms": 2, "hidden_features": [16, 16],
                                                 "bins": 4}),
}
# The toy features' kinds, so that pj_custom (the default normalisation) fits log, standard and
# robust steps on them.
KINDS = {"constituent": ["energy", "signed", "signed"],
         "jet": ["energy", "signed", "signed", "count"],
         "event": ["signed", "signed", "energy"]}
_TENSORS = {"constituent": ("constituents", "constituent_mask"), "jet": ("jets", "jet_mask"),
            "event": ("events", None)}


def _fit_scalers(tensors: Path, normalizations: str) -> None:
    """A real scalers.json for the toy preparation, and its SHA-256 in the manifest."""
    manifest = read_manifest(tensors)
    rng = np.random.default_rng(0)
    levels = {level: LevelScaler.fit(normalizations, np.abs(rng.normal(size=(50, len(names)))),
                                     names, KINDS[level], level=level)
              for level, names in manifest.features.items()}
    Scalers(normalizations, levels).save(tensors / SCALERS)
    digest = hashlib.sha256((tensors / SCALERS).read_bytes()).hexdigest()
    dataclasses.replace(manifest, scalers_sha256=digest).write()


def make_project(root: Path, model_name: str) -> ProjectPaths:
    """A workspace with one prepared toy sample set and a project configured for
    ``model_name``, not yet trained."""
    loss, level, params = PROJECTS[model_name]
    config = small_config(model_name=model_name, loss_function=loss, input_level=level,
                          model_params=params, epochs=1, batch_size=200)
    paths = ProjectPaths(root, "ws", model_name.lower())
    create_project(paths, config)
    tensors = make_tensor_folder(prepared_dir(paths.tensors_dir, config))
    _fit_scalers(tensors, config.normalizations)
    return paths


ONE_PROJECT = pytest.mark.parametrize("exported", ["Planar_ConvVAE"], indirect=True)


def cli(paths: ProjectPaths, *args: str) -> int:
    return main([*args, "-p", paths.workspace, paths.project, "--workspaces", str(paths.root),
                 "--no-progress"])


@pytest.fixture(scope="module", params=list(PROJECTS))
def exported(request, tmp_path_factory) -> ProjectPaths:
    """A project trained, scored and exported by ``chain -o train_detect_export``."""
    paths = make_project(tmp_path_factory.mktemp("export"), request.param)
    assert cli(paths, "-m", "chain", "-o", "train_detect_export") == 0
    return paths


def sample_inputs(tensors: Path, entry, levels) -> dict[str, np.ndarray]:
    """The graph's inputs for one prepared sample, read from its safetensors file as a user
    outside BEAD would (event level: one slot, always real)."""
    from safetensors.numpy import load_file

    data = load_file(str(tensors / entry.file))
    feeds = {}
    for level in levels:
        x_key, mask_key = _TENSORS[level]
        x = data[x_key].astype(np.float32)
        x = x[:, None, :] if mask_key is None else x
        mask = np.ones(x.shape[:2], bool) if mask_key is None else data[mask_key].astype(bool)
        feeds[f"{level}_x"], feeds[f"{level}_mask"] = x, mask
    return feeds


def assert_close(got: np.ndarray, want: np.ndarray, name: str) -> None:
    """The stated tolerance: |onnxruntime - detect| <= ATOL + RTOL * max |detect| per score."""
    np.testing.assert_allclose(got, want, rtol=0,
                               atol=ATOL + RTOL * float(np.abs(want).max()), err_msg=name)


def test_onnxruntime_reproduces_the_detect_scores(exported: ProjectPaths) -> None:
    folder = exported.output_dir / EXPORT_DIR
    sidecar = read_sidecar(folder)
    table = read_scores(exported.results_dir / "scores.h5")
    outputs = [o["name"] for o in sidecar["outputs"]]
    assert outputs[-1] == LATENT and sorted(outputs[:-1]) == sorted(table.scores)  # all of them
    levels = list(sidecar["levels"])
    tensors = exported.tensors_dir / sidecar["preparation"]["key"]
    manifest = read_manifest(tensors)
    session = ort.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [i["name"] for i in sidecar["inputs"]]
    for index, stem in enumerate(table.sample_names):
        entry = next(e for e in manifest.samples if e.stem == stem)
        feeds = sample_inputs(tensors, entry, levels)
        rows = table.sample_index == index
        # the whole sample (200 events) and 7 of them: neither is the exported batch of 3
        for cut in (slice(None), slice(5, 12)):
            got = dict(zip(outputs, session.run(outputs, {k: v[cut] for k, v in feeds.items()}),
                           strict=True))
            for name in table.scores:
                assert_close(got[name], table.scores[name][rows][cut], f"{stem} {name}")
            assert_close(got[LATENT], table.latent[rows][cut], f"{stem} latent")


def test_the_sidecar_holds_the_input_contract(exported: ProjectPaths) -> None:
    folder = exported.output_dir / EXPORT_DIR
    sidecar = json.loads((folder / SIDECAR).read_text())
    spec = json.loads((exported.models_dir / "model.json").read_text())
    tensors = exported.tensors_dir / spec["prepared_key"]
    manifest = read_manifest(tensors)
    scalers = json.loads((tensors / SCALERS).read_text())
    levels = spec["levels"]
    assert list(sidecar["levels"]) == levels
    assert [i["name"] for i in sidecar["inputs"]] == [
        f"{lv}_{part}" for lv in levels for part in ("x", "mask")]
    for level in levels:
        lo = sidecar["levels"][level]
        assert lo["features"] == manifest.features[level] == spec["layout"][level]["features"]
        assert lo["physical_features"] == scalers["levels"][level]["input_names"]
        n_slots = spec["layout"][level]["n_slots"]
        assert lo["n_slots"] == n_slots == (1 if level == "event" else
                                            {"jet": 2, "constituent": 6}[level])
        x, mask = (next(i for i in sidecar["inputs"] if i["name"] == f"{level}_{part}")
                   for part in ("x", "mask"))
        assert x["shape"] == ["batch", n_slots, len(lo["features"])] and x["dtype"] == "float32"
        assert mask["shape"] == ["batch", n_slots] and mask["dtype"] == "bool"
    assert sidecar["scalers"] == scalers  # the fitted parameters, verbatim
    assert sidecar["preparation"]["scalers_sha256"] == hashlib.sha256(
        (tensors / SCALERS).read_bytes()).hexdigest()
    assert sidecar["preparation"]["settings"] == manifest.settings
    assert set(sidecar["preparation"]["step_formulas"]) == {"log", "standard", "robust"}
    metrics = json.loads((exported.results_dir / "metrics.json").read_text())
    assert sidecar["primary_score"] == metrics["primary_score"]
    latent = next(o for o in sidecar["outputs"] if o["name"] == LATENT)
    assert latent["shape"] == ["batch", read_scores(exported.results_dir / "scores.h5")
                               .latent.shape[1]]
    versions = sidecar["versions"]
    assert versions["torch"] == torch.__version__ and versions["onnxruntime"] == ort.__version__
    assert versions["opset"] == OPSET and versions["exporter"] == "dynamo"
    assert sidecar["onnx_sha256"] == hashlib.sha256((folder / ONNX_FILE).read_bytes()).hexdigest()
    assert sidecar["check"]["max_rel_diff"].keys() == {o["name"] for o in sidecar["outputs"]}
    assert max(sidecar["check"]["max_rel_diff"].values()) <= RTOL


def test_every_normalisation_step_has_its_formula() -> None:
    assert set(STEP_FORMULAS) == set(STEPS)


def test_export_before_train_names_the_missing_file(tmp_path: Path, capsys) -> None:
    paths = make_project(tmp_path, "Planar_ConvVAE")
    assert cli(paths, "-m", "export") == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "models/model.json" in errors[0]
    assert errors[0].endswith("(run train first)")
    assert not (paths.output_dir / EXPORT_DIR / ONNX_FILE).exists()


@ONE_PROJECT
def test_other_scalers_than_the_trained_ones_are_refused(exported: ProjectPaths,
                                                         tmp_path: Path) -> None:
    spec = json.loads((exported.models_dir / "model.json").read_text())
    tensors = tmp_path / "tensors"
    shutil.copytree(exported.tensors_dir / spec["prepared_key"], tensors)
    scalers = json.loads((tensors / SCALERS).read_text())
    scalers["levels"]["jet"]["steps"][0]["columns"] = []
    (tensors / SCALERS).write_text(json.dumps(scalers))
    with pytest.raises(DataError, match="not the scalers the model was trained with"):
        export_model(exported.models_dir, tensors, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_missing_extra_is_one_line_naming_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'bead-hep\[export\]'"):
        import_extras()


@ONE_PROJECT
def test_the_torchscript_exporter_takes_over_when_torch_export_refuses(
        exported: ProjectPaths, tmp_path: Path, monkeypatch) -> None:
    """A data-dependent branch (here a NaN guard) stops torch.export; the TorchScript tracer
    takes the branch the prepared events take, and the check confirms the graph."""
    encode = ConvBody.encode

    def guarded(self, batch):
        h = encode(self, batch)
        if bool(torch.isnan(h).any()):
            return torch.zeros_like(h)
        return h

    monkeypatch.setattr(ConvBody, "encode", guarded)
    spec = json.loads((exported.models_dir / "model.json").read_text())
    result = export_model(exported.models_dir, exported.tensors_dir / spec["prepared_key"],
                          tmp_path)
    assert result.exporter == "torchscript"
    assert read_sidecar(tmp_path)["versions"]["exporter"] == "torchscript"


@ONE_PROJECT
def test_an_unsupported_operator_is_refused_and_nothing_is_written(
        exported: ProjectPaths, monkeypatch) -> None:
    folder = exported.output_dir / EXPORT_DIR
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    encode = ConvBody.encode

    def with_searchsorted(self, batch):
        h = encode(self, batch)
        edges = torch.linspace(-1.0, 1.0, 5, device=h.device)
        return h + 0.0 * torch.searchsorted(edges, h.contiguous()).to(h.dtype)

    monkeypatch.setattr(ConvBody, "encode", with_searchsorted)
    spec = json.loads((exported.models_dir / "model.json").read_text())
    with pytest.raises(BeadError) as err:
        export_model(exported.models_dir, exported.tensors_dir / spec["prepared_key"], folder)
    message = str(err.value)
    assert "\n" not in message and "model_name = 'Planar_ConvVAE'" in message
    assert "dynamo: unsupported operator aten::searchsorted" in message
    assert "torchscript: unsupported operator aten::searchsorted" in message
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # the old export stays
