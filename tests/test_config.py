from pathlib import Path

import pytest
from pydantic import ValidationError

from bead.config import (
    Config,
    config_to_toml,
    load_config,
    make_config,
    read_legacy_config,
    save_config,
)
from bead.errors import UsageError


def test_toml_round_trip_has_every_key_with_a_comment(tmp_path: Path) -> None:
    path = tmp_path / "p_config.toml"
    save_config(Config(), path)
    text = path.read_text()
    for name in Config.model_fields:
        assert f"\n{name} = " in text
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if " = " in line and not line.startswith("#"):
            assert lines[i - 1].startswith("# "), f"no comment above {line}"
    assert load_config(path) == Config()


def test_config_is_immutable() -> None:
    config = Config()
    with pytest.raises(ValidationError, match="frozen"):
        config.epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"epoch": 3}, "unknown key 'epoch' (did you mean 'epochs'?)"),
        ({"epochs": 0}, "key 'epochs'"),
        ({"lr": "fast"}, "key 'lr'"),
        ({"batch_size": "64"}, "key 'batch_size'"),
        ({"train_size": 1.5}, "key 'train_size'"),
        ({"optimizer": "lbfgs"}, "key 'optimizer'"),
        ({"normalizations": "minmax+foo"}, "unknown scaler 'foo'"),
        ({"device": "gpu"}, "key 'device'"),
    ],
)
def test_bad_values_name_the_key(values: dict, fragment: str) -> None:
    with pytest.raises(UsageError, match=None) as info:
        make_config(values, source="x.toml")
    assert fragment in str(info.value)
    assert str(info.value).startswith("x.toml")


