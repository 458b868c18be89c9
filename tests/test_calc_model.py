"""Model shapes from config.json and parameter counts, checked against hand counts and published totals."""

import json
import os

import pytest

from calc import registry
from calc.model import ConfigError, from_hf_config, matmul_params_per_token, param_counts


def test_llama_3_1_8b_count_by_hand():
    # meta-llama/Llama-3.1-8B config.json: hidden 4096, 32 layers, 32 heads, 8 KV heads, MLP 14336, vocab 128256, untied
    h, L, inter, vocab, kv_out = 4096, 32, 14336, 128256, 8 * 128
    attention = h * h + 2 * h * kv_out + h * h  # q, k, v, o
    mlp = 3 * h * inter
    norms = 2 * h
    expected = L * (attention + mlp + norms) + 2 * vocab * h + h
    assert expected == 8_030_261_248  # the figure Hugging Face shows as "8.03B params"
    assert param_counts(registry.get_model("llama-3.1-8b"))["total"] == expected


def test_qwen2_biases_and_gemma2_norms_by_hand():
    # Qwen2.5-7B: q/k/v carry biases (3584 + 2 × 512 per layer)
    m = registry.get_model("qwen2.5-7b")
    h, L = 3584, 28
    per_layer = (h * h + 3584) + 2 * (h * 512 + 512) + h * h + 3 * h * 18944 + 2 * h
    assert param_counts(m)["total"] == L * per_layer + 2 * 152064 * h + h
    # Gemma-2-9B: four norms per layer, head_dim 256 (16 × 256 = 4096 ≠ hidden 3584), tied embeddings
    g = registry.get_model("gemma-2-9b")
    h, L = 3584, 42
    per_layer = h * 4096 + 2 * h * 2048 + 4096 * h + 3 * h * 14336 + 4 * h
    assert param_counts(g)["total"] == L * per_layer + 256000 * h + h


def _mla_moe_by_hand(h, heads, q_rank, nope, v_dim, experts, moe_inter, inter, dense, moe, vocab, kv_rank=512, rope=64):
    """DeepSeek-V3's layer counted by hand: MLA (q down/up, kv down with the rope part, kv up, o), its two extra norms,
    ``dense`` layers with one MLP of width ``inter`` and ``moe`` layers with ``experts`` routed experts + 1 shared
    (each 3 × h × ``moe_inter``), a router with a bias per expert; untied embedding and head. Returns (total, expert)."""
    attention = (h * q_rank + q_rank * heads * (nope + rope)) + h * (kv_rank + rope) + kv_rank * heads * (nope + v_dim) \
        + heads * v_dim * h
    att_norms = q_rank + kv_rank
    expert = 3 * h * moe_inter
    moe_layer = attention + att_norms + experts * expert + expert + experts * h + experts + 2 * h
    dense_layer = attention + att_norms + 3 * h * inter + 2 * h
    return dense * dense_layer + moe * moe_layer + 2 * vocab * h + h, expert


def test_deepseek_v3_mla_moe_by_hand():
    # 61 layers, first 3 dense (MLP 18432), 58 MoE: 256 routed experts (width 2048) + 1 shared, top-8
    total, expert = _mla_moe_by_hand(7168, 128, 1536, 128, 128, 256, 2048, 18432, dense=3, moe=58, vocab=129280)
    counts = param_counts(registry.get_model("deepseek-v3"))
    assert counts["total"] == total
    assert counts["active"] == total - 58 * (256 - 8) * expert


@pytest.mark.parametrize("preset", registry.list_models())
def test_totals_match_published(preset):
    entry = registry.model_entry(preset)
    published = entry["published_params"]
    counts = param_counts(registry.get_model(preset))
    # model cards round (often truncate) to 3 significant digits: 1 % covers it
    assert counts["total"] == pytest.approx(published["total"], rel=0.01)
    if "active" in published:  # "37B activated" etc. are rounded to 2 digits
        assert counts["active"] == pytest.approx(published["active"], rel=0.03)
    if "non_embedding" in published:
        non_emb = counts["total"] - counts["embedding"] - counts["lm_head"]
        assert non_emb == pytest.approx(published["non_embedding"], rel=0.01)


