"""``coupler new-plugin NAME --kind KIND``: write a ready-to-install plugin package to start from.

The package ``coupler-NAME/`` holds a pyproject (distribution ``coupler-NAME``, entry point ``NAME`` in the
``coupler`` group, its config files as package data), a ``plugin.py`` with the hook implementations, a real
working component of the kind, its Hydra config node, tests (Coupler's conformance kit and the component's own
behaviour) and a README. The templates are the strings below; ``$name``, ``$cls``, ... are filled in by
``string.Template``. This module imports only the standard library (and Coupler's error class).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from string import Template

from coupler.conformance import NAME_PATTERN
from coupler.errors import CouplerError
from coupler.hookspecs import API_RANGE


@dataclass(frozen=True)
class Kind:
    """What a kind of component needs: its config group, registration hook, module, factory and templates."""

    group: str  # the config group that selects it: conf/GROUP/NAME.yaml
    hook: str  # the registration hook of plugin.py
    factory: str  # what plugin.py registers, defined in src/coupler_NAME/KIND.py
    summary: str  # one line: the description given to register() and the README's first line
    dependencies: tuple[str, ...]
    component: str  # the module's source
    config: str  # conf/GROUP/NAME.yaml
    tests: str  # tests/test_NAME.py
    usage: str  # the README's "Use" section


# --- model ------------------------------------------------------------------------------------------------

MODEL = '''\
"""``$cls``: a linear model in NumPy, for binary, multiclass and regression tasks.

Regression: ridge regression, solved in closed form. Classification: softmax (multinomial logistic)
regression with the same L2 penalty, fitted by full-batch gradient descent. The state is saved as JSON.

NumPy is imported in the methods that use it: Coupler imports this module whenever it loads plugins (even
for ``coupler plugins``), and importing NumPy there would slow every command down.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from coupler.components import Model, Split
from coupler.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

#: gradient-descent steps of the softmax regression
STEPS = 500
#: the file ``save`` writes into the run's model/ directory
FILE = "model.json"


class $cls(Model):
    """Built by Coupler as ``$cls(task=..., seed=..., alpha=...)`` for ``model=$name``.

    ``alpha`` is the L2 penalty on the weights (not on the intercepts): larger is smoother. The model
    standardises its input itself, so it also works with ``preprocess.scale=none``.
    """

    input_format = "matrix"  # fit and predict receive a float NumPy array

    def __init__(self, task: str, seed: int, alpha: float = 1.0):
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
            raise ConfigError("model.alpha", alpha, "a number >= 0 (the L2 penalty; 0 for none)")
        self.task, self.alpha = task, float(alpha)
        self.mean = self.scale = self.weights = None

    def fit(self, train: Split, val: Split | None, run) -> None:
        import numpy as np

        X = np.asarray(train.X, dtype=float)
        self.mean, self.scale = X.mean(axis=0), X.std(axis=0)
        self.scale[self.scale == 0] = 1.0  # a constant column is 0 once centred
        Z = self._design(X)
        penalty = self.alpha * np.eye(Z.shape[1])
        penalty[-1, -1] = 0.0  # the intercept (the last column of Z) is not penalised
        if self.task == "regression":
            self.weights = np.linalg.lstsq(Z.T @ Z + penalty, Z.T @ train.y, rcond=None)[0][:, None]
            return
        Y = np.eye(len(run.classes))[train.y]  # one-hot targets: a column for each class of the task
        # The loss's gradient changes at most by (largest eigenvalue of Z'Z / 2 + alpha) per unit of weight:
        # a step of 1 / that always lowers the loss.
        step = 1.0 / (np.linalg.eigvalsh(Z.T @ Z).max() / 2 + self.alpha)
        self.weights = np.zeros((Z.shape[1], Y.shape[1]))
        for _ in range(STEPS):
            self.weights -= step * (Z.T @ (_softmax(Z @ self.weights) - Y) + penalty @ self.weights)

    def _design(self, X) -> np.ndarray:
        """The standardised features and a column of ones (the intercept)."""
        import numpy as np

        Z = (np.asarray(X, dtype=float) - self.mean) / self.scale
        return np.hstack([Z, np.ones((len(Z), 1))])

    def predict(self, X) -> np.ndarray:
        scores = self._design(X) @ self.weights
        return scores[:, 0] if self.task == "regression" else scores.argmax(axis=1)

    @property
    def supports_proba(self) -> bool:
        return self.task != "regression"

    def predict_proba(self, X) -> np.ndarray | None:
        return _softmax(self._design(X) @ self.weights) if self.supports_proba else None

    def save(self, directory: Path) -> None:
        state = {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "weights": self.weights.tolist()}
        (Path(directory) / FILE).write_text(json.dumps(state))

    def load(self, directory: Path) -> None:
        import numpy as np

        state = json.loads((Path(directory) / FILE).read_text())
        self.mean, self.scale, self.weights = (np.array(state[key]) for key in ("mean", "scale", "weights"))


