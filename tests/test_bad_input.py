"""The bad-input corpus's foundation: configs and data files that exit 2 with one clear message, no
traceback, no half-written run directory, and the input files as they were."""

from __future__ import annotations

import pytest

from tests.corpus import refused, snapshot

#: the files each test wrote as its input, with their digests, checked unchanged by check_refused
WRITTEN: dict = {}


def check_refused(result, tmp_path, *fragments):
    refused(result)
    for fragment in fragments:
        assert fragment in result.err, f"{fragment!r} not in {result.err!r}"
    assert not (tmp_path / "run").exists(), "a failed run left its directory behind"
    written = {path: digest for path, digest in WRITTEN.items() if path.is_relative_to(tmp_path)}
    assert snapshot(*written) == written, "an input file was changed or removed"


@pytest.fixture
def data_file(tmp_path):
    def write(text: str, name: str = "data.csv"):
        path = tmp_path / name
        path.write_text(text)
        WRITTEN.update(snapshot(path))
        return path

    return write


def test_unknown_model_lists_choices_with_plugins_and_suggests_the_closest(coupler_cli, tmp_path):
    result = coupler_cli("train", "model=random_forrest", "hydra.run.dir=run")
    check_refused(result, tmp_path, "unknown model 'random_forrest'", "Did you mean 'random_forest'?",
                  "logistic_regression", "(plugin: sklearn)")


def test_unknown_component_in_a_sweep_or_a_list_group(coupler_cli, tmp_path):
    check_refused(coupler_cli("train", "-m", "model=knn,svn", "hydra.run.dir=run"), tmp_path, "unknown model 'svn'")
    check_refused(coupler_cli("train", "metrics=[accuracy,acuracy]", "hydra.run.dir=run"), tmp_path,
                  "unknown metric 'acuracy'", "Did you mean 'accuracy'?")


def test_a_key_the_config_does_not_list_names_the_keys_it_has_and_the_plus_that_adds_it(coupler_cli, tmp_path):
    result = coupler_cli("train", "model.params.max_itr=2", "hydra.run.dir=run")
    check_refused(result, tmp_path, "model.params.max_itr=2", "model=logistic_regression lists no model.params.max_itr",
                  "model.params holds C, max_iter", "Did you mean 'max_iter'?", "+model.params.max_itr=2")


def test_unknown_parameter_added_with_plus_names_it_and_lists_the_valid_ones(coupler_cli, tmp_path):
    result = coupler_cli("train", "+model.params.C_value=2", "hydra.run.dir=run")
    check_refused(result, tmp_path, "model.params.C_value", "LogisticRegression has no parameter 'C_value'",
                  "Valid parameters:", "max_iter")


def test_ill_typed_parameter_names_the_key_and_what_is_allowed(coupler_cli, tmp_path):
    result = coupler_cli("train", "model.params.C=abc", "hydra.run.dir=run")
    check_refused(result, tmp_path, "model.params.C='abc' is not allowed: a number")


def test_ill_typed_core_setting(coupler_cli, tmp_path):
    check_refused(coupler_cli("train", "split.val=1.5", "hydra.run.dir=run"), tmp_path, "split.val=1.5", "a number >= 0 and < 1")


def test_missing_data_file(coupler_cli, tmp_path):
    result = coupler_cli("train", "data=csv", "data.path=nowhere.csv", "data.target=y", "hydra.run.dir=run")
    check_refused(result, tmp_path, "data.path=nowhere.csv: no such file")


def test_missing_mandatory_value_says_what_to_set(coupler_cli, tmp_path):
    result = coupler_cli("train", "data=csv", "data.path=x.csv", "hydra.run.dir=run")
    check_refused(result, tmp_path, "data.target", "a value is required")


def test_missing_target_column(coupler_cli, tmp_path, data_file):
    path = data_file("a,b,label\n1,2,x\n3,4,y\n")
    result = coupler_cli("train", "data=csv", f"data.path={path}", "data.target=lable", "hydra.run.dir=run")
    check_refused(result, tmp_path, "data.target=lable: no such column", "Did you mean 'label'?")


def test_empty_data(coupler_cli, tmp_path, data_file):
    for text in ("", "a,b,label\n"):
        path = data_file(text)
        result = coupler_cli("train", "data=csv", f"data.path={path}", "data.target=label", "hydra.run.dir=run")
        check_refused(result, tmp_path, "data.path=" if not text else "has no rows")


def test_a_class_too_small_to_stratify(coupler_cli, tmp_path, data_file):
    rows = "".join(f"{i},{i % 7},{'a' if i % 2 else 'b'}\n" for i in range(40)) + "99,1,rare\n"
    path = data_file("x1,x2,label\n" + rows)
    result = coupler_cli("train", "data=csv", f"data.path={path}", "data.target=label", "hydra.run.dir=run")
    check_refused(result, tmp_path, "cannot stratify", "'rare' (1 row)", "split.stratify=false")


def test_a_model_that_cannot_do_the_task(coupler_cli, tmp_path):
    result = coupler_cli("train", "data=diabetes", "model=logistic_regression", "hydra.run.dir=run")
    check_refused(result, tmp_path, "cannot do a regression task", "linear_regression")


def test_a_metric_that_does_not_fit_the_task(coupler_cli, tmp_path):
    result = coupler_cli("train", "metrics=[rmse]", "hydra.run.dir=run")
    check_refused(result, tmp_path, "metrics='rmse'", "accuracy")