def test_load_reports_toml_syntax_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3\n")
    with pytest.raises(UsageError, match="invalid TOML"):
        load_config(bad)
    with pytest.raises(UsageError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_normalization_chains_accepted() -> None:
    assert make_config({"normalizations": "log+standard"}).normalizations == "log+standard"


LEGACY = '''
# === Configuration options ===

def set_config(c):
    c.workspace_name               = "dqm"
    c.file_type                    = "h5"
    c.parallel_workers             = 4
    c.num_jets                     = 3
    c.num_constits                 = 15
    c.latent_space_size            = 15
    c.normalizations               = "pj_custom"
    c.train_size                   = 0.95
    c.model_name                   = "Planar_ConvVAE"
    c.input_features               = "4momentum_btag"
    c.optimizer                    = "adamw"
    c.epochs                       = 5
    c.lr                           = 0.001
    c.batch_size                   = 512
    c.early_stopping               = True
    c.overlay_roc_projects         = ("a/b", "c/d")
    import os
    os.system("echo never run")
'''


def test_legacy_config_is_read_not_run(tmp_path: Path, capfd) -> None:
    path = tmp_path / "old_config.py"
    path.write_text(LEGACY)
    config, ignored = read_legacy_config(path)
    assert config.latent_space_size == 15
    assert config.train_size == 0.95
    assert config.input_features == "4momentum_btag"
    assert config.overlay_roc_projects == ["a/b", "c/d"]
    assert ignored == ["workspace_name"]
    assert "never run" not in capfd.readouterr().out


def test_legacy_config_non_literal_names_line(tmp_path: Path) -> None:
    path = tmp_path / "old_config.py"
    path.write_text("def set_config(c):\n    c.epochs = 2\n    c.lr = compute()\n")
    with pytest.raises(UsageError, match=r"old_config.py:3: key 'lr'"):
        read_legacy_config(path)


def test_legacy_config_unknown_key_suggests(tmp_path: Path) -> None:
    path = tmp_path / "old_config.py"
    path.write_text("def set_config(c):\n    c.num_jet = 2\n")
    with pytest.raises(UsageError, match="did you mean 'num_jets'"):
        read_legacy_config(path)


def test_toml_text_is_valid_and_commented() -> None:
    text = config_to_toml(Config())
    assert text.startswith("# BEAD project configuration")


# The original BEAD's own config (PRAkTIKal24/BEAD, workspaces/dqm/test/config/test_config.py),
# shortened: every kind of key it has that this version does not.
UPSTREAM = '''
# === Configuration options ===

def set_config(c):
    c.workspace_name               = "dqm"
    c.project_name                 = "test"
    c.num_jets                     = 3
    c.input_level                  = "constituent"
    c.model_name                   = "Planar_ConvVAE"
    c.loss_function                = "VAELoss"
    c.subsample_plot               = False
    c.skip_to_roc                  = False

# === EFP (Energy-Flow Polynomial) configuration ===
    c.efp_mode                     = False
    c.efp_nmax                     = 5
    c.efp_standardize_meanvar      = True
    c.efp_n_jobs                   = 4
    c.ntxent_sigma                 = 0.1
    c.contrastive_weight           = 0.005
    c.overlay_roc_projects         = ["workspace_name/project_name"]
    c.overlay_roc_save_location    = "overlay_roc"
    c.overlay_roc_filename         = "combined_roc.pdf"

# === Test loss histogram configuration ===
    c.plot_test_loss_histogram     = False  # comment
    c.plot_only_test_loss_histogram = True
    c.test_loss_histogram_component = "loss_test"
    c.annealing_params = {
        "reg_param": {"strategy": "TRIGGER_BASED", "values": [0.001, 0.005, 0.01]},
    }
    c.annealing_params["reg_param"]["current_index"] = 0
    c.separate_model_saving        = False
    c.plot_roc_per_signal          = True
    c.subsample_plot               = False
'''


def write(tmp_path: Path, text: str | bytes, name: str = "old_config.py") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_legacy_upstream_config_reports_unsupported_keys(tmp_path: Path, caplog) -> None:
    config, ignored = read_legacy_config(write(tmp_path, UPSTREAM))
    assert ignored == ["workspace_name", "project_name", "skip_to_roc", "efp_mode", "efp_nmax",
                       "efp_standardize_meanvar", "efp_n_jobs", "plot_test_loss_histogram",
                       "plot_only_test_loss_histogram", "test_loss_histogram_component",
                       "separate_model_saving", "plot_roc_per_signal",
                       "annealing_params.reg_param (trigger_source None was never supplied by "
                       "the original's training, so it never fired)"]
    assert (config.num_jets, config.loss_function, config.subsample_plot) == (3, "VAELoss", False)
    assert (config.ntxent_sigma, config.contrastive_weight) == (0.1, 0.005)
    assert config.annealing_params == {}
    assert config.overlay_roc_filename == "combined_roc"  # not combined_roc.pdf.pdf
    assert "set again" not in caplog.text  # the same value twice is no conflict


def test_legacy_typo_names_line_and_closest_key(tmp_path: Path) -> None:
    path = write(tmp_path, "def set_config(c):\n    c.epochs = 3\n    c.epoch = 4\n")
    with pytest.raises(UsageError, match=r"old_config\.py:3: unknown key 'epoch' "
                                         r"\(did you mean 'epochs'\?\)"):
        read_legacy_config(path)
    path = write(tmp_path, "def set_config(c):\n    c.efp_nj = 4\n")
    with pytest.raises(UsageError, match=r":2: unknown key 'efp_nj' \(did you mean 'efp_n_jobs'"):
        read_legacy_config(path)


def test_legacy_bad_value_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "def set_config(c):\n    c.lr = 0.1\n    c.epochs = -3\n")
    with pytest.raises(UsageError, match=r"old_config\.py:3: key 'epochs': .*greater"):
        read_legacy_config(path)


@pytest.mark.parametrize(("body", "line", "key"), [
    ("c.epochs = 3\n    c.epochs += 2", 3, "epochs"),
    ("c.lr: float = 0.01", 2, "lr"),
    ("if False:\n        c.batch_size = 64\n    else:\n        c.batch_size = 128", 3,
     "batch_size"),
    ("for _ in range(2):\n        c.epochs = 10", 3, "epochs"),
    ("while True:\n        c.epochs = 10\n        break", 3, "epochs"),
    ("with open('x') as f:\n        c.epochs = 10", 3, "epochs"),
    ("try:\n        c.epochs = 10\n    except Exception:\n        pass", 3, "epochs"),
    ("def inner():\n        c.epochs = 10", 3, "epochs"),
    ("c.epochs, c.lr = 3, 0.1", 2, "epochs"),
    ("c.gen_generators[0] = 'a14'", 2, "gen_generators"),
    ("del c.epochs", 2, "epochs"),
])
def test_legacy_non_plain_assignments_are_errors(tmp_path: Path, body: str, line: int,
                                                 key: str) -> None:
    path = write(tmp_path, f"def set_config(c):\n    {body}\n")
    with pytest.raises(UsageError, match=rf"old_config\.py:{line}: key '{key}': not a plain "
                                         "literal assignment"):
        read_legacy_config(path)


@pytest.mark.parametrize("body", ["c.gen_generators.append('a14')",
                                  "setattr(c, 'epochs', 3)", "c.__dict__.update(epochs=3)"])
