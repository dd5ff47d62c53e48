"""The training distribution of a run's features, and how far new rows drift from it (``coupler drift``).

At train time ``record`` writes ``RUN_DIR/feature_distribution.json`` (sealed with the run's other files): for
each numeric feature its count, missing count, min, max, percentiles 0..100 and the fraction of training rows in
each decile bin; for each categorical feature the frequency of each category. Only tabular runs (input format
``matrix`` or ``frame``) have one: text, token and file runs have no per-column distribution to compare.

``compare`` measures new rows against it, per feature:

* the population stability index (PSI) over the training decile bins (numeric; the first and last bins open-ended)
  or over the categories (plus one bin for unseen ones). The customary reading: below 0.1 no
  shift, 0.1 to 0.2 a moderate one, above 0.2 a shift to act on -- hence ``--psi-threshold 0.2``;
* a Kolmogorov-Smirnov test (numeric) against the training distribution, its CDF interpolated from the recorded
  percentiles; a chi-square test (categorical) against the training frequencies;
* out-of-range values (numeric: below the training min or above its max) and unseen categories.

"Far outside training" (``far_outside``; ``coupler predict`` and ``coupler serve`` warn about it) is stricter
than out of range: a number more than ``FAR_MARGIN`` times the training range (max - min) below the min or
above the max, or a category never seen in training. ``bill_length_mm=9999`` on penguins (training range about
32 to 60) is far; 61 is out of range but not far.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from coupler.errors import CouplerError, DataError

log = logging.getLogger("coupler")

DISTRIBUTION_FILE = "feature_distribution.json"
#: a number this many training ranges (max - min) beyond the training min or max is "far outside training"
FAR_MARGIN = 0.5
#: the customary PSI threshold past which a shift is worth acting on
PSI_THRESHOLD = 0.2
#: the smallest fraction a PSI bin counts with (an empty bin would make the index infinite)
PSI_FLOOR = 1e-4
PERCENTILES = list(range(101))
#: the percentiles and bin fractions are measured on at most this many training rows
SAMPLE = 10_000


# --- recording at train time ---------------------------------------------------------------------------------

def profile(X, categorical: list[str]) -> dict:
    """The distribution of each column of ``X`` (the training rows), as plain JSON. Counts, min and max come
    from every row; the percentiles and decile-bin fractions from a sample of up to ``SAMPLE`` rows (a fixed
    seed): plenty for a percentile, and a 200,000-row run records it in milliseconds, not seconds."""
    import numpy as np
    import pandas as pd

    from coupler.preprocessing import category_text

    features = {}
    sample = np.sort(np.random.default_rng(0).choice(len(X), SAMPLE, replace=False)) if len(X) > SAMPLE else None
    for column in X.columns:
        values = X[column]
        if column in categorical:
            counts = category_text(values).dropna().value_counts()
            features[column] = {"kind": "categorical", "count": int(values.notna().sum()),
                                "missing": int(values.isna().sum()),
                                "frequencies": {str(k): float(v) / max(int(counts.sum()), 1) for k, v in counts.items()}}
            continue
        numbers = values if pd.api.types.is_float_dtype(values) else pd.to_numeric(values, errors="coerce")
        numbers = numbers.to_numpy(dtype=float, na_value=np.nan)
        finite = np.isfinite(numbers)
        count = int(finite.sum())
        if not count:
            continue
        sampled = numbers if sample is None else numbers[sample]
        sampled = sampled[np.isfinite(sampled)]
        kept = numbers if count == len(numbers) else numbers[finite]  # no copy in the common case
        low, high = float(kept.min()), float(kept.max())
        percentiles = np.percentile(sampled, PERCENTILES) if len(sampled) else np.array([low, high])
        percentiles[0], percentiles[-1] = low, high
        edges = _bin_edges(percentiles)
        features[column] = {"kind": "numeric", "count": count, "missing": int(len(values) - count), "min": low,
                            "max": high, "percentiles": [_short(p) for p in percentiles], "bin_edges": edges,
                            "bin_fractions": _bin_fractions(sampled, edges)}
    return {"format": 1, "rows": int(len(X)), "far_margin": FAR_MARGIN, "features": features}


def record(run_dir: Path, X, categorical: list[str], input_format: str) -> None:
    """Write the training rows' distribution into the run (before it is sealed); tabular runs only."""
    if input_format not in ("matrix", "frame"):
        return
    from coupler.run_directory import write_json

    write_json(Path(run_dir) / DISTRIBUTION_FILE, profile(X, categorical))


def read(run_dir: Path) -> dict | None:
    """The run's recorded distribution; None for a run without one (trained before Coupler recorded it, or not
    tabular)."""
    path = Path(run_dir) / DISTRIBUTION_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _short(value) -> float:
    """A percentile with 10 significant digits: enough for the CDF, and a readable file."""
    return float(f"{float(value):.10g}")


