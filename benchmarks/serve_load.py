"""Benchmark: ``coupler serve`` under load, against a minimal FastAPI app calling the same XGBoost model directly.

Trains one XGBoost run (``model=xgboost``, default 100 rounds) on a generated penguins-like table (a categorical
column and numeric ones, default 5,000 rows x 8 features), then serves it three ways, one at a time, each in its own
process on 127.0.0.1:

* ``coupler serve RUN`` (``--runtime native``): schema validation (pydantic), the run's preprocessing, the
  run's model, the far-outside-training count;
* ``coupler serve RUN --runtime onnx``, when the run has an ONNX export (``coupler export RUN --format onnx``, run
  here first; it refuses the categorical column, which XGBoost splits natively: ``--numbers-only`` leaves it out);
* the minimal app: FastAPI + uvicorn, ``POST /predict`` taking ``list[dict]``, building a DataFrame, the
  preprocessing written out by hand (categories as in ``preprocessor.json``), ``xgboost.Booster.predict`` on the
  run's ``model.ubj``, labels and probabilities in the same JSON shape. The raw library doing the same work,
  without validation or checks.

Each is driven by ``--clients`` concurrent clients (threads, one ``httpx.Client`` each, keep-alive) for
``--seconds`` per payload: single rows and batches of ``--batch`` (256) rows. Printed: requests/s, rows/s, p50 and
p99 latency, the server's CPU time per request (Linux), failed requests, and coupler's p50 over the minimal
app's. The servers run side by side and take turns every ``--slice`` seconds, so that a shared machine's drifting
speed falls on each alike; the CPU time per request is the steadier figure where the machine is busy. The clients
share the machine with the server: on 2 cores the absolute figures are the machine's, the ratios the comparison.

Targets: no failed request; p50 <= 1.2x the minimal app's; ONNX runtime at least as fast as native.

    .venv/bin/python benchmarks/serve_load.py [--seconds 10] [--clients 4] [--rows 5000] [--rounds 100] [--numbers-only]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MINIMAL_APP = r'''
import json, sys
from pathlib import Path

import numpy as np
import pandas as pd
import uvicorn
import xgboost as xgb
from fastapi import FastAPI

run, port = Path(sys.argv[1]), int(sys.argv[2])
state = json.loads((run / "preprocessor.json").read_text())
classes = json.loads((run / "manifest.json").read_text())["classes"]
booster = xgb.Booster()
booster.load_model(str(run / "model" / "model.ubj"))
app = FastAPI()


@app.post("/predict")
def predict(records: list[dict]) -> dict:
    frame = pd.DataFrame(records, columns=state["columns"])
    for column, spec in state["categorical"].items():
        frame[column] = pd.Categorical(frame[column], categories=spec["categories"])
    proba = booster.predict(xgb.DMatrix(frame, enable_categorical=True))
    labels = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    return {"predictions": labels.tolist(), "probabilities": [dict(zip(classes, row)) for row in proba.tolist()]}


uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
'''


def table(rows: int, features: int, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    species = rng.choice(["Adelie", "Gentoo", "Chinstrap"], rows)
    frame = pd.DataFrame({"island": np.where(species == "Gentoo", "Biscoe", rng.choice(["Dream", "Torgersen"], rows))})
    centre = {"Adelie": 0.0, "Gentoo": 1.0, "Chinstrap": 2.0}
    shift = np.array([centre[s] for s in species])
    for i in range(features - 1):
        frame[f"x{i}"] = (shift * (i % 3) + rng.normal(0, 1.0, rows)).round(3)
    frame["species"] = species
    return frame


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def coupler_program() -> list[str]:
    return [sys.executable, "-m", "coupler.cli"]


def start(command: list[str], port: int) -> subprocess.Popen:
    """Start a server and wait until it answers."""
    import httpx

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{' '.join(command)} exited: {process.stderr.read()}")
        try:
            httpx.post(f"http://127.0.0.1:{port}/predict", json=[], timeout=2)
            return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{' '.join(command)} did not answer within 120 s")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def drive(port: int, payload: bytes, clients: int, seconds: float) -> dict:
    """``clients`` threads posting ``payload`` for ``seconds``: every request's latency and the failures."""
    import httpx

    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Content-Type": "application/json"}) as http:
            http.post("/predict", content=payload)  # open the connection
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                try:
                    ok = http.post("/predict", content=payload).status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies[index].append(time.perf_counter() - started)
                failures[index] += not ok

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    return {"latencies": [x for per in latencies for x in per], "failed": sum(failures), "elapsed": elapsed}