def _softmax(scores: np.ndarray) -> np.ndarray:
    import numpy as np

    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)
'''

MODEL_CONFIG = """\
# A linear model in NumPy: ridge regression (regression), softmax regression (classification).
# coupler train data=iris model=$name model.alpha=0.1
name: $name
alpha: 1.0          # L2 penalty on the weights, not the intercepts: a number >= 0 (0: none)
"""

MODEL_TESTS = '''\
"""Tests of the $name plugin: Coupler's conformance kit, and what the model learns."""

import pytest
from coupler.errors import ConfigError
from coupler.testing import check_plugin, train_run

from $package.model import $cls


def test_the_plugin_passes_couplers_conformance_kit():
    check_plugin("$name")


def test_it_classifies_iris(tmp_path):
    metrics, run_dir = train_run(tmp_path, "data=iris", "model=$name")
    assert metrics["test"]["accuracy"] > 0.8
    assert (run_dir / "model" / "model.json").is_file()


def test_it_fits_a_regression(tmp_path):
    metrics, _ = train_run(tmp_path, "data=diabetes", "model=$name", "model.alpha=10")
    assert metrics["test"]["r2"] > 0.3


def test_a_negative_alpha_is_refused():
    with pytest.raises(ConfigError, match="model.alpha"):
        $cls(task="binary", seed=0, alpha=-1)
'''

# --- data -------------------------------------------------------------------------------------------------

DATA = '''\
"""``load_$name``: a synthetic classification table, generated from a seed.

NumPy and pandas are imported inside the loader, so that loading the plugin stays instant.
"""

from __future__ import annotations

from coupler.dataset import Dataset
from coupler.errors import ConfigError

GROUPS = ("a", "b", "c")


