"""Lab for chapter 7: static vs continuous batching, measured on one workload, and chunked prefill.

Serves a workload of requests (prompt and output lengths drawn from stated uniform distributions, all queued
at the start, greedy decoding of a random-weight model) three ways:
  - static: batches of --slots requests in arrival order; a batch is prefilled together and decodes until
    its longest request is done (finished rows keep computing, as padding);
  - continuous: the loop written here, Orca's iteration-level scheduling: after every step finished requests
    leave, waiting ones take their slots, and their prompts run in the same step as the others' decode
    tokens (one forward: linear layers over all tokens, attention per request, over a static KV cache of
    --slots slots);
  - hf-cb: Hugging Face's own continuous batching (generate_batch / init_continuous_batching), where the
    installed transformers has it.
Measured: useful output tok/s (no padding), TTFT / TPOT / E2EL percentiles, the share of wall time inside the
model's forward (host side; on CUDA also the forwards' GPU time from CUDA events), the active rows of every
step, the step counts next to the static / perfect-packing / real-schedule arithmetic (ideal_speedup); the same
workload with equal output lengths (where continuous batching has nothing to win); and chunked prefill on/off
while long prompts arrive mid-decode (per-step times, the minimum over --repeats; ITL p99 of the running
requests, TTFT of the long ones).
Both policies pay the same per step for the same batch shape: before any timed run the engine meets every
attention shape that run will meet (warm_up; decode reads keys up to a multiple of LEN_BUCKET; the chunked part
runs its schedule once untimed), and on CUDA cuDNN attention, which builds a plan per new shape, is switched off
unless --sdpa-cudnn on. The first H200 run (before this) timed static batching, measured first, paying a one-off
cost at every new attention length (most likely cuDNN's plans; that run did not record the kernel); continuous
batching, measured next, found them all seen. The data now records the cuDNN version and the backend
scaled_dot_product_attention picks for a decode, a prefill and a chunk call (sdpa_backends), and with
--repeats > 1 the two policies alternate which goes first. For a GPU run from before this fix, the figures add one that replays both
schedules (no model) and splits static batching's per-step times by new / already-met decode length.
Measuring stops PLOT_MARGIN_S seconds before --budget-s ends, so the figures are drawn inside the budget, and
matplotlib's font list is built before measuring starts.
Data goes to <out>/data/ch07-<device>.json (with provenance), figures to <out>/figures/ch07-<device>-<name>_{zh,en}.svg.

    python labs/ch07_batching.py                 # Llama-3.2-1B shape, random weights, bf16, on the GPU
    python labs/ch07_batching.py --quick         # tiny model on the CPU, seconds (the test suite runs this)
    python labs/ch07_batching.py --plot-only     # re-render figures from the data files in <out>/data/
"""

from __future__ import annotations

import random
import sys
import time
from collections import deque
from pathlib import Path

import common
import torch
import torch.nn.functional as F

LAB = "ch07-batching"
DEFAULT_OUT = common.REPO / "docs" / "assets" / "labs" / LAB
QUICK_OUT = common.REPO / "labs" / ".quick-out" / LAB
PARTS = ("throughput", "equal", "hf", "chunked")
LEN_BUCKET = 64  # decode attention reads the keys up to the next multiple of this (Engine.attention_len)
PLOT_MARGIN_S = 20  # seconds of --budget-s kept for the figures (matplotlib's first font lookup, 8 SVGs)


# ---------------------------------------------------------------------------------------------------------
# The workload


def make_workload(n, prompt_range, output_range, vocab, seed=0, equal_output=None):
    """`n` requests: (prompt token ids, output length), lengths uniform over the inclusive ranges. With
    `equal_output`, every request generates that many tokens (the prompts stay as drawn)."""
    rng, tokens = random.Random(seed), random.Random(seed + 1_000_003)  # lengths do not depend on the vocabulary
    requests = []
    for _ in range(n):
        prompt_len = rng.randint(*prompt_range)
        output_len = rng.randint(*output_range)
        prompt = [tokens.randrange(vocab) for _ in range(prompt_len)]
        requests.append({"prompt": prompt, "output_len": equal_output or output_len, "arrival_step": 0})
    return requests


def schedule_steps(output_lens, slots):
    """Steps this lab's continuous loop takes (all requests queued at step 0, FCFS, whole prompts): a request
    admitted into a free slot gives its first token in its prefill step and one more in each later step, so it
    holds the slot for output_len steps; a slot freed in a step is refilled at the next one. Once the queue is
    empty the last requests drain with fewer and fewer slots busy, which perfect packing ignores."""
    waiting, active, steps = deque(output_lens), [], 0
    while waiting or active:
        while waiting and len(active) < slots:
            active.append(waiting.popleft())
        active = [a - 1 for a in active if a > 1]
        steps += 1
    return steps


