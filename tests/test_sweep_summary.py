"""The summary of a multirun, from its jobs' outcomes (synthetic: nothing trains here): jobs grouped by their
overrides other than the seed, groups ranked by validation (never by test), the CSVs a user loads and the table
printed last."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from coupler.sweep_summary import JobOutcome, format_summary, metric_direction, summarize, write_summary


def outcome(number: int, overrides: list[str], test: float | None = None, error: str | None = None,
            val: float | None = None) -> JobOutcome:
    val = 1.0 + number if val is None else val
    results = None if error else {"val": {"rmse": val, "r2": 0.5}, "test": {"rmse": test, "r2": 0.4}}
    return JobOutcome(number, Path(f"/s/{number}"), Path("/s"), overrides, results, error)


def greater_is_better(name: str) -> bool:  # rmse: smaller is better
    return name == "r2"


def test_each_override_key_is_a_column_and_what_a_job_did_not_set_is_empty(tmp_path):
    jobs = [outcome(0, ["model=ridge", "++model.params.alpha=0.1"], 2.0),
            outcome(1, ["model=knn", "~callbacks"], 4.0),
            outcome(2, ["model=svm", "data.path=a=b.csv"], error="model=svm cannot do it")]
    summary = pd.read_csv(write_summary(summarize(jobs, greater_is_better), tmp_path)[0])
    blank = summary.isna()
    assert list(summary.columns[:5]) == ["job", "directory", "status", "error", "group"]
    assert summary["model.params.alpha"][0] == 0.1 and blank["model.params.alpha"].tolist() == [False, True, True]
    assert summary["callbacks"][1] == "(deleted)" and blank["callbacks"].tolist() == [True, False, True]
    assert summary["data.path"][2] == "a=b.csv"
    assert summary["status"].tolist() == ["ok", "ok", "failed"] and summary["error"][2] == "model=svm cannot do it"
    assert blank["error"][:2].all()
    assert summary["test_rmse"][:2].tolist() == [2.0, 4.0] and blank["test_rmse"][2] and "val_r2" in summary.columns


def seeded_sweep() -> list[JobOutcome]:
    """Two models by two seeds, and a third model whose jobs fail; ridge is better on val (smaller rmse), knn on
    test: the ranking must follow val."""
    return [outcome(0, ["model=knn", "seed=0"], test=1.0, val=3.0), outcome(1, ["seed=1", "model=knn"], test=1.2, val=3.2),
            outcome(2, ["model=ridge", "seed=0"], test=5.0, val=2.0), outcome(3, ["model=ridge", "seed=1"], test=5.4, val=2.4),
            outcome(4, ["model=svm", "seed=0"], error="model=svm cannot do it")]


def test_jobs_differing_only_in_seed_are_one_group_ranked_by_validation_never_by_test(tmp_path):
    summary = summarize(seeded_sweep(), greater_is_better)
    assert [(g.label, g.rank, len(g.finished)) for g in summary.groups] == \
        [("model=ridge", 1, 2), ("model=knn", 2, 2), ("model=svm", None, 0)]  # the seed's place does not matter
    groups = pd.read_csv(write_summary(summary, tmp_path)[1])
    assert groups["group"].tolist() == ["model=ridge", "model=knn", "model=svm"]
    assert groups["rank"].tolist()[:2] == [1, 2] and groups["rank"].isna().tolist() == [False, False, True]
    assert groups["n"].tolist() == [2, 2, 0] and groups["failed"].tolist() == [0, 0, 1]
    assert groups["seeds"].tolist()[:2] == ["0 1", "0 1"]
    assert groups["val_rmse_mean"].tolist()[:2] == pytest.approx([2.2, 3.1])
    assert groups["val_rmse_std"].tolist()[:2] == pytest.approx([0.2828427, 0.1414214])  # sample std (n - 1)
    assert groups["test_rmse_mean"].tolist()[:2] == pytest.approx([5.2, 1.1])  # shown, not ranked on
    assert groups[["val_rmse_mean", "test_rmse_mean"]].iloc[2].isna().all()  # a failed job is not averaged
    assert list(groups.columns).index("val_r2_mean") < list(groups.columns).index("test_rmse_mean")  # val first
    jobs = pd.read_csv(tmp_path / "summary.csv")
    assert jobs["group"].tolist() == ["model=knn", "model=knn", "model=ridge", "model=ridge", "model=svm"]


def test_the_table_ranks_groups_by_validation_shows_test_beside_it_and_lists_failed_jobs():
    lines = format_summary(summarize(seeded_sweep(), greater_is_better)).splitlines()
    assert lines[0] == "groups ranked by val_rmse (smaller is better); test is shown, never ranked on"
    assert lines[1].split() == ["rank", "overrides", "n", "val_rmse", "test_rmse"]
    assert lines[2].split() == ["1", "model=ridge", "2", "2.2000", "±", "0.2828", "5.2000", "±", "0.2828"]
    assert lines[3].split()[:4] == ["2", "model=knn", "2", "3.1000"]
    assert lines[4].split() == ["-", "model=svm", "0", "(1", "failed)", "failed", "failed"]
    assert lines[5] == "failed: job 4 (model=svm seed=0): model=svm cannot do it"


def test_a_greater_is_better_metric_ranks_the_greatest_first():
    jobs = [outcome(0, ["model=a"], val=0.5), outcome(1, ["model=b"], val=0.9), outcome(2, ["model=c"], val=0.7)]
    summary = summarize(jobs, lambda name: True)
    assert [(g.label, g.rank) for g in summary.groups] == [("model=b", 1), ("model=c", 2), ("model=a", 3)]
    assert "(greater is better)" in format_summary(summary).splitlines()[0]


def test_a_seed_sweep_is_one_group_with_its_mean_and_spread():
    jobs = [outcome(1, ["data=diabetes", "seed=1"], test=4.0), outcome(0, ["data=diabetes", "seed=0"], test=2.0),
            outcome(2, ["data=diabetes", "seed=2"], test=None)]
    lines = format_summary(summarize(jobs, greater_is_better)).splitlines()
    assert lines[2].split() == ["1", "data=diabetes", "3", "2.0000", "±", "1.0000", "3.0000", "±", "1.4142"]  # a
    # missing test value is not a number in the mean


def test_the_cross_validated_mean_is_the_validation_value_when_the_runs_have_one():
    def cv_outcome(number: int, model: str, cv: float, val: float) -> JobOutcome:
        results = {"val": {"rmse": val}, "test": {"rmse": 1.0}, "cv": {"rmse": {"mean": cv, "std": 0.1}}}
        return JobOutcome(number, Path(f"/s/{number}"), Path("/s"), [f"model={model}"], results)

    summary = summarize([cv_outcome(0, "a", cv=2.0, val=1.0), cv_outcome(1, "b", cv=1.0, val=2.0)], greater_is_better)
    assert summary.ranked_by == "cv_rmse_mean" and [g.label for g in summary.groups] == ["model=b", "model=a"]
    assert format_summary(summary).splitlines()[1].split()[3] == "cv_rmse"


@pytest.mark.parametrize(("jobs", "direction", "why"), [
    ([outcome(0, ["model=a"], 1.0), outcome(1, ["model=b"], 2.0)], lambda name: None, "is unknown"),
    ([JobOutcome(0, Path("/s/0"), Path("/s"), ["model=a"], {"val": {}, "test": {"rmse": 1.0}})], greater_is_better,
     "no job measured rmse on a validation split"),
    ([outcome(0, ["model=a"], error="e"), outcome(1, ["model=b"], error="e")], greater_is_better, "no job finished"),
])
def test_without_a_validation_value_or_a_direction_nothing_is_ranked_and_the_table_says_why(jobs, direction, why):
    summary = summarize(jobs, direction)
    assert summary.ranked_by is None and all(group.rank is None for group in summary.groups)
    table = format_summary(summary)
    assert table.splitlines()[0].startswith("groups not ranked: ") and why in table
    assert all(line.split()[0] == "-" for line in table.splitlines()[2:] if not line.startswith("failed:"))


def test_a_metrics_direction_is_the_one_it_was_registered_with():
    from coupler.plugin_manager import get_plugin_manager

    direction = metric_direction(get_plugin_manager().registry)
    assert (direction("accuracy"), direction("log_loss"), direction("rmse")) == (True, False, False)
    assert direction("no_such_metric") is None