def load_$name(rows: int = 500, features: int = 4, noise: float = 0.5, seed: int = 0) -> Dataset:
    """``rows`` rows of ``features`` standard-normal columns ``x0``, ``x1``, ... and a categorical column
    ``group``; the target is ``positive`` where a hidden linear score of them, plus Gaussian ``noise``, is
    above zero, else ``negative``. The same arguments always give the same table."""
    import numpy as np
    import pandas as pd

    for key, value, least in (("rows", rows, 20), ("features", features, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"data.{key}", value, f"a whole number of at least {least}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
        raise ConfigError("data.noise", noise, "a number >= 0 (the noise's standard deviation)")
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.standard_normal((rows, features)), columns=[f"x{i}" for i in range(features)])
    X["group"] = rng.choice(GROUPS, size=rows)
    score = X.iloc[:, :features].to_numpy() @ rng.standard_normal(features)
    score += X["group"].map(dict(zip(GROUPS, rng.standard_normal(len(GROUPS))))).to_numpy()
    score += noise * rng.standard_normal(rows)
    y = pd.Series(np.where(score > 0, "positive", "negative"), name="target")
    return Dataset(X, y, name="$name", categorical=["group"])
'''

DATA_CONFIG = """\
# A synthetic classification table generated from a seed: coupler train data=$name data.rows=2000
name: $name
rows: 500           # at least 20
features: 4         # numeric columns x0, x1, ...; a categorical column "group" comes on top
noise: 0.5          # standard deviation of the noise added to the hidden linear score
seed: 0             # the table's own seed: the same values give the same table
"""

DATA_TESTS = '''\
"""Tests of the $name plugin: Coupler's conformance kit, and the table it generates."""

import pytest
from coupler.errors import ConfigError
from coupler.testing import check_plugin, train_run

from $package.data import load_$name


def test_the_plugin_passes_couplers_conformance_kit():
    check_plugin("$name")


def test_the_table_has_the_rows_asked_for_and_depends_only_on_the_seed():
    first, again = load_$name(rows=100, seed=3), load_$name(rows=100, seed=3)
    other = load_$name(rows=100, seed=4)
    assert len(first.X) == len(first.y) == 100
    assert first.X.equals(again.X) and first.y.equals(again.y)
    assert not first.X.equals(other.X)
    assert set(first.y) == {"positive", "negative"} and first.categorical == ["group"]


def test_a_model_learns_it(tmp_path):
    pytest.importorskip("coupler_sklearn", reason="training needs a model plugin (coupler-sklearn)")
    metrics, _ = train_run(tmp_path, "data=$name", "data.rows=1000", "model=logistic_regression")
    assert metrics["test"]["accuracy"] > 0.8


def test_too_few_rows_are_refused():
    with pytest.raises(ConfigError, match="data.rows"):
        load_$name(rows=5)
'''

# --- callback ---------------------------------------------------------------------------------------------

CALLBACK = '''\
"""``${cls}Callback``: a JSON-lines log of a run's events, written into the run directory as they happen."""

from __future__ import annotations

import json

from coupler import hookimpl
from coupler.errors import ConfigError


class ${cls}Callback:
    """Appends one JSON object per line to ``RUN_DIR/FILENAME``: each epoch's metrics (from models that
    train in epochs) and each evaluated split's metrics. Every line is written before the run is sealed, so
    the file is part of the run's checksummed files; ``on_run_end`` only logs where it is."""

    def __init__(self, filename: str = "$name.jsonl"):
        if not isinstance(filename, str) or not filename.endswith(".jsonl") or "/" in filename:
            raise ConfigError("callbacks.$name.filename", filename,
                              "a file name ending in .jsonl, without a directory")
        self.filename, self.events = filename, 0

    def _write(self, run, record: dict) -> None:
        run.directory.mkdir(parents=True, exist_ok=True)  # an in-process run makes it only when it saves
        with open(run.directory / self.filename, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\\n")
        self.events += 1

    @hookimpl
    def on_epoch_end(self, run, epoch, metrics):
        self._write(run, {"event": "epoch", "epoch": epoch, **metrics})

    @hookimpl
    def on_evaluate_end(self, run, split, metrics):
        self._write(run, {"event": "evaluate", "split": split, **metrics})

    @hookimpl
    def on_run_end(self, run, metrics):
        run.log.info("callback $name: %d events in %s", self.events, run.directory / self.filename)
'''

CALLBACK_CONFIG = """\
# @package callbacks.$name
# A JSON-lines log of the run's events (epochs, evaluated splits): coupler train 'callbacks=[$name]'
name: $name
filename: $name.jsonl   # written into the run directory
"""

CALLBACK_TESTS = '''\
"""Tests of the $name plugin: Coupler's conformance kit, and the events the callback writes."""

import json
from types import SimpleNamespace

import pytest
from coupler.testing import check_plugin, train_run

from $package.callback import ${cls}Callback


def test_the_plugin_passes_couplers_conformance_kit():
    check_plugin("$name")


def test_each_epoch_is_one_line(tmp_path):
    callback, run = ${cls}Callback(), SimpleNamespace(directory=tmp_path)
    callback.on_epoch_end(run=run, epoch=0, metrics={"val_loss": 0.5})
    callback.on_epoch_end(run=run, epoch=1, metrics={"val_loss": 0.25})
    lines = (tmp_path / "$name.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"event": "epoch", "epoch": 0, "val_loss": 0.5},
                                                   {"event": "epoch", "epoch": 1, "val_loss": 0.25}]


def test_a_run_logs_its_evaluated_splits(tmp_path):
    pytest.importorskip("coupler_sklearn", reason="training needs a model plugin (coupler-sklearn)")
    metrics, run_dir = train_run(tmp_path, "data=iris", "model=logistic_regression", "callbacks=[$name]")
    events = [json.loads(line) for line in (run_dir / "$name.jsonl").read_text().splitlines()]
    evaluated = {event.pop("split"): event for event in events if event.pop("event") == "evaluate"}
    assert evaluated == metrics
'''

# --- metric -----------------------------------------------------------------------------------------------

METRIC = '''\
"""``build_$name``: a quantile of the absolute errors, a regression metric that outliers do not sway.

NumPy is imported when the metric is computed, not when Coupler loads the plugin.
"""

from __future__ import annotations

from coupler.components import Metric
from coupler.errors import ConfigError


def build_$name(quantile: float = 0.5) -> Metric:
    """The ``quantile`` of |y_true - y_pred|: 0.5 is the median absolute error; 0.9 the error that 90% of
    the predictions stay within. Lower is better."""
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0 <= quantile <= 1:
        raise ConfigError("metrics.$name.quantile", quantile, "a number from 0 to 1 (0.5: the median)")

    def compute(y_true, y_pred, y_proba, n_classes) -> float:
        import numpy as np

        errors = np.abs(np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float))
        return float(np.quantile(errors, quantile))

    return Metric("$name", compute, tasks=("regression",), greater_is_better=False)
'''

METRIC_CONFIG = """\
# @package metrics.$name
# A quantile of the absolute errors (regression; lower is better):
# coupler train data=diabetes model=linear_regression 'metrics=[$name,rmse]'
name: $name
quantile: 0.5       # 0.5: the median absolute error; 0.9: the error 90% of predictions stay within
"""

METRIC_TESTS = '''\
"""Tests of the $name plugin: Coupler's conformance kit, and the values the metric gives."""

import numpy as np
import pandas as pd
import pytest
from coupler.errors import ConfigError
from coupler.testing import check_plugin, train_run

from $package.metric import build_$name


def test_the_plugin_passes_couplers_conformance_kit():
    check_plugin("$name")


def test_it_is_the_quantile_of_the_absolute_errors():
    y_true, y_pred = np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([1.0, 3.0, 6.0, 4.0, -5.0])
    assert build_$name()(y_true, y_pred) == 1.0
    assert build_$name(quantile=1)(y_true, y_pred) == 10.0
    with pytest.raises(ConfigError, match="quantile"):
        build_$name(quantile=2)


def test_a_run_reports_it_for_its_predictions(tmp_path):
    pytest.importorskip("coupler_sklearn", reason="training needs a model plugin (coupler-sklearn)")
    metrics, run_dir = train_run(tmp_path, "data=diabetes", "model=linear_regression", "metrics=[$name,mae]")
    predictions = pd.read_csv(run_dir / "predictions_test.csv")
    expected = np.median(np.abs(predictions["target"] - predictions["prediction"]))
    assert metrics["test"]["$name"] == pytest.approx(expected)
'''

# --- exporter ---------------------------------------------------------------------------------------------

EXPORTER = '''\
"""``${cls}Exporter``: a JSON summary of the run, for a registry, a dashboard or a deployment script."""

from __future__ import annotations

import json
from pathlib import Path

from coupler.components import Exporter
from coupler.errors import ConfigError


class ${cls}Exporter(Exporter):
    """Writes ``exports/$name.json``: the model's config node, the data set, the task, the classes, the
    features the model reads and the metrics of every split."""

    def __init__(self, indent: int | None = 2):
        if indent is not None and (isinstance(indent, bool) or not isinstance(indent, int) or indent < 0):
            raise ConfigError("exporters.$name.indent", indent, "a whole number >= 0, or null for one line")
        self.indent = indent

    def export(self, model, run, directory: Path) -> list[Path]:
        summary = {
            "model": run.config["model"],
            "data": run.config["data"]["name"],
            "task": run.task,
            "classes": run.classes,
            "features": run.feature_names,
            "seed": run.seed,
            "metrics": json.loads((run.directory / "metrics.json").read_text()),
        }
        path = Path(directory) / "$name.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=self.indent, default=str) + "\\n", encoding="utf-8")
        return [path]
'''

EXPORTER_CONFIG = """\
# @package exporters.$name
# A JSON summary of the run in RUN_DIR/exports/$name.json: coupler train 'exporters=[$name]'
name: $name
indent: 2           # null: one line
"""

EXPORTER_TESTS = '''\
"""Tests of the $name plugin: Coupler's conformance kit, and the summary the exporter writes."""

import json

import pytest
from coupler.errors import ConfigError
from coupler.testing import check_plugin, train_run

from $package.exporter import ${cls}Exporter


def test_the_plugin_passes_couplers_conformance_kit():
    check_plugin("$name")


def test_a_run_exports_its_summary(tmp_path):
    pytest.importorskip("coupler_sklearn", reason="training needs a model plugin (coupler-sklearn)")
    metrics, run_dir = train_run(tmp_path, "data=iris", "model=logistic_regression", "exporters=[$name]")
    summary = json.loads((run_dir / "exports" / "$name.json").read_text())
    assert summary["model"]["name"] == "logistic_regression" and summary["data"] == "iris"
    assert summary["task"] == "multiclass" and summary["classes"] == ["setosa", "versicolor", "virginica"]
    assert len(summary["features"]) == 4 and summary["metrics"] == metrics


def test_a_negative_indent_is_refused():
    with pytest.raises(ConfigError, match="indent"):
        ${cls}Exporter(indent=-1)
'''

# --- optimizer --------------------------------------------------------------------------------------------

OPTIMIZER = '''\
"""``build_$name``: stochastic gradient descent with momentum, for the torch engine (coupler-torch).

The engine's contract: the factory checks the config's values and returns ``make(parameters)``, which builds a
``torch.optim.Optimizer``. torch is imported only when ``make`` runs, so that loading the plugin stays instant.
"""

from __future__ import annotations

from coupler.errors import ConfigError


def _number(key: str, value, low: float, high: float | None = None, *, above: bool = False) -> float:
    """``value`` as a float when it is a number >= low (> low with ``above``) and < high; else a ConfigError."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value > low if above else value >= low) and (high is None or value < high)
    if not ok:
        raise ConfigError(f"optimizer.{key}", value, f"a number {'>' if above else '>='} {low}"
                          + (f" and < {high}" if high is not None else ""))
    return float(value)


def build_$name(lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0):
    lr = _number("lr", lr, 0, above=True)
    momentum = _number("momentum", momentum, 0, 1)
    weight_decay = _number("weight_decay", weight_decay, 0)

    def make(parameters):
        import torch

        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)

    return make
'''

OPTIMIZER_CONFIG = """\
# torch.optim.SGD with momentum, for the torch engine: coupler train data=digits model=cnn optimizer=$name
name: $name
lr: 0.01            # learning rate, > 0
momentum: 0.9       # from 0 (none) to below 1
weight_decay: 0.0   # L2 penalty, >= 0
"""

OPTIMIZER_TESTS = '''\
"""Tests of the $name plugin: Coupler's conformance kit, and what the optimizer does."""

import pytest
from coupler.errors import ConfigError
from coupler.testing import check_plugin, train_run

from $package.optimizer import build_$name

torch = pytest.importorskip("torch")


def test_the_plugin_passes_couplers_conformance_kit():
    check_plugin("$name")


def test_it_fits_a_line():
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    y = 3 * x + 1
    line = torch.nn.Linear(1, 1)
    optimizer = build_$name(lr=0.1)(line.parameters())
    assert isinstance(optimizer, torch.optim.Optimizer)
    for _ in range(200):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(line(x), y)
        loss.backward()
        optimizer.step()
    assert loss.item() < 1e-4


def test_it_trains_a_network(tmp_path):
    pytest.importorskip("coupler_cnn", reason="a network to train needs coupler-cnn")
    metrics, _ = train_run(tmp_path, "data=digits", "model=cnn", "optimizer=$name", "optimizer.lr=0.05",
                           "trainer.max_epochs=2", "trainer.accelerator=cpu")
    assert metrics["test"]["accuracy"] > 0.5


def test_a_momentum_of_one_is_refused():
    with pytest.raises(ConfigError, match="optimizer.momentum"):
        build_$name(momentum=1)
'''

KINDS: dict[str, Kind] = {
    "model": Kind("model", "register_models", "$cls", "a linear model in NumPy (ridge / softmax regression)",
                  ("numpy",), MODEL, MODEL_CONFIG, MODEL_TESTS,
                  "coupler train data=iris model=$name\ncoupler train data=diabetes model=$name model.alpha=10"),
    "data": Kind("data", "register_data_loaders", "load_$name", "a synthetic classification table from a seed",
                 ("numpy", "pandas"), DATA, DATA_CONFIG, DATA_TESTS,
                 "coupler train data=$name\ncoupler train data=$name data.rows=5000 data.noise=1.0"),
    "callback": Kind("callbacks", "register_callbacks", "${cls}Callback",
                     "a JSON-lines log of the run's epochs and evaluations", (), CALLBACK, CALLBACK_CONFIG,
                     CALLBACK_TESTS, "coupler train 'callbacks=[$name]'    # writes RUN_DIR/$name.jsonl"),
    "metric": Kind("metrics", "register_metrics", "build_$name",
                   "a quantile of the absolute errors (regression)", ("numpy",), METRIC,
                   METRIC_CONFIG, METRIC_TESTS,
                   "coupler train data=diabetes model=linear_regression 'metrics=[$name,rmse]'\n"
                   "coupler train data=diabetes model=linear_regression 'metrics=[$name]' metrics.$name.quantile=0.9"),
    "exporter": Kind("exporters", "register_exporters", "${cls}Exporter",
                     "a JSON summary of the run (model, data, metrics)", (), EXPORTER,
                     EXPORTER_CONFIG, EXPORTER_TESTS,
                     "coupler train 'exporters=[$name]'    # writes RUN_DIR/exports/$name.json"),
    "optimizer": Kind("optimizer", "register_optimizers", "build_$name",
                      "SGD with momentum for the torch engine", ("torch",), OPTIMIZER, OPTIMIZER_CONFIG,
                      OPTIMIZER_TESTS,
                      "coupler train data=digits model=cnn optimizer=$name optimizer.lr=0.05   # needs coupler-torch"
                      " and a model that uses an optimizer"),
}

# --- files every kind gets ----------------------------------------------------------------------------------

PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "A Coupler $kind plugin: $summary."
readme = "README.md"
requires-python = ">=3.10"
dependencies = [$dependencies]

[project.optional-dependencies]
test = ["pytest"]

[project.entry-points.coupler]
$name = "$package.plugin"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
$package = ["conf/**/*.yaml"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

INIT = '''\
"""$dist: a Coupler $kind plugin: $summary."""

__version__ = "0.1.0"
'''

PLUGIN = '''\
"""The $name plugin: registers the $kind ``$name`` and the directory of its config file.

Coupler imports this module (the ``coupler`` entry point ``$name``) whenever it loads plugins, even for
``coupler plugins``: keep it light, and keep heavy libraries inside the component's functions.
"""

from __future__ import annotations

from pathlib import Path

from coupler import hookimpl

from $package.$module import $factory

#: The versions of Coupler's plugin API this plugin is written for; Coupler's plugin manager reads it.
COUPLER_API = "$api"


@hookimpl
def $hook(register):
    register("$name", $factory,
             description="$summary")


@hookimpl
def register_config_dirs(register):
    register(Path(__file__).parent / "conf")
'''

README = """\
# $dist

A [Coupler](https://pypi.org/project/coupler/) $kind plugin: $summary.

It registers the $kind `$name` through the entry point `$name = "$package.plugin"` of the `coupler`
group, and its config node `src/$package/conf/$group/$name.yaml` (each key there is a parameter of the
$kind; set any on the command line).

## Install

```console
pip install -e .
coupler plugins          # lists the plugin $name, status ok
```

## Use

```console
$usage
```

## Test

```console
pip install -e ".[test]"
python -m pytest
```

`tests/test_$name.py` runs Coupler's conformance kit (`coupler.testing.check_plugin("$name")`), which checks
the plugin against Coupler's contracts, and tests what the $kind does.

## Publish

Set the version in `pyproject.toml`, then build and upload the sdist and the wheel:

```console
python -m pip install build twine
python -m build
python -m twine check dist/*
python -m twine upload dist/*     # --repository testpypi to try it first
```

Once published, `pip install $dist` is all a Coupler user needs: Coupler finds the plugin by its entry point.
"""


def check_name(name: str) -> None:
    """Refuse a name that cannot be a component, an entry point and part of a package name."""
    if NAME_PATTERN.match(name):
        return
    suggestion = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    hint = f" (e.g. {suggestion})" if NAME_PATTERN.match(suggestion) else ""
    raise CouplerError(f"plugin name {name!r} is not allowed: use a lower-case letter, then lower-case letters, "
                       f"digits or underscores{hint}.")


def coupler_requirement(version: str | None = None) -> str:
    """``coupler>=MAJOR.MINOR`` of the Coupler that writes the package: its tests use that Coupler's helpers.

    No upper bound: a newer Coupler whose plugin API the plugin does not support skips it and says why
    (``COUPLER_API``), where a pin would make pip refuse to install the two together."""
    from packaging.version import Version

    from coupler import __version__

    parsed = Version(version or __version__)
    if parsed.is_prerelease or parsed.is_devrelease:  # 0.2.0.dev1 is older than 0.2: require it as it is
        return f"coupler>={parsed}"
    return f"coupler>={parsed.major}.{parsed.minor}"


def check_free(name: str, kind: str, manager) -> None:
    """Refuse a name an installed plugin holds, as its plugin name or as a component of the same kind: the two
    could not be installed together (``coupler plugins`` would show the newcomer as failed)."""
    taken = manager.plugins.get(name)
    if taken is not None:
        again = "" if taken.builtin else f" (or pip uninstall {taken.distribution}, to write it again)"
        raise CouplerError(f"plugin name {name!r} is taken by the installed plugin {name!r} ({taken.distribution} "
                           f"{taken.version}); choose another name{again}.")
    for component in manager.registry.components(kind):
        if component.name == name:
            raise CouplerError(f"{kind} {name!r} is provided by the installed plugin {component.plugin!r}, and two "
                               f"plugins cannot both register {kind} {name!r}; choose another name.")


def check_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise CouplerError(f"--kind {kind}: unknown kind of plugin; kinds are {', '.join(KINDS)}.")
    return KINDS[kind]


def render(name: str, kind: str = "model") -> dict[str, str]:
    """The files of the package ``coupler-NAME`` for a ``kind`` component: relative path -> text."""
    check_name(name)
    spec = check_kind(kind)
    package, dist = f"coupler_{name}", f"coupler-{name.replace('_', '-')}"
    values = {"name": name, "kind": kind, "group": spec.group, "package": package, "dist": dist, "api": API_RANGE,
              "cls": "".join(part.capitalize() for part in name.split("_")), "module": kind, "hook": spec.hook}
    values["factory"] = Template(spec.factory).substitute(values)
    values["summary"] = spec.summary
    values["usage"] = Template(spec.usage).substitute(values)
    values["dependencies"] = ", ".join(f'"{d}"' for d in (coupler_requirement(), *spec.dependencies))
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"src/{package}/__init__.py": INIT,
        f"src/{package}/plugin.py": PLUGIN,
        f"src/{package}/{kind}.py": spec.component,
        f"src/{package}/conf/{spec.group}/{name}.yaml": spec.config,
        f"tests/test_{name}.py": spec.tests,
    }
    return {path: Template(text).substitute(values) for path, text in files.items()}


def create(name: str, kind: str = "model", directory: Path | str = ".", manager=None) -> Path:
    """Write the package into ``directory/coupler-NAME`` (dashes for underscores) and return its path; with a
    plugin ``manager``, first refuse a name its installed plugins hold (``check_free``).

    The files are written into a hidden directory beside it that is renamed in one step: an error never leaves
    half a package behind.
    """
    files = render(name, kind)
    if manager is not None:
        check_free(name, kind, manager)
    target = Path(directory) / f"coupler-{name.replace('_', '-')}"
    if target.exists() or target.is_symlink():
        raise CouplerError(f"{target} already exists; remove it, or choose another name or --directory.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; give the package the user's usual mode
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
