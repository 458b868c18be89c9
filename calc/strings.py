"""Every word the calculators show, in Chinese and English, in one place:

- INPUTS: the form, a label and a help line per input (calc/api.py's fields; the CLI's --help uses the English);
- LABELS: the result tables, a label per output (calc/web.py); the inputs a report echoes back are labelled
  as on the form, from INPUTS;
- VALUE_WORDS: outputs that are words ("memory" as the bound of a step);
- UI: everything else: the widget around the form (hooks/calculators.py), the status line the page script
  shows (docs/assets/js/calculators/calculators.js, which reads the PAGE_SCRIPT entries from the widget's
  data-text attribute, written by the hook from this table), units that are words, and the charts' text
  (calc/charts.py).

Messages that carry numbers (calc's input errors, warnings, whether a model fits) are written where they are
computed, with the same t(zh, en). Chinese comes first, as everywhere in the book. This module ships to the
browser with the rest of calc/ and needs nothing else.
"""

from __future__ import annotations

LANGS = ("zh", "en")


def t(zh: str, en: str) -> dict:
    """One string in both languages: ``t("批大小", "Batch size")["en"] == "Batch size"``."""
    return {"zh": zh, "en": en}


# ---------------------------------------------------------------------------------------------------------
# The form: one entry per input, keyed by the CLI's flag name (calc/api.py defines kind, default and range).