def test_legacy_config_changed_by_calls_is_an_error(tmp_path: Path, body: str) -> None:
    path = write(tmp_path, f"def set_config(c):\n    c.epochs = 2\n    {body}\n")
    with pytest.raises(UsageError, match=r"old_config\.py:3: key '.*': .*only c\.<key> = "):
        read_legacy_config(path)


def test_legacy_uses_the_set_config_parameter_name(tmp_path: Path) -> None:
    path = write(tmp_path, "def set_config(config):\n    config.epochs = 3\n")
    assert read_legacy_config(path)[0].epochs == 3


def test_legacy_conflicting_repeat_is_reported(tmp_path: Path, caplog) -> None:
    path = write(tmp_path, "def set_config(c):\n    c.epochs = 3\n    c.epochs = 5\n")
    assert read_legacy_config(path)[0].epochs == 5
    assert "old_config.py:3: key 'epochs' set again (before: line 2)" in caplog.text


@pytest.mark.parametrize(("key", "value"), [("lr", float("inf")), ("reg_param", float("inf")),
                                            ("gen_pthat_min", float("inf")),
                                            ("min_delta", float("nan"))])
def test_infinite_floats_are_rejected(key: str, value: float) -> None:
    with pytest.raises(UsageError, match=rf"x\.toml: key '{key}': .*finite"):
        make_config({key: value}, source="x.toml")


@pytest.mark.parametrize("name", ["p_config.toml", "old_config.py"])
def test_non_utf8_config_names_file_and_byte(tmp_path: Path, name: str) -> None:
    text = b"# caf\xe9\nepochs = 3\n" if name.endswith(".toml") else \
        b"# caf\xe9\ndef set_config(c):\n    c.epochs = 3\n"
    path = write(tmp_path, text, name)
    reader = load_config if name.endswith(".toml") else read_legacy_config
    with pytest.raises(UsageError, match=rf"{name}: not UTF-8 text \(byte 5\)") as info:
        reader(path)
    assert info.value.exit_code == 2


def test_bom_is_accepted(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "\ufeffepochs = 3\n", "p_config.toml")).epochs == 3
    legacy = write(tmp_path, "\ufeffdef set_config(c):\n    c.epochs = 4\n")
    assert read_legacy_config(legacy)[0].epochs == 4


@pytest.mark.parametrize("text", ["", "  \n\n", "# only a comment\n"])
def test_empty_toml_warns(tmp_path: Path, caplog, text: str) -> None:
    path = write(tmp_path, text, "p_config.toml")
    assert load_config(path) == Config()
    assert f"{path}: empty config: using every default" in caplog.text


def test_full_toml_does_not_warn(tmp_path: Path, caplog) -> None:
    path = tmp_path / "p_config.toml"
    save_config(Config(), path)
    load_config(path)
    assert "empty config" not in caplog.text


@pytest.mark.parametrize(("entry", "fragment"), [
    ("a/b/c", "use 'workspace/project'"),
    ("../p", "invalid workspace name '..'"),
    ("ws/", "invalid project name ''"),
    ("/p", "invalid workspace name ''"),
])
def test_overlay_projects_format_checked_at_load(entry: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=r"x\.toml: key 'overlay_roc_projects'") as info:
        make_config({"overlay_roc_projects": [entry]}, source="x.toml")
    assert fragment in str(info.value)


def test_overlay_projects_accept_project_and_workspace_project() -> None:
    entries = ["proj", "ws/proj_2", "w-1/p.b"]
    assert make_config({"overlay_roc_projects": entries}).overlay_roc_projects == entries


@pytest.mark.parametrize("location", ["../../../ESCAPE", "/tmp/abs", "a/../../b", "a\\..\\b"])
def test_overlay_save_location_stays_under_plots(location: str) -> None:
    with pytest.raises(UsageError, match="key 'overlay_roc_save_location': use a relative"):
        make_config({"overlay_roc_save_location": location}, source="x.toml")


def test_overlay_save_location_subfolder_allowed() -> None:
    assert make_config({"overlay_roc_save_location": "roc/all"}).overlay_roc_save_location \
        == "roc/all"


@pytest.mark.parametrize(("given", "kept"), [("combined_roc.pdf", "combined_roc"),
                                             ("combined_roc.PNG", "combined_roc"),
                                             ("my.roc", "my.roc")])
def test_overlay_filename_drops_plot_suffix(given: str, kept: str) -> None:
    assert make_config({"overlay_roc_filename": given}).overlay_roc_filename == kept


