"""Which route key files each node holds: its own keypair and the public keys of the nodes it talks to.

The names are shared by ``flowc keys generate`` (which writes them), the emitters (a Kubernetes Secret per
node, systemd's ``LoadCredential=`` per bridge unit) and the bridges (which read them), so all agree.
"""

from __future__ import annotations

from collections.abc import Mapping

from flowc.model.plan import RoutePlan

#: Where a node's keys are, when set (a Kubernetes Secret's mount, or ``flowc keys generate``'s output).
KEYS_ENV = "FLOWC_KEYS_DIR"


def secret_file(node: str) -> str:
    """The file name of ``node``'s keypair.

    Example:
        >>> secret_file("data_node")
        'data_node.key_secret'
    """
    return f"{node}.key_secret"


def public_file(node: str) -> str:
    """The file name of ``node``'s public key.

    Example:
        >>> public_file("data_node")
        'data_node.key'
    """
    return f"{node}.key"


def peers(routes: Mapping[str, RoutePlan], node: str) -> list[str]:
    """The nodes ``node`` exchanges authenticated routes with, sorted.

    Args:
        routes: The plan's routes (a node slice's are enough).
        node: The node.

    Returns:
        Its peers: targets of the routes it sends, sources of the routes it receives.
    """
    found: set[str] = set()
    for route in routes.values():
        if route.auth != "curve":
            continue
        if route.source_node == node:
            found.update(t for t in route.targets if t != node)
        elif node in route.targets:
            found.add(route.source_node)
    return sorted(found)


def node_files(routes: Mapping[str, RoutePlan], node: str) -> list[str]:
    """The key files ``node`` needs, sorted: its keypair and its peers' public keys (none without such routes).

    Example:
        >>> from flowc.model.plan import RoutePlan
        >>> feed = RoutePlan(source_node="edge", channel="ticks", targets=("core",), transport="tcp",
        ...                  compression="none", port=7400)
        >>> node_files({"feed": feed}, "core")
        ['core.key_secret', 'edge.key']
    """
    others = peers(routes, node)
    return sorted([secret_file(node), *map(public_file, others)]) if others else []
