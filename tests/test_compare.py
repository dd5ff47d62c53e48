"""``coupler compare RUN_OR_SWEEP...``: the settings that differ and the metrics side by side, validation first;
a sweep's grouped leaderboard; ``--json``; a directory that is not a run refused in one line naming it."""

from __future__ import annotations

import json
import shutil

import pytest

from coupler.testing import read_metrics, train_run


@pytest.fixture(scope="module")
def knn_run(tmp_path_factory):
    return train_run(tmp_path_factory.mktemp("compare"), "model=knn", "seed=1")[1]


def test_two_runs_show_the_settings_that_differ_and_every_metric_validation_first(coupler_cli, iris_run, knn_run):
    result = coupler_cli("compare", str(iris_run), str(knn_run))
    assert result.rc == 0, result.err
    lines = result.out.splitlines()
    assert lines[:2] == [f"[1] {iris_run}", f"[2] {knn_run}"]
    settings = lines[lines.index("settings that differ") + 2:lines.index("metrics (validation first)") - 1]
    rows = {line.split()[0]: line.split()[1:] for line in settings}
    assert rows["model.name"] == ["logistic_regression", "knn"] and rows["seed"] == ["0", "1"]
    assert rows["model.params.n_neighbors"] == ["-", "5"], "a key one run lacks is shown as -"
    assert "data.name" not in rows and "split.val" not in rows, "settings both runs share are not shown"
    metrics = lines[lines.index("metrics (validation first)") + 2:lines.index("seconds") - 1]
    names = [line.split()[0] for line in metrics]
    assert names[0] == "val_accuracy" and names.index("test_accuracy") > max(
        i for i, name in enumerate(names) if name.startswith("val_"))
    accuracy = metrics[0].split()[1:]
    assert accuracy == [f"{read_metrics(run)['val']['accuracy']:.4f}" for run in (iris_run, knn_run)]


def test_json_holds_the_same_for_machines(coupler_cli, iris_run, knn_run):
    result = coupler_cli("compare", "--json", str(iris_run), str(knn_run))
    assert result.rc == 0, result.err
    runs = json.loads(result.out)["runs"]
    assert runs["directories"] == [str(iris_run), str(knn_run)]
    assert runs["settings"]["model.name"] == ["logistic_regression", "knn"]
    assert runs["settings"]["model.params.n_neighbors"] == [None, 5] and "data.name" not in runs["settings"]
    for i, run in enumerate((iris_run, knn_run)):
        measured = read_metrics(run)
        assert {name: values[i] for name, values in runs["metrics"].items()} == {
            **{f"val_{k}": v for k, v in measured["val"].items()}, **{f"test_{k}": v for k, v in measured["test"].items()}}
        assert runs["timing"]["fit_seconds"][i] == read_metrics(run, timing=True)["timing"]["fit_seconds"]
    assert list(runs["metrics"])[0].startswith("val_")


def test_a_sweep_is_its_grouped_leaderboard(coupler_cli, tmp_path):
    sweep = coupler_cli("train", "-m", "model=logistic_regression,knn", "seed=0,1", "hydra.sweep.dir=sweep")
    assert sweep.rc == 0, sweep.err
    table = sweep.out[sweep.out.index("groups ranked by"):].strip()
    result = coupler_cli("compare", "sweep")
    assert result.rc == 0, result.err
    assert result.out.strip() == f"sweep sweep: 4 job(s) in 2 group(s); {table}", "the table the multirun printed"

    (tmp_path / "sweep" / "3" / "manifest.json").unlink()  # a job that did not finish: listed, not averaged
    result = coupler_cli("compare", "sweep")
    assert "failed: job 3 (model=knn seed=1): " in result.out and "did not finish" in result.out
    groups = json.loads(coupler_cli("compare", "--json", "sweep").out)["sweeps"][0]["groups"]
    assert [(g["rank"], g["overrides"], g["n"], [f["job"] for f in g["failed"]]) for g in groups] == [
        (1, ["model=logistic_regression"], 2, []), (2, ["model=knn"], 1, [3])]
    values = [read_metrics(tmp_path / "sweep" / str(n))["val"]["accuracy"] for n in (0, 1)]
    assert groups[0]["metrics"]["val_accuracy"]["mean"] == pytest.approx(sum(values) / 2)


def _no_config(run):
    (run / "config.yaml").unlink()


def _unfinished(run):
    (run / "manifest.json").unlink()


def _bad_json(run):
    (run / "metrics.json").write_text("{not json")


def _unsafe_yaml(run):
    (run / "config.yaml").write_text("model: !!python/object/apply:os.system ['echo owned > owned.txt']\n")


def _not_a_mapping(run):
    (run / "config.yaml").write_text("- a list\n")


def _alias_bomb(run):  # 30 levels of doubling aliases: a billion keys if expanded
    lines = ["a0: &a0 {x: 1, y: 2}"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 30)]
    (run / "config.yaml").write_text("\n".join(lines) + "\n")


def _deep_json(run):
    (run / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize("spoil, says", [
    pytest.param(_no_config, "is not a run directory (it lacks config.yaml) nor a sweep directory", id="no-config"),
    pytest.param(_unfinished, "is a run that did not finish (no manifest.json)", id="unfinished"),
    pytest.param(_bad_json, "metrics.json is not valid JSON", id="bad-json"),
    pytest.param(_unsafe_yaml, "config.yaml is not valid YAML", id="unsafe-yaml"),
    pytest.param(_not_a_mapping, "config.yaml is not a run's config", id="not-a-mapping"),
    pytest.param(_alias_bomb, "config.yaml is not valid YAML (an alias (*name)", id="alias-bomb"),
    pytest.param(_deep_json, "metrics.json is not valid JSON", id="deep-json"),
])
def test_what_is_not_a_finished_run_is_refused_in_one_line_naming_it(coupler_cli, tmp_path, iris_run, spoil, says):
    run = tmp_path / "copy"
    shutil.copytree(iris_run, run)
    spoil(run)
    result = coupler_cli("compare", str(iris_run), str(run))
    assert result.rc == 2 and result.out == ""
    assert len(result.error_lines) == 1 and str(run) in result.error_lines[0] and says in result.error_lines[0]
    assert "Traceback" not in result.err and not (tmp_path / "owned.txt").exists()


def test_a_path_that_is_no_directory_is_refused(coupler_cli, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    assert coupler_cli("compare", "file.txt").error_lines == [
        "coupler: error: file.txt is a file, not a run or sweep directory"]
    assert coupler_cli("compare", "missing").error_lines == [
        "coupler: error: missing does not exist: it is not a run or sweep directory"]


def test_a_sweep_directory_whose_job_folder_is_not_an_ascii_number_is_read_without_it(coupler_cli, tmp_path, iris_run):
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "multirun.yaml").write_text("{}\n")
    for name in ("0", "\u00b2"):  # "²".isdigit() holds, int("²") fails
        shutil.copytree(iris_run, tmp_path / "sweep" / name)
        (tmp_path / "sweep" / name / "overrides.yaml").write_text("- model=logistic_regression\n")
    result = coupler_cli("compare", "--json", "sweep")
    assert result.rc == 0, result.err
    assert [g["n"] for g in json.loads(result.out)["sweeps"][0]["groups"]] == [1]
