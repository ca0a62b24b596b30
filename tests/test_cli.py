import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from bead.cli import main
from bead.errors import UsageError
from bead.pipeline import parse_chain

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bead", *args], capture_output=True, text=True,
                          cwd=cwd)


def test_new_project_creates_layout_and_config(tmp_path: Path) -> None:
    assert main(["-m", "new_project", "-p", "ws", "p1", "--workspaces", str(tmp_path)]) == 0
    project = tmp_path / "ws" / "p1"
    assert (project / "config" / "p1_config.toml").is_file()
    for sub in ("models", "results", "plots"):
        assert (project / "output" / sub).is_dir()
    assert (tmp_path / "ws" / "data" / "csv").is_dir()


def test_new_project_keeps_an_edited_config(tmp_path: Path) -> None:
    args = ["-m", "new_project", "-p", "ws", "p1", "--workspaces", str(tmp_path)]
    main(args)
    config = tmp_path / "ws" / "p1" / "config" / "p1_config.toml"
    config.write_text(config.read_text().replace("epochs = 40", "epochs = 7"))
    main(args)
    assert "epochs = 7" in config.read_text()


def test_workspaces_env_and_default(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BEAD_WORKSPACES", str(tmp_path / "env"))
    assert main(["-m", "new_project", "-p", "w", "p"]) == 0
    assert (tmp_path / "env" / "w" / "p").is_dir()
    monkeypatch.delenv("BEAD_WORKSPACES")
    monkeypatch.chdir(tmp_path)
    assert main(["-m", "new_project", "-p", "w", "p"]) == 0
    assert (tmp_path / "workspaces" / "w" / "p").is_dir()


def test_unknown_mode_exits_2_listing_modes() -> None:
    proc = run("-m", "bogus")
    assert proc.returncode == 2
    assert "new_project" in proc.stderr and "demo" in proc.stderr


def test_unknown_chain_token_exits_2(tmp_path: Path) -> None:
    proc = run("-m", "chain", "-p", "ws", "p", "-o", "convertcsv_trian",
               "--workspaces", str(tmp_path))
    assert proc.returncode == 2
    assert "unknown chain token 'trian'" in proc.stderr
    assert "prepareinputs" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_parse_chain_maps_every_token() -> None:
    steps = parse_chain("newproject_generate_convertcsv_prepareinputs_train_detect_plot")
    assert steps == ["new_project", "generate", "convert_csv", "prepare_inputs", "train",
                     "detect", "plot"]
    with pytest.raises(UsageError):
        parse_chain(None)


def test_bad_config_is_usage_error_naming_key(tmp_path: Path) -> None:
    main(["-m", "new_project", "-p", "ws", "p1", "--workspaces", str(tmp_path)])
    config = tmp_path / "ws" / "p1" / "config" / "p1_config.toml"
    config.write_text(config.read_text() + "\nlatent_size = 3\n")
    proc = run("-m", "convert_csv", "-p", "ws", "p1", "--workspaces", str(tmp_path))
    assert proc.returncode == 2
    assert "unknown key 'latent_size'" in proc.stderr
    assert "did you mean 'latent_space_size'" in proc.stderr
    assert str(config) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_keys_not_implemented_yet_are_reported(tmp_path: Path, capsys) -> None:
    main(["-m", "new_project", "-p", "ws", "p1", "--workspaces", str(tmp_path)])
    config = tmp_path / "ws" / "p1" / "config" / "p1_config.toml"
    config.write_text(config.read_text().replace("use_ddp = false", "use_ddp = true"))
    capsys.readouterr()
    main(["-m", "convert_csv", "-p", "ws", "p1", "--workspaces", str(tmp_path)])
    out = " ".join("".join(capsys.readouterr()).split())
    assert "use_ddp = true not implemented yet; ignored" in out


def test_misplaced_options_are_usage_errors(tmp_path: Path) -> None:
    ws = ["--workspaces", str(tmp_path)]
    assert run("-m", "new_project", "-p", "ws", "p1", "-o", "foo", *ws).returncode == 2
    proc = run("-m", "detect", "-p", "ws", "p1", "--legacy-config", "x.py", *ws)
    assert proc.returncode == 2 and "--legacy-config belongs to mode new_project" in proc.stderr
    (tmp_path / "file").write_text("")
    proc = run("-m", "new_project", "-p", "ws", "p1", "--workspaces", str(tmp_path / "file"))
    assert proc.returncode == 2 and "workspaces folder is a file" in proc.stderr


def test_missing_project_is_one_line_error(tmp_path: Path) -> None:
    proc = run("-m", "convert_csv", "-p", "ws", "nope", "--workspaces", str(tmp_path))
    assert proc.returncode == 2
    assert "new_project" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_mode_needs_project() -> None:
    proc = run("-m", "train")
    assert proc.returncode == 2
    assert "-p WORKSPACE PROJECT" in proc.stderr


def test_option_not_valid_for_mode(tmp_path: Path) -> None:
    main(["-m", "new_project", "-p", "ws", "p1", "--workspaces", str(tmp_path)])
    proc = run("-m", "convert_csv", "-p", "ws", "p1", "-o", "overlay_roc",
               "--workspaces", str(tmp_path))
    assert proc.returncode == 2
    assert "h5, parquet" in proc.stderr


def test_missing_data_exit_1_and_traceback_only_with_v(tmp_path: Path) -> None:
    main(["-m", "new_project", "-p", "ws", "p1", "--workspaces", str(tmp_path)])
    (tmp_path / "ws" / "data" / "csv").rmdir()
    base = ["-m", "convert_csv", "-p", "ws", "p1", "--workspaces", str(tmp_path)]
    proc = run(*base)
    assert proc.returncode == 1
    assert "csv" in proc.stderr and "Traceback" not in proc.stderr
    proc = run(*base, "-v")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr


def test_legacy_import_via_new_project(tmp_path: Path) -> None:
    legacy = tmp_path / "old_config.py"
    legacy.write_text("def set_config(c):\n    c.epochs = 3\n    c.project_name = 'x'\n")
    code = main(["-m", "new_project", "-p", "ws", "p1", "--workspaces", str(tmp_path),
                 "--legacy-config", str(legacy)])
    assert code == 0
    text = (tmp_path / "ws" / "p1" / "config" / "p1_config.toml").read_text()
    assert "epochs = 3" in text


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    commands = [line for line in readme.splitlines() if "pytest" in line and "pip install" in line]
    assert commands, "README has no test command"
    assert commands[0].strip() in ci


def test_a_chain_with_a_mode_that_cannot_run_stops_before_its_first_step(
        tmp_path: Path) -> None:
    if importlib.util.find_spec("umap") is not None:
        pytest.skip("umap-learn is installed, so a umap latent plot can run")
    assert main(["-m", "new_project", "-p", "ws", "p", "--workspaces", str(tmp_path)]) == 0
    config = tmp_path / "ws" / "p" / "config" / "p_config.toml"
    config.write_text(config.read_text().replace('latent_space_plot_style = "pca"',
                                                 'latent_space_plot_style = "umap"'))
    proc = run("-m", "chain", "-p", "ws", "p", "-o", "convertcsv_plot",
               "--workspaces", str(tmp_path))
    assert proc.returncode == 1
    assert "pip install 'bead-hep[viz]'" in proc.stderr
    assert "convert_csv" not in proc.stderr + proc.stdout  # no step started, no header


def test_no_mode_header_before_a_usage_error(tmp_path: Path) -> None:
    assert main(["-m", "new_project", "-p", "ws", "p", "--workspaces", str(tmp_path)]) == 0
    config = tmp_path / "ws" / "p" / "config" / "p_config.toml"
    config.write_text(config.read_text().replace("epochs = 40", "epochs = -1"))
    proc = run("-m", "train", "-p", "ws", "p", "--workspaces", str(tmp_path))
    assert proc.returncode == 2 and "epochs" in proc.stderr
    assert "──" not in proc.stderr + proc.stdout


def test_log_lines_are_not_wrapped_outside_a_terminal(tmp_path: Path) -> None:
    deep = tmp_path / ("a_rather_long_folder_name_for_a_batch_job" * 3)
    proc = run("-m", "new_project", "-p", "ws", "p", "--workspaces", str(deep))
    assert proc.returncode == 0
    lines = [line for line in proc.stderr.splitlines() if "project ready" in line]
    assert len(lines) == 1 and str(deep) in lines[0]  # one line, the path whole
