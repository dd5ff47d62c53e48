"""``coupler explain RUN [--data FILE]``: which features a finished run's model relies on.

Two methods, each named in what the command prints and writes:

- **permutation importance** for every model (``sklearn.inspection.permutation_importance``): how much the run's
  score (accuracy for a classifier, R² for a regressor) drops when one raw column's values are shuffled. It works on
  the columns the user knows (before one-hot encoding), through the run's own preprocessing.
- **SHAP values** where the model allows: exact tree SHAP for a model whose ``Model.tree_shap(X)`` gives them
  (XGBoost: its own ``pred_contribs``, categorical columns included; scikit-learn's trees, forests and gradient
  boosting: ``shap.TreeExplainer``), else SHAP's model-agnostic Kernel SHAP (``shap.KernelExplainer``, against a background of training-like rows) on the model's input columns (after
  preprocessing: one column per one-hot category). A model that reads no table of numbers (text, files) gets no
  SHAP values, and the command says why.

The rows are the run's own test rows (recomputed from its data, as ``coupler evaluate`` does) or a file's
(``--data``, with the target column), at most ``--rows`` of them. What it writes goes to a new directory outside the
run (a run directory is sealed): ``permutation_importance.csv``, ``shap_importance.csv`` and ``shap_values.csv``
when SHAP ran, and ``summary.png``; all of it appears at once, or nothing does.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from coupler.errors import CouplerError

#: the input formats SHAP's explainers can read: a matrix of numbers (or a frame of them)
TABULAR = ("matrix", "frame")
#: rows the model-agnostic explainer explains, and rows of background it replaces masked features with: its cost
#: grows with their product (and with the number of features)
AGNOSTIC_ROWS, BACKGROUND_ROWS = 100, 25


@dataclass
class Explanation:
    directory: Path
    rows: int
    permutation: object  # a DataFrame: feature, importance_mean, importance_std (a score's drop)
    score: str
    shap_method: str | None = None  # None: no SHAP values, see shap_skipped
    shap_skipped: str | None = None
    shap_importance: object = None  # a DataFrame: feature, mean_abs_shap
    shap_values: object = None  # a DataFrame: row (and class), one column per model input
    files: list[Path] = field(default_factory=list)


def explain(run_dir: Path, data: Path | None = None, output: Path | None = None, overwrite: bool = False,
            repeats: int = 5, rows: int = 1000, seed: int = 0) -> Explanation:
    """Explain the run in ``run_dir`` on its test rows (or ``data``'s) and write the files into ``output`` (default:
    ``RUNNAME-explain`` in the working directory, RUNNAME as ``coupler report`` names its page)."""
    from coupler.finished_run import FinishedRun

    run_dir = Path(run_dir)
    if output is None:
        from coupler.report import run_name

        output = Path(f"{run_name(run_dir)}-explain")
    _check_output(output, run_dir, overwrite)
    run = FinishedRun(run_dir)
    if run.input_format not in TABULAR:
        raise CouplerError(f"run {str(run_dir)!r} reads {run.input_format} (not a table of features): coupler explain "
                           f"explains models that read tables.")
    frame, labels = run.labelled_rows(data)
    if len(frame) == 0:
        raise CouplerError("there are no rows to explain the run on; give a file with --data.")
    if len(frame) > rows:
        keep = frame.sample(n=rows, random_state=seed).index
        labels = labels[frame.index.get_indexer(keep)]
        frame = frame.loc[keep]
    explanation = Explanation(output, len(frame), *_permutation_importance(run, frame, labels, repeats, seed))
    _shap(run, frame, seed, explanation)
    _write(explanation, output, overwrite)
    return explanation


#: what ``coupler explain`` writes: ``--overwrite`` replaces a directory that holds nothing else
WRITTEN = ("permutation_importance.csv", "shap_importance.csv", "shap_values.csv", "summary.png")


def _check_output(output: Path, run_dir: Path, overwrite: bool) -> None:
    resolved, run = output.resolve(), run_dir.resolve()
    if resolved == run or run in resolved.parents:
        raise CouplerError(f"output {str(output)!r} is inside the run {str(run_dir)!r}, which is sealed; give a "
                           f"directory outside it (--output DIR).")
    if resolved in run.parents:
        raise CouplerError(f"output {str(output)!r} holds the run {str(run_dir)!r}; give a new directory "
                           f"(--output DIR).")
    if not output.exists():
        return
    if not overwrite:
        raise CouplerError(f"output {str(output)!r} exists; give another (--output DIR) or replace it (--overwrite).")
    if not output.is_dir() or output.is_symlink():
        raise CouplerError(f"output {str(output)!r} is not a directory; give a directory (--output DIR).")
    others = sorted(p.name for p in output.iterdir() if p.name not in WRITTEN or not p.is_file() or p.is_symlink())
    if others:
        raise CouplerError(f"output {str(output)!r} holds {others[:5]}, which coupler explain did not write; "
                           f"--overwrite replaces only a directory of its own output: give a new one (--output DIR).")


class _RawRows:
    """The run as scikit-learn's ``permutation_importance`` wants an estimator: ``predict`` on raw rows."""

    def __init__(self, run):
        self.run = run

    def fit(self, *args):  # scikit-learn's scorer checks accept only objects that look fitted-able
        return self

    def predict(self, frame):
        return self.run.predict(frame)


