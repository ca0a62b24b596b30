"""Annealing (``annealing_params``): schedules that change the weights the objective uses.

Each entry targets one named weight of the loss (a key of ``LossEntry.weight_keys``, such as
``reg_param`` or ``contrastive_temperature``) and writes ``objective.weights[name]`` at the
start of every epoch, so the next batches use it (the original BEAD rewrote its config, which
its losses had copied once, so annealing changed nothing). Epochs are numbered from 1, as in
the history. Strategies:

- ``constant_pace``: linear from ``start_value`` (default: the configured value) at epoch 1 to
  ``end_value`` at epoch ``total_steps`` (default: ``epochs``), then constant. Epoch e uses
  start + (end - start) * (e - 1) / (total_steps - 1), so both ends are reached exactly.
- ``scheduled``: ``schedule = {epoch = value, ...}``: the value of the latest listed epoch not
  after the current one; before the first listed epoch, the configured value.
- ``trigger_based``: ``values = [...]``, starting at ``values[current_index]`` (default 0); on
  each rising edge (false -> true, judged after an epoch) of ``trigger_source`` the next value
  is used from the next epoch on (it stays on the last). Triggers (``TRIGGERS``) are read from
  the early-stopping counter and the learning-rate plateau scheduler.

Torch-free: the config checks entries when it loads. The state that cannot be recomputed from
the epoch (a trigger entry's position and whether its trigger is on) goes into ``last.pt``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from bead.errors import UsageError

STRATEGIES = ("constant_pace", "scheduled", "trigger_based")
TRIGGERS: Mapping[str, str] = {
    "early_stopper_counter": "an epoch without improvement (early-stopping counter above 0)",
    "early_stopper_half_patience": "the early-stopping counter reached half the patience",
    "early_stopper_third_patience": "the early-stopping counter reached a third of the patience",
    "lr_scheduler_triggered": "the plateau scheduler just reduced the learning rate",
}
_KEYS = {
    "constant_pace": ("strategy", "end_value", "start_value", "total_steps"),
    "scheduled": ("strategy", "schedule"),
    "trigger_based": ("strategy", "values", "trigger_source", "current_index"),
}


@dataclass(frozen=True)
class AnnealEntry:
    """One checked ``annealing_params`` entry."""

    target: str
    strategy: str
    end_value: float = 0.0
    start_value: float | None = None
    total_steps: int = 1
    schedule: tuple[tuple[int, float], ...] = ()
    values: tuple[float, ...] = ()
    trigger_source: str = ""
    current_index: int = 0


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _integer(where: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UsageError(f"{where}: expected an integer >= {low}, got {value!r}")
    return value


def _choice(where: str, value: Any, valid: tuple[str, ...]) -> str:
    text = str(value).lower()
    if text not in valid:
        close = difflib.get_close_matches(text, valid, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UsageError(f"{where} = {value!r} is unknown{hint}; valid: {', '.join(valid)}")
    return text


def parse_entry(target: str, raw: Mapping[str, Any], epochs: int, lr_scheduler: bool,
                check_value: Callable[[str, float], None]) -> AnnealEntry:
    """One entry, checked; ``check_value(target, v)`` applies the target key's own bounds."""
    where = f"annealing_params.{target}"
    strategy = _choice(f"{where}.strategy", raw.get("strategy", ""), STRATEGIES)
    unknown = [k for k in raw if k not in _KEYS[strategy]]
    if unknown:
        raise UsageError(f"{where}.{unknown[0]}: not a setting of strategy '{strategy}'; valid: "
                         f"{', '.join(_KEYS[strategy])}")

    def value(key: str, v: Any) -> float:
        number = _number(f"{where}.{key}", v)
        try:
            check_value(target, number)
        except (UsageError, ValueError) as err:
            raise UsageError(f"{where}.{key} = {v!r}: out of range for {target} ({err})") from None
        return number

    if strategy == "constant_pace":
        if "end_value" not in raw:
            raise UsageError(f"{where}: constant_pace needs end_value")
        start = raw.get("start_value")
        return AnnealEntry(
            target, strategy, end_value=value("end_value", raw["end_value"]),
            start_value=None if start is None else value("start_value", start),
            total_steps=_integer(f"{where}.total_steps", raw.get("total_steps", epochs), 1))
    if strategy == "scheduled":
        schedule = raw.get("schedule")
        if not isinstance(schedule, Mapping) or not schedule:
            raise UsageError(f"{where}: scheduled needs schedule = {{epoch = value, ...}} with "
                             "at least one epoch (epochs count from 1)")
        steps = []
        for key, v in schedule.items():
            text = str(key)
            if not text.isdigit() or int(text) < 1:
                raise UsageError(f"{where}.schedule: {key!r} is not an epoch number (epochs "
                                 "count from 1)")
            steps.append((int(text), value(f"schedule.{text}", v)))
        return AnnealEntry(target, strategy, schedule=tuple(sorted(steps)))
    values = raw.get("values")
    if not isinstance(values, list | tuple) or not values:
        raise UsageError(f"{where}: trigger_based needs a non-empty list values = [...]")
    source = _choice(f"{where}.trigger_source", raw.get("trigger_source", ""), tuple(TRIGGERS))
    if source == "lr_scheduler_triggered" and not lr_scheduler:
        raise UsageError(f"{where}: trigger_source = 'lr_scheduler_triggered' never fires with "
                         "lr_scheduler = false")
    index = _integer(f"{where}.current_index", raw.get("current_index", 0), 0)
    if index >= len(values):
        raise UsageError(f"{where}.current_index = {index}: values has only {len(values)} "
                         "entries")
    return AnnealEntry(target, strategy, values=tuple(value(f"values[{i}]", v)
                                                      for i, v in enumerate(values)),
                       trigger_source=source, current_index=index)


