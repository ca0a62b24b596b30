"""Ctrl-C and SIGTERM always stop a run: exit 1, ``bead: interrupted``, nothing half-written.

The subprocess tests run a real ``bead -m convert_csv`` (in one process and over worker
processes, with a file large enough to be cut into blocks) and signal it at many moments.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bead import interrupt
from bead.cli import main
from bead.io.convert import PARALLEL_MIN_BYTES
from bead.io.csv_write import write_bead_csv
from bead.io.events import EventChunk
from bead.pipeline import RunResult

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

WS, PROJ = "ws", "p"
# One file bigger than half of the sample (cut into blocks when converted by 2 processes) and
# three smaller ones: 5,700 events, 17 MB, just enough to be converted in parallel.
SAMPLE = {"bkg_train_big.csv": 3600, "bkg_test_a.csv": 700, "bkg_test_b.csv": 700,
          "sig_test_c.csv": 700}
MARKER = "── convert_csv ──"


class _SignalsInDel:
    """An object whose ``__del__`` gets the signal: Python swallows what the handler raises."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # let the handler run here, inside __del__
            time.sleep(0.001)


@pytest.fixture(autouse=True)
def _fresh_flag():
    interrupt.reset()
    yield
    interrupt.reset()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signals_raise_and_are_recorded(signum: int) -> None:
    before = {s: signal.getsignal(s) for s in interrupt.SIGNALS}
    with interrupt.stop_on_signals():
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)
            time.sleep(1)
        assert interrupt.interrupted()
        with pytest.raises(KeyboardInterrupt):
            interrupt.check_interrupted()
    assert {s: signal.getsignal(s) for s in interrupt.SIGNALS} == before


def test_an_interrupt_swallowed_in_del_is_silent_and_raised_again(capfd) -> None:
    with interrupt.stop_on_signals():
        obj = _SignalsInDel()
        del obj  # the KeyboardInterrupt raised in __del__ is swallowed by Python
        assert interrupt.interrupted()
        with pytest.raises(KeyboardInterrupt):
            interrupt.check_interrupted()
    assert "Exception ignored" not in capfd.readouterr().err


def test_main_never_exits_0_after_a_signal(tmp_path: Path, monkeypatch, capfd) -> None:
    # The original bug: the signal's exception was swallowed and the run ended with exit 0.
    def run_mode(options):
        obj = _SignalsInDel()
        del obj
        return RunResult(paths=None)

    monkeypatch.setattr("bead.pipeline.run_mode", run_mode)
    assert main(["-m", "convert_csv", "-p", WS, PROJ, "--workspaces", str(tmp_path)]) == 1
    err = capfd.readouterr().err
    assert err.strip().endswith("bead: interrupted")
    assert "Exception ignored" not in err and "Traceback" not in err


# --- a real conversion, signalled at many moments ----------------------------------------------


def _events(n: int, seed: int) -> EventChunk:
    rng = np.random.default_rng(seed)
    num_jets = rng.integers(2, 5, n)
    constits = rng.integers(12, 51, int(num_jets.sum()))
    n_con = int(constits.sum())
    return EventChunk(
        evt_id=np.arange(n), evt_weight=rng.lognormal(-16, 2, n), met=rng.exponential(100.0, n),
        met_phi=rng.uniform(0, 2 * np.pi, n), num_jets=num_jets, jet_num_constits=constits,
        jet_btag=(rng.random(len(constits)) < 0.05).astype(np.int64),
        con_pid=rng.choice([22, 211, -211, 130, 11], n_con), con_pt=rng.exponential(8.0, n_con),
        con_eta=rng.normal(0, 1.2, n_con), con_phi=rng.uniform(0, 2 * np.pi, n_con),
    )


def _bead(root: Path, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bead", *args, "-p", WS, PROJ, "--workspaces", str(root),
         "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        **kwargs)


def _set_config(root: Path, **values: int) -> None:
    path = root / WS / PROJ / "config" / f"{PROJ}_config.toml"
    lines = []
    for line in path.read_text().splitlines():
        key = line.split("=")[0].strip()
        lines.append(f"{key} = {values[key]}" if key in values else line)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("interrupt")
    assert main(["-m", "new_project", "-p", WS, PROJ, "--workspaces", str(root)]) == 0
    csv_dir = root / WS / "data" / "csv"
    csv_dir.mkdir(parents=True, exist_ok=True)
    for seed, (name, n) in enumerate(SAMPLE.items()):
        write_bead_csv(csv_dir / name, [_events(n, seed)])
    assert sum(p.stat().st_size for p in csv_dir.iterdir()) > PARALLEL_MIN_BYTES
    _set_config(root, chunk_size=300)
    return root


class _Run:
    """A ``bead -m convert_csv`` whose stderr (the log) is watched for the mode's first line."""

    def __init__(self, root: Path) -> None:
        self.proc = _bead(root, "-m", "convert_csv")
        self.started = threading.Event()
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if MARKER in line:
                self.started.set()

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        assert self.proc.stdout is not None
        self.proc.stdout.read()
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return code, "".join(self.lines)


def _stores(root: Path) -> dict[str, str]:
    folder = root / WS / "data" / "h5"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if not p.name.startswith(".") and p.is_file()}


