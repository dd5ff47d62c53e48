"""Memory stays bounded as the data grows (issue #19, point 4): Parquet tables of 1, 4 and 16 million rows x 20
columns, trained through `coupler train data=parquet data.path=DIR` by the MLP (streaming) and by XGBoost from
external memory; wall time and peak memory per size: the `coupler-train` process's peak resident memory (`VmHWM`)
and the peak of its resident memory that is not file-backed (`RssAnon`, read every 50 ms while it runs: XGBoost
reads its external-memory cache through mmap, and those pages are the page cache's, dropped under pressure).
Target: peak memory grows by less than 2x from the smallest size to the largest. The raw library doing the same
work (`PLAIN_XGBOOST`: XGBoost's external-memory matrix fed the row groups by a plain DataIter) runs beside it.

    .venv/bin/python benchmarks/scale_memory.py [--millions 1 4 16] [--work DIR] [--keep]

The tables are generated once into `--work` (default: a directory under /tmp, removed at the end unless
`--keep`): a binary target from a noisy linear function of the 20 features, written in files of 1 M rows and
row groups of 128 K rows. The models run at settings that read every row and keep the run short: the MLP one
epoch (hidden [32], batch 4,096), XGBoost 20 rounds of depth 6. Each run is its own process.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FEATURES = 20
FILE_ROWS = 1_000_000
ROW_GROUP = 131_072
COUPLER = str(Path(sys.executable).with_name("coupler"))


def generate(directory: Path, millions: int, seed: int = 0) -> None:
    """``millions`` files of 1 M rows: x0..x19 standard normal, ``label`` 1 where w.x + noise > 0."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if (directory / "_complete").exists():
        return
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=FEATURES)
    for part in range(millions):
        X = rng.normal(size=(FILE_ROWS, FEATURES))
        label = (X @ weights + rng.normal(scale=2.0, size=FILE_ROWS) > 0).astype("int64")
        table = pa.table({**{f"x{i}": X[:, i] for i in range(FEATURES)}, "label": label})
        pq.write_table(table, directory / f"part-{part:03d}.parquet", row_group_size=ROW_GROUP)
    (directory / "_complete").write_text("")  # a name starting with _ : skipped by data=parquet


MODELS: dict[str, list[str] | None] = {
    "mlp (streaming)": ["model=mlp", "model.hidden=[32]", "model.batch_size=4096", "trainer.max_epochs=1",
                        "plots=none"],
    "xgboost (external memory)": ["model=xgboost", "model.external_memory=true", "model.num_boost_round=20",
                                  "model.params.max_depth=6", "plots=none"],
    "plain xgboost (external memory)": None,  # PLAIN_XGBOOST, the raw library
}


#: the raw library doing the same work: XGBoost's external-memory matrix built from the row groups by a DataIter,
#: the same parameters and rounds, validated on a fifth of the row groups (no split by hash, no preprocessing);
#: like Coupler, it hands pyarrow's pool pages back before boosting
PLAIN_XGBOOST = """
import sys, tempfile, pyarrow as pa, pyarrow.parquet as pq, xgboost as xgb
from pathlib import Path
files = sorted(Path(sys.argv[1]).glob("*.parquet"))
groups = [(f, g) for f in files for g in range(pq.ParquetFile(f).num_row_groups)]
class Groups(xgb.DataIter):
    def __init__(self, groups, cache):
        self.groups, self.at = groups, 0
        super().__init__(cache_prefix=cache, release_data=True)
    def next(self, input_data):
        if self.at == len(self.groups):
            return False
        f, g = self.groups[self.at]
        frame = pq.ParquetFile(f).read_row_group(g).to_pandas()
        input_data(data=frame.drop(columns="label").to_numpy("float32"), label=frame["label"].to_numpy())
        self.at += 1
        return True
    def reset(self):
        self.at = 0
with tempfile.TemporaryDirectory() as cache:
    val = groups[::5]
    train = xgb.ExtMemQuantileDMatrix(Groups([g for g in groups if g not in val], cache + "/t"))
    valid = xgb.ExtMemQuantileDMatrix(Groups(val, cache + "/v"), ref=train)
    pa.default_memory_pool().release_unused()  # the pages pyarrow kept from the reads: boosting reads no more
    xgb.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.3, "nthread": 2}, train, 20,
              evals=[(valid, "val")], verbose_eval=False)
"""


def plain(data: Path) -> tuple[float, float, float, str]:
    """The plain XGBoost script's seconds and peak memory (RSS, not file-backed), on the same directory."""
    return _measure([sys.executable, "-c", PLAIN_XGBOOST, str(data)]) + ("-",)


def train(data: Path, overrides: list[str], run_dir: Path) -> tuple[float, float, float, str]:
    """Seconds and peak resident memory (MiB) of one `coupler train`, and its test accuracy."""
    import json

    shutil.rmtree(run_dir, ignore_errors=True)  # a run of an earlier invocation (--keep): the benchmark's own
    command = [COUPLER, "train", "data=parquet", f"data.path={data}", "data.target=label", *overrides,
               f"hydra.run.dir={run_dir}"]
    seconds, peak, anonymous = _measure(command)
    accuracy = json.loads((run_dir / "metrics.json").read_text())["test"].get("accuracy")
    return seconds, peak, anonymous, f"{accuracy:.4f}"


def _measure(command: list[str]) -> tuple[float, float, float]:
    """Seconds, peak resident memory and peak memory that is not file-backed (MiB) of one process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        peak = anonymous = 0
        while process.poll() is None:  # VmHWM: the high-water mark since exec (ru_maxrss would count the parent's)
            status = _status(process.pid)
            peak, anonymous = max(peak, status.get("VmHWM", 0)), max(anonymous, status.get("RssAnon", 0))
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        if process.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(command)} failed:\n{errors.read().decode()[-3000:]}")
    return seconds, peak / 1024, anonymous / 1024


def _status(pid: int) -> dict[str, int]:
    """The process's memory figures (KiB) from /proc: VmHWM (peak resident), RssAnon (resident, not file-backed);
    empty once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return {line.split(":")[0]: int(line.split()[1]) for line in status if line.startswith(("VmHWM", "RssAnon"))}
    except (OSError, ValueError, IndexError):
        return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--millions", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="coupler-scale-"))
    rows = []
    try:
        for millions in args.millions:
            data = work / f"rows-{millions}m"
            generate(data, millions)
            for name in args.models:
                seconds, peak, anonymous, accuracy = (
                    plain(data) if MODELS[name] is None
                    else train(data, MODELS[name], work / f"run-{millions}m-{name.split()[0]}"))
                rows.append((name, millions, seconds, peak, anonymous, accuracy))
                print(f"{name:28} {millions:>3} M rows  {seconds:8.1f} s  peak {peak:8.0f} MiB  (anonymous "
                      f"{anonymous:.0f} MiB)  test accuracy {accuracy}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\n| model | rows | wall time | peak memory (RSS) | of it, not file-backed | test accuracy |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for name, millions, seconds, peak, anonymous, accuracy in rows:
        print(f"| {name} | {millions} M | {seconds:.1f} s | {peak:.0f} MiB | {anonymous:.0f} MiB | {accuracy} |")
    for name in args.models:
        mine = [r for r in rows if r[0] == name]
        if len(mine) > 1:
            print(f"{name}: at {mine[-1][1]} M rows / at {mine[0][1]} M rows: peak RSS {mine[-1][3] / mine[0][3]:.2f}x, "
                  f"not file-backed {mine[-1][4] / mine[0][4]:.2f}x (target < 2x)")


if __name__ == "__main__":
    main()
