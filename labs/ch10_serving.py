"""Lab for chapter 10: load-test an OpenAI-compatible LLM server the way production traffic hits it, and read
its latency percentiles, throughput and goodput against an SLO as the request rate grows.

The load generator is written here (asyncio, no HTTP library): streaming /v1/completions requests whose send
times follow a Poisson process (exponential gaps, mean 1/rate) or bursts (groups of --burst-size requests at
once, groups spaced so the mean rate is the same); prompt and output lengths are uniform in
[len x (1 - r), len x (1 + r)] tokens (r = --range-ratio; the prompt is random token ids, sent as ids so the
server sees exactly that many; outputs ignore EOS). Each rate is bounded by --num-requests and --duration-s.
Per request: TTFT, chunk gaps (a client sees chunks; one chunk may carry several tokens, so its gaps are not the
engine's ITL), TPOT = (E2EL - TTFT)/(N - 1) with E2EL at the last token, the actual send time and its lag behind
the schedule; tokens per chunk come from the server's running usage counts (stream_options
continuous_usage_stats), so no logprobs are asked for. Per rate: p50/p90/p99, the realised offered rate, request
and output-token throughput and goodput (requests meeting every SLO) over the send window, the send lag, the
share of sub-millisecond chunk gaps, and the server's queue (running, waiting, KV-cache use) sampled every second.

Two ways to point it at a server:
  (default)   start vLLM here on chapter 5's tiny model (the CPU build from ./.venv-engine, or the CUDA build
              with --engine-python), sweep the rates, then run `vllm bench serve` at --bench-rate on the same
              server with the same lengths and compare; the server's own /metrics histograms over the lab's
              requests are the third view. The server is stopped on every path.
  --url URL   an already running server (your GPU vLLM with a real model); no server binary is needed here.
              The comparison with `vllm bench serve` runs only with --bench-python (an environment with vLLM)
              and --bench-tokenizer.

A server that stops answering mid-run ends the run with a clear error; the requests measured so far stay in the
JSON (status "failed: ...").

    python labs/ch10_serving.py --quick                       # tiny model, CPU vLLM, 2 rates (a few minutes)
    python labs/ch10_serving.py                               # tiny model, 5 rates + vllm bench serve
    python labs/ch10_serving.py --url http://127.0.0.1:8000 --rates 1,2,4,8,16 --num-requests 200 \\
        --input-len 1024 --output-len 256 --slo-ttft-ms 500 --slo-tpot-ms 50 --gpu-name "NVIDIA H100 80GB HBM3"
    python labs/ch10_serving.py --plot-only                   # re-render figures from <out>/data/
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import ch05_env_check as ch05
import common
import torch

LAB = "ch10-serving"
DEFAULT_OUT = common.REPO / "docs" / "assets" / "labs" / LAB
QUICK_OUT = common.REPO / "labs" / ".quick-out" / LAB
PERCENTILES = (50, 90, 99)
# vLLM's histograms whose sums and counts the lab reads before and after each rate (vllm/v1/metrics/loggers.py)
SERVER_HISTOGRAMS = ch05.METRICS


class ServerGone(RuntimeError):
    """The server stopped answering: the run ends, the requests measured so far are kept."""


# ---------------------------------------------------------------------------------------------------------
# Workload: arrival times and lengths


def uniform_lengths(rng: random.Random, n: int, mean: int, ratio: float) -> list[int]:
    lo, hi = max(1, int(mean * (1 - ratio))), max(1, int(round(mean * (1 + ratio))))
    return [rng.randint(lo, hi) for _ in range(n)]


def arrival_offsets(rng: random.Random, n: int, rate: float, arrival: str, burst_size: int) -> list[float]:
    """Send times (seconds from the start) of n requests at a mean of `rate` requests per second."""
    if arrival == "poisson":
        t, out = 0.0, []
        for _ in range(n):
            out.append(t)
            t += rng.expovariate(rate)
        return out
    # burst: groups of burst_size at the same instant, groups spaced burst_size / rate apart
    return [(i // burst_size) * burst_size / rate for i in range(n)]


def make_workload(n: int, rate: float, args, seed: int) -> list[dict]:
    rng = random.Random(seed)
    offsets = arrival_offsets(rng, n, rate, args.arrival, args.burst_size)
    ins = uniform_lengths(rng, n, args.input_len, args.range_ratio)
    outs = uniform_lengths(rng, n, args.output_len, args.range_ratio)
    lo, hi = 100, max(101, min(args.vocab_high, 30000))
    return [{"at_s": t, "prompt": [rng.randrange(lo, hi) for _ in range(i)], "max_tokens": max(2, o)}
            for t, i, o in zip(offsets, ins, outs, strict=True)]


# ---------------------------------------------------------------------------------------------------------
# A streaming HTTP/1.1 client on asyncio streams (chunked or close-delimited bodies)


async def _open(url: str, method: str, body: dict | None, timeout: float):
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise ValueError(f"only http:// URLs are supported, not {url!r}")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(u.hostname, u.port or 80), timeout)
    payload = json.dumps(body).encode() if body is not None else b""
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    head = (f"{method} {path} HTTP/1.1\r\nHost: {u.netloc}\r\nConnection: close\r\nUser-Agent: ch10-serving\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
    writer.write(head.encode() + payload)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout)
    if not status_line:
        writer.close()
        raise ConnectionError("the server closed the connection without answering")
    status = int(status_line.split()[1])
    headers = {}
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip().lower()
    return reader, writer, status, headers


async def _read(coro, deadline: float | None):
    """One read, bounded by the deadline (time.perf_counter() value): a server that keeps the connection open but
    stops sending ends the request with TimeoutError instead of hanging the run."""
    if deadline is None:
        return await coro
    left = deadline - time.perf_counter()
    if left <= 0:
        coro.close()
        raise TimeoutError("no complete answer within --request-timeout-s")
    try:
        return await asyncio.wait_for(coro, left)
    except asyncio.TimeoutError as e:
        raise TimeoutError("no complete answer within --request-timeout-s (the server stopped sending)") from e


async def _body(reader, headers, deadline: float | None = None):
    """The response body, piece by piece, as it arrives (each read bounded by the deadline)."""
    if "chunked" in headers.get("transfer-encoding", ""):
        while True:
            size_line = await _read(reader.readline(), deadline)
            if not size_line:
                raise ConnectionError("the connection closed in the middle of the response")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                return
            try:
                data = await _read(reader.readexactly(size + 2), deadline)
            except asyncio.IncompleteReadError as e:
                raise ConnectionError("the connection closed in the middle of a chunk") from e
            yield data[:-2]
    else:
        while data := await _read(reader.read(65536), deadline):
            yield data


async def http_get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    reader, writer, status, headers = await _open(url, "GET", None, timeout)
    try:
        parts = []
        async for piece in _body(reader, headers, time.perf_counter() + timeout):
            parts.append(piece)
        return status, b"".join(parts)
    finally:
        writer.close()


async def stream_request(base: str, model: str, req: dict, timeout: float) -> dict:
    """One streaming completion. Times are from when the request was sent. A chunk's token count is the change in
    the server's running completion_tokens (continuous usage stats): a chunk may carry several tokens, or bytes
    that do not yet form a whole UTF-8 character. No logprobs are requested, so the server does no extra work."""
    body = {"model": model, "prompt": req["prompt"], "max_tokens": req["max_tokens"], "temperature": 0,
            "stream": True, "ignore_eos": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    out = {"prompt_tokens": len(req["prompt"]), "max_tokens": req["max_tokens"]}
    t0 = time.perf_counter()
    deadline = t0 + timeout
    arrivals, counts, usage, done, seen = [], [], None, False, 0
    try:
        reader, writer, status, headers = await _open(base + "/v1/completions", "POST", body, timeout)
        try:
            if status != 200:
                text = b"".join([p async for p in _body(reader, headers, deadline)]).decode("utf-8", "replace")
                raise RuntimeError(f"HTTP {status}: {text[:200]}")
            buf = b""
            async for piece in _body(reader, headers, deadline):
                now = time.perf_counter() - t0
                buf += piece
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        done = True
                        continue
                    chunk = json.loads(payload)
                    if chunk.get("error"):  # vLLM reports a failure mid-stream as a data chunk, then [DONE]
                        err = chunk["error"]
                        raise RuntimeError(f"error chunk: {err.get('message', err) if isinstance(err, dict) else err}")
                    usage = chunk.get("usage") or usage
                    if chunk.get("choices"):
                        total = (chunk.get("usage") or {}).get("completion_tokens")
                        n = (total - seen) if total is not None else (1 if chunk["choices"][0].get("text") else 0)
                        seen = total if total is not None else seen + n
                        if n > 0:
                            arrivals.append(now)
                            counts.append(n)
        finally:
            writer.close()
        if not done:
            raise ConnectionError("the stream ended before [DONE]")
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"[:200]
    end = time.perf_counter() - t0
    n = (usage or {}).get("completion_tokens") or sum(counts)
    out.update({"output_tokens": n, "chunks": len(arrivals), "stream_end_s": end,
                "e2e_s": arrivals[-1] if arrivals else end})
    if "error" not in out and n != req["max_tokens"]:  # EOS is ignored: fewer tokens means a cut answer
        out["error"] = f"ShortAnswer: {n} of {req['max_tokens']} tokens"
    if arrivals:
        out["ttft_s"] = arrivals[0]
        out["itl_s"] = [round(b - a, 6) for a, b in zip(arrivals, arrivals[1:], strict=False)]
        out["tokens_per_chunk"] = counts
        if n > 1 and "error" not in out:
            out["tpot_s"] = (arrivals[-1] - arrivals[0]) / (n - 1)
    return out


QUEUE_GAUGES = {"running": "vllm:num_requests_running", "waiting": "vllm:num_requests_waiting",
                "kv_cache_usage": "vllm:kv_cache_usage_perc"}


async def _gauges(base: str) -> dict:
    status, body = await http_get(base + "/metrics", timeout=5)
    out: dict[str, float] = {}
    if status != 200:
        return out
    for line in body.decode("utf-8", "replace").splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        for key, metric in QUEUE_GAUGES.items():
            if name == metric:
                with contextlib.suppress(ValueError):
                    out[key] = out.get(key, 0.0) + float(line.rpartition(" ")[2])
    return out


async def run_rate(base: str, model: str, workload: list[dict], args, sample_queue: bool = True):
    """Send the workload on schedule (never after --duration-s), wait for the answers; (results, duration, queue
    samples). Each request records its scheduled and its actual send time: a client that falls behind its schedule
    would otherwise hide the lateness from every latency (coordinated omission)."""
    t_start = time.perf_counter()
    results: list[dict] = []
    samples: list[dict] = []
    stop = asyncio.Event()

    async def one(req):
        delay = req["at_s"] - (time.perf_counter() - t_start)
        if delay > 0:
            await asyncio.sleep(delay)
        sent = time.perf_counter() - t_start
        r = await stream_request(base, model, req, args.request_timeout_s)
        r["scheduled_at_s"] = req["at_s"]
        r["sent_at_s"] = sent
        r["send_lag_s"] = max(0.0, sent - req["at_s"])
        r["done_at_s"] = time.perf_counter() - t_start
        results.append(r)

    async def sampler():
        while not stop.is_set():
            with contextlib.suppress(Exception):
                g = await _gauges(base)
                if g:
                    samples.append({"t_s": round(time.perf_counter() - t_start, 3), **g})
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    tasks = [asyncio.create_task(one(req)) for req in workload if req["at_s"] <= args.duration_s]
    watcher = asyncio.create_task(sampler()) if sample_queue and not args.no_server_metrics else None
    try:
        await asyncio.gather(*tasks)
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        if watcher:
            with contextlib.suppress(Exception):
                await watcher
    return sorted(results, key=lambda r: r["sent_at_s"]), time.perf_counter() - t_start, samples


# ---------------------------------------------------------------------------------------------------------
# Summaries


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between order statistics (numpy's default, which `vllm bench serve` uses)."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


SUB_MS = 0.0005  # chunk gaps below this are delivery bunching (a decode step of any engine here takes longer)


def summarize(results: list[dict], duration_s: float, slo: dict) -> dict:
    """Percentiles over every completed request; rates over the send window (first to last actual send), so the
    drain after the last send does not dilute them: the realised offered rate is (sent - 1) / window, throughput
    and goodput count the requests that finished inside the window."""
    ok = [r for r in results if "error" not in r]
    out = {"sent": len(results), "completed": len(ok), "failed": len(results) - len(ok), "duration_s": duration_s}
    series = {"ttft": [r["ttft_s"] for r in ok if "ttft_s" in r], "tpot": [r["tpot_s"] for r in ok if "tpot_s" in r],
              "itl": [x for r in ok for x in r.get("itl_s", [])], "e2e": [r["e2e_s"] for r in ok]}
    for name, xs in series.items():
        out[f"mean_{name}_ms"] = sum(xs) / len(xs) * 1e3 if xs else None
        for q in PERCENTILES:
            v = percentile(xs, q)
            out[f"p{q}_{name}_ms"] = v * 1e3 if v is not None else None
    tokens = sum(r["output_tokens"] for r in ok)
    good = [r for r in ok if r.get("ttft_s", 1e9) * 1e3 <= slo["ttft_ms"]
            and r.get("tpot_s", 0.0) * 1e3 <= slo["tpot_ms"]]
    out.update({"output_tokens": tokens, "good": len(good), "good_share": len(good) / len(results) if results else None})
    sends = sorted(r["sent_at_s"] for r in results if "sent_at_s" in r)
    window = sends[-1] - sends[0] if len(sends) > 1 else 0.0
    if window > 0:
        t0, t1 = sends[0], sends[-1]
        inside = [r for r in ok if t0 <= r.get("done_at_s", -1) <= t1]
        out.update({"send_window_s": window, "offered_rps": (len(sends) - 1) / window,
                    "request_throughput": len(inside) / window,
                    "output_throughput": sum(r["output_tokens"] for r in inside) / window,
                    "goodput_rps": len([r for r in good if t0 <= r.get("done_at_s", -1) <= t1]) / window})
    else:  # a single send (or none): fall back to the whole run
        out.update({"send_window_s": window, "offered_rps": None,
                    "request_throughput": len(ok) / duration_s if duration_s else None,
                    "output_throughput": tokens / duration_s if duration_s else None,
                    "goodput_rps": len(good) / duration_s if duration_s else None})
    lags = [r["send_lag_s"] for r in results if "send_lag_s" in r]
    if lags:
        out["p99_send_lag_ms"] = percentile(lags, 99) * 1e3
        out["max_send_lag_ms"] = max(lags) * 1e3
    gaps = series["itl"]
    chunks = [c for r in ok for c in r.get("tokens_per_chunk", [])]
    out["sub_ms_gap_share"] = sum(g < SUB_MS for g in gaps) / len(gaps) if gaps else None
    out["mean_tokens_per_chunk"] = sum(chunks) / len(chunks) if chunks else None
    return out


def queue_summary(samples: list[dict]) -> dict:
    """Mean, p90 and max of each sampled gauge (running, waiting, KV-cache use) over one rate."""
    out = {"samples": len(samples)}
    for key in QUEUE_GAUGES:
        xs = [s[key] for s in samples if key in s]
        if xs:
            out.update({f"mean_{key}": sum(xs) / len(xs), f"p90_{key}": percentile(xs, 90), f"max_{key}": max(xs)})
    return out


def server_view(before: dict, after: dict) -> dict:
    """The server's own means over the requests between two scrapes of /metrics (its histograms' sums/counts)."""
    return ch05.metrics_delta(before, after)


def metric_families(text: str) -> list[str]:
    """The metric families a Prometheus text exposition holds (a histogram counts once, without _bucket/_sum)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
    return sorted(names)


