"""Property tests: the formulas move the right way and never produce nonsense."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calc import api, registry
from calc.memory import kv_bytes_per_token
from calc.model import from_hf_config

MODELS = st.sampled_from(registry.list_models())
GPUS = st.sampled_from(registry.list_gpus())
FAST = settings(max_examples=25, deadline=None)


def _finite_and_non_negative(x):
    if isinstance(x, dict):
        return all(_finite_and_non_negative(v) for k, v in x.items() if k not in ("monthly_savings_usd", "net_12m_usd",
                                                                                  "net_24m_usd", "roi_12m", "roi_24m"))
    if isinstance(x, list):
        return all(_finite_and_non_negative(v) for v in x)
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return True
    return math.isfinite(x) and x >= 0


@FAST
@given(model=MODELS, gpu=GPUS, batch=st.integers(1, 256), prompt=st.integers(1, 32768), output=st.integers(1, 4096))
def test_reports_are_finite_and_non_negative(model, gpu, batch, prompt, output):
    for command in ("memory", "perf"):
        r = api.run(command, {"model": model, "gpu": gpu, "batch": batch, "prompt-len": prompt, "output-len": output})
        assert _finite_and_non_negative(r)
        json.dumps(r, allow_nan=False)


@FAST
@given(model=MODELS, batch=st.integers(1, 128), prompt=st.integers(1, 16384), extra=st.integers(1, 4096))
def test_monotonic_in_batch_and_context(model, batch, prompt, extra):
    base = {"model": model, "gpu": "h200", "batch": batch, "prompt-len": prompt, "output-len": 16}
    more_batch = {**base, "batch": batch + 1}
    longer = {**base, "prompt-len": prompt + extra}
    m0, m1, m2 = (api.run("memory", p) for p in (base, more_batch, longer))
    assert m1["kv_cache_bytes"] > m0["kv_cache_bytes"] and m1["total_bytes"] > m0["total_bytes"]
    assert m2["kv_cache_bytes"] >= m0["kv_cache_bytes"] and m2["total_bytes"] > m0["total_bytes"]
    p0, p1, p2 = (api.run("perf", p) for p in (base, more_batch, longer))
    assert p1["tpot_s"] >= p0["tpot_s"] and p1["decode_tok_per_s"] >= p0["decode_tok_per_s"]
    assert p1["prefill_s"] > p0["prefill_s"] and p2["prefill_s"] > p0["prefill_s"]
    assert p2["tpot_s"] >= p0["tpot_s"]


@FAST
@given(model=MODELS)
def test_fp8_below_bf16(model):
    bf = api.run("memory", {"model": model, "weights": "bf16", "kv-dtype": "bf16"})
    f8 = api.run("memory", {"model": model, "weights": "fp8", "kv-dtype": "fp8"})
    assert f8["weights_bytes"] < bf["weights_bytes"] and f8["kv_bytes_per_token"] * 2 == bf["kv_bytes_per_token"]
    i4 = api.run("memory", {"model": model, "weights": "int4"})
    assert i4["weights_bytes"] < f8["weights_bytes"]


@FAST
@given(model=st.sampled_from([k for k in registry.list_models() if registry.get_model(k).attention_kind == "gqa"]))
def test_gqa_below_mha(model):
    cfg = registry.hf_config(model)
    mha = from_hf_config({**cfg, "num_key_value_heads": cfg["num_attention_heads"]})
    assert kv_bytes_per_token(registry.get_model(model)) < kv_bytes_per_token(mha)


def test_mla_far_below_mha():
    ds = registry.get_model("deepseek-v3")
    # the same 128 heads with ordinary multi-head attention would cache K (192 wide) and V (128 wide) per head
    mha_per_token = ds.num_hidden_layers * ds.num_attention_heads * (ds.qk_head_dim + ds.v_dim) * 2
    assert kv_bytes_per_token(ds) * 50 < mha_per_token


INVALID = st.one_of(
    st.integers(-10, 0), st.booleans(), st.sampled_from([float("nan"), float("inf"), -1.5, 0.5]),
    st.text(alphabet="abcxyz!@#", min_size=1, max_size=8),
)


@settings(max_examples=40, deadline=None)
@given(value=INVALID, name=st.sampled_from(["batch", "prompt-len", "output-len", "tp"]))
def test_bad_input_is_a_value_error_with_a_message(value, name):
    with pytest.raises(ValueError) as err:
        api.run("memory", {name: value})
    assert isinstance(err.value, api.InputError) and str(err.value)
    assert set(err.value.errors) == {name} and err.value.errors[name]["en"] and err.value.errors[name]["zh"]
