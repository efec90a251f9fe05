"""Labels: what varied between the jobs of a multirun."""

from __future__ import annotations

from collections.abc import Sequence

from backprop_lab.report.jobs import Job


def _override_pairs(overrides: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in overrides:
        if "=" not in item or item.startswith(("experiment=", "tracking.", "hydra", "+tracking.")):
            continue
        key, value = item.split("=", 1)
        pairs.append((key.lstrip("+~"), value))
    return pairs


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
    """``model.hidden_sizes`` → ``hidden_sizes`` where the last part is unambiguous."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {
        key: (short if last.count(short) == 1 else key)
        for key, short in zip(keys, last, strict=True)
    }


def label_jobs(jobs: list[Job]) -> None:
    """Label each job by what varied: its explicit run name, else the overrides that differ."""
    pairs = [dict(_override_pairs(job.overrides)) for job in jobs]
    keys = sorted(
        {key for pair in pairs for key in pair},
        key=lambda key: min(list(p).index(key) for p in pairs if key in p),
    )
    varied = [key for key in keys if len({pair.get(key) for pair in pairs}) > 1]
    short = _short_keys(varied)
    for job, pair in zip(jobs, pairs, strict=True):
        job.varied = {short[key]: pair[key] for key in varied if key in pair}
        explicit = job.cfg is not None and job.cfg.tracking.run_name
        if explicit or len(jobs) == 1 or not job.varied:
            job.label = job.short_label = job.name
        else:
            job.label = ", ".join(f"{key}={value}" for key, value in job.varied.items())
            job.short_label = ", ".join(job.varied.values())
    seen: dict[str, int] = {}
    for job in jobs:
        count = seen[job.label] = seen.get(job.label, 0) + 1
        if count > 1:
            job.label = f"{job.label} #{count}"
            job.short_label = f"{job.short_label} #{count}"


def varied_keys(jobs: Sequence[Job]) -> list[str]:
    """The short names of the overrides that differ between jobs, in command-line order."""
    return list(dict.fromkeys(key for job in jobs for key in job.varied))
