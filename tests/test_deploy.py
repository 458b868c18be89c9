"""deploy/: the Kubernetes manifests against Kubernetes' JSON schemas (offline, kubernetes-validate), the KEDA
ScaledObject's shape, the Prometheus config and alert rules with promtool (where installed), and every metric the
Grafana dashboard and the alerts query against what the CPU vLLM server really exports (chapter 10's lab records
its /metrics in the committed run; tests/test_ch10_lab.py scrapes a live server)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.34.0"  # the schemas the manifests are checked against (kubernetes-validate ships them)
# custom resources (no schema in Kubernetes' own set) and adapter configuration (not a Kubernetes object)
NOT_K8S = {"scaledobject.yaml", "prometheus-adapter-rules.yaml"}
ALL_YAML = sorted((DEPLOY / "k8s").rglob("*.yaml"))
MANIFESTS = [p for p in ALL_YAML if p.name not in NOT_K8S]
CPU_RUN = ROOT / "docs" / "assets" / "labs" / "ch10-serving" / "data" / "ch10-cpu.json"
# The DCGM exporter's fields the dashboard and alerts may use: those enabled in dcgm-exporter's default counters
# (etc/default-counters.csv at commit 00d6d34), so they exist without a custom counters file
DCGM_FIELDS = {"DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK", "DCGM_FI_DEV_MEMORY_TEMP", "DCGM_FI_DEV_GPU_TEMP",
               "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
               "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_FB_FREE",
               "DCGM_FI_DEV_FB_USED",
               # profiling fields enabled by etc/dcp-metrics-included.csv, the file the GPU Operator's DaemonSet sets
               # as DCGM_EXPORTER_COLLECTORS (gpu-operator assets/state-dcgm-exporter/0900_daemonset.yaml)
               "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "DCGM_FI_PROF_DRAM_ACTIVE"}


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_manifest_matches_the_kubernetes_schema(path):
    kv = pytest.importorskip("kubernetes_validate")
    for doc in docs(path):
        kv.validate(doc, K8S_VERSION, strict=True)  # strict: an unknown (misspelt) field is an error


def test_the_manifests_fit_together():
    """Selectors match the pod labels, probes and ports agree, GPUs are requested as limits, the autoscalers point
    at the Deployment and never at CPU."""
    by_kind = {d["kind"]: d for p in ALL_YAML if p.name != "prometheus-adapter-rules.yaml" for d in docs(p)}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler",
            "PersistentVolumeClaim", "ScaledObject"} <= set(by_kind)
    dep = by_kind["Deployment"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        sel = by_kind[kind]["spec"]["selector"]
        assert (sel.get("matchLabels") or sel).items() <= labels.items()
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1 and "nvidia.com/gpu" not in c["resources"]["requests"]
    start = c["startupProbe"]
    assert start["periodSeconds"] * start["failureThreshold"] >= 600  # a model load of minutes
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert "replicas" not in dep["spec"]  # the autoscaler owns the count; apply must not reset it
    # graceful drain: the grace period covers the preStop sleep and vLLM's --shutdown-timeout (default 0 = abort)
    flags = dict(a.lstrip("-").split("=", 1) for a in c["args"] if a.startswith("--"))
    assert flags["shutdown-timeout"] == "$(SHUTDOWN_TIMEOUT)" and "max-num-queued-reqs" in flags
    drain = int(by_kind["ConfigMap"]["data"]["SHUTDOWN_TIMEOUT"])
    assert drain > 0 and pod["terminationGracePeriodSeconds"] >= c["lifecycle"]["preStop"]["sleep"]["seconds"] + drain
    assert any(v["name"] == "dshm" and v["emptyDir"]["medium"] == "Memory" for v in pod["volumes"])
    config = by_kind["ConfigMap"]["data"]
    for arg in c["args"]:  # every $(VAR) in the flags is defined by the ConfigMap
        for var in re.findall(r"\$\((\w+)\)", arg):
            assert var in config
    hpa = by_kind["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert all(m["type"] != "Resource" for m in hpa["metrics"])  # not CPU/memory utilisation
    served = {r["name"]["as"] for r in adapter_rules()}  # every HPA metric is one the adapter rules serve
    assert {m["pods"]["metric"]["name"] for m in hpa["metrics"]} == served
    keda = by_kind["ScaledObject"]
    assert keda["apiVersion"] == "keda.sh/v1alpha1" and keda["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    for trigger in keda["spec"]["triggers"]:
        assert trigger["type"] == "prometheus" and {"serverAddress", "query", "threshold"} <= set(trigger["metadata"])
    # cooldownPeriod only governs scaling to zero: the scale-down policy must be the HPA's behavior, as in hpa.yaml
    assert keda["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa["behavior"]
    # concurrency (running + waiting), not the queue alone, drives both autoscalers
    assert "num_requests_running" in keda["spec"]["triggers"][0]["metadata"]["query"]
    assert any("num_requests_running" in r["metricsQuery"] for r in adapter_rules())


def adapter_rules() -> list[dict]:
    path = DEPLOY / "k8s" / "autoscaling" / "hpa" / "prometheus-adapter-rules.yaml"
    return yaml.safe_load(path.read_text())["rules"]


def autoscaler_exprs() -> list[str]:
    keda = docs(DEPLOY / "k8s" / "autoscaling" / "keda" / "scaledobject.yaml")[0]
    out = [t["metadata"]["query"] for t in keda["spec"]["triggers"]]
    return out + [r[k] for r in adapter_rules() for k in ("seriesQuery", "metricsQuery")]


def scrape_jobs() -> dict[str, dict]:
    """job name -> {"file": scrape config, "labels": the target labels its relabelling adds}."""
    out = {}
    for name in ("prometheus.yml", "prometheus-k8s.yml"):
        for job in yaml.safe_load((DEPLOY / "prometheus" / name).read_text())["scrape_configs"]:
            added = {r["target_label"] for r in job.get("relabel_configs", []) if "target_label" in r}
            out[job["job_name"]] = {"file": name, "labels": {lb for lb in added if not lb.startswith("__")}}
    return out


# Labels the exporters put on their series: vLLM 0.32.0 (vllm/v1/metrics/loggers.py: model_name, engine,
# finished_reason, reason; histograms' le; prometheus-fastapi-instrumentator's handler, status, method) and the
# DCGM exporter (gpu, UUID, Hostname, device, modelName), plus Prometheus' own job and instance.
EXPORTED_LABELS = {"job", "instance", "le", "model_name", "engine", "finished_reason", "reason", "handler", "status",
                   "method", "gpu", "UUID", "Hostname", "device", "modelName"}


def selectors(expr: str) -> list[tuple[str, str, str]]:
    """(label, operator, value) of every matcher inside {...}, Grafana/adapter template matchers left out."""
    out = []
    for body in re.findall(r"\{([^{}]*)\}", expr):
        for m in re.finditer(r'(\w+)\s*(=~|!=|!~|=)\s*"([^"]*)"', body):
            out.append(m.groups())
    return out


def test_every_selector_matches_what_the_scrape_configs_produce():
    """Every job a dashboard panel, alert, KEDA trigger or adapter rule selects exists in a scrape config, and every
    label it selects or groups by is one the exporters or that job's relabelling produce (a KEDA query on a job
    that does not exist reads 0 and never scales)."""
    assert {"namespace", "pod"} <= scrape_jobs()["vllm-pods"]["labels"]  # prometheus-adapter maps series to pods
    check_selectors({"dashboard": dashboard_exprs(), "alerts": alert_exprs(), "autoscalers": autoscaler_exprs()})


def check_selectors(exprs: dict[str, list[str]]) -> None:
    jobs = scrape_jobs()
    known = EXPORTED_LABELS | jobs["vllm-pods"]["labels"]
    for where, group in exprs.items():
        for expr in group:
            for label, op, value in selectors(expr):
                if label == "job" and "$" not in value:
                    matched = [j for j in jobs if (re.fullmatch(value, j) if op == "=~" else j == value)]
                    assert matched, f"{where}: job {value!r} is not a scrape job ({sorted(jobs)}): {expr}"
                assert label in known, f"{where}: no series has label {label!r}: {expr}"
            for group_by in re.findall(r"\bby\s*\(([^)]*)\)", expr):
                for label in filter(None, (x.strip() for x in group_by.split(","))):
                    assert label.startswith("<<") or label in known, f"{where}: no series has label {label!r}"
    for expr in exprs.get("autoscalers", []):  # the autoscalers run in the cluster: they select the cluster's job
        assert 'job="vllm-pods"' in expr, expr


def test_the_selector_check_catches_a_wrong_job_or_label():
    with pytest.raises(AssertionError, match="not a scrape job"):
        check_selectors({"keda": ['sum(vllm:num_requests_waiting{job="vllm"}) + 0', 'sum(x{job="vllm-k8s"})']})
    with pytest.raises(AssertionError, match="no series has label"):
        check_selectors({"dashboard": ['sum by (kubernetes_pod_name) (vllm:num_requests_running{job="vllm"})']})


def promql_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\b(vllm:[A-Za-z0-9_:]+|DCGM_FI_[A-Z0-9_]+|http_requests_total)\b", expr))


def family(metric: str) -> str:
    """vllm:x_bucket / _sum / _count -> the histogram family the exposition's # TYPE line names (vLLM's
    multiprocess exposition names a counter's family with its _total suffix)."""
    return re.sub(r"_(bucket|sum|count)$", "", metric)