def histogram_bounds(text: str) -> dict[str, list[float]]:
    """The bucket upper bounds (le) of each histogram family, as the server exports them: an alert on the share
    of requests under a threshold is exact only when the threshold is one of them."""
    import re

    out: dict[str, set] = {}
    for m in re.finditer(r'^([A-Za-z_:][\w:]*)_bucket\{[^}]*le="([^"]+)"', text, re.M):
        if m.group(2) != "+Inf":
            out.setdefault(m.group(1), set()).add(float(m.group(2)))
    return {k: sorted(v) for k, v in sorted(out.items())}


# ---------------------------------------------------------------------------------------------------------
# The sweep


async def _scrape(base: str) -> dict:
    status, body = await http_get(base + "/metrics")
    if status != 200:
        return {}
    text = body.decode("utf-8", "replace")
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        metric = name.split("{", 1)[0]
        for key, prefix in {**SERVER_HISTOGRAMS, "gen": "vllm:generation_tokens"}.items():
            for suffix in ("_sum", "_count", "_total"):
                if metric == prefix + suffix:
                    with contextlib.suppress(ValueError):
                        out[key + suffix] = out.get(key + suffix, 0.0) + float(value)
    return out


async def reachable(base: str) -> tuple[str, dict]:
    """The served model's name and the server's /version answer; a clear error when nobody answers."""
    try:
        status, body = await http_get(base + "/v1/models", timeout=10)
    except (OSError, asyncio.TimeoutError, ValueError) as e:
        raise ServerGone(f"cannot reach an OpenAI-compatible server at {base} ({type(e).__name__}: {e}); is it "
                         "running, and is the URL right (http://host:port, no /v1)?") from e
    if status != 200:
        raise ServerGone(f"{base}/v1/models answered HTTP {status}: not an OpenAI-compatible server?")
    models = [m["id"] for m in json.loads(body).get("data", [])]
    if not models:
        raise ServerGone(f"{base}/v1/models lists no model")
    version = {}
    with contextlib.suppress(Exception):
        status, body = await http_get(base + "/version", timeout=10)
        version = json.loads(body) if status == 200 else {}
    return models[0], version


