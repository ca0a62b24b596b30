"""Ctrl-C and SIGTERM that always stop a run (SPEC §1), in the main process and in workers.

A signal handler that only raises ``KeyboardInterrupt`` is not enough: Python prints and then
*swallows* an exception raised while a ``__del__`` method or a weakref callback runs (h5py
closes its objects that way), and the run would go on. So the handler also records the signal:
loops call :func:`check_interrupted` to raise it again, and the CLI never exits 0 once a signal
was recorded. Worker processes ignore SIGINT (a terminal's Ctrl-C reaches the whole process
group; the parent decides) and stop at their next check when the parent asks them to, when they
get SIGTERM themselves, or when the parent has died.

Floor module: only the standard library, so every stage can use it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TypeVar

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_PARENT_POLL_S = 0.5

_received: int | None = None  # the first signal recorded in this process
_in_task = False  # a worker is inside a task (its cleanup must run before it exits)

T = TypeVar("T")


def record(signum: int) -> None:
    """Remember that ``signum`` asked this process to stop (the first one counts)."""
    global _received
    if _received is None:
        _received = signum


def interrupted() -> bool:
    """Whether a stop signal was recorded in this process."""
    return _received is not None


def check_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if a stop signal was recorded: call it in loops, so an
    interrupt that Python swallowed (in a ``__del__`` or weakref callback) still stops the run."""
    if _received is not None:
        raise KeyboardInterrupt


def reset() -> None:
    """Forget a recorded signal (a test, or a program that handled it and goes on)."""
    global _received
    _received = None


def _record_and_raise(signum: int, frame: FrameType | None) -> None:
    record(signum)
    raise KeyboardInterrupt


def _quiet_unraisable(previous: Callable[[Any], object]) -> Callable[[Any], object]:
    """An unraisable-exception hook that stays silent about the interrupt it already recorded
    (Python would print ``Exception ignored in: ... KeyboardInterrupt``)."""

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            record(signal.SIGINT)
            return
        previous(unraisable)

    return hook


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM record themselves and raise
    ``KeyboardInterrupt`` (so temporary files are removed on the way out); the previous
    handlers come back afterwards, unless the block installed others (such as
    :func:`exit_on_late_signals`). Only the main thread can install handlers; elsewhere this
    does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _record_and_raise) for sig in SIGNALS}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_unraisable(previous_hook)
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for sig, handler in previous.items():
            if signal.getsignal(sig) is _record_and_raise:
                signal.signal(sig, handler)


def exit_on_late_signals(message: str) -> None:
    """From now on a stop signal prints ``message`` and ends the process with status 1 at once.
    For the moment after a command's outcome is decided, when there is nothing left to clean
    up, so a signal that arrives then is still never an exit 0 nor a traceback."""

    def leave(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os.write(2, message.encode() + b"\n")
        os._exit(1)

    for sig in SIGNALS:
        signal.signal(sig, leave)


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Hold back SIGINT and SIGTERM while the block runs (they are delivered right after).

    A process started inside the block (multiprocessing's spawn) inherits the blocked mask, so
    it cannot be interrupted while it is still importing, before :func:`init_worker` runs."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# --- worker processes -------------------------------------------------------------------------


def init_worker() -> None:
    """Pool initializer: SIGINT ignored, SIGTERM stops the current task (after its cleanup) or
    ends an idle worker, and the worker stops by itself if its parent dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_sigterm)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name="bead-parent-watch").start()


def _worker_sigterm(signum: int, frame: FrameType | None) -> None:
    record(signum)
    if not _in_task:
        os._exit(1)  # idle: nothing to clean up
    raise KeyboardInterrupt


def _watch_parent(parent: int) -> None:
    """An orphaned worker would otherwise wait for work forever."""
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)


def run_task(fn: Callable[..., T], *args: Any) -> T:
    """Run one task in a worker. A task stopped by a signal to this worker (or by its parent's
    death) ends the worker once the task's own cleanup has run; a task that the parent
    cancelled just raises ``KeyboardInterrupt`` back to it."""
    global _in_task
    _in_task = True
    try:
        check_interrupted()
        return fn(*args)
    finally:
        _in_task = False
        if interrupted():
            os._exit(1)
