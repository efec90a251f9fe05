"""A run's MLflow side while it trains: created in the background, watched, then completed.

MLflow's start-up (import, store, experiment, run) overlaps compilation and training. For a
tracking server, a watcher asks ``/health`` every two seconds while the job runs: a server
lost mid-run is noticed within about six seconds, the user is told once, and at the end the
record is kept for ``bplab-sync`` instead of waiting on retries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from backprop_lab.errors import BackpropLabError
from backprop_lab.tracking import publishing
from backprop_lab.tracking.records import RunRecord
from backprop_lab.tracking.store import (
    check_server,
    is_remote,
    is_store_full_error,
    is_unreachable_error,
)

_WATCH_INTERVAL_S = 2.0
_WATCH_TIMEOUT_S = 2.0
# Consecutive failed health checks before the server counts as lost (one may be a blip).
_WATCH_FAILURES = 2


def kept_message(record: RunRecord, why: str) -> str:
    return (
        f"{why}; the run is kept in {record.folder}. Upload it later with: "
        f"bplab-sync {record.folder}"
    )


class TrackedRun:
    """Create ``record``'s MLflow run in the background and watch its server.

    ``warn(message)`` is called (at most once) when the server goes away mid-run.
    """

    def __init__(self, record: RunRecord, warn: Callable[[str], None]):
        self.record = record
        self._warn = warn
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bplab-tracking")
        self._opening = self._pool.submit(self._open)
        self._done = threading.Event()
        self.lost = threading.Event()
        self._watcher = None
        if is_remote(record.tracking_uri):
            self._watcher = threading.Thread(
                target=self._watch, name="bplab-server-watch", daemon=True
            )
            self._watcher.start()

    def _open(self) -> str:
        run_id = publishing.create_run(self.record)
        # On disk at once: after kill -9, bplab-sync completes this run instead of adding one.
        self.record.save()
        return run_id

    def _watch(self) -> None:
        failures = 0
        while not self._done.wait(_WATCH_INTERVAL_S):
            try:
                check_server(self.record.tracking_uri, timeout_s=_WATCH_TIMEOUT_S)
                failures = 0
            except BackpropLabError:
                failures += 1
                if failures >= _WATCH_FAILURES and not self.lost.is_set():
                    self.lost.set()
                    self._warn(
                        kept_message(
                            self.record,
                            f"the tracking server {self.record.tracking_uri} stopped answering; "
                            "training goes on",
                        )
                    )

    def opened(self) -> bool:
        """Whether the run was created (waiting for it); an unreachable store is no error."""
        try:
            self._opening.result()
        except Exception as error:
            if is_unreachable_error(error):
                return False
            raise
        return True

    def send_metrics(self):
        """Start sending the metrics (while the figures are drawn); a future, or None."""
        if self.lost.is_set() or not self.opened():
            return None
        return self._pool.submit(publishing.publish_metrics, self.record, known_running=True)

    def finish(self, sending=None) -> tuple[str, str]:
        """Publish what is left and close the run: ``("FINISHED" | "PENDING", message)``.

        PENDING means the record waits on disk for ``bplab-sync``; the message says why.
        """
        try:
            if self.lost.is_set():
                check_server(self.record.tracking_uri, timeout_s=_WATCH_TIMEOUT_S)
            if not self.opened():
                raise ConnectionError("the tracking store could not be reached")
            if sending is not None:
                sending.result()
                publishing.publish_artifacts_and_close(self.record)
            else:
                publishing.publish(self.record)
        except Exception as error:
            return "PENDING", self._pending_message(error)
        return "FINISHED", ""

    def _pending_message(self, error: BaseException) -> str:
        uri = self.record.tracking_uri
        if is_store_full_error(error):
            why = f"the tracking store {uri} is full ({str(error).splitlines()[0][:200]})"
        elif isinstance(error, BackpropLabError) or is_unreachable_error(error):
            why = f"the tracking store {uri} could not be reached"
        else:
            publishing.end_run(
                uri, self.record.run_id, "FAILED", f"publishing failed: {type(error).__name__}"
            )
            raise error
        return kept_message(self.record, why)

    def abort(self, status: str, reason: str, timeout_s: float = 3.0) -> None:
        """Close the MLflow run as ``status`` (best effort, waiting at most ``timeout_s``)."""
        if self.lost.is_set():
            return
        worker = threading.Thread(
            target=self._abort, args=(status, reason), name="bplab-abort", daemon=True
        )
        worker.start()
        worker.join(timeout_s)

    def _abort(self, status: str, reason: str) -> None:
        try:
            if self.opened():
                publishing.end_run(self.record.tracking_uri, self.record.run_id, status, reason)
        except Exception:  # noqa: S110 - closing is best effort; the record keeps the truth
            pass

    def close(self) -> None:
        self._done.set()
        self._pool.shutdown(wait=False)