INPUTS = {
    "model": {
        "label": t("模型", "Model"),
        "help": t("模型注册表中的预设（来自公开的 config.json）",
                  "A preset from the model registry (published config.json)"),
    },
    "config": {
        "label": t("config.json", "config.json"),
        "help": t("Hugging Face 的 config.json（JSON 文本）；填写后优先于模型预设",
                  "A Hugging Face config.json (JSON text); overrides the model preset when given"),
    },
    "gpu": {
        "label": t("GPU", "GPU"),
        "help": t("GPU 注册表中的加速卡",
                  "An accelerator from the GPU registry"),
    },
    "weights": {
        "label": t("权重格式", "Weight format"),
        "help": t("权重的存储格式；除 GGUF 外，嵌入层和 lm_head 保持 16 位",
                  "How weights are stored; embeddings and lm_head stay 16-bit except in GGUF"),
    },
    "kv-dtype": {
        "label": t("KV 缓存精度", "KV cache dtype"),
        "help": t("KV 缓存的元素类型",
                  "Element type of the KV cache"),
    },
    "batch": {
        "label": t("批大小", "Batch size"),
        "help": t("同时处理的请求数",
                  "Requests processed together"),
    },
    "prompt-len": {
        "label": t("提示长度", "Prompt length"),
        "help": t("每个请求的输入 token 数",
                  "Input tokens per request"),
    },
    "output-len": {
        "label": t("输出长度", "Output length"),
        "help": t("每个请求生成的 token 数",
                  "Generated tokens per request"),
    },
    "verify-tokens": {
        "label": t("每请求验证 token 数", "Verified tokens per request"),
        "help": t("投机采样：一次验证中每个请求送入的 token 数（γ 个草稿 + 1），它们共用该请求的 KV 缓存",
                  "Speculative decoding: tokens each request feeds one verification (γ drafts + 1); they share "
                  "the request's KV cache"),
    },
    "accept-rate": {
        "label": t("草稿接受率 α", "Draft acceptance rate α"),
        "help": t("投机采样：每个草稿 token 被目标模型接受的概率（0–1）；给出后按第 9 章的 (9-1)、(9-2) 算每次验证产出的 token 数与加速比，γ = 每请求验证 token 数 − 1；留空则不算",
                  "Speculative decoding: the probability (0–1) that the target accepts each draft token; given, the "
                  "tokens per verification and the speedup follow chapter 9's (9-1) and (9-2), with γ = verified "
                  "tokens per request − 1; empty: not computed"),
        "empty": t("不计算", "not computed"),
    },
    "draft-cost": {
        "label": t("草稿成本比 c", "Draft cost ratio c"),
        "help": t("投机采样：草稿走一步的时间与目标模型普通解码一步的时间之比，要在同一个引擎、同样的批大小下测量（0 表示草稿不花时间）。草稿每一步要分担多少引擎的每步固定开销，取决于引擎怎样运行草稿（第 9 章）",
                  "Speculative decoding: the time of one draft step over one plain target decode step, measured in "
                  "the same engine at the same batch size (0: a free draft). How much of the engine's fixed cost per "
                  "step a draft step pays depends on how the engine runs the draft (chapter 9)"),
        "empty": t("0（草稿不花时间）", "0 (a free draft)"),
    },
    "tp": {
        "label": t("张量并行 GPU 数", "Tensor-parallel GPUs"),
        "help": t("一个模型切分到的 GPU 数（张量并行）",
                  "GPUs one model is split across (tensor parallelism)"),
    },
    "pp": {
        "label": t("流水线并行段数", "Pipeline-parallel stages"),
        "help": t("把模型的层均分成几段，每段放在自己的一组 GPU 上（流水线并行）；GPU 总数 = max(tp, ep) × pp",
                  "Stages the layers are split into, each on its own GPUs (pipeline parallelism); "
                  "GPUs in all = max(tp, ep) × pp"),
    },
    "ep": {
        "label": t("专家并行 GPU 数", "Expert-parallel GPUs"),
        "help": t("路由专家分布到的 GPU 数（专家并行，仅 MoE）；ep > tp 时注意力按数据并行复制 ep/tp 份",
                  "GPUs the routed experts are spread over (expert parallelism, MoE only); with ep > tp, attention "
                  "runs as ep/tp data-parallel replicas"),
    },
    "overhead-gib": {
        "label": t("运行时开销", "Runtime overhead"),
        "help": t("每块 GPU：CUDA 上下文、工作区、分配器余量（假设值，请按实际环境调整）；用于“放得下吗”。"
                  "vLLM 和 SGLang 的 KV 预算按引擎自己的规则扣除，不用这一项；TensorRT-LLM 的 KV 预算把它当作 PyTorch 之外占用的显存，"
                  "通用规则（llama.cpp、Hugging Face、屋顶线）也从 KV 预算里扣除它",
                  "Per GPU: CUDA context, workspaces, allocator slack (an assumption; adjust to your stack); used for "
                  "\"Fits?\". The vLLM and SGLang KV budgets follow the engine's own rule and do not use it; "
                  "TensorRT-LLM's takes it as its memory outside PyTorch, and the generic rule (llama.cpp, Hugging Face, "
                  "roofline) subtracts it too"),
    },
    "gpu-memory-utilization": {
        "label": t("显存利用率上限", "GPU memory utilization"),
        "help": t("vLLM 的 gpu_memory_utilization：引擎可使用的 CUDA 可见显存比例；SGLang 的 mem_fraction_static：启动时空闲显存中留给权重 + KV 缓存的比例"
                  "（激活和 CUDA Graph 用其余部分）；TensorRT-LLM 的 free_gpu_memory_fraction：扣除权重和一次试运行的峰值之后，剩余显存中给 KV 缓存的比例；"
                  "llama.cpp、Hugging Face、屋顶线：CUDA 可见显存的一个通用比例。留空则取所选引擎的默认值",
                  "vLLM's gpu_memory_utilization: the share of CUDA's total the engine may use; SGLang's "
                  "mem_fraction_static: the share of the memory free at start-up kept for weights + KV cache (activations "
                  "and CUDA graphs use the rest); TensorRT-LLM's free_gpu_memory_fraction: the share of what is left after "
                  "the weights and its dry run that goes to the KV cache; llama.cpp, Hugging Face, roofline: a generic "
                  "share of CUDA's total. Empty: the chosen engine's default"),
    },
    "engine": {
        "label": t("推理引擎", "Serving engine"),
        "help": t("按所选引擎的实测校准加上每步固定开销和各权重格式的效率；ideal 为屋顶线理想下界",
                  "Adds the chosen engine's per-step overhead and per-format efficiencies, calibrated on published "
                  "measurements; ideal is the roofline bound"),
    },
    "block-size": {
        "label": t("KV 块大小", "KV block size"),
        "help": t("分页 KV 缓存每块（页）的 token 数，一个 n token 的请求占 ⌈n / 块大小⌉ 块；留空则取所选引擎在这块 GPU 上对该模型的默认值："
                  "vLLM 0.32 为 16（MLA 模型在计算能力 10.x 的 GPU 上为 32，在 Hopper 上用 FP8 KV 缓存时为 64），SGLang 为 1（计算能力 10.x 上为 64），"
                  "TensorRT-LLM 为 32（MLA 模型在 Hopper 上为 64），其他引擎按 16 计。SGLang 在计算能力 10.x 上只接受 16、32、64、128"
                  "（MLA 模型 32、64），其他值会被它改成 64",
                  "Tokens per paged KV-cache block (page); a request of n tokens holds ⌈n / block⌉ of them. Empty: the chosen "
                  "engine's default for this model on this GPU: vLLM 0.32 16 (32 for MLA models on compute capability "
                  "10.x, 64 for them with an FP8 KV cache on Hopper), SGLang 1 (64 on 10.x), TensorRT-LLM 32 (64 for "
                  "MLA models on Hopper); 16 for the other engines. SGLang on 10.x takes only 16, 32, 64 or 128 (MLA models "
                  "32 or 64) and changes any other value to 64"),
    },
    "max-model-len": {
        "label": t("最大模型长度", "Max model length"),
        "help": t("vLLM 的 max_model_len；留空则取模型的 max_position_embeddings",
                  "vLLM's max_model_len; empty: the model's max_position_embeddings"),
    },
    "max-num-batched-tokens": {
        "label": t("最大批处理 token 数", "Max batched tokens"),
        "help": t("vLLM 的 max_num_batched_tokens：一步最多处理的 token 数；也决定预估激活显存时那次前向的大小。"
                  "留空则按 vLLM 0.32 的 API 服务随 GPU 取的默认值：A100 和 70 GiB 以下的 GPU 为 2048，其他 70 GiB 以上的为 8192，"
                  "160 GiB 以上的（如 B200、MI300X）为 16384。引擎选 SGLang 时留空则取它随 GPU 取的 chunked_prefill_size："
                  "20 GiB 以下 2048，60 GiB 以下 4096，160 GiB 以下 8192，其余 16384（SGLang 0.5.20 之前 35 GiB 以下为 2048）；"
                  "它也是 SGLang 一个只含提示的步最多容纳的 token 数。选 TensorRT-LLM 时留空则取它的 max_num_tokens，8192："
                  "一步最多的 token 数、试运行的大小，不分块预填充时也是它接受的最长提示",
                  "vLLM's max_num_batched_tokens: the most tokens one step processes; also the size of the "
                  "profiling run that sets the activation reserve. Empty: what vLLM 0.32's API server picks for the GPU, "
                  "2048 on A100s and GPUs under 70 GiB, 8192 on the others of 70 GiB or more, 16384 from 160 GiB "
                  "(B200, MI300X). With SGLang, empty: its chunked_prefill_size for the GPU, 2048 under 20 GiB, 4096 under "
                  "60 GiB, 8192 under 160 GiB, else 16384 (2048 under 35 GiB before SGLang 0.5.20), also the most tokens "
                  "one of its prompt steps holds. With TensorRT-LLM, empty: its max_num_tokens, 8192: the most tokens "
                  "one step holds, the size of its dry run and, without chunked prefill, the longest prompt it accepts"),
    },
    "mem-efficiency": {
        "label": t("显存带宽效率", "Memory bandwidth efficiency"),
        "help": t("可达带宽 / 标称带宽；留空则取所选引擎对该权重格式的校准值（ideal：H100 实测拷贝 2957.5 GB/s，标称 3.35 TB/s）",
                  "Achievable / datasheet bandwidth; empty: the chosen engine's figure for the weight format "
                  "(ideal: the H100 reference copy, 2957.5 GB/s of 3.35 TB/s)"),
    },
    "compute-efficiency": {
        "label": t("算力效率", "Compute efficiency"),
        "help": t("可达算力 / 标称稠密算力；留空则取所选引擎对该权重格式的校准值（ideal：H100 实测矩阵乘 755.4 / 989.5 TFLOPS），"
                  "再乘以这块 GPU 实测矩阵乘比例与 H100 之比（见数据页的 GPU 表）。只有实测矩阵乘超过数据手册的卡（GeForce）可以大于 1，最大为它的实测比例",
                  "Achievable / datasheet dense FLOPS; empty: the chosen engine's figure for the weight format "
                  "(ideal: the H100 reference matmul, 755.4 of 989.5 TFLOPS) times this GPU's measured matmul share over "
                  "the H100's (the data page's GPU table). Above 1 only on a card whose measured matmul exceeds its datasheet "
                  "(GeForce cards), up to that share"),
    },
    "request-latency-ms": {
        "label": t("每个请求不占 GPU 的延迟", "Per-request latency off the GPU"),
        "help": t("请求的 TTFT 中 calc 预填充时间以外的部分：前端（HTTP、分词）。"
                  "测法：并发 1、短提示下实测 TTFT，减去 calc 对这段提示给出的“预填充时间”（批大小 1，模型、GPU、并行度、"
                  "权重格式和引擎都相同；不是理想下限那一行）。在客户端测得的值包含网络时间。留空则用引擎的拟合值"
                  "（只依据少数几次运行，见数据页）",
                  "Everything in a request's TTFT beyond calc's prefill time: the front end (HTTP, tokenisation). "
                  "Measure: your TTFT at concurrency 1 for a short prompt, "
                  "minus the 'Prefill time' calc shows for it (batch 1; same model, GPU, parallelism, weights and "
                  "engine; not the ideal bound). A value measured at your client includes its network time. Empty: "
                  "the engine's fitted figure, from few runs (data page)"),
    },
    "gpu-price": {
        "label": t("GPU 单价", "GPU price"),
        "help": t("每 GPU 小时的美元价格；留空则取注册表中带日期的云价格区间中值",
                  "USD per GPU-hour; empty: the middle of the registry's dated cloud price range"),
    },
    "utilization": {
        "label": t("利用率", "Utilization"),
        "help": t("付费 GPU 时间中用于服务的比例（1 = 始终满载）",
                  "Share of paid GPU time spent serving (1 = always busy)"),
    },
    "requests-per-s": {
        "label": t("请求速率", "Request rate"),
        "help": t("平均每秒请求数",
                  "Average requests per second"),
    },
    "api": {
        "label": t("对比的 API", "API to compare"),
        "help": t("用于对比的 API 标价（带日期）",
                  "A dated API list price to compare with"),
    },
    "engineering-cost": {
        "label": t("工程投入", "Engineering cost"),
        "help": t("一次性工程成本，美元（示例值，请填入实际值）",
                  "One-off engineering cost in USD (an example value: enter yours)"),
    },
    "hardware-cost": {
        "label": t("硬件投入", "Hardware cost"),
        "help": t("一次性硬件采购成本，美元（租用则为 0）",
                  "One-off hardware purchase in USD (0 when renting)"),
    },
    "rate": {
        "label": t("请求速率", "Request rate"),
        "help": t("整个服务平均每秒到达的请求数（泊松到达）",
                  "Average requests per second arriving at the whole service (Poisson arrivals)"),
    },
    "workload": {
        "label": t("请求长度", "Request lengths"),
        "help": t("固定：每个请求都用上面的提示/输出长度；其余按公开请求轨迹的长度分布抽样",
                  "Fixed: every request has the prompt/output lengths above; the others draw lengths from a public trace"),
    },
    "ttft-p90": {
        "label": t("TTFT 目标（p90）", "TTFT target (p90)"),
        "help": t("90% 的请求首 token 时间不超过此值（秒）", "90% of requests get their first token within this (seconds)"),
    },
    "tpot-p90": {
        "label": t("TPOT 目标（p90）", "TPOT target (p90)"),
        "help": t("90% 的请求每输出 token 时间不超过此值（秒）", "90% of requests stay within this time per output token (seconds)"),
    },
    "max-num-seqs": {
        "label": t("最大并发序列数", "Max sequences"),
        "help": t("vLLM 的 max_num_seqs：一步最多容纳的序列数。默认 256；vLLM 0.32 的 API 服务在 70 GiB 及以上、不是 A100 的 GPU 上默认为 1024。"
                  "vLLM 启动时的剖析前向会为这么多个请求算出 logits 并预热采样器；若这部分显存超过前向的激活峰值，就按它从 KV 预算里扣除",
                  "vLLM's max_num_seqs: the most sequences one step holds. Default 256; vLLM 0.32's API server uses 1024 "
                  "on GPUs with 70 GiB or more other than A100s. vLLM's start-up profiling "
                  "computes the logits of this many requests and warms its sampler up on them; where that takes more "
                  "memory than the forward pass, the KV budget loses the difference"),
    },
    "chunked-prefill": {
        "label": t("分块预填充", "Chunked prefill"),
        "help": t("on：长提示分块，与解码同步执行；off：整段预填充时解码暂停",
                  "on: long prompts are split and run alongside decodes; off: decodes pause for whole prefills"),
    },
    "reserve-full-prompt": {
        "label": t("按整段提示接纳", "Admit on the whole prompt"),
        "help": t("on：整段提示的 KV 块都空闲才接纳请求（vLLM 0.19 起的默认，--scheduler-reserve-full-isl）；"
                  "off：只看第一个分块（vLLM 0.18 及更早，或 --no-scheduler-reserve-full-isl）。只在分块预填充打开时起作用；所选引擎为 SGLang 时总按整段提示接纳（SGLang 本身就是这样）",
                  "on: a request is admitted only when its whole prompt's KV blocks are free (vLLM's default since 0.19, "
                  "--scheduler-reserve-full-isl); off: its first chunk's (vLLM 0.18 and earlier, or "
                  "--no-scheduler-reserve-full-isl). Only with chunked prefill on; with SGLang always on, as SGLang admits"),
    },
    "requests": {
        "label": t("模拟请求数", "Simulated requests"),
        "help": t("每次模拟的请求数；留空则按输出 token 总量自动选取",
                  "Requests per simulation; empty: chosen from a total of output tokens"),
    },
    "seed": {
        "label": t("随机种子", "Random seed"),
        "help": t("到达时间与长度抽样的种子；相同种子结果相同", "Seed of the arrivals and lengths; the same seed gives the same result"),
    },
    "monthly-savings": {
        "label": t("每月节省", "Monthly savings"),
        "help": t("每月节省的美元；留空则按请求速率计算：API 费用减去自建费用",
                  "USD per month; empty: API bill minus self-hosted bill at the request rate"),
    },
}

