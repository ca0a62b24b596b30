"""Import of an original BEAD ``<proj>_config.py``: its literal assignments are read, never run."""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

from bead.config.schema import Config, closest, make_config, where
from bead.config.toml import read_text
from bead.errors import UsageError
from bead.losses.catalog import LOSSES

log = logging.getLogger(__name__)

# Keys of original BEAD configs that are reported and left out, never an error:
# keys with no meaning here (paths and names come from the CLI; ROC per signal is always drawn;
# the test split comes from bkg_test files) ...
LEGACY_UNUSED = ("workspace_name", "project_name", "input_path", "output_path", "data_path",
                 "separate_model_saving", "skip_to_roc", "plot_roc_per_signal", "test_size")
# ... and keys of features of the original that this version does not have.
LEGACY_UNSUPPORTED = (
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
NOT_YET_IMPLEMENTED = ("invert_normalizations", "use_ddp", "activation_extraction")


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


def _item_path(target: ast.expr, root: str) -> list[ast.expr] | None:
    """The subscripts of ``c.key[a][b]`` (outermost last), or None for any other target."""
    path: list[ast.expr] = []
    while isinstance(target, ast.Subscript):
        path.insert(0, target.slice)
        target = target.value
    if (path and isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
            and target.value.id == root):
        return path
    return None


Assignment = tuple[str, ast.expr | None, int, list[ast.expr]]
# Keys whose value is a table: an item of one may be set after the table (c.key["a"] = ...).
_TABLE_KEYS = tuple(k for k, f in Config.model_fields.items()
                    if isinstance(f.get_default(call_default_factory=True), dict))


def _legacy_assignments(tree: ast.Module, path: Path) -> list[Assignment]:
    """(key, value, line, item path) of every plain ``c.key = value`` in the body of
    ``set_config(c)`` or at module level, and of every ``c.key[...][...] = value`` there for a
    key whose value is a table (the original's template sets
    ``c.annealing_params["reg_param"]["current_index"]`` like this).

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
    found: list[Assignment] = []
    plain: set[int] = set()
    for body, root in bodies:
        for stmt in body:
            if not isinstance(stmt, ast.Assign):
                continue
            for target in stmt.targets:
                if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                        and target.value.id == root):
                    plain.add(id(target))
                    found.append((target.attr, stmt.value, stmt.lineno, []))
                elif ((items := _item_path(target, root)) is not None
                      and _first_key(target) in _TABLE_KEYS):
                    plain.add(id(target))
                    found.append((_first_key(target), stmt.value, stmt.lineno, items))
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
            found.append((key, None, node.lineno, []))
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
    for key, node, line, items in _legacy_assignments(tree, path):
        if key in LEGACY_IGNORED or node is None:  # left out: never evaluated
            if key not in ignored:
                ignored.append(key)
            continue
        if key not in Config.model_fields:
            raise UsageError(f"{path}:{line}: unknown key '{key}'"
                             f"{closest(key, LEGACY_IGNORED)}")
        value = _literal(node, path, line, key)
        if items:
            _set_item(values, key, [_literal(i, path, line, key) for i in items], value,
                      f"{path}:{line}")
            continue
        value = list(value) if isinstance(value, tuple) else value
        if key in values and values[key] != value:
            log.warning("%s:%d: key '%s' set again (before: line %d); the last value is used",
                        path, line, key, lines[key])
        values[key] = value
        lines[key] = line
    if not values:
        raise UsageError(f"{path}: no 'c.<key> = <value>' assignments found")
    if "annealing_params" in values:
        loss = values.get("loss_function", Config.model_fields["loss_function"].default)
        values["annealing_params"], dropped = convert_annealing(values["annealing_params"], loss)
        ignored += dropped
    return make_config(values, source=str(path), lines=lines), ignored


def _literal(node: ast.expr, path: Path, line: int, key: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        raise UsageError(f"{path}:{line}: key '{key}': value is not a literal; set it by "
                         "hand in the TOML") from None


def _set_item(values: dict[str, Any], key: str, items: list[Any], value: Any,
              where_: str) -> None:
    """``values[key][items[0]]...[items[-1]] = value``, for ``c.key[a][b] = value``."""
    if key not in values:
        raise UsageError(f"{where_}: key '{key}': an item is set before c.{key} is assigned")
    target = values[key]
    try:
        for item in items[:-1]:
            target = target[item]
        target[items[-1]] = value
    except (KeyError, IndexError, TypeError):
        raise UsageError(f"{where_}: key '{key}': no item {items!r} to set") from None


# The original's trigger sources that this version has (its lr_scheduler_triggered was
# documented but never supplied; here it fires when the plateau scheduler lowers the LR).
_TRIGGERS = ("early_stopper_counter", "early_stopper_half_patience",
             "early_stopper_third_patience", "lr_scheduler_triggered")


def convert_annealing(params: Any, loss_function: str) -> tuple[Any, list[str]]:
    """The original's ``annealing_params`` in this version's form, and the entries left out
    (each with the reason), which the original could not have applied either or which target
    something that is no weight of ``loss_function``.

    Strategy names become lower case; a SCHEDULED schedule's epochs, counted from 0 in the
    original, count from 1 here (its epoch k is epoch k + 1); CONSTANT_PACE keeps start_value,
    end_value and total_steps but now reaches end_value at epoch total_steps (the original was
    one epoch late); TRIGGER_BASED keeps values, trigger_source and current_index. Anything
    else malformed is passed on, so the config check names it.
    """
    if not isinstance(params, dict):
        return params, []
    entry = LOSSES.get(loss_function)
    uses = entry.weight_keys if entry is not None else ()
    converted: dict[str, Any] = {}
    dropped: list[str] = []
    for name, raw in params.items():
        if not isinstance(raw, dict):
            converted[name] = raw
            continue
        target = raw.get("attr_name", name)
        reason = None
        if "object" in raw:
            reason = "it targets an object other than the config"
        elif entry is not None and target not in uses:
            reason = f"{target} is not a weight that {loss_function} uses"
        elif str(raw.get("strategy", "")).upper() == "TRIGGER_BASED" and (
                raw.get("trigger_source") not in _TRIGGERS):
            reason = (f"trigger_source {raw.get('trigger_source')!r} was never supplied by the "
                      "original's training, so it never fired")
        if reason is not None:
            dropped.append(f"annealing_params.{name} ({reason})")
            continue
        new = {k: v for k, v in raw.items() if k != "attr_name"}
        new["strategy"] = str(raw.get("strategy", "CONSTANT_PACE")).lower()
        if isinstance(raw.get("schedule"), dict):
            new["schedule"] = {str(k + 1) if isinstance(k, int) else str(k): v
                               for k, v in raw["schedule"].items()}
        converted[target] = new
    return converted, dropped
