"""What the console shows while a job works: an epoch bar while training, a line per phase.

Both appear only on a terminal (``tracking.progress=true``, the default) and only for work
long enough to wait for; scripts and logs get the summary lines alone.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

# Show the epoch bar when training is estimated to take longer than this many seconds.
_BAR_AFTER_S = 1.0


def interactive(enabled: bool) -> bool:
    return bool(enabled) and sys.stderr.isatty()


class EpochBar:
    """A rich progress bar of epochs, fed after every chunk of training."""

    def __init__(self, label: str, total_epochs: int, enabled: bool):
        self.enabled = enabled
        self._bar = None
        self._label = label
        self._total = total_epochs

    def __enter__(self) -> EpochBar:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("epoch {task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(escape(self._label), total=self._total)
        return self

    def update(self, epochs_done: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=epochs_done)

    def __exit__(self, *exc) -> bool:
        if self._bar is not None:
            self._bar.stop()
        return False


def wants_bar(enabled: bool, estimated_seconds: float) -> bool:
    return interactive(enabled) and estimated_seconds >= _BAR_AFTER_S


@contextlib.contextmanager
def phase(text: str, enabled: bool) -> Iterator[None]:
    """A spinner with ``text`` on stderr while the block runs (on a terminal only)."""
    if not interactive(enabled):
        yield
        return
    from rich.console import Console
    from rich.markup import escape

    started = time.perf_counter()
    console = Console(stderr=True)
    with console.status(escape(text)):
        yield
    elapsed = time.perf_counter() - started
    if elapsed >= 2.0:
        console.print(f"[dim]{escape(text)}: {elapsed:.1f} s[/]")
