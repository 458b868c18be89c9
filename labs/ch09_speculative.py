"""Lab for chapter 9: speculative decoding, implemented exactly and measured against its theory.

Measures, on one GPU (or a CPU, labelled as such):
  - exact: speculative sampling (Leviathan et al., ICML 2023; Chen et al., 2023) with a tiny target and a tiny,
    unrelated draft on a 4-token vocabulary. Over many seeds (seed i for sample i, so the result is the same on
    every run) the three tokens it generates are compared with the target's exact joint distribution by a
    chi-square test at significance 0.001 (the exact models' logits are mild, so every one of the 64 cells
    expects at least 5 samples and nothing is pooled). Two controls go through the same test and must fail:
    sampling from the draft alone, and the classic bug of resampling from p instead of max(0, p - q) after a
    rejection. Greedy (temperature 0) speculative output is compared token for token with plain greedy decoding;
  - accept: drafts whose agreement with the target is controlled: the target's own first k layers with its
    final norm and LM head (early exit, weights shared), and copies of the target with Gaussian noise of
    sigma x (each matrix's std) added to every weight. For each draft and draft length gamma: the acceptance
    rate alpha (the mean of sum_x min(p, q) over drafted positions), tokens per target call and wall-clock
    speedup over plain decoding, against (1 - alpha^(gamma+1)) / (1 - alpha) and that divided by
    (gamma c + v), c = draft step / target step, v = verification / target step (all measured; the figure
    also draws v = 1). Timings are interleaved: plain, speculative, plain, ... (--repeats of each), so a
    machine whose speed drifts affects both alike; the speedup is the median of the paired ratios, with the
    10th-90th percentile range kept;
  - lookup: prompt-lookup (n-gram) drafting on a prompt the model copies (greedy: its own text, started on a loop
    of its bigram map no longer than half the prompt),
    on ordinary text it samples at temperature 1 (drafts accepted only when the text happens to repeat), and
    on random tokens;
  - batch: target step time for gamma+1 tokens per sequence vs 1, over the batch size, and the speedup the
    formula gives with those measured times and the early-exit draft's alpha: where speculation stops paying.
Data goes to <out>/data/ch09-<device>.json (with provenance), figures to <out>/figures/ch09-<device>-<name>_{zh,en}.svg.
The weights are random (std chosen so the next-token distributions are neither flat nor one-hot); a random
model has nothing to say, so alpha here is set by construction, not by language. On a CPU the step times are
dominated by Python and small kernels: a CPU run shows the mechanism, not GPU speeds.

    python labs/ch09_speculative.py                 # Llama-3.1-8B shape, random weights, bf16, on the GPU
                                                    # (parts batch,accept,lookup: exact is device-independent)
    python labs/ch09_speculative.py --quick         # tiny models on the CPU, seconds (the test suite runs this)
    python labs/ch09_speculative.py --plot-only     # re-render figures from the data files in <out>/data/
"""

from __future__ import annotations

import copy
import math
import sys
import time
from pathlib import Path

import common
import torch
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache

# (9-1) and (9-2), the predictions this lab checks (common has put the repository, and so calc/, on sys.path)
from calc.perf import speculative_speedup as expected_speedup
from calc.perf import speculative_tokens_per_call as expected_tokens

LAB = "ch09-speculative"
DEFAULT_OUT = common.REPO / "docs" / "assets" / "labs" / LAB
QUICK_OUT = common.REPO / "labs" / ".quick-out" / LAB
PARTS = ("exact", "accept", "lookup", "batch")  # they run in the order: batch, accept, lookup, noisy drafts, exact
SIGNIFICANCE = 0.001  # the exactness test rejects "same distribution" below this p-value
LOGIT_STD = 1.6  # initializer_range = LOGIT_STD / sqrt(hidden): logits of std ~1.6 whatever the width
EXACT_LOGIT_STD = 0.4  # the exactness test's target: mild logits, so every 3-token cell expects >= 5 samples
# The models of the exactness test: tiny, a vocabulary of 4 so the joint of 3 tokens has 64 cells.
EXACT_CONFIG = dict(common.QUICK_CONFIG, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                    num_key_value_heads=1, head_dim=16, vocab_size=4, tie_word_embeddings=False)
# A GPU run's defaults (for each option left at its default), sized for labs/run_gpu.sh's 150 s budget: the first
# H200 run (8B shape) spent 36-39 s on each early-exit point with gammas 1,2,4,6 and 3 repeats, and its hard stop
# cut the noisy drafts. Gammas 1,2,4 and 2 repeats halve that; the accept part's statistics pool every timed call
# (3 x 32 tokens per gamma), three times the first run's sample. One noisy draft, sigma 0.01: on 32 layers the
# noise compounds over depth (a CPU check of a narrow 32-layer model with this lab's initialization: alpha 0.36 for
# a 4-layer early exit, 0.33 for sigma 0.1, 0.60 for 0.02, 0.77 for 0.01), and the formula is tested hardest at
# high alpha.
GPU_VALUES = dict(gammas=[1, 2, 4], repeats=2, batch_repeats=3, sigmas=[0.01])
# --model-preset cpu-small: a shape a CPU runs in minutes (8 layers, so early exit has room), for CPU data.
CPU_SMALL_CONFIG = dict(common.QUICK_CONFIG, hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
                        num_attention_heads=8, num_key_value_heads=4, head_dim=64, vocab_size=2048)


# ---------------------------------------------------------------------------------------------------------
# Models: a target, and drafts built from it


def random_model(config: dict, device, dtype, seed: int, logit_std: float = LOGIT_STD):
    """A Llama-shaped causal LM with random weights of std logit_std / sqrt(hidden)."""
    cfg = dict(config, initializer_range=logit_std / math.sqrt(config["hidden_size"]))
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg), dtype=dtype, attn_implementation="sdpa")
    return model.eval()


def early_exit_draft(target, k: int):
    """The target's first k layers, then its final norm and LM head. The modules are the target's own (no
    copy, no extra weight memory); only the KV cache of k layers is extra."""
    config = copy.deepcopy(target.config)
    config.num_hidden_layers = k
    with torch.device("meta"):  # an empty shell; every module is then replaced by the target's own
        draft = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    draft.model.embed_tokens, draft.model.norm = target.model.embed_tokens, target.model.norm
    draft.model.rotary_emb, draft.lm_head = target.model.rotary_emb, target.lm_head
    draft.model.layers = torch.nn.ModuleList(list(target.model.layers[:k]))
    assert not any(p.is_meta for p in draft.parameters())
    return draft.eval()


