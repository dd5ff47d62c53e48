"""A run's plots: PNG files under ``RUN/plots/``, written before the run is sealed (so its checksums cover them).

The setting ``plots`` chooses them: a list of names (``plots=[confusion_matrix,roc]``), ``all``, or ``none``; its
default is ``DEFAULT``. Each plot draws what the run already measured (``Evidence``: the predictions and
probabilities of the evaluation, ``history.csv``'s rows, the feature importances): nothing is predicted again. A
plot that does not apply to the run is left out without a word when it is a default, and said once in the log when
it was named: ROC, precision-recall and calibration need class probabilities (a model without them gets none),
the regression plots a regression, the learning curves per-epoch history, the feature importance a model that
gives them.

Cost: the confusion matrix and the residuals, defaults of every classification and regression run, are drawn with
Pillow (a few hundredths of a second). The others use matplotlib, imported only here, only when such a plot is drawn, and without pyplot (a
``Figure`` on the Agg canvas): its import (about half a second) is most of what they cost; each figure adds a tenth
of a second or less (docs/configuration.md, "Plots")."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger("coupler")

#: every plot, in the order a report shows them
PLOTS = ("confusion_matrix", "roc", "precision_recall", "calibration", "residuals", "predicted_vs_actual",
         "learning_curves", "feature_importance")
#: what every run draws unless ``plots=`` says otherwise (each where it applies): the cheap ones. The confusion
#: matrix and the residuals are drawn with Pillow (hundredths of a second, no matplotlib); the learning curves need
#: matplotlib (its import is about half a second) but exist only for engines with epochs, whose runs are the long ones.
DEFAULT = ("confusion_matrix", "residuals", "learning_curves")
#: the directory of the run that holds them
DIRECTORY = "plots"
#: the type of the ``plots`` setting (``coupler.settings``): a list of names, or all, or none
Selection = list[Literal[PLOTS]] | Literal["all", "none"]
#: the most classes drawn as separate curves, and features as bars (the rest would be unreadable)
MOST_CURVES = 10
MOST_BARS = 20
#: figure size in inches and resolution: about 600 x 450 pixels, 20-40 kB a plot
SIZE, DPI = (6.0, 4.5), 100


def selected(setting) -> tuple[str, ...]:
    """The names a ``plots`` setting chooses (``coupler.schema`` checked its shape)."""
    if setting is None or setting == "none":
        return ()
    if setting == "all":
        return PLOTS
    return tuple(dict.fromkeys(setting))


@dataclass
class Evidence:
    """What a run measured, in its encoded form: the plots' only input."""

    task: str
    classes: list = field(default_factory=list)
    #: the split the predictions are of (``test``, or ``val`` when the test rows were not measured)
    split: str = "test"
    y: Any = None
    prediction: Any = None
    #: one column per class, or None for a model without probabilities
    proba: Any = None
    history: list[dict] = field(default_factory=list)
    importances: dict[str, float] | None = None


def applies(name: str, evidence: Evidence) -> bool:
    """Whether plot ``name`` can be drawn from ``evidence``."""
    classification = evidence.task in ("binary", "multiclass")
    measured = evidence.y is not None and evidence.prediction is not None and len(evidence.y) > 0
    if name == "confusion_matrix":
        return classification and measured
    if name in ("roc", "precision_recall", "calibration"):
        return classification and measured and evidence.proba is not None
    if name in ("residuals", "predicted_vs_actual"):
        return evidence.task == "regression" and measured
    if name == "learning_curves":
        return any(len(_curves(evidence.history)[group]) for group in ("loss", "other"))
    if name == "feature_importance":
        return bool(evidence.importances)
    return False


def write_plots(run_dir: Path, names, evidence: Evidence) -> list[Path]:
    """Draw each of ``names`` that applies into ``run_dir/plots/NAME.png``; return the paths written. A named plot
    that does not apply is said in one log line."""
    from coupler.run_directory import atomic_write_bytes

    chosen = [name for name in names if applies(name, evidence)]
    skipped = [name for name in names if name not in chosen]
    if skipped and tuple(names) not in (DEFAULT, PLOTS):
        log.info("plot%s %s: not drawn, as %s not apply to this run (a %s task%s)", "s" if len(skipped) > 1 else "",
                 ", ".join(skipped), "they do" if len(skipped) > 1 else "it does", evidence.task,
                 ", no class probabilities" if evidence.proba is None and evidence.task != "regression" else "")
    written = []
    for name in chosen:
        path = Path(run_dir) / DIRECTORY / f"{name}.png"
        atomic_write_bytes(path, render(name, evidence))
        written.append(path)
    return written


