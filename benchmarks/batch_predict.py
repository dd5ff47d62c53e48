"""Benchmark: ``coupler predict`` on a 200,000 x 20 table against a plain pyarrow script and a plain pandas script.

One XGBoost run (100 rounds, binary target) is trained through ``coupler train`` on a generated 200,000 x 20 CSV
(``make_classification``, float32 values). Then each side predicts every row of the same 200,000 x 20 input
(the features, without the target) and writes the input's columns, ``prediction`` and ``proba_0``/``proba_1``,
as CSV (input CSV) and as Parquet (input Parquet):

- ``coupler``: ``coupler predict RUN INPUT OUTPUT`` (the whole process: imports, the run's checks, the batches);
- ``pyarrow``: a plain script that reads with ``pyarrow.csv`` / ``pyarrow.parquet``, predicts the run's own
  ``model/model.ubj`` with ``xgboost.Booster.predict`` on a ``DMatrix``, and writes with pyarrow;
- ``pandas``: the same with ``pandas.read_csv`` / ``read_parquet`` and ``to_csv`` / ``to_parquet``.

Each is its own process; wall time and peak resident memory (``os.wait4``) per process, the sides alternating
(and which goes first rotating), the median and the minimum of ``--repeats`` reported with the ratios
coupler / pyarrow and coupler / pandas. Then the peak memory of ``coupler predict`` and of the pyarrow script on
a ``--large``-row CSV (default 2,000,000 rows, the input repeated) shows that predict's memory is bounded by its
batches (``--batch-rows``), not by the file.

Target: coupler <= 1.2x the pyarrow script's wall time (imports counted), for CSV and Parquet.

    .venv/bin/python benchmarks/batch_predict.py [--rows 200000] [--features 20] [--rounds 100] [--repeats 5]
        [--large 2000000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from processes import measure  # benchmarks/processes.py: this directory is on sys.path when a script runs

PYARROW = r'''
import sys
import numpy as np
import pyarrow as pa
import xgboost as xgb

run, source, target = sys.argv[1:4]
if source.endswith(".parquet"):
    import pyarrow.parquet as pq
    table = pq.read_table(source)
else:
    import pyarrow.csv as pacsv
    table = pacsv.read_csv(source)
X = np.column_stack([table.column(i).to_numpy().astype(np.float32, copy=False) for i in range(table.num_columns)])
booster = xgb.Booster()
booster.load_model(run + "/model/model.ubj")
p = booster.predict(xgb.DMatrix(X, feature_names=table.column_names))
table = table.append_column("prediction", pa.array((p > 0.5).astype(np.int64)))
table = table.append_column("proba_0", pa.array(1 - p.astype(np.float64)))
table = table.append_column("proba_1", pa.array(p.astype(np.float64)))
if target.endswith(".parquet"):
    pq.write_table(table, target)
else:
    pacsv.write_csv(table, target)
'''

PANDAS = r'''
import sys
import numpy as np
import pandas as pd
import xgboost as xgb

run, source, target = sys.argv[1:4]
frame = pd.read_parquet(source) if source.endswith(".parquet") else pd.read_csv(source)
booster = xgb.Booster()
booster.load_model(run + "/model/model.ubj")
p = booster.predict(xgb.DMatrix(frame))
frame["prediction"] = (p > 0.5).astype(np.int64)
frame["proba_0"] = 1 - p.astype(np.float64)
frame["proba_1"] = p.astype(np.float64)
if target.endswith(".parquet"):
    frame.to_parquet(target, index=False)
else:
    frame.to_csv(target, index=False)
'''


def generate(work: Path, rows: int, features: int) -> None:
    """``table.csv`` (features and target, to train on), ``input.csv`` / ``input.parquet`` (the features)."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=rows, n_features=features, n_informative=features // 2,
                               n_redundant=features // 5, flip_y=0.05, random_state=0)
    frame = pd.DataFrame(X.astype(np.float32), columns=[f"f{i}" for i in range(features)])
    frame.to_csv(work / "input.csv", index=False)
    frame.to_parquet(work / "input.parquet", index=False)
    frame["target"] = y
    frame.to_csv(work / "table.csv", index=False)


