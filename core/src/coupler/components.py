"""The contracts a plugin's components fulfil: ``Model``, ``Metric`` and ``Exporter``.

Data loaders return a ``coupler.dataset.Dataset``; callbacks subclass ``coupler.Callback`` (or are plain objects
with lifecycle hook implementations, see ``coupler.hookspecs``). Nothing here imports a heavy library.

**Declared capabilities.** What a component can do is a class attribute, not something the core probes for:
``Model.tasks``, ``proba_tasks``, ``reports_epochs``, ``sample_weights``, ``engine``, ``input_formats``,
``reads_files``, ``export_formats``; ``Exporter.models`` / ``engines`` / ``supports``; ``Metric.tasks`` / ``needs_proba``;
``Callback.requires`` / ``engines``. The run reads them *before any data is read* (``coupler.capabilities``)
from the class a model's factory declares it returns (``declared_model``), and refuses a combination the model
cannot honour, naming what would work; it reads them again from the built model before fitting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from coupler.context import RunContext

TASKS = ("binary", "multiclass", "regression")
CLASSIFICATION = ("binary", "multiclass")


@dataclass
class Split:
    """One split of preprocessed data: ``X`` as the model asked for it, ``y`` as integer class codes
    (classification) or floats (regression), and ``weight``: one non-negative weight per row that a model
    declaring ``sample_weights`` must honour in ``fit`` (``train.class_weight``), or None (every row counts once).
    Only the train split is weighted; validation and test are measured unweighted.

    For input format ``stream`` (``coupler.streaming``), ``X`` is a ``RowStream`` whose batches carry the targets
    and weights; ``y`` and ``weight`` are then None."""

    X: Any
    y: np.ndarray | None
    weight: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y) if self.y is not None else len(self.X)


class Model:
    """The contract of a model component. Subclass it, or provide the same methods.

    A model is built by its registered factory as ``factory(task=..., seed=..., **config)``, with the ``model`` node
    already checked against the model's schema (``coupler.schema``: types, ranges, choices, unknown keys); the factory
    checks only what a schema cannot say (a rule across parameters), raising ``coupler.errors.ConfigError``.

    Its optional capabilities are the class attributes below. The run reads them from the class the factory
    declares (the factory itself when it is this class, else its ``returns`` attribute: see ``declared_model``)
    before any data is read, and from the built model before ``fit``; an instance may narrow what its class
    declares in ``__init__`` (an estimator without ``predict_proba``), never widen it.
    """

    #: The tasks the model can learn (a subset of ``TASKS``).
    tasks: tuple[str, ...] = TASKS
    #: The tasks for which ``predict_proba`` gives class probabilities, e.g. ``CLASSIFICATION``; metrics that
    #: need probabilities (``roc_auc``, ``log_loss``) are refused for the others. Replaces ``supports_proba``.
    proba_tasks: tuple[str, ...] = ()
    #: Whether ``fit`` calls ``run.epoch_end`` after each epoch: True, False (trains in one step: callbacks that
    #: watch epochs, such as ``early_stopping``, are refused), or None (not declared: they are allowed, and the
    #: run warns when no epoch came).
    reports_epochs: bool | None = None
    #: Whether ``fit`` honours ``Split.weight`` (per-row weights, e.g. from ``train.class_weight``); a model that
    #: does not is refused when weights are asked for.
    sample_weights: bool = False
    #: The engine that trains it (``"sklearn"``, ``"xgboost"``, ``"torch"``, ...): callbacks and exporters that act
    #: inside one engine name it in their ``engines``. None: no engine any of them names.
    engine: str | None = None

    #: What ``fit`` and ``predict`` receive as ``X``: "matrix" (a float numpy array; categorical columns
    #: one-hot encoded, missing values imputed, numbers scaled) or "frame" (a pandas DataFrame whose
    #: categorical columns have the ``category`` dtype, missing values left for the model).
    input_format: str = "matrix"
    #: Optional: the input formats the model takes, in order of preference, when it takes several; the run
    #: picks the first the data can give (``matrix``/``frame`` for a table; also ``stream`` for a data set read
    #: lazily, ``data=parquet data.path=DIR``: a ``coupler.streaming.RowStream`` of matrix rows in ``fit``, while
    #: ``predict`` still gets matrices, partition by partition; ``files`` for paths of files,
    #: ``tokens``/``text`` for text: token ids from the training rows' vocabulary, or the raw text) and tells
    #: the model in ``run.input_format``. Without it: ``(input_format,)``.
    input_formats: tuple[str, ...] | None = None
    #: Whether the model reads files itself (an image folder): ``files`` is then one of its input formats.
    reads_files: bool = False
    #: The formats its plugin can export it in (``exporters=[onnx]``, ``coupler export --format``): ``"onnx"``
    #: with a ``to_onnx(n_features)`` method, ``"torchscript"`` with ``to_torchscript(state, task)`` and
    #: ``torchscript_answers(...)`` (``coupler.onnx_export`` says what each returns). A built model may narrow it.
    export_formats: tuple[str, ...] = ()

    def fit(self, train: Split, val: Split | None, run: RunContext) -> None:
        """Train on ``train``; ``val`` (None when the split is empty) may drive early stopping. Call
        ``run.epoch_end(epoch, metrics)`` after each epoch of an iterative engine and stop when it
        returns True."""
        raise NotImplementedError

    def predict(self, X: Any) -> np.ndarray:
        """Class codes (0..K-1) for classification, values for regression."""
        raise NotImplementedError

    def predict_proba(self, X: Any) -> np.ndarray | None:
        """Class probabilities, shape (rows, K), or None when the model has none."""
        return None

    @property
    def supports_proba(self) -> bool:
        """The former spelling of ``proba_tasks``, kept for plugins that override or set it: whether
        ``predict_proba`` gives probabilities for this model's ``task``. The run asks ``gives_proba``."""
        explicit = self.__dict__.get("_supports_proba")
        if explicit is not None:
            return explicit
        return getattr(self, "task", None) in self.proba_tasks

    @supports_proba.setter
    def supports_proba(self, value: bool) -> None:
        self.__dict__["_supports_proba"] = bool(value)

    def feature_importances(self) -> dict[str, float] | None:
        """Optional: ``{feature: number}`` (features are ``run.feature_names``), written as
        ``feature_importances.csv``; None writes nothing."""
        return None

    def tree_shap(self, X: Any) -> tuple[np.ndarray, str] | None:
        """Optional: exact SHAP values of the rows ``X`` (as ``predict`` reads them), for a tree ensemble whose
        library computes them (tree SHAP), and the method's name: ``(values, "XGBoost's pred_contribs")``; values
        of shape (rows, features) or (rows, features, classes), in the units of the model's raw output. None (the
        default): ``coupler explain`` uses SHAP's model-agnostic explainer."""
        return None

    def save(self, directory: Path) -> None:
        """Write the fitted state into ``directory`` (it exists and is empty). No pickle where a safe
        format exists."""
        raise NotImplementedError

    def load(self, directory: Path) -> None:
        """Restore the state written by ``save`` into this freshly built model."""
        raise NotImplementedError