def _permutation_importance(run, frame, labels, repeats: int, seed: int):
    import numpy as np
    import pandas as pd
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import accuracy_score, r2_score

    if run.classes:
        score, name = (lambda estimator, X, y: accuracy_score(y.astype(str), estimator.predict(X).astype(str))), "accuracy"
    else:
        score, name = (lambda estimator, X, y: r2_score(y, estimator.predict(X))), "r2"
    result = permutation_importance(_RawRows(run), frame, np.asarray(labels), scoring=score, n_repeats=repeats,
                                    random_state=seed)
    table = pd.DataFrame({"feature": list(frame.columns), "importance_mean": result.importances_mean,
                          "importance_std": result.importances_std})
    return table.sort_values("importance_mean", ascending=False, kind="stable").reset_index(drop=True), name


def _shap(run, frame, seed: int, explanation: Explanation) -> None:
    """SHAP values of ``frame``'s rows, into ``explanation``: the tree explainer where the model gives a tree
    ensemble, else the model-agnostic one; none (with the reason) where neither can read the model's input."""
    import numpy as np

    X = run.transform(frame)
    names = run.manifest["features"].get("model_input") or run.preprocessor.feature_names(run.input_format)
    exact = run.model.tree_shap(X) if callable(getattr(run.model, "tree_shap", None)) else None
    values = None
    if exact is not None:
        values, explanation.shap_method = exact
    if values is None:
        matrix = _numeric_matrix(X)
        if matrix is None:
            explanation.shap_skipped = ("the model reads columns that are not numbers (categories in a frame), which "
                                        "SHAP's model-agnostic explainer cannot mask")
            return
        try:
            import shap  # noqa: F401
        except ImportError:
            explanation.shap_skipped = "the shap package is not installed: pip install 'coupler[explain]'"
            return
        values = _agnostic_shap(run, matrix, names, seed)
        explanation.shap_method = "model-agnostic Kernel SHAP (shap.KernelExplainer)"
        frame = frame.iloc[: len(values)]
    values = np.asarray(values)  # (rows, features), or (rows, features, classes)
    explanation.shap_importance = _shap_tables(values, names, run.classes)
    explanation.shap_values = _shap_values_frame(values, names, run.classes, frame.index)


def _numeric_matrix(X):
    import numpy as np

    try:
        matrix = np.asarray(X, dtype=float)
    except (TypeError, ValueError):
        return None
    return matrix if matrix.ndim == 2 else None


def _agnostic_shap(run, matrix, names, seed: int):
    import numpy as np
    import shap

    model = run.predictor()
    gives_proba = bool(run.classes) and _has_proba(run)
    columns = list(names)

    def predicted(rows):
        X = _like_model_input(rows, columns, run.input_format)
        return model.predict_proba(X) if gives_proba else np.asarray(model.predict(X), dtype=float)

    rng = np.random.default_rng(seed)
    background = matrix[rng.choice(len(matrix), size=min(BACKGROUND_ROWS, len(matrix)), replace=False)]
    # Kernel SHAP: SHAP's permutation explainer estimates the same Shapley values but compiles its masker with numba
    # first, about 15 s of CPU in every new process
    explainer = shap.KernelExplainer(predicted, background, seed=seed)
    return np.asarray(explainer.shap_values(matrix[:AGNOSTIC_ROWS], silent=True))


