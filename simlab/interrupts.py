"""Ctrl-C and SIGTERM end a run the same way: what was done is kept and marked partial.

SIGINT raises ``KeyboardInterrupt`` in the main thread (Python's default). SIGTERM, what a cluster
scheduler or ``timeout`` sends, raises :class:`Terminated`, a ``KeyboardInterrupt``, so every path
that keeps partial work on Ctrl-C (the engine folds what it has, the run folder is published as
``_partial``) does the same on SIGTERM. The exit status is 128 + the signal number: 130 or 143.

This module imports nothing heavy: the entry point installs the handlers before NumPy and
matplotlib are imported, so a signal during start-up is handled too.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C is."""


_received: list[int] = []


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if signum == signal.SIGTERM:
        raise Terminated
    raise KeyboardInterrupt


def install() -> None:
    """Make SIGINT and SIGTERM raise in the main thread (a signal already ignored stays so)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in HANDLED:
        if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup, a background job: respected
            signal.signal(signum, _on_signal)


def received() -> int | None:
    """The first signal this process received through :func:`install`'s handlers, if any."""
    return _received[0] if _received else None


def exit_status(exc: BaseException | None = None) -> int:
    """128 + the signal that stopped the run: 143 for SIGTERM, 130 for Ctrl-C (the default)."""
    if isinstance(exc, Terminated):
        return 128 + signal.SIGTERM
    if _received:
        return 128 + _received[0]
    return 128 + signal.SIGINT


def describe(status: int | None = None) -> str:
    """``Ctrl-C`` or ``SIGTERM``, for messages and the PARTIAL note."""
    status = exit_status() if status is None else status
    return "SIGTERM" if status == 128 + signal.SIGTERM else "Ctrl-C"


@contextlib.contextmanager
def deferred(reraise: bool = False) -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM while the block runs (what it writes must not be cut short).

    A signal that arrives meanwhile is recorded (the yielded list); with ``reraise`` it is
    raised when the block ends, else it is only recorded: the block's work is what the user
    asked to keep. Outside the main thread this does nothing.
    """
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)
        _received.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in HANDLED}
    try:
        yield held
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    if reraise and held:
        raise Terminated if held[0] == signal.SIGTERM else KeyboardInterrupt


def ignore_in_worker() -> None:
    """Initializer of figure worker processes: the parent decides what a signal means.

    Ctrl-C reaches every process of the terminal's foreground group; a worker that raised
    KeyboardInterrupt would print its own traceback. The parent stops the workers itself.
    """
    for signum in HANDLED:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)


def block_in_this_thread() -> None:
    """Block SIGINT and SIGTERM in the calling (non-main) thread for good, so that the worker
    processes it starts inherit them blocked (:func:`blocked` for the main thread). Python runs
    signal handlers in the main thread, which keeps receiving them."""
    main = threading.current_thread() is threading.main_thread()
    if hasattr(signal, "pthread_sigmask") and not main:
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)


@contextlib.contextmanager
def blocked() -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread while it starts worker processes.

    A spawned child inherits the mask, so it cannot be interrupted while it imports, before its
    initializer (:func:`ignore_in_worker`) runs; in the parent a blocked signal stays pending and
    is delivered when the block ends, so nothing is lost.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # The mask is per thread: another thread (the progress bar's) can still take the signal, and
    # Python then runs the handler in this thread anyway, possibly in the middle of writing a
    # child's start-up data to its pipe (the child died on "EOFError: Ran out of input", with a
    # traceback). Deferring the handler too closes that window; the signal is raised at the end.
    with deferred(reraise=True):
        old = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
