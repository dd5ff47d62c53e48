"""Explicit contracts: declared capabilities, the ``coupler.Callback`` base class, and what a run refuses
before it reads any data when its model cannot honour a callback, an exporter, a metric or ``train.class_weight``.

Every refusal below names ``data.path=absent.csv``: had the run read data first, the error would be the missing
file's."""

from __future__ import annotations

import pytest

from coupler import Callback, hookimpl
from coupler.callback import LIFECYCLE_HOOKS, observes
from coupler.components import CLASSIFICATION, Exporter, Model, declared_model, gives_proba
from coupler.plugin_manager import PluginManager
from coupler.testing import train_run

ABSENT = ("data=csv", "data.path=absent.csv", "data.target=label")


def refused(coupler_cli, *overrides: str) -> str:
    result = coupler_cli("train", *ABSENT, *overrides)
    assert result.rc == 2, result.err
    assert len(result.error_lines) == 1 and "absent.csv" not in result.err, result.err
    return result.error_lines[0]


def test_a_torch_callback_with_a_model_of_another_engine_is_refused_listing_the_declared_torch_models(coupler_cli):
    line = refused(coupler_cli, "model=xgboost", "callbacks=[checkpoint]")
    assert "'checkpoint' acts only inside the torch engine, and 'xgboost' trains with xgboost" in line
    assert "remove checkpoint from callbacks, or choose a torch model" in line
    listed = line.split("choose a torch model", 1)[1]  # the neural plugins declare their models (factory.returns)
    assert all(f"model={name}" in listed for name in ("mlp", "cnn", "lstm", "gru", "transformer", "hf_transformer"))


def test_a_neural_model_is_checked_before_any_data_is_read(coupler_cli):
    line = refused(coupler_cli, "model=mlp", "task=regression", "train.class_weight=balanced")
    assert "null for a regression task" in line


def test_a_trainer_setting_with_a_model_of_another_engine_is_refused(coupler_cli):
    line = refused(coupler_cli, "model=xgboost", "trainer.precision=16-mixed")
    assert "trainer.precision='16-mixed' is not allowed: its default ('32-true')" in line
    assert "read only by torch models, and model 'xgboost' trains with xgboost" in line


def test_early_stopping_with_a_model_that_trains_in_one_step_is_refused_naming_models_that_report_epochs(coupler_cli):
    line = refused(coupler_cli, "model=logistic_regression", "callbacks=[early_stopping]")
    assert "'early_stopping' needs a model that reports epochs" in line
    assert "remove early_stopping from callbacks, or choose a model that does (model=cnn" in line
    assert "model=mlp" in line and "model=xgboost" in line and "model=logistic_regression" not in line


def test_class_weight_with_a_model_without_row_weights_is_refused_naming_models_with_them(coupler_cli):
    line = refused(coupler_cli, "model=knn", "train.class_weight=balanced")
    assert "train.class_weight='balanced' is not allowed: null with model 'knn', which takes no row weights" in line
    assert "model=logistic_regression" in line and "model=linear_regression" not in line


@pytest.mark.parametrize("overrides, says", [
    (["model=linear_regression"], "null for model 'linear_regression', which learns only regression"),
    (["model=random_forest", "task=regression"], "null for a regression task"),
], ids=["regressor", "task=regression"])
def test_class_weight_on_regression_is_refused(coupler_cli, overrides, says):
    line = refused(coupler_cli, *overrides, "train.class_weight=balanced")
    assert says in line and "remove train.class_weight" in line


@pytest.mark.parametrize("value", ["heavy", "{yes:0}"])
def test_a_class_weight_that_is_neither_balanced_nor_positive_weights_is_refused(coupler_cli, value):
    line = refused(coupler_cli, f"train.class_weight={value}")
    assert "train.class_weight" in line and ("balanced" in line or "a weight > 0" in line)


def test_a_metric_needing_probabilities_with_a_model_giving_none_is_refused(coupler_cli):
    line = refused(coupler_cli, "model=ridge", "metrics=[roc_auc]")
    assert "metrics='roc_auc' is not allowed: metrics that need no class probabilities: model 'ridge' gives none" in line
    assert "model=logistic_regression" in line


def test_a_metric_for_another_task_is_refused_when_the_task_is_set(coupler_cli):
    line = refused(coupler_cli, "task=regression", "model=random_forest", "metrics=[accuracy]")
    assert "metrics='accuracy' is not allowed: metrics for a regression task" in line


class XGBoostOnly(Exporter):
    engines = ("xgboost",)

    def export(self, model, run, directory):
        return []


class UndeclaredModel(Model):
    """A model whose factory declares nothing: it is checked once built, before fit."""

    def fit(self, train, val, run):
        raise AssertionError("never fitted")


class Extras:
    @hookimpl
    def register_exporters(self, register):
        register("xgboost_only", XGBoostOnly)

    @hookimpl
    def register_models(self, register):
        register("undeclared", lambda task, seed: UndeclaredModel())


@pytest.fixture
def manager():
    pm = PluginManager()
    pm.load_builtins()
    pm.load_entry_points()
    pm.load_object("extras", Extras())
    return pm


def test_an_exporter_that_does_not_support_the_model_is_refused_naming_those_that_do(manager, tmp_path):
    from coupler.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        train_run(tmp_path, *ABSENT, "model=logistic_regression", "exporters=[xgboost_only]", manager=manager)
    assert "exporters='xgboost_only' is not allowed: exporters that support model 'logistic_regression': " \
           "model_card, onnx; exporter 'xgboost_only' does not (it exports xgboost models)" in str(caught.value)
    assert not (tmp_path / "run" / "model").exists()