def test_predict_input_missing_a_training_column(iris_run, coupler_cli, tmp_path, data_file):
    path = data_file("sepal length (cm),sepal width (cm)\n5.1,3.5\n", "input.csv")
    result = coupler_cli("predict", str(iris_run), str(path), str(tmp_path / "out.csv"))
    assert result.rc == 2 and "Traceback" not in result.err
    assert "lacks 2 of the 4 training columns: ['petal length (cm)', 'petal width (cm)']" in result.err
    assert not (tmp_path / "out.csv").exists()


def test_evaluate_or_predict_on_something_that_is_not_a_run(coupler_cli, tmp_path):
    (tmp_path / "notarun").mkdir()
    assert "is not a finished run" in coupler_cli("evaluate", str(tmp_path / "notarun")).err
    assert "does not exist" in coupler_cli("predict", "nowhere", "a.csv", "b.csv").err


def test_training_into_a_finished_run_is_refused_and_the_run_is_kept(iris_run, coupler_cli):
    before = (iris_run / "manifest.json").read_text()
    result = coupler_cli("train", f"hydra.run.dir={iris_run}")
    assert result.rc == 2 and "already holds a finished run" in result.err
    assert (iris_run / "manifest.json").read_text() == before


def test_an_unknown_top_level_key_or_a_deleted_group(coupler_cli, tmp_path):
    check_refused(coupler_cli("train", "sed=3", "hydra.run.dir=run"), tmp_path, "'sed' is not a Coupler setting")
    check_refused(coupler_cli("train", "~data", "hydra.run.dir=run"), tmp_path, "data=null", "data=NAME")


def test_a_plugin_disabled_by_environment_is_named_when_its_component_is_asked_for(tmp_path):
    from tests.conftest import coupler_process

    result = coupler_process("train", "model=svm", cwd=tmp_path, env={"COUPLER_DISABLE_PLUGINS": "sklearn"})
    assert result.rc == 2 and "unknown model 'svm'" in result.err
    assert "disabled by COUPLER_DISABLE_PLUGINS" in result.err and "sklearn" in result.err


def test_a_failed_run_never_deletes_a_directory_it_did_not_create(coupler_cli, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    result = coupler_cli("train", "data=csv", "data.path=nowhere.csv", "data.target=y", "hydra.run.dir=mine")
    assert result.rc == 2 and (tmp_path / "mine" / "thesis.txt").read_text() == "precious"
    result = coupler_cli("train", "hydra.run.dir=mine")
    assert result.rc == 2 and "is not empty (thesis.txt)" in result.err
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["thesis.txt"], "nothing added, nothing taken"


@pytest.mark.parametrize("override, fragment", [
    ("split=0.5", "split=0.5 is not allowed: a group of settings (val, test, stratify, measure_test)"),
    ("plugins=foo", "plugins='foo' is not allowed"),
    ("preprocess=standard", "preprocess.impute=..."),
    ("preprocess.scaling=none", "preprocess has the keys impute, scale, encode"),
    ("+split.foo=1", "split.foo='1' is not allowed: split has the keys val, test, stratify"),
    ("seed=-1", "seed=-1 is not allowed: a whole number >= 0 and < 4294967296"),
    ("seed=99999999999999", "seed=99999999999999"),
    ("data=null", "data=null is not allowed"),
    ("model=[knn,svm]", "-m model=knn,svm"),
    ("model.params=abc", "model.params='abc' is not allowed: a group of settings (C, max_iter)"),
    ("+model.params.C=0.5", "lists model.params.C already: set it without + (model.params.C=0.5)"),
    ("split.stratify=maybe", "split.stratify='maybe' is not allowed: one of auto, true, false"),
])
def test_ill_shaped_settings_are_one_line_errors(coupler_cli, tmp_path, override, fragment):
    check_refused(coupler_cli("train", override, "hydra.run.dir=run"), tmp_path, fragment)


def test_data_file_mistakes_get_the_fix_in_the_message(coupler_cli, tmp_path, data_file):
    path = data_file("a;b;label\n1;2;x\n3;4;y\n")
    result = coupler_cli("train", "data=csv", f"data.path={path}", "data.target=label", "hydra.run.dir=run")
    check_refused(result, tmp_path, "seems to use ';' between columns", "data.sep")
    path = data_file("a,label\n1,caf\xe9\n", "latin.csv")
    path.write_bytes("a,label\n1,caf\xe9\n2,th\xe9\n".encode("latin-1"))
    WRITTEN.update(snapshot(path))
    result = coupler_cli("train", "data=csv", f"data.path={path}", "data.target=label", "hydra.run.dir=run")
    check_refused(result, tmp_path, "not utf-8 text", "data.encoding=latin-1")
    result = coupler_cli("train", "data=csv", f"data.path={path}", "data.target=label", "data.sep=;;;", "hydra.run.dir=run")
    assert result.rc == 2 and "Traceback" not in result.err


def test_estimators_with_required_arguments_are_refused(coupler_cli, tmp_path):
    result = coupler_cli("train", "model=sklearn", "model.estimator=sklearn.pipeline.Pipeline", "hydra.run.dir=run")
    check_refused(result, tmp_path, "cannot be built from a config")
