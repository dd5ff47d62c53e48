"""Issue #16 point 8: on breast_cancer, a soft-voting ensemble of logistic regression, XGBoost and the MLP against
each of its members, on the mean over 5 seeds of the test accuracy and ROC AUC.

Each seed trains one ``model=ensemble`` run (seed = split, members' seeds and the MLP's initialisation); each member
is then measured on the same test rows from the reloaded run (``FinishedRun``: the member as the ensemble trained
it, on the same training rows and preprocessing), so the members and the ensemble differ in the combination only.

    python benchmarks/ensemble_breast_cancer.py [OUTPUT_DIR]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

SEEDS = (0, 1, 2, 3, 4)
MEMBERS = "[{name: logistic_regression}, {name: xgboost, num_boost_round: 200}, {name: mlp}]"
OVERRIDES = ("data=breast_cancer", "model=ensemble", f"model.members={MEMBERS}", "model.method=soft",
             "trainer.max_epochs=30", "trainer.progress_bar=false")
METRICS = ("accuracy", "roc_auc")


def measure(directory: Path) -> dict[str, list[dict]]:
    from coupler import FinishedRun
    from coupler.testing import train_run

    scores: dict[str, list[dict]] = {}
    for seed in SEEDS:
        metrics, run_dir = train_run(directory, *OVERRIDES, f"seed={seed}", name=f"seed{seed}")
        scores.setdefault("ensemble", []).append(metrics["test"])
        run = FinishedRun(run_dir)
        ensemble = run.model
        for member in ensemble.members:
            run.model = member.model  # the member alone, on the run's own split and preprocessing
            scores.setdefault(member.name, []).append(run.evaluate()["test"])
        run.model = ensemble
        print(f"seed {seed}: " + ", ".join(f"{name} {s[-1]['accuracy']:.4f}" for name, s in scores.items()),
              flush=True)
    return scores


def main() -> None:
    started = time.perf_counter()
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="ensemble-bench-"))
    scores = measure(directory)
    print(f"\nbreast_cancer, test split, mean (std) over seeds {list(SEEDS)}; members: {MEMBERS}")
    print(f"{'model':<22}" + "".join(f"{m:>22}" for m in METRICS))
    for name, rows in scores.items():
        cells = [f"{statistics.mean(r[m] for r in rows):.4f} ({statistics.stdev(r[m] for r in rows):.4f})"
                 for m in METRICS]
        print(f"{name:<22}" + "".join(f"{c:>22}" for c in cells))
    best = max((n for n in scores if n != "ensemble"), key=lambda n: statistics.mean(r["accuracy"] for r in scores[n]))
    ensemble_mean = {m: statistics.mean(r[m] for r in scores["ensemble"]) for m in METRICS}
    best_mean = {m: statistics.mean(r[m] for r in scores[best]) for m in METRICS}
    verdict = all(ensemble_mean[m] >= best_mean[m] for m in METRICS)
    print(f"\nbest member by accuracy: {best}; ensemble at least as good on {', '.join(METRICS)}: {verdict}")
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
