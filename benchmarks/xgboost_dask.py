"""Benchmark: XGBoost on Dask through Coupler (``model.cluster=local``) against a plain ``xgboost.dask`` script, and
each Dask worker's peak memory against a single-process run's.

The data (default 2,000,000 rows x 20 float32 features, binary target, 80/20 train/validation) are generated once and
saved as ``.npy`` files; every measurement is its own process, which loads them and then, timed:

- ``coupler``: ``XGBoostModel(cluster="local", workers=2, threads_per_worker=1).fit(train, val, run)``, Coupler's
  Python path for ``coupler train model=xgboost model.cluster=local``: it starts the LocalCluster, scatters the
  rows, builds ``DaskQuantileDMatrix``es and trains with the validation set, relaying every round to ``run.epoch_end``
  on the client (a round trip through the scheduler per round), then closes the cluster.
- ``plain``: the same with ``xgboost.dask`` by hand: a 2-worker LocalCluster (1 thread each, processes), the rows
  scattered in one chunk per worker, ``DaskQuantileDMatrix``, ``xgboost.dask.train`` with the same parameters,
  rounds and validation set, no callback.
- ``single``: ``XGBoostModel()`` (no cluster) in one process, for its peak memory (``VmHWM``).

Each worker's peak resident memory (Linux's ``VmHWM``, asked of every worker with ``Client.run`` after training, before
the cluster closes) is compared with the single-process run's. The two Dask sides alternate (and which goes first
alternates), ``--repeats`` pairs; medians and minima are reported with the ratio coupler / plain.

Targets (issue #19): wall time coupler / plain <= 1.3x; each worker's peak about half of the single process's.

    .venv/bin/python benchmarks/xgboost_dask.py [--rows 2000000] [--features 20] [--rounds 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARAMS = {"max_depth": 6, "eta": 0.1, "tree_method": "hist", "seed": 0}


def generate(work: Path, rows: int, features: int) -> None:
    import numpy as np
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=rows, n_features=features, n_informative=features // 2,
                               n_redundant=features // 5, flip_y=0.05, random_state=0)
    cut = rows * 4 // 5
    for name, array in (("Xt", X[:cut]), ("yt", y[:cut]), ("Xv", X[cut:]), ("yv", y[cut:])):
        np.save(work / f"{name}.npy", array.astype(np.float32 if name[0] == "X" else np.int64))


def _peak_mib() -> float:
    """This process's peak resident memory: Linux's ``VmHWM`` (``ru_maxrss`` survives ``exec``, so a process
    started by a large one, a Dask worker by its client, would report its parent's peak), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def side(name: str, work: Path, rounds: int) -> dict:
    """One measurement, in this process: wall seconds of the training, peaks, the validation log loss."""
    import numpy as np
    import xgboost as xgb

    Xt, yt, Xv, yv = (np.load(work / f"{n}.npy") for n in ("Xt", "yt", "Xv", "yv"))
    peaks: list[float] = []
    start = time.perf_counter()
    if name == "plain":
        import dask.array as da
        import distributed
        from xgboost import dask as dxgb

        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            def scattered(X, y):
                cuts = np.array_split(np.arange(len(y)), 2)
                xs, ys = client.scatter([X[c] for c in cuts]), client.scatter([y[c].astype(np.float64) for c in cuts])
                return (da.concatenate([da.from_delayed(f, shape=(len(c), X.shape[1]), dtype=X.dtype)
                                        for f, c in zip(xs, cuts)]),
                        da.concatenate([da.from_delayed(f, shape=(len(c),), dtype=np.float64)
                                        for f, c in zip(ys, cuts)]))

            dtrain = dxgb.DaskQuantileDMatrix(client, *scattered(Xt, yt))
            dval = dxgb.DaskQuantileDMatrix(client, *scattered(Xv, yv), ref=dtrain)
            params = {**PARAMS, "objective": "binary:logistic", "eval_metric": ["logloss"]}
            booster = dxgb.train(client, params, dtrain, num_boost_round=rounds, evals=[(dval, "val")],
                                 verbose_eval=False)["booster"]
            peaks = sorted(client.run(_peak_mib).values())
        wall = time.perf_counter() - start
    else:
        from coupler.components import Split
        from coupler.context import RunContext
        from coupler_xgboost import scale
        from coupler_xgboost.model import XGBoostModel

        class Hooks:
            def on_epoch_end(self, **_):
                pass

        if name == "coupler":  # a probe: each worker's peak, asked before the cluster closes
            train_on_dask = scale.train_on_dask

            def probed(client, *args, **kwargs):
                booster = train_on_dask(client, *args, **kwargs)
                peaks.extend(sorted(client.run(_peak_mib).values()))
                return booster

            scale.train_on_dask = probed
        model = XGBoostModel("binary", 0, {k: v for k, v in PARAMS.items() if k != "seed"}, num_boost_round=rounds,
                             cluster="local" if name == "coupler" else None)
        run = RunContext(config={}, directory=work, hooks=Hooks(), task="binary", classes=[0, 1])
        model.fit(Split(Xt, yt), Split(Xv, yv), run)
        wall = time.perf_counter() - start
        booster = model.booster
    p = np.clip(booster.predict(xgb.DMatrix(Xv)), 1e-7, 1 - 1e-7)
    loss = float(-np.mean(yv * np.log(p) + (1 - yv) * np.log(1 - p)))
    return {"wall": wall, "peak": _peak_mib(), "workers": peaks, "val_logloss": loss}


def measure(name: str, work: Path, rounds: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--side", name, "--work", str(work), "--rounds", str(rounds)],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode != 0:
        sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--side", choices=("coupler", "plain", "single"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # one measurement, in a process of its own
        print(json.dumps(side(args.side, args.work, args.rounds)))
        return
    if args.generate:
        generate(args.work, args.rows, args.features)
        return
    work = Path(tempfile.mkdtemp(prefix="coupler-bench-dask-"))
    try:  # generated in a process of its own: this one stays small
        subprocess.run([sys.executable, __file__, "--generate", "--work", str(work), "--rows", str(args.rows),
                        "--features", str(args.features)], check=True)
        print(f"data: {args.rows} rows x {args.features} float32 features (80% train, 20% validation); "
              f"{args.rounds} rounds, {PARAMS}; 2 workers x 1 thread")
        runs: dict[str, list[dict]] = {"coupler": [], "plain": []}
        for i in range(args.repeats):
            for name in (("plain", "coupler") if i % 2 == 0 else ("coupler", "plain")):
                runs[name].append(measure(name, work, args.rounds))
        single = measure("single", work, args.rounds)
        print(f"{'side':28} {'wall s med':>10} {'wall s min':>10} {'client MiB':>10} {'worker peaks MiB':>18} "
              f"{'val logloss':>11}")
        for name, label in (("coupler", "coupler cluster=local"), ("plain", "plain xgboost.dask")):
            walls = [r["wall"] for r in runs[name]]
            last = runs[name][-1]
            print(f"{label:28} {statistics.median(walls):10.2f} {min(walls):10.2f} "
                  f"{statistics.median(r['peak'] for r in runs[name]):10.0f} "
                  f"{' / '.join(f'{p:.0f}' for p in last['workers']):>18} {last['val_logloss']:11.5f}")
        print(f"{'coupler single process':28} {single['wall']:10.2f} {'':10} {single['peak']:10.0f} {'':>18} "
              f"{single['val_logloss']:11.5f}")
        pairs = [c["wall"] / p["wall"] for c, p in zip(runs["coupler"], runs["plain"])]
        wall_ratio = statistics.median(r["wall"] for r in runs["coupler"]) / statistics.median(
            r["wall"] for r in runs["plain"])
        worker_peak = max(max(r["workers"]) for r in runs["coupler"])
        print(f"wall time coupler / plain: {wall_ratio:.3f}x of the medians (pairs: "
              f"{', '.join(f'{r:.3f}' for r in pairs)}); target <= 1.3x")
        print(f"largest worker peak / single-process peak: {worker_peak:.0f} / {single['peak']:.0f} MiB = "
              f"{worker_peak / single['peak']:.2f}; target about 0.5")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
