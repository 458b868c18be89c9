#!/usr/bin/env bash
# The labs' default sweeps on one GPU, in one command. By default ch03 + ch04, in at most 4 minutes on an
# H100/H200, so that a second try fits in a 15-minute rental; name the labs to run others:
#
#   bash labs/run_gpu.sh                  # ch03 ch04: at most 4 minutes
#   bash labs/run_gpu.sh ch06             # one lab (ch06: at most about 2.5 minutes; not yet run on a GPU)
#   bash labs/run_gpu.sh ch03 ch04 ch06   # all three: at most about 6 minutes
#
# What the first H200 run (2026-11-30, docs/assets/labs/gpu-runs/) took, and what changed since:
#   ch03  stopped after about 2.5 minutes when its compiled path's logits check refused it; the check now compares
#         with an fp32 reference and a refused path no longer ends the run (145 s soft, 165 s hard)
#   ch04  finished at the edge of its old 55 s hard stop (CUDA start-up and the 8B build come first): 40 / 75 s
#   ch07  measured for ~150 s and its plotting ran into the hard stop; the lab now stops measuring 20 s before its
#         budget and warms every attention shape first (estimated 105-115 s of measuring): 150 / 170 s
#   ch08  about 40 s without the INT8 point, which is now skipped on CUDA (torch has no fast weight-only INT8
#         kernel; --int8-reference times the slow one): 60 / 90 s
#   ch09  cut at its hard stop after 12 points; the GPU defaults are now smaller (estimated 135-150 s): 150 / 180 s
#   ch11  34 s, before each point also recorded the backend that ran and retried refused GQA calls: 90 / 120 s
#
#   LAB_GIT_COMMIT=$(git rev-parse HEAD) bash labs/run_gpu.sh   # on a copy of the tree without .git
#   RUN_GPU_WITHIN=580 bash labs/run_gpu.sh ch04 ch03 ch07 ch08 ch11 ch09 ch06
#                                         # as many as surely fit in 580 s, in the order named: a lab starts only
#                                         # if its hard stop still ends inside the limit (for a rented machine)
#
# Each lab has a budget (points past it are recorded as skipped) and a hard stop (timeout sends Ctrl-C, which
# keeps every finished point), so one slow part cannot eat the others' time. ch03's compiled path compiles for
# about a minute; transformers' own compile path (hf-compile) is opt-in:
#   python labs/ch03_prefill_decode.py --paths compile-graph,static-graph,hf-compile
#
# Data (JSON with provenance) lands in docs/assets/labs/<lab>/data/<chapter>-<gpu>.json and figures next to it
# in figures/. If $OUT is set (a folder copied back from a remote GPU machine), this run's data files and the
# log go there, flat: $OUT/<chapter>-<gpu>.json and $OUT/run_gpu.log.
# Without a CJK font the Chinese figures are skipped; re-render them anywhere with --plot-only.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-$(command -v python3 || command -v python)}

# name  folder  script  budget_s  hard_stop_s  what
# Chapter 10's lab (ch10_serving.py) is not here: it loads a vLLM server, and the GPU machine this script targets
# has no vLLM (torch, transformers, nvidia-ml-py, matplotlib only); docs/en/labs/ch10-serving.md says what to run.
LABS="
ch03 ch03-prefill-decode ch03_prefill_decode.py 145 165 prefill vs decode (Llama-3.1-8B shape, bf16, batch 1..64, four decode paths; MBU of each)
ch04 ch04-gpu-basics ch04_gpu_basics.py 40 75 GPU basics (matmul TFLOPS, bandwidth vs buffer size, memory vs calc, NVML trace)
ch06 ch06-kv-cache ch06_kv_cache.py 110 130 KV cache (memory vs calc, contiguous/paged/8-bit decode, prefix reuse, fragmentation replay)
ch07 ch07-batching ch07_batching.py 150 170 request scheduling (Llama-3.2-1B shape: static vs continuous batching, equal lengths, chunked prefill, transformers' own continuous batching)
ch08 ch08-quantization ch08_quantization.py 60 90 quantization (quality of a small trained model: RTN/GPTQ/FP8; bf16, INT8/INT4 weight-only, FP8 matmuls of the 8B shape vs calc)
ch09 ch09-speculative ch09_speculative.py 150 180 speculative decoding (lossless test, early-exit and noisy drafts vs formula, prompt lookup, batch sweep)
ch11 ch11-attention-moe ch11_attention_moe.py 90 120 attention backends (time, memory vs score-matrix bytes) and MoE layers (throughput vs dense, experts touched vs calc, load)
"
chosen=("$@")
[ ${#chosen[@]} -gt 0 ] || chosen=(ch03 ch04)
for name in "${chosen[@]}"; do
  grep -q "^$name " <<<"$LABS" || { echo "run_gpu.sh: unknown lab '$name'; choose from: $(awk 'NF {printf "%s ", $1}' <<<"$LABS")" >&2; exit 2; }
done

[[ "${RUN_GPU_WITHIN:-0}" =~ ^[0-9]+$ ]] || { echo "run_gpu.sh: RUN_GPU_WITHIN must be whole seconds, got '$RUN_GPU_WITHIN'" >&2; exit 2; }
log=$(mktemp -t labs-run-XXXX.log)
started=$(mktemp -t labs-started-XXXX)  # data files newer than this were written by this run
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
{
  echo "== $(date -u +%FT%TZ) $($py -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "GPU", torch.cuda.get_device_name() if torch.cuda.is_available() else None)')"
  nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,memory.total --format=csv 2>/dev/null
  t0=$SECONDS
  for name in "${chosen[@]}"; do
    read -r _ folder script budget stop what < <(grep "^$name " <<<"$LABS")
    if [ -n "${RUN_GPU_WITHIN:-}" ] && [ $((SECONDS - t0 + stop)) -gt "$RUN_GPU_WITHIN" ]; then
      echo "== $name: not started (its hard stop of ${stop} s would end past RUN_GPU_WITHIN=${RUN_GPU_WITHIN} s; $((SECONDS - t0)) s used)"
      continue
    fi
    echo "== $name: $what"
    timeout --signal=INT --kill-after=10 "$stop" "$py" "labs/$script" --budget-s "$budget"
    echo "== $name exit code $?"
  done
} 2>&1 | tee "$log"

echo "== where things went"
for name in "${chosen[@]}"; do
  folder=$(grep "^$name " <<<"$LABS" | awk '{print $2}')
  ls -l "docs/assets/labs/$folder/data/" "docs/assets/labs/$folder/figures/" 2>/dev/null
  if [ -n "${OUT:-}" ]; then
    # Flat and few: the remote machine returns at most 8 files, 2 folders down. The data files are what
    # matter (figures re-render from them anywhere with --plot-only), plus this log.
    find "docs/assets/labs/$folder/data" -name '*.json' -newer "$started" -exec cp {} "$OUT/" \;
  fi
done
if [ -n "${OUT:-}" ]; then
  cp "$log" "$OUT/run_gpu.log"
  echo "copied to $OUT: $(ls "$OUT" | tr '\n' ' ')"
fi
echo "log: $log"