def bigram_target(target):
    """A copy of the target with every attention output projection zeroed: each position then sees only its own
    token, so the next token is a function of the current one (a bigram model), and its text repeats as soon
    as a token does. The lab's stand-in for text that copies its context (code edits, quoting a document)."""
    model = copy.deepcopy(target)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
    return model


def noisy_draft(target, sigma: float, seed: int):
    """A full copy of the target with N(0, (sigma * std(W))^2) added to every weight matrix: as expensive as the
    target, agreeing less as sigma grows. The noise is drawn on the model's device (on a GPU, seconds for 8B
    weights; on the host CPU it would take minutes)."""
    draft = copy.deepcopy(target)
    device = next(draft.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for p in draft.parameters():
            if p.dim() >= 2:
                noise = torch.randn(p.shape, generator=gen, dtype=torch.float32, device=device)
                p.add_((noise * (sigma * p.float().std())).to(p.dtype))
                del noise
    return draft


class Runner:
    """A model with its KV cache. `logits(seq)` feeds the tokens of `seq` the cache has not seen and returns
    their logits; `rollback(n)` forgets everything after the first n tokens (rejected draft tokens)."""

    def __init__(self, model):
        self.model, self.cache, self.n = model, DynamicCache(), 0

    def logits(self, seq, keep: int = 1):
        """Logits of the last `keep` positions only (a prefill of many tokens needs one row, not all)."""
        out = self.model(input_ids=seq[:, self.n:], cache=self.cache, use_cache=True, logits_to_keep=keep)
        self.n = seq.shape[1]
        return out.logits.float()

    def rollback(self, n: int):
        if n < self.n:
            self.cache.crop(n - self.n)  # transformers 5: a negative count of tokens to drop
            self.n = n


# ---------------------------------------------------------------------------------------------------------
# Speculative sampling


def probs(logits, temperature: float):
    """Next-token distribution; temperature 0 is greedy, written as a one-hot distribution so that the same
    accept/reject rule gives exactly greedy decoding."""
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    return torch.softmax(logits / temperature, dim=-1)


def sample(p, gen):
    """One token per row of p [B, V], drawn with `gen` (on the CPU, so a seed gives the same tokens anywhere)."""
    return torch.multinomial(p.cpu(), 1, generator=gen).to(p.device)


class ModelDrafter:
    """Proposes gamma tokens by sampling the draft model autoregressively; returns them with their q's."""

    def __init__(self, model):
        self.runner = Runner(model)

    def propose(self, seq, gamma, temperature, gen):
        tokens, qs, cur = [], [], seq
        for _ in range(gamma):
            q = probs(self.runner.logits(cur)[:, -1], temperature)
            x = sample(q, gen)
            tokens.append(x)
            qs.append(q)
            cur = torch.cat([cur, x], dim=1)
        return torch.cat(tokens, dim=1), torch.stack(qs, dim=1)

    def rollback(self, n):
        self.runner.rollback(n)


class LookupDrafter:
    """Prompt lookup (n-gram) drafting: find the last `n` tokens earlier in the sequence (n = max_n down to 1,
    the latest match) and propose the tokens that followed. No model; q is one-hot on the proposed token."""

    def __init__(self, vocab: int, max_n: int = 3):
        self.vocab, self.max_n = vocab, max_n

    def propose(self, seq, gamma, temperature, gen):
        s = seq[0].tolist()
        for n in range(min(self.max_n, len(s) - 1), 0, -1):
            tail = s[-n:]
            for start in range(len(s) - n - 1, -1, -1):
                if s[start:start + n] == tail:
                    follow = s[start + n:start + n + gamma]
                    x = torch.tensor([follow], device=seq.device)
                    return x, torch.nn.functional.one_hot(x, self.vocab).float()
        return seq[:, :0], torch.zeros(1, 0, self.vocab, device=seq.device)

    def rollback(self, n):
        pass


def speculative_step(target: Runner, drafter, seq, gamma, temperature, gen, bug: str | None = None):
    """One draft-then-verify round for one sequence (batch 1). Returns the longer sequence and statistics.

    The draft proposes x_1..x_k (k <= gamma) with distributions q_i; one target call on [.., x_1..x_k] gives
    p_1..p_{k+1}. x_i is accepted with probability min(1, p_i(x_i) / q_i(x_i)); at the first rejection a token
    is drawn from max(0, p_i - q_i) (normalized) and the round ends; if all k are accepted, one more token is
    drawn from p_{k+1}. Each emitted token is then distributed exactly as the target's (Leviathan et al. 2023;
    Chen et al. 2023). bug="resample-p": the classic mistake of drawing the replacement from p itself (a control
    the exactness test must reject).
    """
    L = seq.shape[1]
    drafted, q = drafter.propose(seq, gamma, temperature, gen)
    k = drafted.shape[1]
    p = probs(target.logits(torch.cat([seq, drafted], dim=1), keep=k + 1), temperature)  # [1, k+1, V]
    accepted, emitted = 0, None
    alpha_sum = 0.0  # over the positions checked: sum_x min(p, q), the probability that the position accepts
    for i in range(k):
        x = drafted[0, i]
        alpha_sum += torch.minimum(p[0, i], q[0, i]).sum().item()
        r = torch.rand(1, generator=gen).item()
        if r < min(1.0, (p[0, i, x] / q[0, i, x]).item()):
            accepted += 1
            continue
        residual = p[0, i] if bug == "resample-p" else (p[0, i] - q[0, i]).clamp_min(0)
        emitted = sample(residual[None] / residual.sum(), gen)
        break
    if emitted is None:
        emitted = sample(p[:, k], gen)
    seq = torch.cat([seq, drafted[:, :accepted], emitted], dim=1)
    target.rollback(L + accepted)  # the cache keeps every token but the newest, which the next call feeds
    drafter.rollback(L + accepted)
    return seq, {"drafted": k, "accepted": accepted, "alpha_sum": alpha_sum, "checked": min(k, accepted + 1),
                 "emitted": accepted + 1}


def speculative_generate(target_model, drafter, prompt, n_new, gamma, temperature, gen, bug=None):
    """Generate n_new tokens after prompt [1, P]; returns (tokens, stats summed over rounds). "emitted" counts
    every token the rounds produced, including the last round's overshoot past n_new (tokens per call = emitted /
    target_calls, as the formula counts them)."""
    target = Runner(target_model)
    seq = prompt
    stats = {"target_calls": 0, "drafted": 0, "accepted": 0, "alpha_sum": 0.0, "checked": 0, "emitted": 0}
    while seq.shape[1] < prompt.shape[1] + n_new:
        seq, s = speculative_step(target, drafter, seq, gamma, temperature, gen, bug)
        stats["target_calls"] += 1
        for key in ("drafted", "accepted", "alpha_sum", "checked", "emitted"):
            stats[key] += s[key]
    return seq[:, prompt.shape[1]:prompt.shape[1] + n_new], stats


def plain_generate(model, prompt, n_new, temperature, gen):
    """Autoregressive decoding with the same runner: the baseline."""
    runner, seq = Runner(model), prompt
    for _ in range(n_new):
        seq = torch.cat([seq, sample(probs(runner.logits(seq)[:, -1], temperature), gen)], dim=1)
    return seq[:, prompt.shape[1]:]


# ---------------------------------------------------------------------------------------------------------
# The parts


def chi_square_p(observed: list[int], expected_p: list[float], n: int) -> dict:
    """Pearson's chi-square goodness of fit; cells with an expected count under 5 (none in the lab's design) are
    pooled into one."""
    big = [(o, e * n) for o, e in zip(observed, expected_p, strict=True) if e * n >= 5]
    small = [(o, e * n) for o, e in zip(observed, expected_p, strict=True) if e * n < 5]
    if small:
        big.append((sum(o for o, _ in small), sum(e for _, e in small)))
    stat = sum((o - e) ** 2 / e for o, e in big)
    dof = len(big) - 1
    p_value = torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64),
                                      torch.tensor(stat / 2, dtype=torch.float64)).item()
    return {"chi2": stat, "dof": dof, "p_value": p_value, "cells": len(big), "pooled_cells": len(small),
            "min_expected": min(e for _, e in big)}