def _hidden(root: Path) -> list[str]:
    folder = root / WS / "data" / "h5"
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _group_gone(pgid: int, timeout: float = 10.0) -> bool:
    """Whether every process of the run's session has ended (workers included)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _store_temp_appears(root: Path, timeout: float) -> None:
    folder = root / WS / "data" / "h5"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir() and any(p.name.endswith(".tmp") for p in folder.iterdir()):
            return
        time.sleep(0.005)


def _timed_run(root: Path) -> float:
    """How long a whole conversion runs after its first log line."""
    run = _Run(root)
    assert run.started.wait(60)
    start = time.monotonic()
    code, err = run.finish()
    assert code == 0, err
    return time.monotonic() - start


@pytest.fixture(scope="module")
def reference(workspace: Path) -> tuple[dict[str, str], dict[int, float]]:
    """The stores of an uninterrupted run (also kept in ``h5_reference``), and how long a run
    lasts after its first log line with 1 and 2 worker processes."""
    seconds = {}
    for workers in (1, 2):
        _set_config(workspace, parallel_workers=workers)
        seconds[workers] = _timed_run(workspace)
    shutil.copytree(workspace / WS / "data" / "h5", workspace / "h5_reference")
    return _stores(workspace), seconds


def _reset_stores(root: Path, previous: bool) -> None:
    """Remove the stores, or put the reference ones back: the stores a re-conversion replaces."""
    store_dir = root / WS / "data" / "h5"
    shutil.rmtree(store_dir)
    if previous:
        shutil.copytree(root / "h5_reference", store_dir)
    else:
        store_dir.mkdir()


# (signal, when: a fraction of the reference run after its first log line, or "write" as soon
# as a store's temporary file exists; to the parent only or to the whole process group, as a
# terminal's Ctrl-C or a batch system does; parallel_workers; previous stores kept or removed)
MOMENTS = [
    (signal.SIGINT, 0.0, "parent", 2, False),  # before the first file
    (signal.SIGTERM, 0.05, "group", 2, True),  # while the workers start
    (signal.SIGINT, "write", "group", 2, True),
    (signal.SIGTERM, "write", "parent", 1, False),
    (signal.SIGINT, 0.35, "parent", 1, True),
    (signal.SIGINT, 0.5, "group", 2, False),
    (signal.SIGTERM, 0.65, "group", 1, True),
    (signal.SIGTERM, 0.8, "parent", 2, False),  # this process writing the large file's blocks
]


def _interrupted_run(root: Path, signum: int, when: float | str, target: str,
                     seconds: float) -> tuple[int, str]:
    """Signal a conversion at ``when``; a run that ended before (a machine busier during the
    reference run) is tried again with half the delay."""
    for attempt in range(4):
        run = _Run(root)
        assert run.started.wait(60)
        if when == "write":
            _store_temp_appears(root, timeout=seconds * 2)
        else:
            time.sleep(float(when) * seconds / 2**attempt)
        if run.proc.poll() is None:
            break
        run.finish()
    else:
        pytest.fail(f"the conversion always ended before the signal at {when}")
    if target == "group":
        os.killpg(run.proc.pid, signum)
    else:
        run.proc.send_signal(signum)
    code, err = run.finish()
    assert _group_gone(run.proc.pid), "worker processes left running"
    return code, err


def test_signals_at_any_moment_stop_the_conversion_cleanly(workspace: Path, reference) -> None:
    want, seconds = reference
    for signum, when, target, workers, keep_previous in MOMENTS:
        moment = f"{signal.Signals(signum).name} at {when} to the {target}, {workers} worker(s)"
        _set_config(workspace, parallel_workers=workers)
        _reset_stores(workspace, keep_previous)
        code, err = _interrupted_run(workspace, signum, when, target, seconds[workers])
        assert code == 1, f"{moment}: exit {code}\n{err}"
        assert err.strip().endswith("bead: interrupted"), f"{moment}:\n{err}"
        assert "Traceback" not in err and "Exception ignored" not in err, f"{moment}:\n{err}"
        assert _hidden(workspace) == [], moment  # not even a temporary file
        stores = _stores(workspace)
        assert {name: want[name] for name in stores} == stores, f"{moment}: a partial store"
        if keep_previous:
            assert stores == want, f"{moment}: a previous store was lost"
    run = _Run(workspace)  # the next run completes the work
    assert run.finish()[0] == 0
    assert _stores(workspace) == want and _hidden(workspace) == []


def test_the_next_run_removes_what_a_killed_run_left(workspace: Path, reference) -> None:
    want, seconds = reference
    _set_config(workspace, parallel_workers=2)
    _reset_stores(workspace, previous=False)
    run = _Run(workspace)
    assert run.started.wait(60)
    _store_temp_appears(workspace, timeout=seconds[2] * 2)
    os.killpg(run.proc.pid, signal.SIGKILL)  # no chance to clean up
    run.finish()
    assert _group_gone(run.proc.pid)
    left = _hidden(workspace)
    assert left and all(name.endswith(".tmp") for name in left), left
    run = _Run(workspace)
    code, err = run.finish()
    assert code == 0, err
    assert _hidden(workspace) == []
    assert _stores(workspace) == want