def parse_annealing(params: Mapping[str, Mapping[str, Any]], loss_function: str,
                    weight_keys: tuple[str, ...], epochs: int, lr_scheduler: bool,
                    check_value: Callable[[str, float], None]) -> list[AnnealEntry]:
    """Every entry of ``annealing_params``, checked: the target must be a weight the loss
    uses (``weight_keys``), the schedule well formed; a UsageError names the entry."""
    entries = []
    for target, raw in params.items():
        if target not in weight_keys:
            close = difflib.get_close_matches(target, weight_keys, n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UsageError(f"annealing_params.{target}: not a weight that loss_function = "
                             f"'{loss_function}' uses{hint}; it uses: "
                             f"{', '.join(weight_keys) or 'none'}")
        entries.append(parse_entry(target, raw, epochs, lr_scheduler, check_value))
    return entries


def trigger_signals(bad_epochs: int, patience: int, lr_reduced: bool) -> dict[str, bool]:
    """The state of every trigger after an epoch (see ``TRIGGERS``)."""
    return {"early_stopper_counter": bad_epochs > 0,
            "early_stopper_half_patience": bad_epochs >= patience / 2,
            "early_stopper_third_patience": bad_epochs >= patience / 3,
            "lr_scheduler_triggered": lr_reduced}


class Schedule:
    """Writes the annealed values into ``weights`` (the objective's dict, changed in place)."""

    def __init__(self, entries: list[AnnealEntry], weights: dict[str, float]) -> None:
        self.entries = entries
        self.weights = weights
        self.configured = {e.target: float(weights[e.target]) for e in entries}
        self.index = {e.target: e.current_index for e in entries if e.values}
        self.on = {e.target: False for e in entries if e.values}

    def value(self, entry: AnnealEntry, epoch: int) -> float:
        """The value of ``entry`` in force during ``epoch`` (counted from 1)."""
        if entry.strategy == "constant_pace":
            start = self.configured[entry.target] if entry.start_value is None else \
                entry.start_value
            n = entry.total_steps
            frac = 1.0 if n == 1 else min(max((epoch - 1) / (n - 1), 0.0), 1.0)
            return start + (entry.end_value - start) * frac
        if entry.strategy == "scheduled":
            listed = [v for e, v in entry.schedule if e <= epoch]
            return listed[-1] if listed else self.configured[entry.target]
        return entry.values[self.index[entry.target]]

    def start_epoch(self, epoch: int) -> None:
        for entry in self.entries:
            self.weights[entry.target] = self.value(entry, epoch)

    def end_epoch(self, signals: Mapping[str, bool]) -> None:
        """Advance every trigger entry whose trigger just turned on."""
        for entry in self.entries:
            if entry.values:
                now = bool(signals[entry.trigger_source])
                if now and not self.on[entry.target]:
                    self.index[entry.target] = min(self.index[entry.target] + 1,
                                                   len(entry.values) - 1)
                self.on[entry.target] = now

    def state_dict(self) -> dict[str, Any]:
        return {"entries": self._fingerprint(), "index": dict(self.index), "on": dict(self.on)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if list(state["entries"]) != self._fingerprint():
            raise UsageError("cannot resume: annealing_params changed since the run started; "
                             "train without resume")
        self.index = {k: int(v) for k, v in state["index"].items()}
        self.on = {k: bool(v) for k, v in state["on"].items()}

    def _fingerprint(self) -> list[str]:
        return [json.dumps(asdict(e), sort_keys=True) for e in self.entries]