def merged(parts: list[dict]) -> dict:
    """The slices of one server and payload together: requests/s, p50 and p99 latency (ms), server CPU per request."""
    every = sorted(x for part in parts for x in part["latencies"])
    elapsed = sum(part["elapsed"] for part in parts)
    return {"requests": len(every), "failed": sum(part["failed"] for part in parts), "rps": len(every) / elapsed,
            "p50": statistics.median(every) * 1000 if every else float("nan"),
            "p99": every[min(len(every) - 1, int(0.99 * len(every)))] * 1000 if every else float("nan"),
            "cpu_per_request": 1000 * sum(part["cpu"] for part in parts) / max(len(every), 1)}


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system; Linux ``/proc``), NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="load per server and payload")
    parser.add_argument("--slice", type=float, default=1.0, help="the servers take turns every SLICE seconds")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--numbers-only", action="store_true",
                        help="no categorical column: XGBoost's native category splits have no ONNX converter, so "
                             "only such a run has an ONNX export to serve")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    frame = table(args.rows, args.features)
    if args.numbers_only:
        frame = frame.drop(columns="island")
    frame.to_csv(work / "data.csv", index=False)
    run = work / "run"
    trained = subprocess.run([sys.executable, "-m", "coupler.train_app", "data=csv", f"data.path={work / 'data.csv'}",
                              "data.target=species", "model=xgboost", f"model.num_boost_round={args.rounds}",
                              f"hydra.run.dir={run}"], capture_output=True, text=True, cwd=work)
    if trained.returncode:
        raise SystemExit(f"training failed: {trained.stderr[-2000:]}")
    exported = subprocess.run([*coupler_program(), "export", str(run), "--format", "onnx"], capture_output=True,
                              text=True)
    onnx_note = None if exported.returncode == 0 else (exported.stderr.strip().splitlines() or ["?"])[-1]
    (work / "minimal.py").write_text(MINIMAL_APP)

    records = frame.drop(columns="species").to_dict(orient="records")
    payloads = {"1 row": json.dumps(records[:1]).encode(), f"{args.batch} rows": json.dumps(records[:args.batch]).encode()}
    servers = {"minimal FastAPI + xgboost": lambda port: [sys.executable, str(work / "minimal.py"), str(run), str(port)],
               "coupler serve (native)": lambda port: [*coupler_program(), "serve", str(run), "--port", str(port)]}
    if onnx_note is None:
        servers["coupler serve (onnx)"] = lambda port: [*coupler_program(), "serve", str(run), "--port", str(port),
                                                         "--runtime", "onnx"]
    print(f"XGBoost run: {args.rows} rows x {args.features} features, {args.rounds} rounds; {args.clients} clients, "
          f"{args.seconds:g} s per line in slices of {args.slice:g} s, the servers taking turns; cpu count {os.cpu_count()}")
    ports = {name: free_port() for name in servers}
    processes = {}
    try:
        for name, command in servers.items():
            processes[name] = start(command(ports[name]), ports[name])
        slices = max(1, round(args.seconds / args.slice))
        measured = {(name, p): [] for name in servers for p in payloads}
        for _ in range(slices):  # taking turns: a shared machine's drifting speed falls on every server alike
            for name in servers:
                for payload_name, payload in payloads.items():
                    before = cpu_seconds(processes[name].pid)
                    result = drive(ports[name], payload, args.clients, args.slice)
                    result["cpu"] = cpu_seconds(processes[name].pid) - before
                    measured[name, payload_name].append(result)
    finally:
        for process in processes.values():
            stop(process)
    results = {key: merged(parts) for key, parts in measured.items()}

    print(f"{'server':<28} {'payload':<9} {'requests':>8} {'failed':>6} {'req/s':>8} {'rows/s':>9} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'cpu ms/req':>10} {'p50 / minimal':>13}")
    for (name, payload_name), r in results.items():
        rows = int(payload_name.split()[0])
        base = results["minimal FastAPI + xgboost", payload_name]["p50"]
        print(f"{name:<28} {payload_name:<9} {r['requests']:>8} {r['failed']:>6} {r['rps']:>8.1f} {r['rps'] * rows:>9.0f} "
              f"{r['p50']:>8.2f} {r['p99']:>8.2f} {r['cpu_per_request']:>10.2f} {r['p50'] / base:>12.2f}x")
    if onnx_note is not None:
        print(f"coupler serve (onnx)         not measured: coupler export RUN --format onnx failed: {onnx_note}")
    failed = sum(r["failed"] for r in results.values())
    print(f"targets: no failed request ({'met' if not failed else f'MISSED: {failed} failed'}); coupler p50 <= 1.2x "
          f"the minimal app's (" + ", ".join(
              f"{p}: {results['coupler serve (native)', p]['p50'] / results['minimal FastAPI + xgboost', p]['p50']:.2f}x"
              for p in payloads) + ")" + ("" if onnx_note is not None else "; onnx p50 / native p50: " + ", ".join(
              f"{p}: {results['coupler serve (onnx)', p]['p50'] / results['coupler serve (native)', p]['p50']:.2f}x"
              for p in payloads)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
