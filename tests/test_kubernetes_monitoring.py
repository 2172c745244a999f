"""The Kubernetes output's metrics side: probes, scrape annotations and PodMonitors the API server would accept.

PodMonitors are checked against the prometheus-operator CRD's own ``openAPIV3Schema`` (vendored in
``tests/schemas``, see its README), made strict the way ``kubectl apply --validate=strict`` treats a structural
schema: a field the schema does not name is an error, not silently pruned. Their metadata is checked against
``ObjectMeta`` of each Kubernetes version the other manifests are validated for.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from referencing import Registry, Resource

from flowc.cli import main
from flowc.model.options import BuildOptions
from flowc.pipeline import compile_source

from conftest import ROOT
from k8s_schema import VERSIONS, errors

SCHEMAS = ROOT / "tests" / "schemas"
CRD = SCHEMAS / "monitoring.coreos.com_podmonitors.yaml"
#: The prometheus-operator release the vendored CRD comes from (also in tests/schemas/README.md).
OPERATOR_VERSION = "0.93.0"
OBJECT_META = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
SOURCES = sorted((ROOT / "examples").glob("*.yaml")) + sorted((ROOT / "tests" / "golden").glob("*/input.yaml"))
DATAPATH_SOURCES = [p for p in SOURCES if "\nnodes:" in "\n" + p.read_text()]


def _strict(schema: Any) -> Any:
    """Close every object schema that names its properties and does not keep unknown fields."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def _crd() -> dict[str, Any]:
    return yaml.safe_load(CRD.read_text())


@functools.cache
def _podmonitor_validator(version: str) -> jsonschema.Draft202012Validator:
    crd = _crd()
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _strict(copy.deepcopy(served["schema"]["openAPIV3Schema"]))
    # The CRD leaves metadata to the API server, which checks it as ObjectMeta.
    schema["properties"]["metadata"] = {"$ref": OBJECT_META}
    schema["properties"]["apiVersion"]["enum"] = [f"{crd['spec']['group']}/v1"]
    schema["properties"]["kind"]["enum"] = [crd["spec"]["names"]["kind"]]
    schema["required"] = sorted({*schema.get("required", ()), "apiVersion", "kind", "metadata"})
    root = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{version}-local-strict"
    definitions = json.loads((root / "_definitions.json").read_text())
    return jsonschema.Draft202012Validator(schema, registry=Resource.from_contents(definitions) @ Registry())