@torch.inference_mode()
def exact_joint(model, prompt, n_new, temperature) -> list[float]:
    """The target's exact probability of every continuation of n_new tokens (vocab^n_new of them)."""
    vocab = model.config.vocab_size
    joint = torch.ones(1, device=prompt.device)
    seqs = prompt
    for _ in range(n_new):
        p = probs(model(input_ids=seqs).logits[:, -1].float(), temperature)  # [S, V]
        joint = (joint[:, None] * p).reshape(-1)
        seqs = torch.cat([seqs.repeat_interleave(vocab, 0), torch.arange(vocab, device=seqs.device).repeat(
            seqs.shape[0])[:, None]], dim=1)
    return joint.cpu().tolist()


@torch.inference_mode()
def measure_exact(samples, gamma, n_new, device, dtype):
    """Speculative sampling at temperature 1 against the target's exact distribution; greedy against greedy."""
    target = random_model(EXACT_CONFIG, device, dtype, seed=1, logit_std=EXACT_LOGIT_STD)
    # unrelated: many rejections, so the residual rule matters
    # (sharp where the target is mild), so the residual rule is exercised and a bug in it shows
    draft = random_model(dict(EXACT_CONFIG, num_hidden_layers=1), device, dtype, seed=2)
    vocab = EXACT_CONFIG["vocab_size"]
    prompt = torch.tensor([[0, 1, 2, 3]], device=device)
    exact = exact_joint(target, prompt, n_new, 1.0)

    def index(tokens):
        return sum(int(t) * vocab ** (n_new - 1 - j) for j, t in enumerate(tokens[0].tolist()))

    counts, buggy, naive = [0] * len(exact), [0] * len(exact), [0] * len(exact)
    stats = {"target_calls": 0, "accepted": 0, "drafted": 0}
    t0 = time.perf_counter()
    for seed in range(samples):
        tokens, s = speculative_generate(target, ModelDrafter(draft), prompt, n_new, gamma, 1.0,
                                         torch.Generator().manual_seed(seed))
        counts[index(tokens)] += 1
        for key in stats:
            stats[key] += s[key]
        # the realistic-bug control, on the same seeds
        tokens, _ = speculative_generate(target, ModelDrafter(draft), prompt, n_new, gamma, 1.0,
                                         torch.Generator().manual_seed(seed), bug="resample-p")
        buggy[index(tokens)] += 1
    # the gross control: sample from the draft alone (its exact 3-token joint)
    draws = torch.multinomial(torch.tensor(exact_joint(draft, prompt, n_new, 1.0)), samples, replacement=True,
                              generator=torch.Generator().manual_seed(0))
    for j in draws.tolist():
        naive[j] += 1
    greedy_same = []
    for seed in range(8):
        p = torch.randint(0, vocab, (1, 6), generator=torch.Generator().manual_seed(seed)).to(device)
        spec, _ = speculative_generate(target, ModelDrafter(draft), p, 12, gamma, 0.0, torch.Generator())
        greedy_same.append(torch.equal(spec, plain_generate(target, p, 12, 0.0, torch.Generator())))
    return {"vocab": vocab, "n_new": n_new, "samples": samples, "significance": SIGNIFICANCE,
            "speculative": chi_square_p(counts, exact, samples), "naive_draft": chi_square_p(naive, exact, samples),
            "resample_p_bug": chi_square_p(buggy, exact, samples),
            "counts": counts, "naive_counts": naive, "bug_counts": buggy, "exact_p": exact, "stats": stats,
            "greedy_identical": sum(greedy_same), "greedy_prompts": len(greedy_same),
            "seconds": time.perf_counter() - t0}