# ---------------------------------------------------------------------------------------------------------
# The result tables: one label per output field.

# Inputs a report echoes back (the CLI prints them with the result), labelled as on the form.
ECHOED_INPUTS = ("model", "gpu", "weights", "kv-dtype", "batch", "prompt-len", "output-len", "tp", "pp", "ep", "utilization",
                 "requests-per-s", "api", "verify-tokens")

LABELS = {
    # the inputs a report echoes: labelled as on the form
    **{name.replace("-", "_"): INPUTS[name]["label"] for name in ECHOED_INPUTS},
    "attention": t("注意力结构", "Attention layout"),
    "gpus": t("GPU 总数", "GPUs in all"),
    "attention_replicas": t("注意力数据并行副本数", "Attention data-parallel replicas"),
    # memory
    "params_total": t("参数量（总）", "Parameters (total)"),
    "params_active": t("参数量（每 token 激活）", "Parameters (active per token)"),
    "weights_bytes": t("权重", "Weights"),
    "weights_bytes_per_gpu": t("权重（每块 GPU）", "Weights (per GPU)"),
    "weights_bits_per_param": t("每个权重的位数（含缩放因子）", "Bits per weight (incl. scales)"),
    "kv_bytes_per_token": t("每 token 的 KV 缓存", "KV cache per token"),
    "kv_bytes_per_token_per_gpu": t("每 token 的 KV 缓存（每块 GPU）", "KV cache per token (per GPU)"),
    "kv_cache_bytes": t("KV 缓存", "KV cache"),
    "kv_cache_bytes_per_gpu": t("KV 缓存（每块 GPU）", "KV cache (per GPU)"),
    "activation_peak_bytes": t("激活峰值", "Activation peak"),
    "activation_peak_bytes_per_gpu": t("激活峰值（每块 GPU）", "Activation peak (per GPU)"),
    "overhead_bytes": t("运行时开销", "Runtime overhead"),
    "overhead_bytes_per_gpu": t("运行时开销（每块 GPU）", "Runtime overhead (per GPU)"),
    "total_bytes": t("合计", "Total"),
    "total_bytes_per_gpu": t("合计（每块 GPU）", "Total (per GPU)"),
    "gpu_memory_bytes": t("GPU 显存容量（标称）", "GPU memory (datasheet)"),
    "gpu_visible_memory_bytes": t("GPU 显存容量（CUDA 可见）", "GPU memory (visible to CUDA)"),
    "engine": t("推理引擎", "Serving engine"),
    "fits": t("放得下吗", "Fits?"),
    "fits_reason": t("说明", "Reason"),
    "max_concurrency": t("最大并发请求数（此长度）", "Max concurrent requests (this length)"),
    "engine_gpu_memory_utilization": t("引擎显存利用率上限", "Engine GPU memory utilization"),
    "engine_block_size": t("引擎 KV 块大小", "Engine KV block size"),
    "engine_max_model_len": t("引擎最大模型长度", "Engine max model length"),
    "engine_max_num_batched_tokens": t("引擎最大批处理 token 数", "Engine max batched tokens"),
    "engine_kv_rule": t("引擎 KV 预算规则", "Engine KV budget rule"),
    "engine_profile_activation_bytes_per_gpu": t("引擎剖析前向的激活峰值（每块 GPU）",
                                                 "Engine profiling-pass activation peak (per GPU)"),
    "engine_max_num_seqs": t("引擎最大并发序列数", "Engine max sequences"),
    "engine_sampler_path": t("引擎剖析前向的采样路径", "Engine sampling path in the profiling run"),
    "engine_sampler_warmup_bytes_per_gpu": t("引擎剖析前向的采样器预热峰值（流水线最后一级，每块 GPU）",
                                             "Engine sampler warm-up peak in the profiling run (last pipeline stage, per GPU)"),
    "engine_profile_peak_bytes_per_gpu": t("引擎剖析前向峰值（前向与采样器预热取较大者，流水线最后一级，每块 GPU）",
                                           "Engine profiling peak (larger of forward pass and sampler warm-up, last pipeline stage, per GPU)"),
    "engine_non_torch_bytes_per_gpu": t("引擎非 PyTorch 显存（每块 GPU）", "Engine non-torch memory (per GPU)"),
    "engine_cuda_graph_bytes_per_gpu": t("引擎 CUDA Graph 显存（每块 GPU）", "Engine CUDA graph memory (per GPU)"),
    "engine_startup_bytes_per_gpu": t("引擎启动时分布式初始化占用（每块 GPU）",
                                      "Engine distributed set-up memory (per GPU)"),
    "engine_mxfp4_backend": t("引擎的 MXFP4 MoE 内核", "Engine MXFP4 MoE kernels"),
    "engine_weight_padding_bytes_per_gpu": t("引擎内核补齐的权重（每块 GPU，已计入权重）",
                                             "Engine kernel padding of the weights (per GPU, in the weights)"),
    "engine_kv_cache_groups": t("引擎 KV 缓存分组数（vLLM 的混合 KV 管理按注意力窗口分组）",
                                "Engine KV cache groups (vLLM's hybrid KV manager groups layers by attention window)"),
    "engine_kv_in_flight_tokens": t("引擎在途 token 数（滑动窗口组为其预留）", "Engine tokens in flight (sliding-window groups keep room for them)"),
    "engine_kv_budget_bytes_per_gpu": t("引擎 KV 缓存预算（每块 GPU）", "Engine KV cache budget (per GPU)"),
    "engine_num_kv_blocks": t("引擎 KV 块数", "Engine KV blocks"),
    "engine_max_tokens_in_cache": t("引擎可缓存 token 数", "Engine tokens in cache"),
    "engine_swa_pool_tokens": t("引擎滑动窗口池 token 数（SGLang 的混合 SWA 池）", "Engine sliding-window pool tokens (SGLang's hybrid SWA pool)"),
    "engine_max_concurrency_at_max_model_len": t("引擎并发（按最大模型长度）", "Engine concurrency at max model length"),
    "engine_fits_one_max_len_request": t("引擎放得下一个最长请求", "Engine fits one max-length request"),
    # perf
    "compute_dtype": t("计算精度", "Compute dtype"),
    "peak_flops": t("峰值算力（稠密）", "Peak FLOPS (dense)"),
    "effective_flops": t("有效算力", "Effective FLOPS"),
    "effective_bandwidth_bytes_per_s": t("有效显存带宽", "Effective memory bandwidth"),
    "memory_efficiency": t("显存带宽效率", "Memory bandwidth efficiency"),
    "compute_efficiency": t("算力效率", "Compute efficiency"),
    "prefill_flops": t("预填充计算量", "Prefill FLOPs"),
    "prefill_bytes": t("预填充读写字节", "Prefill bytes moved"),
    "prefill_s": t("预填充时间", "Prefill time"),
    "prefill_bound": t("预填充瓶颈", "Prefill bound"),
    "ttft_s": t("TTFT（首 token 时延，所选引擎典型值）", "TTFT (time to first token, typical with the engine)"),
    "ttft_ideal_s": t("TTFT（理想下界）", "TTFT (ideal bound)"),
    "prefill_ideal_s": t("预填充时间（理想下界）", "Prefill time (ideal bound)"),
    "prefill_chunks": t("预填充步数（分块）", "Prefill steps (chunks)"),
    "engine_step_overhead_s": t("引擎每步固定开销", "Engine fixed cost per step"),
    "request_latency_s": t("每个请求不占 GPU 的延迟（计入 TTFT：前端）",
                           "Per-request latency off the GPU (in TTFT: the front end)"),
    "decode_flops_per_step": t("每步解码计算量", "Decode FLOPs per step"),
    "decode_bytes_per_step": t("每步解码读写字节", "Decode bytes per step"),
    "decode_weight_bytes_per_step": t("每步解码读取的权重字节", "Decode weight bytes per step"),
    "decode_weight_bytes_per_token": t("解码每个 token 分摊的权重字节", "Decode weight bytes per token"),
    "experts_touched_fraction": t("每步用到的路由专家比例", "Share of routed experts touched per step"),
    "tpot_s": t("TPOT（每输出 token 时间，所选引擎典型值）", "TPOT (time per output token, typical with the engine)"),
    "tpot_ideal_s": t("TPOT（理想下界）", "TPOT (ideal bound)"),
    "e2e_ideal_s": t("端到端时延（理想下界）", "End-to-end latency (ideal bound)"),
    "decode_tok_per_s_ideal": t("解码吞吐（整批，理想上界）", "Decode throughput (whole batch, ideal bound)"),
    "throughput_ideal_tok_per_s": t("输出吞吐（理想上界）", "Output throughput (ideal bound)"),
    "bound": t("解码瓶颈", "Decode bound"),
    "decode_tok_per_s": t("解码吞吐（整批）", "Decode throughput (whole batch)"),
    "decode_tok_per_s_per_request": t("解码速度（每个请求）", "Decode speed (per request)"),
    "e2e_s": t("端到端时延（E2EL）", "End-to-end latency (E2EL)"),
    "throughput_tok_per_s": t("输出吞吐（含预填充）", "Output throughput (incl. prefill)"),
    "allreduce_s_per_step": t("每步 all-reduce 时间", "All-reduce time per step"),
    "all_to_all_s_per_step": t("每步专家 all-to-all 时间（分发 + 汇总）", "Expert all-to-all time per step (dispatch + combine)"),
    "pipeline_handoff_s_per_step": t("每步流水线段间传递时间", "Pipeline hand-off time per step"),
    "micro_batches": t("微批数", "Micro-batches"),
    "comm_latency_s_per_call": t("每次通信的固定开销（假设值）", "Fixed cost per communication call (assumed)"),
    "tpot_single_batch_s": t("TPOT（不切微批）", "TPOT (one batch, no micro-batches)"),
    "prefill_pipeline_bubble": t("预填充流水线气泡占比", "Prefill pipeline bubble"),
    "decode_pipeline_bubble": t("解码流水线气泡占比", "Decode pipeline bubble"),
    "ridge_flops_per_byte": t("屋脊点（标称）", "Ridge point (datasheet)"),
    "ridge_flops_per_byte_effective": t("屋脊点（有效）", "Ridge point (effective)"),
    "critical_batch": t("临界批大小", "Critical batch size"),
    "critical_batch_weights_only": t("临界批大小（仅权重）", "Critical batch size (weights only)"),
    "verify_step_s": t("验证步时间（投机采样）", "Verification step time (speculative decoding)"),
    "verify_step_ideal_s": t("验证步时间（理想）", "Verification step time (ideal)"),
    "verify_bound": t("验证步受限于", "Verification step bound by"),
    "verify_flops_per_step": t("每个验证步的 FLOPs", "FLOPs per verification step"),
    "verify_bytes_per_step": t("每个验证步读取的字节", "Bytes read per verification step"),
    "verify_to_plain_ratio": t("验证步 / 普通解码步", "Verification step / plain decode step"),
    "verify_critical_batch": t("验证步的临界批大小（请求数）", "Critical batch of a verification (requests)"),
    "spec_tokens_per_call": t("每次验证的期望 token 数 (9-1)", "Expected tokens per verification (9-1)"),
    "spec_speedup": t("投机采样加速比", "Speculative decoding speedup"),
    "spec_speedup_ideal": t("投机采样加速比（屋顶线，不计引擎开销）", "Speculative decoding speedup (roofline, no engine cost)"),
    # cost
    "usd_per_gpu_hour": t("每 GPU 小时价格", "Price per GPU-hour"),
    "usd_per_hour": t("每小时费用（一个副本）", "Cost per hour (one replica)"),
    "usd_per_million_input_tokens": t("每百万输入 token 成本", "Cost per 1M input tokens"),
    "usd_per_million_output_tokens": t("每百万输出 token 成本", "Cost per 1M output tokens"),
    "usd_per_request": t("自建：每请求成本", "Self-hosted: cost per request"),
    "requests_per_s_per_replica": t("每副本请求容量", "Requests per replica"),
    "replicas_needed": t("所需副本数", "Replicas needed"),
    "gpus_needed": t("所需 GPU 数", "GPUs needed"),
    "monthly_cost_usd": t("自建：每月费用", "Self-hosted: monthly cost"),
    "monthly_requests": t("每月请求数", "Requests per month"),
    "gpu_price_source": t("GPU 价格来源", "GPU price source"),
    "gpu_price_as_of": t("GPU 价格日期", "GPU price as of"),
    "api_usd_per_request": t("API：每请求费用", "API: cost per request"),
    "api_monthly_cost_usd": t("API：每月费用", "API: monthly cost"),
    "monthly_savings_usd": t("每月节省（API − 自建）", "Monthly savings (API − self-hosted)"),
    # roi
    "one_off_usd": t("一次性投入", "One-off investment"),
    "payback_months": t("回本时间", "Payback time"),
    "roi_12m": t("12 个月 ROI", "ROI after 12 months"),
    "roi_24m": t("24 个月 ROI", "ROI after 24 months"),
    "net_12m_usd": t("12 个月净收益", "Net after 12 months"),
    "net_24m_usd": t("24 个月净收益", "Net after 24 months"),
    "break_even_requests_per_month": t("盈亏平衡请求量（每月）", "Break-even requests per month"),
    # plan
    "replicas": t("副本数", "Replicas"),
    "tp_size": t("每副本张量并行 GPU 数", "Tensor-parallel GPUs per replica"),
    "ttft_p90_s": t("TTFT p90（模拟）", "TTFT p90 (simulated)"),
    "tpot_p90_s": t("TPOT p90（模拟）", "TPOT p90 (simulated)"),
    "itl_p99_s": t("ITL p99（模拟）", "ITL p99 (simulated)"),
    "e2e_p90_s": t("端到端时延 p90（模拟）", "End-to-end latency p90 (simulated)"),
    "utilization_per_replica": t("每副本负载（到达速率 / 饱和速率）", "Load per replica (arrival rate / saturated rate)"),
    "kv_usage_peak": t("KV 缓存峰值占用", "Peak KV cache usage"),
    "slo_attainment": t("同时满足两个目标的请求比例（模拟）", "Requests meeting both targets (simulated)"),
    "requests_per_s_goodput": t("有效吞吐（同时满足两个目标，整个服务）", "Goodput (requests meeting both targets, whole service)"),
    "preemptions": t("抢占次数（模拟）", "Preemptions (simulated)"),
    "requests_per_s_replica": t("每副本请求速率", "Request rate per replica"),
    "requests_per_s_saturated": t("每副本饱和速率（模拟）", "Saturated rate per replica (simulated)"),
    "simulated_requests": t("所选配置检查时模拟的请求数", "Requests simulated in the chosen configuration's check"),
    "mean_prompt_len": t("平均提示长度", "Mean prompt length"),
    "mean_output_len": t("平均输出长度", "Mean output length"),
    "runners_up": t("备选配置数", "Runners-up"),
}

