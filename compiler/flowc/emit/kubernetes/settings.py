"""Settings of the Kubernetes output, and the naming and labelling rules every object follows.

Documented defaults, the document's ``kubernetes:`` section and the command line are merged in that
order.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from flowc import __version__
from flowc.emit.settings import TargetSettings
from flowc.model.names import is_dns_label

#: Node label keys for each topology level (override with ``kubernetes.topology_keys``).
DEFAULT_TOPOLOGY_KEYS = {
    "host": "kubernetes.io/hostname",
    "rack": "topology.flowc.dev/rack",
    "zone": "topology.kubernetes.io/zone",
    "region": "topology.kubernetes.io/region",
}
DEFAULT_LAUNCHER_IMAGE = f"ghcr.io/flowc/flowc:{__version__}"
#: The Flow SDK's default task image.
DEFAULT_TASK_IMAGE = "nvidia/cuda:12.1.0-runtime-ubuntu22.04"
DEFAULT_GPU_LABEL = "nvidia.com/gpu.product"
DEFAULT_RDMA_RESOURCE = "rdma/ib"
GPU_RESOURCE = "nvidia.com/gpu"
#: Port of rank 0's rendezvous (torchrun's MASTER_PORT).
DIST_PORT = 29500
#: Memory each actor process may use beside its channels, and extra room in /dev/shm.
ACTOR_MEMORY_MIB = 256
SHM_HEADROOM_MIB = 64
HUGE_PAGE = 2 * 1024 * 1024
PLAN_MOUNT = "/etc/flowc"
MANAGED_BY = "flowc"
GROUP_LABEL = "flowc.dev/group"
#: The launcher container's port name for ``/metrics``, ``/healthz`` and ``/readyz`` (probes and PodMonitors use it).
METRICS_PORT_NAME = "metrics"
#: Liveness: the launcher answers ``/healthz`` while it supervises. A restart tears down the node's shared memory,
#: so only a minute of silence (6 probes, 10 s apart) counts as dead, not one slow answer.
LIVENESS_PROBE = {"initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 6}
#: Readiness: ``/readyz`` turns 200 once channels, actors and routes are up; polled often so the pod turns ready soon.
READINESS_PROBE = {"initialDelaySeconds": 2, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3}


class Settings(TargetSettings):
    """Everything the Kubernetes emitter may be told (the document's ``kubernetes:`` section, ``-n NAMESPACE``)."""

    namespace: str | None = None
    image: str = DEFAULT_LAUNCHER_IMAGE
    task_image: str = DEFAULT_TASK_IMAGE
    topology_keys: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_TOPOLOGY_KEYS))
    gpu_label: str = DEFAULT_GPU_LABEL
    rdma_resource: str = DEFAULT_RDMA_RESOURCE
    kueue: dict[str, str] = Field(default_factory=dict)
    #: ``podmonitor``: also emit a prometheus-operator PodMonitor per actor node.
    monitoring: Literal["none", "podmonitor"] = "none"
    part_of: str = "flowc"

    @classmethod
    def derive(cls, values: dict[str, Any], source: str) -> dict[str, Any]:
        """Complete the topology keys with the defaults and name the application after the source file.

        Example:
            >>> Settings.merged({"topology_keys": {"rack": "r"}}, {}, "My_App.yaml").part_of
            'my-app'
        """
        stem = source.rsplit(".", 1)[0].lower().replace("_", "-")
        part_of = re.sub(r"[^a-z0-9.-]", "-", stem).strip("-.")[:63].strip("-.") or "flowc"
        return {**values, "topology_keys": {**DEFAULT_TOPOLOGY_KEYS, **values.get("topology_keys", {})},
                "part_of": part_of}

    @property
    def kueue_queue(self) -> str | None:
        """The Kueue LocalQueue Jobs are labelled for, if any."""
        return self.kueue.get("queue")

    def metadata(self, name: str, labels: dict[str, str]) -> dict[str, Any]:
        """Object metadata: name, namespace when set, labels."""
        meta: dict[str, Any] = {"name": name, "labels": labels}
        if self.namespace:
            meta["namespace"] = self.namespace
        return meta

    def labels(self, instance: str, component: str) -> dict[str, str]:
        """The standard ``app.kubernetes.io`` labels of one task's or one node's objects."""
        return {
            "app.kubernetes.io/name": instance,
            "app.kubernetes.io/instance": instance,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": self.part_of,
            "app.kubernetes.io/managed-by": MANAGED_BY,
        }

    def service_host(self, service: str) -> str:
        """The DNS name other pods use for a Service (short when no namespace is set)."""
        return f"{service}.{self.namespace}.svc" if self.namespace else service


def k8s_name(identifier: str) -> str:
    """Turn a flowc identifier into a DNS-1123 name (``_`` becomes ``-``).

    Example:
        >>> k8s_name("data_node")
        'data-node'
    """
    return identifier.replace("_", "-")


def valid_dns_label(name: str) -> bool:
    """Whether ``name`` is a DNS-1123 label (what Services, Jobs and label values need).

    Example:
        >>> valid_dns_label("data-node"), valid_dns_label("node-"), valid_dns_label("a" * 64)
        (True, False, False)
    """
    return is_dns_label(name)


def mebibytes(size: int) -> str:
    """A memory quantity in whole MiB, rounded up.

    Example:
        >>> mebibytes(64 * 1024 * 1024 + 1)
        '65Mi'
    """
    return f"{-(-size // (1024 * 1024))}Mi"
