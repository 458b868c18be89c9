"""Capacity planner: the cheapest tensor-parallel size × replica count that meets p90 TTFT and TPOT targets.

For each TP size the model fits at, it first simulates a burst (every request queued at t = 0) to get the replica's
saturated rate, and rejects any replica count whose per-replica rate exceeds ``MAX_LOAD`` of it. From the fewest
replicas below that load it simulates one replica (calc/simulate.py) at rate / replicas: ``SIM_SECONDS`` of
arrivals from the same seeded request stream (arrival gaps scale with 1/rate; the count is capped so a browser
answers in seconds), with the first ``WARMUP_FRACTION`` of the arrival window left out of the statistics, and takes
the fewest replicas whose p90 TTFT and p90 TPOT meet the targets. The router is a random split: each replica sees
an independent Poisson stream of rate / replicas (a round-robin or least-loaded router would give smoother arrivals). Cost follows
from the GPUs it needs and the registry's dated GPU price. Where nothing fits it says why: the model does not
fit in memory with room for one request, the target is below what one request alone gets on an empty engine
(the roofline plus the engine's fixed costs per step), or it would take more than ``max_replicas`` replicas.
It searches tensor parallelism and replicas only: no pipeline or expert parallelism (calc/perf.py models those for
a static batch; the simulator's StepModel does not).
"""

from __future__ import annotations

import math

from .cost import HOURS_PER_MONTH, SECONDS_PER_MONTH
from .simulate import StepCost, StepModel, parse_lengths, requests, simulate
from .strings import t

TP_SIZES = (1, 2, 4, 8)
MAX_REPLICAS = 4096
SIM_SECONDS = 60.0  # seconds of arrivals one SLO check simulates (at the replica's rate), so a queue can build
WARMUP_FRACTION = 0.2  # the first 20 % of the arrival window is left out of the latency statistics
MAX_LOAD = 0.8  # a replica is overloaded above this fraction of its simulated saturated rate (near 0.85 the
# p90 TPOT of a 3,000-request run still moves by 30 % from one seed to another: the queue is too close to the knee)
MIN_REQUESTS = 200
SIM_OUTPUT_TOKENS = 200_000  # output tokens one check generates at most (it caps the request count)
MAX_REQUESTS = 1000


def tp_sizes(m, gpu) -> list[int]:
    """TP sizes the model's heads allow (and, above 1, a GPU with a GPU-to-GPU link)."""
    out = []
    for tp in TP_SIZES:
        if m.num_attention_heads % tp:
            continue
        if not m.is_mla and m.num_key_value_heads % tp and tp % m.num_key_value_heads:
            continue
        if tp > 1 and not gpu.interconnect_bytes_per_s:
            continue
        out.append(tp)
    return out


def sim_requests(prompt, output, n: int | None = None) -> int:
    """The most requests one planner simulation serves (a given ``n``, or a cap on work: at most
    ``SIM_OUTPUT_TOKENS`` output tokens and ``MAX_REQUESTS`` requests, at least ``MIN_REQUESTS``)."""
    if n:
        return n
    mean_out = parse_lengths(output, "output").mean
    return int(max(MIN_REQUESTS, min(MAX_REQUESTS, SIM_OUTPUT_TOKENS / max(mean_out, 1))))


def check_requests(per_replica_rate: float, cap: int) -> int:
    """Requests one SLO check simulates at ``per_replica_rate``: ``SIM_SECONDS`` of arrivals, within
    [min(``MIN_REQUESTS``, cap), cap]."""
    return int(max(min(MIN_REQUESTS, cap), min(cap, math.ceil(SIM_SECONDS * per_replica_rate))))


def _p(sim, metric, q="p90"):
    return sim[metric][q]


def _meets(sim, ttft, tpot) -> bool:
    a, b = _p(sim, "ttft_s"), _p(sim, "tpot_s")
    return a is not None and a <= ttft and (b is None or b <= tpot)


