"""Runs as SLURM jobs (Hydra's ``submitit_slurm`` launcher): what SLURM does to them, told.

What a SLURM job is sent, measured on SLURM 22.05 (``scripts/slurm_local.sh``):

* ``SIGUSR2`` before the time limit: submitit asks for ``--signal=USR2@<signal_delay_s>``.
  slurmctld checks limits every 30 s and sends the warning at the first check that is less
  than ``signal_delay_s + 30`` s before the limit, so it comes up to 30 s early;
* at the limit (at a 30 s check, so up to 30 s late), ``SIGTERM`` to every task, twice
  (slurmstepd, then srun), and ``SIGKILL`` ``KillWait`` seconds later (30 s by default);
* ``scontrol requeue`` and ``scancel`` send ``SIGTERM``; a requeued job runs again from the
  start, with ``SLURM_RESTART_COUNT`` set (preemption with ``PreemptMode=REQUEUE`` requeues
  jobs the same way).

The first stop signal ends the run after the chunk in flight, recorded KILLED with its epochs
(:mod:`backprop_lab.interrupt`); this module names the reason and decides how the job ends:
a job that SLURM will run again exits without a result, so that submitit waits for the next
attempt; any other job returns, so that the multirun collects every job and reports them.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from backprop_lab.tracking.provenance import TAG_PREFIX

JOB_TAG = TAG_PREFIX + "slurm_job_id"
RESTART_TAG = TAG_PREFIX + "slurm_restart_count"

# The worst outcome of the SLURM jobs of the multirun this process launched: 0 when all
# finished, 1 when one did not (set by :class:`SlurmJobsCallback`, read by bplab-train).
multirun_exit_status = 0


def slurm_job_id(environ: Mapping[str, str] = os.environ) -> str | None:
    """The job's id as ``squeue`` and submitit show it: ``12_3`` for task 3 of array 12."""
    array, task = environ.get("SLURM_ARRAY_JOB_ID"), environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return environ.get("SLURM_JOB_ID") or None


def restart_count(environ: Mapping[str, str] = os.environ) -> int:
    """How many times SLURM has requeued this job (0 for its first attempt)."""
    try:
        return int(environ.get("SLURM_RESTART_COUNT") or 0)
    except ValueError:
        return 0


def in_slurm_job(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process is a job that submitit started on SLURM."""
    return environ.get("SUBMITIT_EXECUTOR") == "slurm" and bool(environ.get("SLURM_JOB_ID"))


def job_tags(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Tags that find a run's SLURM job (and its log) again; none outside SLURM."""
    job = slurm_job_id(environ)
    if not job:
        return {}
    return {JOB_TAG: job, RESTART_TAG: str(restart_count(environ))}


def attempt_dir(output_dir: str | Path, environ: Mapping[str, str] = os.environ) -> Path:
    """A requeued job's run gets a folder of its own; the first attempt's record stays."""
    count = restart_count(environ)
    return Path(output_dir) / f"restart_{count}" if count else Path(output_dir)


def _job_fields() -> dict[str, str]:
    """``scontrol show job`` of this job as a dict ({} when SLURM does not answer)."""
    try:
        shown = subprocess.run(
            ["scontrol", "show", "job", "-o", os.environ["SLURM_JOB_ID"]],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (KeyError, OSError, subprocess.SubprocessError):
        return {}
    return dict(item.split("=", 1) for item in shown.stdout.split() if "=" in item)


def will_run_again() -> bool:
    """Whether SLURM has requeued this job: ``scontrol`` counts one more restart than ours."""
    try:
        return int(_job_fields().get("Restarts", 0)) > restart_count()
    except ValueError:
        return False


def stop_reason(signum: int) -> str | None:
    """Why SLURM sent ``signum`` to this job, as a run's reason; None outside SLURM.

    ``scontrol`` tells a time limit (``Reason=TimeLimit``) and a requeue (one restart more
    than this attempt's) apart from a ``scancel``.
    """
    job = slurm_job_id()
    if not job or not os.environ.get("SLURM_JOB_ID"):
        return None
    if signum == signal.SIGUSR2:
        return f"stopped at the SLURM time limit of job {job} (SIGUSR2, sent before the limit)"
    if signum != signal.SIGTERM:
        return None
    fields = _job_fields()
    if fields.get("Reason") == "TimeLimit":
        return f"stopped at the SLURM time limit of job {job} (SIGTERM)"
    try:
        requeued = int(fields.get("Restarts", 0)) > restart_count()
    except ValueError:
        requeued = False
    if requeued:
        return f"requeued by SLURM (preemption or scontrol requeue): job {job} will run again"
    return f"cancelled or preempted: SLURM job {job} sent SIGTERM"


def _launcher_target(config) -> str:
    from omegaconf import OmegaConf

    return str(OmegaConf.select(config, "hydra.launcher._target_", default="") or "")


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - Hydra is a dependency
    _HydraCallback = object


class SlurmJobsCallback(_HydraCallback):
    """After a ``submitit_slurm`` multirun: one line per job, with its SLURM job id and run id.

    The jobs print their own summary lines into their SLURM logs
    (``<sweep dir>/.submitit/<job id>/``), which the person who launched the multirun does
    not see; these lines are read back from the store.
    """

    def on_multirun_end(self, config, **kwargs) -> None:
        global multirun_exit_status
        if not _launcher_target(config).endswith("SlurmLauncher"):
            return
        from backprop_lab.tracking.records import read_parent_run

        parent = read_parent_run(config.hydra.sweep.dir)
        if not parent:
            return
        lines, unfinished = job_lines(parent["tracking_uri"], parent["run_id"])
        for line in lines:
            print(line)
        if unfinished:
            multirun_exit_status = 1
            print(
                f"{unfinished} job(s) did not finish; the same command with resume=true "
                "runs only those (the finished ones are skipped)"
            )


def job_lines(uri: str, parent_run_id: str) -> tuple[list[str], int]:
    """``slurm job 12_0 | run <id> | FINISHED | <run name>`` for each child of a multirun,
    and how many of the jobs' latest attempts did not finish."""
    from backprop_lab.tracking import client

    mlflow_client = client(uri)
    parent = mlflow_client.get_run(parent_run_id)
    children = mlflow_client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        max_results=10000,
    )

    def order(run):
        job = run.data.tags.get(JOB_TAG, "")
        array, _, task = job.partition("_")
        numbers = (int(array) if array.isdigit() else 0, int(task) if task.isdigit() else 0)
        return (*numbers, int(run.data.tags.get(RESTART_TAG, 0)), run.info.start_time)

    lines, latest = [], {}
    for run in sorted(children, key=order):
        job = run.data.tags.get(JOB_TAG, "?")
        line = f"slurm job {job} | run {run.info.run_id} | {run.info.status} | {run.info.run_name}"
        reason = run.data.tags.get(TAG_PREFIX + "error")
        if run.info.status != "FINISHED" and reason:
            line += f" | {reason}"
        lines.append(line)
        latest[job if job != "?" else run.info.run_id] = run.info.status
    return lines, sum(status != "FINISHED" for status in latest.values())