def podmonitor_errors(obj: dict[str, Any], version: str) -> list[str]:
    """Every violation of ``obj`` against the strict PodMonitor CRD schema, with Kubernetes ``version``'s metadata."""
    return [f"PodMonitor {'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _podmonitor_validator(version).iter_errors(obj)]


def build(text: str, **options: str) -> dict[tuple[str, str], dict]:
    result = compile_source(text, "t.yaml", environ={}, until="artifacts",
                            options=BuildOptions(target_options={"kubernetes": options}))
    assert result.artifacts is not None, result.diagnostics
    return {(obj["kind"], obj["metadata"]["name"]): obj
            for obj in (yaml.safe_load(a.content) for a in result.artifacts if "/" not in a.path)}


def launcher(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "launcher"
    return container


def node_plan(objects: dict[tuple[str, str], dict], name: str) -> tuple[str, dict]:
    """The flowc node name and its plan entry, from the node's ConfigMap (what its launcher reads)."""
    plan = json.loads(objects[("ConfigMap", f"{name}-plan")]["data"]["plan.json"])
    (node,) = [n for n in plan["nodes"] if n.replace("_", "-") == name]
    return node, plan["nodes"][node]


def test_vendored_crd_is_the_podmonitor_of_the_stated_release() -> None:
    crd = _crd()
    assert crd["kind"] == "CustomResourceDefinition" and crd["metadata"]["name"] == "podmonitors.monitoring.coreos.com"
    assert crd["metadata"]["annotations"]["operator.prometheus.io/version"] == OPERATOR_VERSION
    readme = (SCHEMAS / "README.md").read_text()
    assert f"`{CRD.name}`" in readme and f"v{OPERATOR_VERSION}" in readme


@pytest.mark.parametrize("source", DATAPATH_SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_node_gets_a_podmonitor_that_selects_its_pod_and_validates(source: Path) -> None:
    objects = build(source.read_text(), monitoring="podmonitor")
    deployments = {name for kind, name in objects if kind == "Deployment"}
    monitors = {name: obj for (kind, name), obj in objects.items() if kind == "PodMonitor"}
    assert deployments and set(monitors) == deployments
    for name, monitor in monitors.items():
        for version in VERSIONS:
            assert podmonitor_errors(monitor, version) == []
        deployment = objects[("Deployment", name)]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert monitor["spec"]["selector"] == deployment["spec"]["selector"]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert endpoint == {"port": "metrics", "path": "/metrics"}
        assert "metrics" in [p["name"] for p in launcher(deployment)["ports"]]
    for obj in objects.values():
        if obj["kind"] != "PodMonitor":
            for version in VERSIONS:
                assert errors(obj, version) == []


def test_podmonitor_validator_catches_a_broken_object() -> None:
    objects = build((ROOT / "examples" / "multi-node.yaml").read_text(), monitoring="podmonitor")
    monitor = copy.deepcopy(objects[("PodMonitor", "strategy-node")])
    monitor["spec"]["podMetricsEndpoints"][0]["scrapeEvery"] = "10s"  # unknown field
    monitor["metadata"]["labels"] = {"a": 1}  # a label value must be a string
    del monitor["spec"]["selector"]
    monitor["spec"]["podMetricsEndpoints"][0]["port"] = 9464  # the port is a name
    for version in VERSIONS:
        found = podmonitor_errors(monitor, version)
        assert len(found) == 4, found
        assert any("scrapeEvery" in e for e in found) and any("metadata.labels.a" in e for e in found)
        assert any("'selector' is a required property" in e for e in found)
        assert any("podMetricsEndpoints.0.port" in e for e in found)


def test_probes_and_scrape_annotations_use_the_plans_metrics_port() -> None:
    objects = build((ROOT / "examples" / "multi-node.yaml").read_text())
    names = sorted(name for kind, name in objects if kind == "Deployment")
    assert names == ["data-node", "strategy-node"]
    for name in names:
        deployment = objects[("Deployment", name)]
        container = launcher(deployment)
        node, info = node_plan(objects, name)
        port = info["metrics"]["port"]
        assert port == 9464, "each node is alone on its host: the default port"
        assert {"name": "metrics", "containerPort": port, "protocol": "TCP"} in container["ports"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        liveness = container["livenessProbe"]
        # A restart tears the node's shared memory down: a minute of silence, not one slow answer, counts as dead.
        assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60
        assert container["readinessProbe"]["periodSeconds"] < liveness["periodSeconds"]
        assert container["command"] == ["flowc", "launch", "/etc/flowc/plan.json", "--node", node]
        assert deployment["spec"]["template"]["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics"}
    assert ("PodMonitor", "strategy-node") not in objects, "no PodMonitor unless 'monitoring: podmonitor'"
    strategy_ports = [p["name"] for p in launcher(objects[("Deployment", "strategy-node")])["ports"]]
    assert strategy_ports == ["r7400", "metrics"], "route ports stay, the metrics port joins them"


SHARED_HOST = """actors:
  a: {type: producer, outputs: [x]}
  b: {type: consumer, inputs: [x]}
  c: {type: producer, outputs: [y]}
  d: {type: consumer, inputs: [y]}
nodes:
  left: {hostname: box, actors: {a: {cpu: [0]}, b: {cpu: [1]}}}
  right: {hostname: box, actors: {c: {cpu: [2]}, d: {cpu: [3]}}}
  far: {hostname: other, metrics: {port: 9100}, actors: {}}
kubernetes: {monitoring: podmonitor, namespace: obs}
"""


def test_ports_follow_the_plan_when_nodes_share_a_host_or_set_their_own() -> None:
    objects = build(SHARED_HOST)
    seen = {}
    for name in ("left", "right", "far"):
        _, info = node_plan(objects, name)
        deployment = objects[("Deployment", name)]
        (metrics,) = [p for p in launcher(deployment)["ports"] if p["name"] == "metrics"]
        assert metrics["containerPort"] == info["metrics"]["port"]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(info["metrics"]["port"])
        seen[name] = info["metrics"]["port"]
        monitor = objects[("PodMonitor", name)]
        assert monitor["metadata"]["namespace"] == "obs"
        for version in VERSIONS:
            assert podmonitor_errors(monitor, version) == []
            assert errors(deployment, version) == []
    assert seen["far"] == 9100
    assert seen["left"] != seen["right"] and {seen["left"], seen["right"]} == {9464, 9465}


def test_podmonitor_files_are_named_like_the_others_and_builds_repeat_byte_for_byte(tmp_path: Path) -> None:
    source = tmp_path / "shared.yaml"
    source.write_text(SHARED_HOST)
    outputs = []
    for run in ("one", "two"):
        out = tmp_path / run
        result = CliRunner().invoke(main, ["build", str(source), "-o", str(out)])
        assert result.exit_code == 0, result.output
        outputs.append({p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()})
    assert outputs[0] == outputs[1]
    monitors = sorted(path for path in outputs[0] if path.startswith("podmonitor-"))
    assert monitors == ["podmonitor-far.yaml", "podmonitor-left.yaml", "podmonitor-right.yaml"]
    for path in monitors:
        obj = yaml.safe_load(outputs[0][path])
        assert path == f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def test_monitoring_setting_is_checked_by_the_schema(tmp_path: Path) -> None:
    source = tmp_path / "t.yaml"
    source.write_text(SHARED_HOST.replace("monitoring: podmonitor", "monitoring: servicemonitor"))
    result = CliRunner().invoke(main, ["build", str(source), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "error[FLC203] unknown 'monitoring' value 'servicemonitor'" in result.stderr
    assert "'none', 'podmonitor'" in result.stderr
    assert not (tmp_path / "out").exists()
    source.write_text(SHARED_HOST.replace("monitoring: podmonitor", "monitoring: none"))
    assert not [key for key in build(source.read_text()) if key[0] == "PodMonitor"]
