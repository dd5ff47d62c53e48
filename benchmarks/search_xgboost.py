"""30 trials of XGBoost on breast_cancer: ``coupler train -m search=xgboost`` against a plain Optuna script with the
same space (``coupler_xgboost/conf/search/xgboost.yaml``), sampler (TPE, seed 0), pruner (median), split (the same
seeded train / val / test rows, through ``coupler.splitting``) and trial budget.

Prints both wall times, their ratio (target <= 1.15x) and both best validation accuracies (the same metric on the
same validation rows; TPE's draws differ between the two, so the best values agree within noise, not exactly).
The plain script reports each round's validation logloss to its trial, as the search does through
``on_epoch_end``, so that both prune alike. Not part of the suite::

    .venv/bin/python benchmarks/search_xgboost.py [--trials 30] [--rounds 500]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SPACE_FILE = Path(__file__).parents[1] / "plugins/xgboost/src/coupler_xgboost/conf/search/xgboost.yaml"


def plain(trials: int, rounds: int) -> tuple[float, float]:
    """The plain script's time includes its imports, as the harness's includes its process's start."""
    start = time.perf_counter()
    import numpy as np
    import optuna
    import pandas as pd
    import xgboost as xgb
    from sklearn.datasets import load_breast_cancer

    from coupler.splitting import split_rows

    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target.to_numpy()
    indices = split_rows(y, "binary", {"val": 0.2, "test": 0.1, "stratify": True}, 0, [0, 1])
    train = xgb.DMatrix(X.iloc[indices.train], label=y[indices.train])
    val = xgb.DMatrix(X.iloc[indices.val], label=y[indices.val])
    space = yaml.safe_load(SPACE_FILE.read_text())["space"]

    def objective(trial):
        params = {"objective": "binary:logistic", "eval_metric": "logloss", "seed": 0, "tree_method": "hist",
                  "max_depth": 6, "eta": 0.1}
        for key, spec in space.items():
            if not isinstance(spec, dict):
                continue
            name = key.rsplit(".", 1)[1]
            if isinstance(spec["low"], int) and isinstance(spec["high"], int):
                params[name] = trial.suggest_int(key, spec["low"], spec["high"])
            else:
                params[name] = trial.suggest_float(key, spec["low"], spec["high"], log=spec.get("log", False))

        class Report(xgb.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log):
                trial.report(-evals_log["val"]["logloss"][-1], epoch)
                return trial.should_prune()

        booster = xgb.train(params, train, rounds, evals=[(val, "val")], verbose_eval=False, callbacks=[Report()])
        if trial.should_prune():
            raise optuna.TrialPruned()
        predicted = (booster.predict(val) > 0.5).astype(int)
        return float(np.mean(predicted == y[indices.val]))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as directory:
        from optuna.storages.journal import JournalFileBackend

        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0),
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
                                    storage=optuna.storages.JournalStorage(JournalFileBackend(f"{directory}/j")))
        study.optimize(objective, n_trials=trials)
        best = study.best_value
    del pd
    return time.perf_counter() - start, best


def harness(trials: int, rounds: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        proc = subprocess.run([Path(sys.executable).parent / "coupler", "train", "-m", "search=xgboost", "model=xgboost",
                               "data=breast_cancer", f"search.n_trials={trials}", f"model.num_boost_round={rounds}",
                               "hydra.sweep.dir=sweep"], cwd=directory, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    best = float(re.search(r"validation accuracy=([0-9.]+)", proc.stdout).group(1))
    return elapsed, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    harness_s, harness_best = harness(args.trials, args.rounds)  # first: the plain run's imports stay out of it
    plain_s, plain_best = plain(args.trials, args.rounds)
    print(f"coupler train -m search=xgboost: {harness_s:.1f} s, best validation accuracy {harness_best:.4f}")
    print(f"plain Optuna + XGBoost script:   {plain_s:.1f} s, best validation accuracy {plain_best:.4f}")
    print(f"wall ratio: {harness_s / plain_s:.2f}x (target <= 1.15x)")


if __name__ == "__main__":
    main()