def test_moe_active_below_total_and_dense_equal():
    for preset in ("mixtral-8x7b", "qwen3-235b-a22b", "deepseek-v3"):
        c = param_counts(registry.get_model(preset))
        assert c["active"] < c["total"] / 3
    c = param_counts(registry.get_model("llama-3.1-70b"))
    assert c["active"] == c["total"]


def test_matmul_params_exclude_the_embedding_lookup():
    m = registry.get_model("llama-3.1-8b")
    assert matmul_params_per_token(m) == param_counts(m)["total"] - 128256 * 4096 - 65 * 4096  # minus table, norms
    tied = registry.get_model("llama-3.2-1b")  # tied: the embedding is the lm_head matmul
    assert matmul_params_per_token(tied) == param_counts(tied)["total"] - (16 * 2 + 1) * 2048


def test_head_dim_is_respected():
    m = registry.get_model("qwen3-32b")
    assert m.head_dim == 128 and m.num_attention_heads * m.head_dim == 8192 != m.hidden_size


def test_sliding_window_patterns():
    assert registry.get_model("mistral-7b").layer_windows == (4096,) * 32
    g = registry.get_model("gemma-2-9b")
    assert g.layer_windows[:4] == (4096, None, 4096, None) and g.sliding_window_layers == 21
    # Qwen2.5 ships sliding_window but use_sliding_window=false: no window at all
    assert registry.get_model("qwen2.5-7b").sliding_window_layers == 0
    cfg = registry.hf_config("qwen2.5-7b")
    cfg.update(use_sliding_window=True, sliding_window=4096, max_window_layers=20)
    m = from_hf_config(cfg)
    assert m.layer_windows == (None,) * 20 + (4096,) * 8
    cfg["layer_types"] = ["sliding_attention", "full_attention"] * 14  # explicit pattern wins
    assert from_hf_config(cfg).layer_windows[:2] == (4096, None)


def test_attention_kinds():
    cfg = registry.hf_config("llama-3.1-8b")
    assert from_hf_config(cfg).attention_kind == "gqa"
    assert from_hf_config({**cfg, "num_key_value_heads": 32}).attention_kind == "mha"
    assert from_hf_config({**cfg, "num_key_value_heads": 1}).attention_kind == "mqa"
    assert registry.get_model("deepseek-v3").attention_kind == "mla"


@pytest.mark.parametrize("change, field", [
    ({"hidden_size": None}, "hidden_size"),
    ({"num_hidden_layers": "32"}, "num_hidden_layers"),
    ({"num_hidden_layers": 0}, "num_hidden_layers"),
    ({"num_key_value_heads": 5}, "num_key_value_heads"),
    ({"model_type": "bert"}, "model_type"),
    ({"tie_word_embeddings": "no"}, "tie_word_embeddings"),
    ({"layer_types": ["full_attention"]}, "layer_types"),
])
def test_malformed_config_names_the_field(change, field):
    cfg = registry.hf_config("llama-3.1-8b")
    for k, v in change.items():
        if v is None:
            del cfg[k]
        else:
            cfg[k] = v
    with pytest.raises(ConfigError) as err:
        from_hf_config(cfg)
    assert err.value.field == field and field in str(err.value)
    assert isinstance(err.value, ValueError)


def test_head_dim_missing_and_indivisible():
    cfg = {**registry.hf_config("llama-3.1-8b"), "hidden_size": 4001}
    with pytest.raises(ConfigError, match="head_dim"):
        from_hf_config(cfg)