def repeated(source: Path, target: Path, rows: int) -> None:
    """``target``: the rows of ``source`` (a CSV) repeated up to ``rows``, written a copy at a time."""
    lines = source.read_bytes().split(b"\n", 1)
    with open(target, "wb") as handle:
        handle.write(lines[0] + b"\n")
        body = lines[1]
        per_copy = body.count(b"\n")
        for _ in range(-(-rows // per_copy)):
            handle.write(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--large", type=int, default=2_000_000, help="rows of the file whose peak memory is shown "
                                                                      "(0: skip it)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="coupler-bench-"))
    try:
        generate(work, args.rows, args.features)
        (work / "plain_pyarrow.py").write_text(PYARROW)
        (work / "plain_pandas.py").write_text(PANDAS)
        coupler = [sys.executable, "-m", "coupler.cli"]
        trained = subprocess.run([*coupler, "train", "data=csv", f"data.path={work / 'table.csv'}",
                                  "data.target=target", "model=xgboost", f"model.num_boost_round={args.rounds}",
                                  "seed=0", f"hydra.run.dir={work / 'run'}"], cwd=work, capture_output=True, text=True)
        if trained.returncode:
            sys.exit(f"coupler train failed:\n{trained.stderr}")
        run = str(work / "run")
        print(f"input: {args.rows} rows x {args.features} features "
              f"({(work / 'input.csv').stat().st_size / 2**20:.0f} MiB CSV); XGBoost, {args.rounds} rounds")
        for kind in ("csv", "parquet"):
            source, output = str(work / f"input.{kind}"), str(work / f"out.{kind}")
            commands = {"coupler": [*coupler, "predict", "--overwrite", run, source, output],
                        "pyarrow": [sys.executable, str(work / "plain_pyarrow.py"), run, source, output],
                        "pandas": [sys.executable, str(work / "plain_pandas.py"), run, source, output]}
            names = list(commands)
            runs: dict[str, list] = {name: [] for name in names}
            for i in range(args.repeats):
                for name in names[i % 3:] + names[:i % 3]:  # who goes first rotates
                    Path(output).unlink(missing_ok=True)
                    runs[name].append(measure(commands[name], work))
            print(f"\n{kind}: {'wall s (median / min)':>24} {'CPU s (median)':>15} {'peak MiB':>9}")
            medians = {n: statistics.median(w for w, _, _ in v) for n, v in runs.items()}
            minima = {n: min(w for w, _, _ in v) for n, v in runs.items()}
            cpu = {n: statistics.median(c for _, _, c in v) for n, v in runs.items()}
            for name in names:
                print(f"  {name:8} {medians[name]:11.2f} / {minima[name]:5.2f} {cpu[name]:15.2f} "
                      f"{max(m for _, m, _ in runs[name]):9.0f}")
            for other in ("pyarrow", "pandas"):
                print(f"  coupler / {other}: wall {medians['coupler'] / medians[other]:.3f}x (median), "
                      f"{minima['coupler'] / minima[other]:.3f}x (min); CPU {cpu['coupler'] / cpu[other]:.3f}x"
                      f"{'   target: wall <= 1.2x' if other == 'pyarrow' else ''}")
            print("  all runs (wall s):", {n: [round(w, 2) for w, _, _ in v] for n, v in runs.items()})
        if args.large:
            large = work / "large.csv"
            repeated(work / "input.csv", large, args.large)
            print(f"\npeak memory, {args.rows} rows against {large.stat().st_size / 2**20:.0f} MiB "
                  f"(~{args.large} rows) of CSV:")
            for name, script in (("coupler", None), ("pyarrow", work / "plain_pyarrow.py")):
                peaks = []
                for source in (work / "input.csv", large):
                    Path(work / "out.csv").unlink(missing_ok=True)
                    command = ([*coupler, "predict", run, str(source), str(work / "out.csv")] if script is None
                               else [sys.executable, str(script), run, str(source), str(work / "out.csv")])
                    peaks.append(measure(command, work))
                print(f"  {name:8} {peaks[0][1]:6.0f} MiB -> {peaks[1][1]:6.0f} MiB   "
                      f"({peaks[0][0]:.2f} s -> {peaks[1][0]:.2f} s wall)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
