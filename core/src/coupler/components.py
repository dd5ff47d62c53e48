"""The contracts a plugin's components fulfil: ``Model``, ``Metric`` and ``Exporter``.

Data loaders return a ``coupler.dataset.Dataset``; callbacks are plain objects with lifecycle hook
implementations (see ``coupler.hookspecs``). Nothing here imports a heavy library.
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


@dataclass
class Split:
    """One split of preprocessed data: ``X`` as the model asked for it, ``y`` as integer class codes
    (classification) or floats (regression)."""

    X: Any
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def check_params(params: Any, key: str = "model.params") -> dict:
    """A model's ``params`` node as a dict (None is empty); anything else is an error naming the key."""
    from coupler.errors import ConfigError

    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ConfigError(key, params, f"a mapping of parameter names to values: set one as {key}.NAME=VALUE")
    return params


class Model:
    """The contract of a model component. Subclass it, or provide the same methods.

    A model is built by its registered factory as ``factory(task=..., seed=..., **config)`` and must check
    its parameters there, raising ``coupler.errors.CouplerError`` naming any that is unknown or ill-typed.
    """

    #: What ``fit`` and ``predict`` receive as ``X``: "matrix" (a float numpy array; categorical columns
    #: one-hot encoded, missing values imputed, numbers scaled) or "frame" (a pandas DataFrame whose
    #: categorical columns have the ``category`` dtype, missing values left for the model).
    input_format: str = "matrix"
    #: Optional: the input formats the model takes, in order of preference, when it takes several; the run
    #: picks the first the data can give (``matrix``/``frame`` for a table, ``files`` for paths of files,
    #: ``tokens``/``text`` for text: token ids from the training rows' vocabulary, or the raw text) and tells
    #: the model in ``run.input_format``. Without it: ``(input_format,)``.
    input_formats: tuple[str, ...] | None = None

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
        """Whether ``predict_proba`` gives probabilities; metrics that need them check it before fitting."""
        return False

    # Optional: ``feature_importances() -> {feature: number}``; when a model has it, the run writes
    # ``feature_importances.csv`` (features are ``run.feature_names``).

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
    """The contract of an exporter: write the trained model in another form into ``directory``."""

    def export(self, model: Model, run: RunContext, directory: Path) -> list[Path]:
        """Write files into ``directory`` (inside the run directory) and return their paths."""
        raise NotImplementedError
