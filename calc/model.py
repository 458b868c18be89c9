"""A model's shape, read from a Hugging Face ``config.json``, and its parameter count.

Everything the calculators need about a model is in its published ``config.json``: layer count, widths,
attention layout (MHA/GQA/MQA, MLA), sliding-window layers, MoE experts. ``from_hf_config`` turns that dict
into a ``ModelSpec``; ``param_counts`` computes the parameters from the shapes, tensor by tensor, the way
the Hugging Face ``transformers`` modules lay them out (so the totals can be checked against the model card).

Supported ``model_type`` values: llama, mistral, mixtral, qwen2, qwen2_moe, qwen3, qwen3_moe, gemma, gemma2,
deepseek_v2, deepseek_v3, glm4_moe_lite (GLM-4.7-Flash: DeepSeek-V3's layer), gpt_oss. A malformed or unsupported config raises ``ConfigError`` naming the field.
"""

from __future__ import annotations

import math
import weakref

# Per family: does the checkpoint tie lm_head to the input embedding when config.json does not say?
# (the default of the family's transformers Config class)
_TIED_BY_DEFAULT = {
    "llama": False, "mistral": False, "mixtral": False, "qwen2": False, "qwen2_moe": False, "qwen3": False,
    "qwen3_moe": False, "gemma": True, "gemma2": True, "deepseek_v2": False, "deepseek_v3": False, "glm4_moe_lite": False,
    "gpt_oss": False,
}
# DeepSeek-V3's layer (MLA attention, routed + shared experts with a biased router, first layers dense). GLM-4.7-Flash
# (glm4_moe_lite) has the same shapes: transformers' modular_glm4_moe_lite.py takes its attention from deepseek_v3 and
# its router, experts and dense MLP from glm4_moe, which are laid out as DeepSeek-V3's
_DEEPSEEK_LIKE = ("deepseek_v2", "deepseek_v3", "glm4_moe_lite")
SUPPORTED_MODEL_TYPES = tuple(_TIED_BY_DEFAULT)
REQUIRED = object()  # marks a ModelSpec field without a default


class ConfigError(ValueError):
    """A config.json that cannot describe a model: ``field`` names the offending key."""

    def __init__(self, field: str, message: str):
        super().__init__(f"config.json field '{field}': {message}")
        self.field = field
        self.message = message


