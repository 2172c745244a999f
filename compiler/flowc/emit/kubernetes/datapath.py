"""Actor nodes as Kubernetes objects: a plan ConfigMap, a pinned Deployment and a routes Service.

Per node: a ConfigMap with its plan slice, a one-replica Deployment pinned to the node's hostname
that runs ``flowc launch``, and, for a node that receives routes, a Service with one port per route. The launcher
serves ``/metrics``, ``/healthz`` and ``/readyz`` on the node's metrics port (it reads the port from its plan
slice), which the container names ``metrics``: the liveness and readiness probes call it, the pod carries the
``prometheus.io/*`` scrape annotations, and with ``monitoring: podmonitor`` a PodMonitor selects the pod. A node
with authenticated routes mounts the Secret ``<node>-route-keys`` (made by ``flowc keys generate``, never by the
build: :func:`route_keys_secret`) read-only at ``KEYS_MOUNT``; until it exists the pod waits to start.

The pod is Guaranteed QoS with an integer CPU count equal to the CPUs its actors ask for, so the
kubelet's static CPU manager gives it exclusive cores; Kubernetes cannot name CPU ids, so the
launcher maps the plan's ids onto the cores it receives. ``/dev/shm`` is a memory-backed emptyDir
sized to the node's channel buffers plus ``SHM_HEADROOM_MIB``; channels that ask for huge pages are
served from ``hugepages-2Mi`` instead.
"""

from __future__ import annotations

import base64
from typing import Any

from flowc.emit.kubernetes.names import KEYS_SUFFIX, PLAN_KEY, PLAN_SUFFIX, ROUTES_SUFFIX
from flowc.emit.kubernetes.settings import (
    ACTOR_MEMORY_MIB,
    HUGE_PAGE,
    LIVENESS_PROBE,
    METRICS_PORT_NAME,
    PLAN_MOUNT,
    READINESS_PROBE,
    SHM_HEADROOM_MIB,
    Settings,
    mebibytes,
)
from flowc.model.keys import KEYS_ENV, node_files
from flowc.model.node_view import SHM_DIR
from flowc.model.plan import NodePlan, Plan

MIB = 1024 * 1024
#: Where a launcher pod finds its route keys (beside, not inside, the read-only plan mount).
KEYS_MOUNT = "/etc/flowc-keys"
#: The metrics endpoint's scrape path, as the launcher and ``flowc metrics`` serve it.
METRICS_PATH = "/metrics"


def shm_bytes(node: NodePlan) -> int:
    """Bytes of ``/dev/shm`` a node needs: its ordinary channel buffers plus the headroom."""
    return sum(c.buffer_size for c in node.channels.values() if not c.huge_pages) + SHM_HEADROOM_MIB * MIB


