"""Benchmark: one training epoch of the digits CNN through ``coupler train``, plain Lightning and a plain PyTorch loop.

All three train the same network on scikit-learn's bundled ``digits`` (1797 rows of 8x8 pixels, 10 classes):
``coupler_cnn.model.CNN(task="multiclass", seed=0).build_network(64, 10)`` with its defaults (depth 2, width 32,
batch norm, dropout 0.25), Adam (lr 1e-3, constant), cross-entropy, batches of 64, the CNN's training augmentation
(``CNN.augment``: shifts of up to 1 px, rotations of up to 10 degrees) on every training batch, and after each
epoch one no-grad forward pass over the validation rows (loss and accuracy). The paths:

- **harness**: ``coupler train data=digits model=cnn trainer.max_epochs=N scheduler=none``, driven in-process
  by a small script that wraps ``coupler_torch.engine._RunEvents.on_train_epoch_start`` / ``on_train_epoch_end``
  to take ``time.perf_counter()`` at each epoch's start and after its end hook returns, so an epoch includes
  what the harness does there (validation pass, epoch metrics, ``checkpoints/last.ckpt`` write). The harness
  runs with its defaults, which differ from the plain scripts' torch defaults in two ways: Adam takes torch's
  fused kernel (``optimizer.fused=auto``; torch's default on a CPU is a per-tensor loop), and ``last.ckpt`` is
  written after the first epoch and then every ``trainer.resume_interval=30`` seconds, not after every epoch.
  ``--harness-args "optimizer.fused=false trainer.resume_interval=0"`` measures it without either.
- **lightning**: a plain ``LightningModule`` + ``Trainer(logger=False, enable_checkpointing=False, ...)`` over
  ``DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True)``; a ``Callback`` runs the validation pass in
  ``on_train_epoch_end`` and takes the same timestamps.
- **plain**: a hand-written PyTorch loop over the same ``DataLoader``, timed from the start of an epoch to the
  end of its validation pass.

The plain scripts standardize the pixels with training-split statistics, like the harness's preprocessing, but
split the rows with their own seeded permutation (train 1259 / val 359 / test 179 rows; the harness's stratified
split gives 1258 / 359 / 180), so the splits differ by a row in size and hold other rows. Timing does not depend
on which rows they are. Each path runs in its own process (imports and thread pools apart; torch's default
thread count everywhere); a path's time per epoch is the median over epochs after the first (warm-up), and the
table reports the median and the minimum of that over ``--repeats`` runs, the three paths alternating, with the
ratios to the plain PyTorch loop. Compare ratios from one invocation only. On a small shared machine another busy
process slows torch's thread pool several-fold for as long as it runs (threads wait on each other), so a run that
overlaps one is far off; the minimum is then the steadier estimate of each path's work, the median what a user
waits. Run it on an otherwise idle machine.

Target: harness <= 1.00x the plain PyTorch loop per epoch.

    .venv/bin/python benchmarks/cnn_epoch_harness_vs_plain.py [--epochs 8] [--repeats 3] [--harness-args "..."]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PATHS = ("harness", "lightning", "plain")
TARGET = 1.00

# argv: epochs, run directory, extra overrides. The epoch durations are the last line of stdout, as JSON.
HARNESS = r'''
import json
import sys
import time

from coupler import cli
from coupler_torch import engine

epochs, run_dir = int(sys.argv[1]), sys.argv[2]
starts, ends = [], []
original_start, original_end = engine._RunEvents.on_train_epoch_start, engine._RunEvents.on_train_epoch_end


def on_train_epoch_start(self, trainer, module):
    starts.append(time.perf_counter())
    original_start(self, trainer, module)


def on_train_epoch_end(self, trainer, module):
    original_end(self, trainer, module)  # validation pass, epoch metrics, checkpoint write
    ends.append(time.perf_counter())


engine._RunEvents.on_train_epoch_start = on_train_epoch_start
engine._RunEvents.on_train_epoch_end = on_train_epoch_end
code = cli.main(["train", "data=digits", "model=cnn", f"trainer.max_epochs={epochs}", "scheduler=none",
                 f"hydra.run.dir={run_dir}", *sys.argv[3:]])
if code:
    sys.exit(code)
print(json.dumps([end - start for start, end in zip(starts, ends)]))
'''

# What the lightning and plain scripts share: the data, split and standardized, and the network.
COMMON = r'''
import json
import sys
import time

import numpy as np
import torch
from coupler_cnn.model import CNN
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

epochs = int(sys.argv[1])
X, y = load_digits(return_X_y=True)
order = np.random.default_rng(0).permutation(len(y))
n_test, n_val = len(y) // 10, len(y) // 5
val_rows, train_rows = order[n_test:n_test + n_val], order[n_test + n_val:]
mean, std = X[train_rows].mean(axis=0), X[train_rows].std(axis=0)
std[std == 0] = 1.0


def tensors(rows):
    return torch.as_tensor(((X[rows] - mean) / std).astype(np.float32)), torch.as_tensor(y[rows], dtype=torch.long)


X_train, y_train = tensors(train_rows)
X_val, y_val = tensors(val_rows)
torch.manual_seed(0)
model = CNN(task="multiclass", seed=0)
network = model.build_network(64, 10)  # sets model.image_shape, which model.augment needs
loader = DataLoader(TensorDataset(X_train, y_train), batch_size=64, shuffle=True)


def validate():
    """One no-grad forward pass over the validation rows, as the harness scores them each epoch."""
    was_training = network.training
    network.eval()
    with torch.no_grad():
        outputs = network(X_val)
    network.train(was_training)
    return float(torch.nn.functional.cross_entropy(outputs, y_val)), float((outputs.argmax(dim=1) == y_val).float().mean())
'''

LIGHTNING = COMMON + r'''
import lightning.pytorch as pl


class Module(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.network = network

    def training_step(self, batch, batch_index):
        x, target = batch
        return torch.nn.functional.cross_entropy(self.network(model.augment(x)), target)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class EpochTimer(pl.Callback):
    def __init__(self):
        self.starts, self.ends = [], []

    def on_train_epoch_start(self, trainer, module):
        self.starts.append(time.perf_counter())

    def on_train_epoch_end(self, trainer, module):
        validate()
        self.ends.append(time.perf_counter())


timer = EpochTimer()
trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, callbacks=[timer])
trainer.fit(Module(), train_dataloaders=loader)
print(json.dumps([end - start for start, end in zip(timer.starts, timer.ends)]))
'''

PLAIN = COMMON + r'''
optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
durations = []
network.train()
for epoch in range(epochs):
    start = time.perf_counter()
    for x, target in loader:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(network(model.augment(x)), target)
        loss.backward()
        optimizer.step()
    validate()
    durations.append(time.perf_counter() - start)
print(json.dumps(durations))
'''


def epoch_seconds(command: list[str], cwd: Path) -> float:
    """Run one path's process; the median of its epoch durations, the first (warm-up) left out."""
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{proc.stderr}")
    durations = json.loads(proc.stdout.strip().splitlines()[-1])
    return statistics.median(durations[1:] if len(durations) > 1 else durations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--harness-args", default="", help="extra overrides for the harness run, space-separated")
    args = parser.parse_args()
    if args.epochs < 2 or args.repeats < 1:
        parser.error("--epochs must be at least 2 (the first is warm-up) and --repeats at least 1")
    work = Path(tempfile.mkdtemp(prefix="coupler-bench-cnn-"))
    try:
        scripts = {"harness": HARNESS, "lightning": LIGHTNING, "plain": PLAIN}
        for name, text in scripts.items():
            (work / f"bench_{name}.py").write_text(text)  # not lightning.py: that would shadow the package
        runs: dict[str, list[float]] = {name: [] for name in PATHS}
        for i in range(args.repeats):
            for name in PATHS:
                command = [sys.executable, str(work / f"bench_{name}.py"), str(args.epochs)]
                if name == "harness":
                    command += [str(work / f"run{i}"), *args.harness_args.split()]
                runs[name].append(epoch_seconds(command, work))
        median = {name: statistics.median(values) for name, values in runs.items()}
        least = {name: min(values) for name, values in runs.items()}
        print(f"digits CNN, {args.epochs} epochs; per run the median epoch after the first; over {args.repeats} runs:")
        print(f"{'path':10} {'median s/epoch':>14} {'vs plain':>9} {'minimum s/epoch':>16} {'vs plain':>9}")
        for name in PATHS:
            print(f"{name:10} {median[name]:14.3f} {median[name] / median['plain']:8.3f}x "
                  f"{least[name]:16.3f} {least[name] / least['plain']:8.3f}x")
        print("all runs (s/epoch):", {name: [round(v, 3) for v in values] for name, values in runs.items()})
        print(f"target: harness <= {TARGET:.2f}x plain PyTorch")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
