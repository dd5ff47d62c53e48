"""Pruning on a torch sweep: the same MLP search on breast_cancer (``search=mlp``, TPE seed 0, N trials of at most
E epochs each) with ``search.pruner=median`` and with ``search.pruner=none``. Prints the total epochs each trained
(from each trial's ``history.csv``, or the pruned trial's reported epochs in the study) and both best validation
accuracies. Target: at least 40% fewer epochs with pruning, at a best value equal within one validation row
(1/114 = 0.0088 on breast_cancer's 114 validation rows). Not part of the suite::

    .venv/bin/python benchmarks/search_pruning.py [--trials 20] [--epochs 20]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

TOLERANCE = 1 / 114


def sweep(pruner: str, trials: int, epochs: int) -> tuple[int, float, str]:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    with tempfile.TemporaryDirectory() as directory:
        proc = subprocess.run([Path(sys.executable).parent / "coupler", "train", "-m", "search=mlp", "model=mlp",
                               "data=breast_cancer", f"search.n_trials={trials}", f"search.pruner={pruner}",
                               f"trainer.max_epochs={epochs}", "hydra.sweep.dir=sweep"],
                              cwd=directory, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-2000:])
        best = float(re.search(r"validation accuracy=([0-9.]+)", proc.stdout).group(1))
        study = optuna.load_study(study_name="mlp", storage=optuna.storages.JournalStorage(
            JournalFileBackend(f"{directory}/sweep/study.journal")))
        epochs_run = sum(len(t.intermediate_values) for t in study.trials)
        states = ", ".join(f"{sum(t.state.name == s for t in study.trials)} {s.lower()}"
                           for s in ("COMPLETE", "PRUNED", "FAIL"))
    return epochs_run, best, states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    pruned = sweep("median", args.trials, args.epochs)
    full = sweep("none", args.trials, args.epochs)
    print(f"pruner=median: {pruned[0]} epochs in all ({pruned[2]}), best validation accuracy {pruned[1]:.4f}")
    print(f"pruner=none:   {full[0]} epochs in all ({full[2]}), best validation accuracy {full[1]:.4f}")
    saved = 1 - pruned[0] / full[0]
    print(f"epochs saved: {saved:.0%} (target >= 40%); best values differ by {abs(pruned[1] - full[1]):.4f} "
          f"(tolerance {TOLERANCE:.4f}: one validation row)")


if __name__ == "__main__":
    main()
