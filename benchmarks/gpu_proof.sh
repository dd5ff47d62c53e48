#!/usr/bin/env bash
# Proves Coupler's GPU paths on a machine with one CUDA GPU, in one run, and measures them.
#
#   OUT=DIR bash benchmarks/gpu_proof.sh            # on the GPU machine (installs Coupler into $WORK/site first)
#   GPU_PROOF_CPU=1 OUT=DIR PYTHON=.venv/bin/python bash benchmarks/gpu_proof.sh   # dry run on a CPU, tiny settings
#
# Steps, each independent (a failing one is recorded and the next runs):
#   install      pip install --no-index --no-deps --no-build-isolation --target $WORK/site .whl/*.whl ./core
#                ./plugins/{torch,cnn,sklearn,rnn,transformer}   (xgboost is not installed: no wheel there)
#   env          nvidia-smi; torch / lightning / ... versions, torch.cuda.is_available(), the device; coupler plugins
#   cnn_gpu_32   coupler train data=digits model=cnn trainer.accelerator=gpu trainer.precision=32-true
#   cnn_gpu_bf16 the same at trainer.precision=bf16-mixed
#   parity_*     coupler evaluate / coupler predict of cnn_gpu_32 and cnn_gpu_bf16 with CUDA_VISIBLE_DEVICES= (CPU)
#   cnn_cpu_32   the CNN with trainer.accelerator=cpu on the same machine (s/epoch ratio)
#   cnn_gpu_ddp  trainer.strategy=ddp trainer.devices=1 trainer.accelerator=gpu (one GPU: 2-GPU DDP is not proven)
#   lstm_gpu_bf16         model=lstm data=timeseries on the GPU at bf16-mixed (lstm_gpu_32 too if that fails)
#   transformer_gpu_bf16  model=transformer data=sequences on the GPU at bf16-mixed
# Files under $OUT (at most 8): steps.log (everything printed), env.txt (nvidia-smi, plugins), results.jsonl (one
# JSON object per step), summary.md (the table), runs.tar.gz (each run directory without checkpoints).
#
# Environment: OUT (required), WORK (scratch, default /tmp/gpu_proof), PYTHON (default python3),
# GPU_PROOF_CPU=1 (accelerator cpu everywhere, tiny epochs), GPU_PROOF_INSTALL=0 (use the Coupler already
# importable), EPOCHS / LSTM_EPOCHS / TRANSFORMER_EPOCHS, STEP_TIMEOUT (seconds per training
# step), DEADLINE (seconds after the start past which no training runs).
set +e
export PYTHONUNBUFFERED=1
: "${OUT:?set OUT to the folder for the results}"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HELPER="$ROOT/benchmarks/gpu_proof.py"
WORK=${WORK:-/tmp/gpu_proof}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT" "$WORK"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
exec > >(tee -a "$OUT/steps.log") 2>&1
TEE_PID=$!

if [ "${GPU_PROOF_CPU:-0}" = 1 ]; then
  ACCEL=cpu; EPOCHS=${EPOCHS:-2}; LSTM_EPOCHS=${LSTM_EPOCHS:-2}; TRANSFORMER_EPOCHS=${TRANSFORMER_EPOCHS:-2}
else
  ACCEL=gpu; EPOCHS=${EPOCHS:-20}; LSTM_EPOCHS=${LSTM_EPOCHS:-30}; TRANSFORMER_EPOCHS=${TRANSFORMER_EPOCHS:-40}
fi
STEP_TIMEOUT=${STEP_TIMEOUT:-150}
DEADLINE=${DEADLINE:-340}  # seconds after the start: no training step starts later, and none runs past it
declare -A RC
T0=$SECONDS

step() {  # step NAME: a banner with the time spent so far
  echo; echo "=== $1 ($(date -u +%H:%M:%S), +$((SECONDS - T0)) s)"
}

