"""Helper of ``benchmarks/gpu_proof.sh``: the steps that need Python, each writing one JSON line of figures.

Subcommands (every one appends a JSON object to RESULTS, a .jsonl file, and prints it):

- ``env RESULTS``: Python, torch, CUDA, cuDNN, Lightning and the other packages' versions; whether CUDA is
  available, the device's name, capability, memory and bf16 support.
- ``train NAME RESULTS RUN_DIR -- OVERRIDES...``: ``coupler train OVERRIDES hydra.run.dir=RUN_DIR`` run
  in-process through ``coupler.cli.main`` (the ``coupler`` console script's own function), with the torch
  engine's per-epoch callback (``coupler_torch.engine._RunEvents``) wrapped to take ``time.perf_counter()``
  at each epoch's start and after its end hook (the validation pass, metrics, checkpoint write), and to note
  what Lightning actually trained on (the module's device, the trainer's precision, strategy and world size).
  Records the exit code, the wall time, each epoch's seconds and the run's ``metrics.json``.
- ``inputs CSV``: the features of scikit-learn's digits (every row), for ``coupler predict``.
- ``parity NAME RESULTS RUN_DIR EVAL_JSON PRED_CSV EVAL_RC PRED_RC``: run where ``CUDA_VISIBLE_DEVICES=`` hides
  the GPU; compares ``coupler evaluate RUN --json``'s output with the run's ``metrics.json`` and ``coupler
  predict``'s rows of the test split with the run's ``predictions_test.csv``.
- ``summary RESULTS SUMMARY_MD``: the table of every step.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import traceback
from pathlib import Path


def _append(results: str, record: dict) -> None:
    line = json.dumps(record, default=str)
    with open(results, "a") as handle:
        handle.write(line + "\n")
    print("RESULT " + line, flush=True)


# --- env ----------------------------------------------------------------------------------------------------


def env(results: str) -> int:
    import importlib.metadata as metadata
    import platform

    record: dict = {"step": "env", "python": platform.python_version(), "executable": sys.executable}
    for name in ("torch", "lightning", "pytorch-lightning", "torchmetrics", "numpy", "pandas", "pyarrow",
                 "scikit-learn", "scipy", "hydra-core", "omegaconf", "pluggy", "safetensors", "transformers",
                 "tokenizers", "skops", "setuptools", "coupler", "coupler-torch", "coupler-cnn", "coupler-rnn",
                 "coupler-transformer", "coupler-sklearn", "xgboost"):
        try:
            record[f"version_{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            record[f"version_{name}"] = None
    try:
        import torch

        record["torch_cuda"] = torch.version.cuda
        record["cuda_available"] = torch.cuda.is_available()
        record["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        record["cpu_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            properties = torch.cuda.get_device_properties(0)
            record.update({
                "device_count": torch.cuda.device_count(), "device_name": torch.cuda.get_device_name(0),
                "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
                "memory_gib": round(properties.total_memory / 2**30, 1),
                "multiprocessors": properties.multi_processor_count,
                "bf16_supported": torch.cuda.is_bf16_supported(),
                "nccl": ".".join(map(str, torch.cuda.nccl.version())) if hasattr(torch.cuda, "nccl") else None,
            })
            # a real kernel, not only a query: a bf16 matrix product on the device
            a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(10):
                a @ a
            torch.cuda.synchronize()
            record["bf16_matmul_tflops"] = round(10 * 2 * 4096**3 / (time.perf_counter() - start) / 1e12, 1)
        record["ok"] = True
    except Exception as exc:  # the record says why, the next steps still run
        record.update({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    _append(results, record)
    return 0 if record["ok"] else 1


# --- train --------------------------------------------------------------------------------------------------


def _instrument(seen: dict) -> None:
    """Wrap the engine's epoch callback to time each epoch and note what Lightning trains on."""
    from coupler_torch import engine

    original_start, original_end = engine._RunEvents.on_train_epoch_start, engine._RunEvents.on_train_epoch_end

    def on_train_epoch_start(self, trainer, module):
        if "device" not in seen:
            strategy = trainer.strategy
            seen.update({"device": str(module.device), "precision": str(trainer.precision),
                         "strategy": type(strategy).__name__, "world_size": trainer.world_size,
                         "accelerator_class": type(trainer.accelerator).__name__,
                         "process_group": _process_group_backend()})
            try:
                import torch

                if module.device.type == "cuda":
                    seen["device_name"] = torch.cuda.get_device_name(module.device)
            except Exception:
                pass
        seen.setdefault("starts", []).append(time.perf_counter())
        original_start(self, trainer, module)

    def on_train_epoch_end(self, trainer, module):
        original_end(self, trainer, module)
        seen.setdefault("ends", []).append(time.perf_counter())

    engine._RunEvents.on_train_epoch_start = on_train_epoch_start
    engine._RunEvents.on_train_epoch_end = on_train_epoch_end


