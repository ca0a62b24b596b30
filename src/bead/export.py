"""ONNX export of a trained model with its input contract (SPEC §9, mode ``export``).

Experiments run models inside their own software (CMSSW and most trigger and analysis
frameworks run ONNX), so the trained model leaves BEAD as one ONNX graph from the prepared
inputs to the per-event scores, with a JSON sidecar saying how to prepare those inputs:

- graph inputs, for each level the model reads: ``<level>_x`` float32 ``[B, S, F]`` and
  ``<level>_mask`` bool ``[B, S]`` (the event level has one slot, its mask all true); B is
  dynamic;
- graph outputs: every per-event component of the model's objective (the numbers ``detect``
  writes to ``results/scores.h5``), named as there, in the objective's order, and ``latent``;
- the sidecar (``model.json``): feature names, slots and shapes per level, the preparation
  settings and the fitted scalers (``scalers.json`` verbatim, with the formula of each step),
  the outputs, the primary score, the versions and how closely onnxruntime reproduced PyTorch.

The model is rebuilt from ``models/model.json`` + ``best.pt`` in eval mode (a VAE scores its
posterior mean), so the graph is deterministic. The dynamo exporter (``torch.export`` +
onnxscript, the default and maintained path of torch.onnx) runs first; should it fail, the
TorchScript-based exporter (deprecated, but it traces some code torch.export refuses) is tried.
A graph is kept only when onnxruntime reproduces PyTorch on prepared events at two batch sizes
other than the one it was exported with; otherwise nothing is written and the error names the
model and the operator that could not be exported.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import bead
from bead import interrupt
from bead.errors import BeadError, DataError, MissingExtraError
from bead.evaluation.provenance import read_json_object
from bead.fileio import file_sha256, staged_folder
from bead.losses.objective import Objective
from bead.models.base import BeadModel
from bead.models.batch import Batch, Level
from bead.models.catalog import model_entry
from bead.prepare.manifest import SCALERS, read_manifest
from bead.training.checkpoint import BEST, ModelSpec, load_trained_model
from bead.training.data import load_sample

log = logging.getLogger(__name__)

EXPORT_DIR = "export"  # under the project's output/
ONNX_FILE = "model.onnx"
SIDECAR = "model.json"
SIDECAR_VERSION = 1
# onnxruntime >= 1.14 runs opset 18, as do the ONNX runtimes of the experiments' frameworks.
OPSET = 18
EXPORTERS = ("dynamo", "torchscript")
LATENT = "latent"
# onnxruntime must reproduce PyTorch within |ort - torch| <= ATOL + RTOL * (the largest |value|
# of that output on the checked events). Float32 rounding, amplified where an event sits far
# out (a planar flow stretches the latent), stays below 1e-5 of that scale; a broken graph is
# off by the scale itself.
RTOL = 1e-4
ATOL = 1e-5
EXAMPLE_EVENTS = 3  # the batch the graph is traced with (torch.export needs at least 2)
CHECK_EVENTS = 256  # prepared events per checked sample
# How to go from a level's physical columns to the prepared ones, per scalers.json step.
STEP_FORMULAS = {
    "log": "y = log(1 + x)",
    "sincos": "each column x becomes two columns, <name>_sin = sin(x), <name>_cos = cos(x), "
              "at its position",
    "standard": "y = (x - mean_) / scale_  (sklearn StandardScaler)",
    "robust": "y = (x - center_) / scale_  (sklearn RobustScaler)",
    "minmax": "y = x * scale_ + min_  (sklearn MinMaxScaler)",
    "maxabs": "y = x / scale_  (sklearn MaxAbsScaler)",
    "power": "t = Yeo-Johnson(x, lambdas_) (t = ((x + 1)^l - 1) / l for x >= 0, "
             "-((1 - x)^(2 - l) - 1) / (2 - l) for x < 0; log1p forms at l = 0 and l = 2), "
             "then y = (t - standard.mean_) / standard.scale_  (sklearn PowerTransformer, "
             "standardize=False)",
    "quantile": "u = linear interpolation of x from quantiles_[:, j] to references_ (x clipped "
                "to the fitted range), y = Phi^-1(clip(u, 1e-7, 1 - 1e-7)), Phi the standard "
                "normal CDF  (sklearn QuantileTransformer, output_distribution='normal')",
    "l2": "the columns are divided by their L2 norm over the row, and the norm is appended "
          "as a last column l2_norm",
}
_NOISY_LOGGERS = ("torch", "torch.__trace", "onnxscript", "onnx_ir")
# Loss terms that no fixed ONNX graph can compute, and why (the exporters fail on them too, with
# less telling messages); a model trained with such a loss is refused before tracing.
UNEXPORTABLE_TERMS = {
    "sinkhorn": "geomloss's Sinkhorn solver takes its number of iterations from the events "
                "(epsilon scaling down from the diameter of the point clouds), which a fixed "
                "graph cannot do; the Chamfer losses export",
    "dirichlet_kl": "the closed-form Dirichlet KL needs lgamma and digamma, for which ONNX "
                    "has no operator; DVAEFlowLoss exports",
}


def import_extras() -> tuple[ModuleType, ModuleType]:
    """``onnx`` and ``onnxruntime`` (and ``onnxscript``, which the dynamo exporter needs); a
    MissingExtraError naming the first one absent."""
    modules = []
    for package in ("onnx", "onnxruntime", "onnxscript"):
        try:
            modules.append(importlib.import_module(package))
        except ImportError:
            raise MissingExtraError("export", package, "ONNX export") from None
    return modules[0], modules[1]


def input_names(levels: tuple[str, ...]) -> list[str]:
    return [f"{level}_{part}" for level in levels for part in ("x", "mask")]


class ScoreGraph(nn.Module):
    """The trained model and its objective as one function of flat tensors: for each level
    ``x`` and ``mask`` in, the per-event components ``components`` (and the latent) out."""

    def __init__(self, model: BeadModel, objective: Objective, components: list[str],
                 with_latent: bool) -> None:
        super().__init__()
        self.model, self.objective = model, objective
        self.components, self.with_latent = components, with_latent
        self.names = components + ([LATENT] if with_latent else [])  # the graph's outputs

    @classmethod
    def of(cls, model: BeadModel, objective: Objective, example: tuple[Tensor, ...]
           ) -> ScoreGraph:
        """The graph of every component ``objective`` computes for ``model`` on ``example``."""
        probe = cls(model, objective, [], False).eval()
        with torch.no_grad():
            batch = probe.batch(*example)
            out = model(batch)
            components = list(objective.components(batch, out))
        if LATENT in components:
            raise BeadError(f"loss_function = '{objective.name}' has a component named "
                            f"'{LATENT}', the name of the latent output")
        return cls(model, objective, components, out.latent is not None).eval()

    def batch(self, *flat: Tensor) -> Batch:
        levels = {lv: Level(flat[2 * i], flat[2 * i + 1])
                  for i, lv in enumerate(self.model.levels)}
        n = flat[0].shape[0]
        return Batch(levels, torch.ones(n, dtype=flat[0].dtype, device=flat[0].device),
                     torch.full((n,), -1, dtype=torch.int64, device=flat[0].device),
                     torch.arange(n, device=flat[0].device))

    def forward(self, *flat: Tensor) -> tuple[Tensor, ...]:
        batch = self.batch(*flat)
        out = self.model(batch)
        components = self.objective.components(batch, out)
        scores = [components[name].float() for name in self.components]
        if self.with_latent:
            scores.append(out.latent.float())  # type: ignore[union-attr]
        # One tensor can be two components (a single term is its own total), but each graph
        # output needs its own value to carry its own name.
        seen: set[int] = set()
        for i, t in enumerate(scores):
            if id(t) in seen:
                scores[i] = t.clone()
            seen.add(id(scores[i]))
        return tuple(scores)


@dataclass(frozen=True)
class ExportResult:
    onnx_file: Path
    sidecar: Path
    exporter: str
    opset: int
    max_rel_diff: dict[str, float]


def _flat(batch: Batch, levels: tuple[str, ...]) -> tuple[Tensor, ...]:
    return tuple(t for lv in levels for t in (batch[lv].x.contiguous(), batch[lv].mask))


def _prepared_events(tensors_dir: Path, levels: tuple[str, ...]) -> Batch:
    """Real prepared events to trace and check with: the first events of the first background
    test sample and of the first signal sample (far from the training data), or of any
    sample when a preparation has neither."""
    manifest = read_manifest(tensors_dir)
    entries = [*manifest.of_flag("bkg_test")[:1], *manifest.of_flag("sig_test")[:1]]
    entries = entries or manifest.samples[:1]
    parts = [load_sample(tensors_dir, e, levels)[0] for e in entries]
    parts = [p.select(torch.arange(min(len(p), CHECK_EVENTS))) for p in parts]
    events = Batch.cat(parts) if parts else None
    if events is None or len(events) < EXAMPLE_EVENTS + 2:
        raise DataError(f"{manifest.path}: export needs at least {EXAMPLE_EVENTS + 2} prepared "
                        "events to trace and check the graph with")
    return events


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters: their warnings, log lines and the graph dumps that torch prints
    from C++ on a failure are noise to a user, since this module checks the result and
    reports a failure in one line. The dumps go to the debug log (``-v``)."""
    levels = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(sys.__stdout__), \
                    contextlib.redirect_stderr(sys.__stderr__):
                warnings.simplefilter("ignore")
                yield
        finally:
            sys.__stdout__.flush()
            sys.__stderr__.flush()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
            sink.seek(0)
            printed = sink.read().decode(errors="replace").strip()
            if printed:
                log.debug("the exporter printed:\n%s", printed[-4000:])


