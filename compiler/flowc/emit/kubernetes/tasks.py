"""Tasks as Kubernetes objects: an Indexed Job per task plus a headless Service for rank 0's name.

Placement is lowered in the scheduler's own terms: ``packed`` → required pod affinity on the topology
key of the tightest level the constraints name (or a preferred host-level affinity when none);
``spread`` → topologySpreadConstraints (maxSkew 1, DoNotSchedule) plus required hostname
anti-affinity; ``cluster`` → preferred affinity within a zone; ``anti_affinity_groups`` → required
anti-affinity against pods of those groups. Optional Kueue topology-aware scheduling annotations.
"""

from __future__ import annotations

from typing import Any

from flowc.emit.kubernetes.settings import DIST_PORT, GPU_RESOURCE, GROUP_LABEL, Settings
from flowc.model.plan import TaskPlan

_RDMA = ("infiniband", "roce")


def task_objects(task: TaskPlan, name: str, settings: Settings) -> list[dict[str, Any]]:
    """Build the Service and the Job of one task.

    Args:
        task: The task, from the plan.
        name: Its Kubernetes name (the Job's and the Service's).
        settings: The output settings.

    Returns:
        ``[service, job]``.
    """
    labels = settings.labels(name, "task")
    pod_labels = {**labels, GROUP_LABEL: task.name}
    selector = {"app.kubernetes.io/instance": name, "app.kubernetes.io/component": "task"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": settings.metadata(name, labels),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector,
            "ports": [{"name": "dist", "port": DIST_PORT, "targetPort": DIST_PORT, "protocol": "TCP"}],
        },
    }
    pod_spec: dict[str, Any] = {
        "subdomain": name,
        "restartPolicy": "Never",
        "containers": [_container(task, name, settings)],
    }
    if task.instance.gpu_product:
        pod_spec["nodeSelector"] = {settings.gpu_label: task.instance.gpu_product}
    affinity, spread = _placement(task, settings)
    if affinity:
        pod_spec["affinity"] = affinity
    if spread:
        pod_spec["topologySpreadConstraints"] = spread
    template_meta: dict[str, Any] = {"labels": pod_labels}
    job_labels = dict(labels)
    if settings.kueue_queue:
        job_labels["kueue.x-k8s.io/queue-name"] = settings.kueue_queue
        annotation = _kueue_annotation(task, settings)
        if annotation:
            template_meta["annotations"] = dict([annotation])
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": task.num_instances,
        "parallelism": task.num_instances,
        "backoffLimit": 0,
        "template": {"metadata": template_meta, "spec": pod_spec},
    }
    if task.max_run_time_hours:
        job_spec["activeDeadlineSeconds"] = max(1, round(task.max_run_time_hours * 3600))
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": settings.metadata(name, job_labels), "spec": job_spec}
    return [service, job]


def _container(task: TaskPlan, name: str, settings: Settings) -> dict[str, Any]:
    head = f"{name}-0.{settings.service_host(name)}"
    env = [
        {"name": "NUM_NODES", "value": str(task.num_instances)},
        {"name": "NODE_RANK", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
        {"name": "GPU_COUNT", "value": str(task.instance.gpu_count)},
        {"name": "HEAD_NODE_IP", "value": head},
        {"name": "MASTER_ADDR", "value": head},
        {"name": "MASTER_PORT", "value": str(DIST_PORT)},
    ]
    reserved = {item["name"] for item in env}
    env += [{"name": key, "value": value} for key, value in sorted(task.env.items()) if key not in reserved]
    limits = {GPU_RESOURCE: str(task.instance.gpu_count)}
    if task.topology.internode in _RDMA and task.num_instances > 1:
        limits[settings.rdma_resource] = "1"
    container: dict[str, Any] = {
        "name": "main",
        "image": task.image or settings.task_image,
        "env": env,
        "ports": [{"name": "dist", "containerPort": DIST_PORT, "protocol": "TCP"}],
        "resources": {"limits": limits, "requests": dict(limits)},
    }
    if isinstance(task.command, str):
        container["command"] = ["/bin/sh", "-c", task.command]
    elif task.command:
        container["command"] = list(task.command)
    return container


def _term(group: str, key: str) -> dict[str, Any]:
    return {"labelSelector": {"matchLabels": {GROUP_LABEL: group}}, "topologyKey": key}


def _placement(task: TaskPlan, settings: Settings) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return the pod's affinity and its topology spread constraints."""
    topo = task.topology
    keys = settings.topology_keys
    affinity: dict[str, Any] = {}
    spread: list[dict[str, Any]] = []
    anti: list[dict[str, Any]] = []
    if topo.placement == "packed":
        if topo.distance:
            affinity["podAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [
                _term(task.name, keys[topo.distance])]}
        else:
            affinity["podAffinity"] = {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": _term(task.name, keys["host"])}]}
    elif topo.placement == "spread":
        # Inside a rack or zone the instances still spread over what is below it.
        if topo.same_rack:
            affinity["podAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [
                _term(task.name, keys["rack"])]}
        elif topo.same_zone:
            affinity["podAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [
                _term(task.name, keys["zone"])]}
            spread.append(_spread(task.name, keys["rack"]))
        else:
            spread.append(_spread(task.name, keys[topo.max_distance or "zone"]))
        anti.append(_term(task.name, keys["host"]))
    else:
        affinity["podAffinity"] = {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": _term(task.name, keys["zone"])}]}
    if topo.anti_affinity_groups:
        anti.append({"labelSelector": {"matchExpressions": [
            {"key": GROUP_LABEL, "operator": "In", "values": list(topo.anti_affinity_groups)}]},
            "topologyKey": keys["host"]})
    if anti:
        affinity["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": anti}
    return affinity, spread


def _spread(group: str, key: str) -> dict[str, Any]:
    return {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {GROUP_LABEL: group}}}


def _kueue_annotation(task: TaskPlan, settings: Settings) -> tuple[str, str] | None:
    topo = task.topology
    keys = settings.topology_keys
    if topo.placement == "packed" and topo.distance:
        return ("kueue.x-k8s.io/podset-required-topology", keys[topo.distance])
    if topo.placement == "packed":
        return ("kueue.x-k8s.io/podset-preferred-topology", keys["host"])
    if topo.placement == "cluster":
        return ("kueue.x-k8s.io/podset-preferred-topology", keys["zone"])
    return None