def _has_proba(run) -> bool:
    from coupler.components import gives_proba

    return gives_proba(run.model, run.task)


def _like_model_input(rows, columns: list[str], input_format: str):
    """SHAP's masked rows (a float matrix) as the model reads them: the matrix itself, or a frame of numbers."""
    if input_format == "frame":
        import pandas as pd

        return pd.DataFrame(rows, columns=columns)
    return rows


def _shap_tables(values, names, classes):
    """Mean |SHAP| per feature (over rows, and over classes for a classifier's per-class values)."""
    import numpy as np
    import pandas as pd

    mean = np.abs(values).mean(axis=0)
    table = pd.DataFrame({"feature": list(names), "mean_abs_shap": mean.mean(axis=-1) if mean.ndim == 2 else mean})
    if mean.ndim == 2 and classes and mean.shape[1] == len(classes):
        for i, label in enumerate(classes):
            table[f"mean_abs_shap_{label}"] = mean[:, i]
    return table.sort_values("mean_abs_shap", ascending=False, kind="stable").reset_index(drop=True)


def _shap_values_frame(values, names, classes, index):
    """One row per explained row (and class, for per-class values), one column per model input."""
    import pandas as pd

    if values.ndim == 2:
        frame = pd.DataFrame(values, columns=list(names))
        frame.insert(0, "row", list(index[: len(values)]))
        return frame
    parts = []
    for i in range(values.shape[2]):
        part = pd.DataFrame(values[:, :, i], columns=list(names))
        part.insert(0, "class", classes[i] if classes and values.shape[2] == len(classes) else i)
        part.insert(0, "row", list(index[: len(values)]))
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _write(explanation: Explanation, output: Path, overwrite: bool) -> None:
    """Every file into a temporary directory beside ``output``, then put in place at once."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp's 0700: the directory a user asked for gets the usual mode
    try:
        explanation.permutation.to_csv(staging / "permutation_importance.csv", index=False)
        names = ["permutation_importance.csv"]
        if explanation.shap_importance is not None:
            explanation.shap_importance.to_csv(staging / "shap_importance.csv", index=False)
            explanation.shap_values.to_csv(staging / "shap_values.csv", index=False)
            names += ["shap_importance.csv", "shap_values.csv"]
        _summary_plot(explanation, staging / "summary.png")
        names.append("summary.png")
        if output.exists() and overwrite:
            shutil.rmtree(output)
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    explanation.files = [output / name for name in names]


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def _summary_plot(explanation: Explanation, path: Path, top: int = 15) -> None:
    """Horizontal bars: permutation importance, and mean |SHAP| beside it when SHAP ran."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(explanation.permutation, "importance_mean", f"permutation importance ({explanation.score} drop)")]
    if explanation.shap_importance is not None:
        panels.append((explanation.shap_importance, "mean_abs_shap", f"mean |SHAP| ({explanation.shap_method})"))
    figure = Figure(figsize=(6.5 * len(panels), 0.35 * min(top, len(panels[0][0])) + 1.5))
    FigureCanvasAgg(figure)
    for i, (table, column, title) in enumerate(panels):
        shown = table.head(top).iloc[::-1]
        axes = figure.add_subplot(1, len(panels), i + 1)
        axes.barh([str(f) for f in shown["feature"]], shown[column], color="#4c72b0")
        axes.set_title(title, fontsize=9)
        axes.tick_params(labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def describe(explanation: Explanation, top: int = 5) -> str:
    """What ``coupler explain`` prints: the methods, the top features of each, and the files."""
    lines = [f"explained {explanation.rows} rows",
             f"permutation importance (sklearn.inspection.permutation_importance, {explanation.score} drop):"]
    lines += [f"  {row.feature}: {row.importance_mean:.4f} ± {row.importance_std:.4f}"
              for row in explanation.permutation.head(top).itertuples()]
    if explanation.shap_importance is not None:
        lines.append(f"SHAP: {explanation.shap_method}, mean |SHAP| per model input:")
        lines += [f"  {row.feature}: {row.mean_abs_shap:.4f}" for row in explanation.shap_importance.head(top).itertuples()]
    else:
        lines.append(f"SHAP: not computed: {explanation.shap_skipped}")
    lines.append(f"wrote {explanation.directory}: " + ", ".join(p.name for p in explanation.files))
    return "\n".join(lines)