def plan(m, gpu, weights: str, kv_dtype: str, rate: float, prompt, output, ttft_p90_s: float, tpot_p90_s: float,
         usd_per_gpu_hour: float | None, cost: StepCost | None = None, n_requests: int | None = None,
         seed: int = 0, max_num_seqs: int = 256, max_num_batched_tokens: int = 8192, chunked_prefill: bool = True,
         max_replicas: int = MAX_REPLICAS, curve_points: int = 5, reserve_full_prompt: bool = True) -> dict:
    n = sim_requests(prompt, output, n_requests)
    n_fixed = n_requests or None  # a count the user chose: every check simulates exactly that many
    base = requests(n, 1.0, prompt, output, seed=seed, max_len=m.max_position_embeddings)
    longest = max(r.prompt_len + r.output_len for r in base)
    p90_prompt = sorted(r.prompt_len for r in base)[int(0.9 * (n - 1))]
    mean_prompt = sum(r.prompt_len for r in base) / n
    mean_output = sum(r.output_len for r in base) / n
    candidates, reasons = [], []
    sims = {}

    def run(sm, blocks, per_replica_rate):
        """One SLO check: the first requests of the seeded stream (``SIM_SECONDS`` of arrivals at this rate), with
        the first ``WARMUP_FRACTION`` of the arrival window left out of the latency statistics."""
        k = n_fixed or check_requests(per_replica_rate, n)
        reqs = [r.__class__(r.id, r.arrival / per_replica_rate, r.prompt_len, r.output_len) for r in base[:k]]
        warmup = WARMUP_FRACTION * reqs[-1].arrival
        return simulate(sm, reqs, max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                        chunked_prefill=chunked_prefill, num_blocks=blocks, slo_ttft_s=ttft_p90_s,
                        slo_tpot_s=tpot_p90_s, warmup_s=warmup, reserve_full_prompt=reserve_full_prompt)

    def saturation(sm, blocks, held):
        """The replica's simulated saturated rate: every base request queued at t = 0 (a burst), completions per
        second between the 10th and 90th percentile of finish times. The burst must outlast the replica's first
        waves: where its first wave takes half the base requests or more (a large max_num_seqs on a large GPU, or
        long outputs: a wave starts on its prompts' blocks alone and is preempted as it grows), they would run side
        by side and finish together, and that window would say nothing, so the burst is then four first waves,
        drawn from the same seeded stream. ``held``: the replica's blocks per sequence (StepModel.kv_blocks_held)."""
        first_wave = min(max_num_seqs, blocks // max(1, held(round(mean_prompt), max_num_batched_tokens)))
        burst = base if n > 2 * first_wave else requests(4 * first_wave, 1.0, prompt, output, seed=seed,
                                                          max_len=m.max_position_embeddings)
        reqs = [r.__class__(r.id, 0.0, r.prompt_len, r.output_len) for r in burst]
        return simulate(sm, reqs, max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                        chunked_prefill=chunked_prefill, num_blocks=blocks,
                        reserve_full_prompt=reserve_full_prompt)["requests_per_s_steady"]

    for tp in tp_sizes(m, gpu):
        sm = StepModel(m, gpu, weights, kv_dtype, tp, cost)
        blocks = sm.kv_blocks(max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs)
        held, batches = sm.kv_blocks_held(max_num_batched_tokens)
        need = held(longest, batches * max_num_batched_tokens)  # the longest request's blocks, as simulate() checks
        if need > blocks:
            reasons.append({"tp": tp, "why": "memory", "message": t(
                f"TP={tp}：权重之外的 KV 缓存只有 {blocks} 块（每块 {sm.block_size} 个 token），放不下一个 {longest} token 的请求（要 {need} 块）",
                f"TP={tp}: the KV cache left beside the weights holds {blocks} blocks of {sm.block_size} "
                f"{'token' if sm.block_size == 1 else 'tokens'}, fewer than "
                f"one {longest}-token request needs ({need})")})
            continue
        # the floor: one request alone on an empty engine
        chunk = max_num_batched_tokens if chunked_prefill else p90_prompt
        ttft_floor, done = sm.cost.request_latency_s, 0
        while done < p90_prompt:
            c = min(chunk, p90_prompt - done)
            ttft_floor += sm.step_s([(done, c)], 0, 0)
            done += c
        tpot_floor = sm.decode_step_s(1, round(mean_prompt + mean_output / 2))
        if ttft_floor > ttft_p90_s or tpot_floor > tpot_p90_s:
            zh, en = [], []
            if ttft_floor > ttft_p90_s:
                zh.append(f"TTFT 下限 {ttft_floor:.3g} s > 目标 {ttft_p90_s:.3g} s")
                en.append(f"TTFT floor {ttft_floor:.3g} s > target {ttft_p90_s:.3g} s")
            if tpot_floor > tpot_p90_s:
                zh.append(f"TPOT 下限 {tpot_floor * 1e3:.3g} ms（平均上下文）> 目标 {tpot_p90_s * 1e3:.3g} ms")
                en.append(f"TPOT floor {tpot_floor * 1e3:.3g} ms (at the mean context) > target {tpot_p90_s * 1e3:.3g} ms")
            reasons.append({"tp": tp, "why": "roofline", "message": t(
                f"TP={tp}：空载时单个请求已达不到目标：" + "，".join(zh),
                f"TP={tp}: one request alone on an empty engine misses the target: " + "; ".join(en))})
            continue
        saturated = saturation(sm, blocks, held)
        # a replica loaded above MAX_LOAD of its simulated saturated rate is rejected without a check (a finite run
        # of an overloaded queue can still look fine); the search starts at the fewest replicas below that load
        lo = max(1, math.ceil(rate / (MAX_LOAD * saturated) - 1e-9)) if saturated else 1
        # fewest replicas meeting the targets: grow by 1.5× from there, then bisect
        r, last_bad, found = lo, lo - 1, None
        while r <= max_replicas:
            sim = run(sm, blocks, rate / r)
            sims[(tp, r)] = sim
            if _meets(sim, ttft_p90_s, tpot_p90_s):
                found = r
                break
            last_bad = r
            r = max(r + 1, math.ceil(r * 1.5))
        if found is None:
            reasons.append({"tp": tp, "why": "replicas", "message": t(
                f"TP={tp}：超过 {max_replicas} 个副本仍达不到目标",
                f"TP={tp}: more than {max_replicas} replicas would be needed")})
            continue
        while found - last_bad > 1:
            mid = (found + last_bad) // 2
            sim = run(sm, blocks, rate / mid)
            sims[(tp, mid)] = sim
            if _meets(sim, ttft_p90_s, tpot_p90_s):
                found = mid
            else:
                last_bad = mid
        sim = sims[(tp, found)]
        gpus = tp * found
        monthly = gpus * usd_per_gpu_hour * HOURS_PER_MONTH if usd_per_gpu_hour is not None else None
        out_tokens_month = rate * mean_output * SECONDS_PER_MONTH
        candidates.append({
            "tp": tp, "replicas": found, "gpus": gpus,
            "ttft_p90_s": sim["ttft_s"]["p90"], "tpot_p90_s": sim["tpot_s"]["p90"],
            "itl_p99_s": sim["itl_s"]["p99"], "e2e_p90_s": sim["e2e_s"]["p90"],
            "utilization": rate / found / saturated if saturated else None, "kv_usage_peak": sim["kv_usage_peak"],
            "preemptions": sim["preemptions"], "slo_attainment": sim["slo_attainment"],
            "requests_per_s_per_replica": rate / found, "requests_per_s_saturated": saturated,
            # goodput of the whole service in steady state: the arrival rate × the share meeting both targets
            "kv_blocks": blocks, "goodput_requests_per_s": rate * sim["slo_attainment"]
            if sim["slo_attainment"] is not None else None,
            "monthly_cost_usd": monthly,
            "usd_per_million_output_tokens": monthly / out_tokens_month * 1e6 if monthly is not None else None,
        })

    candidates.sort(key=lambda c: (c["gpus"], c["ttft_p90_s"] + (c["tpot_p90_s"] or 0.0)))
    best = candidates[0] if candidates else None
    curve = []
    if best is not None and curve_points:
        sm = StepModel(m, gpu, weights, kv_dtype, best["tp"], cost)
        per_replica_max = best["requests_per_s_saturated"] or rate / best["replicas"]
        for i in range(1, curve_points + 1):
            per = 1.2 * per_replica_max * i / curve_points  # past the simulated saturated rate, to show the knee
            sim = run(sm, best["kv_blocks"], per)
            curve.append({"requests_per_s": per * best["replicas"], "ttft_p90_s": sim["ttft_s"]["p90"],
                          "tpot_p90_s": sim["tpot_s"]["p90"]})
    return {
        "fits": best is not None,
        "reason": None if best else _why(reasons),
        "simulated_requests": n_fixed or (check_requests(rate / best["replicas"], n) if best else n),
        "mean_prompt_len": mean_prompt,
        "mean_output_len": mean_output,
        "best": best,
        "candidates": candidates,
        "rejected": reasons,
        "load_curve": curve,
    }


def saturated_rate(sm, mean_prompt: float, mean_output: float, blocks: int, max_num_seqs: int,
                   max_num_batched_tokens: int = 8192, block_size: int | None = None) -> float:
    """Requests per second one replica sustains when the queue never empties (an estimate, no simulation).

    It runs the largest batch the KV cache and ``max_num_seqs`` allow. Each request costs its prompt, at the
    per-token time of a full prefill step (the scheduler packs prompts into few, large, compute-bound steps, so
    they hardly overlap with the decodes' memory traffic), plus its share of the decode steps: output tokens ×
    step time ÷ batch. The planner does not use it (it simulates a burst instead, plan()'s ``saturation``); the
    simulator's saturated runs land within 20 % of it (tests/test_simulate.py), mostly above it."""
    per_request_tokens = mean_prompt + mean_output
    block_size = sm.block_size if block_size is None else block_size
    batch = max(1, min(max_num_seqs, int(blocks * block_size // max(per_request_tokens, 1))))
    ctx = round(mean_prompt + mean_output / 2)
    decode = sm.decode_step_s(batch, batch * ctx)
    chunk = max(1, min(max_num_batched_tokens, round(mean_prompt) * batch))
    prefill_per_token = sm.step_s([(0, chunk)], 0, 0) / chunk
    per_request_s = mean_prompt * prefill_per_token + max(mean_output - 1, 0) * decode / batch
    return 1.0 / per_request_s if per_request_s > 0 else None


def _why(reasons: list[dict]) -> dict:
    if not reasons:
        return t("没有可用的张量并行规模", "no tensor-parallel size is possible for this model and GPU")
    kinds = {r["why"] for r in reasons}
    if kinds == {"memory"}:
        head = t("模型放不下：", "The model does not fit: ")
    elif kinds == {"roofline"}:
        head = t("目标低于单个请求的下限（屋顶线加上引擎的固定开销）：",
                 "The target is below what one request alone gets (the roofline plus the engine's fixed costs): ")
    elif "replicas" in kinds:
        head = t("没有满足目标的配置：", "No configuration meets the targets: ")
    else:
        head = t("没有可用的配置：", "No configuration fits: ")
    return {lang: head[lang] + "；".join(r["message"][lang] for r in reasons) if lang == "zh"
            else head[lang] + "; ".join(r["message"][lang] for r in reasons) for lang in ("zh", "en")}