def huge_page_bytes(node: NodePlan) -> int:
    """Bytes of 2 MiB huge pages a node needs: each huge-page channel rounded up to whole pages."""
    return sum(-(-c.buffer_size // HUGE_PAGE) * HUGE_PAGE for c in node.channels.values() if c.huge_pages)


def route_ports(plan: Plan, node: str) -> list[tuple[str, int]]:
    """``(route, port)`` of every route that delivers into ``node``, by port."""
    return sorted(((name, r.port) for name, r in plan.routes.items() if node in r.targets), key=lambda x: x[1])


def node_objects(part: Plan, node: str, name: str, settings: Settings) -> list[dict[str, Any]]:
    """Build the ConfigMap, Deployment, (when it receives routes) Service and (when asked) PodMonitor of one node.

    Args:
        part: The node's slice of the plan (what its launcher reads, see :meth:`Plan.slices`).
        node: The node's flowc name.
        name: The node's Kubernetes name.
        settings: The output settings.

    Returns:
        The objects.
    """
    info = part.nodes[node]
    labels = settings.labels(name, "datapath")
    selector = {"app.kubernetes.io/instance": name, "app.kubernetes.io/component": "datapath"}
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": settings.metadata(name + PLAN_SUFFIX, labels),
        "data": {PLAN_KEY: part.to_compact_json()},
    }
    cpus = sum(len(actor.cpus) for actor in info.actors.values()) + len(info.bridge_cpus)
    shm = shm_bytes(info)
    memory = mebibytes(shm + ACTOR_MEMORY_MIB * MIB * max(1, len(info.actors)))
    resources = {"cpu": str(max(1, cpus)), "memory": memory}
    mounts = [{"name": "plan", "mountPath": PLAN_MOUNT, "readOnly": True}, {"name": "dshm", "mountPath": SHM_DIR}]
    volumes: list[dict[str, Any]] = [
        {"name": "plan", "configMap": {"name": name + PLAN_SUFFIX}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": mebibytes(shm)}},
    ]
    huge = huge_page_bytes(info)
    if huge:
        resources["hugepages-2Mi"] = mebibytes(huge)
        mounts.append({"name": "hugepages", "mountPath": "/dev/hugepages"})
        volumes.append({"name": "hugepages", "emptyDir": {"medium": "HugePages-2Mi"}})
    env = [{"name": "FLOWC_NODE", "value": node}]
    if node_files(part.routes, node):
        env.append({"name": KEYS_ENV, "value": KEYS_MOUNT})
        mounts.append({"name": "route-keys", "mountPath": KEYS_MOUNT, "readOnly": True})
        volumes.append({"name": "route-keys", "secret": {"secretName": name + KEYS_SUFFIX, "defaultMode": 0o400}})
    ports = route_ports(part, node)
    metrics_port = info.metrics.port
    container: dict[str, Any] = {
        "name": "launcher",
        "image": settings.image,
        "command": ["flowc", "launch", f"{PLAN_MOUNT}/{PLAN_KEY}", "--node", node],
        "env": env,
        "ports": [{"name": f"r{port}", "containerPort": port, "protocol": "TCP"} for _, port in ports]
        + [{"name": METRICS_PORT_NAME, "containerPort": metrics_port, "protocol": "TCP"}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": METRICS_PORT_NAME}, **LIVENESS_PROBE},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": METRICS_PORT_NAME}, **READINESS_PROBE},
        "resources": {"limits": resources, "requests": dict(resources)},
        "volumeMounts": mounts,
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": settings.metadata(name, labels),
        "spec": {
            "replicas": 1,
            # Never two launchers on one node's shared memory: stop the old pod before starting the new.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**labels, "flowc.dev/node": name}, "annotations": {
                    "prometheus.io/scrape": "true", "prometheus.io/port": str(metrics_port),
                    "prometheus.io/path": METRICS_PATH}},
                "spec": {
                    "nodeSelector": {settings.topology_keys["host"]: info.hostname},
                    "containers": [container],
                    "volumes": volumes,
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
    }
    objects = [config, deployment]
    if ports:
        objects.append({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": settings.metadata(route_service(name), labels),
            "spec": {"selector": selector, "ports": [
                {"name": f"r{port}", "port": port, "targetPort": port, "protocol": "TCP"} for _, port in ports]},
        })
    if settings.monitoring == "podmonitor":
        objects.append(pod_monitor(name, selector, settings))
    return objects


def pod_monitor(name: str, selector: dict[str, str], settings: Settings) -> dict[str, Any]:
    """The prometheus-operator PodMonitor that scrapes one node's launcher.

    It lives in the node's namespace (the settings' one), where a PodMonitor selects pods by default.

    Args:
        name: The node's Kubernetes name (the PodMonitor's too).
        selector: The labels that select the node's pod (its Deployment's selector).
        settings: The output settings (namespace, labels).

    Returns:
        The object.

    Example:
        >>> monitor = pod_monitor("edge", {"app.kubernetes.io/instance": "edge"}, Settings(namespace="ops"))
        >>> monitor["metadata"]["namespace"], monitor["spec"]["podMetricsEndpoints"]
        ('ops', [{'port': 'metrics', 'path': '/metrics'}])
    """
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": settings.metadata(name, settings.labels(name, "datapath")),
        "spec": {
            "selector": {"matchLabels": dict(selector)},
            "podMetricsEndpoints": [{"port": METRICS_PORT_NAME, "path": METRICS_PATH}],
        },
    }


def route_service(name: str) -> str:
    """Name of the Service through which a node receives its routes."""
    return name + ROUTES_SUFFIX


def route_keys_secret(name: str, files: dict[str, bytes], settings: Settings) -> dict[str, Any]:
    """The Secret holding one node's route keys, as the node's Deployment mounts it.

    Args:
        name: The node's Kubernetes name.
        files: File name → content, from ``flowc keys generate``.
        settings: The output settings (namespace, labels).

    Returns:
        The object.
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": settings.metadata(name + KEYS_SUFFIX, settings.labels(name, "route-keys")),
        "type": "Opaque",
        "data": {file: base64.b64encode(content).decode("ascii") for file, content in sorted(files.items())},
    }
