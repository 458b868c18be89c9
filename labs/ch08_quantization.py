"""Lab for chapter 8: quantization, measured: what fewer bits save in bytes and time, and what they cost in quality.

Two parts, on one GPU (or a CPU, labelled as such):
  - quality: random weights have no quality to lose, so the lab trains its own small byte-level language model
    (a few million parameters, minutes on a CPU) on Python standard-library sources that ship with every
    Python (the files and their SHA-256 are recorded), caches it, and measures held-out perplexity and the
    mean KL divergence of the next-byte distribution against the bf16 model for: bf16, FP8 E4M3 (per-tensor
    scale), INT8 per-channel, INT4 per-tensor / per-channel / per-group round-to-nearest (RTN), INT4 and INT3
    per-group GPTQ (implemented here, calibrated on training text), and INT3 per-group RTN. Quantization is
    simulated (quantize, dequantize, compute in fp32): it measures the error of the number format and the
    method, not a kernel;
  - speed: every linear layer of a model shape from calc's registry (default Llama-3.1-8B, random weights) in
    bf16, INT8 weight-only (torch._weight_int8pack_mm; on CUDA only with --int8-reference, see below), INT4
    weight-only with group scales (torch._weight_int4pack_mm, tinygemm) and FP8 W8A8 (torch._scaled_mm, GPUs
    with FP8 tensor cores): the bytes of the stored weights against calc's bytes per parameter, and the time of
    one pass at batch 1 and 16 (decode) and over a prefill of 2,048 tokens, against calc's roofline on the same
    axes. A kernel that this torch or this device lacks is recorded as skipped with the reason. Attention, norms
    and the KV cache are left out: only the weight matmuls, the part quantization changes.
    Every token count is timed only if it fits the time budget: one layer is timed once first, and a pass whose
    estimate (that time x layers x passes) would run past the budget is recorded as skipped. On CUDA the wait
    for the GPU polls, so Ctrl-C stops the lab within milliseconds, not after the queued kernels.
    INT8 weight-only on CUDA: torch's CUDA torch._weight_int8pack_mm (aten/src/ATen/native/cuda/int8mm.cu) is a
    reference kernel, one thread per output element looping over the input dimension in fp32 on CUDA cores (no
    tensor cores, no tiling); on an H200 its 2,048-token pass of the 8B shape ran past the lab's hard stop.
    torch's int8 tensor-core GEMM, torch._int_mm, is W8A8 and needs more than 16 rows, so it cannot time
    weight-only decode. The point is therefore recorded as skipped on CUDA unless --int8-reference asks for the
    reference kernel (then timed under the same budget rule).
Data goes to <out>/data/ch08-<device>.json (with provenance), figures to <out>/figures/ch08-<device>-<name>_{zh,en}.svg.
The trained model is cached under labs/.cache/ch08/ (not committed: it is regenerated from the recorded corpus,
seed and settings; a different Python version ships different sources, so its hashes differ).

    python labs/ch08_quantization.py                 # both parts; on a GPU the 8B shape
    python labs/ch08_quantization.py --quick         # toy model on the CPU, seconds (the test suite runs this)
    python labs/ch08_quantization.py --plot-only     # re-render figures from the data files in <out>/data/
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import sysconfig
import time
from pathlib import Path

import common
import torch
import torch.nn.functional as F
from torch import nn

LAB = "ch08-quantization"
DEFAULT_OUT = common.REPO / "docs" / "assets" / "labs" / LAB
QUICK_OUT = common.REPO / "labs" / ".quick-out" / LAB
CACHE = common.REPO / "labs" / ".cache" / "ch08"
PARTS = ("quality", "speed")
SPEED_FORMATS = ("bf16", "fp8", "int4", "int8")  # in order of interest: a time budget skips the last first
# what each speed format is called in calc (bytes per weight) and the tensor-core dtype its matmul runs in
CALC_FORMAT = {"bf16": "bf16", "int8": "int8", "int4": "int4", "fp8": "fp8"}
# What each timed kernel is, per (format, on CUDA?): the labels the data file and the figure carry.
KERNEL_NOTE = {("bf16", True): "torch matmul (cuBLAS)", ("bf16", False): "torch matmul",
               ("int8", True): "torch._weight_int8pack_mm: a reference kernel (int8mm.cu: one thread per output, fp32 "
                               "CUDA-core loop over k, no tensor cores, no tiling); its times measure that kernel",
               ("int8", False): "torch._weight_int8pack_mm (CPU)",
               ("int4", True): "torch._weight_int4pack_mm (tinygemm)", ("int4", False): "torch._weight_int4pack_mm_for_cpu",
               ("fp8", True): "torch._scaled_mm (cuBLASLt FP8)", ("fp8", False): "torch._scaled_mm"}
COMPUTE_DTYPE = {"bf16": "bf16", "int8": "bf16", "int4": "bf16", "fp8": "fp8"}  # int8/int4 here: weight-only
# Quality methods: (name, kind, bits, granularity). granularity: "tensor", "channel" or a group size (int).
QUALITY_METHODS = (
    ("bf16", "bf16", 16, None),
    ("fp8-tensor", "fp8", 8, "tensor"),
    ("int8-channel", "rtn", 8, "channel"),
    ("int4-tensor", "rtn", 4, "tensor"),
    ("int4-channel", "rtn", 4, "channel"),
    ("int4-group", "rtn", 4, "group"),
    ("int4-group-gptq", "gptq", 4, "group"),
    ("int3-group", "rtn", 3, "group"),
    ("int3-group-gptq", "gptq", 3, "group"),
)

# The corpus: Python standard-library modules present in every CPython 3.10-3.14 as single files. Training text
# and held-out text are different files, so the held-out perplexity is measured on code the model never saw.
TRAIN_FILES = (
    "argparse.py", "ast.py", "calendar.py", "configparser.py", "csv.py", "dataclasses.py", "difflib.py",
    "enum.py", "fractions.py", "ftplib.py", "functools.py", "gettext.py", "gzip.py", "heapq.py", "imaplib.py",
    "inspect.py", "ipaddress.py", "locale.py", "mailbox.py", "optparse.py", "pickle.py", "pprint.py",
    "random.py", "shutil.py", "smtplib.py", "statistics.py", "string.py", "subprocess.py", "tarfile.py",
    "tempfile.py", "threading.py", "typing.py", "uuid.py",
)
HELDOUT_FILES = ("textwrap.py", "shlex.py", "bisect.py", "colorsys.py", "datetime.py")
QUICK_TRAIN_FILES = ("textwrap.py", "shlex.py")
QUICK_HELDOUT_FILES = ("colorsys.py",)

MODEL_FULL = {"d_model": 256, "n_layers": 4, "n_heads": 4, "d_ff": 512, "ctx": 128}
MODEL_QUICK = {"d_model": 64, "n_layers": 2, "n_heads": 2, "d_ff": 128, "ctx": 64}

TEXT = {
    "perplexity": ("留出集困惑度（每字节）", "held-out perplexity (per byte)"),
    "kl": ("与 bf16 的 KL 散度（nats/字节，对数轴）", "KL divergence vs bf16 (nats/byte, log axis)"),
    "method": ("量化方法", "method"),
    "quality_title": ("实验自己训练的 {params}参数字节级模型：位数越少、缩放粒度越粗，损失越大",
                      "A {params}-parameter byte-level model trained by the lab: fewer bits, coarser scales, more loss"),
    # panel titles: what was timed on the first line, its shape (and the axis) on the second, so a title never
    # wraps inside a word
    "tokens": ("线性层，{n} 个 token", "linear layers, {n} {unit}"),
    "decode_shape": ("解码形状", "decode-shaped"),
    "prefill_shape": ("预填充形状", "prefill-shaped"),
    "log_axis": ("对数轴", "log axis"),
    "int8_ref": ("int8（torch 参考内核）", "int8 (torch ref. kernel)"),
    "time_ms": ("一次前向中全部线性层的时间（ms）", "all linear layers, one pass (ms)"),
    "bytes": ("权重字节（GB）", "weight bytes (GB)"),
    "measured": ("实测（中位数，误差线 p10–p90）", "measured (median, bars p10–p90)"),
    "calc": ("calc 预测", "calc prediction"),
    "skipped": ("未运行", "not run"),
    "dirty": ("运行时源码有未提交的修改", "run from a source tree with uncommitted changes"),
    "refreshed": ("calc 的预测于 {date} 按当时的 calc 重算", "calc's predictions recomputed {date} with calc as it then was"),
    "speed_title": ("{model} 结构的线性层，{layers} 层（随机权重）：存储的字节与时间",
                    "Linear layers of the {model} shape, {layers} {layer_word}, random weights: bytes stored and time"),
    "no_pred": ("CPU 运行：calc 只为 GPU 预测时间；灰色为未运行的格式",
                "CPU run: calc predicts times for GPUs only; grey marks formats that did not run"),
}


def t(key: str, lang: str, **kw) -> str:
    return TEXT[key][0 if lang == "zh" else 1].format(**kw)


# ---------------------------------------------------------------------------------------------------------
# Quantizers (pure functions; the tests check them against bounds derived by hand)


def _groups(w: torch.Tensor, granularity, group_size: int) -> torch.Tensor:
    """w [out, in] viewed as [out, n_groups, g]: one scale per group. "tensor" is one group holding everything,
    "channel" one group per output row (the whole input dimension), "group" / an int: g input columns."""
    out_f, in_f = w.shape
    if granularity == "tensor":
        return w.reshape(1, 1, out_f * in_f)
    if granularity == "channel":
        return w.reshape(out_f, 1, in_f)
    g = group_size if granularity == "group" else int(granularity)
    if in_f % g:
        raise ValueError(f"input dimension {in_f} is not a multiple of the group size {g}")
    return w.reshape(out_f, in_f // g, g)


def quantize_rtn(w: torch.Tensor, bits: int, granularity="channel", group_size: int = 128):
    """Symmetric round-to-nearest: scale = absmax / qmax per group, q = round(w / scale) in [-qmax-1, qmax].

    Returns (q as int8, scale [out or 1, n_groups, 1] in fp32). Every weight lies within absmax = qmax·scale,
    so nothing is clipped and |w - q·scale| <= scale / 2."""
    qmax = 2 ** (bits - 1) - 1
    wg = _groups(w.float(), granularity, group_size)
    scale = wg.abs().amax(dim=-1, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round(wg / scale), -qmax - 1, qmax).to(torch.int8)
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor, shape) -> torch.Tensor:
    return (q.float() * scale).reshape(shape)


def fake_quant_rtn(w: torch.Tensor, bits: int, granularity="channel", group_size: int = 128) -> torch.Tensor:
    q, scale = quantize_rtn(w, bits, granularity, group_size)
    return dequantize(q, scale, w.shape)


FP8_E4M3_MAX = 448.0  # largest finite float8_e4m3fn value


def fake_quant_fp8(w: torch.Tensor) -> torch.Tensor:
    """FP8 E4M3 with one per-tensor scale that maps the largest |w| to 448 (what per-tensor FP8 checkpoints do)."""
    scale = w.abs().max().float() / FP8_E4M3_MAX
    scale = scale if scale > 0 else torch.tensor(1.0)
    return (w.float() / scale).to(torch.float8_e4m3fn).float() * scale


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Unsigned 4-bit values [n, k] (0..15, k even) -> uint8 [n, k/2], the even column in the high nibble
    (the layout torch._convert_weight_to_int4pack takes on CUDA)."""
    if q.shape[-1] % 2:
        raise ValueError("the last dimension must be even to pack two 4-bit values per byte")
    q = q.to(torch.uint8)
    if int(q.max()) > 15:
        raise ValueError("values must be in 0..15")
    return (q[..., 0::2] << 4) | q[..., 1::2]


