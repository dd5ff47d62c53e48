"""Benchmark: the whole process of the default ``coupler train`` against a plain script doing the same work.

What a user waits for from pressing Enter to the prompt, for the smallest run Coupler has: its default (logistic
regression on iris). The two sides:

- **coupler**: ``coupler train hydra.run.dir=DIR``, the console script installed beside this interpreter, which
  execs ``coupler-train`` (Coupler's Hydra app): plugins loaded, overrides checked, config composed, run trained,
  measured, saved and sealed.
- **plain**: a script written by this benchmark to a temporary file and run with the same interpreter, using the
  same libraries: scikit-learn's ``load_iris(as_frame=True)``, a stratified split with the same fractions (test
  0.1, then val 0.2 of all rows), ``StandardScaler`` fitted on the training rows, ``LogisticRegression(max_iter=1000,
  random_state=0)``, the metrics Coupler reports for the default run on val and test (accuracy, balanced
  accuracy, F1 macro and weighted, one-vs-rest macro ROC AUC, log loss, the confusion matrix), then
  ``metrics.json``, ``predictions_test.csv`` (pandas: row, target, prediction, one probability per class) and
  ``model.skops`` (``skops.io.dump``) written into its directory.

Each run is its own process, started as a user's shell starts it: with Python's bytecode cache. The environment
variable ``PYTHONDONTWRITEBYTECODE`` is removed from the children's environment and each side runs once untimed
first, so that Coupler's and the plugins' modules are compiled once, as ``pip install`` does for an installed
package, and not in every timed run (in an editable checkout under ``PYTHONDONTWRITEBYTECODE=1`` that
compilation is another ~0.1 s per run; ``--as-is`` keeps the environment as it is to measure that). Each run is its
own process; wall time (and CPU time, ``os.wait4``) is taken per process, the two sides alternate
(and which goes first alternates too), and the median and the minimum of ``--repeats`` runs are printed with the
ratio coupler / plain. The part of the ratio that matters is fixed cost: both sides import the same libraries
(pandas, scikit-learn, skops; ``import skops.io`` lists scikit-learn's estimators, which imports torch through
scikit-learn's array-API shim when torch is installed: about 2.5 s, on both sides alike), so what is left is Hydra, the plugin manager, composing the config and writing the
run's records. On a shared machine the minimum is the steadier estimate of the work each side does; the median
says what a user waits.

Target: time <= 1.10x.

    .venv/bin/python benchmarks/startup_train_vs_plain.py [--repeats 7] [--coupler-args "..."] [--as-is]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.10

PLAIN = r'''
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, log_loss,
                             roc_auc_score)
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

out = Path(sys.argv[1])
out.mkdir(parents=True)
iris = load_iris(as_frame=True)
X, y = iris.data, iris.target.to_numpy()
rows = np.arange(len(y))
rest, test = train_test_split(rows, test_size=0.1, stratify=y, random_state=0)
train, val = train_test_split(rest, test_size=0.2 / 0.9, stratify=y[rest], random_state=0)
scaler = StandardScaler().fit(X.iloc[train])
model = LogisticRegression(max_iter=1000, random_state=0).fit(scaler.transform(X.iloc[train]), y[train])
labels = list(range(len(iris.target_names)))
metrics = {}
for name, part in (("val", val), ("test", test)):
    Xs = scaler.transform(X.iloc[part])
    pred, proba, true = model.predict(Xs), model.predict_proba(Xs), y[part]
    metrics[name] = {
        "accuracy": accuracy_score(true, pred),
        "balanced_accuracy": balanced_accuracy_score(true, pred),
        "f1_macro": f1_score(true, pred, average="macro"),
        "f1_weighted": f1_score(true, pred, average="weighted"),
        "roc_auc": roc_auc_score(true, proba, multi_class="ovr", average="macro", labels=labels),
        "log_loss": log_loss(true, proba, labels=labels),
    }
    matrix = confusion_matrix(true, pred, labels=labels)
    if name == "test":
        frame = pd.DataFrame({"target": iris.target_names[true], "prediction": iris.target_names[pred]},
                             index=X.index[part])
        for column, cls in enumerate(iris.target_names):
            frame[f"proba_{cls}"] = proba[:, column]
        frame.to_csv(out / "predictions_test.csv")
(out / "metrics.json").write_text(json.dumps(metrics, indent=2))
skops.io.dump(model, out / "model.skops")
print(json.dumps(metrics))
'''


def measure(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the process and its exec'd successor) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {shlex.join(command)}\n{proc.stderr.read().decode()}")
    return wall, usage.ru_utime + usage.ru_stime


def coupler_script() -> str:
    """The ``coupler`` console script beside this interpreter (a virtual environment's ``bin``), else on PATH."""
    beside = Path(sys.executable).parent / "coupler"
    found = str(beside) if beside.is_file() else shutil.which("coupler")
    if found is None:
        sys.exit("no coupler script beside this interpreter nor on PATH; install coupler first")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--coupler-args", default="", help="more overrides for coupler train (default: none)")
    parser.add_argument("--as-is", action="store_true", help="keep PYTHONDONTWRITEBYTECODE and skip the warm-up run")
    args = parser.parse_args()
    env = dict(os.environ)
    if not args.as_is:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    work = Path(tempfile.mkdtemp(prefix="coupler-bench-"))
    (work / "plain.py").write_text(PLAIN)
    coupler = [coupler_script(), "train", *shlex.split(args.coupler_args)]
    print(f"coupler: {shlex.join(coupler)} hydra.run.dir=...\nplain:   {sys.executable} {work / 'plain.py'} DIR\n"
          f"{'as the environment is (no warm-up)' if args.as_is else 'bytecode cache on, one untimed warm-up run each'}")
    runs: dict[str, list[tuple[float, float]]] = {"coupler": [], "plain": []}
    for i in range(0 if args.as_is else -1, args.repeats):  # run -1: the untimed warm-up
        commands = {"plain": [sys.executable, str(work / "plain.py"), str(work / f"plain{i}")],
                    "coupler": [*coupler, f"hydra.run.dir={work / f'run{i}'}"]}
        # who goes first alternates: a machine that slows down over a pair must not always slow the same side
        for name in (("plain", "coupler") if i % 2 == 0 else ("coupler", "plain")):
            timing = measure(commands[name], work, env)
            if i >= 0:
                runs[name].append(timing)
    for label, pick in (("median", statistics.median), ("minimum", min)):
        summary = {k: [pick(run[i] for run in v) for i in range(2)] for k, v in runs.items()}
        print(f"{label + ' of ' + str(args.repeats):14} {'wall s':>8} {'CPU s':>8}")
        for name, (wall, cpu) in summary.items():
            print(f"{name:14} {wall:8.2f} {cpu:8.2f}")
        ratios = [summary["coupler"][i] / summary["plain"][i] for i in range(2)]
        print(f"{'ratio':14} {ratios[0]:7.3f}x {ratios[1]:7.3f}x   target: wall <= {TARGET:.2f}x")
    pairs = sorted(c[0] / p[0] for c, p in zip(runs["coupler"], runs["plain"]))
    print(f"wall ratio of each pair (run one after the other): {', '.join(f'{r:.3f}' for r in pairs)}; "
          f"median {statistics.median(pairs):.3f}x")
    print("all runs (wall s, CPU s):", {k: [(round(w, 2), round(c, 2)) for w, c in v] for k, v in runs.items()})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
