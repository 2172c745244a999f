"""The Kubernetes output: valid for the API server's schemas, and saying what the document says."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from flowc.cli import main
from flowc.model.options import BuildOptions
from flowc.pipeline import compile_source

from conftest import ROOT
from k8s_schema import VERSIONS, errors

SOURCES = sorted((ROOT / "examples").glob("*.yaml")) + sorted((ROOT / "tests" / "golden").glob("*/input.yaml"))


def build(text: str, **options: str) -> dict[tuple[str, str], dict]:
    result = compile_source(text, "t.yaml", environ={}, until="artifacts",
                            options=BuildOptions(target_options={"kubernetes": options}))
    assert result.artifacts is not None, result.diagnostics
    objects = {}
    for artifact in result.artifacts:
        if "/" not in artifact.path:
            obj = yaml.safe_load(artifact.content)
            objects[(obj["kind"], obj["metadata"]["name"])] = obj
    return objects


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_manifest_validates_strictly(source: Path) -> None:
    objects = build(source.read_text())
    assert objects or "tasks" not in source.read_text()
    for obj in objects.values():
        for version in VERSIONS:
            assert errors(obj, version) == []


def test_validator_catches_a_broken_object() -> None:
    obj = build((ROOT / "examples" / "llm-training.yaml").read_text())[("Job", "llm-training")]
    pod_spec(obj)["containers"][0]["cpuAffinity"] = "1"
    obj["spec"]["completions"] = "four"
    assert len(errors(obj, "1.33.0")) == 2


def test_llm_training_job() -> None:
    objects = build((ROOT / "examples" / "llm-training.yaml").read_text())
    job = objects[("Job", "llm-training")]
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 4
    spec = pod_spec(job)
    container = spec["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "8", "rdma/ib": "1"}
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert container["command"] == ["/bin/sh", "-c", "python train_llm.py"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["NUM_NODES"] == "4" and env["MASTER_ADDR"] == "llm-training-0.llm-training"
    index = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert env["NODE_RANK"] == {"fieldRef": {"fieldPath": index}}
    assert spec["subdomain"] == "llm-training"
    preferred = spec["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert preferred["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    service = objects[("Service", "llm-training")]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= job["spec"]["template"]["metadata"]["labels"].items()


def test_spread_lowers_to_spread_constraints_and_host_anti_affinity() -> None:
    spec = pod_spec(build((ROOT / "examples" / "inference-cluster.yaml").read_text())[("Job", "inference-cluster")])
    assert spec["topologySpreadConstraints"] == [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"flowc.dev/group": "inference-cluster"}}}]
    anti = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti == [{"labelSelector": {"matchLabels": {"flowc.dev/group": "inference-cluster"}},
                     "topologyKey": "kubernetes.io/hostname"}]
    assert spec["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}


@pytest.mark.parametrize(("constraints", "key"), [
    ("{same_zone: true}", "topology.kubernetes.io/zone"),
    ("{same_rack: true}", "topology.flowc.dev/rack"),
    ("{max_distance: rack}", "topology.flowc.dev/rack"),
    ("{max_distance: region}", "topology.kubernetes.io/region"),
])
def test_packed_requires_affinity_on_the_tightest_level(constraints: str, key: str) -> None:
    text = f"name: t\ninstance_type: 4xa100\nnum_instances: 2\ntopology: {{constraints: {constraints}}}\n"
    spec = pod_spec(build(text)[("Job", "t")])
    required = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required == [{"labelSelector": {"matchLabels": {"flowc.dev/group": "t"}}, "topologyKey": key}]


def test_cluster_anti_affinity_groups_overrides_and_kueue() -> None:
    text = """
name: t
instance_type: 8xh100
num_instances: 2
topology: {placement: cluster, constraints: {anti_affinity_groups: [batch, eval]}}
kubernetes:
  namespace: ml
  topology_keys: {zone: example.com/zone, host: example.com/host}
  kueue: {queue: team-a}
