"""Lab for chapter 3: where the time of one request goes, prefill versus decode.

Measures, on one GPU (or a CPU, labelled as such):
  - prefill time and TTFT for prompt lengths 128..8k at batch 1, and for a small batch sweep;
  - TPOT of the decode paths: Hugging Face generate (eager, dynamic cache); a hand-written static-cache loop
    (as in gpt-fast) run eagerly, as a CUDA graph, and compiled by torch.compile then captured as a CUDA graph;
    opt-in, generate with a static cache and transformers' own torch.compile (hf-compile);
  - how the time of a request splits between prefill and decode for several output lengths;
  - decode throughput over batch size, and memory-bandwidth utilization (MBU) of each decode path, against the
    measured read-only bandwidth (median; the method of the ch04 lab).
Data goes to <out>/data/ch03-<device>.json (with provenance), figures to <out>/figures/ch03-<device>-<name>_{zh,en}.svg.
A fast path (CUDA graph, compiled step) is checked right after capture against the same decode steps computed in
fp32 (see check_fast_path): if it is further from them than a stated multiple of the eager bf16 step's own rounding
error, its point is recorded as refused (with the measured errors) and the sweep goes on; the data file's status
then names the failed points.

    python labs/ch03_prefill_decode.py                 # Llama-3.1-8B shape, random weights, bf16, on the GPU
    python labs/ch03_prefill_decode.py --quick         # tiny model on the CPU, seconds (the test suite runs this)
    python labs/ch03_prefill_decode.py --plot-only     # re-render figures from the data files in <out>/data/
"""

from __future__ import annotations

import sys
import time
from itertools import pairwise
from pathlib import Path

import common
import torch
import torch.nn.functional as F

LAB = "ch03-prefill-decode"
DEFAULT_OUT = common.REPO / "docs" / "assets" / "labs" / LAB
QUICK_OUT = common.REPO / "labs" / ".quick-out" / LAB
# Decode paths, fastest first. hf-compile is opt-in (--paths): transformers compiles for about a minute first.
PATHS = ("compile-graph", "static-graph", "static", "hf-eager", "hf-compile")
DEFAULT_PATHS = ("compile-graph", "static-graph", "static", "hf-eager")


# ---------------------------------------------------------------------------------------------------------
# The hand-written decode path: a preallocated KV cache and a step of fixed shape, replayed as a CUDA graph.


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def fuse_projections(model) -> None:
    """One weight matrix for q/k/v and one for gate/up in every layer, so a decode step reads each with one
    GEMV launch instead of three (two). The model's own q/k/v and gate/up weights become views into the fused
    matrices: no extra memory, and the Hugging Face paths keep working on the same bytes. Idempotent."""
    for layer in model.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        if hasattr(attn, "qkv_weight"):
            continue
        for owner, names, fused in ((attn, ("q_proj", "k_proj", "v_proj"), "qkv"), (mlp, ("gate_proj", "up_proj"), "gate_up")):
            mods = [getattr(owner, n) for n in names]
            for kind in ("weight", "bias"):
                parts = [getattr(m, kind) for m in mods]
                if any(p is None for p in parts):
                    setattr(owner, f"{fused}_{kind}", None)
                    continue
                whole = torch.cat([p.detach() for p in parts])
                setattr(owner, f"{fused}_{kind}", whole)
                for m, piece in zip(mods, whole.split([p.shape[0] for p in parts]), strict=True):
                    setattr(m, kind, torch.nn.Parameter(piece, requires_grad=False))
            owner.fused_sizes = [m.out_features for m in mods]


class GraphMismatch(RuntimeError):
    """The fast step does not compute what the eager step computes (beyond bf16 rounding): its point is refused
    and recorded with `check` (the measured errors), and the sweep goes on with the other paths and points."""

    def __init__(self, message: str, check: dict | None = None):
        super().__init__(message)
        self.check = check or {}


# The fast-path check (StaticDecoder.check_fast_path). Each decode step is computed three times: eagerly in the
# model's dtype, by the fast path, and as a reference in fp32 (the same bf16 weights upcast on use, fp32
# activations, accumulation and KV cache). The eager step's distance from the reference is the rounding noise of
# this model in this dtype on this step (its "floor"); a fast path that only reorders or fuses the same
# arithmetic lands about as far from the reference, or closer (Inductor computes fused elementwise work in fp32
# and rounds once). Accepted: relative L2 error to the reference <= CHECK_MULTIPLE x floor, never below CHECK_MIN_TOL
# (an fp32 model has a floor of 0) and never above CHECK_MAX_TOL. The multiple of 4 is a judgement, not a derived
# bound: no GPU run has yet recorded the floors of the 8B shape (the next one does, in fast_path_check). On the
# tests' 2-layer bf16 model with a 9-token prompt (floor about 0.004) a step that never advances its cache position
# is 0.13 off at step 2 and a step that skips the last layer 0.43 off (tests/test_labs.py); the cap keeps a noisy
# floor from admitting such errors. That power shrinks as the model widens and the prompt grows: a stale position
# only misplaces one key among hundreds, and the logits move little. Two checks therefore do not depend on the
# logits: after the fast steps the cache position must have advanced by the number of steps, and the K and V the
# fast path wrote into each new cache slot must match the eager run's (relative L2 over all layers <= tolerance +
# floor of that step; a slot left unwritten is 1.0 off); and the logits check runs on a short prompt
# (CHECK_SHORT_PROMPT tokens) as well as on the real one. Why not a fixed tolerance: on the H200 (Llama-3.1-8B
# shape, 32 layers, random weights, bf16) the compiled step differed from the eager step by 0.055, and no fixed
# number separates that from a real bug for every model and dtype.
# The fp32 reference is computed for the batch's first sequence only (cheap at any batch size; the rows are
# independent computations); over the whole batch the fast path must stay within tolerance + floor of the eager
# step, the bound a path that rounds like the first row meets (triangle inequality).
CHECK_MULTIPLE = 4.0
CHECK_MIN_TOL = 1e-3
CHECK_MAX_TOL = 0.3
CHECK_SHORT_PROMPT = 16
CHECK_RULE = (f"first sequence: relative L2 error of the fast path's logits to an fp32 computation of the same "
              f"step <= tolerance = min(max({CHECK_MULTIPLE:g} x the eager step's own error to it, {CHECK_MIN_TOL:g}), "
              f"{CHECK_MAX_TOL:g}); whole batch: relative L2 difference from the eager step <= tolerance + that error; "
              f"the same for the K and V each step writes into its cache slot (all layers, whole batch); the cache "
              f"position advanced by the number of steps; on the real prompt and on its first {CHECK_SHORT_PROMPT} tokens")