def ideal_speedup(output_lens, slots):
    """Step counts, if every step cost the same: static batching (each batch runs as long as its longest
    request), continuous batching perfectly packed (total tokens / slots, full slots to the very end), and the
    continuous loop's real FCFS schedule (schedule_steps, with its drain). `ratio` = static / packed (the
    ideal), `schedule_ratio` = static / schedule (the bound this loop can reach on this workload)."""
    static = sum(max(output_lens[i:i + slots]) for i in range(0, len(output_lens), slots))
    sched = schedule_steps(output_lens, slots)
    return {"static_steps": static, "packed_steps": -(-sum(output_lens) // slots), "schedule_steps": sched,
            "ratio": static / (sum(output_lens) / slots), "schedule_ratio": static / sched}


# ---------------------------------------------------------------------------------------------------------
# The engine: one forward over a mixed batch (decode rows of every slot + prompt pieces), static KV cache


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Engine:
    """A Llama/Qwen2 model's layers over a KV cache of `slots` x `max_len` tokens per layer.

    step(decode, pieces) runs one iteration: `decode` maps slot -> (token, position) for the requests that are
    generating; every slot gets a row (a free slot's row is computed and thrown away, as a static batch's
    padding is). `pieces` is a list of (slot, tokens, start): prompt tokens start..start+len-1 of a request
    (a whole prompt, or a chunk of one). The linear layers see all rows at once; attention runs once for the
    decode rows (over the slots' caches, masked by position) and once per piece (selective batching, Orca)."""

    def __init__(self, model, slots, max_len):
        cfg = model.config
        if cfg.model_type not in ("llama", "qwen2"):
            raise SystemExit(f"error: the lab's engine knows llama and qwen2 layers, not {cfg.model_type!r}")
        self.model, self.slots, self.max_len = model, slots, max_len
        self.n_heads, self.n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        w = model.lm_head.weight
        self.device, self.dtype = w.device, w.dtype
        # the cache holds whole LEN_BUCKET blocks, so every decode attention length is a multiple of LEN_BUCKET
        # (memory-efficient attention pads a mask whose last dimension is not aligned)
        self.cache_len = -(-max_len // LEN_BUCKET) * LEN_BUCKET
        shape = (slots, self.n_kv, self.cache_len, self.head_dim)
        self.k = [torch.zeros(shape, dtype=w.dtype, device=w.device) for _ in range(cfg.num_hidden_layers)]
        self.v = [torch.zeros(shape, dtype=w.dtype, device=w.device) for _ in range(cfg.num_hidden_layers)]

    def attention_len(self, need):
        """Keys the decode attention reads: `need` rounded up to a multiple of LEN_BUCKET (the mask hides the
        rest). Both policies then see the same few shapes, whichever met a length first: on the H200 run before
        this rounding, a new length cost a one-off price, paid by the policy that ran first (likely cuDNN
        attention building a plan per shape; that run did not record the kernel, see the lab page)."""
        return min(self.cache_len, -(-need // LEN_BUCKET) * LEN_BUCKET)

    @torch.inference_mode()
    def step(self, decode: dict, pieces: list):
        """Returns (next token of each decode slot {slot: token}, next token after each piece [token])."""
        dev, S, d = self.device, self.slots, self.head_dim
        group = self.n_heads // self.n_kv
        tokens, positions = [0] * S if decode else [], [0] * S if decode else []
        for slot, (token, pos) in decode.items():
            if pos >= self.max_len:
                raise ValueError(f"position {pos} does not fit the cache of {self.max_len}")
            tokens[slot], positions[slot] = token, pos
        spans = []
        for slot, piece, start in pieces:
            if start + len(piece) > self.max_len:
                raise ValueError(f"{start + len(piece)} tokens do not fit the cache of {self.max_len}")
            spans.append((slot, len(tokens), len(piece), start))
            tokens += piece
            positions += range(start, start + len(piece))
        tok = torch.tensor(tokens, device=dev)
        pos = torch.tensor(positions, device=dev)
        if decode:
            live = torch.tensor(sorted(decode), device=dev)
            dpos = pos[:S]
            L = self.attention_len(max(p for _, p in decode.values()) + 1)
            mask = (torch.arange(L, device=dev)[None, :] <= dpos[:, None])[:, None, None, :]  # [S, 1, 1, L]
        m = self.model.model
        x = m.embed_tokens(tok)[None]  # [1, N, hidden]
        cos, sin = m.rotary_emb(x, pos[None])
        cos, sin = cos[0][:, None, :], sin[0][:, None, :]  # [N, 1, head_dim]
        n = len(tokens)
        for i, layer in enumerate(m.layers):
            attn, h = layer.self_attn, layer.input_layernorm(x)
            q = attn.q_proj(h)[0].view(n, self.n_heads, d)
            k = attn.k_proj(h)[0].view(n, self.n_kv, d)
            v = attn.v_proj(h)[0].view(n, self.n_kv, d)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            out = torch.empty_like(q)
            K, V = self.k[i], self.v[i]
            if decode:
                K[live, :, dpos[live]] = k[live]  # only the generating slots write their new K, V
                V[live, :, dpos[live]] = v[live]
                o = F.scaled_dot_product_attention(q[:S].view(S, self.n_kv, group, d), K[:, :, :L], V[:, :, :L],
                                                   attn_mask=mask)
                out[:S] = o.reshape(S, self.n_heads, d)
            for slot, r0, t, start in spans:
                K[slot, :, start:start + t] = k[r0:r0 + t].transpose(0, 1)
                V[slot, :, start:start + t] = v[r0:r0 + t].transpose(0, 1)
                qp = q[r0:r0 + t].transpose(0, 1)[None]  # [1, heads, t, d]
                keys = K[slot:slot + 1, :, :start + t].repeat_interleave(group, dim=1)
                values = V[slot:slot + 1, :, :start + t].repeat_interleave(group, dim=1)
                if start == 0:
                    o = F.scaled_dot_product_attention(qp, keys, values, is_causal=True)
                else:  # a chunk after earlier chunks: query j sits at start + j and sees keys 0..start + j
                    causal = torch.arange(start + t, device=dev)[None, :] <= torch.arange(start, start + t, device=dev)[:, None]
                    o = F.scaled_dot_product_attention(qp, keys, values, attn_mask=causal)
                out[r0:r0 + t] = o[0].transpose(0, 1)
            x = x + attn.o_proj(out.reshape(1, n, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        want = (list(decode) if decode else []) + [r0 + t - 1 for _, r0, t, _ in spans]
        nxt = self.model.lm_head(m.norm(x[0, want])).argmax(-1).tolist()
        nd = len(decode) if decode else 0
        return dict(zip(list(decode) if decode else [], nxt[:nd], strict=True)), nxt[nd:]


# ---------------------------------------------------------------------------------------------------------
# Schedulers: each serves a list of requests on an Engine and returns a trace (per-request token times)


class Trace:
    """Times (seconds since the start) of every generated token of every request, the rows each step
    computed for real requests, and the time spent inside the engine's forward."""

    def __init__(self, requests, device):
        self.device, self.t0 = device, None
        self.outputs = [[] for _ in requests]
        self.times = [[] for _ in requests]
        self.arrival = [None] * len(requests)
        self.steps, self.busy_s = [], 0.0
        self.events = [] if device.type == "cuda" else None  # (start, end) CUDA events around every forward

    def start(self):
        common.sync(self.device)
        self.t0 = time.perf_counter()

    def now(self):
        return time.perf_counter() - self.t0

    def run(self, engine, decode, pieces):
        t = time.perf_counter()
        if self.events is not None:
            ev = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            ev[0].record()
        out = engine.step(decode, pieces)  # .tolist() inside waits for the device
        if self.events is not None:
            ev[1].record()
            self.events.append(ev)
        self.busy_s += time.perf_counter() - t
        self.steps.append({"t": self.now(), "decode": len(decode), "prefill_tokens": sum(len(p) for _, p, _ in pieces)})
        return out

    def gpu_s(self):
        """GPU time between each forward's start and end events, summed (None off CUDA). The events sit on the
        stream, so a gap inside a forward where the GPU waits for the CPU to launch the next kernel counts too:
        an upper bound on kernel time, and the time between forwards (scheduling, Python) is left out."""
        if not self.events:
            return None
        torch.cuda.synchronize()
        return sum(a.elapsed_time(b) for a, b in self.events) / 1e3

    def emit(self, rid, token):
        self.outputs[rid].append(token)
        self.times[rid].append(self.now())


def serve_static(engine, requests, trace):
    """Batches of engine.slots requests in arrival order; each runs to its longest request."""
    trace.start()
    for b0 in range(0, len(requests), engine.slots):
        batch = list(range(b0, min(b0 + engine.slots, len(requests))))
        for rid in batch:
            trace.arrival[rid] = 0.0
        _, first = trace.run(engine, {}, [(s, requests[rid]["prompt"], 0) for s, rid in enumerate(batch)])
        for rid, token in zip(batch, first, strict=True):
            trace.emit(rid, token)
        while any(len(trace.outputs[rid]) < requests[rid]["output_len"] for rid in batch):
            # every row of the batch computes; a finished request's row is padding (its token is dropped)
            decode = {s: (trace.outputs[rid][-1], len(requests[rid]["prompt"]) + len(trace.outputs[rid]) - 1)
                      for s, rid in enumerate(batch) if len(trace.outputs[rid]) < requests[rid]["output_len"]}
            nxt, _ = trace.run(engine, decode, [])
            trace.steps[-1]["padding"] = len(batch) - len(decode)
            for s, token in nxt.items():
                trace.emit(batch[s], token)
    return trace


def serve_continuous(engine, requests, trace, token_budget=None):
    """Iteration-level scheduling, FCFS. Every step: the generating requests each contribute one decode token;
    then prompts, first the one already being prefilled, then newly admitted ones into free slots, up to
    `token_budget` tokens in the step (None: whole prompts, no limit: prefill is never split)."""
    trace.start()
    waiting = deque(range(len(requests)))
    free = deque(range(engine.slots))
    prefilling = []  # [rid, slot, tokens done] in admission order
    generating = {}  # slot -> rid
    step = 0
    while waiting or prefilling or generating:
        for rid in waiting:  # a request's clock starts when it arrives, not when a slot takes it
            if requests[rid]["arrival_step"] > step:
                break
            if trace.arrival[rid] is None:
                trace.arrival[rid] = trace.now()
        while waiting and requests[waiting[0]]["arrival_step"] <= step and free:
            prefilling.append([waiting.popleft(), free.popleft(), 0])
        decode = {s: (trace.outputs[rid][-1], len(requests[rid]["prompt"]) + len(trace.outputs[rid]) - 1)
                  for s, rid in generating.items()}
        budget = None if token_budget is None else token_budget - len(decode)
        pieces, ends = [], []  # ends[i]: the request whose prompt piece i completes, or None
        for entry in prefilling:
            rid, slot, done = entry
            prompt = requests[rid]["prompt"]
            take = len(prompt) - done if budget is None else min(len(prompt) - done, budget)
            if take <= 0:
                break
            pieces.append((slot, prompt[done:done + take], done))
            entry[2] += take
            if budget is not None:
                budget -= take
            ends.append(rid if entry[2] == len(prompt) else None)
        if not decode and not pieces:  # nothing arrived yet: idle until the next arrival
            step += 1
            continue
        nxt, after = trace.run(engine, decode, pieces)
        if decode:  # every slot's row is computed; the free ones are padding, as in a static batch
            trace.steps[-1]["padding"] = engine.slots - len(decode)
        for slot, token in nxt.items():
            rid = generating[slot]
            trace.emit(rid, token)
            if len(trace.outputs[rid]) == requests[rid]["output_len"]:
                del generating[slot]
                free.append(slot)
        for (slot, _, _), rid, token in zip(pieces, ends, after, strict=True):
            if rid is None:
                continue  # a chunk that does not end its prompt: the token after it is not an output
            trace.emit(rid, token)
            if len(trace.outputs[rid]) == requests[rid]["output_len"]:
                free.append(slot)
            else:
                generating[slot] = rid
        prefilling = [e for e in prefilling if e[2] < len(requests[e[0]]["prompt"])]
        step += 1
    return trace


def greedy_reference(model, prompt, output_len):
    """Per-request greedy decoding with Hugging Face's generate(), batch 1: what batching must not change."""
    device = model.lm_head.weight.device
    ids = torch.tensor([prompt], device=device)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=output_len, do_sample=False)
    return out[0, len(prompt):].tolist()


# ---------------------------------------------------------------------------------------------------------
# Metrics


def percentiles(values):
    import numpy as np

    if not values:
        return None
    a = np.asarray(values, dtype=float)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)), "p99": float(np.percentile(a, 99)),
            "mean": float(a.mean()), "max": float(a.max())}


def trace_metrics(trace, requests, wall_s, which=None):
    """Useful output tok/s (requested tokens only, no padding), TTFT / TPOT / E2E per request (from its
    arrival), ITL of every gap between two tokens of one request; `which` limits the latency metrics."""
    which = range(len(requests)) if which is None else which
    ttft, tpot, e2e, itl = [], [], [], []
    for rid in which:
        times, arrival = trace.times[rid], trace.arrival[rid] or 0.0
        ttft.append(times[0] - arrival)
        e2e.append(times[-1] - arrival)
        if len(times) > 1:
            tpot.append((times[-1] - times[0]) / (len(times) - 1))  # TPOT = (E2E - TTFT) / (N - 1)
            itl += [b - a for a, b in zip(times, times[1:], strict=False)]
    useful = sum(r["output_len"] for r in requests)
    rows = sum(s["decode"] + s.get("padding", 0) for s in trace.steps)
    gpu = trace.gpu_s()
    ts = [0.0] + [s["t"] for s in trace.steps]
    by_kind = {"decode": [], "mixed": [], "prefill": []}  # step time by what the step carried
    for s, a, b in zip(trace.steps, ts, ts[1:], strict=False):
        by_kind["mixed" if s["decode"] and s.get("prefill_tokens") else "decode" if s["decode"] else "prefill"].append(b - a)
    return {"wall_s": wall_s, "useful_tokens": useful, "useful_tok_per_s": useful / wall_s,
            "steps": len(trace.steps), "prefill_steps": sum(1 for s in trace.steps if s.get("prefill_tokens")),
            # host side: wall time inside engine.step (launches, Python and the wait for the device) / wall time
            "forward_wall_fraction": trace.busy_s / wall_s,
            # device side (CUDA only): forwards' GPU time from CUDA events / wall time
            "gpu_busy_fraction": None if gpu is None else gpu / wall_s,
            "step_s_p50": {k: (percentiles(v) or {}).get("p50") for k, v in by_kind.items()},
            "step_counts": {k: len(v) for k, v in by_kind.items()},
            "decode_row_utilization": sum(s["decode"] for s in trace.steps) / rows if rows else None,
            "ttft_s": percentiles(ttft), "tpot_s": percentiles(tpot), "e2e_s": percentiles(e2e), "itl_s": percentiles(itl)}


def occupancy(trace, slots, keep=600):
    """[step index, generating rows, time] per step, thinned to at most `keep` steps (for the figure). Against
    the step index the area under the curve is the number of decode rows computed for real requests."""
    every = max(1, len(trace.steps) // keep)
    return ([[k, s["decode"], round(s["t"], 4)] for k, s in list(enumerate(trace.steps))[::every]]
            + [[len(trace.steps), 0, round(trace.steps[-1]["t"], 4)]])


# ---------------------------------------------------------------------------------------------------------
# Measurements: each returns the measured fields of one data point


def warm_up(engine, prompt_lens=(), lengths=True):
    """First calls (allocator, kernels) stay out of the timings, and so does the first use of every attention
    shape the run will meet: one decode step with all slots busy at each decode attention length (a handful, see
    Engine.attention_len), and each prompt length of the workload prefilled once (one piece per slot, so a few
    steps). Whichever policy is timed first then finds no shape the other one has not also seen. A slot's stale
    keys from this are masked out or overwritten before anyone reads them. `lengths=False` skips the decode
    lengths (measure_chunked meets them in its untimed pass instead)."""
    engine.step({}, [(0, [1] * 8, 0)])
    engine.step({0: (1, 8)}, [(1, [1] * 8, 0)])
    for need in range(LEN_BUCKET, engine.max_len + LEN_BUCKET, LEN_BUCKET) if lengths else ():  # positions < max_len
        pos = min(need, engine.max_len) - 1
        engine.step({s: (1, pos) for s in range(engine.slots)}, [])
    lens = sorted(set(prompt_lens))
    for i in range(0, len(lens), engine.slots):
        engine.step({}, [(s, [1] * n, 0) for s, n in enumerate(lens[i:i + engine.slots])])
    common.sync(engine.device)


class _SdpaProbe:
    """Stands in for torch.nn.functional while sdpa_backends runs: notes the backend PyTorch would pick for the
    first attention call (torch._fused_sdp_choice, the dispatcher's own choice for these tensors and flags)."""

    def __init__(self, real):
        self.real, self.choice = real, None

    def __getattr__(self, name):
        return getattr(self.real, name)

    def scaled_dot_product_attention(self, q, k, v, attn_mask=None, is_causal=False):
        if self.choice is None:
            try:
                from torch.nn.attention import SDPBackend

                self.choice = SDPBackend(torch._fused_sdp_choice(q, k, v, attn_mask=attn_mask, dropout_p=0.0,
                                                                 is_causal=is_causal)).name.lower()
            except Exception as exc:  # an older torch without these: say so rather than guess
                self.choice = f"unknown ({type(exc).__name__})"
        return self.real.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)


def sdpa_backends(model, slots, max_len):
    """The backend scaled_dot_product_attention picks for each of the engine's three kinds of attention call, with
    the settings in force (cuDNN attention on or off): the masked decode call over all slots, a whole prompt
    (causal, no mask) and a chunk after an earlier chunk (explicit causal mask). Recorded with the data, so a
    GPU run says which kernels it timed instead of leaving it to inference."""
    global F
    engine, real, out = Engine(model, slots, max_len), F, {}
    n = min(16, max(1, (max_len - 1) // 2))
    try:
        for kind, decode, pieces in (("decode", {0: (1, n)}, []), ("prefill", {}, [(0, [1] * n, 0)]),
                                     ("chunk", {}, [(0, [1] * n, n)])):
            F = _SdpaProbe(real)
            engine.step(decode, pieces)
            out[kind] = F.choice
    finally:
        F = real
    return out


def measure_policy(model, policy, requests, slots, max_len, device, token_budget=None):
    engine = Engine(model, slots, max_len)
    warm_up(engine, [len(r["prompt"]) for r in requests])
    common.free_memory(device)
    trace = Trace(requests, device)
    serve = serve_static if policy == "static" else serve_continuous
    if policy == "static":
        serve(engine, requests, trace)
    else:
        serve(engine, requests, trace, token_budget)
    wall = trace.now()
    bad = [i for i, r in enumerate(requests) if len(trace.outputs[i]) != r["output_len"]]
    if bad:
        raise common.LabAbort(f"{policy}: requests {bad[:5]} got the wrong number of tokens")
    fields = trace_metrics(trace, requests, wall)
    fields["occupancy"] = occupancy(trace, slots)
    fields["outputs_sha"] = _digest(trace.outputs)
    del engine
    common.free_memory(device)
    return fields, trace


def _digest(outputs):
    import hashlib

    return hashlib.sha256(repr(outputs).encode()).hexdigest()[:16]


def hf_continuous_available(model):
    return hasattr(model, "init_continuous_batching")


def _hf_config(requests, slots):
    """Continuous-batching settings sized to this workload, so the timed run does not size (and zero) a cache for
    60-90 % of the free memory: pages for `slots` requests of the longest length, `slots` requests per batch.
    transformers 5.24 takes a ContinuousBatchingConfig; older 5.x releases read the same names from the
    GenerationConfig (returned as a dict of attributes to set there)."""
    longest = max(len(r["prompt"]) + r["output_len"] for r in requests) + 1
    max_prompt = max(len(r["prompt"]) for r in requests)
    want = {"page_size": 256, "max_requests_per_batch": slots, "max_batch_tokens": max(max_prompt + slots, 512)}
    want["num_blocks"] = slots * -(-longest // want["page_size"]) + 4
    try:
        from transformers import ContinuousBatchingConfig
    except ImportError:
        return None, {"num_blocks": want["num_blocks"], "block_size": want["page_size"],
                      "max_batch_tokens": want["max_batch_tokens"]}
    import dataclasses

    names = {f.name for f in dataclasses.fields(ContinuousBatchingConfig)}
    return ContinuousBatchingConfig(**{k: v for k, v in want.items() if k in names}), {}


def _hf_stop(manager):
    """Stop at once: transformers 5.24's hard_stop fails pending requests instead of finishing them (the default
    FLUSH_AND_STOP would decode every pending request first, e.g. after an interrupt); older releases lack it."""
    import inspect

    kw = {"hard_stop": True} if "hard_stop" in inspect.signature(manager.stop).parameters else {}
    manager.stop(block=True, timeout=30, **kw)


def _hf_collect(manager, n, t0, limit_s=600):
    """Results of `n` requests: {request_id: generated tokens}, and the seconds since t0 at which each finished."""
    results, e2e = {}, []
    while len(results) < n:
        res = manager.get_result(timeout=5)
        if res is None:
            running = getattr(manager, "is_running", lambda: True)()
            if not running or time.perf_counter() - t0 > limit_s:
                raise RuntimeError("transformers' continuous batching stopped returning results")
            continue
        if getattr(res, "error", None):
            raise RuntimeError(f"transformers' continuous batching: {res.error}")
        if res.is_finished():
            results[res.request_id] = res.generated_tokens
            e2e.append(time.perf_counter() - t0)
    return results, e2e


def measure_hf(model, requests, slots, device):
    """transformers' own continuous batching: every request added with its own max_new_tokens, results
    collected as they finish. Its scheduler and paged cache are its own; the cache is sized to this workload
    (`_hf_config`), built and warmed up before the clock starts, and one warm-up request runs first."""
    from transformers import GenerationConfig

    gen = GenerationConfig(do_sample=False, max_new_tokens=max(r["output_len"] for r in requests), eos_token_id=None,
                           pad_token_id=0)
    cb_config, gen_attrs = _hf_config(requests, slots)
    for k, v in gen_attrs.items():
        setattr(gen, k, v)
    t_setup = time.perf_counter()
    kw = {"continuous_batching_config": cb_config} if cb_config is not None else {}
    manager = model.init_continuous_batching(generation_config=gen, **kw)
    try:
        if hasattr(manager, "warmup"):
            manager.warmup()  # builds the batch processor and its paged cache (and CUDA graphs where used)
        manager.start()
        manager.add_request(requests[0]["prompt"], request_id="warmup", max_new_tokens=4)
        _hf_collect(manager, 1, time.perf_counter())
        setup_s = time.perf_counter() - t_setup
        common.sync(device)
        t0 = time.perf_counter()
        for i, r in enumerate(requests):
            manager.add_request(r["prompt"], request_id=f"r{i}", max_new_tokens=r["output_len"])
        results, e2e = _hf_collect(manager, len(requests), t0)
        wall = time.perf_counter() - t0
    finally:
        if getattr(manager, "_generation_thread", None) is not None:
            _hf_stop(manager)
    useful = sum(r["output_len"] for r in requests)
    produced = sum(len(results[f"r{i}"]) for i in range(len(requests)))
    return {"wall_s": wall, "setup_s": setup_s, "useful_tokens": useful, "produced_tokens": produced,
            "useful_tok_per_s": useful / wall, "e2e_s": percentiles(e2e),
            "hf_config": {"max_requests_per_batch": slots, **({k: getattr(cb_config, k, None) for k in (
                "num_blocks", "page_size", "max_batch_tokens")} if cb_config is not None else gen_attrs)},
            "outputs_sha": _digest([results[f"r{i}"] for i in range(len(requests))])}


def chunked_workload(args, vocab):
    """`--chunk-decoders` requests decoding long outputs, and `--long-prompts` long prompts that arrive while
    they decode (spread over the decoders' run, with short outputs)."""
    rng = random.Random(7)
    reqs = [{"prompt": [rng.randrange(vocab) for _ in range(args.chunk_decoder_prompt)], "output_len": args.chunk_decoder_output,
             "arrival_step": 0} for _ in range(args.chunk_decoders)]
    gap = max(1, args.chunk_decoder_output // (args.long_prompts + 1))
    reqs += [{"prompt": [rng.randrange(vocab) for _ in range(args.long_prompt)], "output_len": 4,
              "arrival_step": gap * (i + 1)} for i in range(args.long_prompts)]
    return reqs


def measure_chunked(model, requests, n_decoders, slots, max_len, device, token_budget, repeats=1):
    """The chunked-prefill workload, `repeats` times. The schedule is the same in every repeat (arrivals are
    given in steps), so step k is the same work each time: its time is kept as the minimum over the repeats,
    which only noise (another process, the OS scheduler) can raise. The decoders generate one token per step,
    so the gap between two of their tokens is one step's time; the ITL statistics are over those steps.
    One untimed pass of the whole schedule comes first: the chunks' attention shapes (a chunk at each offset of
    each long prompt) are met there, not in the timed runs (before it, a GPU run with one repeat timed those
    first meetings, and the run without a budget, measured first, met every new decode length)."""
    engine = Engine(model, slots, max_len)
    warm_up(engine, lengths=False)
    serve_continuous(engine, requests, Trace(requests, device), token_budget)
    del engine
    best, traces = None, []
    for _ in range(repeats):
        engine = Engine(model, slots, max_len)
        warm_up(engine, lengths=False)
        trace = Trace(requests, device)
        serve_continuous(engine, requests, trace, token_budget)
        traces.append(trace)
        ts = [0.0] + [st["t"] for st in trace.steps]
        dt = [b - a for a, b in zip(ts, ts[1:], strict=False)]
        best = dt if best is None else [min(a, b) for a, b in zip(best, dt, strict=True)]
        del engine
        common.free_memory(device)
    trace = traces[-1]
    first = min(trace.times[rid][0] for rid in range(n_decoders))
    first_step = next(k for k, st in enumerate(trace.steps) if st["t"] >= first)  # the decoders' first token
    last = max(trace.times[rid][-1] for rid in range(n_decoders))
    gaps = [(k, best[k]) for k, st in enumerate(trace.steps)
            if first_step < k and st["t"] <= last and st["decode"] > 0]
    steps = [[k, round(1e3 * best[k], 3), st["prefill_tokens"], st["decode"]] for k, st in enumerate(trace.steps)]
    long_ids = range(n_decoders, len(requests))
    arrival_steps = [requests[rid]["arrival_step"] for rid in long_ids]
    # the long prompts' TTFT, in the repeat-minimum step times: from the step they arrive to their first token
    done_step = {rid: next(k for k, st in enumerate(trace.steps) if st["t"] >= trace.times[rid][0]) for rid in long_ids}
    long_ttft = [sum(best[requests[rid]["arrival_step"]:done_step[rid] + 1]) for rid in long_ids]
    wall = min(t.steps[-1]["t"] for t in traces)
    return {"wall_s": wall, "repeats": repeats, "warm_pass": True, "decoder_itl_s": percentiles([g for _, g in gaps]),
            "long_ttft_s": percentiles(long_ttft), "steps": len(trace.steps), "step_ms_min": steps,
            "long_arrival_steps": arrival_steps,
            "long_first_token_steps": [done_step[rid] for rid in long_ids]}


# ---------------------------------------------------------------------------------------------------------
# calc's predictions (GPU runs): the decode step time at this batch from the bandwidth/compute model


def predict(point, prov):
    gpu = prov.get("calc_gpu_key")
    if not gpu or point.get("kind") not in ("throughput", "equal") or point.get("policy") not in ("static", "continuous"):
        return None
    s = prov["settings"]
    mean_prompt = (s["prompt_min"] + s["prompt_max"]) / 2
    pred = common.calc_predict("perf", {**prov["model"]["calc_params"], "gpu": gpu, "batch": s["slots"],
                                        "prompt-len": round(mean_prompt), "output-len": round(point["mean_output"]),
                                        "weights": prov["model"]["weights"], "kv-dtype": prov["model"]["weights"],
                                        "engine": "ideal"})  # the roofline bound, no engine overheads
    if not pred:
        return None
    # calc's TPOT for a full batch of `slots`, times the steps this run really took (both policies compute every
    # slot's row at every decode step, padding included), so the prediction isolates the time per step
    steps = point["steps"]
    return {"tpot_s": pred["tpot_s"], "steps": steps, "useful_tok_per_s": point["useful_tokens"] / (steps * pred["tpot_s"])}


def compare(static, continuous):
    """Measured speedup of continuous over static: of the median runs, of the fastest runs (only noise can make a
    run slower, so the minima are the steadier estimate on a shared machine), and as a share of the bound the
    loop's own schedule sets (static steps / schedule steps, if every step cost the same)."""
    median = continuous["useful_tok_per_s"] / static["useful_tok_per_s"]
    best = static.get("wall_s_min", static["wall_s"]) / continuous.get("wall_s_min", continuous["wall_s"])
    bound = continuous["ideal"]["schedule_ratio"]
    return {"median": median, "best": best, "schedule_bound": bound, "of_schedule_bound": median / bound,
            "best_of_schedule_bound": best / bound, "ideal": continuous["ideal"]["ratio"]}


class _ShapeReplay:
    """A stand-in Engine for replaying a schedule without a model: records, per step, how many attention shapes
    the lab's engine *before the first-shape fix* met for the first time in the process (decode attention read
    exactly max position + 1 keys; each prompt piece is its own causal call, keyed by its length; the old warm-up
    met decode length 9 and prompt length 8), and returns dummy tokens."""

    def __init__(self, slots, seen):
        self.slots, self.seen, self.new = slots, seen, []

    def step(self, decode, pieces):
        keys = [("decode", max(p for _, p in decode.values()) + 1)] if decode else []
        keys += [("prompt", len(piece)) for _, piece, start in pieces if start == 0]
        fresh = [k for k in keys if k not in self.seen]
        self.seen.update(fresh)
        self.new.append({"decode": sum(k[0] == "decode" for k in fresh), "prompt": sum(k[0] == "prompt" for k in fresh),
                         "kind": "decode" if decode and not pieces else "prefill"})
        return {slot: 0 for slot in decode}, [0] * len(pieces)


def first_meetings(settings):
    """Replays the varying-length workload of a run (its lengths follow from the settings and seed alone) as the
    pre-fix lab timed it: static batching first, continuous batching next, one process. Returns the per-step
    first meetings of each policy ({"static": [...], "continuous": [...]}, see _ShapeReplay). Derived when a
    figure is drawn, never stored in the data file."""
    reqs = make_workload(settings["requests"], (settings["prompt_min"], settings["prompt_max"]),
                         (settings["output_min"], settings["output_max"]), 2, settings["seed"])
    seen = {("decode", 9), ("prompt", 8)}
    out = {}
    for policy, serve in (("static", serve_static), ("continuous", serve_continuous)):
        engine = _ShapeReplay(settings["slots"], seen)
        serve(engine, reqs, Trace(reqs, torch.device("cpu")))
        out[policy] = engine.new
    return out


def new_shape_windows(point, new):
    """The occupancy trace keeps every few steps' end time; for each window between two kept steps that holds only
    decode steps: (first step, ms per step, share of its steps that met a new decode length)."""
    rows = point["occupancy"][:-1]  # the last row closes the trace (its index is the step count, not a step)
    out = []
    for (k0, _, t0), (k1, _, t1) in zip(rows, rows[1:], strict=False):
        steps = new[k0 + 1:k1 + 1]
        if steps and all(st["kind"] == "decode" for st in steps):
            out.append((k0 + 1, 1e3 * (t1 - t0) / len(steps), sum(st["decode"] for st in steps) / len(steps)))
    return out


def refresh_prediction(point, prov) -> None:
    if common.succeeded(point) and point.get("kind") in ("throughput", "equal"):
        point["predicted"] = predict(point, prov)


# ---------------------------------------------------------------------------------------------------------
# Figures, from the data file alone

TEXT = {
    "tok_s": {"zh": "有用输出吞吐（token/s，不计填充）", "en": "useful output throughput (tok/s, no padding)"},
    "spread": {"zh": "输出长度 U({a}, {b})", "en": "outputs U({a}, {b})"},
    "equal": {"zh": "输出长度全为 {n}", "en": "all outputs {n} tokens"},
    "tp_title": {"zh": "{n} 个请求、{s} 个槽位：静态批处理 vs 连续批处理",
                 "en": "{n} requests, {s} slots: static vs continuous batching"},
    "ideal": {"zh": "步数之比：完美填满 {r:.2f}×，本循环的调度 {b:.2f}×",
              "en": "ratio of steps: perfect packing {r:.2f}×, this loop's schedule {b:.2f}×"},
    "measured": {"zh": "实测 {m:.2f}×（最快的一次 {x:.2f}×）", "en": "measured {m:.2f}× (fastest runs {x:.2f}×)"},
    "spread_note": {"zh": "柱：{n} 次运行的中位数；竖线：最快到最慢", "en": "bars: median of {n} runs; lines: fastest to slowest"},
    "hf_setup": {"zh": "（计时不含启动的 {s:.2f} s）", "en": "(timing excludes its {s:.2f} s set-up)"},
    "predicted": {"zh": "calc 预测（全满批的解码步时间 × 本次步数）", "en": "calc prediction (full-batch decode step × this run's steps)"},
    "step": {"zh": "步（迭代）序号", "en": "step (iteration)"},
    "occ_title": {"zh": "每一步在生成的请求数（槽位 {s}）", "en": "Requests generating at each step ({s} slots)"},
    "time_s": {"zh": "时间（秒）", "en": "time (s)"},
    "rows": {"zh": "生成中的请求（行）", "en": "requests generating (rows)"},
    "drain": {"zh": "队列已空", "en": "queue empty"},
    "lat_title": {"zh": "延迟分位数（输出 U({a}, {b})，全部请求在 0 时刻排队）",
                  "en": "Latency percentiles (outputs U({a}, {b}), all requests queued at time 0)"},
    "seconds": {"zh": "秒", "en": "seconds"},
    "ms": {"zh": "毫秒", "en": "ms"},
    "pre_fix": {"zh": "本次测量早于实验对“首次遇到的注意力形状”的修正：先运行的一方的时间含一次性的形状开销（见第 7 章）",
                "en": "measured before the lab's first-shape fix: the policy run first paid one-off costs for new "
                      "attention shapes (see chapter 7)"},
    "log_y": {"zh": "（对数纵轴）", "en": " (log axis)"},
    "chunk_title": {"zh": "长提示词（{p} token）在解码中途到达：运行中请求的 token 间隔",
                    "en": "Long prompts ({p} tokens) arriving mid-decode: gaps between tokens of running requests"},
    "itl_ms": {"zh": "每步耗时（毫秒，{n} 次中最短）", "en": "step time (ms, fastest of {n} runs)"},
    "itl_ms_1": {"zh": "每步耗时（毫秒，跑一次）", "en": "step time (ms, one run)"},
    "chunk_med": {"zh": "各长提示词分块步的中位数", "en": "median chunk step of each long prompt"},
    "decode_med": {"zh": "纯解码步中位数 {v:.1f} ms", "en": "median decode-only step {v:.1f} ms"},
    "with_prefill": {"zh": "含预填充的步", "en": "steps carrying prefill"},
    "no_chunk": {"zh": "不分块（整段预填充）", "en": "no chunking (whole prompt)"},
    "chunk": {"zh": "分块预填充，每步 {b} token", "en": "chunked prefill, {b} tokens per step"},
    "arrive": {"zh": "长提示词到达", "en": "long prompt arrives"},
    "itl_bars": {"zh": "解码请求的 ITL p99 与长提示词 TTFT（毫秒）", "en": "decoders' ITL p99 and long-prompt TTFT (ms)"},
    "fs_title": {"zh": "先计时的静态批处理：每个时间窗口（{k} 步）的每步耗时",
                 "en": "Static batching, timed first: time per step in each window of {k} steps"},
    "fs_all": {"zh": "窗口内每步都遇到新的解码长度：中位数 {v:.1f} ms/步（{n} 个窗口）",
               "en": "every step met a new decode length: median {v:.1f} ms/step ({n} windows)"},
    "fs_none": {"zh": "窗口内没有新的解码长度：中位数 {v:.1f} ms/步（{n} 个窗口）",
                "en": "no new decode length: median {v:.1f} ms/step ({n} windows)"},
    "fs_some": {"zh": "部分步遇到新长度", "en": "some steps met a new length"},
    "fs_note": {"zh": "重放调度：静态批处理第一次遇到 {sd} 个解码长度、{sp} 个提示词长度；随后计时的连续批处理 {cd} 个、{cp} 个。"
                      "两个中位数之差约 {d:.0f} ms，即每个新解码长度的一次性开销（计算自数据文件与重放，未另测）",
                "en": "schedule replay: static batching met {sd} decode lengths and {sp} prompt lengths for the first time; "
                      "continuous batching, timed next, {cd} and {cp}. The medians differ by about {d:.0f} ms, the "
                      "one-off cost per new decode length (derived from the data file and the replay, not measured apart)"},
    "no_prediction": {"zh": "无 calc 预测：{why}", "en": "no calc prediction: {why}"},
    "why_cpu": {"zh": "CPU 运行（calc 只为 GPU 建模时间）", "en": "CPU run (calc models GPU timings only)"},
    "why_gpu": {"zh": "calc 的登记表里没有这块 GPU", "en": "this GPU is not in calc's registry"},
}
POLICY = {"static": {"zh": "静态批处理", "en": "static"}, "continuous": {"zh": "连续批处理（本实验的循环）", "en": "continuous (this lab's loop)"},
          "hf-cb": {"zh": "transformers 自带连续批处理", "en": "transformers' continuous batching"}}
COLORS = {"static": "#C44E52", "continuous": "#4C72B0", "hf-cb": "#8172B2"}


def t(key, lang, **kw):
    return TEXT[key][lang].format(**kw)


def _median(values):
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def chunk_step_median(rows, arrival, first_token):
    """Median time (ms) of the steps from a long prompt's arrival to its first token that carry prompt tokens
    (its chunks; rows are [step, ms, prefill tokens, decode rows] of step_ms_min), or None if there are none."""
    ms = [r[1] for r in rows if arrival <= r[0] <= first_token and r[2]]
    return _median(ms) if ms else None


def plot(data, lang):
    import matplotlib.pyplot as plt

    prov, points = data["provenance"], data["points"]
    s, model = prov["settings"], prov["model"]
    footer = f"{common.describe_run(prov, lang)} · {model['label']} {model['weights']}"
    footer += ("，随机权重" if lang == "zh" else ", random weights") if model.get("random_weights", True) else ""
    if not prov.get("calc_gpu_key"):
        why = t("why_cpu" if prov["device"]["kind"] == "cpu" else "why_gpu", lang)
        footer_tp = footer + "\n" + t("no_prediction", lang, why=why)
    else:
        footer_tp = footer
    figures = {}
    ok = [p for p in points if common.succeeded(p)]
    # a GPU run from before warm_up covered every attention shape (no decode_len_bucket in its settings)
    pre_fix = prov["device"]["kind"] != "cpu" and "decode_len_bucket" not in s

    # 1. Throughput: static / continuous / hf-cb, spread and equal outputs
    groups = [(kind, [p for p in ok if p["kind"] == kind]) for kind in ("throughput", "equal")]
    groups = [(k, g) for k, g in groups if g]
    if groups:
        fig, ax = plt.subplots(figsize=(8.5, 4.4))
        width = 0.26
        labelled = set()
        for gi, (_, pts) in enumerate(groups):
            for pi, policy in enumerate(("static", "continuous", "hf-cb")):
                p = next((q for q in pts if q["policy"] == policy), None)
                if p is None:
                    continue
                x = gi + (pi - 1) * width
                ax.bar(x, p["useful_tok_per_s"], width, color=COLORS[policy],
                       label=None if policy in labelled else POLICY[policy][lang])
                labelled.add(policy)
                rates = [p["useful_tokens"] / w for w in p.get("wall_s_repeats", [])]
                if len(rates) > 1:
                    ax.plot([x, x], [min(rates), max(rates)], color="black", lw=1)
                top = max([p["useful_tok_per_s"], *rates])
                note = f"{p['useful_tok_per_s']:.0f}"
                if policy == "hf-cb" and p.get("setup_s") is not None:
                    note += "\n" + t("hf_setup", lang, s=p["setup_s"])
                ax.text(x, top, note, ha="center", va="bottom", fontsize=6.5)
                if (p.get("predicted") or {}).get("useful_tok_per_s"):
                    ax.plot([x - width / 2, x + width / 2], [p["predicted"]["useful_tok_per_s"]] * 2, color="black",
                            ls="--", lw=1.2, label=None if "pred" in labelled else t("predicted", lang))
                    labelled.add("pred")
        ticks = []
        for kind, pts in groups:
            label = (t("spread", lang, a=s["output_min"], b=s["output_max"]) if kind == "throughput"
                     else t("equal", lang, n=f"{pts[0]['mean_output']:g}"))
            ideal = pts[0].get("ideal", {})
            if ideal.get("schedule_ratio"):
                label += "\n" + t("ideal", lang, r=ideal["ratio"], b=ideal["schedule_ratio"])
            sp = next((q.get("speedup") for q in pts if q.get("speedup")), None)
            if sp:
                label += "\n" + t("measured", lang, m=sp["median"], x=sp["best"])
            ticks.append(label)
        ax.set_xticks(range(len(groups)), ticks, fontsize=7)
        measured = [p["useful_tok_per_s"] for _, pts in groups for p in pts]
        predicted = [(p.get("predicted") or {}).get("useful_tok_per_s") or 0 for _, pts in groups for p in pts]
        log = max(predicted) > 5 * max(measured)  # a roofline far above launch-bound bars: linear would hide the bars
        if log:
            ax.set_yscale("log")
        ax.set_ylabel(t("tok_s", lang) + (t("log_y", lang) if log else ""))
        title = t("tp_title", lang, n=s["requests"], s=s["slots"])
        if s.get("repeats", 1) > 1:
            title += "\n" + t("spread_note", lang, n=s["repeats"])
        if pre_fix:
            title += "\n" + t("pre_fix", lang)
        ax.set_title(title, fontsize=9)
        ax.margins(y=0.2)
        ax.legend(fontsize=7, loc="upper left")
        figures["throughput"] = (fig, footer_tp)

    # 2. Occupancy over time
    occ = [p for p in ok if p["kind"] == "throughput" and p.get("occupancy")]
    if occ:
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        for p in occ:
            xs, ys = [r[0] for r in p["occupancy"]], [r[1] for r in p["occupancy"]]
            ax.step(xs, ys, where="post", color=COLORS[p["policy"]], lw=1, label=POLICY[p["policy"]][lang])
            if p["policy"] == "continuous":  # the step at which the last request was admitted: the drain starts
                full = [r[0] for r in p["occupancy"] if r[1] == s["slots"]]
                if full:
                    ax.axvline(full[-1], color=COLORS["continuous"], ls=":", lw=0.8)
                    ax.text(full[-1], s["slots"] * 1.02, " " + t("drain", lang) + " →", fontsize=7,
                            color=COLORS["continuous"], va="bottom")
        ax.set_xlabel(t("step", lang))
        ax.set_ylabel(t("rows", lang))
        ax.set_ylim(0, s["slots"] * 1.08)
        ax.set_title(t("occ_title", lang, s=s["slots"]))
        ax.legend(fontsize=7, loc="lower left")
        figures["occupancy"] = (fig, footer)

    # 3. Latency percentiles
    lat = [p for p in ok if p["kind"] == "throughput" and p["policy"] in ("static", "continuous")]
    if lat:
        fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
        for ax, (metric, name, scale, unit) in zip(axes, (("ttft_s", "TTFT", 1, "seconds"), ("tpot_s", "TPOT", 1e3, "ms"),
                                                           ("e2e_s", "E2EL", 1, "seconds")), strict=True):
            for pi, p in enumerate(lat):
                vals = [scale * p[metric][q] for q in ("p50", "p90", "p99")]
                xs = [i + (pi - 0.5) * 0.38 for i in range(3)]
                ax.bar(xs, vals, 0.38, color=COLORS[p["policy"]], label=POLICY[p["policy"]][lang])
            ax.set_xticks(range(3), ["p50", "p90", "p99"])
            ax.set_title(f"{name}（{t(unit, lang)}）" if lang == "zh" else f"{name} ({t(unit, lang)})", fontsize=9)
        axes[0].legend(fontsize=6.5)
        fig.suptitle(t("lat_title", lang, a=s["output_min"], b=s["output_max"]), fontsize=9)
        figures["latency"] = (fig, footer + ("\n" + t("pre_fix", lang) if pre_fix else ""))

    # 3b. First-shape cost (pre-fix GPU runs only): static batching's per-step time split by new / seen decode length
    st = next((p for p in ok if p["kind"] == "throughput" and p["policy"] == "static" and p.get("occupancy")), None)
    if pre_fix and st and {"requests", "seed", "slots"} <= set(s):
        meet = first_meetings(s)
        if len(meet["static"]) == st["steps"]:
            win = new_shape_windows(st, meet["static"])
            allnew = [w for w in win if w[2] == 1]
            none = [w for w in win if w[2] == 0]
            some = [w for w in win if 0 < w[2] < 1]
            if allnew and none:
                fig, ax = plt.subplots(figsize=(8.5, 3.8))
                m_all, m_none = _median([w[1] for w in allnew]), _median([w[1] for w in none])
                for group, color, label in ((allnew, "#C44E52", t("fs_all", lang, v=m_all, n=len(allnew))),
                                            (none, "#4C72B0", t("fs_none", lang, v=m_none, n=len(none))),
                                            (some, "#8C8C8C", t("fs_some", lang))):
                    if group:
                        ax.plot([w[0] for w in group], [w[1] for w in group], ls="none", marker="o", ms=2.2,
                                color=color, label=label)
                for v, color in ((m_all, "#C44E52"), (m_none, "#4C72B0")):
                    ax.axhline(v, color=color, ls="--", lw=0.8)
                ax.set_yscale("log")
                ax.set_xlabel(t("step", lang))
                ax.set_ylabel("ms / " + ("步" if lang == "zh" else "step"))
                k = st["occupancy"][1][0] - st["occupancy"][0][0]
                ax.set_title(t("fs_title", lang, k=k), fontsize=9)
                ax.legend(fontsize=7, loc="upper right")
                note = t("fs_note", lang, sd=sum(x["decode"] for x in meet["static"]),
                         sp=sum(x["prompt"] for x in meet["static"]), cd=sum(x["decode"] for x in meet["continuous"]),
                         cp=sum(x["prompt"] for x in meet["continuous"]), d=m_all - m_none)
                figures["firstshape"] = (fig, footer + "\n" + note + "\n" + t("pre_fix", lang))

    # 4. Chunked prefill
    ch = [p for p in ok if p["kind"] == "chunked"]
    if ch:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.6), gridspec_kw={"width_ratios": [2.2, 1]})
        names = []
        for p in ch:
            label = t("chunk", lang, b=p["token_budget"]) if p["token_budget"] else t("no_chunk", lang)
            color = "#55A868" if p["token_budget"] else "#C44E52"
            rows = p["step_ms_min"]
            ax.plot([r[0] for r in rows], [r[1] for r in rows], color=color, lw=0.7, alpha=0.8, label=label)
            pre = [r for r in rows if r[2] and r[3]]  # steps that carry prompt tokens next to decode rows
            ax.plot([r[0] for r in pre], [r[1] for r in pre], ls="none", marker="o", ms=2.5, color=color,
                    label=t("with_prefill", lang) if not names else None)
            names.append((label, color, p))
        for i, a in enumerate(ch[0]["long_arrival_steps"]):
            ax.axvline(a, color="#8C8C8C", ls=":", lw=0.8, label=t("arrive", lang) if i == 0 else None)
        # derived at render time from step_ms_min: per long prompt of the chunked run, the median time of the steps
        # that carry its chunks (arrival to first token), next to the median decode-only step of that run
        for _, color, p in names:
            if not p["token_budget"]:
                continue
            rows = p["step_ms_min"]
            for j, (a, f) in enumerate(zip(p["long_arrival_steps"], p.get("long_first_token_steps", []), strict=False)):
                med = chunk_step_median(rows, a, f)
                if med is not None:
                    ax.annotate(f"{med:.0f} ms", (a, med), xytext=(3, 6), textcoords="offset points", fontsize=6.5,
                                color=color)
                    ax.plot([a, f], [med, med], color=color, lw=2.2, alpha=0.55,
                            label=t("chunk_med", lang) if j == 0 else None)
            dec = [r[1] for r in rows if not r[2] and r[3]]
            if dec:
                ax.axhline(_median(dec), color=color, ls="--", lw=0.8, label=t("decode_med", lang, v=_median(dec)))
        ax.set_xlabel(t("step", lang))
        n_runs = ch[0].get("repeats", 1)
        ax.set_ylabel(t("itl_ms", lang, n=n_runs) if n_runs > 1 else t("itl_ms_1", lang))
        ax.legend(fontsize=6.5)
        width = 0.38
        for i, (_, color, p) in enumerate(names):
            vals = [1e3 * p["decoder_itl_s"]["p99"], 1e3 * p["long_ttft_s"]["p50"]]
            ax2.bar([j + (i - 0.5) * width for j in range(2)], vals, width, color=color)
        ax2.set_xticks(range(2), ["ITL p99", "TTFT p50"])
        ax2.set_title(t("itl_bars", lang), fontsize=8)
        fig.suptitle(t("chunk_title", lang, p=s["long_prompt"]), fontsize=9)
        figures["chunked"] = (fig, footer + ("\n" + t("pre_fix", lang) if pre_fix else ""))
    return figures


# ---------------------------------------------------------------------------------------------------------


def int_range(text):
    """argparse type for "64,511" (inclusive)."""
    import argparse

    try:
        lo, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX like 64,511, got {text!r}") from None
    if not 1 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"expected 1 <= MIN <= MAX, got {text!r}")
    return lo, hi


def parse_args(argv):
    ap = common.lab_parser(__doc__, DEFAULT_OUT, QUICK_OUT)
    ap.set_defaults(model_preset="llama-3.2-1b")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"what to measure, from {','.join(PARTS)}")
    ap.add_argument("--requests", type=int, default=256, help="requests in the workload")
    ap.add_argument("--prompt-lens", type=int_range, default=(64, 511), help="prompt lengths, uniform MIN,MAX")
    ap.add_argument("--output-lens", type=int_range, default=(16, 511), help="output lengths, uniform MIN,MAX")
    ap.add_argument("--slots", type=int, default=64, help="batch size: requests decoding together")
    ap.add_argument("--seed", type=int, default=0, help="seed of the workload")
    ap.add_argument("--repeats", type=int, default=1, help="runs of static and continuous, alternating; the median "
                                                          "run is kept (3 on a shared CPU)")
    ap.add_argument("--token-budget", type=int, default=512, help="chunked prefill: tokens per step (decode + chunk)")
    ap.add_argument("--long-prompt", type=int, default=8192, help="chunked prefill: length of the long prompts")
    ap.add_argument("--long-prompts", type=int, default=4, help="chunked prefill: how many long prompts arrive")
    ap.add_argument("--chunk-decoders", type=int, default=16, help="chunked prefill: requests decoding meanwhile")
    ap.add_argument("--chunk-decoder-prompt", type=int, default=256)
    ap.add_argument("--chunk-decoder-output", type=int, default=256)
    ap.add_argument("--threads", type=int, help="CPU runs: torch threads (1 keeps timings steadier on a shared machine)")
    ap.add_argument("--sdpa-cudnn", choices=("off", "on"), default="off",
                    help="CUDA: cuDNN attention off (default: FlashAttention / memory-efficient attention only) or "
                         "on (PyTorch's default order, for an A/B run)")
    args = common.finish_lab_args(ap, ap.parse_args(argv), dict(
        parts="throughput,equal,chunked", requests=24, prompt_lens=(8, 63), output_lens=(2, 47), slots=6,
        token_budget=24, long_prompt=384,
        long_prompts=2, chunk_decoders=4, chunk_decoder_prompt=16, chunk_decoder_output=48), DEFAULT_OUT, QUICK_OUT)
    args.parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        ap.error(f"--parts: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if min(args.requests, args.slots, args.repeats, args.token_budget, args.long_prompt, args.long_prompts, args.chunk_decoders,
           args.chunk_decoder_prompt, args.chunk_decoder_output) < 1:
        ap.error("--requests, --slots, --repeats, --token-budget and the chunked-prefill sizes must be >= 1")
    if args.token_budget <= args.chunk_decoders:
        ap.error(f"--token-budget {args.token_budget} leaves no room for a prompt chunk next to "
                 f"{args.chunk_decoders} decode tokens")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.plot_only:
        return common.plot_only(args.out, LAB, plot, refresh_prediction if args.repredict else None)
    device = common.pick_device(args.device)
    if args.threads and device.type == "cpu":
        torch.set_num_threads(args.threads)
    if device.type == "cuda" and hasattr(torch.backends.cuda, "enable_cudnn_sdp") and args.sdpa_cudnn == "off":
        # cuDNN attention builds an execution plan for every new shape (PyTorch caches it per shape, dims and
        # strides); where PyTorch prefers it (SM 9.x/10.x with cuDNN > 9.15) the policy that first meets a length
        # would pay that once and the other find it cached. Most likely what the first H200 run timed; it did not
        # record the kernel. Flash and memory-efficient attention have no per-shape plan. --sdpa-cudnn on keeps
        # PyTorch's default, for an A/B run (warm_up still meets every shape before the clock starts).
        torch.backends.cuda.enable_cudnn_sdp(False)
    t_fonts = time.perf_counter()
    common.cjk_font()  # matplotlib's font list, built on first use (slow on a fresh machine): now, not after the run
    print(f"fonts: {time.perf_counter() - t_fonts:.1f} s", flush=True)
    torch.manual_seed(0)

    model, model_entry = common.load_lab_model(args, device)
    vocab = model.config.vocab_size
    prov = common.provenance(LAB, Path(__file__).name, argv, device, args.note)
    prov["model"] = model_entry
    prov["datasheet"] = common.gpu_datasheet(prov["calc_gpu_key"])
    prov["settings"] = {k: v for k, v in vars(args).items() if k not in ("out", "plot_only", "repredict", "note")}
    prov["settings"].update(prompt_min=args.prompt_lens[0], prompt_max=args.prompt_lens[1],
                            output_min=args.output_lens[0], output_max=args.output_lens[1],
                            hf_continuous_batching=hf_continuous_available(model),
                            decode_len_bucket=LEN_BUCKET,
                            sdpa_cudnn=bool(torch.backends.cuda.cudnn_sdp_enabled()) if device.type == "cuda" else None,
                            cudnn_version=torch.backends.cudnn.version() if device.type == "cuda" else None,
                            sdpa_backends=sdpa_backends(model, args.slots, args.prompt_lens[1] + args.output_lens[1] + 1))
    data_path = args.out / "data" / f"{common.data_stem(prov)}.json"
    # the figures need time after the last point: measuring stops PLOT_MARGIN_S before --budget-s ends
    measure_s = max(args.budget_s - PLOT_MARGIN_S, 1.0) if args.budget_s else None
    prov["settings"]["measure_budget_s"] = measure_s
    data = common.DataFile(data_path, prov, measure_s)
    print(f"data: {data_path}", flush=True)
    max_len = args.prompt_lens[1] + args.output_lens[1] + 1

    spread = make_workload(args.requests, args.prompt_lens, args.output_lens, vocab, args.seed)
    mean_out = round(sum(args.output_lens) / 2)
    equal = make_workload(args.requests, args.prompt_lens, args.output_lens, vocab, args.seed, equal_output=mean_out)

    runs = {}

    def measure_alternating(policy, requests):
        """--repeats runs of static and continuous, alternating, so a slow stretch of a shared machine hits both
        alike; the order swaps every repeat (static first in repeats 0, 2, ..., continuous first in 1, 3, ...) so
        that neither policy is always the one timed first, and each point records the order of its repeats
        (`timed_first`). The point keeps the run with the median wall time."""
        key = id(requests)
        if key not in runs:
            runs[key] = {"static": [], "continuous": [], "first": []}
            for r in range(args.repeats):
                order = ("static", "continuous") if r % 2 == 0 else ("continuous", "static")
                runs[key]["first"].append(order[0])
                for name in order:
                    runs[key][name].append(measure_policy(model, name, requests, args.slots, max_len, device)[0])
        done = sorted(runs[key][policy], key=lambda f: f["wall_s"])
        fields = dict(done[(len(done) - 1) // 2])
        fields["timed_first"] = list(runs[key]["first"])
        fields["wall_s_repeats"] = [f["wall_s"] for f in runs[key][policy]]
        fields["wall_s_min"] = done[0]["wall_s"]
        return fields

    def run_policy(kind, requests, policy):
        outs = [r["output_len"] for r in requests]
        point = {"kind": kind, "policy": policy, "requests": len(requests), "slots": args.slots,
                 "mean_output": sum(outs) / len(outs), "ideal": ideal_speedup(outs, args.slots)}
        if policy == "hf-cb":
            fn = lambda: measure_hf(model, requests, args.slots, device)  # noqa: E731
        else:
            fn = lambda: measure_alternating(policy, requests)  # noqa: E731
        t_part = time.perf_counter()
        point = data.measure(point, fn, device, progress=f"[{len(data.doc['points']) + 1}]")
        print(f"  {kind}/{policy}: {time.perf_counter() - t_part:.1f} s", flush=True)
        if common.succeeded(point):
            point["predicted"] = predict(point, prov)
            static = next((q for q in data.doc["points"] if q.get("kind") == kind and q.get("policy") == "static"
                           and common.succeeded(q)), None)
            if policy == "continuous" and static:
                point["speedup"] = compare(static, point)
                sp = point["speedup"]
                print(f"  {kind}: steps static {point['ideal']['static_steps']}, perfect packing "
                      f"{point['ideal']['packed_steps']}, this loop's schedule {point['ideal']['schedule_steps']}; "
                      f"measured speedup {sp['median']:.2f}x (best runs {sp['best']:.2f}x) = "
                      f"{sp['of_schedule_bound']:.2f} of the schedule bound {point['ideal']['schedule_ratio']:.2f}x",
                      flush=True)
            data.write()
        return point

    with data.running():
        # the step counts of the issue's workload (256 requests, prompts U(64, 511), outputs U(16, 511)) and of
        # this run's at several slot counts: arithmetic on the lengths, no model involved
        for label, n, prompts, outs_range in (("issue", 256, (64, 511), (16, 511)),
                                              ("run", args.requests, args.prompt_lens, args.output_lens)):
            outs = [r["output_len"] for r in make_workload(n, prompts, outs_range, 2, args.seed)]
            data.doc["points"].append({"kind": "schedule", "workload": label, "requests": n, "output_min": outs_range[0],
                                       "output_max": outs_range[1], "seed": args.seed,
                                       "by_slots": {str(k): ideal_speedup(outs, k) for k in (8, 16, 32, 64)}})
        for kind, requests in (("throughput", spread), ("equal", equal)):
            if kind in args.parts:
                for policy in ("static", "continuous"):
                    run_policy(kind, requests, policy)
        if "chunked" in args.parts:
            requests = chunked_workload(args, vocab)
            slots = args.chunk_decoders + args.long_prompts
            chunk_len = max(args.long_prompt, args.chunk_decoder_prompt) + args.chunk_decoder_output + 1
            for budget in (None, args.token_budget):
                t_part = time.perf_counter()
                data.measure({"kind": "chunked", "token_budget": budget, "decoders": args.chunk_decoders,
                              "long_prompt": args.long_prompt, "long_prompts": args.long_prompts},
                             lambda b=budget: measure_chunked(model, requests, args.chunk_decoders, slots, chunk_len,
                                                              device, b, args.repeats),
                             device, progress=f"[{len(data.doc['points']) + 1}]")
                print(f"  chunked/{budget}: {time.perf_counter() - t_part:.1f} s", flush=True)
        if "hf" in args.parts:  # last: its speed is transformers' business, and the time budget may skip it
            cont = next((q for q in data.doc["points"] if q.get("kind") == "throughput"
                         and q.get("policy") == "continuous" and common.succeeded(q)), None)
            need = 2 * cont["wall_s"] + 15 if cont else None  # its setup, and a scheduler up to 2x slower than ours
            left = data.deadline - time.monotonic() if data.deadline is not None else None
            if hf_continuous_available(model) and need is not None and left is not None and left < need:
                data.doc["points"].append({"kind": "throughput", "policy": "hf-cb", "skipped": f"time budget (needs "
                                           f"about {need:.0f} s, {max(left, 0):.0f} s left)"})
                print(f"  throughput/hf-cb: skipped (needs about {need:.0f} s, {max(left, 0):.0f} s left)", flush=True)
            elif hf_continuous_available(model):
                run_policy("throughput", spread, "hf-cb")
            else:
                data.doc["points"].append({"kind": "throughput", "policy": "hf-cb", "skipped": "this transformers has "
                                           "no continuous batching API (init_continuous_batching)"})
    common.plot_safely(plot, data_path, args.out / "figures")
    return 130 if data.doc["status"] == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