def _process_group_backend():
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return f"{dist.get_backend()} world={dist.get_world_size()}"
    except Exception:
        pass
    return None


def train(name: str, results: str, run_dir: str, overrides: list[str]) -> int:
    seen: dict = {}
    record: dict = {"step": name, "overrides": " ".join(overrides)}
    try:
        _instrument(seen)
    except Exception as exc:  # no timing then, but the run still runs
        record["timing_error"] = f"{type(exc).__name__}: {exc}"
    from coupler import cli

    start = time.perf_counter()
    try:
        rc = cli.main(["train", *overrides, f"hydra.run.dir={run_dir}"])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # the traceback goes to the log; the record keeps the last line
        traceback.print_exc()
        rc = 1
        record["error"] = f"{type(exc).__name__}: {exc}"[:500]
    record["rc"] = rc
    record["wall_s"] = round(time.perf_counter() - start, 2)
    epochs = [end - begin for begin, end in zip(seen.pop("starts", []), seen.pop("ends", []))]
    seen.pop("ends", None)
    record.update(seen)
    record["epochs"] = len(epochs)
    if epochs:
        record["epoch_s"] = [round(e, 4) for e in epochs]
        record["first_epoch_s"] = round(epochs[0], 4)
        later = epochs[1:] or epochs
        record["median_epoch_s"] = round(statistics.median(later), 4)  # after the first (warm-up)
        record["min_epoch_s"] = round(min(later), 4)
    metrics = Path(run_dir) / "metrics.json"
    if metrics.is_file():
        record["metrics"] = json.loads(metrics.read_text())
    _append(results, record)
    return rc if isinstance(rc, int) else 1


# --- evaluate / predict on the CPU --------------------------------------------------------------------------


def inputs(csv: str) -> int:
    from sklearn.datasets import load_digits

    load_digits(as_frame=True).frame.drop(columns="target").to_csv(csv, index=False)
    return 0