def test_overlay_filename_must_not_be_only_a_suffix() -> None:
    with pytest.raises(UsageError, match="key 'overlay_roc_filename'"):
        make_config({"overlay_roc_filename": ".pdf"})


@pytest.mark.parametrize(("key", "value", "hint"), [
    ("model_name", "Planar_ConvVA", "did you mean 'Planar_ConvVAE'"),
    ("loss_function", "VAEFlowLos", "did you mean 'VAEFlowLoss'"),
    ("model_name", "FlexibleTransformer", "valid: AE, "),
])
def test_model_and_loss_names_checked_at_load(tmp_path: Path, key: str, value: str,
                                              hint: str) -> None:
    path = write(tmp_path, f'{key} = "{value}"\n', "p_config.toml")
    with pytest.raises(UsageError, match=rf"p_config\.toml: key '{key}': unknown") as info:
        load_config(path)
    assert hint in str(info.value)


def test_incompatible_model_and_loss_named_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, 'model_name = "AE"\nloss_function = "VAELoss"\n', "p_config.toml")
    with pytest.raises(UsageError, match=r"p_config\.toml: model_name = 'AE' cannot be used "
                                         "with loss_function = 'VAELoss'"):
        load_config(path)
    legacy = write(tmp_path, "def set_config(c):\n    c.model_name = 'AE'\n"
                             "    c.loss_function = 'VAEFlowLoss'\n")
    with pytest.raises(UsageError, match=r"old_config\.py:3: model_name = 'AE' cannot"):
        read_legacy_config(legacy)


# The annealing block of the original's project template (bead/src/utils/ggl.py), with the
# other kinds of entry its annealing module documents.
ANNEALING_TEMPLATE = '''
def set_config(c):
    c.input_level                  = "constituent"
    c.model_name                   = "Planar_ConvVAE"
    c.loss_function                = "NTXentVAEFlowLoss"
    c.epochs                       = 30
    c.ntxent_sigma                 = 0.2
    c.reg_param                    = 0.001
    c.contrastive_temperature      = 0.1
    c.contrastive_weight           = 0.005
    c.annealing_params = {
        "reg_param": {
            "strategy": "TRIGGER_BASED",
            "values": [0.001, 0.005, 0.01],
            "trigger_source": "early_stopper_third_patience",
            "current_index": 0
        },
        "contrastive_weight": {
            "strategy": "TRIGGER_BASED",
            "values": [0, 0.005, 0.01, 0.02, 0.03],
            "trigger_source": "early_stopper_half_patience",
        },
        "contrastive_temperature": {
            "strategy": "CONSTANT_PACE", "start_value": 0.1, "end_value": 0.01,
            "total_steps": 10
        },
        "ntxent_sigma": {"strategy": "SCHEDULED", "schedule": {0: 0.3, 5: 0.1}},
        "batch_size": {"strategy": "SCHEDULED", "schedule": {5: 128}},
    }
    c.annealing_params["contrastive_weight"]["current_index"] = 1
'''


def test_legacy_annealing_and_contrastive_keys_are_carried_over(tmp_path: Path) -> None:
    config, ignored = read_legacy_config(write(tmp_path, ANNEALING_TEMPLATE))
    assert (config.ntxent_sigma, config.contrastive_temperature, config.contrastive_weight) == (
        0.2, 0.1, 0.005)
    assert config.annealing_params == {
        "reg_param": {"strategy": "trigger_based", "values": [0.001, 0.005, 0.01],
                      "trigger_source": "early_stopper_third_patience", "current_index": 0},
        "contrastive_weight": {"strategy": "trigger_based",
                               "values": [0, 0.005, 0.01, 0.02, 0.03],
                               "trigger_source": "early_stopper_half_patience",
                               "current_index": 1},
        "contrastive_temperature": {"strategy": "constant_pace", "start_value": 0.1,
                                    "end_value": 0.01, "total_steps": 10},
        "ntxent_sigma": {"strategy": "scheduled", "schedule": {"1": 0.3, "6": 0.1}},
    }
    assert ignored == ["annealing_params.batch_size (batch_size is not a weight that "
                       "NTXentVAEFlowLoss uses)"]
    # the converted config is a valid project config, and its schedule really runs
    path = tmp_path / "p_config.toml"
    save_config(config, path)
    assert load_config(path) == config
    from bead.config.schema import annealing_entries
    from bead.training.schedule import Schedule

    weights = {k: getattr(config, k) for k in ("reg_param", "contrastive_weight",
                                               "contrastive_temperature", "ntxent_sigma")}
    schedule = Schedule(annealing_entries(config), weights)
    schedule.start_epoch(1)
    assert weights == {"reg_param": 0.001, "contrastive_weight": 0.005,
                       "contrastive_temperature": 0.1, "ntxent_sigma": 0.3}
    schedule.start_epoch(10)
    assert weights["contrastive_temperature"] == pytest.approx(0.01)
    assert weights["ntxent_sigma"] == 0.1