def sweep(base: str, args, data: common.DataFile, proc=None) -> None:
    model, version = asyncio.run(reachable(base))
    data.doc["provenance"]["server"] = {"base_url": "local" if proc else base, "model": model, "version": version}
    print(f"  server: {model}, version {version.get('version', '?')}", flush=True)
    with contextlib.suppress(Exception):  # the metric families the server exports (the dashboard test reads them)
        status, body = asyncio.run(http_get(base + "/metrics"))
        text = body.decode("utf-8", "replace")
        data.doc["metric_families"] = metric_families(text)
        data.doc["histogram_bounds"] = histogram_bounds(text)
    slo = {"ttft_ms": args.slo_ttft_ms, "tpot_ms": args.slo_tpot_ms}
    data.doc["slo"] = slo
    if args.warmup:
        warm = make_workload(args.warmup, 1e9, args, seed=12345)
        asyncio.run(run_rate(base, model, warm, args, sample_queue=False))
    for i, rate in enumerate(args.rates):
        workload = make_workload(args.num_requests, rate, args, seed=args.seed + i)
        before = asyncio.run(_scrape(base)) if not args.no_server_metrics else {}
        results, duration, samples = asyncio.run(run_rate(base, model, workload, args))
        point = {"kind": "rate", "rate": rate, "arrival": args.arrival, **summarize(results, duration, slo),
                 "queue": queue_summary(samples), "requests": results}
        dead = proc is not None and proc.poll() is not None
        with contextlib.suppress(Exception):
            if not args.no_server_metrics and not dead:
                point["server"] = server_view(before, asyncio.run(_scrape(base)))
        data.doc["points"].append(point)
        data.write()
        p = point
        fmt = lambda v, d=0: "?" if v is None else f"{v:.{d}f}"  # noqa: E731
        print(f"  rate {rate:g}/s: {p['completed']}/{p['sent']} ok in {duration:.1f} s; TTFT p50 {fmt(p['p50_ttft_ms'])} "
              f"p99 {fmt(p['p99_ttft_ms'])} ms; TPOT p50 {fmt(p['p50_tpot_ms'], 1)} p99 {fmt(p['p99_tpot_ms'], 1)} ms; "
              f"{fmt(p['output_throughput'])} tok/s; goodput {fmt(p['goodput_rps'], 2)} req/s; waiting mean "
              f"{fmt(p['queue'].get('mean_waiting'), 1)}; send lag p99 {fmt(p.get('p99_send_lag_ms'), 1)} ms",
              flush=True)
        if (p.get("max_send_lag_ms") or 0) > 10:
            print(f"  warning: the client sent up to {p['max_send_lag_ms']:.0f} ms behind its schedule at {rate:g}/s: "
                  "it is short of CPU; run it on another host", flush=True)
        if dead or (p["sent"] and p["completed"] == 0):
            why = f"the server exited with code {proc.returncode}" if dead else \
                f"no request at {rate:g}/s completed ({results[0].get('error') if results else 'none sent'})"
            raise ServerGone(f"{why}; the {len(data.doc['points'])} rate(s) measured so far are kept in {data.path}")
        if p["failed"]:
            errors = sorted({r["error"] for r in results if "error" in r})
            alive = True
            try:
                asyncio.run(reachable(base))
            except ServerGone:
                alive = False
            if not alive or dead:
                raise ServerGone(f"the server stopped answering at {rate:g}/s ({errors[0]}); the requests measured so "
                                 f"far are kept in {data.path}")
            print(f"  warning: {p['failed']} request(s) failed: {errors[:3]}", flush=True)