class ModelSpec:
    """The shapes that decide memory and FLOPs. Names follow config.json where one exists.

    A plain read-only record (a class, not a dataclass: importing dataclasses costs the browser ~20 ms).
    """

    # field -> default; REQUIRED fields have none
    _FIELDS = {
        "name": REQUIRED,
        "model_type": REQUIRED,
        "hidden_size": REQUIRED,
        "num_hidden_layers": REQUIRED,
        "num_attention_heads": REQUIRED,
        "num_key_value_heads": REQUIRED,
        "head_dim": REQUIRED,  # per attention head; need not equal hidden_size / num_attention_heads (Qwen3, Gemma)
        "intermediate_size": REQUIRED,  # dense MLP width (Mixtral: the width of each expert)
        "vocab_size": REQUIRED,
        "tie_word_embeddings": REQUIRED,
        "max_position_embeddings": REQUIRED,
        # attention layout
        "qkv_bias": False,  # Qwen2 has biases on q/k/v projections
        "o_bias": False,  # Llama's attention_bias=True puts a bias on o_proj as well
        "mlp_bias": False,
        "qk_norm": False,  # Qwen3: an RMSNorm over each q and k head (head_dim weights each)
        "norms_per_layer": 2,  # Gemma-2 has four RMSNorms per decoder layer
        "layer_windows": (),  # one entry per layer: its sliding-window length, or None for full attention
        # multi-head latent attention (DeepSeek-V2/V3); kv_lora_rank == 0 means ordinary attention
        "kv_lora_rank": 0,
        "q_lora_rank": 0,  # 0: q is projected directly from the hidden state
        "qk_nope_head_dim": 0,
        "qk_rope_head_dim": 0,
        "v_head_dim": 0,
        # mixture of experts; num_experts == 0 means a dense model
        "num_experts": 0,
        "num_experts_per_tok": 0,
        "moe_intermediate_size": 0,
        "shared_expert_intermediate_size": 0,  # total width of the always-on shared expert(s)
        "shared_expert_gate": False,  # Qwen2-MoE scales the shared expert by a sigmoid gate (hidden -> 1)
        "router_bias": False,  # DeepSeek-V3's e_score_correction_bias, gpt-oss's router bias (one value per expert)
        "expert_bias": False,  # gpt-oss: every expert has biases on gate_up (2 × width) and down (hidden)
        "attention_sinks": False,  # gpt-oss: one learned sink logit per attention head and layer
        "moe_layers": (),  # one bool per layer: True where the MLP is a MoE block
        "mtp_layers": 0,  # DeepSeek-V3 multi-token-prediction modules: listed, not counted (not loaded for serving)
        # quantization_config.modules_to_not_convert / ignore of a quantized checkpoint: modules kept in 16 bits
        "unquantized_modules": (),
    }

    def __init__(self, **values):
        unknown = set(values) - set(self._FIELDS)
        if unknown:
            raise TypeError(f"unknown ModelSpec fields: {sorted(unknown)}")
        for name, default in self._FIELDS.items():
            if name not in values and default is REQUIRED:
                raise TypeError(f"ModelSpec needs {name}")
            object.__setattr__(self, name, values.get(name, default))
        if not self.layer_windows:  # not given: every layer attends over the whole context
            object.__setattr__(self, "layer_windows", (None,) * self.num_hidden_layers)

    def __setattr__(self, name, value):
        raise AttributeError("ModelSpec is read-only")

    def __repr__(self):
        return f"ModelSpec({self.name!r}, {self.model_type}, {self.num_hidden_layers} layers)"

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def attention_kind(self) -> str:
        """'mla', 'mha' (one K/V head per query head), 'mqa' (one K/V head) or 'gqa' (in between)."""
        if self.is_mla:
            return "mla"
        if self.num_key_value_heads == self.num_attention_heads:
            return "mha"
        if self.num_key_value_heads == 1:
            return "mqa"
        return "gqa"

    @property
    def qk_head_dim(self) -> int:
        """Width of one query/key head (MLA: the no-RoPE part plus the RoPE part)."""
        return self.qk_nope_head_dim + self.qk_rope_head_dim if self.is_mla else self.head_dim

    @property
    def v_dim(self) -> int:
        return self.v_head_dim if self.is_mla else self.head_dim

    @property
    def sliding_window_layers(self) -> int:
        return sum(1 for w in self.layer_windows if w is not None)


# ----------------------------------------------------------------------------------------------------------
# Reading config.json


# A pasted config.json is untrusted input: bound every integer so that no value can make a computation
# overflow, exhaust memory or run for long (some structures hold one entry per layer). The bounds are far
# above any published model (the largest has ~130 layers and a ~260k vocabulary).
MAX_CONFIG_INT = 10**9
MAX_LAYERS = 10_000


