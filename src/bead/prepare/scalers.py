"""Feature normalisations, fitted on background training data and stored as JSON (SPEC §6).

``normalizations`` is ``pj_custom`` or a ``+`` chain of steps applied left to right:

=========  =====================================================================================
step       acts on (column kinds, see ``bead.prepare.features``) and how
=========  =====================================================================================
log        ``energy`` and ``count`` columns still non-negative: log1p (inverse expm1)
sincos     ``angle`` columns: each becomes two columns ``<name>_sin``, ``<name>_cos``
           (inverse arctan2); this changes the column count
standard   every non-binary column: sklearn StandardScaler
robust     every non-binary column: sklearn RobustScaler (median, inter-quartile range)
minmax     every non-binary column: sklearn MinMaxScaler to [0, 1]
maxabs     every non-binary column: sklearn MaxAbsScaler to [-1, 1]
power      every non-binary column: sklearn PowerTransformer (Yeo-Johnson, lambda bounded to
           [-3, 3] so nearly constant columns stay invertible), then standardised
quantile   every non-binary column: sklearn QuantileTransformer to a normal distribution
           (at most 1000 quantiles, seeded subsample of 100k rows). Values outside the fitted
           range are clipped, so only values inside it invert exactly.
l2         every non-binary column of a row divided by their L2 norm (sklearn ``normalize``);
           the norm is appended as an extra column ``l2_norm`` so the step can be inverted.
           That column is not scaled by ``l2`` itself: follow with another step
           (e.g. ``l2+standard``) if its raw size matters.
=========  =====================================================================================

A step other than ``log`` and ``sincos`` turns the columns it touches into ``signed`` ones, so
a later ``log`` leaves them alone (``standard+log`` logs nothing; a warning says so). When a
chain contains ``sincos``, the other steps leave ``angle`` columns to it, wherever it stands
(``log+standard+sincos``: phi becomes sin/cos of the raw angle; in ``sincos+standard`` the
sin/cos columns are then standardised too).

``pj_custom`` is the original BEAD recipe: log then standard for ``energy`` columns, standard
for ``signed`` ones (eta, deta, dphi), robust for ``count`` ones, sin/cos for ``angle`` ones.
``binary`` columns (b-tags, particle-class one-hots) are never touched by any step.

Scalers see only real (unmasked) slots; padded slots are exactly 0 after ``transform``. The
fitted parameters are written as JSON (never pickle) and the sklearn objects are rebuilt from
them, so a reloaded scaler gives identical transforms.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    PowerTransformer,
    QuantileTransformer,
    RobustScaler,
    StandardScaler,
    normalize,
)

from bead.errors import DataError
from bead.fileio import atomic_write_json

log = logging.getLogger(__name__)

SCALERS_VERSION = 1
CONTINUOUS = frozenset({"energy", "count", "signed", "angle"})


class Step:
    """One normalisation acting on the selected columns of a [rows, F] matrix."""

    name: ClassVar[str]
    default_kinds: ClassVar[frozenset[str]] = CONTINUOUS

    def __init__(self, columns: list[int]) -> None:
        self.columns = columns

    def fit(self, x: np.ndarray, seed: int) -> None:
        """Learn parameters from the selected columns ``x`` [rows, k] (stateless by default)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def inverse(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what ``state`` returned."""

    def placement(self, k: int) -> tuple[list[list[int]], list[int]]:
        """For each of the k selected inputs, the forward outputs replacing it in place; and
        the forward outputs appended after all columns."""
        return [[i] for i in range(k)], []

    def out_names(self, names: list[str]) -> list[str]:
        return names

    def out_kinds(self, kinds: list[str]) -> list[str]:
        return ["signed"] * len(kinds)


class LogStep(Step):
    name = "log"
    default_kinds = frozenset({"energy", "count"})

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.log1p(x)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return np.expm1(y)

    def out_kinds(self, kinds: list[str]) -> list[str]:
        return kinds


class SinCosStep(Step):
    name = "sincos"
    default_kinds = frozenset({"angle"})

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((len(x), 2 * x.shape[1]))
        out[:, 0::2], out[:, 1::2] = np.sin(x), np.cos(x)
        return out

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return np.arctan2(y[:, 0::2], y[:, 1::2])

    def placement(self, k: int) -> tuple[list[list[int]], list[int]]:
        return [[2 * i, 2 * i + 1] for i in range(k)], []

    def out_names(self, names: list[str]) -> list[str]:
        return [f"{n}_{part}" for n in names for part in ("sin", "cos")]

    def out_kinds(self, kinds: list[str]) -> list[str]:
        return ["signed"] * (2 * len(kinds))


class L2Step(Step):
    name = "l2"

    def forward(self, x: np.ndarray) -> np.ndarray:
        unit, norms = normalize(x, norm="l2", axis=1, return_norm=True)
        return np.column_stack([unit, norms])

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return y[:, :-1] * y[:, -1:]

    def placement(self, k: int) -> tuple[list[list[int]], list[int]]:
        return [[i] for i in range(k)], [k]

    def out_names(self, names: list[str]) -> list[str]:
        return [*names, "l2_norm"]

    def out_kinds(self, kinds: list[str]) -> list[str]:
        return [*(["signed"] * len(kinds)), "energy"]


class SklearnStep(Step):
    """A step backed by sklearn estimators whose fitted attributes round-trip through JSON."""

    attributes: ClassVar[tuple[str, ...]]

    def __init__(self, columns: list[int]) -> None:
        super().__init__(columns)
        self.estimator: Any = self.make(seed=0)

    def make(self, seed: int) -> Any:
        """A fresh, unfitted estimator."""
        raise NotImplementedError

    def fit(self, x: np.ndarray, seed: int) -> None:
        self.estimator = self.make(seed).fit(x)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.estimator.transform(x)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return self.estimator.inverse_transform(y)

    def state(self) -> dict[str, Any]:
        return {a: np.asarray(getattr(self.estimator, a)).tolist() for a in self.attributes}

    def load_state(self, state: dict[str, Any]) -> None:
        for a in self.attributes:
            value = np.asarray(state[a])
            setattr(self.estimator, a, value if value.ndim else value.item())
        self.estimator.n_features_in_ = len(self.columns)


class StandardStep(SklearnStep):
    name = "standard"
    attributes = ("mean_", "var_", "scale_", "n_samples_seen_")

    def make(self, seed: int) -> StandardScaler:
        return StandardScaler()


class RobustStep(SklearnStep):
    name = "robust"
    attributes = ("center_", "scale_")

    def make(self, seed: int) -> RobustScaler:
        return RobustScaler()


class MinMaxStep(SklearnStep):
    name = "minmax"
    attributes = ("min_", "scale_", "data_min_", "data_max_", "data_range_", "n_samples_seen_")

    def make(self, seed: int) -> MinMaxScaler:
        return MinMaxScaler()


class MaxAbsStep(SklearnStep):
    name = "maxabs"
    attributes = ("max_abs_", "scale_", "n_samples_seen_")

    def make(self, seed: int) -> MaxAbsScaler:
        return MaxAbsScaler()


class QuantileStep(SklearnStep):
    name = "quantile"
    attributes = ("quantiles_", "references_", "n_quantiles_")

    def make(self, seed: int) -> QuantileTransformer:
        return QuantileTransformer(n_quantiles=1000, output_distribution="normal",
                                   subsample=100_000, random_state=seed)

    def fit(self, x: np.ndarray, seed: int) -> None:
        self.estimator = self.make(seed).set_params(n_quantiles=min(1000, len(x))).fit(x)


# On a nearly constant column (a count that is almost always 0) the fitted lambda can run to
# -100 and beyond, which maps 1, 2, 3, ... to the same float: bounded, the step stays invertible.
LAMBDA_RANGE = (-3.0, 3.0)


class PowerStep(SklearnStep):
    """Yeo-Johnson without sklearn's built-in standardisation (whose scaler is private), followed
    by an explicit StandardScaler: the same transform, with public parameters only."""

    name = "power"
    attributes = ("lambdas_",)

    def __init__(self, columns: list[int]) -> None:
        super().__init__(columns)
        self.standard = StandardStep(columns)

    def make(self, seed: int) -> PowerTransformer:
        return PowerTransformer(method="yeo-johnson", standardize=False)

    def fit(self, x: np.ndarray, seed: int) -> None:
        super().fit(x, seed)
        self.estimator.lambdas_ = np.clip(self.estimator.lambdas_, *LAMBDA_RANGE)
        self.standard.fit(super().forward(x), seed)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.standard.forward(super().forward(x))

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return super().inverse(self.standard.inverse(y))

    def state(self) -> dict[str, Any]:
        return {**super().state(), "standard": self.standard.state()}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.standard.load_state(state["standard"])


STEPS: dict[str, type[Step]] = {cls.name: cls for cls in (
    MinMaxStep, StandardStep, RobustStep, LogStep, L2Step, PowerStep, QuantileStep,
    MaxAbsStep, SinCosStep)}

# pj_custom as (step, kinds it acts on), in order.
PJ_CUSTOM: tuple[tuple[str, frozenset[str]], ...] = (
    ("log", frozenset({"energy"})),
    ("standard", frozenset({"energy", "signed"})),
    ("robust", frozenset({"count"})),
    ("sincos", frozenset({"angle"})),
)


def recipe(normalizations: str) -> list[tuple[str, frozenset[str]]]:
    """The (step, column kinds) sequence a ``normalizations`` string stands for."""
    if normalizations == "pj_custom":
        return list(PJ_CUSTOM)
    steps = normalizations.split("+")
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown normalization {unknown[0]!r}")
    # With sincos in the chain, angles are kept for it (and its outputs are scaled by any
    # step after it), so "log+standard+sincos" gives sin/cos of the raw phi.
    reserved = frozenset({"angle"}) if "sincos" in steps else frozenset()
    return [(s, STEPS[s].default_kinds if s == "sincos" else STEPS[s].default_kinds - reserved)
            for s in steps]


class _Applied:
    """A step bound to its place in a level's pipeline: which columns it reads and where its
    outputs go in the wider (or same-width) matrix it produces."""

    def __init__(self, step: Step, n_in: int) -> None:
        self.step = step
        inplace, appended = step.placement(len(step.columns))
        where = {c: i for i, c in enumerate(step.columns)}
        layout: list[int] = []  # >= 0: input column; < 0: forward output -1 - j
        for c in range(n_in):
            layout += [-1 - j for j in inplace[where[c]]] if c in where else [c]
        layout += [-1 - j for j in appended]
        self.layout = np.array(layout, dtype=np.int64)
        self.n_in = n_in
        positions = np.flatnonzero(self.layout < 0)
        self._fwd_at = np.empty(len(positions), dtype=np.int64)  # output column of forward j
        self._fwd_at[-1 - self.layout[positions]] = positions
        self.same_layout = np.array_equal(self._fwd_at, step.columns)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Forward through the step; a step that keeps the column layout writes into ``x``."""
        if not self.step.columns:
            return x
        fwd = self.step.forward(x[:, self.step.columns])
        if self.same_layout:
            x[:, self.step.columns] = fwd
            return x
        keep = self.layout >= 0
        out = np.empty((len(x), len(self.layout)))
        out[:, keep] = x[:, self.layout[keep]]
        out[:, self._fwd_at] = fwd
        return out

    def undo(self, y: np.ndarray) -> np.ndarray:
        """Inverse of ``apply``, with the same in-place rule."""
        if not self.step.columns:
            return y
        if self.same_layout:
            y[:, self.step.columns] = self.step.inverse(y[:, self.step.columns])
            return y
        keep = self.layout >= 0
        x = np.empty((len(y), self.n_in))
        x[:, self.layout[keep]] = y[:, keep]
        x[:, self.step.columns] = self.step.inverse(y[:, self._fwd_at])
        return x

    def relabel(self, values: list[str], new: list[str]) -> list[str]:
        return [values[i] if i >= 0 else new[-1 - i] for i in self.layout]


class LevelScaler:
    """The fitted normalisation of one object level (constituent, jet or event)."""

    def __init__(self, names: list[str], kinds: list[str], steps: list[Step]) -> None:
        self.input_names, self.input_kinds = list(names), list(kinds)
        self.steps = steps
        self._applied: list[_Applied] = []
        names, kinds = list(names), list(kinds)
        for step in steps:
            applied = _Applied(step, len(names))
            picked_names = [names[c] for c in step.columns]
            picked_kinds = [kinds[c] for c in step.columns]
            names = applied.relabel(names, step.out_names(picked_names))
            kinds = applied.relabel(kinds, step.out_kinds(picked_kinds))
            self._applied.append(applied)
        self.output_names, self.output_kinds = names, kinds

    @classmethod
    def fit(cls, normalizations: str, x: np.ndarray, names: list[str], kinds: list[str],
            seed: int = 0, level: str = "") -> LevelScaler:
        """Fit on real rows ``x`` [rows, F]; each step is fitted on the previous one's output."""
        if len(x) == 0:
            raise DataError(f"no {level or 'training'} rows to fit the normalisations on")
        x = np.array(x, dtype=np.float64)  # a copy: steps may work in place
        steps: list[Step] = []
        cur_kinds = list(kinds)
        for name, wanted in recipe(normalizations):
            columns = [i for i, k in enumerate(cur_kinds) if k in wanted]
            if not columns and normalizations != "pj_custom":  # pj_custom: per kind, by design
                log.warning("normalisation step %r finds no %s column of kind %s", name,
                            level or "input", " or ".join(sorted(wanted)))
            step = STEPS[name](columns)
            if columns:
                step.fit(x[:, columns], seed)
            applied = _Applied(step, x.shape[1])
            x = applied.apply(x)
            cur_kinds = applied.relabel(cur_kinds, step.out_kinds([cur_kinds[c]
                                                                   for c in columns]))
            steps.append(step)
        return cls(names, kinds, steps)

    def transform_rows(self, x: np.ndarray) -> np.ndarray:
        """[rows, F_in] -> [rows, F_out], float64."""
        y = np.array(x, dtype=np.float64)  # a copy: steps may work in place
        for applied in self._applied:
            y = applied.apply(y)
        return y

    def inverse_rows(self, y: np.ndarray) -> np.ndarray:
        """[rows, F_out] -> [rows, F_in], float64."""
        x = np.array(y, dtype=np.float64)  # a copy: steps may work in place
        for applied in reversed(self._applied):
            x = applied.undo(x)
        return x

    def transform(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """[..., F_in] -> float32 [..., F_out]; slots where ``mask`` is False become 0."""
        return self._masked(values, mask, self.transform_rows, len(self.output_names))

    def inverse_transform(self, values: np.ndarray,
                          mask: np.ndarray | None = None) -> np.ndarray:
        """[..., F_out] -> float32 [..., F_in] in physical units; masked-out slots become 0."""
        return self._masked(values, mask, self.inverse_rows, len(self.input_names))

    @staticmethod
    def _masked(values: np.ndarray, mask: np.ndarray | None, fn: Any, width: int) -> np.ndarray:
        values = np.asarray(values)
        if mask is None:
            mask = np.ones(values.shape[:-1], dtype=bool)
        out = np.zeros((*values.shape[:-1], width), dtype=np.float32)
        if mask.any():
            out[mask] = fn(values[mask])
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "input_names": self.input_names, "input_kinds": self.input_kinds,
            "output_names": self.output_names,
            "steps": [{"name": s.name, "columns": s.columns,
                       "state": s.state() if s.columns else {}} for s in self.steps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LevelScaler:
        steps = []
        for entry in data["steps"]:
            step = STEPS[entry["name"]](list(entry["columns"]))
            if step.columns:
                step.load_state(entry["state"])
            steps.append(step)
        scaler = cls(data["input_names"], data["input_kinds"], steps)
        if scaler.output_names != data["output_names"]:
            raise ValueError("output_names do not match the steps")
        return scaler


class Scalers:
    """The fitted scalers of every level, with the recipe they came from."""

    def __init__(self, normalizations: str, levels: dict[str, LevelScaler]) -> None:
        self.normalizations = normalizations
        self.levels = levels

    def __getitem__(self, level: str) -> LevelScaler:
        return self.levels[level]

    def save(self, path: Path) -> None:
        atomic_write_json(path, {
            "version": SCALERS_VERSION, "normalizations": self.normalizations,
            "levels": {name: s.to_json() for name, s in self.levels.items()},
        })


def load_scalers(path: Path) -> Scalers:
    """Rebuild the scalers written by ``Scalers.save`` (e.g. to invert reconstructions)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != SCALERS_VERSION:
            raise ValueError(f"version {data.get('version')!r} is not {SCALERS_VERSION}")
        levels = {name: LevelScaler.from_json(d) for name, d in data["levels"].items()}
    except FileNotFoundError:
        raise DataError(f"{path}: scalers file not found (run prepare_inputs)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: unreadable scalers file ({exc}); run prepare_inputs again"
                        ) from None
    return Scalers(data["normalizations"], levels)
