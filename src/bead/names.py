"""The names a config may give as ``model_name`` and ``loss_function``, and which pairs fit.

Kept free of torch so that loading a config stays fast; the registries map the same names to
classes, and a test checks that both agree (names, ``provides`` and ``requires``).
"""

from __future__ import annotations

import difflib

from bead.errors import UsageError

# The optional ModelOutput parts each model fills.
MODEL_PROVIDES: dict[str, frozenset[str]] = {
    "AE": frozenset({"zk"}),
    "ConvAE": frozenset({"zk"}),
    "ConvVAE": frozenset({"mu", "logvar", "z0", "zk"}),
    "Planar_ConvVAE": frozenset({"mu", "logvar", "ldj", "z0", "zk"}),
    "DeepSetsVAE": frozenset({"mu", "logvar", "z0", "zk"}),
}
# The ModelOutput parts each loss cannot do without.
LOSS_REQUIRES: dict[str, frozenset[str]] = {
    "AELoss": frozenset(),
    "VAELoss": frozenset({"mu", "logvar"}),
    "VAEFlowLoss": frozenset({"mu", "logvar", "z0"}),
}


def unknown_name_error(key: str, name: str, valid: list[str]) -> UsageError:
    """A usage error for a name that is not registered, suggesting the closest valid one."""
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return UsageError(f"{key} = '{name}' is unknown{hint}; valid: {', '.join(valid)}")


def compatible(model_name: str, loss_name: str) -> bool:
    """Whether the model produces every output part the loss needs."""
    if model_name not in MODEL_PROVIDES:
        raise unknown_name_error("model_name", model_name, list(MODEL_PROVIDES))
    if loss_name not in LOSS_REQUIRES:
        raise unknown_name_error("loss_function", loss_name, list(LOSS_REQUIRES))
    return LOSS_REQUIRES[loss_name] <= MODEL_PROVIDES[model_name]


def check_compatible(model_name: str, loss_name: str) -> None:
    """UsageError naming both config values when the pair cannot work together."""
    if not compatible(model_name, loss_name):
        fits = [name for name in LOSS_REQUIRES if compatible(model_name, name)]
        raise UsageError(
            f"model_name = '{model_name}' cannot be used with loss_function = '{loss_name}' "
            f"(it does not produce {', '.join(sorted(LOSS_REQUIRES[loss_name]))}); "
            f"losses that fit it: {', '.join(fits)}"
        )