BENCH_COMPARE = (("median_ttft_ms", "p50_ttft_ms"), ("mean_ttft_ms", "mean_ttft_ms"), ("median_tpot_ms", "p50_tpot_ms"),
                 ("mean_tpot_ms", "mean_tpot_ms"), ("p99_tpot_ms", "p99_tpot_ms"), ("median_e2el_ms", "p50_e2e_ms"),
                 ("mean_e2el_ms", "mean_e2e_ms"), ("request_throughput", "request_throughput"))


def bench_prompts(rate: float, args) -> int:
    """As many requests as the lab sends at that rate: rate x --duration-s, at most --num-requests."""
    return max(1, min(args.num_requests, round(rate * args.duration_s)))


def run_bench(python: str, base: str, model: str, tokenizer: str, env: dict, work: Path, args, seed: int = 0) -> dict:
    """`vllm bench serve` at --bench-rate (Poisson, its default burstiness 1) with the lab's lengths and SLOs."""
    cmd = ["bench", "serve", "--backend", "vllm", "--base-url", base, "--model", model,
           "--tokenizer", tokenizer, "--dataset-name", "random", "--random-input-len", str(args.input_len),
           "--random-output-len", str(args.output_len), "--random-range-ratio", str(args.range_ratio),
           "--num-prompts", str(bench_prompts(args.bench_rate, args)), "--request-rate", str(args.bench_rate),
           "--ignore-eos", "--seed", str(seed), "--disable-tqdm", "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles",
           "50,90,99", "--goodput", f"ttft:{args.slo_ttft_ms}", f"tpot:{args.slo_tpot_ms}",
           "--save-result", "--result-dir", str(work), "--result-filename", "bench.json"]
    shown = "vllm " + " ".join(cmd).replace(tokenizer, "<tokenizer>").replace(str(work), "<work>")
    print(f"  bench: {shown}", flush=True)
    import subprocess

    try:
        proc = subprocess.run([python, "-c", ch05.VLLM_LAUNCHER, *cmd], capture_output=True, text=True, env=env,
                              timeout=args.bench_timeout_s)
    except subprocess.TimeoutExpired:
        return {"command": shown, "error": f"no result after --bench-timeout-s {args.bench_timeout_s:.0f} s"}
    if proc.returncode != 0 or not (work / "bench.json").exists():
        return {"command": shown, "error": (proc.stderr or proc.stdout)[-600:]}
    full = json.loads((work / "bench.json").read_text())
    (work / "bench.json").unlink()
    keep = ("completed", "duration", "request_throughput", "output_throughput", "total_output_tokens",
            "request_goodput", "mean_ttft_ms", "median_ttft_ms", "p90_ttft_ms", "p99_ttft_ms", "mean_tpot_ms",
            "median_tpot_ms", "p90_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "median_itl_ms", "p99_itl_ms",
            "mean_e2el_ms", "median_e2el_ms", "p99_e2el_ms")
    return {"command": shown, **{k: full.get(k) for k in keep}}


