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
