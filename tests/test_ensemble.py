"""``model=ensemble``: members of several engines trained on one preprocessing, combined by voting or stacking,
saved member by member and reloaded by registered name; bad members are one line before any data is read."""

from __future__ import annotations

import json

import pytest

from coupler.components import Model
from coupler.config import check_settings, compose
from coupler.errors import ConfigError, CouplerError
from coupler.hookspecs import hookimpl
from coupler.plugin_manager import PluginManager
from coupler.testing import read_metrics, train_run

THREE_ENGINES = "model.members=[{name: logistic_regression}, {name: xgboost, num_boost_round: 5}, {name: mlp}]"


def test_hard_voting_counts_each_members_weight(manager):
    from sklearn.datasets import load_iris

    from coupler.components import Split
    from coupler.context import RunContext

    X, y = load_iris(return_X_y=True)
    X = X[:, :2]  # two features: the members disagree (with equal weights, 19 of 75 votes differ from the 1-NN's)
    ensemble = manager.registry.get("model", "ensemble").build("model", {
        "members": [{"name": "logistic_regression"}, {"name": "knn", "params": {"n_neighbors": 1}},
                    {"name": "knn", "params": {"n_neighbors": 40}}], "method": "hard", "weights": [0.2, 1.0, 0.3]},
        task="multiclass", seed=0)
    assert ensemble.proba_tasks == () and ensemble.engine == "sklearn" and ensemble.reports_epochs is False
    ensemble.fit(Split(X[::2], y[::2]), None, RunContext(config={}, directory=None, hooks=None, classes=[0, 1, 2]))
    one_neighbour = ensemble.members[1].model.predict(X[1::2])
    assert (ensemble.predict(X[1::2]) == one_neighbour).all()  # 1.0 outweighs 0.2 + 0.3 together
    assert ensemble.predict_proba(X[1::2]) is None


class TextOnly(Model):
    input_formats = ("tokens", "text")


class TextPlugin:
    @hookimpl
    def register_models(self, register):
        register("text_only", TextOnly, description="reads text only")


@pytest.fixture(scope="module")
def manager() -> PluginManager:
    pm = PluginManager()
    pm.load_builtins()
    pm.load_entry_points()
    pm.load_object("text_plugin", TextPlugin())  # a model that reads text only, beside the installed table models
    return pm


def test_a_soft_voting_ensemble_of_three_engines_trains_reloads_with_its_metrics_and_predicts(coupler_cli, tmp_path):
    from sklearn.datasets import load_breast_cancer

    from coupler import FinishedRun

    trained = coupler_cli("train", "data=breast_cancer", "model=ensemble", THREE_ENGINES, "trainer.max_epochs=2",
                          "hydra.run.dir=run")
    assert trained.rc == 0, trained.err
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in (run_dir / "model" / "members").iterdir()) == \
        ["0-logistic_regression", "1-xgboost", "2-mlp"]
    state = json.loads((run_dir / "model" / "ensemble.json").read_text())
    assert [m["name"] for m in state["members"]] == ["logistic_regression", "xgboost", "mlp"]
    assert state["method"] == "soft" and state["members"][1]["node"]["num_boost_round"] == 5
    metrics = read_metrics(run_dir)
    assert metrics["test"]["roc_auc"] > 0.9  # probabilities averaged: roc_auc is measured

    evaluated = coupler_cli("evaluate", str(run_dir))
    assert evaluated.rc == 0, evaluated.err
    for name in ("accuracy", "roc_auc", "log_loss"):
        assert f"{metrics['test'][name]:.4f}" in evaluated.out

    run = FinishedRun(run_dir)
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(5)
    assert set(run.predict(rows)) <= set(run.classes)
    assert run.predict_proba(rows).sum(axis=1).tolist() == pytest.approx([1.0] * 5)


def test_a_finished_run_joins_a_stacking_ensemble_only_while_its_seal_holds(tmp_path, manager):
    from coupler import FinishedRun

    _, member_run = train_run(tmp_path, "data=diabetes", "model=knn", name="knn", manager=manager)
    metrics, run_dir = train_run(tmp_path, "data=diabetes", "model=ensemble", "model.method=stacking", "model.folds=2",
                                 f"model.members=[{{run: {member_run}}}, {{name: ridge}}]", name="ensemble",
                                 manager=manager)
    state = json.loads((run_dir / "model" / "ensemble.json").read_text())
    assert [(m["name"], m["run"]) for m in state["members"]] == [("knn", str(member_run)), ("ridge", None)]
    assert state["meta"]["kind"] == "ridge" and len(state["meta"]["coef"][0]) == 2  # one column per member
    (member_run / "metrics.json").write_text("{}")  # changed after it was sealed: the ensemble holds its own copy
    reloaded = FinishedRun(run_dir, manager).evaluate()
    assert reloaded["test"] == pytest.approx(metrics["test"], rel=1e-9)

    with pytest.raises(CouplerError, match="metrics.json"):
        train_run(tmp_path, "data=diabetes", "model=ensemble", f"model.members=[{{run: {member_run}}}]",
                  name="refused", manager=manager)
    assert not (tmp_path / "refused" / "model").exists()