@contextlib.contextmanager
def _plain_attention() -> Iterator[None]:
    """In eval mode nn.TransformerEncoderLayer and nn.MultiheadAttention run a fused kernel
    (aten::_transformer_encoder_layer_fwd) that no exporter translates and that fixes the
    batch size; their plain form computes the same and is what gets traced."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def _sort(self: Any, dim: int = -1, descending: bool = False, stable: bool | None = None
          ) -> tuple[Any, Any]:
    """aten::sort as ONNX TopK over the whole axis (the torch library of onnxscript has no
    sort; the set losses sort occupancy logits). TopK puts equal values in index order, as
    a stable sort does; it runs in double so that any input type sorts exactly."""
    from onnxscript import opset18 as op
    from onnxscript.ir import DataType

    k = op.Gather(op.Shape(self), op.Constant(value_ints=[dim]))
    values, indices = op.TopK(op.Cast(self, to=DataType.DOUBLE), k, axis=dim,
                              largest=int(descending), sorted=1)
    return op.CastLike(values, self), indices


def _argsort(self: Any, dim: int = -1, descending: bool = False, stable: bool = False) -> Any:
    return _sort(self, dim, descending)[1]


def _translations() -> dict[Any, Any]:
    aten = torch.ops.aten
    return {aten.sort.default: _sort, aten.sort.stable: _sort,
            aten.argsort.default: _argsort, aten.argsort.stable: _argsort}


def _export(exporter: str, graph: ScoreGraph, example: tuple[Tensor, ...], inputs: list[str],
            path: Path, opset: int) -> None:
    outputs = graph.names
    axes = {name: {0: "batch"} for name in [*inputs, *outputs]}
    with _quiet(), _plain_attention(), torch.no_grad():
        if exporter == "dynamo":
            batch = torch.export.Dim("batch")
            torch.onnx.export(graph, example, path, dynamo=True, opset_version=opset,
                              input_names=inputs, output_names=outputs,
                              dynamic_shapes=(tuple({0: batch} for _ in example),),
                              custom_translation_table=_translations(),
                              external_data=False, verbose=False,
                              # onnxscript's graph rewrites cost accuracy (up to 1e-3 relative
                              # on planar flows); onnxruntime optimises the graph anyway
                              optimize=False)
        else:
            torch.onnx.export(graph, example, path, dynamo=False, opset_version=opset,
                              input_names=inputs, output_names=outputs, dynamic_axes=axes)


def within_tolerance(have: np.ndarray, want: np.ndarray) -> tuple[bool, float]:
    """Whether ``have`` reproduces ``want`` (see RTOL), and the largest |difference| relative
    to the largest |want|."""
    scale = float(np.abs(want).max(initial=0.0))
    diff = float(np.abs(have.astype(np.float64) - want.astype(np.float64)).max(initial=0.0))
    return diff <= ATOL + RTOL * scale, diff / max(scale, ATOL)


def _check(path: Path, graph: ScoreGraph, events: Batch, inputs: list[str]) -> dict[str, float]:
    """Run the graph at ``path`` with onnxruntime on ``events`` (all at once and the first
    event alone) and compare with PyTorch; the largest relative difference per output (see
    ``within_tolerance``), or a ValueError."""
    onnx, ort = import_extras()
    outputs = graph.names
    onnx.checker.check_model(str(path))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its constant-folding notes are noise here
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got_inputs = [i.name for i in session.get_inputs()]
    got_outputs = [o.name for o in session.get_outputs()]
    if got_inputs != inputs or got_outputs != outputs:
        raise ValueError(f"the graph has inputs {got_inputs} and outputs {got_outputs}, "
                         f"not {inputs} and {outputs}")
    worst = dict.fromkeys(outputs, 0.0)
    for batch in (events, events.select(torch.arange(1))):
        flat = _flat(batch, graph.model.levels)
        with torch.no_grad():
            expected = [t.numpy() for t in graph(*flat)]
        feeds = {name: t.numpy() for name, t in zip(inputs, flat, strict=True)}
        for name, want, have in zip(outputs, expected, session.run(outputs, feeds),
                                    strict=True):
            if have.shape != want.shape:
                raise ValueError(f"output {name} has shape {list(have.shape)} for "
                                 f"{len(batch)} events, PyTorch gives {list(want.shape)}")
            close, relative = within_tolerance(have, want)
            if not close:
                raise ValueError(f"onnxruntime differs from PyTorch on output {name} by "
                                 f"{relative:.2g} of its scale ({len(batch)} events)")
            worst[name] = max(worst[name], relative)
    return worst


# How each exporter names an operator it cannot translate.
_UNSUPPORTED = (re.compile(r"No ONNX function found for <OpOverload\(op='(\w+)\.(\w+)'"),
                re.compile(r"operator '?(aten)::(\w+)'? to ONNX opset version \d+ is not "
                           r"supported"))
_SUMMARY = re.compile(r"^<class '(?:[\w.]*\.)?(\w+)'>: (.+)$", re.MULTILINE)


def _reason(err: Exception) -> str:
    """One line for an exporter failure: the operator it could not translate where it says
    so, else the exception its report ends with."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    for pattern in _UNSUPPORTED:
        found = pattern.search(text)
        if found:
            return f"unsupported operator {found.group(1)}::{found.group(2)}"
    summary = _SUMMARY.findall(text)
    if summary:
        name, message = summary[0]
        return f"{name}: {message.strip()[:200]}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0][:200] if lines else ''}"


