#!/usr/bin/env bash
# Both labs' full default sweeps on one GPU, in one command: an estimated 5 minutes on an H100 (not yet
# timed on one), never more than about 7 (each lab has a budget and a hard stop).
#
#   bash labs/run_gpu.sh            # from the repository root or anywhere
#
# Data (JSON with provenance) lands in docs/assets/labs/<lab>/data/<gpu>.json and figures next to it in
# figures/. Each lab writes its data point by point and has its own time budget (--budget-s) plus a hard stop
# (timeout sends Ctrl-C, which keeps every finished point), so one slow part cannot eat the other's time.
# If $OUT is set (a folder copied back from a remote GPU machine), this run's data files and the log go there,
# flat: $OUT/<lab>.<gpu>.json and $OUT/run_gpu.log.
# Without a CJK font the Chinese figures are skipped; re-render them anywhere with --plot-only.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-$(command -v python3 || command -v python)}
log=$(mktemp -t labs-run-XXXX.log)
started=$(mktemp -t labs-started-XXXX)  # data files newer than this were written by this run
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

{
  echo "== $(date -u +%FT%TZ) $($py -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "GPU", torch.cuda.get_device_name() if torch.cuda.is_available() else None)')"
  nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,memory.total --format=csv 2>/dev/null
  echo "== ch03: prefill vs decode (Llama-3.1-8B shape, bf16, batch 1..64, four decode paths)"
  timeout --signal=INT --kill-after=20 250 "$py" labs/ch03_prefill_decode.py --budget-s 210
  echo "== ch03 exit code $?"
  echo "== ch04: GPU basics (matmul TFLOPS, bandwidth vs buffer size, memory vs calc, NVML trace)"
  timeout --signal=INT --kill-after=20 160 "$py" labs/ch04_gpu_basics.py --budget-s 130
  echo "== ch04 exit code $?"
} 2>&1 | tee "$log"

echo "== where things went"
for lab in ch03-prefill-decode ch04-gpu-basics; do
  ls -l docs/assets/labs/$lab/data/ docs/assets/labs/$lab/figures/ 2>/dev/null
done
if [ -n "${OUT:-}" ]; then
  # Flat and few: the remote machine returns at most 8 files, 2 folders down. The data files are what
  # matter (figures re-render from them anywhere with --plot-only), plus this log.
  for lab in ch03-prefill-decode ch04-gpu-basics; do
    find docs/assets/labs/$lab/data -name '*.json' -newer "$started" -exec sh -c 'cp "$1" "$2/$3.$(basename "$1")"' _ {} "$OUT" "$lab" \;
  done
  cp "$log" "$OUT/run_gpu.log"
  echo "copied to $OUT: $(ls "$OUT" | tr '\n' ' ')"
fi
echo "log: $log"
