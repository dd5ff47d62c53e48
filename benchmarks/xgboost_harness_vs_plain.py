"""Benchmark: XGBoost through ``coupler train`` against a plain pandas + XGBoost script doing the same work.

Both read the same generated CSV (default 200,000 rows x 50 features, binary target), split it 70/20/10,
train XGBoost (hist, max_depth 6, eta 0.1, seed 0; 500 rounds, ``model=xgboost``'s default) watching the
validation split each round, and measure accuracy, ROC AUC and log loss on the validation and test splits.
Each run is its own process; wall time, peak resident memory and CPU time (``os.wait4``) are taken per
process, the two alternate (and which goes first alternates too), and the median and the minimum of
``--repeats`` runs are reported with the ratios harness / plain, and the median of the ratios within each
pair. On a shared machine whose speed drifts by 20% from run to run, the minimum (what ``timeit`` reports)
is the steadier estimate of the work each side does; the median says what a user waits.

The harness's own cost is mostly fixed (importing Hydra, composing the config, writing the run's records:
about 1 s here), so the time ratio grows on a shorter job: ``--rounds 200`` shows it.

Targets: time <= 1.10x, peak memory <= 1.25x.

    .venv/bin/python benchmarks/xgboost_harness_vs_plain.py [--rows 200000] [--features 50] [--rounds 500]
        [--repeats 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from processes import measure  # benchmarks/processes.py: this directory is on sys.path when a script runs

PARAMS = {"max_depth": 6, "eta": 0.1, "tree_method": "hist", "seed": 0}

PLAIN = r'''
import sys
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

path, rounds = sys.argv[1], int(sys.argv[2])
params = {"objective": "binary:logistic", **PARAMS}
frame = pd.read_csv(path)
X, y = frame.drop(columns="target"), frame["target"].to_numpy()
order = np.random.default_rng(0).permutation(len(frame))
n_test, n_val = len(frame) // 10, len(frame) // 5
test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
dtrain = xgb.DMatrix(X.iloc[train], label=y[train])
dval = xgb.DMatrix(X.iloc[val], label=y[val])
booster = xgb.train(params, dtrain, num_boost_round=rounds, evals=[(dval, "val")], verbose_eval=False)
for name, rows, d in (("val", val, dval), ("test", test, xgb.DMatrix(X.iloc[test]))):
    p = booster.predict(d)
    print(name, accuracy_score(y[rows], p > 0.5), roc_auc_score(y[rows], p), log_loss(y[rows], p))
'''.replace("PARAMS", repr(PARAMS))


def generate(path: Path, rows: int, features: int) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=rows, n_features=features, n_informative=features // 2,
                               n_redundant=features // 5, flip_y=0.05, random_state=0)
    frame = pd.DataFrame(X.astype(np.float32), columns=[f"f{i}" for i in range(features)])
    frame["target"] = y
    frame.to_csv(path, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=500, help="boosting rounds (500: model=xgboost's default)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="coupler-bench-"))
    data = work / "table.csv"
    generate(data, args.rows, args.features)
    print(f"table: {data} ({args.rows} rows x {args.features} features, {data.stat().st_size / 2**20:.0f} MiB); "
          f"{args.rounds} rounds")
    (work / "plain.py").write_text(PLAIN)
    coupler = [sys.executable, "-m", "coupler.cli", "train", "data=csv", f"data.path={data}", "data.target=target",
               "model=xgboost", f"model.num_boost_round={args.rounds}", "metrics=[accuracy,roc_auc,log_loss]",
               *(f"model.params.{k}={v}" for k, v in PARAMS.items() if k != "seed"), "seed=0"]
    runs = {"harness": [], "plain": []}
    for i in range(args.repeats):
        commands = {"plain": [sys.executable, str(work / "plain.py"), str(data), str(args.rounds)],
                    "harness": [*coupler, f"hydra.run.dir={work / f'run{i}'}"]}
        # who goes first alternates: a machine that slows down over a pair must not always slow the same side
        for name in (("plain", "harness") if i % 2 == 0 else ("harness", "plain")):
            runs[name].append(measure(commands[name], work))
    for label, pick in (("median", statistics.median), ("minimum", min)):
        summary = {k: [pick(run[i] for run in v) for i in range(3)] for k, v in runs.items()}
        print(f"{label + ' of ' + str(args.repeats):14} {'wall s':>8} {'peak MiB':>9} {'CPU s':>8}")
        for name, (wall, peak, cpu) in summary.items():
            print(f"{name:14} {wall:8.2f} {peak:9.0f} {cpu:8.2f}")
        ratios = [summary["harness"][i] / summary["plain"][i] for i in range(3)]
        print(f"{'ratio':14} {ratios[0]:7.3f}x {ratios[1]:8.3f}x {ratios[2]:7.3f}x   "
              f"targets: time <= 1.10x, memory <= 1.25x")
    pairs = sorted(h[0] / p[0] for h, p in zip(runs["harness"], runs["plain"]))
    print(f"wall ratio of each pair (run one after the other): {', '.join(f'{r:.3f}' for r in pairs)}; "
          f"median {statistics.median(pairs):.3f}x")
    print("all runs (wall s, peak MiB, CPU s):",
          {k: [(round(w, 2), round(m), round(c, 2)) for w, m, c in v] for k, v in runs.items()})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