def compare(bench: dict, lab: dict) -> dict:
    """Ratios lab / bench of the statistics both report; the tolerance the chapter states is checked in tests."""
    return {f"{mine}/{theirs}": (lab[mine] / bench[theirs]) if bench.get(theirs) and lab.get(mine) else None
            for theirs, mine in BENCH_COMPARE}


# ---------------------------------------------------------------------------------------------------------
# Figure: latency percentiles against achieved throughput, with the SLO lines; goodput against offered rate


def plot(data: dict, lang: str) -> dict:
    import matplotlib.pyplot as plt

    zh = lang == "zh"
    pts = sorted((p for p in data["points"] if p.get("kind") == "rate" and p.get("completed")), key=lambda p: p["rate"])
    if not pts:
        return {}
    slo = data.get("slo") or {}
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.5))
    x = [p["output_throughput"] for p in pts]
    for ax, metric, name, limit in ((axes[0], "ttft", "TTFT", slo.get("ttft_ms")),
                                    (axes[1], "tpot", "TPOT", slo.get("tpot_ms"))):
        for q, style in ((50, "-o"), (90, "--s"), (99, ":^")):
            ax.plot(x, [p[f"p{q}_{metric}_ms"] for p in pts], style, ms=4, lw=1.2, label=f"p{q}")
        if limit:
            ax.axhline(limit, color="#c62828", lw=1, ls="--")
            ax.annotate("SLO" if not zh else "SLO 上限", (x[0], limit), xytext=(2, 3), textcoords="offset points",
                        fontsize=8, color="#c62828")
        common.log_axis(ax, "y")
        for p, xv in zip(pts, x, strict=True):  # which offered rate each point is
            ax.annotate(f"{p['rate']:g}/s n={p['completed']}", (xv, p[f"p50_{metric}_ms"]), xytext=(3, 4),
                        textcoords="offset points", fontsize=6, color="#555")
        ax.set_xlabel("实际输出吞吐（token/s）" if zh else "achieved output throughput (tok/s)")
        ax.set_ylabel(f"{name}（ms）" if zh else f"{name} (ms)")
        ax.set_title(f"{name} 百分位与吞吐" if zh else f"{name} percentiles vs throughput", fontsize=9)
        ax.legend(fontsize=7)
    rates = [p["rate"] for p in pts]
    ax = axes[2]
    ax.plot(rates, [p.get("offered_rps") or p["rate"] for p in pts], color="#999", lw=1, ls=":", marker=".",
            label="实际到达率（请求/s）" if zh else "offered (realised)")
    ax.plot(rates, [p["request_throughput"] for p in pts], "-o", ms=4,
            label="完成吞吐（请求/s）" if zh else "completed (req/s)")
    ax.plot(rates, [p["goodput_rps"] for p in pts], "-s", ms=4, color="#2e7d32",
            label="有效吞吐（满足 SLO）" if zh else "goodput (meets SLO)")
    common.log_axis(ax, "x", ticks=rates, base=2)
    ax.set_xlabel("请求到达率（请求/s）" if zh else "offered request rate (req/s)")
    ax.set_ylabel("请求/s" if zh else "req/s")
    ax.set_title("有效吞吐随到达率变化" if zh else "Goodput vs offered rate", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    prov = data["provenance"]
    footer = ch05.engine_footer(prov, lang) if prov.get("engine") else common.describe_run(prov, lang)
    arrival = pts[0].get("arrival", "poisson")
    if zh:
        arrival = {"poisson": "泊松到达", "burst": "突发到达"}.get(arrival, arrival)
    footer += f" · {arrival} · SLO TTFT {slo.get('ttft_ms')} ms, TPOT {slo.get('tpot_ms')} ms"
    return {"latency": (fig, footer)}


# ---------------------------------------------------------------------------------------------------------
# Command line


def parse_args(argv):
    ap = common.lab_parser(__doc__, DEFAULT_OUT, QUICK_OUT)
    ap.add_argument("--url", help="an already running OpenAI-compatible server (http://host:port); default: start "
                                  "vLLM here on chapter 5's tiny model")
    ap.add_argument("--engine-python", help="Python with vLLM for the local server and the benchmark (default: as "
                                            "chapter 5's lab: this one if it has vLLM, else ./.venv-engine)")
    ap.add_argument("--rates", type=lambda text: common.float_list(text, positive=True), default=[1, 2, 4, 8], help="request rates to sweep (req/s)")
    ap.add_argument("--arrival", choices=("poisson", "burst"), default="poisson", help="arrival process")
    ap.add_argument("--burst-size", type=int, default=8, help="with --arrival burst: requests per burst")
    ap.add_argument("--num-requests", type=int, default=240, help="requests per rate (upper bound)")
    ap.add_argument("--duration-s", type=float, default=30, help="no request of a rate is sent after this many seconds")
    ap.add_argument("--input-len", type=int, default=64, help="mean prompt length (tokens)")
    ap.add_argument("--output-len", type=int, default=32, help="mean output length (tokens, EOS ignored)")
    ap.add_argument("--range-ratio", type=float, default=0.5, help="lengths uniform in [len(1-r), len(1+r)]")
    ap.add_argument("--vocab-high", type=int, default=2048, help="prompt token ids are drawn below this (and 30000)")
    ap.add_argument("--slo-ttft-ms", type=float, default=500, help="SLO on TTFT (this lab's example, not a standard)")
    ap.add_argument("--slo-tpot-ms", type=float, default=50, help="SLO on TPOT (this lab's example, not a standard)")
    ap.add_argument("--warmup", type=int, default=4, help="requests sent before the sweep, not measured")
    ap.add_argument("--seed", type=int, default=0, help="seed of arrivals, lengths and prompts")
    ap.add_argument("--request-timeout-s", type=float, default=120, help="give up on one request after this long")
    ap.add_argument("--bench-rate", type=float, help="also run `vllm bench serve` at this rate and compare (default: "
                                                     "the sweep's middle rate with a local server; none with --url)")
    ap.add_argument("--bench-python", help="with --url: a Python with vLLM to run `vllm bench serve`")
    ap.add_argument("--bench-tokenizer", help="with --url: the tokenizer `vllm bench serve` needs (hub id or path)")
    ap.add_argument("--bench-timeout-s", type=float, default=300, help="give up on the benchmark after this long")
    ap.add_argument("--bench-repeats", type=int, default=2, help="bench runs, each after a lab run at the same rate")
    ap.add_argument("--no-server-metrics", action="store_true", help="do not read the server's /metrics")
    ap.add_argument("--gpu-name", help="with --url: the server's GPU, for the data file's name and figure footer")
    ap.add_argument("--max-num-seqs", type=int, default=4, help="local server: vLLM --max-num-seqs (low, so that the "
                                                                 "CPU server saturates at a low rate)")
    ap.add_argument("--kv-cache-gib", type=int, default=1, help="local CPU server: VLLM_CPU_KVCACHE_SPACE (GiB)")
    ap.add_argument("--ready-timeout-s", type=float, default=600, help="local server: give up if not ready by then")
    ap.set_defaults(model_preset=None, dtype="bf16")
    args = ap.parse_args(argv)
    for option, value in (("--model", args.model), ("--model-preset", args.model_preset), ("--device", args.device),
                          ("--budget-s", args.budget_s)):
        if value is not None:
            ap.error(f"{option} does not apply to this lab: the server decides the model and the device "
                     "(--url, or the tiny model started here); each rate is bounded by --num-requests and --duration-s")
    if args.repredict:
        ap.error("--repredict does not apply to this lab: its data holds measurements only, no calc prediction")
    args = common.finish_lab_args(ap, args, {"rates": [2, 8], "num_requests": 16, "duration_s": 20, "warmup": 2,
                                             "bench_repeats": 1},
                                  DEFAULT_OUT, QUICK_OUT)
    args.device = None
    if args.num_requests < 1 or args.duration_s <= 0:
        ap.error("--num-requests must be at least 1 and --duration-s positive")
    if not 0 <= args.range_ratio < 1:
        ap.error("--range-ratio must be in [0, 1)")
    if args.output_len < 2 or args.input_len < 1:
        ap.error("--output-len must be at least 2 (TPOT needs two tokens), --input-len at least 1")
    if args.burst_size < 1:
        ap.error("--burst-size must be at least 1")
    if args.url:
        args.url = args.url.rstrip("/")
        if args.url.endswith("/v1"):
            args.url = args.url[:-3]
    elif args.gpu_name:
        ap.error("--gpu-name goes with --url (a local server's device is the engine's)")
    if args.bench_rate is None and not args.url:
        args.bench_rate = sorted(args.rates)[len(args.rates) // 2]
    return args


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.plot_only:
        return common.plot_only(args.out, LAB, plot)
    saved = {}
    with contextlib.suppress(ValueError):  # not the main thread
        for sig in (signal.SIGTERM, signal.SIGHUP):
            saved[sig] = signal.signal(sig, _exit_on_signal)
    try:
        return _main(args, argv)
    except ServerGone as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _main(args, argv) -> int:
    prov = common.provenance(LAB, Path(__file__).name, argv, torch.device("cpu"), args.note)
    prov["settings"] = {k: v for k, v in vars(args).items() if k not in ("out", "plot_only", "repredict", "note")
                        and v is not None}
    if args.url:
        prov["lab_software"] = prov["software"]
        if args.gpu_name:
            prov["device"] = {"kind": "cuda", "name": args.gpu_name}
            prov["calc_gpu_key"] = common.match_gpu(args.gpu_name)
        else:
            prov["device"] = {"kind": "remote", "name": "remote server"}
            prov["calc_gpu_key"] = None
        engine, info = args.bench_python, None
    else:
        engine = ch05.engine_python(args.engine_python)
        if engine is None:
            raise SystemExit("error: no vLLM engine here to start a server. CPU: bash scripts/setup_engine.sh; GPU: "
                             "start `vllm serve <model>` yourself and pass --url http://127.0.0.1:8000")
        info = ch05.probe_engine(engine)
        if not info.get("vllm_imports"):
            raise SystemExit(f"error: vLLM is not importable by {engine}: {info.get('vllm_import_error', '')[-300:]}")
        ch05.label_from_engine(prov, engine, info)
    data_path = args.out / "data" / f"{common.data_stem(prov)}.json"
    data = common.DataFile(data_path, prov)
    print(f"data: {data_path}", flush=True)
    with data.running():
        if args.url:
            sweep(args.url, args, data)
            if args.bench_rate and args.bench_python and args.bench_tokenizer:
                work = Path(tempfile.mkdtemp(prefix="ch10-bench-"))
                try:
                    bench_and_compare(args.bench_python, args.url, args.bench_tokenizer, dict(os.environ), work,
                                      args, data)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
        else:
            local_server(args, data, prov, engine, info)
    common.plot_safely(plot, data_path, args.out / "figures")
    return 130 if data.doc["status"] == "interrupted" else 0


def bench_and_compare(python: str, base: str, tokenizer: str, env: dict, work: Path, args, data) -> None:
    """`vllm bench serve` at --bench-rate, alternating with the lab at the same rate (lab in the sweep, bench, lab,
    bench, ... --bench-repeats times), each run with the server's own view of its requests (/metrics before and
    after): each tool is checked against the server on its own run, and each bench run against the lab run just
    before it, so the spread of the ratio shows how much of a difference is the machine's changing load."""
    model = data.doc["provenance"]["server"]["model"]
    slo = data.doc["slo"]
    lab = next((p for p in data.doc["points"] if p.get("kind") == "rate" and p["rate"] == args.bench_rate), None)
    for k in range(args.bench_repeats):
        if k:  # the lab again at the bench rate, between two bench runs
            n = bench_prompts(args.bench_rate, args)
            workload = make_workload(n, args.bench_rate, args, seed=args.seed + 1000 + k)
            before = {} if args.no_server_metrics else asyncio.run(_scrape(base))
            results, duration, samples = asyncio.run(run_rate(base, model, workload, args))
            lab = {"kind": "ab-lab", "rate": args.bench_rate, "repeat": k, **summarize(results, duration, slo),
                   "queue": queue_summary(samples), "requests": results}
            with contextlib.suppress(Exception):
                if before:
                    lab["server"] = server_view(before, asyncio.run(_scrape(base)))
            data.doc["points"].append(lab)
        before = {} if args.no_server_metrics else asyncio.run(_scrape(base))
        bench = run_bench(python, base, model, tokenizer, env, work, args, seed=k)
        point = {"kind": "bench", "rate": args.bench_rate, "repeat": k, "bench": bench}
        with contextlib.suppress(Exception):
            if before:
                point["server"] = server_view(before, asyncio.run(_scrape(base)))
        if lab and not bench.get("error"):
            point["lab_over_bench"] = compare(bench, lab)
            print(f"  lab / vllm bench serve at the same rate (pair {k}): " + ", ".join(
                f"{kk.split('/')[0]} {v:.2f}" for kk, v in point["lab_over_bench"].items() if v), flush=True)
        elif bench.get("error"):
            print(f"  bench failed: {bench['error'][-300:]}", flush=True)
        data.doc["points"].append(point)
        data.write()


def local_server(args, data, prov, python: str, info: dict) -> None:
    on_gpu = ch05.engine_on_gpu(info)
    work = Path(tempfile.mkdtemp(prefix="ch10-serve-"))
    model_dir = work / "tiny-llama"
    config = ch05.build_tiny_model(model_dir, 2048, "bfloat16")
    args.vocab_high = min(args.vocab_high, config["vocab_size"])
    prov["model"] = {"label": "tiny Llama (random weights, local BPE tokenizer)", "config": config,
                     "weights": "bfloat16", "random_weights": True, "params": config["params"]}
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1",
               VLLM_CACHE_ROOT=str(work / "vllm-cache"), TOKENIZERS_PARALLELISM="false")
    flags = ["--dtype", "bfloat16", "--max-model-len", "2048", "--max-num-seqs", str(args.max_num_seqs), "--seed", "0"]
    if not on_gpu:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(args.kv_cache_gib)
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    prov["engine"]["env"] = {k: v for k, v in sorted(env.items())
                             if k.startswith(("VLLM_", "CUDA_", "HF_", "OMP_")) and k != "VLLM_CACHE_ROOT"}
    port = ch05.free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = work / "server.log"
    try:
        with ch05.vllm_server(python, model_dir, port, log_path, env, flags) as (proc, cmd):
            prov["engine"]["command"] = " ".join(["vllm", *cmd[3:]]).replace(str(model_dir), "<tiny-llama>")
            ready = ch05.wait_ready(base, proc, args.ready_timeout_s)
            prov["engine"]["ready_s"] = ready
            print(f"  ready after {ready:.1f} s", flush=True)
            sweep(base, args, data, proc)
            if args.bench_rate:
                bench_and_compare(python, base, str(model_dir), env, work, args, data)
    finally:
        if log_path.exists():
            prov["engine"]["log"] = ch05.parse_log(log_path.read_text(errors="replace"))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