def interleaved(fns, device, repeats, warmup=1) -> list[list[float]]:
    """Seconds per call of each fn, timed in turn (A, B, C, A, B, C, ...) `repeats` times after `warmup` calls
    each: on a machine whose speed drifts, every fn sees the same drift, so ratios of paired times are fair."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for j, fn in enumerate(fns):
            times[j].append(common.time_it(fn, device, warmup=0, repeats=1)[0])
    return times


def median(xs):
    return common.summarize(xs)["median"]


def ratio_summary(num, den) -> dict:
    """Median and 10th/90th percentiles of the paired ratios num[i] / den[i]."""
    r = common.summarize([a / b for a, b in zip(num, den, strict=True)])
    return {"median": r["median"], "p10": r["p10"], "p90": r["p90"], "n": r["n"]}


def step_fn(model, batch, context, new_tokens, device):
    """A function that runs one call feeding `new_tokens` per sequence on a cache of `context` tokens."""
    vocab = model.config.vocab_size
    prompt = torch.randint(0, vocab, (batch, context), device=device)
    runner = Runner(model)
    runner.logits(prompt)
    feed = torch.cat([prompt, torch.randint(0, vocab, (batch, new_tokens), device=device)], dim=1)

    def step():
        runner.logits(feed, keep=new_tokens)
        runner.rollback(context)

    return step


@torch.inference_mode()
def measure_accept(target, draft, gammas, prompts, n_new, temperature, device, repeats, context):
    """One draft at each gamma: alpha, tokens per target call, measured and predicted speedup.

    Step times (target, draft, target verifying gamma+1 tokens) are timed interleaved, 4 x repeats each;
    c = draft / target step, v = verification / target step (medians). Each gamma's generations are timed
    plain, speculative, plain, ... `repeats` times; the speedup is the median of the paired ratios. Each
    speculative call (the warm-up one included) draws with its own seed, and alpha and tokens per call pool every
    call: (repeats + 1) x prompts x n_new tokens per gamma at no extra time. The paired ratios then spread with the
    acceptance of each sample as well as with the machine's noise."""
    steps = [step_fn(target, 1, context, 1, device), step_fn(draft, 1, context, 1, device)]
    steps += [step_fn(target, 1, context, g + 1, device) for g in gammas]
    st = interleaved(steps, device, repeats * 4, warmup=2)
    t_target, t_draft = median(st[0]), median(st[1])
    c = t_draft / t_target
    by_gamma = []
    for gi, gamma in enumerate(gammas):
        v = median(st[2 + gi]) / t_target
        stats = {"target_calls": 0, "accepted": 0, "checked": 0, "drafted": 0, "emitted": 0, "alpha_sum": 0.0}
        plain_tot, spec_tot, generations = [0.0] * repeats, [0.0] * repeats, 0
        for i, prompt in enumerate(prompts):
            runs = []  # the statistics of every call; call j of prompt i draws with seed 1000 i + j

            def run(p=prompt, i=i, runs=runs, gamma=gamma):
                runs.append(speculative_generate(target, ModelDrafter(draft), p, n_new, gamma, temperature,
                                                 torch.Generator().manual_seed(1000 * i + len(runs)))[1])

            def base(p=prompt):
                plain_generate(target, p, n_new, temperature, torch.Generator().manual_seed(0))

            plain_t, spec_t = interleaved([base, run], device, repeats)
            plain_tot = [a + b for a, b in zip(plain_tot, plain_t, strict=True)]
            spec_tot = [a + b for a, b in zip(spec_tot, spec_t, strict=True)]
            for r in runs:
                for key in stats:
                    stats[key] += r[key]
            generations += len(runs)
        alpha = stats["alpha_sum"] / stats["checked"]  # kept as measured
        a = min(alpha, 1.0)  # a float sum of probabilities can pass 1 by rounding; calc's formulas refuse α above 1
        speed = ratio_summary(plain_tot, spec_tot)
        by_gamma.append({"gamma": gamma, "alpha": alpha, "accepted_per_drafted": stats["accepted"] / stats["drafted"],
                         "tokens_per_call": stats["emitted"] / stats["target_calls"],
                         "target_calls": stats["target_calls"], "generations": generations, "v": v,
                         "plain_s": median(plain_tot), "speculative_s": median(spec_tot),
                         "plain_s_samples": plain_tot, "speculative_s_samples": spec_tot,
                         "speedup": speed["median"], "speedup_p10": speed["p10"], "speedup_p90": speed["p90"],
                         "predicted_tokens_per_call": expected_tokens(a, gamma),
                         "predicted_speedup": expected_speedup(a, gamma, c),
                         "predicted_speedup_measured_v": expected_speedup(a, gamma, c, v)})
    return {"t_target_step_s": t_target, "t_draft_step_s": t_draft, "c": c, "repeats": repeats,
            "step_samples": {"target": st[0], "draft": st[1]}, "by_gamma": by_gamma}


