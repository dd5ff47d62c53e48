"""``train.class_weight``: class imbalance handled once, in the core, for every engine.

The setting becomes per-row weights of the train split (``Split.weight``), with scikit-learn's
``compute_sample_weight`` semantics, and reaches each engine through the fit contract: a model that declares
``Model.sample_weights`` honours them (scikit-learn's ``sample_weight``, XGBoost's ``DMatrix(weight=)``, the torch
engine's per-row weighted loss). The validation and test splits are measured unweighted.

- ``null`` (the default): no weights.
- ``balanced``: class ``c`` weighs ``rows / (classes * rows_of_c)`` over the training rows, so that every class
  present counts as much in total.
- a mapping ``{label: weight}`` in the data's own labels (``train.class_weight={yes:10}``); a class not named
  weighs 1.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from coupler.errors import ConfigError

KEY = "train.class_weight"
if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

ALLOWED = "null, balanced, or a mapping of classes to weights > 0, e.g. train.class_weight={yes:10}"


def check_setting(value) -> None:
    """The setting's shape, before anything is read: null, ``balanced``, or a mapping to positive numbers."""
    if value is None or value == "balanced":
        return
    if not isinstance(value, dict) or not value:
        raise ConfigError(KEY, value, ALLOWED)
    for label, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight <= 0:
            raise ConfigError(f"{KEY}.{label}", weight, "a weight > 0 (a number)")


def row_weights(value, y: np.ndarray, classes: list) -> np.ndarray | None:
    """One weight per training row (``y``: class codes into ``classes``), or None for ``null``. A mapping that
    names a label the data does not have is an error listing the classes."""
    import numpy as np

    if value is None:
        return None
    codes = np.asarray(y, dtype=np.int64)
    return class_weight_per_class(value, np.bincount(codes, minlength=len(classes)), classes)[codes]


def class_weight_per_class(value, counts, classes: list) -> np.ndarray:
    """One weight per class, from ``train.class_weight`` (not null) and the training rows' count of each class
    (a streamed data set weighs each batch's rows by their class with it)."""
    import numpy as np

    if value == "balanced":
        counts = np.asarray(counts, dtype=float)
        present = counts > 0
        per_class = np.zeros(len(classes))
        per_class[present] = counts.sum() / (present.sum() * counts[present])
    else:
        by_text = {str(label): k for k, label in enumerate(classes)}
        unknown = [label for label in value if str(label) not in by_text]
        if unknown:
            raise ConfigError(f"{KEY}.{unknown[0]}", value[unknown[0]],
                              f"weights for the data's classes: {', '.join(map(str, classes))}")
        per_class = np.ones(len(classes))
        for label, weight in value.items():
            per_class[by_text[str(label)]] = float(weight)
    return per_class