VALUE_WORDS = {
    "memory": t("显存带宽", "memory bandwidth"),
    "compute": t("算力", "compute"),
    "gqa": t("GQA（分组查询注意力）", "GQA (grouped-query attention)"),
    "mha": t("MHA（多头注意力）", "MHA (multi-head attention)"),
    "mqa": t("MQA（多查询注意力）", "MQA (multi-query attention)"),
    "mla": t("MLA（多头潜在注意力）", "MLA (multi-head latent attention)"),
    # vLLM's MXFP4 MoE backends (data/engines.json mxfp4_moe)
    "marlin": t("Marlin", "Marlin"),
    "triton": t("Triton（OpenAI triton_kernels）", "Triton (OpenAI triton_kernels)"),
    "flashinfer_trtllm": t("FlashInfer TensorRT-LLM", "FlashInfer TensorRT-LLM"),
    "triton_rocm": t("Triton（ROCm）", "Triton (ROCm)"),
    # vLLM's sampler paths in its profiling run (data/engines.json kv_budget.sampler_bytes_per_logit)
    "v2-logits": t("V2 运行器（只有 logits）", "V2 runner (logits only)"),
    "v2-fp32": t("V2 运行器（logits 加 fp32 副本）", "V2 runner (logits + fp32 copy)"),
    "sort-free": t("V1 运行器，免排序的 top-k/top-p（FlashInfer 或 Triton）",
                   "V1 runner, sort-free top-k/top-p (FlashInfer or Triton)"),
    "torch-sort": t("V1 运行器，PyTorch 排序", "V1 runner, PyTorch sort"),
}

