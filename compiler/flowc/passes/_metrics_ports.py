"""Each node's metrics endpoint: the port the document gives, or the next free one on its host.

Nodes that share a hostname share its ports, with each other's metrics endpoints and with the route receivers
listening there, so two launchers on one machine never fight over a port: defaults count up from
:data:`~flowc.model.plan.METRICS_PORT` past every port taken on that host, and a port the document gives twice on
one host is FLC344.
"""

from __future__ import annotations

import ipaddress

from flowc.model import ir
from flowc.model.context import Context
from flowc.model.plan import METRICS_ADDRESS, METRICS_PORT, MetricsPlan, RoutePlan


def metrics_endpoints(spec: ir.Spec, routes: dict[str, RoutePlan], ctx: Context) -> dict[str, MetricsPlan]:
    """Give every node its metrics address and port.

    Args:
        spec: The checked spec.
        routes: The resolved routes (their receivers listen on their port on each target's host).
        ctx: Collects FLC344 (a port taken twice on one host) and FLC208 (an address that is not an IP address).

    Returns:
        The endpoint of each node, by node name.
    """
    hosts = {node.name: node.hostname for node in spec.nodes}
    taken: dict[str, dict[int, str]] = {}
    for name, route in sorted(routes.items()):
        for target in route.targets:
            if target in hosts:
                taken.setdefault(hosts[target], {}).setdefault(route.port, f"route '{name}'")
    endpoints: dict[str, MetricsPlan] = {}
    for node in spec.nodes:
        address = node.metrics_address or METRICS_ADDRESS
        if node.metrics_address is not None and not _is_ip(node.metrics_address):
            ctx.error("FLC208", f"metrics address '{node.metrics_address}' of node '{node.name}' is not an IP "
                      "address", at=node.at("metrics"), help="give an IPv4 or IPv6 address, such as 0.0.0.0 or ::")
        if node.metrics_port is None:
            continue
        used = taken.setdefault(node.hostname, {})
        if node.metrics_port in used:
            ctx.error("FLC344", f"metrics port {node.metrics_port} of node '{node.name}' is already taken on host "
                      f"'{node.hostname}' by {used[node.metrics_port]}", at=node.at("metrics"),
                      help="give each node on one host its own metrics port, or leave it out to get a free one")
        used.setdefault(node.metrics_port, f"the metrics of node '{node.name}'")
        endpoints[node.name] = MetricsPlan(address=address, port=node.metrics_port)
    for node in spec.nodes:
        if node.name in endpoints:
            continue
        used = taken.setdefault(node.hostname, {})
        port = METRICS_PORT
        while port in used:
            port += 1
        used[port] = f"the metrics of node '{node.name}'"
        endpoints[node.name] = MetricsPlan(address=node.metrics_address or METRICS_ADDRESS, port=port)
    return {node.name: endpoints[node.name] for node in spec.nodes}


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
