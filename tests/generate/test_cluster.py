"""Generation on a Dask cluster (``dask_scheduler``): the same bytes as the process pool."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from bead.errors import BeadError, MissingExtraError
from bead.generate.executor import generate_samples
from bead.generate.settings import GenerationSettings

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")
distributed = pytest.importorskip("distributed")

TINY = GenerationSettings(bkg_train_events=16, bkg_test_events=0, sig_events=8,
                          generators=("pythia",), block_size=8, seed=11)


def test_a_local_cluster_writes_the_bytes_of_the_process_pool(tmp_path: Path) -> None:
    pool = generate_samples(TINY, tmp_path / "pool", workers=2, progress=False)
    # Two workers in this process (threads): fast to start, and the blocks still travel through
    # the scheduler as they would to a cluster's workers.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        dask = generate_samples(TINY, tmp_path / "dask", progress=False,
                                scheduler=cluster.scheduler_address, timeout_s=30)
    assert [s.path.name for s in dask] == [s.path.name for s in pool]
    for a, b in zip(pool, dask, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes()
    assert (tmp_path / "dask/generated.json").read_text() == \
        (tmp_path / "pool/generated.json").read_text()


def test_a_scheduler_that_does_not_answer_fails_in_bounded_time(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(BeadError, match=rf"dask_scheduler = 'tcp://127.0.0.1:{port}': no answer "
                                        r"within 2 s"):
        generate_samples(TINY, tmp_path / "csv", progress=False,
                         scheduler=f"tcp://127.0.0.1:{port}", timeout_s=2)
    assert time.monotonic() - start < 20
    assert list((tmp_path / "csv").iterdir()) == []  # nothing written


def test_without_dask_it_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'bead-hep\[cluster\]'"):
        generate_samples(TINY, tmp_path / "csv", progress=False, scheduler="tcp://x:8786")


def test_a_scheduler_address_must_be_a_url() -> None:
    from bead.config import make_config
    from bead.errors import UsageError

    with pytest.raises(UsageError, match="key 'dask_scheduler'"):
        make_config({"dask_scheduler": "host:8786"})
    assert make_config({"dask_scheduler": "tcp://host:8786"}).dask_scheduler == "tcp://host:8786"