def test_a_model_that_declares_nothing_is_checked_once_built_before_fit(manager, tmp_path):
    from coupler.errors import ConfigError

    with pytest.raises(ConfigError, match="'checkpoint' acts only inside the torch engine, and 'undeclared' names no engine"):
        train_run(tmp_path, "data=iris", "model=undeclared", "callbacks=[checkpoint]", manager=manager)


# --- declarations -------------------------------------------------------------------------------------------


def test_probabilities_per_task_and_the_former_supports_proba():
    class Classifier(Model):
        proba_tasks = CLASSIFICATION

    class Former(Model):  # a plugin written before proba_tasks
        @property
        def supports_proba(self):
            return True

    class SetsIt(Model):
        def __init__(self):
            self.supports_proba = False  # read-only before: AttributeError

    assert gives_proba(Classifier, "binary") and not gives_proba(Classifier, "regression")
    assert gives_proba(Classifier(), "multiclass") and not gives_proba(Classifier(), "regression")
    assert gives_proba(Former(), "binary") and gives_proba(Former, "binary")
    assert not gives_proba(SetsIt(), "binary")
    assert gives_proba(SetsIt, "binary")  # declares nothing: unknown until built, so the built model decides


def test_a_factory_declares_its_class_and_may_narrow_it():
    class Declared(Model):
        sample_weights = True

    def build(task, seed):
        raise AssertionError("not built to read a declaration")

    assert declared_model(build) is None
    build.returns = Declared
    assert declared_model(build) is Declared
    build.sample_weights = False
    assert declared_model(build).sample_weights is False and issubclass(declared_model(build), Declared)
    assert declared_model(Declared) is Declared


# --- the Callback base class --------------------------------------------------------------------------------


def test_callback_overrides_are_hook_implementations_and_the_rest_no_ops(tmp_path):
    class Counter(Callback):
        def __init__(self):
            self.epochs, self.ends = 0, 0

        def on_epoch_end(self, run, epoch, metrics):  # no @hookimpl needed
            self.epochs += 1

        @hookimpl
        def on_run_end(self, run, metrics):  # marked by hand: kept as it is
            self.ends += 1

    counter = Counter()
    pm = PluginManager()
    pm.load_builtins()
    pm.load_entry_points()
    pm.hooks.register(counter)
    implemented = {name for name in LIFECYCLE_HOOKS
                   if any(impl.plugin is counter for impl in getattr(pm.hooks.hook, name).get_hookimpls())}
    assert implemented == set(LIFECYCLE_HOOKS)
    assert observes(counter, "on_epoch_end") and not observes(counter, "on_fit_start")
    train_run(tmp_path, "data=iris", "model=xgboost", "model.num_boost_round=3", manager=pm)
    assert (counter.epochs, counter.ends) == (3, 1)


def test_a_run_that_fails_after_it_started_tells_its_observers_once_and_their_failure_hides_nothing(tmp_path):
    from coupler.errors import DataError

    class Watcher(Callback):
        def __init__(self):
            self.seen = []

        def on_run_end(self, run, metrics):
            self.seen.append("end")

        def on_run_failed(self, run, error):
            self.seen.append(type(error).__name__)
            raise RuntimeError("a tracker that fails while it records the failure")

    watcher = Watcher()
    pm = PluginManager()
    pm.load_builtins()
    pm.load_entry_points()
    pm.hooks.register(watcher)
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(DataError, match="data.target=label: no such column"):
        train_run(tmp_path, "data=csv", f"data.path={tmp_path / 'rows.csv'}", "data.target=label", manager=pm)
    assert watcher.seen == ["DataError"]


def test_an_observer_failing_in_on_run_start_fails_the_run_and_those_started_before_it_hear_of_it(tmp_path):
    from coupler.plugin_faults import PluginCodeError

    class Starter(Callback):
        def __init__(self):
            self.seen = []

        def on_run_start(self, run):
            self.seen.append("start")

        def on_run_failed(self, run, error):
            self.seen.append(type(error).__name__)

    class Refuser(Callback):
        def on_run_start(self, run):
            raise RuntimeError("cannot start")

    starter = Starter()
    pm = PluginManager()
    pm.load_builtins()
    pm.load_entry_points()
    pm.hooks.register(Refuser())
    pm.hooks.register(starter)  # pluggy calls the last registered first: it starts before Refuser raises
    with pytest.raises(PluginCodeError, match="cannot start"):
        train_run(tmp_path, "data=iris", manager=pm)
    assert starter.seen == ["start", "PluginCodeError"]


def test_the_callback_base_class_names_every_lifecycle_hook():
    from coupler import hookspecs

    specified = {name for name in vars(hookspecs) if name.startswith("on_")}
    assert set(LIFECYCLE_HOOKS) == specified
    assert all(callable(getattr(Callback, name)) for name in LIFECYCLE_HOOKS)
    Callback().on_epoch_end(None, 0, {})  # a no-op


def test_a_model_that_sets_supports_proba_in_init_is_not_refused_before_it_is_built():
    class Older(Model):  # written before proba_tasks: it says so once it knows its task
        def __init__(self, task="binary", seed=0):
            self.supports_proba = task != "regression"

    assert gives_proba(Older, "binary")  # unknown before it is built: the built model decides
    assert gives_proba(Older(task="binary"), "binary") and not gives_proba(Older(task="regression"), "regression")

    class Declared(Model):
        proba_tasks = ()

    assert not gives_proba(Declared, "binary")