def rel_l2(a, b) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def linear(x, weight, bias):
    """F.linear in x's dtype: the weight as it is in the model's own dtype (no cast, so no extra dispatch per
    projection in an eager step), upcast on use for the fp32 reference."""
    if weight.dtype != x.dtype:
        weight, bias = weight.to(x.dtype), None if bias is None else bias.to(x.dtype)
    return F.linear(x, weight, bias)


class StaticDecoder:
    """Greedy decoding with a static KV cache, the way gpt-fast (https://github.com/pytorch-labs/gpt-fast) does it.

    It runs the Hugging Face model's weights with its own loop: fused q/k/v and gate/up projections, the
    attention and cache bookkeeping, the causal mask and rotary cos/sin computed once per step (not per layer).
    Every tensor of a decode step has a fixed shape and address, so the step can be captured once as a CUDA
    graph and replayed: one launch per token instead of one per kernel, which is what keeps eager decoding
    CPU-bound. With `compile_step`, torch.compile (Inductor) first fuses the norms, rotary and elementwise
    work into few kernels, and the compiled step is what the graph captures.
    """

    def __init__(self, model, batch: int, max_len: int, compile_step: bool = False):
        cfg = model.config
        if cfg.model_type not in ("llama", "qwen2"):
            raise SystemExit(f"error: the static decoder knows llama and qwen2 layers, not {cfg.model_type!r}")
        fuse_projections(model)
        self.model, self.max_len = model, max_len
        self.n_heads, self.n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        weight = model.lm_head.weight
        shape = (batch, self.n_kv, max_len, self.head_dim)
        self.k_cache = [torch.zeros(shape, dtype=weight.dtype, device=weight.device) for _ in range(cfg.num_hidden_layers)]
        self.v_cache = [torch.zeros_like(k) for k in self.k_cache]
        self.positions = torch.arange(max_len, device=weight.device)
        # The decode step reads and writes only these buffers, so a captured graph stays valid between calls.
        self.token = torch.zeros(batch, 1, dtype=torch.long, device=weight.device)
        self.pos = torch.zeros(1, dtype=torch.long, device=weight.device)
        self.graph = None
        # Fixed shapes (dynamic=False): one compilation, and nothing in the step changes shape between calls.
        self.decode_logits = torch.compile(self.forward, fullgraph=True, dynamic=False) if compile_step else self.forward

    def forward(self, tokens, pos, caches=None):
        """Logits of the last position for `tokens` [batch, T] at absolute positions `pos` [T]; fills the cache.

        `caches` (a pair of per-layer K and V lists) replaces the decoder's own cache; the computation runs in
        the caches' dtype, weights cast on use (the fp32 reference of check_fast_path)."""
        k_cache, v_cache = (self.k_cache, self.v_cache) if caches is None else caches
        m = self.model.model
        x = m.embed_tokens(tokens).to(k_cache[0].dtype)
        cos, sin = m.rotary_emb(x, pos.unsqueeze(0))
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # broadcast over heads
        # Decode (one token): positions after `pos` hold no keys yet and are masked. Once per step, not per layer.
        mask = (self.positions <= pos).view(1, 1, 1, -1) if tokens.shape[1] == 1 else None
        for i, layer in enumerate(m.layers):
            x = x + self.attention(layer.self_attn, layer.input_layernorm(x), cos, sin, pos, mask, k_cache[i], v_cache[i])
            x = x + self.mlp(layer.mlp, layer.post_attention_layernorm(x))
        head = self.model.lm_head
        return linear(m.norm(x[:, -1:]), head.weight, head.bias)[:, -1]

    @staticmethod
    def mlp(mlp, x):
        gate, up = linear(x, mlp.gate_up_weight, mlp.gate_up_bias).split(mlp.fused_sizes, dim=-1)
        return linear(mlp.act_fn(gate) * up, mlp.down_proj.weight, mlp.down_proj.bias)

    def attention(self, attn, x, cos, sin, pos, mask, k_cache, v_cache):
        b, t, _ = x.shape
        q, k, v = linear(x, attn.qkv_weight, attn.qkv_bias).split(attn.fused_sizes, dim=-1)
        q = q.reshape(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.reshape(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        v = v.reshape(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k_cache.index_copy_(2, pos, k)
        v_cache.index_copy_(2, pos, v)
        group = self.n_heads // self.n_kv
        if mask is None:  # prefill, always from position 0: causal attention over the prompt
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            # Decode: one query per head against the whole (fixed-size) cache. The query heads sharing a KV head
            # attend as one group, so the cache is read once, not copied per head. reshape, not view: with a
            # boolean mask PyTorch may pick the memory-efficient kernel, whose output is not contiguous.
            q = q.reshape(b, self.n_kv, group, self.head_dim)
            out = F.scaled_dot_product_attention(q, k_cache, v_cache, attn_mask=mask).reshape(b, self.n_heads, 1, self.head_dim)
        return linear(out.transpose(1, 2).reshape(b, t, -1), attn.o_proj.weight, attn.o_proj.bias)

    def prefill(self, prompt):
        """Run the prompt, fill the cache, leave the first generated token in `self.token`. Returns its logits."""
        if prompt.shape[1] >= self.max_len:
            raise ValueError(f"prompt of {prompt.shape[1]} tokens does not fit a cache of {self.max_len}")
        logits = self.forward(prompt, self.positions[: prompt.shape[1]])
        self.token.copy_(logits.argmax(-1, keepdim=True))
        self.pos.fill_(prompt.shape[1])
        return logits

    def step(self):
        """One decode step on the static buffers: token at `pos` in, next token out, `pos` advanced."""
        return self._advance(self.decode_logits)

    def eager_step(self):
        """The same step without compile or graph: the reference the fast paths are checked against."""
        return self._advance(self.forward)

    def _advance(self, logits_of):
        logits = logits_of(self.token, self.pos)
        self.token.copy_(logits.argmax(-1, keepdim=True))
        self.pos.add_(1)
        return logits

    def replay(self):
        self.graph.replay()
        return self.graph_logits

    def capture(self):
        """Record one decode step as a CUDA graph (after warm-up on a side stream, as capture requires; the
        warm-up also triggers torch.compile's compilation, so the graph holds the compiled kernels)."""
        saved = self.token.clone(), self.pos.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                self.step()
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.graph_logits = self.step()
        self.token.copy_(saved[0])
        self.pos.copy_(saved[1])  # the warm-up wrote cache slots that the real steps overwrite again

    def reference_logits(self, prompt, inputs):
        """The logits of the prompt's decode steps computed in fp32: the same weights upcast on use, fp32
        activations, accumulation and KV cache (own buffers, freed on return), fed the tokens `inputs`."""
        layers = len(self.k_cache)
        shape = (prompt.shape[0], self.n_kv, self.max_len, self.head_dim)
        caches = ([torch.zeros(shape, dtype=torch.float32, device=prompt.device) for _ in range(layers)],
                  [torch.zeros(shape, dtype=torch.float32, device=prompt.device) for _ in range(layers)])
        precision = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")  # fp32 matmuls, not TF32
        try:
            n = prompt.shape[1]
            self.forward(prompt, self.positions[:n], caches)
            return [self.forward(token, self.positions[n + i: n + i + 1], caches).float()
                    for i, token in enumerate(inputs)]
        finally:
            torch.set_float32_matmul_precision(precision)

    def check_fast_path(self, prompt, fast_step, steps: int = 4):
        """The fast step (graph replay, compiled step) must compute what the eager step computes, up to rounding.

        Three runs of the same `steps` decode steps after the same prompt: eager in the model's dtype, the fast
        path, and the fp32 reference (reference_logits). The fast and reference runs are fed the eager run's
        tokens: with random weights the top logits are close, so one rounding difference could pick another
        token and every later step would then differ for a harmless reason. The rule is CHECK_RULE, explained
        above GraphMismatch: the logits of each step, then the cache position and the K and V written into the
        new cache slots. A prompt longer than CHECK_SHORT_PROMPT is checked again on its first tokens, where a
        wrong key weighs more in attention. Returns the measurements (the point records them; the short
        prompt's under `short_prompt`); raises GraphMismatch with them attached if a step breaks the rule (a
        NaN does too).
        """
        check = self._check_fast_path(prompt, fast_step, steps)
        if prompt.shape[1] > CHECK_SHORT_PROMPT:
            try:
                check["short_prompt"] = self._check_fast_path(prompt[:, :CHECK_SHORT_PROMPT], fast_step, steps)
            except GraphMismatch as e:
                raise GraphMismatch(f"prompt of {CHECK_SHORT_PROMPT} tokens: {e}",
                                    {**check, "short_prompt": e.check}) from None
        return check

    def _check_fast_path(self, prompt, fast_step, steps):
        n = prompt.shape[1]
        self.prefill(prompt)
        inputs, eager, tokens = [self.token.clone()], [], []
        for _ in range(steps):
            eager.append(self.eager_step().float().clone())
            tokens.append(self.token.clone())
        inputs += tokens[:-1]
        slots = slice(n, n + steps)  # the cache slots the decode steps write
        eager_kv = [c[:, :, slots].float().clone() for c in self.k_cache + self.v_cache]
        # The first sequence only: an fp32 prefill of a whole batch (64 x 512 tokens, no tensor cores) costs seconds.
        reference = self.reference_logits(prompt[:1], [t[:1] for t in inputs])
        self.prefill(prompt)
        for c in self.k_cache + self.v_cache:
            c[:, :, slots].zero_()  # a fast path that does not write a slot leaves zeros, not the eager run's values
        fast = []
        for i in range(steps):
            fast.append(fast_step().float().clone())
            self.token.copy_(tokens[i])  # same input to the next step as the eager run had
        fast_pos = int(self.pos.item())
        check = {"rule": CHECK_RULE, "prompt_len": n, "steps": steps, "floor": [], "error": [], "tolerance": [],
                 "fast_vs_eager": [], "kv_fast_vs_eager": [], "position_after": fast_pos, "greedy_agreement": 0.0}
        agree = 0
        for i, (e, f, r) in enumerate(zip(eager, fast, reference, strict=True)):
            floor, err = rel_l2(e[:1], r), rel_l2(f[:1], r)
            check["floor"].append(floor)
            check["error"].append(err)
            check["tolerance"].append(min(max(CHECK_MULTIPLE * floor, CHECK_MIN_TOL), CHECK_MAX_TOL))
            check["fast_vs_eager"].append(rel_l2(f, e))
            kv_fast = torch.cat([c[:, :, n + i].float().flatten() for c in self.k_cache + self.v_cache])
            kv_eager = torch.cat([c[:, :, i].flatten() for c in eager_kv])
            check["kv_fast_vs_eager"].append(rel_l2(kv_fast, kv_eager))
            agree += int((f.argmax(-1) == e.argmax(-1)).sum())
        batch = prompt.shape[0]
        check["greedy_agreement"] = agree / (steps * batch)
        for i, (err, tol, floor, diff) in enumerate(zip(check["error"], check["tolerance"], check["floor"],
                                                        check["fast_vs_eager"], strict=True)):
            if not err <= tol:  # a NaN fails this too
                raise GraphMismatch(
                    f"decode step {i + 1}: the fast path's logits are {err:.3g} (relative L2) from an fp32 computation "
                    f"of the same step, the eager step's {floor:.3g}; allowed {tol:.3g} ({CHECK_MULTIPLE:g} x the "
                    f"eager error, within [{CHECK_MIN_TOL:g}, {CHECK_MAX_TOL:g}]). Not measuring a wrong computation.",
                    check)
            if batch > 1 and not diff <= tol + floor:
                raise GraphMismatch(
                    f"decode step {i + 1}: over the batch of {batch}, the fast path's logits differ from the eager "
                    f"step's by {diff:.3g} (relative L2); allowed {tol + floor:.3g} (the first sequence's tolerance "
                    f"+ its eager error). Not measuring a wrong computation.", check)
        if fast_pos != n + steps:
            raise GraphMismatch(
                f"after {steps} decode steps from a prompt of {n} tokens the fast path's cache position is {fast_pos}, "
                f"not {n + steps}. Not measuring a wrong computation.", check)
        for i, (diff, tol, floor) in enumerate(zip(check["kv_fast_vs_eager"], check["tolerance"], check["floor"],
                                                   strict=True)):
            if not diff <= tol + floor:
                raise GraphMismatch(
                    f"decode step {i + 1}: the K and V the fast path wrote into cache slot {n + i} differ from the "
                    f"eager step's by {diff:.3g} (relative L2, all layers); allowed {tol + floor:.3g} (the step's "
                    f"tolerance + its eager error). Not measuring a wrong computation.", check)
        return check

    def generate(self, prompt, new_tokens: int, use_graph: bool):
        """Greedy tokens [batch, new_tokens], TTFT in s, and the time of each later decode step in s."""
        device = prompt.device
        if use_graph and self.graph is None:
            self.capture()
            try:
                self.fast_path_check = self.check_fast_path(prompt, self.replay)
            except GraphMismatch:
                self.graph = None  # never replayed: the next call captures and checks again
                raise
        common.sync(device)
        t0 = time.perf_counter()
        self.prefill(prompt)
        tokens = [self.token.clone()]
        common.sync(device)
        ttft = time.perf_counter() - t0
        cuda = device.type == "cuda"
        marks = [torch.cuda.Event(enable_timing=True) if cuda else None for _ in range(new_tokens)]
        host = [0.0] * new_tokens
        for i in range(new_tokens - 1):
            if cuda:
                marks[i].record()
            host[i] = time.perf_counter()
            if use_graph:
                self.graph.replay()
            else:
                self.step()
            tokens.append(self.token.clone())
        if cuda:
            marks[-1].record()
        common.sync(device)
        host[-1] = time.perf_counter()
        if cuda:
            steps = [a.elapsed_time(b) / 1e3 for a, b in pairwise(marks)]
        else:
            steps = [b - a for a, b in pairwise(host)]
        return torch.cat(tokens, dim=1), ttft, steps


# ---------------------------------------------------------------------------------------------------------
# The Hugging Face paths: generate(), timed by its streamer hook


class TokenClock:
    """A generate() streamer that timestamps tokens: put() gets the prompt first, then each new token."""

    def __init__(self, device):
        self.device, self.times = device, []

    def put(self, value):
        common.sync(self.device)
        self.times.append(time.perf_counter())

    def end(self):
        pass


def hf_generate(model, prompt, new_tokens: int, static_cache: bool):
    clock = TokenClock(prompt.device)
    common.sync(prompt.device)
    t0 = time.perf_counter()
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=new_tokens,
        do_sample=False,
        eos_token_id=None,  # run exactly new_tokens steps; see common.build_model
        streamer=clock,
        cache_implementation="static" if static_cache else None,  # on a GPU this also compiles the decode step
    )
    stamps = clock.times[1:]  # times[0] is generate() handing over the prompt
    if out.shape[1] - prompt.shape[1] != new_tokens or len(stamps) != new_tokens:
        raise RuntimeError(f"generate() made {out.shape[1] - prompt.shape[1]} tokens, {len(stamps)} timestamps; "
                           f"expected {new_tokens}")
    steps = [b - a for a, b in pairwise(stamps)]
    return out[:, prompt.shape[1]:], stamps[0] - t0, steps


# ---------------------------------------------------------------------------------------------------------
# Measurements: each returns the measured fields of one data point


def random_prompt(model, batch, length, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.vocab_size, (batch, length), generator=g).to(device)


@torch.inference_mode()
def measure_prefill(model, batch, prompt_len, device, warmup, repeats):
    """One forward pass over the prompt, keeping the KV cache (what a server does before the first token).

    prefill_s: the forward pass alone (CUDA events on a GPU); ttft_s: the same pass + picking the first token +
    copying it to the host (wall clock): the compute part of time-to-first-token.
    """
    prompt = random_prompt(model, batch, prompt_len, device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    prefill, ttft = [], []
    for i in range(warmup + repeats):
        common.sync(device)
        t0 = time.perf_counter()
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        logits = model(input_ids=prompt, use_cache=True, logits_to_keep=1).logits
        if cuda:
            end.record()
        t1 = time.perf_counter()
        logits[:, -1].argmax(-1).cpu()
        t2 = time.perf_counter()
        if i >= warmup:
            prefill.append(start.elapsed_time(end) / 1e3 if cuda else t1 - t0)
            ttft.append(t2 - t0)
    fields = {"prefill_s": common.summarize(prefill), "ttft_s": common.summarize(ttft)}
    if cuda:
        fields["peak_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
    return fields


@torch.inference_mode()
def run_decode_path(model, path, batch, prompt_len, new_tokens, device, decoders):
    """Generate `new_tokens` greedily on one path. Returns tokens, TTFT (s), decode step times (s)."""
    prompt = random_prompt(model, batch, prompt_len, device)
    if path.startswith("hf-"):
        return hf_generate(model, prompt, new_tokens, static_cache=path == "hf-compile")
    key = (path, batch, prompt_len + new_tokens)
    if key not in decoders:  # one cache (and CUDA graph, compiled step) per path and shape, reused across repeats
        decoders.clear()
        common.free_memory(device)
        decoders[key] = StaticDecoder(model, batch, max_len=prompt_len + new_tokens, compile_step=path == "compile-graph")
    return decoders[key].generate(prompt, new_tokens, use_graph=path.endswith("-graph"))


def refused(e: GraphMismatch, decoders, device) -> dict:
    """A point whose fast path failed its check: the reason and the measured errors, no timings. The sweep goes on."""
    decoders.clear()
    common.free_memory(device)
    print(f" refused: {e}", end="", flush=True)
    return {"error": f"GraphMismatch: {e}", "fast_path_check": e.check}


def measure_decode(model, path, batch, prompt_len, new_tokens, device, warmup, repeats, decoders):
    """`tpot_s` summarizes every decode step of every repeat; its median (the median step time, which throughput
    and MBU use) keeps a one-off stall (the allocator growing, a graph re-recorded, the OS scheduling something
    else) out. The TPOT of the book's definition, (E2E − TTFT) / (N − 1), is the mean of the steps: `tpot_mean_s`."""
    t0 = time.perf_counter()
    ttft, steps_all, decode, tokens = [], [], [], None
    try:
        for _ in range(warmup):  # compile-graph and hf-compile compile in their first call: tens of seconds
            run_decode_path(model, path, batch, prompt_len, new_tokens, device, decoders)
        warmup_s = time.perf_counter() - t0
        for _ in range(repeats):
            tokens, first, steps = run_decode_path(model, path, batch, prompt_len, new_tokens, device, decoders)
            ttft.append(first)
            decode.append(sum(steps))
            steps_all.extend(steps)
    except GraphMismatch as e:
        return refused(e, decoders, device)
    context = prompt_len + new_tokens / 2  # mean KV length read by a decode step
    bytes_per_step = common.decode_bytes_per_step(model, batch, round(context))
    tpot_s = common.summarize(steps_all)
    fields = {
        "ttft_s": common.summarize(ttft),
        "tpot_s": tpot_s,
        "tpot_mean_s": sum(steps_all) / len(steps_all),
        "decode_s": common.summarize(decode),
        "decode_tok_per_s": batch / tpot_s["median"],
        "bytes_per_step": bytes_per_step,
        "achieved_GBps": bytes_per_step / tpot_s["median"] / 1e9,
        "warmup_s": warmup_s,
        "first_tokens": tokens[0, :8].tolist(),
    }
    check = getattr(next(iter(decoders.values()), None), "fast_path_check", None)
    if check is not None:
        fields["fast_path_check"] = check  # errors of the fast path and of the eager step to an fp32 reference
    return fields


def measure_split(model, path, prompt_len, output_lens, device, warmup, repeats, decoders):
    """Prefill vs decode time of one request (batch 1) for several output lengths, from one run each."""
    longest = max(output_lens)
    ttft, decode = [], {n: [] for n in output_lens}
    try:
        for _ in range(warmup):
            run_decode_path(model, path, 1, prompt_len, longest, device, decoders)
        for _ in range(repeats):
            _, first, steps = run_decode_path(model, path, 1, prompt_len, longest, device, decoders)
            ttft.append(first)
            for n in output_lens:  # the first token comes from prefill; n tokens need n - 1 decode steps
                decode[n].append(sum(steps[: n - 1]))
    except GraphMismatch as e:
        return refused(e, decoders, device)
    return {"ttft_s": common.summarize(ttft),
            "decode_s": {str(n): common.summarize(v) for n, v in decode.items()}}


def predict(point, prov, model_params):
    """calc's prediction for a point (stored next to the measurement), or None: no calc, CPU, unknown GPU."""
    gpu = prov.get("calc_gpu_key")
    if not gpu or point.get("kind") not in ("prefill", "decode", "split"):
        return None
    output_len = point.get("new_tokens") or max(point.get("output_lens", [1]))
    return common.calc_predict("perf", {**model_params, "gpu": gpu, "batch": point.get("batch", 1),
                                        "prompt-len": point["prompt_len"], "output-len": output_len,
                                        "weights": prov["model"]["weights"], "kv-dtype": prov["model"]["weights"]})


# ---------------------------------------------------------------------------------------------------------
# Figures, from the data file alone

TEXT = {
    "prefill": {"zh": "预填充（prefill）", "en": "prefill"},
    "decode": {"zh": "解码（decode）", "en": "decode"},
    "seconds": {"zh": "时间（秒）", "en": "time (s)"},
    "output_len": {"zh": "输出长度（token）", "en": "output length (tokens)"},
    "prompt_len": {"zh": "提示词长度（token）", "en": "prompt length (tokens)"},
    "batch": {"zh": "批大小", "en": "batch size"},
    "decode_share": {"zh": "解码占总时间的比例（%）", "en": "decode share of request time (%)"},
    "split_title": {"zh": "一次请求的时间：预填充与解码（批大小 1，{path}）",
                    "en": "Time of one request: prefill vs decode (batch 1, {path})"},
    "prompt": {"zh": "提示词 {p}", "en": "prompt {p}"},
    "split_x": {"zh": "提示词长度（token）；柱顶数字为输出长度", "en": "prompt length (tokens); output length on top of each bar"},
    "tok_s": {"zh": "吞吐（token/秒）", "en": "throughput (tokens/s)"},
    "tp_title_len": {"zh": "批大小 1：吞吐随提示长度", "en": "Batch 1: throughput vs prompt length"},
    "tp_title_batch": {"zh": "吞吐随批大小（预填充提示词 {p}，解码提示词 {d}）",
                       "en": "Throughput vs batch size (prefill prompt {p}, decode prompt {d})"},
    "prefill_tps": {"zh": "预填充 token/秒", "en": "prefill tokens/s"},
    "decode_tps": {"zh": "解码 token/秒（{path}）", "en": "decode tokens/s ({path})"},
    "ttft": {"zh": "TTFT（毫秒）", "en": "TTFT (ms)"},
    "step_median": {"zh": "每步解码时间的中位数（毫秒）", "en": "median decode step (ms)"},
    "measured": {"zh": "实测", "en": "measured"},
    "predicted": {"zh": "calc 预测", "en": "calc prediction"},
    "ttft_title": {"zh": "TTFT 随提示长度（批大小 1）", "en": "TTFT vs prompt length (batch 1)"},
    "tpot_title": {"zh": "每步解码时间随批大小（提示词 {p}，{path}）", "en": "Decode step vs batch size (prompt {p}, {path})"},
    "no_prediction": {"zh": "无 calc 预测：{why}", "en": "no calc prediction: {why}"},
    "why_cpu": {"zh": "CPU 运行（calc 只为 GPU 建模）", "en": "CPU run (calc models GPUs only)"},
    "why_gpu": {"zh": "calc 的登记表里没有这块 GPU", "en": "this GPU is not in calc's registry"},
    "why_none": {"zh": "calc 未给出该量", "en": "calc gave no value for this quantity"},
    "mbu_title": {"zh": "解码的模型带宽利用率（MBU），批大小 1，提示词 {p}",
                  "en": "Model bandwidth utilization (MBU) of decode, batch 1, prompt {p}"},
    "mbu_axis": {"zh": "每步读取字节 / 每步时间的中位数，占带宽的 %", "en": "bytes read per step / median step time, % of bandwidth"},
    "of_read": {"zh": "占实测只读带宽 {bw:.3g} GB/s（中位数）", "en": "of measured read bandwidth {bw:.3g} GB/s (median)"},
    "of_sheet": {"zh": "占标称带宽 {bw:.0f} GB/s", "en": "of datasheet bandwidth {bw:.0f} GB/s"},
    "oom": {"zh": "显存不足", "en": "OOM"},
    "mbu_over": {"zh": "超过 100%：这台机器上一次只读遍历（torch.sum）跑不出矩阵乘法读内存的速度，这个分母不是上限，比值不是利用率",
                 "en": "above 100%: on this machine a read-only pass (torch.sum) reads memory more slowly than the matrix multiplies do, so this denominator is no ceiling and the ratio is not a utilization"},
}
PATH_NAMES = {
    "static-graph": {"zh": "静态缓存 + CUDA Graph", "en": "static cache + CUDA graph"},
    "static": {"zh": "静态缓存（逐个启动内核）", "en": "static cache (eager launches)"},
    "hf-eager": {"zh": "HF generate（动态缓存）", "en": "HF generate (dynamic cache)"},
    "compile-graph": {"zh": "静态缓存 + torch.compile + CUDA Graph", "en": "static cache + torch.compile + CUDA graph"},
    "hf-compile": {"zh": "HF generate（静态缓存 + compile）", "en": "HF generate (static cache + compile)"},
}


def t(key, lang, **kw):
    return TEXT[key][lang].format(**kw)


def fast_path(points):
    """The path of the split and the batch sweep: the fastest one that needs no compile (the CUDA graph on a
    GPU, the static loop on a CPU)."""
    for path in ("static-graph", "static"):
        if common.measured(points, "split", path=path) or common.measured(points, "decode", path=path):
            return path
    return None


def no_prediction_reason(prov, lang):
    if prov["device"]["kind"] == "cpu":
        return t("no_prediction", lang, why=t("why_cpu", lang))
    if not prov.get("calc_gpu_key"):
        return t("no_prediction", lang, why=t("why_gpu", lang))
    return t("no_prediction", lang, why=t("why_none", lang))


def plot(data, lang):
    import matplotlib.pyplot as plt

    prov, points = data["provenance"], data["points"]
    model = prov["model"]
    footer = f"{common.describe_run(prov, lang)} · {model['label']} {model['weights']}"
    footer += ("，随机权重" if lang == "zh" else ", random weights") if model.get("random_weights", True) else ""
    figures = {}
    fast = fast_path(points)
    fast_name = PATH_NAMES[fast][lang] if fast else ""

    # 1. Prefill vs decode split of one request
    splits = sorted(common.measured(points, "split"), key=lambda p: p["prompt_len"])
    if splits:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        outs = splits[0]["output_lens"]
        width = 0.8 / len(outs)
        for i, p in enumerate(splits):
            for j, n in enumerate(outs):
                x = i + (j - (len(outs) - 1) / 2) * width
                pre, dec = p["ttft_s"]["median"], p["decode_s"][str(n)]["median"]
                ax.bar(x, pre, width * 0.9, color="#4C72B0", label=t("prefill", lang) if i == j == 0 else None)
                ax.bar(x, dec, width * 0.9, bottom=pre, color="#DD8452", label=t("decode", lang) if i == j == 0 else None)
                ax.text(x, pre + dec, str(n), ha="center", va="bottom", fontsize=6.5)
            ax2.plot(outs, [100 * p["decode_s"][str(n)]["median"] / (p["ttft_s"]["median"] + p["decode_s"][str(n)]["median"])
                            for n in outs], marker="o", label=t("prompt", lang, p=p["prompt_len"]))
        ax.set_xticks(range(len(splits)), [str(p["prompt_len"]) for p in splits])
        ax.set_xlabel(t("split_x", lang))
        ax.set_ylabel(t("seconds", lang))
        ax.legend()
        common.log_axis(ax2, "x", outs, base=2)
        ax2.set_ylim(0, 100)
        ax2.set_xlabel(t("output_len", lang))
        ax2.set_ylabel(t("decode_share", lang))
        ax2.legend(fontsize=7)
        fig.suptitle(t("split_title", lang, path=PATH_NAMES[splits[0]["path"]][lang]))
        figures["time-split"] = (fig, footer)

    # 2. Prefill tokens/s vs decode tokens/s
    prefill_b1 = sorted(common.measured(points, "prefill", batch=1), key=lambda p: p["prompt_len"])
    if prefill_b1:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        ax.plot([p["prompt_len"] for p in prefill_b1], [p["prompt_len"] / p["prefill_s"]["median"] for p in prefill_b1],
                marker="o", label=t("prefill_tps", lang))
        dec1 = common.measured(points, "decode", path=fast, batch=1)
        if dec1:
            ax.axhline(dec1[0]["decode_tok_per_s"], color="#DD8452", ls="--", label=t("decode_tps", lang, path=fast_name))
        common.log_axis(ax, "x", [p["prompt_len"] for p in prefill_b1], base=2)
        common.log_axis(ax, "y")
        ax.set_xlabel(t("prompt_len", lang))
        ax.set_ylabel(t("tok_s", lang))
        ax.set_title(t("tp_title_len", lang))
        ax.legend(fontsize=7)
        batch_prompt = prov["settings"]["batch_prompt_len"]
        pre_b = sorted(common.measured(points, "prefill", prompt_len=batch_prompt), key=lambda p: p["batch"])
        dec_b = sorted(common.measured(points, "decode", path=fast, prompt_len=prov["settings"]["decode_prompt_len"]),
                       key=lambda p: p["batch"])
        ax2.plot([p["batch"] for p in pre_b], [p["batch"] * p["prompt_len"] / p["prefill_s"]["median"] for p in pre_b],
                 marker="o", label=t("prefill_tps", lang))
        ax2.plot([p["batch"] for p in dec_b], [p["decode_tok_per_s"] for p in dec_b], marker="s", color="#DD8452",
                 label=t("decode_tps", lang, path=fast_name))
        common.log_axis(ax2, "x", [p["batch"] for p in pre_b + dec_b], base=2)
        common.log_axis(ax2, "y")
        ax2.set_xlabel(t("batch", lang))
        ax2.set_ylabel(t("tok_s", lang))
        ax2.set_title(t("tp_title_batch", lang, p=batch_prompt, d=prov["settings"]["decode_prompt_len"]))
        ax2.legend(fontsize=7)
        figures["throughput"] = (fig, footer)

    # 3. Measured vs predicted TTFT and TPOT
    dec_b = sorted(common.measured(points, "decode", path=fast, prompt_len=prov["settings"]["decode_prompt_len"]),
                   key=lambda p: p["batch"])
    if prefill_b1 and dec_b:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        any_prediction = False
        for a, pts, x_key, field, unit_key in ((ax, prefill_b1, "prompt_len", "ttft_s", "ttft"),
                                                (ax2, dec_b, "batch", "tpot_s", "step_median")):
            xs = [p[x_key] for p in pts]
            med = [1e3 * p[field]["median"] for p in pts]
            err = [[m - 1e3 * p[field]["p10"] for m, p in zip(med, pts, strict=True)], [1e3 * p[field]["p90"] - m for m, p in zip(med, pts, strict=True)]]
            a.errorbar(xs, med, yerr=err, marker="o", capsize=2, label=t("measured", lang))
            pred = [(p[x_key], 1e3 * p["predicted"][field]) for p in pts if (p.get("predicted") or {}).get(field) is not None]
            if pred:
                any_prediction = True
                a.plot(*zip(*pred, strict=True), ls="--", marker="x", color="#C44E52", label=t("predicted", lang))
            common.log_axis(a, "x", xs, base=2)
            common.log_axis(a, "y")
            a.set_ylabel(t(unit_key, lang))
            a.legend(fontsize=7)
        ax.set_xlabel(t("prompt_len", lang))
        ax.set_title(t("ttft_title", lang))
        ax2.set_xlabel(t("batch", lang))
        ax2.set_title(t("tpot_title", lang, p=prov["settings"]["decode_prompt_len"], path=fast_name))
        note = footer if any_prediction else footer + "\n" + no_prediction_reason(prov, lang)
        figures["ttft-tpot"] = (fig, note)

    # 4. MBU of each decode path
    read = next(iter(common.measured(points, "bandwidth", op="read")), None)
    paths = [p for path in PATHS for p in common.measured(points, "decode", path=path, batch=1,
                                                   prompt_len=prov["settings"]["decode_prompt_len"])]
    if read and paths:
        sheet = (prov.get("datasheet") or {}).get("memory_bandwidth_bytes_per_s")
        fig, ax = plt.subplots(figsize=(8, 1.0 + 0.7 * len(paths)))
        ys = range(len(paths))
        pct_read = [100 * p["achieved_GBps"] / read["GBps"] for p in paths]
        ax.barh([y + 0.18 for y in ys], pct_read, 0.34, color="#4C72B0", label=t("of_read", lang, bw=read["GBps"]))
        for y, v, p in zip(ys, pct_read, paths, strict=True):
            ax.text(v + 1, y + 0.18, f"{v:.0f}% · {p['decode_tok_per_s']:.1f} tok/s", va="center", fontsize=7)
        if sheet:
            pct_sheet = [100 * p["achieved_GBps"] * 1e9 / sheet for p in paths]
            ax.barh([y - 0.18 for y in ys], pct_sheet, 0.34, color="#8C8C8C", label=t("of_sheet", lang, bw=sheet / 1e9))
            for y, v in zip(ys, pct_sheet, strict=True):
                ax.text(v + 1, y - 0.18, f"{v:.0f}%", va="center", fontsize=7)
        ax.set_yticks(list(ys), [PATH_NAMES[p["path"]][lang] for p in paths])
        ax.invert_yaxis()
        ax.set_xlabel(t("mbu_axis", lang))
        ax.set_title(t("mbu_title", lang, p=prov["settings"]["decode_prompt_len"]))
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        over = max(pct_read) > 100
        ax.set_xlim(0, max(120, 1.15 * max(pct_read)))
        figures["mbu"] = (fig, footer + ("\n" + t("mbu_over", lang) if over else ""))
    return figures


# ---------------------------------------------------------------------------------------------------------


def report_mbu(point, read_gbps, datasheet):
    """Print what share of the memory bandwidth a decode path reaches (the chapter's benchmark number)."""
    if "achieved_GBps" not in point or not read_gbps:
        return
    line = (f"    {point['path']}: {point['decode_tok_per_s']:.1f} tok/s, median step {1e3 * point['tpot_s']['median']:.2f} ms (TPOT, the mean, {1e3 * point['tpot_mean_s']:.2f} ms), "
            f"{point['achieved_GBps']:.0f} GB/s = MBU {100 * point['achieved_GBps'] / read_gbps:.0f}% of the measured "
            f"read bandwidth ({read_gbps:.0f} GB/s, median)")
    if (datasheet or {}).get("memory_bandwidth_bytes_per_s"):
        line += f", {100 * point['achieved_GBps'] * 1e9 / datasheet['memory_bandwidth_bytes_per_s']:.0f}% of datasheet"
    print(line, flush=True)


def parse_args(argv):
    ap = common.lab_parser(__doc__, DEFAULT_OUT, QUICK_OUT)
    ap.add_argument("--prompt-lens", type=common.int_list, default=[128, 256, 512, 1024, 2048, 4096, 8192],
                    help="prefill sweep at batch 1")
    ap.add_argument("--batches", type=common.int_list, default=[1, 2, 4, 8, 16], help="prefill batch sweep")
    ap.add_argument("--batch-prompt-len", type=int, default=512, help="prompt length of the prefill batch sweep")
    ap.add_argument("--paths", default=",".join(DEFAULT_PATHS),
                    help=f"decode paths to compare, from {','.join(PATHS)} (hf-compile: add it to opt in; it compiles "
                         "for about a minute first)")
    ap.add_argument("--no-compile", action="store_true", help="skip the compiling paths (compile-graph, hf-compile)")
    ap.add_argument("--decode-prompt-len", type=int, default=512)
    ap.add_argument("--decode-tokens", type=int, default=128, help="tokens generated per decode measurement")
    ap.add_argument("--decode-batches", type=common.int_list, default=[1, 4, 16, 64],
                    help="decode batch sweep (on the fastest path that needs no compile)")
    ap.add_argument("--split-prompt-lens", type=common.int_list, default=[128, 512, 2048, 8192])
    ap.add_argument("--output-lens", type=common.int_list, default=[16, 64, 256], help="output lengths of the split")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="repeats of each decode run (TPOT: median of all steps)")
    ap.add_argument("--prefill-repeats", type=int, default=5, help="timed repeats of each prefill")
    args = common.finish_lab_args(ap, ap.parse_args(argv), dict(
        prompt_lens=[16, 32, 64], batches=[1, 2], batch_prompt_len=16, decode_prompt_len=16, decode_tokens=8,
        decode_batches=[1, 2], split_prompt_lens=[16, 64], output_lens=[2, 4, 8], repeats=2), DEFAULT_OUT, QUICK_OUT)
    args.paths = [p for p in args.paths.split(",") if p]
    unknown = sorted(set(args.paths) - set(PATHS))
    if unknown:
        ap.error(f"--paths: unknown path(s) {', '.join(unknown)}; choose from {', '.join(PATHS)}")
    if args.no_compile:
        args.paths = [p for p in args.paths if p not in ("compile-graph", "hf-compile")]
    if min(args.output_lens) < 2 or args.decode_tokens < 2:
        ap.error("--output-lens and --decode-tokens need at least 2 tokens (one from prefill, one decode step)")
    if args.repeats < 1 or args.prefill_repeats < 1 or args.warmup < 0:
        ap.error("--repeats and --prefill-repeats must be >= 1 and --warmup >= 0")
    return args


def refresh_prediction(point, prov) -> None:
    point["predicted"] = predict(point, prov, prov["model"]["calc_params"])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.plot_only:
        return common.plot_only(args.out, LAB, plot, refresh_prediction if args.repredict else None)
    device = common.pick_device(args.device)
    torch.manual_seed(0)

    model, model_entry = common.load_lab_model(args, device)
    with torch.inference_mode():  # first-call costs (kernel selection, lazy init) stay out of every sweep
        model(input_ids=random_prompt(model, 1, 16, device))
    prov = common.provenance(LAB, Path(__file__).name, argv, device, args.note)
    prov["model"] = model_entry
    calc_params = model_entry["calc_params"]
    prov["datasheet"] = common.gpu_datasheet(prov["calc_gpu_key"])
    prov["settings"] = {k: v for k, v in vars(args).items() if k not in ("out", "plot_only", "repredict", "note")}
    if device.type == "cpu":  # CUDA graphs need a GPU (the same loop runs eagerly as "static"); generate()
        # compiles only on accelerators
        args.paths = [p for p in args.paths if p not in ("compile-graph", "static-graph", "hf-compile")]
    prov["settings"]["paths"] = args.paths
    prov["settings"]["mbu_bandwidth"] = "read-only pass over a 1 GiB buffer (--quick: 1 MiB), median of 10"
    data_path = args.out / "data" / f"{common.data_stem(prov)}.json"
    data = common.DataFile(data_path, prov, args.budget_s)
    print(f"data: {data_path}", flush=True)

    def measure(point, fn, *fn_args):
        point = data.measure(point, lambda: fn(*fn_args), device, progress=f"[{len(data.doc['points']) + 1}]")
        if common.succeeded(point):
            point["predicted"] = predict(point, prov, calc_params)
            data.write()
        return point

    def decode(path, batch, warmup):
        return measure({"kind": "decode", "path": path, "batch": batch, "prompt_len": args.decode_prompt_len,
                        "new_tokens": args.decode_tokens},
                       measure_decode, model, path, batch, args.decode_prompt_len, args.decode_tokens, device,
                       warmup, args.repeats, decoders)

    decoders = {}  # the static decoder of the current path and shape, so repeats reuse its cache and CUDA graph
    with data.running():
        bandwidth = measure({"kind": "bandwidth", "op": "read"}, common.memory_bandwidth, device,
                            (1 << 20) if args.quick else (1 << 30))
        read_gbps = bandwidth.get("GBps")
        shapes = [(1, p) for p in args.prompt_lens] + [(b, args.batch_prompt_len) for b in args.batches]
        for batch, prompt_len in dict.fromkeys(shapes):
            measure({"kind": "prefill", "batch": batch, "prompt_len": prompt_len},
                    measure_prefill, model, batch, prompt_len, device, args.warmup, args.prefill_repeats)
        # The split and the batch sweep run on the fastest path that needs no compile (one compile per batch
        # size would cost more than the whole sweep): they come first, with that path at batch 1, because the
        # chapter's figures need them. Then batch 1 on the other paths for the MBU comparison; the compiled paths
        # last, since each compiles in its warm-up (about a minute for the 8B shape) and may meet the time budget.
        fast = next((p for p in ("static-graph", "static") if p in args.paths), None)

        def decode_b1(path):
            point = decode(path, 1, max(args.warmup, 1 if path != "hf-compile" else 2))  # hf-compile: call 1
            decoders.clear()  # compiles, call 2 records its graphs
            common.free_memory(device)
            report_mbu(point, read_gbps, prov["datasheet"])

        if fast:
            decode_b1(fast)
            for prompt_len in args.split_prompt_lens:
                measure({"kind": "split", "path": fast, "batch": 1, "prompt_len": prompt_len, "output_lens": args.output_lens},
                        measure_split, model, fast, prompt_len, args.output_lens, device, args.warmup, args.repeats, decoders)
            for batch in args.decode_batches:
                if batch != 1:  # batch 1 was measured above
                    decode(fast, batch, args.warmup)
            decoders.clear()
            common.free_memory(device)
        for path in sorted((p for p in args.paths if p != fast), key=lambda p: p in ("compile-graph", "hf-compile")):
            decode_b1(path)
    failed = failed_points(data.doc["points"])
    if failed and data.doc["status"] == "complete":  # the sweep ran to its end, but not every point was measured
        data.finish(f"partial: {len(failed)} of {len(data.doc['points'])} points failed: " + "; ".join(failed))
        print(f"data: {data.doc['status']}", flush=True)
    common.plot_safely(plot, data_path, args.out / "figures")
    return 130 if data.doc["status"] == "interrupted" else 0


def failed_points(points) -> list[str]:
    """'[n] kind path=… batch=…: reason' for each point that ended in an error (out of memory and the time budget
    are results of the sweep, not failures)."""
    keys = ("kind", "path", "batch", "prompt_len")
    return [f"[{i}] " + " ".join(f"{k}={p[k]}" if k != "kind" else p[k] for k in keys if k in p) + f": {p['error'][:160]}"
            for i, p in enumerate(points, 1) if p.get("error") and not p.get("oom")]


if __name__ == "__main__":
    sys.exit(main())