def _bin_edges(percentiles) -> list[float]:
    """The inner edges of the decile bins (distinct values: a column with few values has fewer bins)."""
    import numpy as np

    return [float(e) for e in np.unique(np.asarray(percentiles)[10:100:10])]


def _bin_fractions(numbers, edges: list[float]) -> list[float]:
    """The fraction of ``numbers`` in each bin: below the first edge, between edges, at or above the last."""
    import numpy as np

    counts = np.bincount(np.searchsorted(edges, numbers, side="right"), minlength=len(edges) + 1)
    return [float(c) / max(len(numbers), 1) for c in counts]


# --- far outside training (predict and serve) --------------------------------------------------------------

class FarOutside:
    """The rule of "far outside training" (module docstring) for one recorded distribution, its bounds computed
    once: calling it on a frame gives, per feature, how many values lie far outside; features with none are left
    out. One pass over the numeric columns together, one ``isin`` per categorical column (``coupler serve`` calls
    it on every request)."""

    def __init__(self, distribution: dict | None):
        import numpy as np

        features = (distribution or {}).get("features", {})
        margin = (distribution or {}).get("far_margin", FAR_MARGIN)
        self.margin = margin
        self.numeric = [c for c, spec in features.items() if spec["kind"] == "numeric"]
        widths = np.array([features[c]["max"] - features[c]["min"] for c in self.numeric])
        self.low = np.array([features[c]["min"] for c in self.numeric]) - margin * widths
        self.high = np.array([features[c]["max"] for c in self.numeric]) + margin * widths
        self.categories = {c: list(spec["frequencies"]) for c, spec in features.items() if spec["kind"] == "categorical"}
        self._known: dict[str, frozenset] = {}

    def __call__(self, frame) -> dict[str, int]:
        import numpy as np
        import pandas as pd

        from coupler.preprocessing import category_text

        found = {}
        present = [i for i, c in enumerate(self.numeric) if c in frame.columns]
        if present:
            columns = [self.numeric[i] for i in present]
            block = frame[columns]
            try:
                values = block.to_numpy(dtype=float, na_value=np.nan)
            except (TypeError, ValueError):  # text in a numeric column (coupler predict --impute): not a number
                values = np.column_stack([pd.to_numeric(block[c], errors="coerce").to_numpy(dtype=float) for c in columns])
            with np.errstate(invalid="ignore"):
                counts = ((values < self.low[present]) | (values > self.high[present])).sum(axis=0)
            found.update({c: int(n) for c, n in zip(columns, counts) if n})
        for column, categories in self.categories.items():
            if column in frame.columns:
                values = frame[column]
                known = values.isin(categories) if values.dtype == object else category_text(values, categories).isin(categories)
                count = int((~known & values.notna()).sum())
                if count:
                    found[column] = count
        return dict(sorted(found.items(), key=lambda item: list(frame.columns).index(item[0])))


    def records(self, records: list[dict]) -> dict[str, int]:
        """The same counts for records (``coupler serve``'s validated ones: numbers or None, strings or None), in
        plain Python: for a request of a few rows, cheaper than building columns for ``__call__``."""
        found = {}
        for column, low, high in zip(self.numeric, self.low.tolist(), self.high.tolist()):
            count = sum(1 for record in records if (value := record.get(column)) is not None and not low <= value <= high
                        and value == value)  # NaN is missing, not far
            if count:
                found[column] = count
        for column, categories in self.categories.items():
            known = self._known.get(column) or self._known.setdefault(column, frozenset(categories))
            count = sum(1 for record in records if (value := record.get(column)) is not None and str(value) not in known)
            if count:
                found[column] = count
        return found


def far_outside(frame, distribution: dict | None) -> dict[str, int]:
    """Per feature, how many values of ``frame`` lie far outside training (``FarOutside``)."""
    return FarOutside(distribution)(frame) if distribution else {}


def log_far_outside(found: dict[str, int], distribution: dict | None) -> None:
    """One warning naming the features with values far outside training, and their counts."""
    if found:
        listing = ", ".join(f"{column} ({count} row{'s' if count > 1 else ''})" for column, count in found.items())
        log.warning("values far outside the training data (unseen categories, or numbers beyond the training range by "
                    "more than %g times its width) in: %s; the predictions for those rows are extrapolations",
                    (distribution or {}).get("far_margin", FAR_MARGIN), listing)


def warn_far_outside(frame, distribution: dict | None) -> dict[str, int]:
    """Log one warning naming the features with values far outside training (and their counts); return them."""
    found = far_outside(frame, distribution)
    log_far_outside(found, distribution)
    return found


# --- comparing new rows (coupler drift) ----------------------------------------------------------------------

