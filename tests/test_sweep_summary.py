"""The summary of a multirun, from its jobs' outcomes: the CSV a user loads and the table printed last."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from coupler.sweep_summary import JobOutcome, format_summary, write_summary


def outcome(number: int, overrides: list[str], test: float | None = None, error: str | None = None) -> JobOutcome:
    results = None if error else {"val": {"rmse": 1.0 + number, "r2": 0.5}, "test": {"rmse": test, "r2": 0.4}}
    return JobOutcome(number, Path(f"/s/{number}"), Path("/s"), overrides, results, error)


def test_each_override_key_is_a_column_and_what_a_job_did_not_set_is_empty(tmp_path):
    jobs = [outcome(0, ["model=ridge", "++model.params.alpha=0.1"], 2.0),
            outcome(1, ["model=knn", "~callbacks"], 4.0),
            outcome(2, ["model=svm", "data.path=a=b.csv"], error="model=svm cannot do it")]
    summary = pd.read_csv(write_summary(jobs, tmp_path))
    blank = summary.isna()
    assert list(summary.columns[:4]) == ["job", "directory", "status", "error"]
    assert summary["model.params.alpha"][0] == 0.1 and blank["model.params.alpha"].tolist() == [False, True, True]
    assert summary["callbacks"][1] == "(deleted)" and blank["callbacks"].tolist() == [True, False, True]
    assert summary["data.path"][2] == "a=b.csv"
    assert summary["status"].tolist() == ["ok", "ok", "failed"] and summary["error"][2] == "model=svm cannot do it"
    assert blank["error"][:2].all()
    assert summary["test_rmse"][:2].tolist() == [2.0, 4.0] and blank["test_rmse"][2] and "val_r2" in summary.columns


def test_the_table_shows_what_varies_the_first_metric_and_its_mean_and_spread():
    lines = format_summary([outcome(0, ["seed=0"], 2.0), outcome(1, ["seed=1", "~callbacks"], 4.0)]).splitlines()
    assert [line.split()[1:3] for line in lines[1:3]] == [["seed=0", "callbacks=-"], ["seed=1", "callbacks=(deleted)"]]
    lines = format_summary([outcome(1, ["data=diabetes", "seed=1"], 4.0),
                            outcome(0, ["data=diabetes", "seed=0"], 2.0)]).splitlines()
    assert lines[0].split() == ["job", "overrides", "val_rmse", "test_rmse"]
    assert lines[1].split() == ["0", "seed=0", "1.0000", "2.0000"]  # in job order; data= does not vary
    assert lines[3].split() == ["mean", "1.5000", "3.0000"]
    assert lines[4].split() == ["std", "0.7071", "1.4142"]  # the sample standard deviation (n - 1)


def test_a_missing_value_is_not_a_number_in_the_mean():
    lines = format_summary([outcome(0, ["seed=0"], None), outcome(1, ["seed=1"], 3.0),
                            outcome(2, ["seed=2"], 5.0)]).splitlines()
    assert lines[1].split()[-1] == "n/a"
    assert lines[4].split() == ["mean", "2.0000", "4.0000"]


@pytest.mark.parametrize("jobs", [[outcome(0, ["model=a"], error="e"), outcome(1, ["model=b"], error="e")],
                                  [outcome(0, ["model=a"], 1.0)]])
def test_a_sweep_with_no_two_finished_jobs_prints_no_mean(jobs):
    table = format_summary(jobs)
    assert "mean" not in table and "std" not in table
    assert table.count("failed") == sum(job.error is not None for job in jobs)
