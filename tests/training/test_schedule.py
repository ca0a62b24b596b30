"""Annealing: schedules that change the weights the objective uses, checked when the config
loads, logged per epoch, checkpointed and resumed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from tensor_folder import make_tensor_folder, small_config

from bead.config import Config, load_config, make_config, save_config
from bead.config.schema import annealing_entries
from bead.errors import UsageError
from bead.training.schedule import Schedule, trigger_signals
from bead.training.trainer import train

VAE = {"model_name": "ConvVAE", "loss_function": "VAELoss", "input_level": "constituent"}


@pytest.fixture(scope="module")
def tensors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tensor_folder(tmp_path_factory.mktemp("tensors"), n_train=200, n_test=40,
                              n_signal=40)


def schedule_of(annealing: dict, weights: dict[str, float] | None = None,
                **config: object) -> tuple[Schedule, dict[str, float]]:
    weights = dict(weights or {"reg_param": 0.2})
    entries = annealing_entries(make_config({**VAE, "annealing_params": annealing, **config}))
    return Schedule(entries, weights), weights


def values(schedule: Schedule, weights: dict[str, float], epochs: int, key: str = "reg_param",
           signals: list[dict[str, bool]] | None = None) -> list[float]:
    out = []
    for epoch in range(1, epochs + 1):
        schedule.start_epoch(epoch)
        out.append(weights[key])
        if signals is not None:
            schedule.end_epoch(signals[epoch - 1])
    return out


def test_constant_pace_reaches_both_ends_exactly() -> None:
    # The original set start_value only after the first epoch and reached end_value one
    # epoch late; here epoch 1 trains with start_value and epoch total_steps with end_value.
    s, w = schedule_of({"reg_param": {"strategy": "constant_pace", "start_value": 0.0,
                                      "end_value": 1.0, "total_steps": 5}})
    assert values(s, w, 7) == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    s, w = schedule_of({"reg_param": {"strategy": "constant_pace", "end_value": 0.0}},
                       epochs=3)  # start: the configured value, over all epochs by default
    assert values(s, w, 3) == pytest.approx([0.2, 0.1, 0.0])
    s, w = schedule_of({"reg_param": {"strategy": "CONSTANT_PACE", "end_value": 0.5,
                                      "total_steps": 1}})
    assert values(s, w, 2) == [0.5, 0.5]


def test_scheduled_values_hold_from_their_epoch_on() -> None:
    s, w = schedule_of({"reg_param": {"strategy": "scheduled",
                                      "schedule": {"5": 0.1, "3": 0.5}}})
    assert values(s, w, 6) == [0.2, 0.2, 0.5, 0.5, 0.1, 0.1]


def test_trigger_based_advances_on_rising_edges_only() -> None:
    s, w = schedule_of({"reg_param": {"strategy": "trigger_based", "values": [1.0, 2.0, 3.0],
                                      "trigger_source": "early_stopper_half_patience"}},
                       early_stopping_patience=4)
    bad = [0, 1, 2, 3, 0, 2, 2, 4, 0]  # counter after each epoch: on at >= 2
    signals = [trigger_signals(b, 4, False) for b in bad]
    # on after epochs 3 and 6 (rising edges), held on epochs 7-8: the value moves after 3 and
    # 6 only, and stays on the last value
    assert values(s, w, 9, signals=signals) == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert trigger_signals(2, 6, False)["early_stopper_third_patience"]
    assert not trigger_signals(1, 6, False)["early_stopper_third_patience"]
    assert trigger_signals(0, 6, True)["lr_scheduler_triggered"]


def test_a_resumed_schedule_continues_where_it_was() -> None:
    annealing = {"reg_param": {"strategy": "trigger_based", "values": [1.0, 2.0, 3.0],
                               "trigger_source": "early_stopper_counter"}}
    signals = [trigger_signals(b, 8, False) for b in (0, 1, 2, 0, 1, 0)]
    whole, w = schedule_of(annealing)
    expected = values(whole, w, 6, signals=signals)
    first, w1 = schedule_of(annealing)
    values(first, w1, 2, signals=signals)
    state = first.state_dict()
    resumed, w2 = schedule_of(annealing)
    resumed.load_state_dict(state)
    rest = []
    for epoch in (3, 4, 5, 6):
        resumed.start_epoch(epoch)
        rest.append(w2["reg_param"])
        resumed.end_epoch(signals[epoch - 1])
    assert expected[2:] == rest == [2.0, 2.0, 2.0, 3.0]  # on in 2-3 and 5: two rising edges
    changed, _ = schedule_of({"reg_param": {**annealing["reg_param"], "values": [1.0, 5.0]}})
    with pytest.raises(UsageError, match="annealing_params changed"):
        changed.load_state_dict(state)


@pytest.mark.parametrize(("entry", "fragment"), [
    ({"contrastive_weight": {"strategy": "scheduled", "schedule": {"2": 0.1}}},
     "annealing_params.contrastive_weight: not a weight that loss_function = 'VAELoss' uses; "
     "it uses: reg_param"),
    ({"reg_parm": {"strategy": "scheduled", "schedule": {"2": 0.1}}},
     "annealing_params.reg_parm: not a weight that loss_function = 'VAELoss' uses (did you mean "
     "'reg_param'?)"),
    ({"reg_param": {"strategy": "linear", "end_value": 1.0}},
     "annealing_params.reg_param.strategy = 'linear' is unknown; valid: constant_pace"),
    ({"reg_param": {"strategy": "constant_pace"}},
     "annealing_params.reg_param: constant_pace needs end_value"),
    ({"reg_param": {"strategy": "constant_pace", "end_value": 1.0, "total_steps": 0}},
     "annealing_params.reg_param.total_steps: expected an integer >= 1"),
    ({"reg_param": {"strategy": "constant_pace", "end_value": -1.0}},
     "annealing_params.reg_param.end_value = -1.0: out of range for reg_param"),
    ({"reg_param": {"strategy": "constant_pace", "end_value": "big"}},
     "annealing_params.reg_param.end_value: expected a number"),
    ({"reg_param": {"strategy": "scheduled", "schedule": {"0": 1.0}}},
     "annealing_params.reg_param.schedule: '0' is not an epoch number"),
    ({"reg_param": {"strategy": "scheduled", "schedule": {}}},
     "annealing_params.reg_param: scheduled needs schedule"),
    ({"reg_param": {"strategy": "scheduled", "schedule": {"2": 0.1}, "end_value": 1.0}},
     "annealing_params.reg_param.end_value: not a setting of strategy 'scheduled'"),
    ({"reg_param": {"strategy": "trigger_based", "values": [],
                    "trigger_source": "early_stopper_counter"}},
     "annealing_params.reg_param: trigger_based needs a non-empty list values"),
    ({"reg_param": {"strategy": "trigger_based", "values": [0.1],
                    "trigger_source": "early_stopper_count"}},
     "annealing_params.reg_param.trigger_source = 'early_stopper_count' is unknown (did you "
     "mean 'early_stopper_counter'?)"),
    ({"reg_param": {"strategy": "trigger_based", "values": [0.1], "current_index": 1,
                    "trigger_source": "early_stopper_counter"}},
     "annealing_params.reg_param.current_index = 1: values has only 1 entries"),
    ({"reg_param": {"strategy": "trigger_based", "values": [0.1],
                    "trigger_source": "lr_scheduler_triggered"}},
     "never fires with lr_scheduler = false"),
    ({"reg_param": 0.1}, "key 'annealing_params.reg_param': Input should be a valid dict"),
])
def test_bad_annealing_entries_are_config_errors_naming_the_entry(
        tmp_path: Path, entry: dict, fragment: str) -> None:
    values_ = {**VAE, "annealing_params": entry, "lr_scheduler": False}
    with pytest.raises(UsageError) as info:
        make_config(values_, source="p_config.toml")
    assert str(info.value).startswith("p_config.toml: ")
    assert fragment in str(info.value)


def test_annealed_settings_keep_their_own_bounds() -> None:
    with pytest.raises(UsageError, match=r"contrastive_temperature.schedule.3 = 0.0: out of "
                                         r"range for contrastive_temperature"):
        make_config({"model_name": "ConvVAE", "loss_function": "NTXentVAELoss",
                     "input_level": "constituent",
                     "annealing_params": {"contrastive_temperature": {
                         "strategy": "scheduled", "schedule": {"3": 0.0}}}})


def test_annealing_params_are_written_as_an_inline_table_and_read_back(tmp_path: Path) -> None:
    config = make_config({**VAE, "annealing_params": {
        "reg_param": {"strategy": "scheduled", "schedule": {"1": 0.0, "10": 0.001}}}})
    path = tmp_path / "p_config.toml"
    save_config(config, path)
    text = path.read_text()
    assert '\nannealing_params = {reg_param = {strategy = "scheduled", schedule = {1 = 0.0, ' \
           '10 = 0.001}}}\n' in text
    assert load_config(path) == config
    assert Config().annealing_params == {}


def history_of(tmp: Path) -> dict:
    return json.loads((tmp / "results/history.json").read_text())


def run(tmp: Path, tensors: Path, resume: bool = False, **overrides: object):
    return train(small_config(**overrides), tensors, tmp / "models", tmp / "results",
                 progress=False, resume=resume)


def test_a_schedule_changes_the_weight_and_the_loss_at_its_epochs(tmp_path: Path,
                                                                   tensors: Path) -> None:
    annealing = {"reg_param": {"strategy": "scheduled", "schedule": {"3": 1.0}}}
    result = run(tmp_path, tensors, **VAE, reg_param=0.0, epochs=4, annealing_params=annealing)
    history = history_of(tmp_path)
    assert history["weights"] == {"reg_param": [0.0, 0.0, 1.0, 1.0]}
    assert result.history.weights == history["weights"]
    for split in ("train", "val"):
        total, reco, kl = (history[split][k] for k in ("total", "reco", "kl"))
        assert total[:2] == reco[:2]  # beta = 0: the KL does not count
        for t, r, k in zip(total[2:], reco[2:], kl[2:], strict=True):
            assert t == pytest.approx(r + k, rel=1e-5) and k > 0.01
    with open(tmp_path / "results/history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["weight_reg_param"]) for r in rows] == [0.0, 0.0, 1.0, 1.0]


def test_a_resumed_run_continues_the_schedule(tmp_path: Path, tensors: Path) -> None:
    # min_delta 1e9: only epoch 1 improves, so the counter is on from epoch 2; the value moves
    # once (after epoch 2). A resume that forgot the trigger state would move it again.
    settings = {**VAE, "min_delta": 1e9, "early_stopping": False, "lr_scheduler": False,
                "annealing_params": {"reg_param": {
                    "strategy": "trigger_based", "values": [0.0, 0.5, 1.0],
                    "trigger_source": "early_stopper_counter"}}}
    run(tmp_path / "whole", tensors, epochs=4, **settings)
    run(tmp_path / "split", tensors, epochs=2, **settings)
    state = torch.load(tmp_path / "split/models/last.pt", weights_only=True)
    assert state["schedule"]["index"] == {"reg_param": 1}
    run(tmp_path / "split", tensors, resume=True, epochs=4, **settings)
    whole, split = history_of(tmp_path / "whole"), history_of(tmp_path / "split")
    assert whole["weights"] == split["weights"] == {"reg_param": [0.0, 0.0, 0.5, 0.5]}
    assert whole["val"] == split["val"]
    changed = {**settings, "annealing_params": {"reg_param": {
        "strategy": "constant_pace", "end_value": 1.0}}}
    with pytest.raises(UsageError, match="annealing_params changed"):
        run(tmp_path / "split", tensors, resume=True, epochs=5, **changed)


def test_the_readme_example_is_a_valid_schedule(tmp_path: Path) -> None:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    line = next(x for x in readme.read_text().splitlines() if x.startswith("annealing_params = "))
    path = tmp_path / "p_config.toml"
    path.write_text('model_name = "Planar_ConvVAE"\nloss_function = "NTXentVAEFlowLoss"\n'
                    f'input_level = "constituent"\n{line}\n')
    entries = annealing_entries(load_config(path))
    assert [(e.target, e.strategy) for e in entries] == [
        ("reg_param", "constant_pace"), ("contrastive_weight", "trigger_based"),
        ("contrastive_temperature", "scheduled")]
