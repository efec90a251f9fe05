"""Stopping a run cleanly: Ctrl-C, SIGTERM, and SLURM's warning before a time limit.

Python runs signal handlers only between bytecodes of the main thread, so a long compiled
XLA call would hold Ctrl-C until it returns. Training therefore runs in chunks of epochs on a
worker thread (:func:`run_on_worker`) while the main thread waits in short sleeps and stays
ready for signals:

* the first SIGINT or SIGTERM asks the run to stop after the chunk in flight (about a
  tenth of a second of work); it then ends KILLED with the epochs done so far recorded;
* a second one exits at once, after ``on_force_exit`` has marked the run KILLED;
* SIGUSR2, which ``submitit`` asks SLURM to send before a job's time limit, stops the run
  like SIGTERM, with the time limit as its reason (:mod:`backprop_lab.cluster` names it).

A batch job can be signalled while it still starts up: :func:`hold_stop_signals` keeps such a
signal, and training then stops after its first chunk.

SIGTERM's default action kills the process without running ``finally`` or ``atexit``; SLURM
(at a time limit or on preemption), systemd and ``kill`` all send it.

A multirun has a second level (:func:`stop_sweep_on_signals`): in the launcher process the
first signal stops the sweep, which starts no new job, and is passed on to the job processes
(joblib's workers, submitit's local jobs), so each running job stops after its chunk and is
recorded KILLED; a second signal ends the launcher at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

REASONS = {
    signal.SIGINT: "interrupted (Ctrl-C, SIGINT)",
    signal.SIGTERM: "stopped by SIGTERM (a time limit, preemption or kill)",
    signal.SIGUSR2: "stopped before the SLURM time limit (SIGUSR2)",
}
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGUSR2: 143}
# Signals this close together are one: a Ctrl-C reaches a job from the terminal and again
# from its launcher. A person pressing twice takes longer.
_SAME_SIGNAL_S = 0.25


class StopRequest:
    """Set by a signal; training asks it between chunks (it is callable: ``stop()``)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""
        self.signal: int | None = None
        self.requested_at = 0.0

    def __call__(self) -> bool:
        return self._event.is_set()

    def request(self, reason: str, signum: int | None = None) -> None:
        if not self._event.is_set():
            self.reason, self.signal = reason, signum
            self.requested_at = time.monotonic()
            self._event.set()

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS.get(self.signal, 1)


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Within the block, SIGTERM exits through Python (status 143) instead of killing the
    process at once, so ``finally`` blocks run and temporary folders are removed.

    A no-op off the main thread, where Python cannot set signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_now(signum: int, frame: Any) -> None:
        raise SystemExit(EXIT_STATUS[signal.SIGTERM])

    previous = signal.signal(signal.SIGTERM, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# Set once any job of this process was stopped by a signal, or the launcher was: the sweep
# starts no further job.
sweep_stop = StopRequest()


def _children() -> list[int]:
    """Ids of this process's children (Linux ``/proc``; none elsewhere)."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == me:
            found.append(int(entry))
    return found


def stop_sweep_on_signals(announce: Callable[[str], None]) -> None:
    """In a multirun's launcher: the first SIGINT or SIGTERM stops the sweep and is passed on
    to the job processes; the second raises KeyboardInterrupt (the launcher ends at once)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handle(signum, frame):
        if sweep_stop():
            raise KeyboardInterrupt
        sweep_stop.request(REASONS.get(signum, f"signal {signum}"), signum)
        announce(
            f"{sweep_stop.reason}: stopping the jobs after their current chunk (again to quit at once)"
        )
        for child in _children():
            with contextlib.suppress(OSError):
                os.kill(child, signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handle)


# SLURM sends SIGTERM at a time limit twice (slurmstepd, then srun): one request, not two.
_SLURM_REPEAT_S = 2.0
# Stop signals that came while no run was training (see hold_stop_signals).
_held: list[int] = []


def reason_for(signum: int) -> str:
    """Why a signal stops a run, in words; SLURM's signals name the job and the cause."""
    if os.environ.get("SLURM_JOB_ID"):
        from backprop_lab.cluster import stop_reason

        reason = stop_reason(signum)
        if reason:
            return reason
    return REASONS.get(signum, f"signal {signum}")


@contextlib.contextmanager
def hold_stop_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGUSR2 outside training are kept, not acted on.

    For a batch job, which SLURM may signal while it still starts up (a short time limit):
    instead of dying, or letting submitit's own handler raise at whatever line runs, the job
    goes on, and a run that then starts stops after its first chunk (:func:`stoppable`).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def hold(signum, frame):
        _held.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in (signal.SIGTERM, signal.SIGUSR2)}
    try:
        yield
    finally:
        _held.clear()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def stoppable(
    *,
    on_first: Callable[[str], None] | None = None,
    on_force_exit: Callable[[str], None] | None = None,
) -> Iterator[StopRequest]:
    """Within the block, SIGINT, SIGTERM and SIGUSR2 set the yielded :class:`StopRequest`.

    ``on_first(reason)`` is told of the first signal (to say what happens next); a second
    signal calls ``on_force_exit(reason)`` and exits the process at once. Outside the main
    thread (where Python cannot take signals) the request is simply never set.
    """
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum, frame):
        if stop():
            since = time.monotonic() - stop.requested_at
            if since < _SAME_SIGNAL_S:
                return  # one Ctrl-C, from the terminal and again from the launcher
            repeated_by_slurm = (
                signum == stop.signal == signal.SIGTERM
                and os.environ.get("SLURM_JOB_ID")
                and since < _SLURM_REPEAT_S
            )
            if repeated_by_slurm:
                return
            if on_force_exit is not None:
                on_force_exit(stop.reason)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_STATUS.get(signum, 1))
        reason = reason_for(signum)
        stop.request(reason, signum)
        sweep_stop.request(reason, signum)
        if on_first is not None:
            on_first(reason)

    previous = {signum: signal.signal(signum, handle) for signum in REASONS}
    if _held:
        stop.request(reason_for(_held[0]), _held[0])
        sweep_stop.request(stop.reason, _held[0])
        if on_first is not None:
            on_first(stop.reason)
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_on_worker(function: Callable[[], Any], name: str = "bplab-train") -> Any:
    """Call ``function`` on a worker thread and return its result (or raise its error).

    The main thread waits in 50 ms sleeps, so signal handlers run at once even while the
    worker is inside a long compiled call.
    """
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = function()
        except BaseException as error:  # re-raised on the main thread
            outcome["error"] = error

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.05)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