# --- install ----------------------------------------------------------------------------------------------
step install
cd "$ROOT" || exit 3
if [ "${GPU_PROOF_INSTALL:-1}" = 1 ]; then
  SITE="$WORK/site"
  rm -rf "$SITE"
  DISTS=(./core ./plugins/torch ./plugins/cnn ./plugins/sklearn ./plugins/rnn ./plugins/transformer)
  "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --upgrade \
      --target "$SITE" .whl/*.whl "${DISTS[@]}"
  RC[install]=$?
  if [ "${RC[install]}" != 0 ] && ls .whl/build/setuptools-*.whl >/dev/null 2>&1; then
    echo "install failed (rc ${RC[install]}); again with the carried setuptools for the build"
    rm -rf "$SITE" "$WORK/buildtools"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/buildtools" .whl/build/setuptools-*.whl
    PYTHONPATH="$WORK/buildtools" "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
        --no-cache-dir --upgrade --target "$SITE" .whl/*.whl "${DISTS[@]}"
    RC[install]=$?
  fi
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
  RC[install]=skipped
fi
echo "install rc=${RC[install]}"
COUPLER=("$PYTHON" -m coupler.cli)

# --- env --------------------------------------------------------------------------------------------------
step env
{
  echo "## date"; date -u
  echo "## nvidia-smi"; timeout 30 nvidia-smi || echo "nvidia-smi: rc $?"
  echo "## nvidia-smi -L"; timeout 30 nvidia-smi -L
  echo "## uname / cpus"; uname -a; nproc
  echo "## python"; command -v "$PYTHON"; "$PYTHON" --version
  echo "## coupler plugins (xgboost is not installed here)"; timeout 60 "${COUPLER[@]}" plugins
  echo "plugins rc=$?"
} 2>&1 | tee "$OUT/env.txt"
timeout 120 "$PYTHON" "$HELPER" env "$RESULTS"
RC[env]=$?

train() {  # train NAME OVERRIDES...: one coupler train, timed per epoch
  local name=$1 limit left=$((DEADLINE - (SECONDS - T0))); shift
  step "$name"
  limit=$((left < STEP_TIMEOUT ? left : STEP_TIMEOUT))
  if [ "$limit" -lt 20 ]; then
    echo "$name skipped: the deadline (${DEADLINE} s) is near"; RC[$name]=skipped; return
  fi
  rm -rf "${WORK:?}/runs/$name"
  timeout -k 10 "$limit" "$PYTHON" "$HELPER" train "$name" "$RESULTS" "$WORK/runs/$name" -- "$@"
  RC[$name]=$?
  echo "$name rc=${RC[$name]}"
}

parity() {  # parity RUN_NAME: coupler evaluate / predict of a finished run with the GPU hidden
  local name=$1 run="$WORK/runs/$1" e p
  step "parity_$name"
  if [ ! -f "$run/manifest.json" ]; then
    echo "no finished run $run: skipped"; RC[parity_$name]=skipped; return
  fi
  if [ $((DEADLINE - (SECONDS - T0))) -lt 30 ]; then
    echo "parity_$name skipped: the deadline (${DEADLINE} s) is near"; RC[parity_$name]=skipped; return
  fi
  CUDA_VISIBLE_DEVICES= timeout -k 10 120 "${COUPLER[@]}" evaluate "$run" --json >"$WORK/eval_$name.json"
  e=$?
  cat "$WORK/eval_$name.json"
  CUDA_VISIBLE_DEVICES= timeout -k 10 120 "${COUPLER[@]}" predict "$run" "$WORK/digits.csv" "$WORK/pred_$name.csv"
  p=$?
  CUDA_VISIBLE_DEVICES= timeout 120 "$PYTHON" "$HELPER" parity "parity_$name" "$RESULTS" "$run" \
      "$WORK/eval_$name.json" "$WORK/pred_$name.csv" "$e" "$p"
  RC[parity_$name]=$?
}

CNN=(data=digits model=cnn "trainer.max_epochs=$EPOCHS")
train cnn_gpu_32 "${CNN[@]}" "trainer.accelerator=$ACCEL" trainer.precision=32-true
train cnn_gpu_bf16 "${CNN[@]}" "trainer.accelerator=$ACCEL" trainer.precision=bf16-mixed
"$PYTHON" "$HELPER" inputs "$WORK/digits.csv"
parity cnn_gpu_32
parity cnn_gpu_bf16
train cnn_cpu_32 "${CNN[@]}" trainer.accelerator=cpu trainer.precision=32-true
train cnn_gpu_ddp "${CNN[@]}" "trainer.accelerator=$ACCEL" trainer.strategy=ddp trainer.devices=1 \
    trainer.precision=32-true
LSTM=(data=timeseries model=lstm "trainer.max_epochs=$LSTM_EPOCHS" "trainer.accelerator=$ACCEL")
train lstm_gpu_bf16 "${LSTM[@]}" trainer.precision=bf16-mixed
if [ "${RC[lstm_gpu_bf16]}" != 0 ]; then  # is it bf16, or the LSTM on this device?
  train lstm_gpu_32 "${LSTM[@]}" trainer.precision=32-true
fi
# model.batch_size=16 and 40 epochs: what the transformer's README gives for this set (0.975 / 0.967)
train transformer_gpu_bf16 data=sequences model=transformer model.batch_size=16 \
    "trainer.max_epochs=$TRANSFORMER_EPOCHS" "trainer.accelerator=$ACCEL" trainer.precision=bf16-mixed

# --- results ----------------------------------------------------------------------------------------------
step summary
"$PYTHON" "$HELPER" summary "$RESULTS" "$OUT/summary.md"
{
  echo; echo "exit codes:"
  for key in install env cnn_gpu_32 cnn_gpu_bf16 parity_cnn_gpu_32 parity_cnn_gpu_bf16 cnn_cpu_32 cnn_gpu_ddp \
             lstm_gpu_bf16 lstm_gpu_32 transformer_gpu_bf16; do
    echo "  $key: ${RC[$key]:-not run}"
  done
  echo "not proven: 2-GPU DDP (one GPU here), XGBoost's CUDA device (its wheel is over the 64 MiB a call carries)"
  echo "total: $((SECONDS - T0)) s"
} | tee -a "$OUT/summary.md"
(cd "$WORK" && tar --exclude=checkpoints -czf "$OUT/runs.tar.gz" runs eval_*.json 2>/dev/null)
ls -la "$OUT"
exec >/dev/null 2>&1
wait "$TEE_PID"  # steps.log complete before the command returns