@pytest.fixture(scope="module")
def unscaled_knn_run(manager, tmp_path_factory):
    """A finished knn run on diabetes (seed 0, the default split) trained without scaling."""
    _, run_dir = train_run(tmp_path_factory.mktemp("member"), "data=diabetes", "model=knn", "preprocess.scale=none",
                           name="knn", manager=manager)
    return run_dir


@pytest.mark.parametrize("overrides, differ", [
    (["preprocess.scale=minmax"], "preprocess.scale ('minmax' here, 'none' in that run)"),
    (["preprocess.scale=none", "seed=7", "split.test=0.5"],  # its training rows would include these test rows
     "split.test (0.5 here, 0.1 in that run); seed (7 here, 0 in that run)"),
], ids=["other_preprocessing", "other_seed_and_split"])
def test_a_run_member_trained_on_other_rows_or_preprocessing_is_refused_in_one_line(overrides, differ, tmp_path,
                                                                                     manager, unscaled_knn_run):
    with pytest.raises(ConfigError) as error:
        train_run(tmp_path, "data=diabetes", "model=ensemble", f"model.members=[{{run: {unscaled_knn_run}}}]",
                  *overrides, name="refused", manager=manager)
    message = str(error.value)
    assert message.startswith(f"model.members[0].run='{unscaled_knn_run}' is not allowed") and "\n" not in message
    assert f"it differs in {differ}:" in message
    assert "retrain it with the same data, seed, split.* and preprocess.*" in message and "{name: knn}" in message
    assert not (tmp_path / "refused" / "model").exists()


def test_a_run_member_trained_on_a_file_since_rewritten_is_refused(tmp_path, manager):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    data = ["data=csv", f"data.path={path}", "data.target=target"]
    _, member_run = train_run(tmp_path, *data, "model=knn", name="knn", manager=manager)
    frame.iloc[::-1].to_csv(path, index=False)  # the same node, other rows in it: the split draws other rows
    with pytest.raises(ConfigError, match=r"it differs in the data's contents \(data fingerprint\):"):
        train_run(tmp_path, *data, "model=ensemble", f"model.members=[{{run: {member_run}}}]", name="refused",
                  manager=manager)


@pytest.fixture(scope="module")
def config_without_data(manager, tmp_path_factory) -> dict:
    """A composed ensemble config whose data file does not exist: a refusal naming a member means no data was read."""
    absent = tmp_path_factory.mktemp("no_data") / "absent.csv"
    return compose(["data=csv", f"data.path={absent}", "data.target=y", "model=ensemble",
                    "model.members=[{name: knn}]"], manager)


LR = {"name": "logistic_regression"}


@pytest.mark.parametrize("members, extra, message", [
    ([LR, {"name": "xgboost", "num_boost_roundz": 5}], {},
     "model.members[1].num_boost_roundz=5 is not allowed: model 'xgboost' has no parameter 'num_boost_roundz'. "
     "Did you mean 'num_boost_round'?"),
    ([LR, {"name": "xgbost"}], {}, "model.members[1].name='xgbost' is not allowed: a model"),
    ([LR, {"name": "text_only"}], {},
     "model.members[1]='text_only' is not allowed: a member that reads matrix like the members before it: one "
     "preprocessing feeds every member, and 'text_only' reads tokens or text"),
    ([LR, {"name": "knn"}], {"weights": [1.0]}, "model.weights=[1.0] is not allowed: 2 non-negative numbers, one per "
     "member"),
    ([LR, {"name": "knn"}], {"weights": [1, 2], "method": "stacking"}, "model.weights=[1, 2] is not allowed: null "
     "with model.method=stacking"),
    ([{"run": "no/such/run"}], {}, "no/such/run"),
    ([], {}, "model.members=[] is not allowed: at least one member"),
], ids=["member_key", "member_name", "text_beside_table", "weights", "stacking_weights", "run_directory", "empty"])
def test_a_bad_member_is_one_line_before_any_data_is_read(members, extra, message, manager, config_without_data):
    config = {**config_without_data, "model": {**config_without_data["model"], "members": members, **extra}}
    with pytest.raises(CouplerError) as error:
        check_settings(config, manager.registry)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert isinstance(error.value, ConfigError) or "run" in members[0]


def test_a_finished_run_is_refused_as_a_member_under_cross_validation(unscaled_knn_run, manager, tmp_path):
    """A finished run learned rows of every fold: each fold's score would count rows it trained on."""
    with pytest.raises(CouplerError, match=r"cv.folds=2 is not allowed: 0 with model.members\[0\].run: a finished run "
                                           r"trained on rows of every fold"):
        train_run(tmp_path, "data=diabetes", "model=ensemble", "preprocess.scale=none", "cv.folds=2",
                  f"model.members=[{{run: {unscaled_knn_run}}}, {{name: ridge}}]", name="cv", manager=manager)
    assert not (tmp_path / "cv" / "model").exists()


def test_more_stacking_folds_than_the_smallest_class_is_one_line(coupler_cli):
    result = coupler_cli("train", "data=iris", "model=ensemble", "model.method=stacking", "model.folds=200",
                         "model.members=[{name: knn}, {name: logistic_regression}]", "hydra.run.dir=run")
    assert result.error_lines == ["coupler: error: model.folds=200 is not allowed: at most 35: stacking splits the 105 "
                                  "training rows into folds of every class, and the smallest class has 35"], result.err