"""
    job = build(text)[("Job", "t")]
    spec = pod_spec(job)
    preferred = spec["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert preferred == {"weight": 100, "podAffinityTerm": {
        "labelSelector": {"matchLabels": {"flowc.dev/group": "t"}}, "topologyKey": "example.com/zone"}}
    anti = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti == [{"labelSelector": {"matchExpressions": [
        {"key": "flowc.dev/group", "operator": "In", "values": ["batch", "eval"]}]}, "topologyKey": "example.com/host"}]
    assert job["metadata"]["namespace"] == "ml"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert job["spec"]["template"]["metadata"]["annotations"] == {
        "kueue.x-k8s.io/podset-preferred-topology": "example.com/zone"}
    for version in VERSIONS:
        assert errors(job, version) == []


def test_datapath_pods_are_guaranteed_and_sized_from_channels() -> None:
    objects = build((ROOT / "examples" / "multi-node.yaml").read_text())
    strategy = objects[("Deployment", "strategy-node")]
    spec = pod_spec(strategy)
    resources = spec["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"], "Guaranteed QoS"
    assert resources["limits"]["cpu"] == "6", "flash_arbitrage 4 cpus + risk_monitor 2"
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": f"{64 + 16 + 64}Mi"}, "64MB + 16MB + headroom"
    assert spec["nodeSelector"] == {"kubernetes.io/hostname": "strategy-01.prod"}
    template_labels = strategy["spec"]["template"]["metadata"]["labels"]
    assert strategy["spec"]["selector"]["matchLabels"].items() <= template_labels.items()
    service = objects[("Service", "strategy-node-routes")]
    assert service["spec"]["ports"] == [{"name": "r7400", "port": 7400, "targetPort": 7400, "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= strategy["spec"]["template"]["metadata"]["labels"].items()
    assert ("Service", "data-node-routes") not in objects, "data_node receives no route"


def test_sender_slice_addresses_the_receiver_by_service_name() -> None:
    import json

    objects = build((ROOT / "examples" / "multi-node.yaml").read_text(), namespace="trading")
    sender = json.loads(objects[("ConfigMap", "data-node-plan")]["data"]["plan.json"])
    assert sender["peers"] == {"strategy_node": "strategy-node-routes.trading.svc"}
    assert list(sender["nodes"]) == ["data_node"] and list(sender["routes"]) == ["market_data_feed"]
    assert all(obj["metadata"]["namespace"] == "trading" for obj in objects.values())


def test_huge_pages() -> None:
    objects = build((ROOT / "examples" / "training-with-datapath.yaml").read_text())
    spec = pod_spec(objects[("Deployment", "feature-node")])
    limits = spec["containers"][0]["resources"]["limits"]
    assert limits["hugepages-2Mi"] == "32Mi", "the 32MiB 'raw' channel asks for huge pages"
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["sizeLimit"] == f"{128 + 64}Mi", "only 'tokens' lives in /dev/shm"
    assert {"name": "hugepages", "emptyDir": {"medium": "HugePages-2Mi"}} in spec["volumes"]


def test_name_collision_is_an_error_at_the_second_name(tmp_path: Path) -> None:
    source = tmp_path / "t.yaml"
    source.write_text("""actors:
  a: {type: producer, outputs: [x]}
  b: {type: consumer, inputs: [x]}
nodes:
  box_1: {hostname: h1, actors: {a: {cpu: [0]}}}
  box-1: {hostname: h2, actors: {b: {cpu: [0]}}}
inter_node:
  r: {source: box_1.x, targets: [box-1]}
""")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", str(source), "-o", str(out)])
    assert result.exit_code == 1
    assert f"{source}:6:3: error[FLC503] node 'box-1' becomes" in result.stderr
    assert not out.exists()


def test_every_top_level_file_is_one_kubernetes_object(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert CliRunner().invoke(main, ["build", str(ROOT / "examples" / "training-with-datapath.yaml"), "-o",
                                     str(out)]).exit_code == 0
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    assert files == ["configmap-feature-node-plan.yaml", "deployment-feature-node.yaml", "job-batch-eval.yaml",
                     "job-trainer.yaml", "service-batch-eval.yaml", "service-trainer.yaml"]
    for name in files:
        obj = yaml.safe_load((out / name).read_text())
        assert name == f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def test_namespace_option_is_validated(tmp_path: Path) -> None:
    source = str(ROOT / "examples" / "llm-training.yaml")
    bad = CliRunner().invoke(main, ["build", source, "-o", str(tmp_path / "o"), "--namespace", "Bad_NS"])
    assert bad.exit_code == 2 and "DNS-1123" in bad.output
    good = CliRunner().invoke(main, ["build", source, "-o", str(tmp_path / "o"), "-n", "ml-team"])
    assert good.exit_code == 0
    assert "namespace: ml-team" in (tmp_path / "o" / "job-llm-training.yaml").read_text()