def unpack_int4(p: torch.Tensor) -> torch.Tensor:
    out = torch.empty(*p.shape[:-1], p.shape[-1] * 2, dtype=torch.uint8, device=p.device)
    out[..., 0::2] = p >> 4
    out[..., 1::2] = p & 0xF
    return out


def quantize_int4_asym(w: torch.Tensor, group_size: int):
    """tinygemm's INT4 layout (torch._weight_int4pack_mm): per group of `group_size` input columns a scale and a
    zero, w ≈ (q - 8)·scale + zero with q in 0..15. Returns q [n, k] uint8, scale, zero [n, k/g]."""
    n, k = w.shape
    wg = w.float().reshape(n, k // group_size, group_size)
    lo, hi = wg.amin(-1), wg.amax(-1)
    scale = ((hi - lo) / 15).clamp(min=1e-8)
    zero = lo + 8 * scale
    q = torch.clamp(torch.round((wg - lo[..., None]) / scale[..., None]), 0, 15).to(torch.uint8).reshape(n, k)
    return q, scale, zero


def gptq_quantize(w: torch.Tensor, hessian: torch.Tensor, bits: int, group_size: int, damp: float = 0.01,
                  block: int = 128) -> torch.Tensor:
    """GPTQ (Frantar et al., ICLR 2023) with symmetric per-group scales; returns the dequantized weight.

    Columns are quantized one at a time in input order; the error each rounding makes is spread over the columns
    not yet quantized, weighted by the inverse Hessian H = 2·XᵀX of the layer's calibration inputs X, so that the
    layer's output on those inputs changes as little as possible. A group's scale is set (RTN-style) from the
    already-updated weights when the loop reaches the group's first column."""
    w = w.float().clone()
    n, k = w.shape
    h = hessian.float().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h += damp * torch.mean(torch.diag(h)) * torch.eye(k)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    qmax = 2 ** (bits - 1) - 1
    out = torch.zeros_like(w)
    scale = None
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        w1 = w[:, i1:i2].clone()
        err = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        for j in range(i2 - i1):
            col = i1 + j
            if col % group_size == 0:
                grp = w[:, col:col + group_size].clone()
                grp[:, : i2 - col] = w1[:, j: j + min(group_size, i2 - col)]  # the updated values of this block
                scale = grp.abs().amax(dim=1) / qmax
                scale = torch.where(scale > 0, scale, torch.ones_like(scale))
            x = w1[:, j]
            qx = torch.clamp(torch.round(x / scale), -qmax - 1, qmax) * scale
            out[:, col] = qx
            e = (x - qx) / hinv1[j, j]
            w1[:, j:] -= e[:, None] * hinv1[j, j:][None, :]
            err[:, j] = e
        w[:, i2:] -= err @ hinv[i1:i2, i2:]
    return out


# ---------------------------------------------------------------------------------------------------------
# The small language model and its corpus


class Block(nn.Module):
    def __init__(self, d: int, heads: int, d_ff: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.RMSNorm(d), nn.RMSNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.gate, self.up = nn.Linear(d, d_ff, bias=False), nn.Linear(d, d_ff, bias=False)
        self.down = nn.Linear(d_ff, d, bias=False)

    def forward(self, x):
        b, s, d = x.shape
        h = self.norm1(x)
        q, k, v = (lin(h).view(b, s, self.heads, d // self.heads).transpose(1, 2) for lin in (self.q, self.k, self.v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, s, d)
        x = x + self.o(a)
        h = self.norm2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class TinyLM(nn.Module):
    """A byte-level decoder (vocabulary = the 256 byte values): learned positions, pre-norm blocks with
    multi-head attention and a SwiGLU MLP, untied output. The seven linear layers of each block are what gets
    quantized; embeddings, norms and the output layer stay in 16 bits (the policy of calc and most checkpoints)."""

    def __init__(self, d_model: int, n_layers: int, n_heads: int, d_ff: int, ctx: int):
        super().__init__()
        self.ctx = ctx
        self.embed = nn.Embedding(256, d_model)
        self.pos = nn.Embedding(ctx, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff) for _ in range(n_layers))
        self.norm = nn.RMSNorm(d_model)
        self.head = nn.Linear(d_model, 256, bias=False)

    def forward(self, ids):
        x = self.embed(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x))

    def quantizable(self):
        """(name, module) of every linear layer inside the blocks."""
        return [(n, m) for n, m in self.named_modules() if isinstance(m, nn.Linear) and n.startswith("blocks.")]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def read_corpus(files) -> tuple[bytes, list[dict]]:
    """Concatenate standard-library files (from this Python's stdlib folder); record each file's hash."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, record = [], []
    for name in files:
        data = (root / name).read_bytes()
        parts.append(data)
        record.append({"file": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return b"\n".join(parts), record


def windows(data: torch.Tensor, ctx: int, limit: int | None = None) -> torch.Tensor:
    """Non-overlapping windows of ctx + 1 bytes (input and next-byte target)."""
    n = (len(data) - 1) // ctx
    if limit:
        n = min(n, limit)
    return torch.stack([data[i * ctx: i * ctx + ctx + 1] for i in range(n)])


def train(cfg: dict, data: torch.Tensor, steps: int, batch: int, lr: float, seed: int, device) -> tuple[TinyLM, list]:
    torch.manual_seed(seed)
    model = TinyLM(**cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    gen = torch.Generator().manual_seed(seed)
    ctx, log = cfg["ctx"], []
    warm = max(1, steps // 20)
    for step in range(steps):
        for g in opt.param_groups:  # linear warm-up, cosine decay to 10 %
            g["lr"] = lr * min(1, (step + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        starts = torch.randint(0, len(data) - ctx - 1, (batch,), generator=gen)
        xy = torch.stack([data[s: s + ctx + 1] for s in starts]).to(device)
        loss = F.cross_entropy(model(xy[:, :-1]).flatten(0, 1), xy[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % max(1, steps // 20) == 0 or step == steps - 1:
            log.append([step, float(loss.detach())])
            print(f"  train step {step + 1}/{steps}: loss {float(loss.detach()):.3f} nats/byte", flush=True)
    return model.eval(), log


def trained_model(args, cfg: dict, train_data: torch.Tensor, corpus_record: list, device) -> tuple[TinyLM, dict]:
    """The cached model for these settings and this corpus, or a newly trained one (then cached)."""
    key = json.dumps({"cfg": cfg, "corpus": [r["sha256"] for r in corpus_record], "steps": args.train_steps,
                      "batch": args.train_batch, "lr": args.lr, "seed": args.seed}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = Path(args.cache_dir) / f"tinylm-{digest}.pt"
    info = {"cache_file": str(path.relative_to(common.REPO)) if path.is_relative_to(common.REPO) else str(path),
            "cache_key_sha256_16": digest}
    if path.is_file() and not args.retrain:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = TinyLM(**cfg)
        model.load_state_dict(saved["state_dict"])
        info.update(from_cache=True, train_log=saved["train_log"], train_s=saved["train_s"])
        return model.to(device).eval(), info
    t0 = time.perf_counter()
    model, log = train(cfg, train_data, args.train_steps, args.train_batch, args.lr, args.seed, device)
    train_s = time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "train_log": log,
                "train_s": train_s, "key": key}, path)
    info.update(from_cache=False, train_log=log, train_s=train_s)
    return model, info


@torch.no_grad()
def evaluate(model: TinyLM, held: torch.Tensor, ref_logprobs: torch.Tensor | None, batch: int = 16):
    """Perplexity per byte on the held-out windows, and the mean KL(reference ‖ model) of the next-byte
    distributions at every position (None without a reference). Returns (ppl, kl, logprobs)."""
    nll, n, kl_sum, outs = 0.0, 0, 0.0, []
    for i in range(0, len(held), batch):
        xy = held[i: i + batch].to(next(model.parameters()).device)
        logp = F.log_softmax(model(xy[:, :-1]).float(), dim=-1)
        nll += float(-logp.gather(-1, xy[:, 1:, None]).sum())
        n += xy[:, 1:].numel()
        if ref_logprobs is not None:
            ref = ref_logprobs[i: i + batch].to(logp.device)
            kl_sum += float((ref.exp() * (ref - logp)).sum())
        outs.append(logp.cpu())
    logprobs = torch.cat(outs)
    return math.exp(nll / n), (kl_sum / n if ref_logprobs is not None else None), logprobs


@torch.no_grad()
def calibration_hessians(model: TinyLM, block_index: int, calib: torch.Tensor) -> dict:
    """H = 2/N · Σ xxᵀ of every linear layer's input in one block, over the calibration windows."""
    blk = model.blocks[block_index]
    names = ("q", "k", "v", "o", "gate", "up", "down")
    hs = {n: None for n in names}
    count = {n: 0 for n in names}

    def hook(name):
        def fn(_mod, inputs, _out):
            x = inputs[0].reshape(-1, inputs[0].shape[-1]).float()
            hs[name] = x.T @ x if hs[name] is None else hs[name] + x.T @ x
            count[name] += x.shape[0]
        return fn

    handles = [getattr(blk, n).register_forward_hook(hook(n)) for n in names]
    try:
        for i in range(0, len(calib), 16):
            model(calib[i: i + 16, :-1].to(next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    return {n: 2 * hs[n].cpu() / count[n] for n in names}


@torch.no_grad()
def quantized_copy(model: TinyLM, method: tuple, group_size: int, calib: torch.Tensor | None) -> TinyLM:
    """A copy of the model whose block linears hold the dequantized weights of `method` (simulated quantization);
    everything else is rounded to bf16, as a bf16 deployment would hold it."""
    import copy

    name, kind, bits, granularity = method
    q = copy.deepcopy(model)
    for p in q.parameters():
        p.copy_(p.to(torch.bfloat16).float())
    if kind == "bf16":
        return q
    if kind == "gptq":  # block by block: each block is calibrated on the outputs of the already-quantized blocks
        for b, blk in enumerate(q.blocks):
            hessians = calibration_hessians(q, b, calib)
            for lin_name, h in hessians.items():
                lin = getattr(blk, lin_name)
                w = gptq_quantize(lin.weight.detach().cpu(), h, bits, group_size)
                lin.weight.copy_(w.to(torch.bfloat16).float().to(lin.weight.device))
        return q
    for _, lin in q.quantizable():
        w = lin.weight.detach().cpu()
        w = fake_quant_fp8(w) if kind == "fp8" else fake_quant_rtn(w, bits, granularity, group_size)
        lin.weight.copy_(w.to(lin.weight.device))
    return q


def measure_quality(model: TinyLM, held: torch.Tensor, calib: torch.Tensor, group_size: int, fp32_ppl: float,
                    methods) -> dict:
    out = {"fp32_perplexity": fp32_ppl, "methods": []}
    ref = None
    for method in methods:
        t0 = time.perf_counter()
        qm = quantized_copy(model, method, group_size, calib)
        ppl, kl, logp = evaluate(qm, held, ref)
        if method[0] == "bf16":
            ref, kl = logp, 0.0
        bits = method[2]
        # bits per weight stored: the values plus one fp16 scale per group/row/tensor of the quantized layers
        rows = sum(m.weight.shape[0] for _, m in qm.quantizable())
        total = sum(m.weight.numel() for _, m in qm.quantizable())
        scales = {"tensor": len(qm.quantizable()), "channel": rows,
                  "group": total // group_size}.get(method[3], 0)
        out["methods"].append({"method": method[0], "kind": method[1], "bits": bits,
                               "granularity": method[3] if method[3] != "group" else group_size,
                               "bits_per_weight": bits + 16 * scales / total,
                               "perplexity": ppl, "kl_vs_bf16": kl, "seconds": time.perf_counter() - t0})
        print(f"  {method[0]:<16} perplexity {ppl:.4f}  KL {kl:.2e}", flush=True)
    return out


def run_quality(args, device) -> dict:
    cfg = dict(MODEL_QUICK if args.quick else MODEL_FULL)
    train_text, train_record = read_corpus(QUICK_TRAIN_FILES if args.quick else TRAIN_FILES)
    held_text, held_record = read_corpus(QUICK_HELDOUT_FILES if args.quick else HELDOUT_FILES)
    train_data = torch.tensor(list(train_text), dtype=torch.long)
    held = windows(torch.tensor(list(held_text), dtype=torch.long), cfg["ctx"], args.heldout_windows)
    model, info = trained_model(args, cfg, train_data, train_record, device)
    gen = torch.Generator().manual_seed(args.seed + 1)
    starts = torch.randint(0, len(train_data) - cfg["ctx"] - 1, (args.calib_windows,), generator=gen)
    calib = torch.stack([train_data[s: s + cfg["ctx"] + 1] for s in starts])
    fp32_ppl, _, _ = evaluate(model, held, None)
    result = measure_quality(model, held, calib, args.group_size, fp32_ppl, QUALITY_METHODS)
    result.update(model_config=cfg, params=n_params(model),
                  quantized_params=sum(m.weight.numel() for _, m in model.quantizable()),
                  corpus={"python": sys.version.split()[0], "stdlib": "sysconfig.get_paths()['stdlib']",
                          "train": train_record, "heldout": held_record, "train_bytes": len(train_text),
                          "heldout_windows": len(held), "heldout_bytes_scored": int(held[:, 1:].numel())},
                  train={"steps": args.train_steps, "batch": args.train_batch, "lr": args.lr, "seed": args.seed,
                         **info},
                  calibration={"windows": args.calib_windows, "source": "random windows of the training text"},
                  group_size=args.group_size)
    return result


# ---------------------------------------------------------------------------------------------------------
# Speed: the weight matmuls of a real model shape in four formats


def linear_shapes(config: dict) -> list[tuple[str, int, int]]:
    """(name, out_features, in_features) of the seven linear layers of one Llama-style block."""
    h, heads = config["hidden_size"], config["num_attention_heads"]
    hd = config.get("head_dim") or h // heads
    kv, inter = config["num_key_value_heads"], config["intermediate_size"]
    return [("q", heads * hd, h), ("k", kv * hd, h), ("v", kv * hd, h), ("o", h, heads * hd),
            ("gate", inter, h), ("up", inter, h), ("down", h, inter)]


class Format:
    """One weight format for the speed part: prepare(w) -> stored tensors; mm(x, stored) -> x @ wᵀ (bf16)."""

    def __init__(self, name: str, device: torch.device, group_size: int):
        self.name, self.device, self.group_size = name, device, group_size
        self.cuda = device.type == "cuda"

    def prepare(self, w: torch.Tensor) -> dict:
        if self.name == "bf16":
            return {"w": w.to(torch.bfloat16)}
        if self.name == "int8":
            q, scale = quantize_rtn(w, 8, "channel")
            return {"q": q.reshape(w.shape).contiguous(), "scale": scale.reshape(-1).to(torch.bfloat16)}
        if self.name == "int4":
            q, scale, zero = quantize_int4_asym(w, self.group_size)
            sz = torch.stack([scale, zero], -1).transpose(0, 1).contiguous().to(torch.bfloat16)  # [k/g, n, 2]
            if self.cuda:
                packed = torch._convert_weight_to_int4pack(pack_int4(q).contiguous(), 8)
            else:
                packed = torch._convert_weight_to_int4pack_for_cpu(q.to(torch.int32).contiguous(), 1)
            return {"packed": packed, "scale_zero": sz}
        if self.name == "fp8":
            scale = (w.abs().max().float() / FP8_E4M3_MAX).reshape(1, 1)
            wq = (w.float() / scale).to(torch.float8_e4m3fn)
            return {"w_t": wq.t(), "scale": scale.to(torch.float32).reshape(())}  # column-major [k, n]
        raise ValueError(self.name)

    def prepare_input(self, x: torch.Tensor) -> dict:
        """The activation as the timed pass sees it. FP8: quantized with a static per-tensor scale, outside the
        timed pass, as an FP8 checkpoint with calibrated (static) activation scales allows and as engines do by
        fusing the quantization into the previous kernel; timing the handful of eager kernels of a dynamic scale
        per linear layer would measure launch overhead, not FP8 (see activation_quant_s for that cost)."""
        if self.name != "fp8":
            return {"x": x}
        xs = (x.abs().max().float() / FP8_E4M3_MAX).clamp(min=1e-12)
        return {"xq": (x.float() / xs).to(torch.float8_e4m3fn), "xs": xs}

    def mm_prepared(self, inp: dict, s: dict) -> torch.Tensor:
        if self.name == "fp8":
            return torch._scaled_mm(inp["xq"], s["w_t"], scale_a=inp["xs"], scale_b=s["scale"], out_dtype=torch.bfloat16)
        return self.mm(inp["x"], s)

    def mm(self, x: torch.Tensor, s: dict) -> torch.Tensor:
        if self.name == "bf16":
            return x @ s["w"].t()
        if self.name == "int8":
            return torch._weight_int8pack_mm(x, s["q"], s["scale"])
        if self.name == "int4":
            if self.cuda:
                return torch._weight_int4pack_mm(x, s["packed"], self.group_size, s["scale_zero"])
            return torch._weight_int4pack_mm_for_cpu(x, s["packed"], self.group_size, s["scale_zero"])
        if self.name == "fp8":  # dynamic per-tensor activation scale (the correctness check; not timed this way)
            return self.mm_prepared(self.prepare_input(x), s)
        raise ValueError(self.name)

    def reference(self, w: torch.Tensor, s: dict) -> torch.Tensor:
        """The weight this format really holds, dequantized, for the correctness check."""
        if self.name == "bf16":
            return s["w"].float()
        if self.name == "int8":
            return s["q"].float() * s["scale"].float()[:, None]
        if self.name == "int4":
            q, scale, zero = quantize_int4_asym(w, self.group_size)
            n, k = w.shape
            sz = s["scale_zero"].float()
            g = q.reshape(n, k // self.group_size, self.group_size).float()
            return ((g - 8) * sz[..., 0].t()[..., None] + sz[..., 1].t()[..., None]).reshape(n, k)
        return s["w_t"].t().float() * s["scale"]


def stored_bytes(s: dict) -> int:
    return sum(v.numel() * v.element_size() for v in s.values())


def check_format(fmt: Format, device) -> dict:
    """Run the format's kernel once on a small matrix and compare with x @ (its dequantized weight)ᵀ."""
    gen = torch.Generator(device="cpu").manual_seed(1)
    w = (torch.randn(256, 512, generator=gen) * 0.02).to(device)
    x = torch.randn(16, 512, generator=gen).to(device).to(torch.bfloat16)
    s = fmt.prepare(w)
    y = fmt.mm(x, s).float()
    xr = x.float()
    if fmt.name == "fp8":  # the reference sees the same FP8 activations
        xs = x.abs().max().float() / FP8_E4M3_MAX
        xr = (x.float() / xs).to(torch.float8_e4m3fn).float() * xs
    ref = xr @ fmt.reference(w, s).t()
    return {"rel_error": float((y - ref).norm() / ref.norm())}


def speed_availability(fmt_name: str, device, int8_reference: bool = False) -> str | None:
    """None when this torch and this device have the kernel; else the reason it is skipped."""
    need = {"int8": ["_weight_int8pack_mm"], "fp8": ["_scaled_mm"],
            "int4": ["_weight_int4pack_mm", "_convert_weight_to_int4pack"] if device.type == "cuda"
            else ["_weight_int4pack_mm_for_cpu", "_convert_weight_to_int4pack_for_cpu"]}.get(fmt_name, [])
    missing = [n for n in need if not hasattr(torch, n)]
    if missing:
        return f"torch {torch.__version__} has no torch.{', torch.'.join(missing)}"
    if fmt_name == "int8" and device.type == "cuda" and not int8_reference:
        return (f"skipped on CUDA: torch {torch.__version__} has no fast int8 weight-only CUDA kernel; its "
                "torch._weight_int8pack_mm is a reference kernel (int8mm.cu: one thread per output, fp32 CUDA-core "
                "loop, no tensor cores), and torch._int_mm (int8 tensor cores) is W8A8 and needs > 16 rows; "
                "--int8-reference times the reference kernel")
    if fmt_name == "fp8" and device.type == "cpu":
        return ("CPU: torch._scaled_mm has only a slow reference path here; "
                "FP8 is timed on GPUs with FP8 tensor cores")
    if fmt_name == "fp8" and device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 9):
        return f"{torch.cuda.get_device_name(device)} has no FP8 tensor cores (compute capability < 8.9)"
    return None


def predict_speed(bytes_stored: int, params: int, m: int, fmt_name: str, gpu_key: str | None) -> dict | None:
    """calc's roofline for this pass: max(weight bytes / effective bandwidth, FLOPs / effective peak of the
    format's compute dtype), with calc's default efficiencies (from the H100 reference measurements)."""
    if not gpu_key:
        return None
    from calc import perf, registry

    gpu = registry.get_gpu(gpu_key)
    bw = gpu.memory_bandwidth_bytes_per_s * perf.MEMORY_EFFICIENCY
    peak = gpu.peak_flops(COMPUTE_DTYPE[fmt_name]) or gpu.peak_flops("bf16")
    flops = 2 * m * params
    t_mem, t_compute = bytes_stored / bw, flops / (peak * perf.COMPUTE_EFFICIENCY)
    return {"seconds": max(t_mem, t_compute), "memory_s": t_mem, "compute_s": t_compute,
            "bound": "memory" if t_mem >= t_compute else "compute"}


def calc_weight_bytes(params: int, fmt_name: str) -> float:
    from calc import memory

    return params * memory.WEIGHT_FORMATS[CALC_FORMAT[fmt_name]].bits / 8


def refresh_prediction(point, prov) -> None:
    """--repredict: calc's side of a speed point (weight bytes, roofline per pass) from what the run stored, by the
    measuring run's rule: no prediction for the CUDA int8 reference kernel above one token, nor where calc does not
    know the GPU (predict_speed returns None)."""
    if point.get("kind") != "speed" or "params" not in point:
        return
    fmt_name = point["format"]
    point["calc_weight_bytes"] = calc_weight_bytes(point["params"], fmt_name)
    point["calc_bits_per_weight"] = calc_weight_bytes(1, fmt_name) * 8
    reference_kernel = fmt_name == "int8" and prov.get("device", {}).get("kind") == "cuda"
    for m, entry in point.get("by_tokens", {}).items():
        if "time_s" in entry:  # a timed pass (a skipped one has no prediction)
            entry["predicted"] = None if reference_kernel and int(m) > 1 else predict_speed(
                point["weight_bytes"], point["params"], int(m), fmt_name, prov.get("calc_gpu_key"))


def wait_for(device, event=None) -> None:
    """Wait for the GPU (or one event on it) by polling: the main thread stays in Python, so Ctrl-C (SIGINT) is
    handled at once. A blocking synchronize holds the thread in C until every queued kernel has run, and the
    lab's hard stop kills it (SIGKILL 10 s after Ctrl-C) before it can write its status and figures."""
    if device.type != "cuda":
        return
    if event is None:
        event = torch.cuda.Event()
        event.record()
    while not event.query():
        time.sleep(0.001)


def timed_passes(fn, device, warmup: int = 1, repeats: int = 5) -> list[float]:
    """common.time_it with every wait an interruptible poll (wait_for)."""
    return common.time_it(fn, device, warmup=warmup, repeats=repeats, wait=wait_for)


def measure_speed(fmt_name: str, config: dict, layers: int, tokens: list[int], args, device, gpu_key,
                  deadline: float | None = None) -> dict:
    """One format's speed point. `deadline` (time.monotonic()) is the lab's time budget: a token count whose
    estimated passes would end past it is recorded as skipped inside by_tokens."""
    fmt = Format(fmt_name, device, args.group_size)
    check = check_format(fmt, device)
    if not check["rel_error"] < 0.05:
        raise RuntimeError(f"{fmt_name} kernel disagrees with its dequantized weights (rel. error {check['rel_error']:.3g})")
    gen = torch.Generator(device=device).manual_seed(0)
    stored = []
    for _ in range(layers):
        for _, n_out, n_in in linear_shapes(config):
            w = torch.randn(n_out, n_in, device=device, generator=gen, dtype=torch.bfloat16) * 0.02
            stored.append((n_in, fmt.prepare(w)))
            del w
    common.free_memory(device)
    params = sum(n_out * n_in for _, n_out, n_in in linear_shapes(config)) * layers
    nbytes = sum(stored_bytes(s) for _, s in stored)
    by_tokens = {}
    first_layer = stored[: len(stored) // layers]
    reference_kernel = fmt.cuda and fmt_name == "int8"  # torch's CUDA int8 weight-only mm: a SIMT reference kernel
    for m in tokens:
        xs = {n_in: torch.randn(m, n_in, device=device, dtype=torch.bfloat16) for n_in, _ in stored}
        inputs = {n_in: fmt.prepare_input(x) for n_in, x in xs.items()}  # FP8: static scale, quantized here

        def one_pass(inputs=inputs):
            for n_in, s in stored:
                fmt.mm_prepared(inputs[n_in], s)

        # prefill-sized passes: fewer repeats (weight-only kernels written for small batches can take seconds here)
        warmup, repeats = (2, args.repeats) if m <= 64 else (1, max(3, args.repeats // 4))
        quant_repeats = max(3, args.repeats // 4)
        # one layer once, before committing to whole passes: a slow kernel is skipped, not left to eat the budget
        def one_layer(inputs=inputs):
            for n_in, s in first_layer:
                fmt.mm_prepared(inputs[n_in], s)

        layer_s = timed_passes(one_layer, device, warmup=0, repeats=1)[0]
        estimate = layer_s * layers * (warmup + repeats + (1 + quant_repeats if fmt_name == "fp8" else 0))
        left = deadline - time.monotonic() if deadline is not None else math.inf
        if estimate > left:
            by_tokens[str(m)] = {"skipped": f"time budget: one layer took {layer_s:.3g} s, so {warmup + repeats} passes "
                                            f"of {layers} layers would take about {estimate:.3g} s, {max(left, 0):.3g} s left",
                                 "layer_probe_s": layer_s}
            print(f" [{m} tokens: skipped, ~{estimate:.0f} s > {max(left, 0):.0f} s left]", end="", flush=True)
            del xs, inputs
            continue
        times = timed_passes(one_pass, device, warmup=warmup, repeats=repeats)
        entry = {"time_s": common.summarize(times), "layer_probe_s": layer_s,
                 # the reference kernel re-reads the weights for every row: calc's roofline fits its 1-token pass only
                 "predicted": None if reference_kernel and m > 1 else predict_speed(nbytes, params, m, fmt_name, gpu_key)}
        if fmt_name == "fp8" and deadline is not None and time.monotonic() > deadline:
            entry["activation_quant_skipped"] = "time budget"
        elif fmt_name == "fp8":  # what a dynamic per-tensor scale would add, done eagerly per linear layer

            def quant_pass(xs=xs):
                for n_in, _ in stored:
                    fmt.prepare_input(xs[n_in])

            entry["activation_quant_s"] = common.summarize(timed_passes(quant_pass, device, warmup=1,
                                                                        repeats=quant_repeats))
        by_tokens[str(m)] = entry
    return {"kernel": KERNEL_NOTE.get((fmt_name, fmt.cuda)), "timed_activation": (
                "fp8: static per-tensor scale, activations quantized before the timed pass" if fmt_name == "fp8"
                else "bf16 activations"),
            "check_rel_error": check["rel_error"], "params": params, "weight_bytes": nbytes,
            "calc_weight_bytes": calc_weight_bytes(params, fmt_name),
            "calc_bits_per_weight": calc_weight_bytes(1, fmt_name) * 8, "by_tokens": by_tokens}


# ---------------------------------------------------------------------------------------------------------
# Figures

COLORS = {"bf16": "#4C72B0", "fp8": "#8172B2", "int8": "#55A868", "int4": "#C44E52", "int3": "#DD8452"}


def _fmt_params(n: int, lang: str) -> str:
    return f"{n / 1e6:.1f}M" if lang == "en" else f"{n / 1e4:.0f} 万"


def plot(data, lang):
    import matplotlib.pyplot as plt

    prov, points = data["provenance"], data["points"]
    footer = common.describe_run(prov, lang)
    if (prov.get("git") or {}).get("dirty"):
        footer += "\n" + t("dirty", lang)
    figures = {}
    quality = next((p for p in points if p.get("kind") == "quality" and common.succeeded(p)), None)
    if quality:
        rows = quality["methods"]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.8))
        names = [r["method"] for r in rows]
        colors = [COLORS.get(r["method"].split("-")[0], "#777") for r in rows]
        y = range(len(rows))
        # points, not bars: the axis spans the values (formats differ by about 1 %), and a bar on an axis that does not
        # start at zero would draw that difference as a length
        ax1.scatter([r["perplexity"] for r in rows], list(y), color=colors, s=28, zorder=3)
        ax1.grid(axis="y", color="#ddd", lw=0.6)
        base = next(r["perplexity"] for r in rows if r["method"] == "bf16")
        ax1.axvline(base, color="#333", lw=0.8, ls="--")
        lo = min(r["perplexity"] for r in rows)
        hi = max(r["perplexity"] for r in rows)
        span = max(hi - lo, 0.005 * hi)
        ax1.set_xlim(lo - 0.6 * span, hi + 0.7 * span)
        for i, r in enumerate(rows):
            ax1.text(r["perplexity"], i, f"  {r['perplexity']:.3f}", va="center", fontsize=7)
        ax1.set_yticks(list(y), [f"{n} ({r['bits_per_weight']:.2f} b)" for n, r in zip(names, rows, strict=True)])
        ax1.invert_yaxis()
        ax1.set_xlabel(t("perplexity", lang))
        kl_rows = [(i, r) for i, r in enumerate(rows) if r["kl_vs_bf16"]]
        # points too: on a log axis a bar's length depends on where the axis starts, which the data do not set
        ax2.scatter([r["kl_vs_bf16"] for _, r in kl_rows], [i for i, _ in kl_rows],
                    color=[colors[i] for i, _ in kl_rows], s=28, zorder=3)
        ax2.grid(axis="y", color="#ddd", lw=0.6)
        ax2.set_xscale("log")
        if kl_rows:  # a factor of 2 either side, so the end points are not cut by the frame
            kls = [r["kl_vs_bf16"] for _, r in kl_rows]
            ax2.set_xlim(min(kls) / 2, max(kls) * 2)
        ax2.set_yticks(list(y), [""] * len(rows))
        ax2.set_ylim(ax1.get_ylim())
        ax2.set_xlabel(t("kl", lang))
        fig.suptitle(t("quality_title", lang, params=_fmt_params(quality["params"], lang)), fontsize=9)
        fig.tight_layout()
        figures["quality"] = (fig, footer)

    speed = [p for p in points if p.get("kind") == "speed"]
    if speed:
        tokens = prov["settings"]["speed_tokens"]
        panels = [(str(tokens[0]), t("decode_shape", lang)), (str(tokens[1]), t("decode_shape", lang)),
                  (str(tokens[2]), t("prefill_shape", lang))]
        fig, axes = plt.subplots(1, 4, figsize=(11, 3.4))
        names = [t("int8_ref", lang) if p["format"] == "int8" and "reference kernel" in (p.get("kernel") or "")
                 else p["format"] for p in speed]
        x = range(len(speed))
        for ax, (m, shape) in zip(axes[:3], panels, strict=True):
            times = [p["by_tokens"][m]["time_s"]["median"] for p in speed
                     if common.succeeded(p) and "time_s" in p["by_tokens"][m]]
            # a log axis when the formats differ by more than 10x, so the short bars stay readable
            log = bool(times) and max(times) > 10 * min(times)
            if log:
                ax.set_yscale("log")
            for i, p in enumerate(speed):
                bt = p["by_tokens"][m] if common.succeeded(p) else {}
                if "time_s" not in bt:  # the format, or this token count (time budget), was skipped
                    ax.text(i, 0.02, t("skipped", lang), rotation=90, ha="center", va="bottom", fontsize=7,
                            color="#777", transform=ax.get_xaxis_transform())
                    continue
                ax.bar(i, bt["time_s"]["median"] * 1e3, color=COLORS[p["format"]])
                ax.errorbar(i, bt["time_s"]["median"] * 1e3, yerr=[[(bt["time_s"]["median"] - bt["time_s"]["p10"]) * 1e3],
                            [(bt["time_s"]["p90"] - bt["time_s"]["median"]) * 1e3]], color="#333", capsize=2, lw=0.8)
                if bt.get("predicted"):
                    ax.plot(i, bt["predicted"]["seconds"] * 1e3, marker="_", ms=18, mew=2, color="#000")
                top = max(bt["time_s"]["p90"], (bt.get("predicted") or {}).get("seconds") or 0) * 1e3
                median_ms = bt["time_s"]["median"] * 1e3
                ax.annotate(f"{median_ms:,.0f}" if median_ms >= 1000 else f"{median_ms:.3g}", (i, top),
                            textcoords="offset points", xytext=(0, 3), ha="center", va="bottom",
                            fontsize=7)  # the median, in ms
            ax.margins(y=0.15)
            ax.set_xticks(list(x), names)
            ax.set_xlim(-0.6, len(speed) - 0.4)  # a format that did not run keeps its slot and its 'not run' mark
            inner = [shape] + ([t("log_axis", lang)] if log else [])
            second = f"（{'，'.join(inner)}）" if lang == "zh" else f"({', '.join(inner)})"
            ax.set_title(t("tokens", lang, n=f"{int(m):,}", unit="token" if m == "1" else "tokens") + "\n" + second,
                         fontsize=8.5)
            ax.set_ylabel(t("time_ms", lang) if m == panels[0][0] else "ms")  # every time panel names its unit
        ax = axes[3]
        for i, p in enumerate(speed):
            if common.succeeded(p):
                ax.bar(i, p["weight_bytes"] / 1e9, color=COLORS[p["format"]])
                ax.plot(i, p["calc_weight_bytes"] / 1e9, marker="_", ms=18, mew=2, color="#000")
        ax.set_xticks(list(x), names)
        ax.set_xlim(-0.6, len(speed) - 0.4)
        ax.set_title(t("bytes", lang), fontsize=9)
        s = prov["settings"]
        layers = s["speed_layers_run"]
        # the registry's name, as the provenance line under the figure gives it (llama-3.1-8b -> Llama-3.1-8B)
        from calc import registry  # noqa: PLC0415 (common puts the repository on sys.path)
        model = registry.model_entry(s["speed_preset"])["name"] if s["speed_preset"] in registry.list_models() \
            else s["speed_preset"]
        fig.suptitle(t("speed_title", lang, model=model, layers=layers,
                       layer_word="layer" if layers == 1 else "layers"), fontsize=9)
        # one legend for all four panels, under the title, where it covers no bar and no footer; the bars' colour is
        # the format (named under each bar), so the 'measured' swatch is neutral
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        handles = [Patch(color="#999", label=t("measured", lang)),
                   Line2D([], [], color="#000", marker="_", ms=12, mew=2, ls="none", label=t("calc", lang))]
        fig.tight_layout(rect=(0, 0, 1, 0.9))
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.935), ncol=2, fontsize=7,
                   frameon=False)
        note = footer
        if prov.get("calc_refreshed"):
            note += "\n" + t("refreshed", lang, date=prov["calc_refreshed"]["date"][:10])
        if not prov.get("calc_gpu_key"):
            note += "\n" + t("no_pred", lang)
        figures["speed"] = (fig, note)
    return figures


# ---------------------------------------------------------------------------------------------------------
# Main


def _with_wall(fn) -> dict:
    """fn's result with the wall time it took (wall_s), so a run's total time and the GPU budget can be checked."""
    t0 = time.perf_counter()
    result = fn()
    return {**result, "wall_s": round(time.perf_counter() - t0, 2)}


def parse_args(argv):
    ap = common.lab_parser(__doc__, DEFAULT_OUT, QUICK_OUT)
    ap.set_defaults(model_preset=None)
    ap.add_argument("--parts", type=lambda s: [p for p in s.split(",") if p], default=list(PARTS),
                    help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--speed-preset", default="llama-3.1-8b", help="model shape (calc registry) for the speed part")
    ap.add_argument("--speed-layers", type=int, help="layers of that shape to time (default: all on a GPU, 1 on a CPU)")
    ap.add_argument("--speed-tokens", type=common.int_list,
                    help="tokens per pass: decode batch 1, decode batch 16, prefill (default 1,16,2048; CPU 1,16,256)")
    ap.add_argument("--formats", type=lambda s: [p for p in s.split(",") if p], default=list(SPEED_FORMATS),
                    help=f"comma-separated subset of {','.join(SPEED_FORMATS)}")
    ap.add_argument("--repeats", type=int, default=20, help="timed passes per decode point (prefill: a quarter, >= 3)")
    ap.add_argument("--group-size", type=int, default=128, help="input columns sharing one INT4/INT3 scale")
    ap.add_argument("--train-steps", type=int, default=180, help="training steps of the small model")
    ap.add_argument("--train-batch", type=int, default=8, help="windows per training step")
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (AdamW, cosine)")
    ap.add_argument("--seed", type=int, default=0, help="seed of training, sampling and calibration")
    ap.add_argument("--heldout-windows", type=int, default=96, help="held-out windows scored (of ctx bytes each)")
    ap.add_argument("--calib-windows", type=int, default=64, help="calibration windows for GPTQ")
    ap.add_argument("--cache-dir", type=Path, default=CACHE, help="where trained models are cached")
    ap.add_argument("--retrain", action="store_true", help="train even if a cached model exists")
    ap.add_argument("--threads", type=int, help="torch threads on a CPU (default: torch's choice)")
    ap.add_argument("--int8-reference", action="store_true",
                    help="on CUDA, time INT8 weight-only with torch's reference kernel (slow; skipped by default)")
    args = ap.parse_args(argv)
    quick = {"train_steps": 30, "train_batch": 8, "heldout_windows": 8, "calib_windows": 8, "group_size": 32,
             "speed_preset": "llama-3.2-1b", "repeats": 3}
    args = common.finish_lab_args(ap, args, quick, DEFAULT_OUT, QUICK_OUT)
    bad = [p for p in args.parts if p not in PARTS] or None
    if bad:
        ap.error(f"--parts: unknown {bad}; choose from {','.join(PARTS)}")
    if [f for f in args.formats if f not in SPEED_FORMATS]:
        ap.error(f"--formats: choose from {','.join(SPEED_FORMATS)}")
    if args.speed_tokens is not None and len(args.speed_tokens) != 3:
        ap.error("--speed-tokens takes three numbers: decode batch 1, decode batch 16, prefill")
    if args.group_size < 2 or args.group_size % 2:
        ap.error("--group-size must be an even number >= 2")
    for name in ("train_steps", "train_batch", "heldout_windows", "calib_windows", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.speed_layers is not None and args.speed_layers < 1:
        ap.error("--speed-layers must be >= 1")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.plot_only:
        return common.plot_only(args.out, LAB, plot, refresh_prediction if args.repredict else None)
    device = common.pick_device(args.device)
    if args.threads and device.type == "cpu":
        torch.set_num_threads(args.threads)
    cpu = device.type == "cpu"
    speed_config = common.model_config(args.speed_preset, False)
    layers = args.speed_layers or (1 if cpu else speed_config["num_hidden_layers"])
    tokens = args.speed_tokens or ([1, 16, 8] if args.quick else [1, 16, 256] if cpu else [1, 16, 2048])
    if args.quick and args.speed_layers is None:
        speed_config = {**speed_config, "hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4,
                        "num_key_value_heads": 2, "head_dim": 64}
    prov = common.provenance(LAB, Path(__file__).name, argv, device, args.note)
    cfg = MODEL_QUICK if args.quick else MODEL_FULL
    prov["model"] = {"label": f"TinyLM d{cfg['d_model']}×{cfg['n_layers']}",
                     "weights": {"zh": "实验自己训练的模型及其量化副本", "en": "trained by the lab; quantized copies"},
                     "random_weights": False}
    prov["datasheet"] = common.gpu_datasheet(prov["calc_gpu_key"])
    prov["settings"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                        if k not in ("out", "plot_only", "repredict", "note", "cache_dir")}
    prov["settings"].update(speed_tokens=tokens, speed_layers_run=layers,
                            speed_preset="toy" if args.quick and args.speed_layers is None else args.speed_preset,
                            speed_shapes=linear_shapes(speed_config))
    data_path = args.out / "data" / f"{common.data_stem(prov)}.json"
    data = common.DataFile(data_path, prov, args.budget_s)
    print(f"data: {data_path}", flush=True)

    with data.running():
        if "quality" in args.parts:
            data.measure({"kind": "quality"}, lambda: _with_wall(lambda: run_quality(args, device)), device,
                         progress="[quality]")
        if "speed" in args.parts:
            for i, fmt_name in enumerate(args.formats):
                point = {"kind": "speed", "format": fmt_name}
                reason = speed_availability(fmt_name, device, args.int8_reference)
                if reason:
                    point["skipped"] = reason
                    if device.type == "cpu" and hasattr(torch, "_scaled_mm"):  # the code path still runs once
                        point["check_rel_error"] = check_format(Format(fmt_name, device, args.group_size), device)["rel_error"]
                    print(f"[speed {i + 1}/{len(args.formats)}] {fmt_name}: skipped ({reason})", flush=True)
                    data.doc["points"].append(point)
                    data.write()
                    continue
                data.measure(point, lambda f=fmt_name: _with_wall(lambda: measure_speed(
                                 f, speed_config, layers, tokens, args, device, prov["calc_gpu_key"],
                                 data.deadline)),
                             device, progress=f"[speed {i + 1}/{len(args.formats)}]")
                common.free_memory(device)
    common.plot_safely(plot, data_path, args.out / "figures")
    return 130 if data.doc["status"] == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
