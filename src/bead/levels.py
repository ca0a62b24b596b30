"""Input levels (event, jet, constituent) and the feature layout a model is built for.

Torch-free, so the config can check an ``input_level`` and a model's levels when it loads.
``input_level`` is one level or several joined by ``+`` (``event+jet``); they are kept in the
canonical order event, jet, constituent whatever order the user wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

LEVELS = ("event", "jet", "constituent")


def parse_levels(text: str) -> tuple[str, ...]:
    """``"jet+event"`` -> ``("event", "jet")``; ValueError naming an unknown or repeated one."""
    parts = [p.strip() for p in str(text).split("+")]
    for part in parts:
        if part not in LEVELS:
            raise ValueError(f"unknown input level {part!r} in {text!r}; use one of "
                             f"{', '.join(LEVELS)}, or several joined by '+'")
    repeated = sorted({p for p in parts if parts.count(p) > 1})
    if repeated:
        raise ValueError(f"input level {repeated[0]!r} is given twice in {text!r}")
    return tuple(level for level in LEVELS if level in parts)


@dataclass(frozen=True)
class LevelLayout:
    """One level as a model sees it: ``n_slots`` objects of ``features`` each (event: 1 slot)."""

    n_slots: int
    features: tuple[str, ...]

    @property
    def n_features(self) -> int:
        return len(self.features)


Layout = Mapping[str, LevelLayout]


def layout_to_json(layout: Layout) -> dict[str, dict[str, object]]:
    return {level: {"n_slots": lo.n_slots, "features": list(lo.features)}
            for level, lo in layout.items()}


def layout_from_json(data: Mapping[str, Mapping[str, object]]) -> dict[str, LevelLayout]:
    return {str(level): LevelLayout(int(lo["n_slots"]),  # type: ignore[call-overload]
                                    tuple(str(f) for f in lo["features"]))  # type: ignore[union-attr]
            for level, lo in data.items()}
