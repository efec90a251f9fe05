"""``bplab-report`` on the command line: exit codes and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_store import EXPERIMENTS, build_reports

from backprop_lab import tracking
from backprop_lab.cli import report as cli_report

report_run = cli_report.run


def test_unknown_experiment_is_one_line_and_exit_2(store, tmp_path, capsys):
    assert build_reports(store.uri, tmp_path / "out", "grid_study", "no_such_study") == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert error.startswith("bplab-report: error: ")
    assert "no_such_study" in error
    for name in EXPERIMENTS:
        assert name in error
    assert not (tmp_path / "out").exists()


def test_a_store_without_runs_is_exit_2(store_uri, tmp_path, capsys):
    # No database file at all: nothing is created.
    assert cli_report.run(["--out", str(tmp_path / "out"), "--tracking-uri", store_uri]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not Path(store_uri[len("sqlite:///") :]).exists()
    # A database with an experiment but no runs.
    tracking.ensure_experiment(store_uri, "empty")
    assert cli_report.run(["--out", str(tmp_path / "out"), "--tracking-uri", store_uri]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("bplab-report: error: ") and "has no runs" in error


def test_a_bad_option_is_one_line_and_exit_2(capsys):
    assert cli_report.run(["--no-such-option"]) == 2
    error = capsys.readouterr().err.strip()
    assert (
        error
        == "bplab-report: error: unrecognized arguments: --no-such-option (see bplab-report --help)"
    )


def test_main_exits_with_the_code_of_run(monkeypatch):
    monkeypatch.setattr("sys.argv", ["bplab-report", "--help"])
    with pytest.raises(SystemExit) as exit_request:
        cli_report.main()
    assert exit_request.value.code == 0


def test_run_picks_an_older_sweep_to_report_on(store, tmp_path, capsys):
    out = tmp_path / "older"
    argv = ["--tracking-uri", store.uri, "--out", str(out)]
    assert cli_report.run([*argv, "--experiment", "xor_mlp", "--run", store.older.run_id]) == 0
    markdown = (out / "xor_mlp" / "report" / "report.md").read_text()
    assert store.older.run_id in markdown and store.latest.run_id not in markdown
    capsys.readouterr()
    assert cli_report.run([*argv, "--run", store.older.run_id]) == 2
    assert "needs exactly one --experiment" in capsys.readouterr().err
    assert cli_report.run([*argv, "--experiment", "xor_mlp", "--run", "nope"]) == 2


def test_reports_built_side_by_side_equal_those_built_one_by_one(store, built, tmp_path, capsys):
    """``built`` used one worker process per core; --jobs 1 builds in this process."""
    assert report_run(["--out", str(tmp_path), "--tracking-uri", store.uri, "--jobs", "1"]) == 0
    names = sorted(path.parent.parent.name for path in built.glob("*/report/report.md"))
    assert len(names) >= 2
    for name in names:
        side_by_side = (built / name / "report" / "report.md").read_text()
        one_by_one = (tmp_path / name / "report" / "report.md").read_text()
        assert one_by_one == side_by_side, name
        figures = sorted(p.name for p in (built / name / "report" / "figures").iterdir())
        assert figures == sorted(p.name for p in (tmp_path / name / "report" / "figures").iterdir())


@pytest.mark.parametrize("value", ["0", "x", "65"])
def test_a_bad_jobs_count_is_one_line_and_exit_2(store, tmp_path, capsys, value):
    code = report_run(["--out", str(tmp_path), "--tracking-uri", store.uri, "--jobs", value])
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("bplab-report: error: argument --jobs:")
