"""Import of an original BEAD ``<proj>_config.py``: its literal assignments are read, never run."""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

from bead.config.schema import Config, closest, make_config, where
from bead.config.toml import read_text
from bead.errors import UsageError

log = logging.getLogger(__name__)

# Keys of original BEAD configs that are reported and left out, never an error:
# keys with no meaning here (paths and names come from the CLI; ROC per signal is always drawn;
# the test split comes from bkg_test files) ...
LEGACY_UNUSED = ("workspace_name", "project_name", "input_path", "output_path", "data_path",
                 "separate_model_saving", "skip_to_roc", "plot_roc_per_signal", "test_size")
# ... and keys of features of the original that this version does not have.
LEGACY_UNSUPPORTED = (
    "annealing_params", "contrastive_temperature", "contrastive_weight", "ntxent_sigma",
    "plot_test_loss_histogram", "plot_only_test_loss_histogram", "test_loss_histogram_component",
    "efp_mode", "efp_nmax", "efp_dmax", "efp_extended_mode", "efp_beta", "efp_beta_list",
    "efp_measure", "efp_normed", "efp_include_composites", "efp_eps", "efp_embedding_dim",
    "efp_gate_type", "efp_gate_threshold", "efp_dropout_rate", "efp_use_layer_norm",
    "efp_monitor_sparsity", "efp_standardize_meanvar", "efp_cache_dir", "efp_n_jobs",
    "efp_device", "efp_feature_prefix", "efp_use_true_energy",
    "enable_transformer", "transformer_mode", "transformer_d_model", "transformer_n_heads",
    "transformer_n_layers", "transformer_d_ff", "transformer_dropout", "transformer_activation",
    "transformer_norm_first", "transformer_use_class_attention", "transformer_max_jets",
    "transformer_output_dim", "transformer_output_activation",
    "transformer_positional_encoding", "transformer_token_type_embeddings",
    "transformer_gradient_checkpointing", "transformer_attention_dropout",
    "transformer_layer_norm_eps",
)
LEGACY_IGNORED = LEGACY_UNUSED + LEGACY_UNSUPPORTED

# Original keys that are accepted, so configs carry over, but do nothing yet.
NOT_YET_IMPLEMENTED = ("invert_normalizations", "activation_extraction")


def _root_name(node: ast.expr) -> str | None:
    """The name at the root of ``c.a.b[0]``-like expressions, else None."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _first_key(node: ast.expr) -> str:
    """'a' for ``c.a``, ``c.a.b`` or ``c.a[0]``: the config key a write goes to."""
    key = "?"
    while isinstance(node, ast.Attribute | ast.Subscript):
        if isinstance(node, ast.Attribute):
            key = node.attr
        node = node.value
    return key


def _legacy_assignments(
    tree: ast.Module, path: Path
) -> list[tuple[str, ast.expr | None, int]]:
    """(key, value, line) of every plain ``c.key = value`` in the body of ``set_config(c)`` or
    at module level.

    Any other write to ``c`` (``+=``, an annotation, a ``c.key = ...`` under if/for/while/with/
    try or in another function, ``setattr(c, ...)``) would need running the file to know its
    effect, so it is an error naming its line instead of being dropped or misread. Writes to a
    LEGACY_IGNORED key are returned with no value, whatever their form.
    """
    bodies: list[tuple[list[ast.stmt], str]] = [(tree.body, "c")]
    for stmt in tree.body:
        if (isinstance(stmt, ast.FunctionDef) and stmt.name == "set_config"
                and stmt.args.args):
            bodies.append((stmt.body, stmt.args.args[0].arg))
    roots = {root for _, root in bodies}
    found: list[tuple[str, ast.expr | None, int]] = []
    plain: set[int] = set()
    for body, root in bodies:
        for stmt in body:
            if not isinstance(stmt, ast.Assign):
                continue
            for target in stmt.targets:
                if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                        and target.value.id == root):
                    plain.add(id(target))
                    found.append((target.attr, stmt.value, stmt.lineno))
    bad: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute | ast.Subscript)
                and isinstance(node.ctx, ast.Store | ast.Del) and id(node) not in plain
                and _root_name(node) in roots):
            target, what = node, ("not a plain literal assignment (write c.<key> = <value> "
                                  "directly in set_config)")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and _root_name(node.func) in roots):
            target, what = node.func, "changed by a call; only c.<key> = <value> is read"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("setattr", "delattr") and node.args
              and _root_name(node.args[0]) in roots):
            target, what = node.args[0], (f"{node.func.id}() on the config; only "
                                          "c.<key> = <value> is read")
        else:
            continue
        key = _first_key(target)
        if key in LEGACY_IGNORED:  # left out anyway, however it is written
            found.append((key, None, node.lineno))
        else:
            bad.append((node.lineno, f"key '{key}': {what}"))
    if bad:
        line, msg = min(bad)
        raise UsageError(f"{path}:{line}: {msg}")
    return sorted(found, key=lambda item: item[2])


def read_legacy_config(path: Path) -> tuple[Config, list[str]]:
    """Parse a legacy ``set_config(c)`` file without running it.

    Returns the config and the legacy keys that were deliberately not carried over (see
    LEGACY_IGNORED). Every error names the line: a value that is not a literal, a write to ``c``
    that is not a plain assignment, an unknown key, a bad value.
    """
    text = read_text(path)
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as err:
        raise UsageError(f"{where(str(path), err.lineno)}: cannot read legacy config: "
                         f"{err.msg}") from None
    except ValueError as err:  # null bytes, on Python < 3.12
        raise UsageError(f"{path}: cannot read legacy config: {err}") from None
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    ignored: list[str] = []
    for key, node, line in _legacy_assignments(tree, path):
        if key in LEGACY_IGNORED or node is None:  # left out: never evaluated
            if key not in ignored:
                ignored.append(key)
            continue
        if key not in Config.model_fields:
            raise UsageError(f"{path}:{line}: unknown key '{key}'"
                             f"{closest(key, LEGACY_IGNORED)}")
        try:
            value = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            raise UsageError(f"{path}:{line}: key '{key}': value is not a literal; set it by "
                             "hand in the TOML") from None
        value = list(value) if isinstance(value, tuple) else value
        if key in values and values[key] != value:
            log.warning("%s:%d: key '%s' set again (before: line %d); the last value is used",
                        path, line, key, lines[key])
        values[key] = value
        lines[key] = line
    if not values:
        raise UsageError(f"{path}: no 'c.<key> = <value>' assignments found")
    return make_config(values, source=str(path), lines=lines), ignored
