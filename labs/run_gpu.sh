#!/usr/bin/env bash
# The labs' default sweeps on one GPU, in one command: ch03 + ch04 in at most 4 minutes, ch06 in at most 2
# more, on an H100/H200 (not yet timed on one), so a second try fits in a 15-minute rental: each lab has a budget (points past it are recorded as
# skipped) and a hard stop (timeout sends Ctrl-C, which keeps every finished point), so one slow part cannot
# eat the other's time. ch03's compiled path compiles for about a minute; transformers' own compile path
# (hf-compile) is opt-in: python labs/ch03_prefill_decode.py --paths compile-graph,static-graph,hf-compile
#
#   bash labs/run_gpu.sh            # from the repository root or anywhere
#   LAB_GIT_COMMIT=$(git rev-parse HEAD) bash labs/run_gpu.sh   # on a copy of the tree without .git
#
# Data (JSON with provenance) lands in docs/assets/labs/<lab>/data/<chapter>-<gpu>.json and figures next to it
# in figures/. If $OUT is set (a folder copied back from a remote GPU machine), this run's data files and the
# log go there, flat: $OUT/<chapter>-<gpu>.json and $OUT/run_gpu.log.
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
  echo "== ch03: prefill vs decode (Llama-3.1-8B shape, bf16, batch 1..64, four decode paths; MBU of each)"
  timeout --signal=INT --kill-after=10 160 "$py" labs/ch03_prefill_decode.py --budget-s 140
  echo "== ch03 exit code $?"
  echo "== ch04: GPU basics (matmul TFLOPS, bandwidth vs buffer size, memory vs calc, NVML trace)"
  timeout --signal=INT --kill-after=10 60 "$py" labs/ch04_gpu_basics.py --budget-s 45
  echo "== ch04 exit code $?"
  echo "== ch06: KV cache (memory vs calc for GQA/MHA, dynamic/contiguous/paged/FP8/INT8 decode, prefix reuse, fragmentation replay)"
  timeout --signal=INT --kill-after=10 130 "$py" labs/ch06_kv_cache.py --budget-s 110
  echo "== ch06 exit code $?"
} 2>&1 | tee "$log"

echo "== where things went"
for lab in ch03-prefill-decode ch04-gpu-basics ch06-kv-cache; do
  ls -l docs/assets/labs/$lab/data/ docs/assets/labs/$lab/figures/ 2>/dev/null
done
if [ -n "${OUT:-}" ]; then
  # Flat and few: the remote machine returns at most 8 files, 2 folders down. The data files are what
  # matter (figures re-render from them anywhere with --plot-only), plus this log.
  for lab in ch03-prefill-decode ch04-gpu-basics ch06-kv-cache; do
    find docs/assets/labs/$lab/data -name '*.json' -newer "$started" -exec cp {} "$OUT/" \;
  done
  cp "$log" "$OUT/run_gpu.log"
  echo "copied to $OUT: $(ls "$OUT" | tr '\n' ' ')"
fi
echo "log: $log"
