"""Findings on synthetic grids (independent of training), and what a study's preset asks."""

from __future__ import annotations

import numpy as np
from omegaconf import OmegaConf

from backprop_lab.report.build import Findings, pick_headline
from backprop_lab.report.findings import comparison_findings, grid_findings
from backprop_lab.report.jobs import Job, report_settings


def _synthetic_job(
    compose, success: list[float], rates: list[float], label: str = "xor", extra=()
) -> Job:
    from backprop_lab.config import Config, build_architecture, build_dataset

    cfg = OmegaConf.merge(
        OmegaConf.structured(Config),
        compose(["experiment=learning_rates", "data=xor", *extra]),
    )
    seeds, epochs = 4, 10
    solved = np.array(
        [[s < round(rate_success * seeds) for s in range(seeds)] for rate_success in success]
    )
    loss = np.where(solved[..., None], 0.001, 0.2) * np.ones((len(rates), seeds, epochs))
    grid = {
        "learning_rates": np.array(rates),
        "seeds": np.arange(seeds),
        "loss": loss,
        "accuracy": np.where(solved[..., None], 1.0, 0.75) * np.ones_like(loss),
        "test_loss": np.full_like(loss, np.nan),
        "test_accuracy": np.full_like(loss, np.nan),
        "solved": solved,
        "improved": np.ones_like(solved),
        "diverged_epoch": np.zeros(solved.shape, int),
        "epochs_to_target": np.where(solved, 5, 0),
        "initial_loss": np.full(solved.shape, 0.3),
    }
    dataset = build_dataset(cfg)
    return Job(
        run=None,
        kind="grid",
        label=label,
        cfg=cfg,
        grid=grid,
        dataset=dataset,
        architecture=build_architecture(cfg, dataset),
    )


def test_regime_finding_names_the_rates_that_never_converged(compose):
    rates = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]
    job = _synthetic_job(compose, [0, 0, 0.5, 1.0, 0.25, 0], rates)
    found = grid_findings(job, several=False)
    # 2 + 4 + 1 of the 4 seeds at 0.1, 1 and 10.
    assert found[0].startswith("7 of 24 cells converged (loss ≤ 0.01, all rows right) (29%)")
    assert "best learning rate 1: 4 of 4 seeds" in found[0]
    assert (
        found[1]
        == "rates ≤ 0.01 and ≥ 100 never converged within 10 epochs; best rate 1 converged in 100% of seeds"
    )


def test_a_grid_that_never_succeeds_reports_its_best_accuracy(compose):
    job = _synthetic_job(compose, [0, 0, 0], [0.1, 1.0, 10.0])
    (sentence,) = grid_findings(job, several=True)
    assert sentence.startswith("xor: 0 of 12 cells converged")
    assert "best accuracy 75%" in sentence
    assert "best learning rate" not in sentence


def test_the_comparison_calls_a_job_what_the_preset_says(compose):
    jobs = [
        _synthetic_job(compose, [0.5, 1.0], [0.1, 1.0], label="data=xor"),
        _synthetic_job(compose, [0.25, 0.5], [0.1, 1.0], label="data=homework"),
    ]
    settings = report_settings(jobs)
    assert settings.job_noun == "data set" and settings.headline == "regimes"
    assert comparison_findings(jobs, settings.job_noun) == [
        "best data set (100% of seeds at the best learning rate): data=xor (learning rate 1)",
        "worst data set (50%): data=homework (learning rate 1)",
    ]


def test_the_headline_is_the_finding_the_preset_picks():
    findings = Findings(["a", "regime", "comparison"], ["comparison"], ["regime"], [])
    assert pick_headline(findings, "first") == "a"
    assert pick_headline(findings, "comparison") == "comparison"
    assert pick_headline(findings, "regimes") == "regime"
    # Without the finding asked for: the comparison, else the first finding.
    no_regimes = findings._replace(regimes=[])
    assert pick_headline(no_regimes, "regimes") == "comparison"
    assert pick_headline(no_regimes._replace(comparison=[]), "regimes") == "a"
    assert pick_headline(Findings([], [], [], []), "comparison") == ""


def test_runs_without_a_report_block_or_a_config_get_the_schema_defaults(compose, tmp_path):
    from backprop_lab.tracking.artifacts import read_config

    container = OmegaConf.to_container(compose(["experiment=learning_rates"]), resolve=True)
    del container["report"]
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(container))
    old = Job(run=None, kind="grid", cfg=read_config(tmp_path / "config.yaml"))
    for settings in (report_settings([old]), report_settings([Job(run=None, kind="grid")])):
        assert (settings.job_noun, settings.headline, settings.order) == ("job", "comparison", 100)