def test_mixtral_and_qwen3_moe_fields():
    mx = registry.get_model("mixtral-8x7b")
    assert (mx.num_experts, mx.num_experts_per_tok, mx.moe_intermediate_size) == (8, 2, 14336)
    q = registry.get_model("qwen3-235b-a22b")
    assert (q.num_experts, q.num_experts_per_tok, q.moe_intermediate_size, sum(q.moe_layers)) == (128, 8, 1536, 94)
    cfg = {**registry.hf_config("qwen3-235b-a22b"), "mlp_only_layers": [0, 1]}
    assert sum(from_hf_config(cfg).moe_layers) == 92


def test_hf_config_is_a_fresh_copy_of_the_data_file():
    cfg = registry.hf_config("llama-3.1-8b")
    cfg["hidden_size"] = 1
    assert registry.hf_config("llama-3.1-8b")["hidden_size"] == 4096
    with open(os.path.join(registry.DATA, "models", "llama-3.1-8b.json"), encoding="utf-8") as fh:
        assert json.load(fh)["config"] == registry.hf_config("llama-3.1-8b")


def _glm_4_7_flash() -> dict:
    from calc import calibration

    return calibration._data()["configs"]["glm-4.7-flash"]["config"]


def test_glm_4_7_flash_is_deepseek_v3_s_layer_by_hand():
    """glm4_moe_lite (GLM-4.7-Flash) is read as DeepSeek-V3's layer: MLA, 64 routed experts + 1 shared, the first
    layer dense; 2048 / 20 heads is not whole, so no head width is derived from hidden_size."""
    m = from_hf_config(_glm_4_7_flash())
    assert m.is_mla and m.num_hidden_layers == 47 and m.moe_layers == (False,) + (True,) * 46
    assert m.head_dim == 192 + 64  # a query head's width (nope + rope), used by nothing MLA computes
    # 47 layers, the first dense (MLP 10240), 46 MoE: 64 routed experts (width 1536) + 1 shared, top-4
    total, expert = _mla_moe_by_hand(2048, 20, 768, 192, 256, 64, 1536, 10240, dense=1, moe=46, vocab=154880)
    counts = param_counts(m)
    assert counts["total"] == total
    assert counts["active"] == total - 46 * (64 - 4) * expert
    # the model card's "30B-A3B" class: 29.9 billion in all, 3.3 billion active beside the embedding and output head
    assert round(total / 1e9) == 30 and round((counts["active"] - counts["embedding"] - counts["lm_head"]) / 1e9) == 3


def test_mlp_layer_types_set_the_moe_layers_and_bad_ones_are_named():
    cfg = dict(_glm_4_7_flash(), num_hidden_layers=3)
    cfg["mlp_layer_types"] = ["dense", "sparse", "dense"]  # transformers 5 writes the pattern out
    assert from_hf_config(cfg).moe_layers == (False, True, False)
    for bad in (["dense", "sparse"], ["dense", "moe", "dense"], "sparse"):
        with pytest.raises(ConfigError, match="mlp_layer_types"):
            from_hf_config({**cfg, "mlp_layer_types": bad})


def test_a_spec_built_without_layer_windows_attends_over_the_whole_context():
    """ModelSpec(...) without layer_windows: every layer full attention (it used to be an empty tuple, which gave zero
    attention FLOPs and no KV cache), the same as a config without sliding windows."""
    from calc import perf  # noqa: PLC0415
    from calc.memory import cached_tokens  # noqa: PLC0415
    from calc.model import ModelSpec  # noqa: PLC0415

    m = registry.get_model("llama-3.1-8b")
    bare = ModelSpec(**{k: getattr(m, k) for k in ModelSpec._FIELDS if k != "layer_windows"})
    assert bare.layer_windows == (None,) * 32 == m.layer_windows
    assert cached_tokens(bare, 1000) == [1000] * 32
    assert perf.prefill_flops(bare, 2, 500) == perf.prefill_flops(m, 2, 500)
    assert perf.decode_flops(bare, 3, 700) == perf.decode_flops(m, 3, 700) > 2 * 3 * 7e9
