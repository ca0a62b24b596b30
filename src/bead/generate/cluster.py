"""Generation blocks on a Dask distributed cluster (``dask_scheduler``), optional extra
``cluster``.

Blocks are independent and seeded by name, so a worker anywhere computes the same bytes as a
local process, provided it runs the same code: the connection checks that every worker has the
same versions of bead, pythia8mc, fastjet and numpy before any block is sent. Start a cluster
on a batch system with dask-jobqueue (README: Generation on a cluster).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from bead.errors import BeadError, MissingExtraError

logger = logging.getLogger(__name__)


def code_versions() -> dict[str, str]:
    """The versions that decide a block's bytes (run on each worker too)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("bead-hep", "pythia8mc", "fastjet", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


class DaskExecutor(Executor):
    """A ``concurrent.futures`` executor over a Dask cluster, connected within ``timeout_s``."""

    def __init__(self, address: str, timeout_s: float) -> None:
        try:
            from distributed import Client
        except ImportError as exc:
            raise MissingExtraError("cluster", "dask[distributed]",
                                    "Generation on a Dask cluster") from exc
        try:
            self.client = Client(address, timeout=timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise BeadError(f"dask_scheduler = '{address}': no answer within {timeout_s:g} s "
                            f"({type(err).__name__}); check the address, that the scheduler "
                            "runs, and dask_timeout_s") from None
        try:
            self._check_workers(address)
        except BaseException:
            self.client.close()
            raise
        self._inner = self.client.get_executor(pure=False)

    def _check_workers(self, address: str) -> None:
        here = code_versions()
        for worker, theirs in self.client.run(code_versions).items():
            differ = [f"{k} {theirs.get(k)} (here {v})" for k, v in here.items()
                      if theirs.get(k) != v]
            if differ:
                raise BeadError(f"dask_scheduler = '{address}': worker {worker} runs "
                                f"{', '.join(differ)}; the same seed would not give the same "
                                "files: install the same versions on the workers")

    def describe(self) -> str:
        info = self.client.scheduler_info()
        workers = info.get("workers", {})
        threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
        return f"the Dask cluster at {self.client.scheduler.address} ({len(workers)} " \
               f"worker(s), {threads} thread(s))"

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return self._inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Cancel what is still queued (``cancel_futures``) and disconnect."""
        try:
            self._inner.shutdown(wait=wait and not cancel_futures)
        finally:
            self.client.close()
