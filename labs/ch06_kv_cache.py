"""Lab for chapter 6: the KV cache, measured: how big it is, three ways to store it, and what paging, prefix
reuse and an 8-bit cache change.

Measures, on one GPU (or a CPU, labelled as such):
  - memory: the KV tensors Hugging Face keeps after a prefill, over batch x context, for the model (GQA) and the
    same model with one KV head per query head (MHA), against calc's formula;
  - decode: the time of one decode step over context length for three caches written here: growing
    concatenation (dynamic, as transformers' DynamicCache does), preallocated per request (contiguous), and
    paged blocks of 16 tokens with a block table (gathered for attention); plus the contiguous cache in FP8 and
    INT8. The paged cache is checked against Hugging Face's logits before anything is timed;
  - quant: the logit error an FP8 or INT8 cache introduces, against the bf16 cache, over several decode steps;
  - prefix: time to first token with and without reusing the cached blocks of a shared prefix (a system
    prompt), over the prefix length;
  - fragmentation: a replay of real request lengths (a sample of the BurstGPT trace) through three allocators:
    reserve the maximum length, reserve the exact final length, and paged blocks; memory utilization of each.
Data goes to <out>/data/ch06-<device>.json (with provenance), figures to <out>/figures/ch06-<device>-<name>_{zh,en}.svg.
The caches here are plain PyTorch (the paged one gathers its blocks into a contiguous copy for attention): they
show the memory behaviour and the relative costs, not the speed of a fused paged-attention kernel.

    python labs/ch06_kv_cache.py                 # Llama-3.1-8B shape, random weights, bf16, on the GPU
    python labs/ch06_kv_cache.py --quick         # tiny model on the CPU, seconds (the test suite runs this)
    python labs/ch06_kv_cache.py --plot-only     # re-render figures from the data files in <out>/data/
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import common
import torch
import torch.nn.functional as F

LAB = "ch06-kv-cache"
DEFAULT_OUT = common.REPO / "docs" / "assets" / "labs" / LAB
QUICK_OUT = common.REPO / "labs" / ".quick-out" / LAB
PARTS = ("memory", "decode", "quant", "prefix", "fragmentation")
CACHES = ("dynamic", "contiguous", "paged", "contiguous-fp8", "contiguous-int8")
KV_DTYPES = ("bf16", "fp8", "int8")

# A sample of real request lengths: the first 40 rows (request tokens, response tokens) of
# BurstGPT_1.csv, conversation logs of ChatGPT and GPT-4 on Azure OpenAI (Wang et al., BurstGPT, 2024,
# https://arxiv.org/abs/2401.17644; data CC-BY-4.0, https://huggingface.co/datasets/lzzmm/BurstGPT, read in
# the dataset viewer 2026-11-29), the 2 failed ones (0 response tokens) dropped: 38 requests.
BURSTGPT_SAMPLE = (
    (472, 18), (1087, 230), (417, 276), (1360, 647), (185, 215), (586, 293), (37, 1656), (54, 503), (1528, 414),
    (89, 370), (549, 362), (172, 69), (969, 206), (97, 137), (1574, 501), (253, 239), (23, 344), (509, 207),
    (387, 349), (733, 180), (1305, 477), (17, 382), (601, 557), (1327, 239), (1437, 181), (1336, 245), (19, 440),
    (92, 95), (507, 448), (938, 263), (1544, 608), (1840, 378), (991, 462), (1109, 329), (1476, 443), (14, 11),
    (1741, 428), (1306, 267),
)
BURSTGPT_SOURCE = "https://huggingface.co/datasets/lzzmm/BurstGPT"
# What the PagedAttention paper measured for its three Orca baselines (Kwon et al., SOSP 2023, Figure 2 and
# section 6.1): Orca reimplemented by the authors with a buddy allocator, reserving the maximum length of 2048
# (Max), up to twice the output (Pow2) or exactly the output (Oracle): 20.4 %, 26.8 % and 38.2 % of the KV
# cache memory held token states. Not "earlier systems" in general, and not comparable one to one with the
# replay here (no power-of-two rounding, no external fragmentation, another max length and workload).
PAPER_UTILIZATION = {"low_pct": 20.4, "high_pct": 38.2, "source": "https://arxiv.org/abs/2309.06180",
                     "baselines": {"Orca (Max)": 20.4, "Orca (Pow2)": 26.8, "Orca (Oracle)": 38.2}}


# ---------------------------------------------------------------------------------------------------------
# Three KV caches with one interface: write(layer, k, v, start) and read(layer, length) -> (K, V)
# K, V are [batch, kv_heads, tokens, head_dim] in the model's dtype.


class DynamicKV:
    """Grows by concatenation, as transformers' DynamicCache does: every step allocates a new tensor one token
    longer and copies the whole cache into it. Nothing is reserved; every step moves O(context) bytes."""

    def __init__(self, n_layers):
        self.k, self.v = [None] * n_layers, [None] * n_layers

    def write(self, layer, k, v, start):
        if self.k[layer] is None:
            self.k[layer], self.v[layer] = k, v
        else:
            self.k[layer] = torch.cat([self.k[layer][:, :, :start], k], dim=2)
            self.v[layer] = torch.cat([self.v[layer][:, :, :start], v], dim=2)

    def read(self, layer, length):
        return self.k[layer][:, :, :length], self.v[layer][:, :, :length]

    def nbytes(self):
        return sum(t.numel() * t.element_size() for t in self.k + self.v if t is not None)


class QuantizedStore:
    """8-bit storage for one contiguous tensor [batch, kv_heads, max_len, head_dim]: FP8 E4M3 with one scale
    per tensor of 1 (no calibration; values far inside e4m3's +-448), or INT8 with one bf16 absmax scale per
    token and head (symmetric). Reading dequantizes to the compute dtype."""

    def __init__(self, shape, kind, dtype, device):
        self.kind, self.dtype = kind, dtype
        if kind == "fp8":
            self.data = torch.zeros(shape, dtype=torch.float8_e4m3fn, device=device)
            self.scale = None
        else:
            self.data = torch.zeros(shape, dtype=torch.int8, device=device)
            self.scale = torch.ones((*shape[:-1], 1), dtype=torch.bfloat16, device=device)

    def write(self, x, start):
        end = start + x.shape[2]
        if self.kind == "fp8":
            self.data[:, :, start:end] = x.to(torch.float8_e4m3fn)
        else:
            scale = x.abs().amax(-1, keepdim=True).float().clamp_min(1e-8) / 127
            self.data[:, :, start:end] = torch.round(x.float() / scale).clamp(-127, 127).to(torch.int8)
            self.scale[:, :, start:end] = scale.to(torch.bfloat16)

    def read(self, length):
        x = self.data[:, :, :length].to(self.dtype)
        return x if self.scale is None else x * self.scale[:, :, :length].to(self.dtype)

    def nbytes(self):
        return sum(t.numel() * t.element_size() for t in (self.data, self.scale) if t is not None)


class ContiguousKV:
    """One preallocated tensor per layer per request, sized for `max_len` tokens: what a static cache does.
    Reading the first `length` tokens is a view (no copy). `kv_dtype` fp8 / int8 stores 8-bit values."""

    def __init__(self, n_layers, batch, n_kv, max_len, head_dim, dtype, device, kv_dtype="bf16"):
        shape = (batch, n_kv, max_len, head_dim)
        self.max_len, self.kv_dtype = max_len, kv_dtype
        if kv_dtype == "bf16":
            self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
            self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        else:
            self.k = [QuantizedStore(shape, kv_dtype, dtype, device) for _ in range(n_layers)]
            self.v = [QuantizedStore(shape, kv_dtype, dtype, device) for _ in range(n_layers)]

    def write(self, layer, k, v, start):
        end = start + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"{end} tokens do not fit a contiguous cache of {self.max_len}")
        if self.kv_dtype == "bf16":
            self.k[layer][:, :, start:end] = k
            self.v[layer][:, :, start:end] = v
        else:
            self.k[layer].write(k, start)
            self.v[layer].write(v, start)

    def read(self, layer, length):
        if self.kv_dtype == "bf16":
            return self.k[layer][:, :, :length], self.v[layer][:, :, :length]
        return self.k[layer].read(length), self.v[layer].read(length)

    def nbytes(self):
        if self.kv_dtype == "bf16":
            return sum(t.numel() * t.element_size() for t in self.k + self.v)
        return sum(s.nbytes() for s in self.k + self.v)


class PagedKV:
    """A pool of fixed-size blocks per layer, [num_blocks, block_size, kv_heads, head_dim], and a block table per
    request mapping its logical blocks to physical ones (PagedAttention's layout). Blocks are allocated as the
    sequence grows; two requests can share a block by listing the same physical id (prefix caching).

    Attention needs the keys of one request in order: read() gathers the request's blocks into a contiguous copy.
    A paged-attention kernel (vLLM's, FlashInfer's) reads the blocks in place instead; the copy is this lab's
    simplification, and its cost shows in the decode timings."""

    def __init__(self, n_layers, batch, n_kv, head_dim, num_blocks, block_size, dtype, device):
        self.block_size, self.device = block_size, device
        shape = (num_blocks, block_size, n_kv, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.free = list(range(num_blocks - 1, -1, -1))  # a stack: pop() gives the lowest free id
        self.tables = [[] for _ in range(batch)]
        self._table_tensor = None

    def allocate(self, length):
        """Give every request enough blocks for `length` tokens."""
        need = math.ceil(length / self.block_size)
        for table in self.tables:
            while len(table) < need:
                if not self.free:
                    raise RuntimeError("out of KV blocks")
                table.append(self.free.pop())
        self._table_tensor = None

    def share_prefix(self, source: list[int], tokens: int) -> int:
        """Point every request's first blocks at `source`'s full blocks covering up to `tokens` tokens (shared,
        not copied). Returns the number of tokens now cached (a multiple of block_size)."""
        n = tokens // self.block_size
        owned = set(source)  # the earlier request still holds all of its blocks, shared or not
        for i, table in enumerate(self.tables):
            self.free.extend(reversed([b for b in table if b not in owned]))
            self.tables[i] = list(source[:n])
        self._table_tensor = None
        return n * self.block_size

    def table(self):
        if self._table_tensor is None:
            self._table_tensor = torch.tensor(self.tables, dtype=torch.long, device=self.device)
        return self._table_tensor

    def write(self, layer, k, v, start):
        b, n_kv, t, d = k.shape
        self.allocate(start + t)
        pos = torch.arange(start, start + t, device=self.device)
        slots = self.table()[:, pos // self.block_size] * self.block_size + pos % self.block_size  # [b, t]
        flat_k = self.k[layer].view(-1, n_kv, d)
        flat_v = self.v[layer].view(-1, n_kv, d)
        flat_k[slots.reshape(-1)] = k.transpose(1, 2).reshape(b * t, n_kv, d)
        flat_v[slots.reshape(-1)] = v.transpose(1, 2).reshape(b * t, n_kv, d)

    def read(self, layer, length):
        n = math.ceil(length / self.block_size)
        table = self.table()[:, :n]
        b = table.shape[0]

        def gather(pool):
            blocks = pool[table]  # [b, n, block_size, kv_heads, head_dim]: a copy
            return blocks.reshape(b, n * self.block_size, *pool.shape[2:])[:, :length].transpose(1, 2)

        return gather(self.k[layer]), gather(self.v[layer])

    def used_blocks(self):
        return len({i for table in self.tables for i in table})

    def nbytes(self):
        """Bytes of the blocks in use (the pool is preallocated once for all requests, as an engine does)."""
        per_block = sum(t[0].numel() * t.element_size() for t in (self.k[0], self.v[0])) * len(self.k)
        return self.used_blocks() * per_block


def make_cache(kind, model, batch, max_len, block_size=16, num_blocks=None):
    cfg = model.config
    n_kv, head_dim = cfg.num_key_value_heads, getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    dtype, device = model.lm_head.weight.dtype, model.lm_head.weight.device
    n_layers = cfg.num_hidden_layers
    if kind == "dynamic":
        return DynamicKV(n_layers)
    if kind.startswith("contiguous"):
        kv_dtype = kind.split("-", 1)[1] if "-" in kind else "bf16"
        return ContiguousKV(n_layers, batch, n_kv, max_len, head_dim, dtype, device, kv_dtype)
    if kind == "paged":
        blocks = num_blocks or batch * math.ceil(max_len / block_size)
        return PagedKV(n_layers, batch, n_kv, head_dim, blocks, block_size, dtype, device)
    raise ValueError(f"unknown cache {kind!r}")


# ---------------------------------------------------------------------------------------------------------
# A decode loop over the Hugging Face model's weights, with any of the caches above


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class KVDecoder:
    """Runs a Llama/Qwen2 model's layers with a cache from make_cache(): forward(tokens, start) processes
    `tokens` [batch, T] at positions start..start+T-1, attending to everything cached before them."""

    def __init__(self, model, cache):
        cfg = model.config
        if cfg.model_type not in ("llama", "qwen2"):
            raise SystemExit(f"error: the lab's decoder knows llama and qwen2 layers, not {cfg.model_type!r}")
        self.model, self.cache = model, cache
        self.n_heads, self.n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads

    def forward(self, tokens, start: int):
        """Logits of the last position; the new tokens' K and V are written into the cache."""
        m = self.model.model
        b, t = tokens.shape
        x = m.embed_tokens(tokens)
        pos = torch.arange(start, start + t, device=tokens.device)
        cos, sin = m.rotary_emb(x, pos.unsqueeze(0))
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        for i, layer in enumerate(m.layers):
            attn, h = layer.self_attn, layer.input_layernorm(x)
            q = attn.q_proj(h).reshape(b, t, self.n_heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(h).reshape(b, t, self.n_kv, self.head_dim).transpose(1, 2)
            v = attn.v_proj(h).reshape(b, t, self.n_kv, self.head_dim).transpose(1, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            self.cache.write(i, k, v, start)
            keys, values = self.cache.read(i, start + t)
            x = x + attn.o_proj(self.attend(q, keys, values, start).transpose(1, 2).reshape(b, t, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self.model.lm_head(m.norm(x[:, -1:]))[:, -1]

    def attend(self, q, keys, values, start):
        b, _, t, d = q.shape
        group = self.n_heads // self.n_kv
        if t == 1:  # decode: the query heads of a group attend together, so the cache is read once per KV head
            out = F.scaled_dot_product_attention(q.reshape(b, self.n_kv, group, d), keys, values)
            return out.reshape(b, self.n_heads, 1, d)
        keys, values = keys.repeat_interleave(group, dim=1), values.repeat_interleave(group, dim=1)
        if start == 0:
            return F.scaled_dot_product_attention(q, keys, values, is_causal=True)
        # a prompt after a cached prefix: query i sits at position start + i and sees keys 0..start + i
        mask = torch.arange(start + t, device=q.device)[None, :] <= torch.arange(start, start + t, device=q.device)[:, None]
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)

    def generate(self, prompt, steps: int, forced=None):
        """Greedy: prefill, then `steps` decode steps. Returns the logits of every step [batch, steps + 1, vocab].
        `forced` [batch, steps] feeds these tokens instead of the argmax (to compare two caches on one path)."""
        logits = [self.forward(prompt, 0)]
        for i in range(steps):
            token = forced[:, i : i + 1] if forced is not None else logits[-1].argmax(-1, keepdim=True)
            logits.append(self.forward(token, prompt.shape[1] + i))
        return torch.stack(logits, 1)


# ---------------------------------------------------------------------------------------------------------
# Measurements: each returns the measured fields of one data point


def random_tokens(model, batch, length, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.vocab_size, (batch, length), generator=g).to(device)


def cache_tensor_bytes(cache) -> int:
    """Bytes held by the key/value tensors of a transformers cache."""
    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            tensor = getattr(layer, name, None)
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


@torch.inference_mode()
def measure_memory(model, batch, context, device):
    """Prefill `batch` prompts of `context` tokens with Hugging Face, keeping the cache: the bytes of its K/V
    tensors, and on a GPU what the allocator holds after minus before (the cache plus one row of logits)."""
    common.free_memory(device)
    cuda = device.type == "cuda"
    before = torch.cuda.memory_allocated(device) if cuda else None
    prompt = random_tokens(model, batch, context, device)
    out = model(input_ids=prompt, use_cache=True, logits_to_keep=1)
    cache = getattr(out, "cache", None) or out.past_key_values  # renamed `cache` in transformers 5.2x
    fields = {"kv_cache_tensor_bytes": cache_tensor_bytes(cache)}
    if cuda:
        common.sync(device)
        fields["allocated_delta_bytes"] = torch.cuda.memory_allocated(device) - before
    del out, cache
    common.free_memory(device)
    return fields


@torch.inference_mode()
def measure_decode(model, caches, batch, context, steps, warmup, device, block_size):
    """Prefill `context` tokens into one cache of each kind, then time single decode steps, round robin: step i
    of every cache before step i + 1 of any, so a slow stretch of the machine (another process on a shared CPU,
    a clock change) hits every cache alike. Returns, per cache, the time of each step and the cache's bytes."""
    common.free_memory(device)
    max_len = context + warmup + steps
    decoders = {}
    for kind in caches:
        decoders[kind] = KVDecoder(model, make_cache(kind, model, batch, max_len, block_size))
        decoders[kind].forward(random_tokens(model, batch, context, device), 0)
    tokens = {kind: torch.zeros(batch, 1, dtype=torch.long, device=device) for kind in caches}
    times = {kind: [] for kind in caches}
    for i in range(warmup + steps):
        for kind, decoder in decoders.items():
            common.sync(device)
            t0 = time.perf_counter()
            tokens[kind] = decoder.forward(tokens[kind], context + i).argmax(-1, keepdim=True)
            common.sync(device)
            if i >= warmup:
                times[kind].append(time.perf_counter() - t0)
    fields = {"by_cache": {kind: {"step_s": common.summarize(times[kind]), "cache_bytes": decoders[kind].cache.nbytes()}
                           for kind in caches}}
    del decoders
    common.free_memory(device)
    return fields


@torch.inference_mode()
def check_against_hf(model, kind, device, prompt_len=37, steps=6, block_size=16):
    """The lab's cache and loop against Hugging Face's own forward with its DynamicCache: relative L2 error of
    the logits over a prefill and `steps` decode steps (Hugging Face's greedy tokens fed to both)."""
    prompt = random_tokens(model, 1, prompt_len, device, seed=1)
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=steps + 1, do_sample=False,
                         output_logits=True, return_dict_in_generate=True)
    ref = torch.stack(out.logits, 1).float()  # [1, steps + 1, vocab]
    forced = out.sequences[:, prompt_len:]
    decoder = KVDecoder(model, make_cache(kind, model, 1, prompt_len + steps + 1, block_size))
    mine = decoder.generate(prompt, steps, forced=forced).float()
    err = ((mine - ref).norm() / ref.norm()).item()
    return {"rel_error": err, "same_argmax": bool(torch.equal(mine.argmax(-1), ref.argmax(-1))), "steps": steps,
            "prompt_len": prompt_len}


def check_model(model, device):
    """The measured model's architecture with 2 layers, fp32 and random weights, for check_against_hf.

    The cache and loop logic under test does not depend on depth or dtype, but a bf16 32-layer model's logits
    differ between two correct implementations by a few percent (rounding in a different kernel order,
    amplified layer by layer; on the H200 chapter 3's compiled path differed from eager by 5.5 %). In fp32 two
    correct implementations agree to about 1e-6, so a tight tolerance still refuses a wrong cache."""
    cfg = model.config.to_dict()
    layers = cfg["num_hidden_layers"]
    cfg["num_hidden_layers"] = 2
    for key, value in list(cfg.items()):  # per-layer lists (layer_types, ...) follow the layer count
        if isinstance(value, list) and len(value) == layers:
            cfg[key] = value[:2]
    return common.build_model(cfg, device, torch.float32)


CHECK_TOLERANCE = 1e-3  # relative L2 of fp32 logits; a wrong cache position or block gives 0.1 and more


@torch.inference_mode()
def measure_quant_error(model, kv_dtype, context, steps, device):
    """Logits with an 8-bit contiguous cache vs the bf16 cache, same tokens fed to both (the bf16 run's greedy
    tokens): relative L2 error per step, and how often the top-1 token agrees."""
    prompt = random_tokens(model, 1, context, device, seed=2)
    ref_dec = KVDecoder(model, make_cache("contiguous", model, 1, context + steps + 1))
    ref = ref_dec.generate(prompt, steps).float()
    forced = ref.argmax(-1)[:, :steps]
    mine_dec = KVDecoder(model, make_cache(f"contiguous-{kv_dtype}", model, 1, context + steps + 1))
    mine = mine_dec.generate(prompt, steps, forced=forced).float()
    errs = ((mine - ref).norm(dim=-1) / ref.norm(dim=-1)).squeeze(0)
    return {"rel_error_per_step": [float(e) for e in errs], "rel_error_median": float(errs.median()),
            "top1_agreement": float((mine.argmax(-1) == ref.argmax(-1)).float().mean()),
            "cache_bytes": mine_dec.cache.nbytes(), "cache_bytes_bf16": ref_dec.cache.nbytes(),
            "cache_tokens": context + steps + 1}


@torch.inference_mode()
def measure_prefix(model, prefix_len, suffix_len, repeats, device, block_size):
    """Time to first token for a prompt = shared prefix + own suffix: prefilling everything, versus reusing the
    full blocks of the prefix cached by an earlier request (automatic prefix caching) and prefilling the rest."""
    prefix = random_tokens(model, 1, prefix_len, device, seed=3)
    suffix = random_tokens(model, 1, suffix_len, device, seed=4)
    prompt = torch.cat([prefix, suffix], dim=1)
    total = prefix_len + suffix_len
    blocks = 2 * math.ceil(total / block_size) + 2

    def ttft(setup, fn):
        """Only the prefill is timed: setup() (a fresh block pool, or the new request's block table) runs first."""
        times = []
        for _ in range(repeats + 1):  # the first call warms up
            state = setup()
            common.sync(device)
            t0 = time.perf_counter()
            logits = fn(state)
            logits.argmax(-1).cpu()
            times.append(time.perf_counter() - t0)
        return logits, common.summarize(times[1:])

    def cold_setup():  # a new pool per request: building it (torch.zeros) stays out of the timer
        return KVDecoder(model, make_cache("paged", model, 1, total, block_size, num_blocks=blocks))

    def cold(decoder):
        return decoder.forward(prompt, 0)

    # The earlier request: its prefix sits in the pool's first blocks.
    cache = make_cache("paged", model, 1, total, block_size, num_blocks=blocks)
    KVDecoder(model, cache).forward(prefix, 0)
    owner = list(cache.tables[0])

    def warm_setup():  # a new request: the prefix's full blocks, shared (a block-table update, not timed)
        return cache.share_prefix(owner, prefix_len)

    def warm(cached):
        # The suffix attends to the cached prefix with an explicit mask (attend()): on a GPU SDPA then cannot
        # take its flash kernel, which the cold path's is_causal can, so the warm time is pessimistic there.
        return KVDecoder(model, cache).forward(prompt[:, cached:], cached)

    cold_logits, cold_s = ttft(cold_setup, cold)
    warm_logits, warm_s = ttft(warm_setup, warm)
    reused = (prefix_len // block_size) * block_size
    err = ((warm_logits.float() - cold_logits.float()).norm() / cold_logits.float().norm()).item()
    return {"ttft_cold_s": cold_s, "ttft_warm_s": warm_s, "reused_tokens": reused, "prefilled_warm": total - reused,
            "rel_error": err, "shared_blocks": reused // block_size,
            "timed": "the prefill only, until the first token is on the host; the block pool is built before the timer"}


def replay_fragmentation(requests, allocator, max_len, block_size=16) -> dict:
    """Replay (prompt, output) lengths: each request holds prompt + t tokens after its t-th generated token
    (t = 1..output) and has some number of slots reserved for it at that moment:
      - "max": max_len slots from arrival (a static cache sized for the longest allowed request);
      - "exact": prompt + output slots (an oracle that knows the final length);
      - "paged": ceil(tokens / block_size) * block_size slots (blocks allocated as it grows).
    Utilization = sum of held tokens / sum of reserved slots over every generation step of every request
    (the time-average if every step takes the same time). External fragmentation (holes between contiguous
    reservations) is not modelled, so "max" and "exact" are upper bounds of what such systems reach."""
    stored = reserved = 0
    for prompt, output in requests:
        final = prompt + output
        if allocator == "max" and final > max_len:
            raise ValueError(f"a request of {final} tokens exceeds max_len {max_len}")
        for t in range(1, output + 1):
            held = prompt + t
            stored += held
            if allocator == "max":
                reserved += max_len
            elif allocator == "exact":
                reserved += final
            elif allocator == "paged":
                reserved += math.ceil(held / block_size) * block_size
            else:
                raise ValueError(f"unknown allocator {allocator!r}")
    return {"stored_token_steps": stored, "reserved_slot_steps": reserved, "utilization_pct": 100 * stored / reserved}


# ---------------------------------------------------------------------------------------------------------
# calc's predictions (GPU runs; memory also on a CPU: the formula does not depend on the device)


def mha_config(config: dict) -> dict:
    """The same model with one KV head per query head (multi-head attention)."""
    return dict(config, num_key_value_heads=config["num_attention_heads"])


def shape_config(prov, shape):
    config = prov["model"]["config"]
    return mha_config(config) if shape == "mha" else config


def calc_model_params(prov, shape):
    """calc knows the presets by name; the MHA variant (and the tiny config) it reads as a config.json."""
    params = prov["model"]["calc_params"]
    if shape == "mha":
        return {"config": mha_config(prov["model"]["config"])}
    return params


def predict(point, prov):
    kind, gpu, weights = point.get("kind"), prov.get("calc_gpu_key"), prov["model"]["weights"]
    if kind == "memory":
        pred = common.calc_predict("memory", {**calc_model_params(prov, point["shape"]), "gpu": gpu or "h100-sxm",
                                              "batch": point["batch"], "prompt-len": point["context"] - 1,
                                              "output-len": 1, "weights": weights, "kv-dtype": weights})
        return pred and {"kv_cache_bytes": pred["kv_cache_bytes"], "kv_bytes_per_token": pred["kv_bytes_per_token"]}
    if kind == "quant":
        out = {}
        for key, kv in (("kv_bytes_per_token", point["kv_dtype"]), ("kv_bytes_per_token_bf16", "bf16")):
            pred = common.calc_predict("memory", {**prov["model"]["calc_params"], "gpu": gpu or "h100-sxm",
                                                  "prompt-len": point["context"], "output-len": 1, "weights": weights,
                                                  "kv-dtype": kv})
            if pred:
                out[key] = pred["kv_bytes_per_token"]
        return out or None
    if not gpu:
        return None
    if kind == "decode":  # the bandwidth model's TPOT for a bf16 and an 8-bit KV cache at this context
        out = {}
        for kv in (weights, "fp8"):
            pred = common.calc_predict("perf", {**prov["model"]["calc_params"], "gpu": gpu, "batch": point["batch"],
                                                "prompt-len": point["context"], "output-len": 2, "weights": weights,
                                                "kv-dtype": kv})
            if pred:
                out[kv] = {"tpot_s": pred["tpot_s"], "decode_bytes_per_step": pred["decode_bytes_per_step"]}
        return out or None
    if kind == "prefix":
        out = {}
        for name, length in (("ttft_cold_s", point["prefix_len"] + point["suffix_len"]),
                             ("ttft_warm_s", point["prefix_len"] + point["suffix_len"] - point.get("reused_tokens", 0))):
            pred = common.calc_predict("perf", {**prov["model"]["calc_params"], "gpu": gpu, "prompt-len": max(1, length),
                                                "output-len": 2, "weights": weights, "kv-dtype": weights})
            if pred:
                out[name] = pred["ttft_s"]
        return out or None
    return None


def refresh_prediction(point, prov) -> None:
    if point.get("kind") in ("memory", "quant", "decode", "prefix"):
        point["predicted"] = predict(point, prov)


# ---------------------------------------------------------------------------------------------------------
# Figures, from the data file alone

TEXT = {
    "measured": {"zh": "实测", "en": "measured"},
    "tensor_bytes": {"zh": "K、V 张量字节数（形状 × 元素大小）", "en": "K, V tensor bytes (shape × element size)"},
    "alloc_delta": {"zh": "分配器增量（预填充前后）", "en": "allocator delta (after − before prefill)"},
    "predicted": {"zh": "calc 预测", "en": "calc prediction"},
    "gqa": {"zh": "GQA（{n} 个 KV 头）", "en": "GQA ({n} KV heads)"},
    "mha": {"zh": "MHA（{n} 个 KV 头）", "en": "MHA ({n} KV heads)"},
    "tokens_cached": {"zh": "缓存中的 token 数（批大小 × 上下文）", "en": "tokens in the cache (batch × context)"},
    "kv_size": {"zh": "KV 缓存（{unit}）", "en": "KV cache ({unit})"},
    "mem_title": {"zh": "KV 缓存：Hugging Face 缓存中 K、V 张量的字节数 vs calc 的公式",
                  "en": "KV cache: bytes of the K, V tensors in Hugging Face's cache vs calc's formula"},
    "context": {"zh": "上下文长度（token）", "en": "context length (tokens)"},
    "step_ms": {"zh": "每步解码时间（毫秒，中位数；竖线 p10–p90）", "en": "time per decode step (ms, median; bars p10–p90)"},
    "decode_title": {"zh": "解码一步的时间随上下文增长（批大小 {b}）", "en": "Time of one decode step vs context (batch {b})"},
    "util_pct": {"zh": "KV 显存利用率（%）", "en": "KV memory utilization (%)"},
    "frag_title": {"zh": "{n} 个真实请求（BurstGPT 样本）的 KV 显存利用率", "en": "KV memory utilization replaying {n} real requests (BurstGPT sample)"},
    "paper_band": {"zh": "vLLM 论文图 2：作者自建的三个 Orca 基线\n（Max 20.4%、Pow2 26.8%、Oracle 38.2%）",
                   "en": "vLLM paper, Fig. 2: the authors' three Orca baselines\n(Max 20.4%, Pow2 26.8%, Oracle 38.2%)"},
    "frag_note": {"zh": "纯算术重放，与设备和模型无关 · max_len = {m} · BurstGPT_1.csv 的 {n} 个请求",
                  "en": "arithmetic replay, independent of device and model · max_len = {m} · {n} requests of BurstGPT_1.csv"},
    "ttft_ms": {"zh": "TTFT（毫秒，中位数；只计预填充）", "en": "TTFT (ms, median; prefill only)"},
    "prefix_len": {"zh": "共享前缀长度（token）", "en": "shared prefix length (tokens)"},
    "prefix_title": {"zh": "前缀缓存：首 token 时间（后缀 {s} 个 token）", "en": "Prefix caching: time to first token ({s}-token suffix)"},
    "cold": {"zh": "不复用（整段预填充）", "en": "no reuse (prefill everything)"},
    "warm": {"zh": "复用前缀的块", "en": "prefix blocks reused"},
    "pred_cold": {"zh": "calc：整段预填充", "en": "calc: prefill everything"},
    "pred_warm": {"zh": "calc：只预填充未缓存部分", "en": "calc: prefill the uncached part"},
    "bytes_token": {"zh": "每 token 的 KV 字节（所有层）", "en": "KV bytes per token (all layers)"},
    "rel_err": {"zh": "logits 相对误差（中位数，%）", "en": "logit relative error (median, %)"},
    "quant_title": {"zh": "8 位 KV 缓存：省下的显存与带来的误差（上下文 {c}）", "en": "8-bit KV cache: memory saved and error added (context {c})"},
    "top1": {"zh": "top-1 与 bf16 一致 {p:.0f}%", "en": "top-1 agrees with bf16 {p:.0f}%"},
    "no_prediction": {"zh": "无 calc 预测：{why}", "en": "no calc prediction: {why}"},
    "why_cpu": {"zh": "CPU 运行（calc 只为 GPU 建模时间）", "en": "CPU run (calc models GPU timings only)"},
    "why_gpu": {"zh": "calc 的登记表里没有这块 GPU", "en": "this GPU is not in calc's registry"},
    "max": {"zh": "预留最大长度", "en": "reserve max length"},
    "exact": {"zh": "预留准确长度（预知）", "en": "reserve exact length (oracle)"},
    "paged": {"zh": "分页（块 {b}）", "en": "paged (block {b})"},
    "oom": {"zh": "显存不足", "en": "OOM"},
}
CACHE_NAMES = {
    "dynamic": {"zh": "动态拼接", "en": "dynamic (concatenate)"},
    "contiguous": {"zh": "连续预分配", "en": "contiguous (preallocated)"},
    "paged": {"zh": "分页（块表 + gather）", "en": "paged (block table + gather)"},
    "contiguous-fp8": {"zh": "连续预分配，FP8", "en": "contiguous, FP8"},
    "contiguous-int8": {"zh": "连续预分配，INT8", "en": "contiguous, INT8"},
}
COLORS = {"dynamic": "#C44E52", "contiguous": "#4C72B0", "paged": "#55A868", "contiguous-fp8": "#8172B2",
          "contiguous-int8": "#CCB974"}


def t(key, lang, **kw):
    return TEXT[key][lang].format(**kw)


def no_prediction_reason(prov, lang):
    why = "why_cpu" if prov["device"]["kind"] == "cpu" else "why_gpu"
    return t("no_prediction", lang, why=t(why, lang))


def plot(data, lang):
    import matplotlib.pyplot as plt

    prov, points = data["provenance"], data["points"]
    model = prov["model"]
    footer = f"{common.describe_run(prov, lang)} · {model['label']} {model['weights']}"
    footer += ("，随机权重" if lang == "zh" else ", random weights") if model.get("random_weights", True) else ""
    figures = {}
    gpu_note = footer if prov.get("calc_gpu_key") else footer + "\n" + no_prediction_reason(prov, lang)

    # 1. KV memory: measured tensors vs calc, GQA and MHA
    mem = [p for p in points if p.get("kind") == "memory"]
    if any(common.succeeded(p) for p in mem):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        xs_all = []
        biggest = max((p.get("predicted") or {}).get("kv_cache_bytes") or p.get("kv_cache_tensor_bytes") or 0 for p in mem)
        unit, scale = ("GB", 1e9) if biggest >= 1e9 else ("MB", 1e6)
        for shape, marker, color in (("gqa", "o", "#4C72B0"), ("mha", "s", "#C44E52")):
            pts = sorted((p for p in mem if p["shape"] == shape), key=lambda p: p["batch"] * p["context"])
            if not pts:
                continue
            n_kv = shape_config(prov, shape)["num_key_value_heads"]
            label = t(shape, lang, n=n_kv)
            ok = [p for p in pts if common.succeeded(p)]
            xs = [p["batch"] * p["context"] for p in ok]
            xs_all += [p["batch"] * p["context"] for p in pts]
            ax.plot(xs, [p["kv_cache_tensor_bytes"] / scale for p in ok], marker=marker, ls="none", color=color, ms=7,
                    label=f"{label} · {t('tensor_bytes', lang)}")
            delta = [(p["batch"] * p["context"], p["allocated_delta_bytes"] / scale) for p in ok
                     if p.get("allocated_delta_bytes") is not None]
            if delta:  # GPU runs: what the allocator really holds more after the prefill (cache + one row of logits)
                ax.plot(*zip(*delta, strict=True), marker=marker, ls="none", mfc="none", color=color, ms=12, mew=1.2,
                        label=f"{label} · {t('alloc_delta', lang)}")
            pred = [(p["batch"] * p["context"], p["predicted"]["kv_cache_bytes"] / scale) for p in pts if p.get("predicted")]
            if pred:
                ax.plot(*zip(*pred, strict=True), ls="--", color=color, lw=1, label=f"{label} · {t('predicted', lang)}")
            for p in pts:
                if p.get("oom") and p.get("predicted"):
                    ax.annotate(t("oom", lang), (p["batch"] * p["context"], p["predicted"]["kv_cache_bytes"] / scale),
                                color=color, fontsize=7, ha="left", va="bottom")
        common.log_axis(ax, "x", sorted(set(xs_all)), base=2)
        common.log_axis(ax, "y")
        ax.set_xlabel(t("tokens_cached", lang))
        ax.set_ylabel(t("kv_size", lang, unit=unit))
        ax.set_title(t("mem_title", lang))
        ax.legend(fontsize=7)
        figures["kv-memory"] = (fig, footer)

    # 2. Decode step time vs context for each cache
    dec = [p for p in points if p.get("kind") == "decode" and common.succeeded(p)]
    if dec:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        contexts = sorted({p["context"] for p in dec})
        any_pred = False
        for cache in CACHES:
            pts = sorted((p for p in dec if cache in p["by_cache"]), key=lambda p: p["context"])
            if not pts:
                continue
            stats = [p["by_cache"][cache]["step_s"] for p in pts]
            med = [1e3 * st["median"] for st in stats]
            err = [[m - 1e3 * st["p10"] for m, st in zip(med, stats, strict=True)],
                   [1e3 * st["p90"] - m for m, st in zip(med, stats, strict=True)]]
            ax.errorbar([p["context"] for p in pts], med, yerr=err, marker="o", ms=4, capsize=3, lw=1.2, elinewidth=0.8,
                        color=COLORS[cache], label=CACHE_NAMES[cache][lang])
        for kv, cache in ((model["weights"], "contiguous"), ("fp8", "contiguous-fp8")):
            pred = [(p["context"], 1e3 * p["predicted"][kv]["tpot_s"]) for p in dec if (p.get("predicted") or {}).get(kv)]
            if pred:
                any_pred = True
                ax.plot(*zip(*sorted(pred), strict=True), ls="--", color=COLORS[cache], lw=1,
                        label=f"{t('predicted', lang)} ({kv.upper()} KV)")
        common.log_axis(ax, "x", contexts, base=2)
        common.log_axis(ax, "y")
        ax.set_xlabel(t("context", lang))
        ax.set_ylabel(t("step_ms", lang))
        ax.set_title(t("decode_title", lang, b=dec[0]["batch"]))
        ax.legend(fontsize=7)
        figures["decode-step"] = (fig, footer if any_pred else gpu_note)

    # 3. Fragmentation replay
    frag = [p for p in points if p.get("kind") == "fragmentation" and common.succeeded(p)]
    if frag:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        labels = [t(p["allocator"], lang, b=p.get("block_size")) for p in frag]
        vals = [p["utilization_pct"] for p in frag]
        bars = ax.barh(range(len(frag)), vals, color=["#C44E52", "#DD8452", "#55A868", "#4C72B0"][: len(frag)])
        for bar, v in zip(bars, vals, strict=True):
            ax.text(v + 1, bar.get_y() + bar.get_height() / 2, f"{v:.1f}%", va="center", fontsize=8)
        ax.axvspan(PAPER_UTILIZATION["low_pct"], PAPER_UTILIZATION["high_pct"], color="#8C8C8C", alpha=0.2,
                   label=t("paper_band", lang))
        ax.set_yticks(range(len(frag)), labels)
        ax.invert_yaxis()
        ax.set_xlim(0, 110)
        ax.set_xlabel(t("util_pct", lang))
        ax.set_title(t("frag_title", lang, n=frag[0]["requests"]))
        ax.legend(fontsize=7, loc="upper right")
        note = t("frag_note", lang, m=frag[0]["max_len"], n=frag[0]["requests"])  # no device, no model: arithmetic
        figures["fragmentation"] = (fig, note)

    # 4. Prefix caching
    pre = sorted((p for p in points if p.get("kind") == "prefix" and common.succeeded(p)), key=lambda p: p["prefix_len"])
    if pre:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        xs = [p["prefix_len"] for p in pre]
        ax.plot(xs, [1e3 * p["ttft_cold_s"]["median"] for p in pre], marker="o", color="#C44E52", label=t("cold", lang))
        ax.plot(xs, [1e3 * p["ttft_warm_s"]["median"] for p in pre], marker="s", color="#55A868", label=t("warm", lang))
        any_pred = False
        for key, color, label in (("ttft_cold_s", "#C44E52", "pred_cold"), ("ttft_warm_s", "#55A868", "pred_warm")):
            pred = [(p["prefix_len"], 1e3 * p["predicted"][key]) for p in pre if (p.get("predicted") or {}).get(key)]
            if pred:
                any_pred = True
                ax.plot(*zip(*pred, strict=True), ls="--", lw=1, color=color, label=t(label, lang))
        common.log_axis(ax, "x", xs, base=2)
        common.log_axis(ax, "y")
        ax.set_xlabel(t("prefix_len", lang))
        ax.set_ylabel(t("ttft_ms", lang))
        ax.set_title(t("prefix_title", lang, s=pre[0]["suffix_len"]))
        ax.legend(fontsize=7)
        figures["prefix"] = (fig, footer if any_pred else gpu_note)

    # 5. 8-bit KV: bytes per token and logit error
    quant = [p for p in points if p.get("kind") == "quant" and common.succeeded(p)]
    if quant:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
        names = ["bf16"] + [p["kv_dtype"] for p in quant]
        per_token = [quant[0]["cache_bytes_bf16"] / quant[0]["cache_tokens"]] + [p["cache_bytes"] / p["cache_tokens"] for p in quant]
        ax.bar(range(len(names)), per_token, color=["#4C72B0", "#8172B2", "#CCB974"][: len(names)], label=t("measured", lang))
        pred = [(i + 1, p["predicted"]["kv_bytes_per_token"]) for i, p in enumerate(quant) if p.get("predicted")]
        if pred and quant[0]["predicted"].get("kv_bytes_per_token_bf16"):
            pred.insert(0, (0, quant[0]["predicted"]["kv_bytes_per_token_bf16"]))
        if pred:
            ax.plot(*zip(*pred, strict=True), ls="none", marker="_", ms=30, mew=2, color="#C44E52", label=t("predicted", lang))
        for i, v in enumerate(per_token):
            ax.text(i, v, f"{v:,.0f} B", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(names)), [n.upper() for n in names])
        ax.set_ylabel(t("bytes_token", lang))
        ax.legend(fontsize=7)
        ax2.bar(range(len(quant)), [100 * p["rel_error_median"] for p in quant], color=["#8172B2", "#CCB974"][: len(quant)])
        for i, p in enumerate(quant):
            ax2.text(i, 100 * p["rel_error_median"], t("top1", lang, p=100 * p["top1_agreement"]), ha="center",
                     va="bottom", fontsize=7)
        ax2.set_xticks(range(len(quant)), [p["kv_dtype"].upper() for p in quant])
        ax2.set_ylabel(t("rel_err", lang))
        ax2.margins(y=0.25)
        fig.suptitle(t("quant_title", lang, c=quant[0]["context"]))
        figures["kv-quant"] = (fig, footer)
    return figures


# ---------------------------------------------------------------------------------------------------------


def memory_pair(text: str) -> list[tuple[int, int]]:
    """argparse type for "1x8192,16x8192"."""
    try:
        pairs = [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected batch x context pairs like 1x8192,16x8192, got {text!r}") from None
    if not pairs or any(len(p) != 2 or min(p) < 1 for p in pairs):
        raise argparse.ArgumentTypeError(f"expected batch x context pairs like 1x8192,16x8192, got {text!r}")
    return pairs


def parse_args(argv):
    ap = common.lab_parser(__doc__, DEFAULT_OUT, QUICK_OUT)
    ap.add_argument("--parts", default=",".join(PARTS), help=f"what to measure, from {','.join(PARTS)}")
    ap.add_argument("--memory-points", type=memory_pair, default=memory_pair("1x8192,4x8192,16x8192,4x32768"),
                    help="batch x context points of the memory comparison (each for GQA and MHA)")
    ap.add_argument("--contexts", type=common.int_list, default=[1024, 4096, 16384, 32768], help="decode sweep")
    ap.add_argument("--caches", default=",".join(CACHES), help=f"caches of the decode sweep, from {','.join(CACHES)}")
    ap.add_argument("--decode-batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=16, help="timed decode steps per point")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--block-size", type=int, default=16, help="tokens per block of the paged cache (vLLM's default)")
    ap.add_argument("--quant-context", type=int, default=4096, help="context of the 8-bit error measurement")
    ap.add_argument("--quant-steps", type=int, default=16)
    ap.add_argument("--prefix-lens", type=common.int_list, default=[512, 2048, 8192, 32768])
    ap.add_argument("--suffix-len", type=int, default=128, help="the request's own tokens after the shared prefix")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats of each prefix measurement")
    ap.add_argument("--max-len", type=int, default=4096, help="what a reserve-max allocator reserves per request")
    ap.add_argument("--threads", type=int, help="CPU runs: torch threads (1 keeps timings steadier on a shared machine)")
    args = common.finish_lab_args(ap, ap.parse_args(argv), dict(
        memory_points=[(1, 64), (2, 128)], contexts=[32, 128], steps=4, warmup=1, quant_context=64, quant_steps=4,
        prefix_lens=[32, 64], suffix_len=8, repeats=2), DEFAULT_OUT, QUICK_OUT)
    args.parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        ap.error(f"--parts: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    args.caches = [c for c in args.caches.split(",") if c]
    unknown = sorted(set(args.caches) - set(CACHES))
    if unknown:
        ap.error(f"--caches: unknown cache(s) {', '.join(unknown)}; choose from {', '.join(CACHES)}")
    if min(args.steps, args.repeats, args.quant_steps, args.block_size, args.decode_batch, args.suffix_len) < 1 \
            or args.warmup < 0:
        ap.error("--steps, --repeats, --quant-steps, --block-size, --decode-batch and --suffix-len must be >= 1")
    if max(p + o for p, o in BURSTGPT_SAMPLE) > args.max_len:
        ap.error(f"--max-len {args.max_len} is shorter than the longest replayed request "
                 f"({max(p + o for p, o in BURSTGPT_SAMPLE)} tokens)")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.plot_only:
        return common.plot_only(args.out, LAB, plot, refresh_prediction if args.repredict else None)
    device = common.pick_device(args.device)
    if args.threads and device.type == "cpu":
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model, model_entry = common.load_lab_model(args, device)
    with torch.inference_mode():  # first-call costs stay out of every sweep
        model(input_ids=random_tokens(model, 1, 16, device))
    prov = common.provenance(LAB, Path(__file__).name, argv, device, args.note)
    prov["model"] = model_entry
    prov["datasheet"] = common.gpu_datasheet(prov["calc_gpu_key"])
    prov["settings"] = {k: v for k, v in vars(args).items() if k not in ("out", "plot_only", "repredict", "note")}
    prov["settings"]["paper_utilization"] = PAPER_UTILIZATION
    prov["settings"]["workload"] = {"source": BURSTGPT_SOURCE, "requests": [list(r) for r in BURSTGPT_SAMPLE]}
    data_path = args.out / "data" / f"{common.data_stem(prov)}.json"
    data = common.DataFile(data_path, prov, args.budget_s)
    print(f"data: {data_path}", flush=True)

    def measure(point, fn, *fn_args):
        point = data.measure(point, lambda: fn(*fn_args), device, progress=f"[{len(data.doc['points']) + 1}]")
        if (common.succeeded(point) or point.get("oom")) and point["kind"] in ("memory", "quant", "decode", "prefix"):
            point["predicted"] = predict(point, prov)
            data.write()
        return point

    with data.running():
        if "fragmentation" in args.parts:  # pure arithmetic: first, seconds, never skipped
            for allocator, block in (("max", None), ("exact", None), ("paged", args.block_size)):
                measure({"kind": "fragmentation", "allocator": allocator, "block_size": block, "max_len": args.max_len,
                         "requests": len(BURSTGPT_SAMPLE)},
                        replay_fragmentation, BURSTGPT_SAMPLE, allocator, args.max_len, block or args.block_size)
        if {"decode", "quant", "prefix"} & set(args.parts):
            # Fail fast: the lab's paged cache must compute what Hugging Face computes before anything is timed,
            # checked on a 2-layer fp32 copy of the architecture (check_model: no bf16 rounding noise).
            point = measure({"kind": "check", "cache": "paged", "model": "2-layer fp32 copy"},
                            check_against_hf, check_model(model, device), "paged", device)
            if common.succeeded(point) and not (point["rel_error"] < CHECK_TOLERANCE and point["same_argmax"]):
                raise common.LabAbort(f"the paged cache's logits differ from Hugging Face's by {point['rel_error']:.3g}")
        if "decode" in args.parts:
            for context in args.contexts:
                measure({"kind": "decode", "caches": args.caches, "batch": args.decode_batch, "context": context,
                         "steps": args.steps},
                        measure_decode, model, args.caches, args.decode_batch, context, args.steps, args.warmup, device,
                        args.block_size)
        if "quant" in args.parts:
            for kv_dtype in ("fp8", "int8"):
                measure({"kind": "quant", "kv_dtype": kv_dtype, "context": args.quant_context, "steps": args.quant_steps},
                        measure_quant_error, model, kv_dtype, args.quant_context, args.quant_steps, device)
        if "prefix" in args.parts:
            for prefix_len in args.prefix_lens:
                measure({"kind": "prefix", "prefix_len": prefix_len, "suffix_len": args.suffix_len},
                        measure_prefix, model, prefix_len, args.suffix_len, args.repeats, device, args.block_size)
        if "memory" in args.parts:  # last: the MHA variant is a second model
            for shape in ("gqa", "mha"):
                if shape == "mha":
                    config = mha_config(model_entry["config"])
                    model = None
                    common.free_memory(device)
                    try:
                        model = common.build_model(config, device, common.DTYPES[args.dtype])
                    except torch.cuda.OutOfMemoryError:
                        model = None
                if model is None:
                    for batch, context in args.memory_points:
                        point = {"kind": "memory", "shape": shape, "batch": batch, "context": context,
                                 "oom": True, "error": "the MHA model does not fit"}
                        point["predicted"] = predict(point, prov)
                        data.doc["points"].append(point)
                    data.write()
                    continue
                for batch, context in args.memory_points:
                    measure({"kind": "memory", "shape": shape, "batch": batch, "context": context},
                            measure_memory, model, batch, context, device)
    common.plot_safely(plot, data_path, args.out / "figures")
    return 130 if data.doc["status"] == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