def dashboard_exprs() -> list[str]:
    dash = json.loads((DEPLOY / "grafana" / "vllm-dashboard.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def recorded() -> set[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def check_metrics_exist(families: list[str], bounds: dict[str, list[float]]) -> None:
    exported = set(families)
    used = set().union(*(promql_metrics(e) for e in dashboard_exprs() + alert_exprs() + autoscaler_exprs())) - recorded()
    vllm = {m for m in used if m.startswith(("vllm:", "http_"))}
    assert vllm, "the dashboard queries no vLLM metric"
    missing = sorted(m for m in vllm if family(m) not in exported)
    assert not missing, f"queried but not exported by the server: {missing}"
    assert {m for m in used if m.startswith("DCGM_")} <= DCGM_FIELDS
    # a share-under-threshold query is exact only at a bucket bound the server really has
    for expr in dashboard_exprs() + alert_exprs():
        for metric, le in re.findall(r'(vllm:[A-Za-z0-9_]+)_bucket\{[^}]*le="([^"]+)"', expr):
            assert float(le) in bounds[metric], f"{metric} has no bucket at le={le}: {bounds[metric]}"


def test_dashboard_and_alerts_query_what_the_committed_cpu_server_exported():
    if not CPU_RUN.exists():
        pytest.skip("no committed CPU run of chapter 10's lab yet")
    data = json.loads(CPU_RUN.read_text())
    check_metrics_exist(data["metric_families"], data["histogram_bounds"])


def test_dashboard_is_valid_grafana_json():
    dash = json.loads((DEPLOY / "grafana" / "vllm-dashboard.json").read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and dash["uid"]
    for p in dash["panels"]:
        assert p["targets"] and all(t["expr"].count("(") == t["expr"].count(")") for t in p["targets"])
        assert p["datasource"]["uid"] == "prometheus"  # the provisioned data source
    prov = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert prov["datasources"][0]["uid"] == "prometheus"


PROMTOOL = shutil.which("promtool")
NO_PROMTOOL = "promtool is not installed (Debian: apt-get install prometheus)"


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_alert_rules_pass_promtool():
    proc = subprocess.run([PROMTOOL, "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_slo_alerts_fire_on_traffic_that_breaks_the_slo():
    """deploy/prometheus/alerts_test.yml: 80 % of requests within the TTFT bound pages after 10 minutes, not before;
    the TPOT and up alerts stay quiet on traffic that meets them."""
    proc = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=DEPLOY / "prometheus",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-k8s.yml"])
def test_prometheus_config_passes_promtool(tmp_path, name):
    """The scrape configs as mounted (the rule file at /etc/prometheus/alerts.yml, here next to them)."""
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    text = (DEPLOY / "prometheus" / name).read_text().replace("/etc/prometheus/alerts.yml", "alerts.yml")
    (tmp_path / name).write_text(text)
    proc = subprocess.run([PROMTOOL, "check", "config", str(tmp_path / name)], capture_output=True,
                          text=True, timeout=60)
    if "kubernetes_sd_configs not found" in proc.stderr:  # Debian builds Prometheus without Kubernetes discovery
        pytest.skip("this promtool has no Kubernetes service discovery (Debian's build leaves it out)")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_file_wires_the_services():
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"vllm", "prometheus", "grafana", "dcgm-exporter"} <= set(services)
    # vllm/vllm-openai's ENTRYPOINT is ["vllm", "serve"] (vLLM's docker/Dockerfile): compose's `command` is appended
    # to it, so it must start at the model unless the file sets its own entrypoint
    vllm = services["vllm"]
    entry = vllm.get("entrypoint")
    assert entry in (None, ["vllm", "serve"])
    assert vllm["command"][0] not in ("vllm", "serve") and not vllm["command"][0].startswith("-"), vllm["command"]
    assert "--shutdown-timeout" in vllm["command"] and "--max-num-seqs" in vllm["command"]
    assert services["vllm"]["ipc"] == "host" and services["vllm"]["healthcheck"]["start_period"] == "600s"
    targets = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    hosts = {t.split(":")[0] for job in targets for sc in job.get("static_configs", []) for t in sc["targets"]}
    assert hosts <= set(services)  # every static target is a compose service name
    for svc in ("prometheus", "grafana"):  # every mounted file exists in the repository
        for vol in services[svc]["volumes"]:
            src = vol.split(":")[0]
            assert (DEPLOY / "compose" / src).resolve().exists(), src


def test_the_metric_check_catches_a_misspelt_metric():
    families = ["vllm:time_to_first_token_seconds", "vllm:generation_tokens_total"]
    with pytest.raises(AssertionError, match="not exported"):
        check_metrics_exist(families, {"vllm:time_to_first_token_seconds": [0.5]})
