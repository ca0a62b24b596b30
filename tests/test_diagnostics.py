"""The diagnostics mode: a short profiled run on a toy preparation, its files, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "training"))
from tensor_folder import make_tensor_folder, small_config

from bead.cli import main
from bead.config import save_config
from bead.diagnostics import (
    PHASES,
    SUMMARY,
    Plan,
    read_summary,
    run_diagnostics,
)
from bead.errors import DataError
from bead.plotting.report import ReportInputs, render_report
from bead.prepare.manifest import prepared_dir
from bead.project import ProjectPaths

QUICK = Plan(warmup=1, train=4, score=2, profiled=2)


@pytest.fixture(scope="module")
def diagnosed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("diag")
    tensors = make_tensor_folder(root / "tensors", n_train=300, n_test=50, n_signal=20)
    config = small_config(model_name="Planar_ConvVAE", loss_function="VAEFlowLoss")
    out = root / "output" / "diagnostics"  # where the mode writes in a project
    return out, run_diagnostics(config, tensors, out, QUICK)


def test_summary_has_phases_throughput_memory_and_operators(diagnosed):
    out, summary = diagnosed
    assert read_summary(out) == summary
    assert summary["device"] == "cpu" and summary["model_name"] == "Planar_ConvVAE"
    assert summary["steps"] == {"warmup": 1, "train": 4, "score_batches": 2, "profiled": 2}
    assert set(summary["phases"]) == set(PHASES)
    for phase in PHASES:
        assert summary["phases"][phase]["seconds"] > 0
    assert sum(p["fraction"] for p in summary["phases"].values()) == pytest.approx(1.0)
    # 4 timed batches of the 225 training events cut into near-equal batches of at most 64.
    train_seconds = sum(summary["phases"][p]["seconds"] for p in PHASES if p != "scoring")
    events = summary["throughput"]["train_events_per_second"] * train_seconds
    assert 4 * 56 <= round(events) <= 4 * 64
    assert summary["throughput"]["score_events_per_second"] > 0
    assert summary["peak_memory"]["rss_mb"] > 50 and summary["peak_memory"]["gpu_reserved_mb"] \
        is None
    assert summary["resources"]["samples"] >= 1 and summary["resources"]["gpu_source"] is None
    names = [op["name"] for op in summary["top_operators"]]
    assert names and not any(n.startswith("bead/") for n in names)
    assert any(n.startswith("aten::") for n in names)


def test_operator_table_trace_resources_and_plots_are_written(diagnosed):
    out, summary = diagnosed
    files = summary["files"]
    operators = json.loads((out / files["operators_json"]).read_text())
    self_times = [op["self_cpu_ms"] for op in operators]
    assert self_times == sorted(self_times, reverse=True) and len(operators) <= 30
    assert "Self CPU" in (out / files["operators_text"]).read_text()
    trace = json.loads((out / files["trace"]).read_text())
    events = {e.get("name") for e in trace["traceEvents"]}
    assert {"bead/forward", "bead/backward", "bead/optimizer", "bead/scoring"} <= events
    resources = json.loads((out / files["resources"]).read_text())
    assert [s[0] for s in resources["stages"]] == ["loading", "warm-up", "training", "scoring",
                                                   "profiled"]
    t = resources["samples"]["t"]
    assert t == sorted(t) and len(t) == len(resources["samples"]["rss_mb"])
    for base in ("resources_cpu", "resources_memory", "phases"):
        for suffix in ("pdf", "png"):
            assert f"{base}.{suffix}" in files["plots"]
            assert (out / f"{base}.{suffix}").stat().st_size > 1000
    assert not list(out.glob(".*"))  # no staging folder or temporary file left


def test_the_report_shows_the_last_run(diagnosed):
    out, summary = diagnosed
    page = render_report(out.parent / "plots", ReportInputs("t", small_config()))
    section = page[page.index('<section id="diagnostics">'):]
    section = section[:section.index("</section>")]
    speed = summary["throughput"]["train_events_per_second"]
    assert f"training {speed:,.0f} events/s" in section
    assert f"{summary['peak_memory']['rss_mb']:,.0f} MB resident" in section
    for phase in PHASES:
        per_batch = summary["phases"][phase]["per_batch_ms"]
        assert f'<td class="name">{phase}</td><td>{per_batch:.2f}</td>' in section
    assert summary["top_operators"][0]["name"] in section
    assert section.count('<img src="data:image/png;base64,') == 3  # cpu, memory, phases
    # No run, no section.
    assert 'id="diagnostics"' not in render_report(out.parent.parent / "elsewhere" / "plots",
                                                   ReportInputs("t", small_config()))


def test_a_damaged_summary_is_a_data_error(tmp_path):
    assert read_summary(tmp_path) is None
    (tmp_path / SUMMARY).write_text("{not json")
    with pytest.raises(DataError, match=r"diagnostics\.json: cannot read JSON"):
        read_summary(tmp_path)


def test_the_mode_profiles_the_project_and_leaves_its_models_alone(tmp_path):
    base = ["-p", "ws", "p", "--workspaces", str(tmp_path), "--no-progress"]
    assert main(["-m", "new_project", *base]) == 0
    paths = ProjectPaths(tmp_path, "ws", "p")
    config = small_config()
    save_config(config, paths.config_file)
    make_tensor_folder(prepared_dir(paths.tensors_dir, config), n_train=200, n_test=20,
                       n_signal=20)
    assert main(["-m", "chain", *base, "-o", "diagnostics"]) == 0
    summary = read_summary(paths.output_dir / "diagnostics")
    assert summary is not None and summary["model_name"] == "AE"
    assert summary["steps"]["train"] == Plan().train
    assert list(paths.models_dir.iterdir()) == []


def test_diagnostics_before_prepare_inputs_names_the_missing_file(tmp_path):
    assert main(["-m", "new_project", "-p", "ws", "p", "--workspaces", str(tmp_path)]) == 0
    proc = subprocess.run([sys.executable, "-m", "bead", "-m", "diagnostics", "-p", "ws", "p",
                           "--workspaces", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "manifest.json" in errors[0]
    assert "run prepare_inputs first" in errors[0] and "Traceback" not in proc.stderr