def compare(frame, distribution: dict) -> list[dict]:
    """A row per recorded feature: its PSI, test, p-value, out-of-range (or unseen) count and rows."""
    missing = [c for c in distribution["features"] if c not in frame.columns]
    if missing:
        raise DataError(f"the new data lack the training columns {missing}; its columns are "
                        f"{list(frame.columns)[:10]}.")
    return [(_compare_categorical if spec["kind"] == "categorical" else _compare_numeric)(column, frame[column], spec)
            for column, spec in distribution["features"].items()]


def _compare_numeric(column: str, values, spec: dict) -> dict:
    import numpy as np
    import pandas as pd
    from scipy import stats

    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    numbers = numbers[np.isfinite(numbers)]
    row = {"feature": column, "kind": "numeric", "rows": int(len(numbers)), "test": "ks"}
    if not len(numbers):
        return {**row, "psi": None, "statistic": None, "p_value": None, "outside": 0}
    edges = spec["bin_edges"]
    actual = _bin_fractions(numbers, edges)  # the end bins are open: values out of range count as "outside"
    percentiles = np.asarray(spec["percentiles"])
    outside = int(((numbers < spec["min"]) | (numbers > spec["max"])).sum())
    if len(np.unique(percentiles)) < len(percentiles) / 2:
        # a few distinct values (counts, codes): KS assumes a continuous distribution and rejects a sample of the
        # training distribution itself; chi-square over the bins instead
        expected = np.maximum(np.asarray(spec["bin_fractions"], dtype=float), PSI_FLOOR)
        observed = np.asarray(actual, dtype=float) * len(numbers)
        test = stats.chisquare(observed, expected / expected.sum() * observed.sum())
        row["test"] = "chi2"
    else:
        levels = np.asarray(PERCENTILES) / 100.0
        cdf = lambda x: np.interp(x, percentiles, levels, left=0.0, right=1.0)  # noqa: E731
        test = stats.kstest(numbers, cdf)
    return {**row, "psi": psi(spec["bin_fractions"], actual), "statistic": float(test.statistic), "p_value": float(test.pvalue),
            "outside": outside}


def _compare_categorical(column: str, values, spec: dict) -> dict:
    import numpy as np
    from scipy import stats

    from coupler.preprocessing import category_text

    categories = list(spec["frequencies"])
    present = category_text(values, categories).dropna()
    row = {"feature": column, "kind": "categorical", "rows": int(len(present)), "test": "chi2"}
    if not len(present):
        return {**row, "psi": None, "statistic": None, "p_value": None, "outside": 0}
    counts = present.value_counts()
    observed = np.array([counts.get(c, 0) for c in categories] + [int((~present.isin(categories)).sum())], dtype=float)
    expected = np.array([spec["frequencies"][c] for c in categories] + [0.0])
    smoothed = np.maximum(expected, PSI_FLOOR)
    test = stats.chisquare(observed, smoothed / smoothed.sum() * observed.sum())
    return {**row, "psi": psi(expected, observed / observed.sum()), "statistic": float(test.statistic),
            "p_value": float(test.pvalue), "outside": int(observed[-1])}


def psi(expected, actual) -> float:
    """The population stability index: sum over bins of (actual - expected) * ln(actual / expected), each
    fraction floored at ``PSI_FLOOR``."""
    total = 0.0
    for e, a in zip(expected, actual):
        e, a = max(float(e), PSI_FLOOR), max(float(a), PSI_FLOOR)
        total += (a - e) * math.log(a / e)
    return round(total, 6)


def report_table(rows: list[dict], threshold: float) -> str:
    """The drift report as a text table, a line per feature, flagged past ``threshold``."""
    def number(value, digits=4):
        return "-" if value is None else f"{value:.{digits}g}"

    lines = [f"{'feature':<24} {'kind':<12} {'rows':>6} {'PSI':>8} {'test':>5} {'statistic':>10} {'p-value':>10} "
             f"{'outside':>8}  drift"]
    for row in rows:
        flagged = "DRIFT" if row["psi"] is not None and row["psi"] > threshold else ""
        lines.append(f"{row['feature']:<24} {row['kind']:<12} {row['rows']:>6} {number(row['psi']):>8} "
                     f"{row['test']:>5} {number(row['statistic']):>10} {number(row['p_value']):>10} "
                     f"{row['outside']:>8}  {flagged}")
    lines.append("outside: numbers beyond the training min/max, or categories unseen in training. "
                 f"DRIFT: PSI above {threshold:g}.")
    return "\n".join(lines)


def drifted(rows: list[dict], threshold: float) -> list[str]:
    return [row["feature"] for row in rows if row["psi"] is not None and row["psi"] > threshold]


def check_run(run_dir: Path) -> dict:
    """The run's distribution, or an error saying that this run has none and why."""
    distribution = read(run_dir)
    if distribution is None:
        raise CouplerError(f"run {str(run_dir)!r} has no {DISTRIBUTION_FILE} (trained before Coupler recorded the "
                           f"training distribution, or not a tabular run): drift cannot be measured; retrain it.")
    return distribution