def _int(cfg: dict, key: str, default=None, minimum: int = 1, maximum: int = MAX_CONFIG_INT) -> int:
    value = cfg.get(key, default)
    if value is None:
        if default is None:
            raise ConfigError(key, "is required and missing")
        value = default
    # bool is a subclass of int; a JSON float like 4096.0 is accepted if whole (json.loads also reads
    # Infinity and NaN, which are not).
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or (isinstance(value, float) and not math.isfinite(value)) or value != int(value)):
        raise ConfigError(key, f"must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ConfigError(key, f"must be ≥ {minimum}, got {value}")
    if value > maximum:
        raise ConfigError(key, f"must be ≤ {maximum:,}, got {value:,}")
    return value


def _bool(cfg: dict, key: str, default: bool) -> bool:
    value = cfg.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false, got {value!r}")
    return value


def _layer_windows(cfg: dict, model_type: str, n_layers: int) -> tuple:
    """Which layers attend over a sliding window, and how wide it is.

    Newer transformers versions write the pattern out as ``layer_types``; it wins when present. Otherwise
    each family's rule from its modeling code:
      - mistral / mixtral: every layer, when ``sliding_window`` is set (Mistral-7B-v0.1: 4096);
      - qwen2 / qwen3 / their MoE versions: only with ``use_sliding_window``, on layers ≥ ``max_window_layers``;
      - gemma2: alternating, starting with a sliding layer (layer 0 local, layer 1 global, ...).
    """
    window = cfg.get("sliding_window")
    if window is not None:
        window = _int(cfg, "sliding_window")
    layer_types = cfg.get("layer_types")
    if layer_types is not None:
        if not isinstance(layer_types, list) or len(layer_types) != n_layers:
            raise ConfigError("layer_types", f"must list one entry per layer ({n_layers})")
        out = []
        for t in layer_types:
            if t == "full_attention":
                out.append(None)
            elif t == "sliding_attention":
                if window is None:
                    raise ConfigError("sliding_window", "is needed by layer_types 'sliding_attention'")
                out.append(window)
            else:
                raise ConfigError("layer_types", f"unknown layer type {t!r}")
        return tuple(out)
    if window is None:
        return (None,) * n_layers
    if model_type in ("mistral", "mixtral"):
        return (window,) * n_layers
    if model_type in ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe"):
        if not _bool(cfg, "use_sliding_window", False):
            return (None,) * n_layers
        first = _int(cfg, "max_window_layers", n_layers, minimum=0)
        return tuple(window if i >= first else None for i in range(n_layers))
    if model_type == "gemma2":
        return tuple(window if i % 2 == 0 else None for i in range(n_layers))
    return (None,) * n_layers


def from_hf_config(cfg: dict, name: str | None = None) -> ModelSpec:
    """Build a ``ModelSpec`` from a Hugging Face config.json dict. Raises ``ConfigError`` naming the field."""
    if not isinstance(cfg, dict):
        raise ConfigError("(root)", "config.json must be a JSON object")
    model_type = cfg.get("model_type")
    if model_type is None:
        raise ConfigError("model_type", "is required and missing")
    if not isinstance(model_type, str) or model_type not in _TIED_BY_DEFAULT:
        raise ConfigError("model_type", f"{model_type!r} is not supported; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")

    hidden = _int(cfg, "hidden_size")
    n_layers = _int(cfg, "num_hidden_layers", maximum=MAX_LAYERS)
    n_heads = _int(cfg, "num_attention_heads")
    n_kv = _int(cfg, "num_key_value_heads", n_heads)  # absent means plain multi-head attention
    if n_heads % n_kv:
        raise ConfigError("num_key_value_heads", f"{n_kv} does not divide num_attention_heads {n_heads}")
    if cfg.get("head_dim") is not None:
        head_dim = _int(cfg, "head_dim")
    elif model_type in _DEEPSEEK_LIKE:
        # MLA has no single head width (GLM-4.7-Flash: 2048 / 20 heads is not whole); a query head is nope + rope wide
        head_dim = _int(cfg, "qk_nope_head_dim") + _int(cfg, "qk_rope_head_dim")
    elif hidden % n_heads:
        raise ConfigError("head_dim", f"is missing and hidden_size {hidden} is not a multiple of num_attention_heads {n_heads}")
    else:
        head_dim = hidden // n_heads
    spec = dict(
        name=name or cfg.get("_name_or_path") or model_type,
        model_type=model_type,
        hidden_size=hidden,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv,
        head_dim=head_dim,
        intermediate_size=_int(cfg, "intermediate_size"),
        vocab_size=_int(cfg, "vocab_size"),
        tie_word_embeddings=_bool(cfg, "tie_word_embeddings", _TIED_BY_DEFAULT[model_type]),
        max_position_embeddings=_int(cfg, "max_position_embeddings", 4096),
        layer_windows=_layer_windows(cfg, model_type, n_layers),
    )
    if model_type in ("qwen2", "qwen2_moe"):
        spec["qkv_bias"] = True  # Qwen2Attention: q/k/v Linear(bias=True), o_proj without
    elif model_type in ("llama", "qwen3", "qwen3_moe", "gemma", "gemma2", "gpt_oss"):
        spec["qkv_bias"] = spec["o_bias"] = _bool(cfg, "attention_bias", False)
    if model_type == "llama":
        spec["mlp_bias"] = _bool(cfg, "mlp_bias", False)
    if model_type in ("qwen3", "qwen3_moe"):
        spec["qk_norm"] = True
    if model_type == "gemma2":
        spec["norms_per_layer"] = 4  # input, post-attention, pre-feedforward, post-feedforward

    # Mixture of experts
    if model_type == "gpt_oss":
        # GptOssMLP: a router Linear(hidden, experts, bias=True) and fused experts with biases, every layer MoE;
        # each expert is intermediate_size wide. Attention has a learned sink per head.
        spec.update(
            num_experts=_int(cfg, "num_local_experts"),
            num_experts_per_tok=_int(cfg, "num_experts_per_tok", cfg.get("experts_per_token")),
            moe_intermediate_size=spec["intermediate_size"],
            moe_layers=(True,) * n_layers,
            router_bias=True,
            expert_bias=True,
            attention_sinks=True,
        )
    elif model_type == "mixtral":
        spec.update(
            num_experts=_int(cfg, "num_local_experts"),
            num_experts_per_tok=_int(cfg, "num_experts_per_tok"),
            moe_intermediate_size=spec["intermediate_size"],
            moe_layers=(True,) * n_layers,
        )
    elif model_type in ("qwen2_moe", "qwen3_moe"):
        n_exp = _int(cfg, "num_experts")
        step = _int(cfg, "decoder_sparse_step", 1)
        dense = cfg.get("mlp_only_layers") or []
        if not isinstance(dense, list) or not all(isinstance(i, int) for i in dense):
            raise ConfigError("mlp_only_layers", "must be a list of layer indices")
        spec.update(
            num_experts=n_exp,
            num_experts_per_tok=_int(cfg, "num_experts_per_tok"),
            moe_intermediate_size=_int(cfg, "moe_intermediate_size"),
            moe_layers=tuple(i not in dense and (i + 1) % step == 0 for i in range(n_layers)),
        )
        if model_type == "qwen2_moe":
            spec["shared_expert_intermediate_size"] = _int(cfg, "shared_expert_intermediate_size", 0, minimum=0)
            spec["shared_expert_gate"] = spec["shared_expert_intermediate_size"] > 0
    elif model_type in _DEEPSEEK_LIKE:
        n_routed = _int(cfg, "n_routed_experts", 0, minimum=0)
        first_dense = _int(cfg, "first_k_dense_replace", 0, minimum=0)
        freq = _int(cfg, "moe_layer_freq", 1)
        moe_inter = _int(cfg, "moe_intermediate_size") if n_routed else 0
        moe_layers = tuple(bool(n_routed) and i >= first_dense and i % freq == 0 for i in range(n_layers))
        kinds = cfg.get("mlp_layer_types")  # transformers 5 writes the pattern out ("dense" / "sparse" per layer)
        if kinds is not None:
            if not isinstance(kinds, list) or len(kinds) != n_layers or not set(kinds) <= {"dense", "sparse"}:
                raise ConfigError("mlp_layer_types", f"must list 'dense' or 'sparse' for each of the {n_layers} layers")
            moe_layers = tuple(bool(n_routed) and k == "sparse" for k in kinds)
        spec.update(
            num_experts=n_routed,
            num_experts_per_tok=_int(cfg, "num_experts_per_tok") if n_routed else 0,
            moe_intermediate_size=moe_inter,
            shared_expert_intermediate_size=moe_inter * _int(cfg, "n_shared_experts", 0, minimum=0),
            # V3 routes with an auxiliary-loss-free bias term per expert (topk_method "noaux_tc")
            router_bias=cfg.get("topk_method", "greedy" if model_type == "deepseek_v2" else "noaux_tc") == "noaux_tc",
            moe_layers=moe_layers,
            mtp_layers=_int(cfg, "num_nextn_predict_layers", 0, minimum=0),
        )
        # Multi-head latent attention: K and V are rebuilt from a small cached latent vector.
        spec.update(
            kv_lora_rank=_int(cfg, "kv_lora_rank"),
            q_lora_rank=_int(cfg, "q_lora_rank", 0, minimum=0),
            qk_nope_head_dim=_int(cfg, "qk_nope_head_dim"),
            qk_rope_head_dim=_int(cfg, "qk_rope_head_dim"),
            v_head_dim=_int(cfg, "v_head_dim"),
        )
        spec["o_bias"] = spec["qkv_bias"] = _bool(cfg, "attention_bias", False)
    if not spec.get("moe_layers"):
        spec["moe_layers"] = (False,) * n_layers
    spec["unquantized_modules"] = _unquantized_modules(cfg)
    return ModelSpec(**spec)


def _unquantized_modules(cfg: dict) -> tuple:
    """The module names (or ``re:`` patterns) a quantized checkpoint keeps in 16 bits: Hugging Face's
    ``quantization_config.modules_to_not_convert`` (fbgemm_fp8, bitsandbytes, AWQ...), compressed-tensors'
    ``ignore`` and ``ignored_layers``."""
    qc = cfg.get("quantization_config")
    if not isinstance(qc, dict):
        return ()
    names = []
    for key in ("modules_to_not_convert", "ignore", "ignored_layers"):
        value = qc.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise ConfigError(f"quantization_config.{key}", "must be a list of module names")
        names.extend(value)
    return tuple(names)


def linear_modules(m: ModelSpec):
    """(module name, weights) of the linear layers inside the decoder blocks, named as in Hugging Face
    checkpoints (``model.layers.3.self_attn.q_proj``, ``model.layers.3.mlp.down_proj``). A MoE layer's routed
    experts come as one entry, ``model.layers.N.mlp.experts``; MLA attention as one, ``model.layers.N.self_attn``."""
    h = m.hidden_size
    att_lin = _attention_params(m)[0]
    q_out, kv_out = m.num_attention_heads * m.head_dim, m.num_key_value_heads * m.head_dim
    for i, moe in enumerate(m.moe_layers):
        pre = f"model.layers.{i}."
        if m.is_mla:
            yield pre + "self_attn", att_lin
        else:
            yield pre + "self_attn.q_proj", h * q_out
            yield pre + "self_attn.k_proj", h * kv_out
            yield pre + "self_attn.v_proj", h * kv_out
            yield pre + "self_attn.o_proj", q_out * h
        if moe:
            yield pre + "mlp.experts", m.num_experts * 3 * h * m.moe_intermediate_size
            if m.shared_expert_intermediate_size:
                for part in ("gate_proj", "up_proj", "down_proj"):
                    yield pre + "mlp.shared_experts." + part, h * m.shared_expert_intermediate_size
        else:
            for part in ("gate_proj", "up_proj", "down_proj"):
                yield pre + "mlp." + part, h * m.intermediate_size


def _matches(name: str, pattern: str) -> bool:
    if pattern.startswith("re:"):
        import re  # only for compressed-tensors patterns

        return re.match(pattern[3:], name) is not None
    if "*" in pattern:  # gpt-oss writes model.layers.*.self_attn: '*' stands for one dotted component
        import re

        return re.fullmatch(re.escape(pattern).replace(r"\*", r"[^.]+") + r"(\..*)?", name) is not None
    # transformers' rule for modules_to_not_convert: the name appears in the module's dotted path
    return pattern == name or f".{pattern}." in f".{name}." or name.startswith(pattern + ".") or pattern in name.split(".")


_UNQUANTIZED_ROWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # spec -> its rows, while the spec lives


def unquantized_linear_params(m: ModelSpec, per_layer: bool = False):
    """Weights of the decoder-block linear layers a checkpoint keeps in 16 bits: {"layer": ..., "expert": ...};
    ``per_layer``: one such dict per decoder layer (for pipeline stages). Matched once per spec (the record is
    read-only) and kept beside it, not on it, so its fields stay what callers see: the name matching costs
    milliseconds for gpt-oss, and a memory report asks several times."""
    rows = _UNQUANTIZED_ROWS.get(m)
    if rows is None:
        rows = [{"layer": 0, "expert": 0} for _ in m.moe_layers]
        if m.unquantized_modules:
            for name, n in linear_modules(m):
                if any(_matches(name, p) for p in m.unquantized_modules):
                    i = int(name.split(".")[2])
                    rows[i]["expert" if name.endswith(".experts") else "layer"] += n
        _UNQUANTIZED_ROWS[m] = rows
    if per_layer:
        return [dict(r) for r in rows]  # copies: callers may add to them
    return {"layer": sum(r["layer"] for r in rows), "expert": sum(r["expert"] for r in rows)}


# ----------------------------------------------------------------------------------------------------------
# Parameter count, from the shapes


def _attention_params(m: ModelSpec) -> tuple[int, int, int]:
    """(linear weights, biases, norm weights) of one attention block."""
    h = m.hidden_size
    if m.is_mla:
        # DeepSeek MLA: q = W_qb · norm(W_qa · x); the cached latent c = norm(W_kva · x) plus a shared RoPE key;
        # K(no-RoPE part) and V are up-projected from c by W_kvb.
        qk = m.num_attention_heads * m.qk_head_dim
        if m.q_lora_rank:
            q = h * m.q_lora_rank + m.q_lora_rank * qk
            norms = m.q_lora_rank
        else:
            q, norms = h * qk, 0
        kv_a = h * (m.kv_lora_rank + m.qk_rope_head_dim)
        kv_b = m.kv_lora_rank * m.num_attention_heads * (m.qk_nope_head_dim + m.v_head_dim)
        o = m.num_attention_heads * m.v_head_dim * h
        return q + kv_a + kv_b + o, (h if m.o_bias else 0), norms + m.kv_lora_rank
    q_out = m.num_attention_heads * m.head_dim
    kv_out = m.num_key_value_heads * m.head_dim
    linear = h * q_out + 2 * h * kv_out + q_out * h
    biases = (q_out + 2 * kv_out if m.qkv_bias else 0) + (h if m.o_bias else 0)
    norms = 2 * m.head_dim if m.qk_norm else 0
    if m.attention_sinks:  # counted with the norms: small per-head vectors kept in 16 bits
        norms += m.num_attention_heads
    return linear, biases, norms


def param_counts(m: ModelSpec) -> dict:
    """Parameters by role. ``total`` is what must sit in memory; ``active`` what one token passes through.

    Roles matter for quantization (linear layers are quantized, embeddings/norms/routers usually are not)
    and for decode traffic (only the routed experts are read). Keys:
      embedding, lm_head (0 when tied), layer_linear (attention + dense MLP + shared experts),
      expert_linear (all routed experts), expert_linear_active (the top-k of them, per token),
      router, biases, norms, total, active.
    DeepSeek-V3's multi-token-prediction module is not counted (serving engines skip it by default).
    """
    h = m.hidden_size
    att_lin, att_bias, att_norm = _attention_params(m)
    dense_mlp = 3 * h * m.intermediate_size  # gate, up, down (SwiGLU / GeGLU)
    dense_mlp_bias = 2 * m.intermediate_size + h if m.mlp_bias else 0
    expert = 3 * h * m.moe_intermediate_size
    shared = 3 * h * m.shared_expert_intermediate_size
    n_moe = sum(m.moe_layers)
    n_dense = m.num_hidden_layers - n_moe
    embedding = m.vocab_size * h
    counts = {
        "embedding": embedding,
        "lm_head": 0 if m.tie_word_embeddings else embedding,
        "layer_linear": m.num_hidden_layers * att_lin + n_dense * dense_mlp + n_moe * shared,
        "expert_linear": n_moe * m.num_experts * expert,
        "expert_linear_active": n_moe * m.num_experts_per_tok * expert,
        "router": n_moe * (m.num_experts * h + (m.num_experts if m.router_bias else 0) + (h if m.shared_expert_gate else 0)),
        "biases": m.num_hidden_layers * att_bias + n_dense * dense_mlp_bias
        + (n_moe * m.num_experts * (2 * m.moe_intermediate_size + h) if m.expert_bias else 0),
        "norms": m.num_hidden_layers * (m.norms_per_layer * h + att_norm) + h,  # + the final norm
    }
    fixed = sum(v for k, v in counts.items() if not k.startswith("expert"))
    counts["total"] = fixed + counts["expert_linear"]
    counts["active"] = fixed + counts["expert_linear_active"]
    return counts


def lm_head_params(m: ModelSpec) -> int:
    """The output projection's weights (the embedding matrix when tied)."""
    return _lm_head(param_counts(m))


def _lm_head(counts: dict) -> int:
    return counts["lm_head"] or counts["embedding"]


def matmul_params_per_token(m: ModelSpec) -> int:
    """Weights that take part in a matrix multiply for one token: 2 FLOPs each.

    The input embedding is a table lookup, not a matmul, so it is left out (unless tied: then the same
    matrix is the lm_head, which is a matmul). Norms and biases are negligible and left out too.
    """
    c = param_counts(m)
    return c["layer_linear"] + c["expert_linear_active"] + c["router"] + _lm_head(c)
