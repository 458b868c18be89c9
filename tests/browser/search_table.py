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
        ("量化", "glossary/#quantization"),
        ("连续批处理", "glossary/#continuous-batching"),
        ("显存计算器", "calculators/vram/"),
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
        ("quantization", "glossary/#quantization"),
        ("continuous batching", "glossary/#continuous-batching"),
        ("VRAM calculator", "calculators/vram/"),
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
