"""What the site search must list first, per language: the table tests/browser/test_search.py types in.

One row per query: (query, where the first result must lead). `where` is a path under the language's root
(中文 "/", English "/en/"): "ch03/#latency" means the first result is chapter 3 and, within it, the section
with id "latency" ranks first; "calculators/vram/" means the first result is that page, whichever of its
sections ranks first.

When a chapter lands, add its key terms in both languages. A glossary term should lead to the section that
defines it: where the term is in **bold** (or a heading that begins with it); until a chapter defines it, to
its row in the glossary ("glossary/#<row id>"). hooks/search_index.py explains how.
"""

from __future__ import annotations

SEARCHES: dict[str, list[tuple[str, str]]] = {
    "zh": [
        ("算术强度", "ch03/#why-decode-is-slow"),
        ("首 token 时间", "ch03/#latency"),
        ("首token时间", "ch03/#latency"),
        ("TTFT", "ch03/#latency"),
        ("TPOT", "ch03/#latency"),
        ("KV 缓存", "ch03/#attention"),
        ("kv cache", "ch03/#attention"),  # the English term on a Chinese page
        ("预填充", "ch03/#prefill"),
        ("prefill", "ch03/#prefill"),
        ("解码", "ch03/#decode"),
        ("受带宽限制", "ch03/#why-decode-is-slow"),
        ("因果掩码", "ch03/#attention"),
        ("有效吞吐", "ch03/#throughput"),
        ("MBU", "ch03/#utilization"),
        ("量化", "ch08/#why-quantize"),  # bold in 8.1 since chapter 8
        ("连续批处理", "ch07/#continuous"),
        ("显存计算器", "calculators/vram/"),
        ("容量规划", "calculators/planner/"),
        ("离散事件模拟", "calculators/planner/#how-it-works"),
        ("投资回报", "glossary/#roi"),  # the glossary row defines ROI and points to the calculator
        # chapter 1
        ("Klarna", "ch01/"),
        ("盈亏平衡请求量", "glossary/#break-even"),
        ("开放权重模型", "ch01/"),
        # chapter 2
        ("效率矩阵", "ch02/#efficiency-matrix"),
        ("决策树", "ch02/#decision-tree"),
        ("显存容量", "ch02/#memory-capacity"),
        ("主机开销", "ch02/#scheduling"),
        ("压测", "ch02/#load-testing"),
        ("引擎参数", "ch02/#engine-knobs"),
        ("冷启动", "ch02/#engine-knobs"),
        # chapter 4
        ("张量核心", "ch04/"),
        ("寄存器堆", "glossary/#register-file"),
        ("降频原因", "glossary/#clock-event-reasons"),
        ("DCGM", "ch04/"),
        # chapter 5
        ("vllm serve", "ch05/"),
        ("驱动", "ch05/"),
        # chapter 7
        ("静态批处理", "ch07/#static"),
        ("选择性批处理", "ch07/#continuous"),
        ("分块预填充", "ch07/#chunked-prefill"),
        ("token 预算", "ch07/#token-budget"),
        ("队头阻塞", "ch07/#policies"),
        ("预填充与解码分离", "ch07/#disaggregation"),
        # chapter 8
        ("四舍五入量化", "ch08/#why-quantize"),
        ("缩放因子", "ch08/#why-quantize"),
        ("GPTQ", "ch08/#gptq"),
        ("AWQ", "ch08/#awq"),
        ("SmoothQuant", "ch08/#smoothquant"),
        ("离群特征", "ch08/#llm-int8"),
        ("量化感知训练", "ch08/#qat"),
        ("KL 散度", "ch08/#evidence"),
        ("NF4", "ch08/#bits-per-parameter"),
        # chapter 11
        ("FlashAttention", "ch11/#flashattention"),
        ("FlashInfer", "ch11/#flashinfer"),
        ("拆分 KV", "ch11/#flash-decoding"),
        ("共享专家", "ch11/#routing"),
        ("全对全通信", "ch11/#expert-parallelism"),
        ("KV 墙", "ch11/#kv-wall"),
        ("环形注意力", "ch11/#ring-attention"),
        ("上下文缓存", "ch11/#context-caching"),
        ("RoPE 缩放", "ch11/#rope-scaling"),
        # chapter 10
        ("启动探针", "ch10/#deployment"),
        ("优雅退出", "ch10/#deployment"),
        ("协调遗漏", "glossary/#coordinated-omission"),
        ("消耗速率", "glossary/#burn-rate"),
        ("滚动更新", "ch10/#rollouts"),
        ("竞价实例", "glossary/#spot-instance"),
        ("错误预算", "glossary/#error-budget"),
        ("缩容到零", "ch10/#traffic-classes"),
        # chapter 9
        ("投机采样", "ch09/#overview"),
        ("接受率", "ch09/#tokens-per-call"),
        ("草稿长度", "ch09/#why-it-works"),
        ("平均接受长度", "ch09/#tokens-per-call"),
        ("树注意力", "ch09/#medusa"),
        ("提示查找解码", "ch09/#prompt-lookup"),
        ("自投机解码", "ch09/#self-speculation"),
        ("多 token 预测", "ch09/#mtp"),
    ],
    "en": [
        ("arithmetic intensity", "ch03/#why-decode-is-slow"),
        ("Arithmetic Intensity", "ch03/#why-decode-is-slow"),
        ("time to first token", "ch03/#latency"),
        ("TTFT", "ch03/#latency"),
        ("KV cache", "ch03/#attention"),
        ("prefill", "ch03/#prefill"),
        ("decode", "ch03/#decode"),
        ("memory-bound", "ch03/#why-decode-is-slow"),
        ("memory bound", "ch03/#why-decode-is-slow"),
        ("causal mask", "ch03/#attention"),
        ("goodput", "ch03/#throughput"),
        ("MBU", "ch03/#utilization"),
        ("roofline", "ch04/#method"),  # stemmed index, unstemmed query: 0 results before; bold in 4.5
        ("intensity", "glossary/#arithmetic-intensity"),
        ("quantization", "ch08/#why-quantize"),  # bold in 8.1 since chapter 8
        ("continuous batching", "ch07/#continuous"),
        ("VRAM calculator", "calculators/vram/"),
        ("capacity planner", "calculators/planner/"),
        ("discrete-event simulation", "calculators/planner/#how-it-works"),
        ("ROI", "calculators/roi/"),
        # chapter 1
        ("break-even", "ch01/"),
        ("blended price", "glossary/#blended-price"),
        ("open-weight", "ch01/"),
        # chapter 2
        ("efficiency matrix", "ch02/#efficiency-matrix"),
        ("decision tree", "ch02/#decision-tree"),
        ("host overhead", "ch02/#scheduling"),
        ("load testing", "ch02/#load-testing"),
        ("engine settings", "ch02/#engine-knobs"),
        ("cold start", "ch02/#engine-knobs"),
        # chapter 4
        ("Tensor Core", "glossary/#tensor-core"),
        ("launch-bound", "glossary/#launch-bound"),
        ("occupancy", "glossary/#occupancy"),
        ("clock event reasons", "glossary/#clock-event-reasons"),
        # chapter 5
        ("NVIDIA Container Toolkit", "ch05/"),
        ("vllm bench serve", "labs/ch05-env-check/"),
        ("minor version compatibility", "ch05/"),
        # chapter 7
        ("static batching", "ch07/#static"),
        ("selective batching", "ch07/#continuous"),
        ("chunked prefill", "ch07/#chunked-prefill"),
        ("token budget", "ch07/#token-budget"),
        ("head-of-line blocking", "ch07/#policies"),
        ("prefill-decode disaggregation", "ch07/#disaggregation"),
        # chapter 8
        ("round-to-nearest", "ch08/#why-quantize"),
        ("scale factor", "ch08/#why-quantize"),
        ("GPTQ", "ch08/#gptq"),
        ("AWQ", "ch08/#awq"),
        ("SmoothQuant", "ch08/#smoothquant"),
        ("outlier features", "ch08/#llm-int8"),
        ("quantization-aware training", "ch08/#qat"),
        ("KL divergence", "ch08/#evidence"),
        ("mixed-precision GEMM", "ch08/#kernels"),
        ("NF4", "ch08/#bits-per-parameter"),
        # chapter 11
        ("FlashAttention", "ch11/#flashattention"),
        ("FlashInfer", "ch11/#flashinfer"),
        ("split-KV", "ch11/#flash-decoding"),
        ("shared expert", "ch11/#routing"),
        ("top-k routing", "ch11/#routing"),
        ("KV wall", "ch11/#kv-wall"),
        ("ring attention", "ch11/#ring-attention"),
        ("context caching", "ch11/#context-caching"),
        ("RoPE scaling", "ch11/#rope-scaling"),
        # chapter 10
        ("startup probe", "ch10/#deployment"),
        ("graceful shutdown", "ch10/#deployment"),
        ("coordinated omission", "glossary/#coordinated-omission"),
        ("burn rate", "glossary/#burn-rate"),
        ("rolling update", "glossary/#rolling-update"),
        ("spot instances", "glossary/#spot-instance"),
        ("error budget", "glossary/#error-budget"),
        ("scale to zero", "ch10/#traffic-classes"),
        # chapter 9
        ("speculative decoding", "ch09/#overview"),
        ("acceptance rate", "ch09/#tokens-per-call"),
        ("target model", "ch09/#why-it-works"),
        ("draft length", "ch09/#why-it-works"),
        ("mean acceptance length", "ch09/#tokens-per-call"),
        ("tree attention", "ch09/#medusa"),
        ("prompt lookup decoding", "ch09/#prompt-lookup"),
        ("self-speculative decoding", "ch09/#self-speculation"),
        ("multi-token prediction", "ch09/#mtp"),
    ],
}