def parity(name: str, results: str, run_dir: str, eval_json: str, pred_csv: str, eval_rc: str, pred_rc: str) -> int:
    import os

    record: dict = {"step": name, "evaluate_rc": int(eval_rc), "predict_rc": int(pred_rc),
                    "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}
    try:
        import torch

        record["cuda_available_here"] = torch.cuda.is_available()
    except Exception as exc:
        record["cuda_available_here"] = f"{type(exc).__name__}: {exc}"
    run = Path(run_dir)
    try:
        saved = json.loads((run / "metrics.json").read_text())
        saved.pop("timing", None)  # the run's seconds: evaluate measures metrics only
        evaluated = json.loads(Path(eval_json).read_text())
        differences = [abs(float(evaluated[split][key]) - float(value))
                       for split, values in saved.items() for key, value in values.items()]
        record["evaluate_metrics"] = evaluated
        record["evaluate_max_abs_diff"] = max(differences) if differences else None
        record["evaluate_matches"] = evaluated == saved or (bool(differences) and max(differences) <= 1e-9)
    except Exception as exc:
        record["evaluate_error"] = f"{type(exc).__name__}: {exc}"
    try:
        import numpy as np
        import pandas as pd

        test = pd.read_csv(run / "predictions_test.csv", index_col=0)
        predicted = pd.read_csv(pred_csv).loc[test.index]
        record["predict_rows"] = int(len(pd.read_csv(pred_csv)))
        same = predicted["prediction"].to_numpy() == test["prediction"].to_numpy()
        record["predict_test_rows"] = int(len(test))
        record["predict_same_labels"] = int(same.sum())
        probabilities = [c for c in test.columns if c.startswith("proba_")]
        if probabilities:
            record["predict_max_abs_proba_diff"] = float(np.max(np.abs(
                predicted[probabilities].to_numpy(float) - test[probabilities].to_numpy(float))))
        accuracy = float((predicted["prediction"].to_numpy() == test["target"].to_numpy()).mean())
        record["predict_test_accuracy"] = accuracy
        saved_accuracy = json.loads((run / "metrics.json").read_text())["test"].get("accuracy")
        record["predict_matches"] = bool(same.all()) and saved_accuracy is not None and abs(accuracy - saved_accuracy) < 1e-12
    except Exception as exc:
        record["predict_error"] = f"{type(exc).__name__}: {exc}"
    _append(results, record)
    return 0 if record.get("evaluate_matches") and record.get("predict_matches") else 1


# --- summary ------------------------------------------------------------------------------------------------


def _metric(record: dict, *names: str):
    test = (record.get("metrics") or {}).get("test") or {}
    for name in names:
        if name in test:
            return f"{name} {test[name]:.4f}"
    return "-"


def summary(results: str, out: str) -> int:
    records = {}
    for line in Path(results).read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            records[record["step"]] = record
    lines = []
    environment = records.get("env", {})
    lines.append("# Coupler GPU proof\n")
    lines.append(f"device: {environment.get('device_name')} (capability {environment.get('capability')}, "
                 f"{environment.get('memory_gib')} GiB), cuda_available={environment.get('cuda_available')}, "
                 f"torch {environment.get('version_torch')} (CUDA {environment.get('torch_cuda')}, cuDNN "
                 f"{environment.get('cudnn')}), lightning {environment.get('version_lightning')}, python "
                 f"{environment.get('python')}, bf16 matmul {environment.get('bf16_matmul_tflops')} TFLOP/s "
                 f"(4096^3, rough)\n")
    lines.append("| step | rc | trained on | precision | strategy | epochs | first epoch s | median s/epoch "
                 "(after the first) | wall s | test metric |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, record in records.items():
        if "overrides" not in record:
            continue
        lines.append(f"| {name} | {record.get('rc')} | {record.get('device', '-')} | {record.get('precision', '-')} "
                     f"| {record.get('strategy', '-')} {record.get('process_group') or ''} | {record.get('epochs')} "
                     f"| {record.get('first_epoch_s', '-')} | {record.get('median_epoch_s', '-')} "
                     f"| {record.get('wall_s')} | {_metric(record, 'accuracy', 'rmse')} |")
    gpu, cpu = records.get("cnn_gpu_32", {}), records.get("cnn_cpu_32", {})
    if gpu.get("median_epoch_s") and cpu.get("median_epoch_s"):
        lines.append(f"\nCNN s/epoch, CPU / GPU (32-true): {cpu['median_epoch_s'] / gpu['median_epoch_s']:.2f}x")
    bf16 = records.get("cnn_gpu_bf16", {})
    if gpu.get("median_epoch_s") and bf16.get("median_epoch_s"):
        lines.append(f"CNN s/epoch, GPU 32-true / GPU bf16-mixed: {gpu['median_epoch_s'] / bf16['median_epoch_s']:.2f}x")
    for name, record in records.items():
        if name.startswith("parity"):
            lines.append(f"\n{name}: evaluate rc={record.get('evaluate_rc')} matches metrics.json="
                         f"{record.get('evaluate_matches')} (max abs diff {record.get('evaluate_max_abs_diff')}); "
                         f"predict rc={record.get('predict_rc')} same labels on the test rows "
                         f"{record.get('predict_same_labels')}/{record.get('predict_test_rows')}, max proba diff "
                         f"{record.get('predict_max_abs_proba_diff')}, test accuracy "
                         f"{record.get('predict_test_accuracy')}, matches={record.get('predict_matches')}; "
                         f"CUDA_VISIBLE_DEVICES={record.get('CUDA_VISIBLE_DEVICES')!r}, cuda available there: "
                         f"{record.get('cuda_available_here')}"
                         + "".join(f"; {k}: {record[k]}" for k in ("evaluate_error", "predict_error") if k in record))
    for name, record in records.items():
        if record.get("error"):
            lines.append(f"\n{name} error: {record['error']}")
    lines.append("\nNot proven here: DDP on 2 GPUs (the machine has one H200; trainer.devices=1 only), "
                 "XGBoost's CUDA device (its wheel, about 130 MB, is over the 64 MiB a call can carry).")
    text = "\n".join(lines) + "\n"
    Path(out).write_text(text)
    print(text)
    return 0


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "env":
        return env(*args)
    if command == "train":
        split = args.index("--")
        return train(*args[:split], args[split + 1:])
    if command == "inputs":
        return inputs(*args)
    if command == "parity":
        return parity(*args)
    if command == "summary":
        return summary(*args)
    print(f"unknown command {command}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