def render(name: str, evidence: Evidence) -> bytes:
    """Plot ``name`` as PNG bytes."""
    if name in DRAWN_WITH_PILLOW:
        return DRAWN_WITH_PILLOW[name](evidence)
    figure = _figure()
    DRAW[name](figure, evidence)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _figure():
    """A figure on the Agg canvas, without pyplot (whose import costs as much again, and which keeps figures
    alive in a global registry)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=SIZE, dpi=DPI)  # fixed margins: a layout engine would double a figure's time
    FigureCanvasAgg(figure)
    return figure


def _labels(evidence: Evidence) -> list[str]:
    return [str(c) for c in evidence.classes]


def _on(evidence: Evidence) -> str:
    return f"{len(evidence.y)} {evidence.split} rows"


# --- the plots ---------------------------------------------------------------------------------------------

def _counts(evidence: Evidence):
    import numpy as np

    n = len(evidence.classes)
    counts = np.zeros((n, n), dtype=int)
    np.add.at(counts, (np.asarray(evidence.y, dtype=int), np.asarray(evidence.prediction, dtype=int)), 1)
    return counts


#: the light and dark ends of the confusion matrix's colours (matplotlib's "Blues")
LIGHT, DARK = (247, 251, 255), (8, 48, 107)


def confusion_matrix(evidence: Evidence) -> bytes:
    """Drawn with Pillow, not matplotlib: it is a default plot of every classification run, and Pillow draws it in
    a few hundredths of a second where matplotlib's import alone takes half a second."""
    from PIL import Image, ImageDraw, ImageFont

    counts, labels = _counts(evidence), [_shortened(label, 18) for label in _labels(evidence)]
    n, width, height = len(labels), int(SIZE[0] * DPI), int(SIZE[1] * DPI)
    font, title_font = ImageFont.load_default(size=12), ImageFont.load_default(size=15)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((width / 2, 18), f"Confusion matrix ({_on(evidence)})", fill="black", font=title_font, anchor="mm")
    show_labels = n <= 30
    left = 40 + (max(font.getlength(label) for label in labels) + 8 if show_labels else 0)
    top, bottom = 40, 50 + (12 if show_labels else 0)
    cell = max(1.0, min((width - left - 20) / n, (height - top - bottom) / n))
    x0 = left + (width - left - 20 - cell * n) / 2
    most = max(int(counts.max()), 1)
    for i in range(n):
        for j in range(n):
            share = counts[i, j] / most
            colour = tuple(round(a + (b - a) * share) for a, b in zip(LIGHT, DARK))
            box = (x0 + j * cell, top + i * cell, x0 + (j + 1) * cell, top + (i + 1) * cell)
            draw.rectangle(box, fill=colour, outline=(255, 255, 255))
            if cell >= 22:
                draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), str(counts[i, j]), font=font, anchor="mm",
                          fill="white" if share > 0.5 else "black")
    numbered = False
    if show_labels:
        for k, label in enumerate(labels):
            draw.text((x0 - 6, top + (k + 0.5) * cell), label, fill="black", font=font, anchor="rm")
            if cell >= font.getlength(label) + 4 or cell >= 60:
                draw.text((x0 + (k + 0.5) * cell, top + n * cell + 6), label, fill="black", font=font, anchor="ma")
            elif cell >= 10:
                numbered = True
                draw.text((x0 + (k + 0.5) * cell, top + n * cell + 6), str(k), fill="black", font=font, anchor="ma")
    draw.text((x0 + n * cell / 2, top + n * cell + 30), "predicted (k: the row's k-th class, from 0)" if numbered
              else "predicted", fill="black", font=font, anchor="ma")
    axis = Image.new("RGB", (int(font.getlength("true")) + 4, 16), "white")
    ImageDraw.Draw(axis).text((2, 1), "true", fill="black", font=font)
    image.paste(axis.rotate(90, expand=True), (8, int(top + n * cell / 2 - axis.width / 2)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _shortened(text: str, most: int) -> str:
    return text if len(text) <= most else text[:most - 1] + "\u2026"


def _one_vs_rest(evidence: Evidence):
    """``(label, is_class, score)`` per curve: the positive class of a binary task, each class (up to
    ``MOST_CURVES``) against the rest otherwise."""
    import numpy as np

    y, proba, labels = np.asarray(evidence.y, dtype=int), np.asarray(evidence.proba, dtype=float), _labels(evidence)
    if evidence.task == "binary":
        return [(labels[1], y == 1, proba[:, 1])]
    return [(labels[k], y == k, proba[:, k]) for k in range(min(len(labels), MOST_CURVES)) if (y == k).any()]


def roc(figure, evidence: Evidence) -> None:
    from sklearn.metrics import auc, roc_curve

    axes = figure.add_subplot()
    for label, positive, score in _one_vs_rest(evidence):
        if positive.all():
            continue
        fpr, tpr, _ = roc_curve(positive, score)
        axes.plot(fpr, tpr, label=f"{label} (AUC {auc(fpr, tpr):.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    axes.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02),
             title=f"ROC{' (one vs rest)' if evidence.task == 'multiclass' else ''} ({_on(evidence)})")
    axes.legend(loc="lower right", fontsize="small")


def precision_recall(figure, evidence: Evidence) -> None:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    axes = figure.add_subplot()
    for label, positive, score in _one_vs_rest(evidence):
        precision, recall, _ = precision_recall_curve(positive, score)
        axes.step(recall, precision, where="post",
                  label=f"{label} (AP {average_precision_score(positive, score):.3f})")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
             title=f"Precision-recall{' (one vs rest)' if evidence.task == 'multiclass' else ''} ({_on(evidence)})")
    axes.legend(loc="lower left", fontsize="small")


def calibration(figure, evidence: Evidence, bins: int = 10) -> None:
    """The observed frequency of the class against the predicted probability, in equal-width bins (a bin
    without rows is not drawn)."""
    import numpy as np

    axes = figure.add_subplot()
    edges = np.linspace(0, 1, bins + 1)
    for label, positive, score in _one_vs_rest(evidence):
        which = np.clip(np.digitize(score, edges[1:-1]), 0, bins - 1)
        counts = np.bincount(which, minlength=bins)
        filled = counts > 0
        mean_score = np.bincount(which, weights=score, minlength=bins)[filled] / counts[filled]
        frequency = np.bincount(which, weights=positive.astype(float), minlength=bins)[filled] / counts[filled]
        axes.plot(mean_score, frequency, marker="o", label=label)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    axes.set(xlabel="predicted probability", ylabel="observed frequency", xlim=(0, 1), ylim=(-0.02, 1.02),
             title=f"Calibration ({_on(evidence)})")
    axes.legend(loc="upper left", fontsize="small")


def residuals(evidence: Evidence) -> bytes:
    """Drawn with Pillow, as the confusion matrix (a default of every regression run)."""
    import numpy as np

    predicted = np.asarray(evidence.prediction, dtype=float).ravel()
    residual = np.asarray(evidence.y, dtype=float).ravel() - predicted
    return _scatter(predicted, residual, f"Residuals ({_on(evidence)})", "predicted", "actual - predicted")


def _ticks(low: float, high: float, most: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) from ``low`` to ``high``."""
    import math

    span = (high - low) or abs(high) or 1.0
    raw = span / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    return [first + k * step for k in range(int((high - first) / step + 1e-9) + 1)]


def _scatter(x, y, title: str, x_label: str, y_label: str) -> bytes:
    """A scatter plot with a dashed line at y = 0, drawn with Pillow."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = int(SIZE[0] * DPI), int(SIZE[1] * DPI)
    font, title_font = ImageFont.load_default(size=12), ImageFont.load_default(size=15)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    x_low, x_high = float(x.min()), float(x.max())
    y_low, y_high = float(min(y.min(), 0.0)), float(max(y.max(), 0.0))
    x_pad, y_pad = (x_high - x_low or 1.0) * 0.05, (y_high - y_low or 1.0) * 0.05
    x_low, x_high, y_low, y_high = x_low - x_pad, x_high + x_pad, y_low - y_pad, y_high + y_pad
    y_ticks, x_ticks = _ticks(y_low, y_high), _ticks(x_low, x_high)
    left = 30 + max(font.getlength(_tick(t)) for t in y_ticks) + 8
    box = (left, 40, width - 20, height - 55)

    def at(px, py):
        return (box[0] + (px - x_low) / (x_high - x_low) * (box[2] - box[0]),
                box[3] - (py - y_low) / (y_high - y_low) * (box[3] - box[1]))

    draw.text((width / 2, 18), title, fill="black", font=title_font, anchor="mm")
    for t in y_ticks:
        _, py = at(x_low, t)
        draw.line((box[0] - 4, py, box[0], py), fill="black")
        draw.text((box[0] - 6, py), _tick(t), fill="black", font=font, anchor="rm")
    for t in x_ticks:
        px, _ = at(t, y_low)
        draw.line((px, box[3], px, box[3] + 4), fill="black")
        draw.text((px, box[3] + 6), _tick(t), fill="black", font=font, anchor="ma")
    zero = at(x_low, 0.0)[1]
    for start in range(int(box[0]), int(box[2]), 8):
        draw.line((start, zero, min(start + 4, box[2]), zero), fill=(128, 128, 128))
    for px, py in zip(*(map(float, v) for v in (x, y))):
        cx, cy = at(px, py)
        draw.ellipse((cx - 2.5, cy - 2.5, cx + 2.5, cy + 2.5), fill=(31, 119, 180))
    draw.rectangle(box, outline="black")
    draw.text(((box[0] + box[2]) / 2, box[3] + 24), x_label, fill="black", font=font, anchor="ma")
    axis = Image.new("RGB", (int(font.getlength(y_label)) + 4, 16), "white")
    ImageDraw.Draw(axis).text((2, 1), y_label, fill="black", font=font)
    image.paste(axis.rotate(90, expand=True), (6, int((box[1] + box[3]) / 2 - axis.width / 2)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _tick(value: float) -> str:
    return f"{value:.6g}" if abs(value) >= 1e-9 else "0"


def predicted_vs_actual(figure, evidence: Evidence) -> None:
    import numpy as np

    predicted = np.asarray(evidence.prediction, dtype=float).ravel()
    actual = np.asarray(evidence.y, dtype=float).ravel()
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    axes = figure.add_subplot()
    axes.scatter(actual, predicted, s=12, alpha=0.7)
    axes.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
    axes.set(xlabel="actual", ylabel="predicted", title=f"Predicted vs actual ({_on(evidence)})")


def _curves(history: list[dict]) -> dict[str, list[str]]:
    """The history's columns to draw, losses apart from the other metrics (``epoch`` and ``seconds`` are not)."""
    columns = list(dict.fromkeys(key for row in history for key in row if key not in ("epoch", "seconds")))
    return {"loss": [c for c in columns if "loss" in c], "other": [c for c in columns if "loss" not in c]}


def learning_curves(figure, evidence: Evidence) -> None:
    curves = _curves(evidence.history)
    groups = [group for group in ("loss", "other") if curves[group]]
    for position, group in enumerate(groups, start=1):
        axes = figure.add_subplot(1, len(groups), position)
        for column in curves[group]:
            points = [(row["epoch"], row[column]) for row in evidence.history if row.get(column) is not None]
            axes.plot([p[0] for p in points], [p[1] for p in points], marker="o" if len(points) < 30 else None,
                      markersize=3, label=column)
        axes.set(xlabel="epoch", ylabel="loss" if group == "loss" else "metric")
        axes.legend(fontsize="small")
    figure.suptitle("Learning curves")
    figure.subplots_adjust(wspace=0.3)


def feature_importance(figure, evidence: Evidence) -> None:
    ranked = sorted(evidence.importances.items(), key=lambda item: abs(item[1]), reverse=True)[:MOST_BARS][::-1]
    longest = max(len(str(name)) for name, _ in ranked)
    figure.subplots_adjust(left=min(0.5, 0.06 + longest * 0.0095))  # the names fit (small font, ~5.5 px a letter)
    axes = figure.add_subplot()
    axes.barh([str(name) for name, _ in ranked], [value for _, value in ranked])
    axes.tick_params(axis="y", labelsize="small")
    shown = f"top {MOST_BARS} of {len(evidence.importances)}" if len(evidence.importances) > MOST_BARS else "all"
    axes.set(xlabel="importance", title=f"Feature importance ({shown})")


#: the plots Pillow draws (each returns PNG bytes); matplotlib draws the others into a figure
DRAWN_WITH_PILLOW = {"confusion_matrix": confusion_matrix, "residuals": residuals}
DRAW = {name: globals()[name] for name in PLOTS if name not in DRAWN_WITH_PILLOW}


# --- from a run in progress ----------------------------------------------------------------------------------

def draw_run(run, setting, splits: dict, measured: dict) -> list[Path]:
    """The plots ``setting`` chooses for the run in progress (``coupler.training``, after its files are saved and
    before the seal): from the evaluation's ``measured`` splits (the test split's, else the validation's), the
    run's history and its ``feature_importances.csv``. A plot that fails is a warning, not a lost run."""
    names = selected(setting)
    if not names:
        return []
    split = next((name for name in ("test", "val") if name in measured and len(splits[name])), None)
    evidence = Evidence(task=run.task, classes=list(run.classes), split=split or "test",
                        y=splits[split].y if split else None,
                        prediction=measured[split].prediction if split else None,
                        proba=measured[split].proba if split else None,
                        history=list(run.history), importances=read_importances(run.directory))
    try:
        return write_plots(run.directory, names, evidence)
    except ImportError as exc:
        log.warning("no plots: %s (matplotlib is a dependency of coupler: pip install matplotlib; or plots=none)", exc)
    except Exception as exc:  # a plot is a view of the run, which is saved: the run is kept without it
        log.warning("plots: %s: %s; the run is kept without them (plots=none turns them off)",
                    type(exc).__name__, exc)
    return []


def read_importances(run_dir: Path) -> dict[str, float] | None:
    """``feature_importances.csv`` (written by the run when its model gives them) as ``{feature: importance}``."""
    import csv

    path = Path(run_dir) / "feature_importances.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    try:
        return {row["feature"]: float(row["importance"]) for row in rows}
    except (KeyError, TypeError, ValueError):
        return None