@torch.inference_mode()
def bigram_cycle_start(model, prompt_len: int, chunk: int = 4096) -> tuple[int, int | None]:
    """A start token whose greedy text under the bigram model loops with a period of at most prompt_len // 2, so
    the prompt holds the loop at least twice, and that period (None if the map has no such cycle: then the start
    is token 0 of the shortest cycle). Greedy text loops only once a token repeats; from a random start on a
    vocabulary of 128,256 that takes hundreds of tokens (the first H200 run's 160-token copy text never repeated),
    so the start is picked on a cycle. The map token -> greedy next token is computed for the whole vocabulary in
    batches of one-token sequences (no context matters: attention is zeroed); the prompt itself is then generated
    by plain greedy decoding, as the timed runs decode."""
    vocab = model.config.vocab_size
    device = next(model.parameters()).device
    nxt = []
    for s in range(0, vocab, chunk):
        ids = torch.arange(s, min(s + chunk, vocab), device=device)[:, None]
        nxt += model(input_ids=ids, use_cache=False).logits[:, -1].argmax(-1).tolist()
    state = [0] * vocab  # 0 unseen, 1 on the current walk, 2 done
    cycles = []
    for s in range(vocab):
        walk, x = [], s
        while state[x] == 0:
            state[x] = 1
            walk.append(x)
            x = nxt[x]
        if state[x] == 1:  # the walk closed a new cycle at x
            cycles.append(walk[walk.index(x):])
        for y in walk:
            state[y] = 2
    fits = [c for c in cycles if len(c) <= prompt_len // 2]
    if fits:
        best = max(fits, key=len)
        return best[0], len(best)
    return min(cycles, key=len)[0], None


LOOKUP_KINDS = {  # prompt, decoding temperature
    "copy": "the model's own greedy text, started on a loop (greedy decoding: it continues the same loop)",
    "sampled": "ordinary text the model samples at temperature 1 (decoding at temperature 1 too)",
    "random": "random tokens (greedy decoding)",
}


@torch.inference_mode()
def measure_lookup(target, kind, gamma, prompt_len, n_new, n_prompts, device, repeats, max_n=3):
    """Prompt-lookup speculation on one kind of prompt (LOOKUP_KINDS): tokens per target call and speedup.
    Greedy runs are compared token for token with plain greedy decoding (first divergence recorded)."""
    vocab = target.config.vocab_size
    temperature = 1.0 if kind == "sampled" else 0.0
    prompts, period = [], None
    if kind == "copy":
        cycle_start, period = bigram_cycle_start(target, prompt_len)
    for i in range(n_prompts):
        gen = torch.Generator().manual_seed(100 + i)
        start = torch.randint(0, vocab, (1, 1), generator=gen).to(device)
        if kind == "copy":  # on the loop, i steps in (each prompt enters it at another token)
            start = torch.tensor([[cycle_start]], device=device)
            for _ in range(i):
                start = torch.cat([start, plain_generate(target, start, 1, 0.0, gen)], dim=1)[:, -1:]
        if kind == "random":
            p = torch.randint(0, vocab, (1, prompt_len), generator=gen).to(device)
        else:
            p = torch.cat([start, plain_generate(target, start, prompt_len - 1, temperature, gen)], dim=1)
        prompts.append(p)
    # the copy prompt is meant to hold its greedy loop; the cycle map came from batched passes, where a near-tie
    # in bf16 could send greedy decoding elsewhere, so record whether each prompt actually repeats a token
    repeats_token = [len(set(p[0].tolist())) < p.shape[1] for p in prompts]
    stats = {"target_calls": 0, "drafted": 0, "accepted": 0, "emitted": 0}
    same, first_diff = True, None
    plain_tot, spec_tot = [0.0] * repeats, [0.0] * repeats
    for i, p in enumerate(prompts):
        tokens, s = speculative_generate(target, LookupDrafter(vocab, max_n), p, n_new, gamma, temperature,
                                         torch.Generator().manual_seed(i))
        for key in stats:
            stats[key] += s[key]
        if temperature == 0:
            ref = plain_generate(target, p, n_new, 0.0, torch.Generator())
            diff = (tokens != ref).nonzero()
            if len(diff):
                same, first_diff = False, first_diff if first_diff is not None else int(diff[0, 1])

        def base(p=p, i=i):
            plain_generate(target, p, n_new, temperature, torch.Generator().manual_seed(i))

        def spec(p=p, i=i):
            speculative_generate(target, LookupDrafter(vocab, max_n), p, n_new, gamma, temperature,
                                 torch.Generator().manual_seed(i))

        plain_t, spec_t = interleaved([base, spec], device, repeats)
        plain_tot = [a + b for a, b in zip(plain_tot, plain_t, strict=True)]
        spec_tot = [a + b for a, b in zip(spec_tot, spec_t, strict=True)]
    speed = ratio_summary(plain_tot, spec_tot)
    return {"temperature": temperature, "loop_period": period, "prompt_repeats_token": repeats_token,
            "tokens_per_call": stats["emitted"] / stats["target_calls"],
            "drafted": stats["drafted"], "accepted": stats["accepted"], "target_calls": stats["target_calls"],
            "accepted_per_drafted": stats["accepted"] / stats["drafted"] if stats["drafted"] else None,
            "greedy_identical": bool(same) if temperature == 0 else None, "first_divergence": first_diff,
            "plain_s": median(plain_tot), "speculative_s": median(spec_tot),
            "speedup": speed["median"], "speedup_p10": speed["p10"], "speedup_p90": speed["p90"]}


@torch.inference_mode()
def measure_batch(target, draft, batch, gamma, context, alpha, device, repeats):
    """Step times at one batch size, interleaved: a plain step, the verification call (gamma+1 tokens each),
    a draft step; medians of `repeats` each."""
    one_t, verify_t, draft_t = interleaved([step_fn(target, batch, context, 1, device),
                                            step_fn(target, batch, context, gamma + 1, device),
                                            step_fn(draft, batch, context, 1, device)], device, repeats, warmup=2)
    one, verify, drafted = median(one_t), median(verify_t), median(draft_t)
    ratio = ratio_summary(verify_t, one_t)  # the point and its band from the same paired ratios
    # (the first H200 and CPU runs stored verify / one, the ratio of the medians, which can fall outside the band)
    return {"target_step_s": one, "verify_s": verify, "draft_step_s": drafted, "verify_ratio": ratio["median"],
            "verify_ratio_p10": ratio["p10"], "verify_ratio_p90": ratio["p90"], "verify_ratio_of_medians": verify / one,
            "samples": {"target_step_s": one_t, "verify_s": verify_t, "draft_step_s": draft_t}, "repeats": repeats,
            "c": drafted / one, "tokens_per_s_plain": batch / one,
            "predicted_speedup": expected_speedup(min(alpha, 1.0), gamma, drafted / one, ratio["median"])}


def roofline_v(prov, batch_points) -> dict | None:
    """calc's roofline (engine=ideal) at render time for a GPU run: v = verification / plain step at each measured
    batch, and the two critical batches, with output-len 2 as chapter 9's text asks calc (a decode step after the
    prompt). None for a CPU run or without calc."""
    key = prov.get("calc_gpu_key")
    if not key or not batch_points:
        return None
    first = batch_points[0]
    params = {**prov["model"]["calc_params"], "gpu": key, "weights": prov["model"]["weights"],
              "prompt-len": first["context"], "output-len": 2, "engine": "ideal", "verify-tokens": first["gamma"] + 1}
    runs = [common.calc_predict("perf", dict(params, batch=p["batch"])) for p in batch_points]
    if any(r is None or r.get("verify_to_plain_ratio") is None for r in runs):
        return None
    return {"v": [r["verify_to_plain_ratio"] for r in runs], "critical_batch": runs[0].get("critical_batch"),
            "verify_critical_batch": runs[0].get("verify_critical_batch")}


def predict_critical_batch(prov, context, gamma: int = 4) -> dict | None:
    """calc's roofline bound (engine=ideal), GPU runs with a known GPU: the batch (in requests) at which a plain
    decode step turns compute-bound, and the one at which a verification of gamma+1 tokens per request does."""
    key = prov.get("calc_gpu_key")
    if not key:
        return None
    params = {**prov["model"]["calc_params"], "gpu": key, "weights": prov["model"]["weights"], "prompt-len": context,
              "output-len": 2, "engine": "ideal", "verify-tokens": gamma + 1}  # calc's own parameter names
    r = common.calc_predict("perf", params)
    return None if r is None else {"critical_batch": r.get("critical_batch"), "gpu": key, "engine": "ideal",
                                   "verify_critical_batch": r.get("verify_critical_batch")}


def refresh_prediction(point, prov) -> None:
    """--repredict: calc's critical batches for a batch-sweep point, from its context and draft length."""
    if point.get("kind") == "batch" and "context" in point:
        point["predicted"] = predict_critical_batch(prov, point["context"], point["gamma"])


# ---------------------------------------------------------------------------------------------------------
# Figures

TEXT = {
    "tokens_title": {"zh": "每次目标模型调用产出的 token 数：实测与公式", "en": "Tokens per target call: measured vs formula"},
    "speedup_title": {"zh": "相对普通解码的墙钟加速比：实测与公式", "en": "Wall-clock speedup over plain decoding: measured vs formula"},
    "gamma": {"zh": "草稿长度 γ", "en": "draft length γ"},
    "tokens": {"zh": "token / 目标调用", "en": "tokens per target call"},
    "speedup": {"zh": "加速比（>1 为更快）", "en": "speedup (>1 is faster)"},
    "formula_tokens": {"zh": "式 (9-1)，代入实测 α", "en": "(9-1), measured α"},
    "formula": {"zh": "式 (9-2)，实测 α、c，v = 1", "en": "(9-2), measured α, c; v = 1"},
    "formula_v": {"zh": "式 (9-2)，再用实测 v", "en": "(9-2), also measured v"},
    "calc_v": {"zh": "calc 屋顶线的 v（engine=ideal）", "en": "calc's roofline v (engine=ideal)"},
    "early": {"zh": "提前退出，前 k={k} 层", "en": "early exit, k={k}"},
    "noise": {"zh": "加噪副本 σ={s}", "en": "noisy copy σ={s}"},
    "lookup_title": {"zh": "提示查找（n-gram）草稿", "en": "Prompt-lookup (n-gram) drafts"},
    "copy": {"zh": "复制：模型自己的贪心文本", "en": "copy: the model's greedy text"},
    "sampled": {"zh": "普通：温度 1 采样的文本", "en": "ordinary: text sampled at T=1"},
    "random": {"zh": "随机 token", "en": "random tokens"},
    "batch_title": {"zh": "批量增大后投机还划算吗", "en": "Does speculation still pay at larger batches?"},
    "batch": {"zh": "批量大小（请求数，上下文 {ctx}）", "en": "batch size (requests, context {ctx})"},
    "ratio_axis": {"zh": "比值 / 加速比", "en": "ratio; speedup"},
    "verify_ratio": {"zh": "验证耗时 / 普通一步", "en": "verify time / plain step"},
    "pred_speedup": {"zh": "公式加速比（实测步时）", "en": "speedup from measured step times"},
    "exact_title": {"zh": "投机采样的输出分布等于目标模型的分布", "en": "Speculative sampling reproduces the target's distribution"},
    "cell": {"zh": "3 个 token 的组合（按目标概率排序）", "en": "3-token continuation (sorted by target probability)"},
    "prob": {"zh": "概率", "en": "probability"},
    "exact_p": {"zh": "目标模型精确分布", "en": "target, exact"},
    "spec_freq": {"zh": "投机采样（p={p}）", "en": "speculative (p={p})"},
    "naive_freq": {"zh": "只按草稿分布采样（p={p}）", "en": "draft alone (p={p})"},
    "bug_freq": {"zh": "错误：拒绝后按 p 重采（p={p}）", "en": "bug: resample from p (p={p})"},
    "critical": {"zh": "calc：普通一步受计算限制的起点", "en": "calc: plain step turns compute-bound"},
    "verify_critical": {"zh": "calc：验证受计算限制的起点", "en": "calc: verification turns compute-bound"},
}
COLORS = ["#4C72B0", "#55A868", "#C44E52", "#8172B2", "#CCB974", "#64B5CD", "#937860"]


def t(key, lang, **kw):
    return TEXT[key][lang].format(**kw)


def p_text(p: float) -> str:
    """A p-value for a legend: two digits, or "<1e-10" where it underflows to 0."""
    return f"{p:.2g}" if p >= 1e-10 else "<1e-10"


def draft_label(point, lang):
    return t("early", lang, k=point["layers"]) if point["draft"] == "early-exit" else t("noise", lang, s=point["sigma"])


def plot(data, lang):
    import matplotlib.pyplot as plt

    prov, points = data["provenance"], data["points"]
    footer = common.describe_run(prov, lang)
    figs = {}
    accept = common.measured(points, "accept")
    if accept:
        for name, measured_key, predicted_key, ylabel, title in (
                ("tokens-per-call", "tokens_per_call", "predicted_tokens_per_call", "tokens", "tokens_title"),
                ("speedup", "speedup", "predicted_speedup", "speedup", "speedup_title")):
            fig, ax = plt.subplots(figsize=(7, 4.2))
            for i, p in enumerate(accept):
                g = [r["gamma"] for r in p["by_gamma"]]
                color = COLORS[i % len(COLORS)]
                alpha = sum(r["alpha"] for r in p["by_gamma"]) / len(p["by_gamma"])
                ys = [r[measured_key] for r in p["by_gamma"]]
                if measured_key == "speedup" and "speedup_p10" in p["by_gamma"][0]:  # 10th-90th percentile bars
                    err = [[y - r["speedup_p10"] for y, r in zip(ys, p["by_gamma"], strict=True)],
                           [r["speedup_p90"] - y for y, r in zip(ys, p["by_gamma"], strict=True)]]
                    ax.errorbar(g, ys, yerr=err, fmt="o", color=color, capsize=2,
                                label=f"{draft_label(p, lang)} (α≈{alpha:.2f}, c={p['c']:.2f})")
                else:
                    ax.plot(g, ys, "o", color=color, label=f"{draft_label(p, lang)} (α≈{alpha:.2f}, c={p['c']:.2f})")
                ax.plot(g, [r[predicted_key] for r in p["by_gamma"]], "-", color=color, alpha=0.7)
                if measured_key == "speedup" and "predicted_speedup_measured_v" in p["by_gamma"][0]:
                    ax.plot(g, [r["predicted_speedup_measured_v"] for r in p["by_gamma"]], ":", color=color, alpha=0.7)
            ax.plot([], [], "-", color="#555", label=t("formula" if name == "speedup" else "formula_tokens", lang))
            if name == "speedup":
                ax.plot([], [], ":", color="#555", label=t("formula_v", lang))
            if name == "speedup":
                ax.axhline(1, color="#888", lw=0.8, ls="--")
            ax.set_xlabel(t("gamma", lang))
            ax.set_ylabel(t(ylabel, lang))
            ax.set_title(t(title, lang))
            ax.legend(fontsize=7, loc="best")
            figs[name] = (fig, footer)
    lookup = common.measured(points, "lookup")
    if lookup:
        fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
        # one line per clause: the three labels side by side overlap on one line at this width
        names = [t(p["prompt"], lang).replace("：", "：\n").replace(": ", ":\n") for p in lookup]
        axes[0].bar(names, [p["tokens_per_call"] for p in lookup], color=COLORS[:len(lookup)])
        axes[0].set_ylabel(t("tokens", lang))
        axes[1].bar(names, [p["speedup"] for p in lookup], color=COLORS[:len(lookup)],
                    yerr=[[p["speedup"] - p.get("speedup_p10", p["speedup"]) for p in lookup],
                          [p.get("speedup_p90", p["speedup"]) - p["speedup"] for p in lookup]], capsize=3)
        axes[1].axhline(1, color="#888", lw=0.8, ls="--")
        axes[1].set_ylabel(t("speedup", lang))
        for ax in axes:
            ax.tick_params(axis="x", labelsize=7)
        fig.suptitle(t("lookup_title", lang) + f" (γ={lookup[0]['gamma']})")
        fig.tight_layout()
        figs["lookup"] = (fig, footer)
    batch = common.measured(points, "batch")
    if batch:
        fig, ax = plt.subplots(figsize=(7, 4))
        b = [p["batch"] for p in batch]
        ratio = [p["verify_ratio"] for p in batch]
        ax.plot(b, ratio, "o-", color=COLORS[2], label=t("verify_ratio", lang))
        if "verify_ratio_p10" in batch[0]:  # the 10th-90th percentile of the paired ratios, as a band
            ax.fill_between(b, [p["verify_ratio_p10"] for p in batch], [p["verify_ratio_p90"] for p in batch],
                            color=COLORS[2], alpha=0.2, lw=0)
        ax.plot(b, [p["predicted_speedup"] for p in batch], "s-", color=COLORS[0], label=t("pred_speedup", lang))
        ax.axhline(1, color="#888", lw=0.8, ls="--")
        roofline = roofline_v(prov, batch)  # computed now, from calc, with the chapter's parameters
        if roofline:
            ax.plot(b, roofline["v"], "--", color=COLORS[2], alpha=0.6, label=t("calc_v", lang))
        crit = (roofline or batch[0].get("predicted") or {}).get("critical_batch")
        if crit:
            ax.axvline(crit, color="#999", ls=":", label=t("critical", lang) + f" ({crit})")
        vcrit = (roofline or batch[0].get("predicted") or {}).get("verify_critical_batch")
        if vcrit:
            ax.axvline(vcrit, color="#555", ls="-.", label=t("verify_critical", lang) + f" ({vcrit})")
        common.log_axis(ax, "x", b, base=2)
        ax.set_xlabel(t("batch", lang, ctx=batch[0]["context"]))
        ax.set_ylabel(t("ratio_axis", lang))
        ax.set_title(t("batch_title", lang) + f" (γ={batch[0]['gamma']}, α={batch[0]['alpha']:.2f})")
        ax.legend(fontsize=8)
        figs["batch"] = (fig, footer)
    exact = common.measured(points, "exact")
    if exact:
        e = exact[0]
        order = sorted(range(len(e["exact_p"])), key=lambda j: -e["exact_p"][j])
        n = e["samples"]
        fig, ax = plt.subplots(figsize=(7, 3.6))
        x = range(len(order))
        ax.bar(x, [e["exact_p"][j] for j in order], color="#ddd", label=t("exact_p", lang))
        ax.plot(x, [e["counts"][j] / n for j in order], "o", ms=3, color=COLORS[0],
                label=t("spec_freq", lang, p=p_text(e["speculative"]["p_value"])))
        ax.plot(x, [e["naive_counts"][j] / n for j in order], "x", ms=3, color=COLORS[2],
                label=t("naive_freq", lang, p=p_text(e["naive_draft"]["p_value"])))
        if "bug_counts" in e:
            ax.plot(x, [e["bug_counts"][j] / n for j in order], "+", ms=4, color=COLORS[3],
                    label=t("bug_freq", lang, p=p_text(e["resample_p_bug"]["p_value"])))
        ax.set_xlabel(t("cell", lang))
        ax.set_ylabel(t("prob", lang))
        ax.set_title(t("exact_title", lang) + f" (n={n})")
        ax.legend(fontsize=8)
        figs["exact"] = (fig, footer)
    return figs


# ---------------------------------------------------------------------------------------------------------


def parse_args(argv):
    ap = common.lab_parser(__doc__, DEFAULT_OUT, QUICK_OUT)
    ap.add_argument("--parts", help=f"what to measure, from {','.join(PARTS)} (default: all on a CPU; on a GPU all "
                    "but exact, which runs on the CPU whatever the device and is committed from a CPU run)")
    ap.add_argument("--samples", type=int, default=2000, help="exactness test: seeds (one sample each)")
    ap.add_argument("--gammas", type=common.int_list, default=[1, 2, 4, 6], help="draft lengths (GPU default 1,2,4)")
    ap.add_argument("--exit-layers", type=common.int_list, default=[4, 16],
                    help="early-exit drafts: how many of the target's first layers")
    ap.add_argument("--sigmas", type=common.float_list, default=[0.1, 0.3], help="noisy drafts: noise std / weight std (GPU default 0.01)")
    ap.add_argument("--new-tokens", type=int, default=32, help="tokens generated per prompt")
    ap.add_argument("--prompts", type=int, default=1, help="prompts per point")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the accept part")
    ap.add_argument("--lookup-gamma", type=int, default=4)
    ap.add_argument("--batches", type=common.int_list, default=[1, 4, 16, 64, 128, 256], help="batch sweep")
    ap.add_argument("--batch-gamma", type=int, default=4)
    ap.add_argument("--batch-context", type=int, default=512)
    ap.add_argument("--batch-exit-layers", type=int, default=8, help="the early-exit draft of the batch sweep")
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed repeats per measurement (interleaved with the baseline; medians; GPU default 2)")
    ap.add_argument("--batch-repeats", type=int, help="timed repeats of the batch sweep (default: --repeats; GPU 3)")
    ap.add_argument("--threads", type=int, help="CPU runs: torch threads (1 keeps timings steadier on a shared machine)")
    defaults = {k: ap.get_default(k) for k in GPU_VALUES}
    args = common.finish_lab_args(ap, ap.parse_args(argv), dict(
        samples=200, gammas=[1, 2, 4], exit_layers=[1], sigmas=[0.5], new_tokens=16, prompts=1, prompt_len=16,
        batches=[1, 4], batch_context=32, batch_exit_layers=1, repeats=1, dtype="fp32"), DEFAULT_OUT, QUICK_OUT)
    # applied in main() once the device is known (a GPU run), to the options not given on the command line (an
    # explicit --repeats 3 stays 3): a second parse with a marker as their default tells which were given
    marker = object()
    ap.set_defaults(**{k: marker for k in GPU_VALUES})
    given = vars(ap.parse_args(argv))
    ap.set_defaults(**defaults)
    args.gpu_values = {} if args.quick else {k: v for k, v in GPU_VALUES.items() if given[k] is marker}
    args.parts = None if args.parts is None else [p for p in args.parts.split(",") if p]
    unknown = sorted(set(args.parts or ()) - set(PARTS))
    if unknown:
        ap.error(f"--parts: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if min(args.samples, args.new_tokens, args.prompts, args.prompt_len, args.lookup_gamma, args.batch_gamma,
           args.batch_context, args.batch_exit_layers, args.repeats, args.batch_repeats or 1) < 1:
        ap.error("--samples, --new-tokens, --prompts, --prompt-len, --lookup-gamma, --batch-gamma, --batch-context, "
                 "--batch-exit-layers, --repeats and --batch-repeats must be >= 1")
    if args.temperature < 0:
        ap.error("--temperature must be >= 0")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.plot_only:
        return common.plot_only(args.out, LAB, plot, refresh_prediction if args.repredict else None)
    device = common.pick_device(args.device)
    if device.type != "cpu":
        for name, value in args.gpu_values.items():
            setattr(args, name, value)
    if args.parts is None:
        args.parts = list(PARTS) if device.type == "cpu" else [p for p in PARTS if p != "exact"]
    if args.threads and device.type == "cpu":
        torch.set_num_threads(args.threads)
    dtype = common.DTYPES[args.dtype]
    config = dict(CPU_SMALL_CONFIG) if args.model_preset == "cpu-small" and not args.quick \
        else common.model_config(args.model_preset, args.quick)
    n_layers = config["num_hidden_layers"]
    exit_layers = sorted({k for k in args.exit_layers if k < n_layers})
    if not exit_layers or args.batch_exit_layers >= n_layers:
        raise SystemExit(f"error: early-exit drafts need fewer layers than the target's {n_layers}")
    label = "tiny (--quick)" if args.quick else args.model_preset
    print(f"building {label} ({args.dtype}, random weights) on {device} ...", flush=True)
    target = random_model(config, device, dtype, seed=0)
    prov = common.provenance(LAB, Path(__file__).name, argv, device, args.note)
    prov["model"] = {"label": label, "config": config, "weights": args.dtype, "random_weights": True,
                     "initializer_range": LOGIT_STD / math.sqrt(config["hidden_size"]),
                     "params": sum(p.numel() for p in target.parameters()), "weight_bytes": common.weight_bytes(target),
                     "calc_params": {"config": config} if args.quick or args.model_preset == "cpu-small"
                     else {"model": args.model_preset}}
    prov["datasheet"] = common.gpu_datasheet(prov["calc_gpu_key"])
    prov["settings"] = {k: v for k, v in vars(args).items() if k not in ("out", "plot_only", "repredict", "note", "gpu_values")}
    prov["settings"]["exact_config"] = EXACT_CONFIG
    data_path = args.out / "data" / f"{common.data_stem(prov)}.json"
    data = common.DataFile(data_path, prov, args.budget_s)
    print(f"data: {data_path}", flush=True)
    vocab = config["vocab_size"]
    prompts = [torch.randint(0, vocab, (1, args.prompt_len), generator=torch.Generator().manual_seed(10 + i)).to(device)
               for i in range(args.prompts)]

    def measure(point, fn, *fn_args):
        return data.measure(point, lambda: fn(*fn_args), device, progress=f"[{len(data.doc['points']) + 1}]")

    with data.running():  # most important first: on a GPU a time budget skips what comes last
        if "batch" in args.parts:
            draft = early_exit_draft(target, args.batch_exit_layers)
            alpha = measure({"kind": "batch-alpha", "layers": args.batch_exit_layers, "gamma": args.batch_gamma},
                            lambda: measure_accept(target, draft, [args.batch_gamma], prompts[:1], args.new_tokens,
                                                   args.temperature, device, 1, args.prompt_len)["by_gamma"][0])
            a = alpha.get("alpha")
            if a is not None:
                predicted = predict_critical_batch(prov, args.batch_context, args.batch_gamma)
                for batch in args.batches:
                    point = measure({"kind": "batch", "batch": batch, "gamma": args.batch_gamma, "alpha": a,
                                     "layers": args.batch_exit_layers, "context": args.batch_context},
                                    measure_batch, target, draft, batch, args.batch_gamma, args.batch_context, a, device,
                                    args.batch_repeats or args.repeats)
                    point["predicted"] = predicted
                    data.write()

        def accept(drafts):
            for point, build in drafts:
                draft = build()
                measure({"kind": "accept", **point, "temperature": args.temperature, "new_tokens": args.new_tokens,
                         "prompts": args.prompts, "prompt_len": args.prompt_len},
                        measure_accept, target, draft, args.gammas, prompts, args.new_tokens, args.temperature,
                        device, args.repeats, args.prompt_len)
                del draft
                common.free_memory(device)

        if "accept" in args.parts:  # early exit first: no extra weights, cheap drafts
            accept([({"draft": "early-exit", "layers": k}, lambda k=k: early_exit_draft(target, k)) for k in exit_layers])
        if "lookup" in args.parts:
            bigram = bigram_target(target)
            for kind in LOOKUP_KINDS:
                measure({"kind": "lookup", "prompt": kind, "gamma": args.lookup_gamma, "prompt_len": args.prompt_len,
                         "new_tokens": args.new_tokens},
                        measure_lookup, bigram, kind, args.lookup_gamma, args.prompt_len, args.new_tokens,
                        max(1, args.prompts), device, args.repeats)
            del bigram
        if "accept" in args.parts:  # noisy copies: as expensive as the target, so they come late
            accept([({"draft": "noisy-copy", "sigma": s}, lambda s=s: noisy_draft(target, s, seed=7)) for s in args.sigmas])
        if "exact" in args.parts:  # tiny models on the CPU: the test of the algorithm, not of speed
            measure({"kind": "exact", "gamma": 2}, measure_exact, args.samples, 2, 3, torch.device("cpu"),
                    torch.float32)
    common.plot_safely(plot, data_path, args.out / "figures")
    return 130 if data.doc["status"] == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
