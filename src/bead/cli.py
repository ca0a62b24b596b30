"""Command line: parse arguments, run one pipeline function, map errors to exit codes (SPEC §1).

SIGINT and SIGTERM end every mode with ``bead: interrupted`` and exit status 1, whenever they
arrive (:mod:`bead.interrupt`): the handlers go in first, before the pipeline (and pydantic) is
imported, a signal is never followed by exit status 0, and the process ends without Python's
teardown, during which a signal would meet the default handlers again.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from bead import __version__, interrupt
from bead.errors import BeadError
from bead.training.distributed import env_rank

log = logging.getLogger("bead")
INTERRUPTED = "bead: interrupted"


def build_parser() -> argparse.ArgumentParser:
    from bead.pipeline import CHAIN_TOKENS, MODES

    parser = argparse.ArgumentParser(
        prog="bead",
        description="Background Enrichment for Anomaly Detection.",
        epilog="Example: bead -m chain -p ws p1 -o convertcsv_prepareinputs_train_detect_plot",
    )
    parser.add_argument("-m", "--mode", required=True, choices=MODES, metavar="MODE",
                        help="one of: " + ", ".join(MODES))
    parser.add_argument("-p", "--project", nargs=2, metavar=("WORKSPACE", "PROJECT"),
                        help="workspace and project names")
    parser.add_argument("-o", "--options", default=None,
                        help="chain: tokens joined by '_' (" + ", ".join(CHAIN_TOKENS) + "); "
                        "otherwise h5 | parquet (convert_csv, convert_root, prepare_inputs), "
                        "resume (train), overlay_roc | train_metrics | test_metrics (plot)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="more detail, and tracebacks on errors")
    parser.add_argument("--workspaces", default=None, metavar="DIR",
                        help="folder holding workspaces (default: $BEAD_WORKSPACES or "
                        "./workspaces)")
    parser.add_argument("--legacy-config", type=Path, default=None, metavar="FILE",
                        help="new_project: convert this legacy <proj>_config.py to the new "
                        "project's TOML (read, never executed)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--version", action="version", version=f"bead {__version__}")
    return parser


def _setup_logging(verbose: bool) -> None:
    """Rich, wrapped log lines on a terminal; elsewhere (a batch log, a pipe) one plain line
    per message, so paths and sample names are never split."""
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_path=verbose,
                              show_time=verbose, rich_tracebacks=False, markup=False)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = ("%(asctime)s %(levelname)-7s %(name)s: %(message)s" if verbose
               else "%(levelname)-7s %(message)s")
    handler.setFormatter(logging.Formatter(fmt))
    level = logging.DEBUG if verbose else logging.INFO
    if env_rank() > 0:  # under torchrun only rank 0 logs; the others say only what fails
        level = logging.ERROR
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in ("matplotlib", "PIL", "h5py", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv``. When None, ``sys.argv`` is this whole process: a signal
    after the outcome is decided still ends it with status 1, and it ends at once."""
    interrupt.reset()
    try:
        with interrupt.stop_on_signals():
            try:
                code = _run(argv)
                interrupt.check_interrupted()  # a signal whose exception Python swallowed
            finally:
                if argv is None:
                    interrupt.exit_on_late_signals(INTERRUPTED)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        code = 1
    if argv is None:
        _leave(code)
    return code


def _leave(code: int) -> NoReturn:
    """End the process now. Python's own teardown would only put back the default signal
    handlers (a signal would then kill the process without a word) and spend time on nothing
    this process still needs: every output is written and closed by now."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _run(argv: Sequence[str] | None) -> int:
    from bead.pipeline import RunOptions, run_mode

    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    options = RunOptions(
        mode=args.mode,
        project=tuple(args.project) if args.project else None,
        options=args.options,
        workspaces=args.workspaces,
        legacy_config=args.legacy_config,
        progress=not args.no_progress,
        verbose=args.verbose,
    )
    try:
        result = run_mode(options)
    except BeadError as err:
        if interrupt.interrupted():  # a failure that the interrupt caused
            raise KeyboardInterrupt from err
        return _fail(err, err.exit_code, args.verbose)
    except Exception as err:  # the CLI turns every failure into one line
        if interrupt.interrupted():
            raise KeyboardInterrupt from err
        return _fail(err, 1, args.verbose, unexpected=True)
    interrupt.check_interrupted()
    if result.metrics is not None:
        print_summary(result.metrics)
    if result.plots:
        print(f"plots: {result.paths.plots_dir} (open report.html there)")
    return 0


def print_summary(metrics: dict) -> None:
    """The AUC of every score and single observable against every signal, the primary score
    marked, and how far each score splits the background generators."""
    from rich.console import Console
    from rich.table import Table

    signals = [*metrics["signals"], "all_signals"] if len(metrics["signals"]) > 1 else \
        list(metrics["signals"])
    primary = metrics.get("primary_score")
    table = Table(title="ROC AUC (background test vs signal); * = primary score")
    table.add_column("score")
    for name in signals:
        table.add_column(name, justify="right", overflow="fold")  # long names stay whole
    table.add_column("generator split (max |AUC-0.5|)", justify="right")
    observables = metrics.get("observables", [])
    for score in [*metrics["scores"], *observables]:
        per_signal = metrics["per_signal"].get(score, {})
        aucs = [per_signal.get(s, {}).get("auc") for s in signals]
        split = metrics.get("generator_separation", {}).get(score, {})
        worst = max((abs(v - 0.5) for v in split.values() if v is not None), default=None)
        label = f"{score} *" if score == primary else score
        if score in observables:
            label += f" ({metrics.get('observable_directions', {}).get(score, 'higher')})"
        table.add_row(label, *[f"{a:.3f}" if a is not None else "-" for a in aucs],
                      f"{worst:.3f}" if worst is not None else "-",
                      end_section=score == metrics["scores"][-1] and bool(observables))
    Console().print(table)


def _fail(err: BaseException, code: int, verbose: bool, unexpected: bool = False) -> int:
    rank = env_rank()
    if rank > 0 and not (unexpected or verbose):
        return code  # under torchrun: rank 0 reports the error every rank found
    if verbose:
        traceback.print_exc()
    text = f"{type(err).__name__}: {err}" if unexpected else str(err)
    hint = "" if verbose else " (run with -v for the traceback)" if unexpected else ""
    where = f"rank {rank}: " if rank > 0 else ""
    print(f"bead: {where}error: {text}{hint}", file=sys.stderr)
    return code