def _opset_of(path: Path) -> int:
    onnx, _ = import_extras()
    model = onnx.load(str(path), load_external_data=False)
    return next(int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _trained(models_dir: Path, tensors_dir: Path) -> tuple[BeadModel, ModelSpec, bytes]:
    """The trained model (on the CPU, in eval mode), its spec and the bytes of the
    ``scalers.json`` it was trained with; DataError naming what is missing or different."""
    model, spec = load_trained_model(models_dir, torch.device("cpu"))
    scalers_path = tensors_dir / SCALERS
    if not scalers_path.is_file():
        raise DataError(f"{scalers_path}: not found (run prepare_inputs)")
    scalers = scalers_path.read_bytes()
    if hashlib.sha256(scalers).hexdigest() != spec.scalers_sha256:
        raise DataError(f"{scalers_path}: not the scalers the model was trained with "
                        "(prepare_inputs ran again since); rerun train")
    return model, spec, scalers


@dataclass(frozen=True)
class Graph:
    """An exported, checked graph: its exporter, its outputs' shapes past the batch axis and
    the largest relative difference of onnxruntime from PyTorch per output."""

    exporter: str
    shapes: dict[str, list[int]]
    worst: dict[str, float]


def export_graph(name: str, model: BeadModel, objective: Objective, events: Batch, path: Path,
                 exporters: tuple[str, ...] = EXPORTERS, opset: int = OPSET) -> Graph:
    """Write the score graph of ``model`` (the catalog's ``name``, in eval mode) and
    ``objective`` to ``path``, traced on the first events of ``events`` and checked on all of
    them; ``exporters`` are tried in order. A BeadError naming the model and each exporter's
    reason when none gives a graph that reproduces PyTorch (``path`` is then removed)."""
    for term in objective.entry.score_terms:  # batch-level terms are no scores
        if term in UNEXPORTABLE_TERMS:
            raise BeadError(f"model_name = '{name}' trained with loss_function = "
                            f"'{objective.name}' cannot be exported to ONNX: its {term} term: "
                            f"{UNEXPORTABLE_TERMS[term]}")
    levels = model.levels
    example = _flat(events.select(torch.arange(EXAMPLE_EVENTS)), levels)
    graph = ScoreGraph.of(model.eval(), objective, example)
    inputs = input_names(levels)
    with torch.no_grad():
        shapes = {name: list(t.shape[1:])
                  for name, t in zip(graph.names, graph(*example), strict=True)}
    failures = []
    for exporter in exporters:
        try:
            _export(exporter, graph, example, inputs, path, opset)
            return Graph(exporter, shapes, _check(path, graph, events, inputs))
        except Exception as err:  # the exporters raise many types; each is reported
            interrupt.check_interrupted()  # an exporter may wrap a KeyboardInterrupt
            log.debug("the %s exporter failed for %s: %s", exporter, name, err)
            failures.append(f"{exporter}: {_reason(err)}")
            path.unlink(missing_ok=True)
    raise BeadError(f"model_name = '{name}' cannot be exported to ONNX (opset {opset}): "
                    f"{'; '.join(failures)}")


def export_model(models_dir: Path, tensors_dir: Path, out_dir: Path,
                 exporters: tuple[str, ...] = EXPORTERS, opset: int = OPSET) -> ExportResult:
    """Write ``model.onnx`` and its sidecar ``model.json`` into ``out_dir`` (together, or
    neither) for the trained model of ``models_dir``, checked on the prepared events of
    ``tensors_dir`` (the preparation it was trained on). ``exporters`` are tried in order."""
    onnx, ort = import_extras()
    models_dir, tensors_dir, out_dir = Path(models_dir), Path(tensors_dir), Path(out_dir)
    model, spec, scalers = _trained(models_dir, tensors_dir)
    events = _prepared_events(tensors_dir, spec.levels)
    with staged_folder(out_dir, last=(SIDECAR,)) as staging:
        path = staging / ONNX_FILE
        graph = export_graph(spec.model_name, model, spec.objective(), events, path, exporters,
                             opset)
        versions = {"bead": bead.__version__, "torch": torch.__version__,
                    "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                    "opset": _opset_of(path), "exporter": graph.exporter}
        sidecar = _sidecar(spec, tensors_dir, json.loads(scalers), models_dir, path,
                           graph.shapes, len(events), graph.worst, versions)
        (staging / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    log.info("exported %s with the %s exporter (opset %d) to %s and %s; onnxruntime gives "
             "PyTorch's scores on %d prepared events within %.0e of each score's scale",
             spec.model_name, graph.exporter, versions["opset"], out_dir / ONNX_FILE,
             out_dir / SIDECAR, len(events), RTOL)
    return ExportResult(out_dir / ONNX_FILE, out_dir / SIDECAR, graph.exporter,
                        versions["opset"], graph.worst)


def _sidecar(spec: ModelSpec, tensors_dir: Path, scalers: dict[str, Any], models_dir: Path,
             onnx_path: Path, outputs: dict[str, list[int]], n_checked: int,
             worst: dict[str, float], versions: dict[str, Any]) -> dict[str, Any]:
    """The input contract: everything a user needs to score events outside BEAD."""
    manifest = read_manifest(tensors_dir)
    levels, inputs = {}, []
    for level in spec.levels:
        layout = spec.layout[level]
        levels[level] = {"x": f"{level}_x", "mask": f"{level}_mask", "n_slots": layout.n_slots,
                         "features": list(layout.features),
                         "physical_features": scalers["levels"][level]["input_names"]}
        inputs += [{"name": f"{level}_x", "level": level, "dtype": "float32",
                    "shape": ["batch", layout.n_slots, layout.n_features]},
                   {"name": f"{level}_mask", "level": level, "dtype": "bool",
                    "shape": ["batch", layout.n_slots]}]
    out_list = [{"name": name, "dtype": "float32", "shape": ["batch", *shape]}
                for name, shape in outputs.items()]
    steps = sorted({s["name"] for lv in scalers["levels"].values() for s in lv["steps"]
                    if s["columns"]})
    return {
        "version": SIDECAR_VERSION,
        "onnx_file": ONNX_FILE,
        "onnx_sha256": file_sha256(onnx_path),
        "model": {"model_name": spec.model_name, "family": model_entry(spec.model_name).family,
                  "loss_function": spec.loss_function,
                  "model_sha256": file_sha256(models_dir / BEST),
                  "model_spec": spec.to_json()},  # models/model.json of the exported best.pt
        "levels": levels,
        "inputs": inputs,
        "outputs": out_list,
        "primary_score": spec.objective().primary_score,
        "scores": "per event; higher means more anomalous; the numbers detect writes to "
                  "results/scores.h5",
        "preparation": {
            "key": manifest.key, "settings": manifest.settings,
            "scalers_sha256": spec.scalers_sha256,
            "recipe": "per level, the physical features (physical_features, as bead's "
                      "prepare_inputs computes them) of each real slot go through the steps "
                      "of scalers.levels.<level>.steps in order; a step reads the columns of "
                      "its 'columns' (indices into the current columns) and writes its "
                      "outputs in place (sincos: two columns; l2: one more at the end). The "
                      "result has the columns 'features'. Padded slots are 0 and masked "
                      "false; the event level is one slot, always real.",
            "step_formulas": {name: STEP_FORMULAS[name] for name in steps},
        },
        "scalers": scalers,
        "check": {"rule": "|onnxruntime - PyTorch| <= atol + rtol * max |PyTorch| per output",
                  "events": n_checked, "batch_sizes": [n_checked, 1],
                  "exported_batch_size": EXAMPLE_EVENTS, "rtol": RTOL, "atol": ATOL,
                  "max_rel_diff": worst},
        "versions": versions,
    }


def read_sidecar(folder: Path) -> dict[str, Any]:
    """The sidecar of an export in ``folder``; DataError when missing, of another version or
    not describing the ``model.onnx`` beside it."""
    path = Path(folder) / SIDECAR
    data = read_json_object(path, "export")
    if data.get("version") != SIDECAR_VERSION:
        raise DataError(f"{path}: not an export sidecar of version {SIDECAR_VERSION} "
                        "(run export again)")
    graph = Path(folder) / ONNX_FILE
    if not graph.is_file() or file_sha256(graph) != data.get("onnx_sha256"):
        raise DataError(f"{path}: does not describe {graph} (run export again)")
    return data