def test_legacy_annealing_for_weights_the_loss_does_not_use_is_reported(tmp_path: Path) -> None:
    text = ANNEALING_TEMPLATE.replace('"NTXentVAEFlowLoss"', '"VAEFlowLoss"')
    config, ignored = read_legacy_config(write(tmp_path, text))
    assert list(config.annealing_params) == ["reg_param"]
    assert [i.split(" (")[0] for i in ignored] == [
        "annealing_params.contrastive_weight", "annealing_params.contrastive_temperature",
        "annealing_params.ntxent_sigma", "annealing_params.batch_size"]


def test_legacy_item_writes_need_their_table_first(tmp_path: Path) -> None:
    path = write(tmp_path, "def set_config(c):\n    c.annealing_params['x']['y'] = 1\n")
    with pytest.raises(UsageError, match=r"old_config\.py:2: key 'annealing_params': an item is "
                                         r"set before c.annealing_params is assigned"):
        read_legacy_config(path)
    path = write(tmp_path, "def set_config(c):\n    c.annealing_params = {}\n"
                           "    c.annealing_params['x']['y'] = 1\n")
    with pytest.raises(UsageError, match=r"old_config\.py:3: key 'annealing_params': no item "
                                         r"\['x', 'y'\]"):
        read_legacy_config(path)


def test_bad_legacy_annealing_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "def set_config(c):\n    c.model_name = 'ConvVAE'\n"
                           "    c.loss_function = 'VAELoss'\n"
                           "    c.annealing_params = {'reg_param': {'strategy': 'SOMETIMES'}}\n")
    with pytest.raises(UsageError, match=r"old_config\.py:4: annealing_params.reg_param."
                                         r"strategy = 'sometimes' is unknown"):
        read_legacy_config(path)


@pytest.mark.parametrize(("values", "fragment"), [
    ({"augmentations": ["rotate_phi", "smear_et_phi"]},
     "augmentations = 'smear_et_phi' is unknown (did you mean 'smear_eta_phi'?)"),
    ({"augmentations": {"drop_soft": 0.0}}, "augmentations.drop_soft = 0.0"),
    ({"contrastive_temperature": 0.0}, "key 'contrastive_temperature'"),
    ({"ntxent_sigma": -0.1}, "key 'ntxent_sigma'"),
    ({"l1_weight": -1.0}, "key 'l1_weight'"),
])
def test_contrastive_and_regularisation_keys_are_checked(values: dict, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        make_config(values, source="x.toml")
    assert fragment in str(info.value) and str(info.value).startswith("x.toml")
    assert make_config({"augmentations": ["drop_soft"]}).augmentations == ["drop_soft"]


@pytest.mark.parametrize(("body", "level"), [
    ("    c.model_name = 'ConvVAE'\n    c.loss_function = 'VAELoss'\n", "jet"),
    ("    c.model_name = 'ConvVAE'\n    c.loss_function = 'VAELoss'\n"
     "    c.input_level = 'constituent'\n", "constituent"),
    ("    c.model_name = 'SetVAE'\n    c.loss_function = 'VAELoss'\n", "event+jet"),
])
def test_legacy_config_without_input_level_keeps_a_level_its_model_reads(
        tmp_path: Path, body: str, level: str) -> None:
    path = tmp_path / "old_config.py"
    path.write_text("def set_config(c):\n" + body)
    config, _ = read_legacy_config(path)
    assert config.input_level == level


def test_a_model_without_its_loss_or_level_gets_its_own_defaults() -> None:
    from bead.losses.catalog import compatible
    from bead.models.catalog import MODELS
    for model in MODELS:
        config = make_config({"model_name": model})  # every model loads on its own
        assert compatible(model, config.loss_function)
    assert make_config({"model_name": "ConvVAE"}).loss_function == "VAELoss"
    assert make_config({"model_name": "Planar_ConvVAE"}).loss_function == "VAEFlowLoss"
    assert make_config({"model_name": "Planar_ConvVAE"}).input_level == "jet"
    assert make_config({"model_name": "SetVAE"}).input_level == "event+jet"
    given = make_config({"model_name": "ConvVAE", "input_level": "constituent"})
    assert given.input_level == "constituent"