# ---------------------------------------------------------------------------------------------------------
# Everything else.

UI = {
    # values
    "yes": t("是", "yes"),
    "no": t("否", "no"),
    "none": t("—", "—"),
    "months": t("个月", "months"),
    "never": t("不回本（每月没有节省）", "never (no monthly savings)"),
    "requests": t("个请求", "requests"),
    "blocks": t("块", "blocks"),
    "tokens": t("token", "tokens"),  # Chinese text writes "token", with no plural
    "token": t("token", "token"),  # one (SGLang's page of 1)
    "your_input": t("你输入的价格", "your input"),
    "auto": t("自动", "auto"),  # the placeholder of an input whose default calc works out
    # the widget (hooks/calculators.py)
    "more": t("更多参数（引擎与效率假设）", "More inputs (engine and efficiency assumptions)"),
    "config": t("或粘贴 config.json（填写后优先于模型预设）", "Or paste a config.json (overrides the model preset)"),
    "results": t("结果", "Results"),
    "quantity": t("项目", "Quantity"),
    "value": t("数值", "Value"),
    "binary": t("二进制单位", "Binary units"),
    "details": t("全部输出", "All outputs"),
    "open": t("在完整计算器中打开", "Open in the full calculator"),
    "noscript": t("启用 JavaScript 后可修改输入并实时计算；下面是默认输入的结果。",
                  "Enable JavaScript to change the inputs; below is the result for the default inputs."),
    # the status line: written by the hook ("static"), then by the page script (all of PAGE_SCRIPT)
    "static": t("显示的是构建时算好的默认结果。正在浏览器中载入 Python，就绪后修改输入即可实时重算……",
                "Showing the result for the default inputs, computed at build time. "
                "Loading Python in your browser; then any change recomputes live…"),
    "stale": t("正在浏览器中载入 Python，以计算链接里的这组输入（下方暂为默认输入的结果）……",
               "Loading Python in your browser to compute the inputs from the link "
               "(below: the result for the default inputs)…"),
    "live": t("已就绪：结果由浏览器中的 calc/ 实时计算。", "Live: calc/ computes these results in your browser."),
    "invalid": t("请先修正标出的输入。", "Please correct the marked inputs."),
    "failed": t("Python 没有启动，无法重新计算：", "Python did not start, so nothing can be recomputed: "),
    "bug": t("计算出错（calc 内部错误）：", "The calculation failed (an internal error in calc): "),
    # the charts (calc/charts.py)
    "memory_title": t("每块 GPU 的显存构成（GB）", "Memory per GPU (GB)"),
    "memory_weights": t("权重", "Weights"),
    "memory_kv": t("KV 缓存", "KV cache"),
    "memory_activations": t("激活峰值", "Activations"),
    "memory_overhead": t("运行时开销", "Overhead"),
    "memory_capacity": t("GPU 显存", "GPU memory"),
    "memory_stage": t("第 {n} 段（第 {a}–{b} 层）", "Stage {n} (layers {a}–{b})"),
    "perf_title": t("批大小对时延与吞吐的影响", "Latency and throughput vs batch size"),
    "perf_tpot": t("TPOT（ms）", "TPOT (ms)"),
    "perf_throughput": t("解码吞吐（tok/s）", "Decode throughput (tok/s)"),
    # beside the dashed line on the perf chart: how many sequences of the input's length memory holds ("\n": where
    # the chart may break the line)
    "perf_capacity": t("显存只容纳\n{n} 个序列", "memory holds\n{n} sequences"),
    "perf_capacity_one": t("显存只容纳\n1 个序列", "memory holds\n1 sequence"),
    "perf_capacity_none": t("显存一个序列\n也放不下", "memory holds\nno sequence"),
    "perf_note": t("批大小（对数坐标）；空心点：显存带宽瓶颈，实心点：算力瓶颈；大圆点：当前输入",
                   "Batch size (log scale); hollow: memory-bound, filled: compute-bound; large dot: your input"),
    "cost_title": t("每百万 token 成本（按本请求的输入/输出比例，美元）",
                    "Cost per 1M tokens at this input/output mix (USD)"),
    "cost_self": t("自建", "Self-hosted"),
    "roi_title": t("累计节省与一次性投入（美元）", "Cumulative savings vs one-off investment (USD)"),
    "roi_investment": t("一次性投入", "One-off investment"),
    "roi_payback": t("回本", "Payback"),
    "roi_months": t("月份", "Months"),
    "plan_title": t("p90 时延随请求速率的变化（所选配置）", "p90 latency vs request rate (chosen configuration)"),
    "plan_ttft": t("TTFT p90（ms）", "TTFT p90 (ms)"),
    "plan_tpot": t("TPOT p90（ms）", "TPOT p90 (ms)"),
    "plan_note": t("整个服务的请求速率（req/s）；虚线：目标；竖线：输入的速率",
                   "Request rate of the whole service (req/s); dashed: target; vertical line: your rate"),
    "plan_candidates": t("备选配置", "Configurations compared"),
}

# The UI entries the page script needs (the status line), handed to it in the widget's data-text attribute.
PAGE_SCRIPT = ("static", "stale", "live", "invalid", "failed", "bug")