@dataclass(frozen=True)
class Metric:
    """A metric: ``fn(y_true, y_pred, y_proba, n_classes)`` returns a number, or an array for a non-scalar metric
    (a confusion matrix), which is written to the run directory as ``NAME_SPLIT.csv`` instead of
    ``metrics.json``.

    ``y_true`` and ``y_pred`` are class codes 0..K-1 for classification; ``y_proba`` is (rows, K) or None;
    ``n_classes`` is K (0 for regression).
    """

    name: str
    fn: Callable[..., Any]
    tasks: Sequence[str] = TASKS
    needs_proba: bool = False
    greater_is_better: bool = True

    def __call__(self, y_true, y_pred, y_proba=None, n_classes: int = 0):
        return self.fn(y_true, y_pred, y_proba, n_classes)


class Exporter:
    """The contract of an exporter: write the trained model in another form into ``directory``.

    It declares the models it can export, so that a run that asks for it with another model is refused before
    any data is read (not after training): ``engines`` (the models' ``Model.engine``) and/or ``models`` (model
    component names); None accepts any. Override ``supports`` for a finer rule. Register the class itself (or a
    factory with a ``returns`` attribute naming it) so that the run can list the exporters that would work.
    """

    #: the engines whose models it exports, e.g. ``("xgboost",)``; None: any
    engines: tuple[str, ...] | None = None
    #: the model components it exports, by name, e.g. ``("xgboost",)``; None: any
    models: tuple[str, ...] | None = None

    @classmethod
    def supports(cls, model: Any, name: str) -> bool:
        """Whether it can export model component ``name``; ``model`` is its declared class (before the run reads
        data) or the built model (before ``fit``)."""
        return (cls.engines is None or getattr(model, "engine", None) in cls.engines) \
            and (cls.models is None or name in cls.models)

    def export(self, model: Model, run: RunContext, directory: Path) -> list[Path]:
        """Write files into ``directory`` (inside the run directory) and return their paths."""
        raise NotImplementedError


# --- reading what a component declares ----------------------------------------------------------------------


def gives_proba(model: Any, task: str) -> bool:
    """Whether ``model`` (a class or a built model) gives class probabilities for ``task``: ``task`` in its
    ``proba_tasks``, or a ``supports_proba`` of its own (a plugin written before ``proba_tasks``)."""
    if task in (getattr(model, "proba_tasks", None) or ()):
        return True
    if isinstance(model, type):  # a class: its own supports_proba is a bool, or a property known once built
        own = getattr(model, "supports_proba", False)
        if isinstance(own, bool):
            return own
        declared = any("proba_tasks" in vars(c) for c in model.__mro__ if c is not Model)
        # Model's own property and no proba_tasks: an older plugin that may set supports_proba in __init__; it
        # cannot be told before the model is built, so the check on the built model decides
        return own is not Model.supports_proba or not declared
    return bool(getattr(model, "supports_proba", False))


#: the class attributes a factory may carry itself, overriding its ``returns`` class for that one component
CAPABILITIES = ("tasks", "proba_tasks", "reports_epochs", "sample_weights", "engine", "input_format",
                "input_formats", "reads_files", "export_formats")


def declared_model(factory: Any) -> type | None:
    """The class whose attributes say what ``factory`` builds, read without building it or importing a heavy
    library: ``factory`` itself when it is a class; else its ``returns`` attribute (a light class, a subclass of
    ``Model`` that the built model's class extends), with any of ``CAPABILITIES`` that the factory sets on itself
    taking precedence (one factory of several sharing a class: ``build_knn.sample_weights = False``). None when
    nothing is declared: the run then checks the model once it is built."""
    if isinstance(factory, type):
        return factory
    returns = getattr(factory, "returns", None)
    if not isinstance(returns, type):
        return None
    own = {name: value for name, value in getattr(factory, "__dict__", {}).items() if name in CAPABILITIES}
    return type(returns.__name__, (returns,), own) if own else returns
