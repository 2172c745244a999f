"""Operating-system plumbing for actors: CPU pinning, NUMA binding and the parent-death signal.

The parent-death signal keeps actors from outliving their launcher, even one killed by SIGKILL
(Linux only).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (even by SIGKILL)."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def cpu_map(requested: list[int], allowed: set[int], oversubscribe: bool = False) -> dict[int, int]:
    """Map the CPU ids a plan names onto the CPUs this process may use.

    Ids that are allowed keep their place; when any is not (a Kubernetes cpuset, a smaller machine),
    all requested ids map onto the allowed set in order, so no two requested CPUs share a core.

    Args:
        requested: Every CPU id the node's actors ask for.
        allowed: The CPUs available (``os.sched_getaffinity(0)``).
        oversubscribe: Allow fewer CPUs than requested, mapping round-robin (the caller must say so).

    Returns:
        Requested id → CPU to use.

    Raises:
        ValueError: When fewer CPUs are allowed than requested (two busy actors would share a core).

    Example:
        >>> cpu_map([0, 1], {0, 1, 2})
        {0: 0, 1: 1}
        >>> cpu_map([4, 5], {2, 3})
        {4: 2, 5: 3}
        >>> cpu_map([0, 1, 2], {0, 1}, oversubscribe=True)
        {0: 0, 1: 1, 2: 0}
    """
    wanted = sorted(set(requested))
    if set(wanted) <= allowed:
        return {cpu: cpu for cpu in wanted}
    if len(wanted) > len(allowed) and oversubscribe:
        pool = sorted(allowed)
        return {cpu: pool[i % len(pool)] for i, cpu in enumerate(wanted)}
    if len(wanted) > len(allowed):
        raise ValueError(f"the node's actors need {len(wanted)} cpus but only {len(allowed)} are available "
                         f"({sorted(allowed)}); two busy actors would share a core")
    return dict(zip(wanted, sorted(allowed), strict=False))


class Numa:
    """NUMA memory binding through libnuma, when the machine has it and more than one node."""

    def __init__(self) -> None:
        """Load libnuma if present."""
        self.lib = None
        path = ctypes.util.find_library("numa")
        if path:
            lib = ctypes.CDLL(path)
            if lib.numa_available() >= 0:
                self.lib = lib

    @property
    def nodes(self) -> int:
        """Number of NUMA nodes (1 when libnuma is absent)."""
        return int(self.lib.numa_max_node()) + 1 if self.lib is not None else 1

    def describe(self) -> str:
        """One line on what binding will do here."""
        if self.lib is None:
            return "libnuma not found: memory is not bound to numa nodes"
        if self.nodes == 1:
            return "single numa node: memory binding is not needed"
        return f"{self.nodes} numa nodes: each actor's memory is bound to its node"

    def bind(self, node: int | None) -> bool:
        """Prefer memory from ``node`` for this process (inherited across exec).

        Args:
            node: The NUMA node, or ``None`` to leave the policy alone.

        Returns:
            Whether a binding was applied.
        """
        if node is None or self.lib is None or self.nodes == 1 or node >= self.nodes:
            return False
        self.lib.numa_set_preferred(ctypes.c_int(node))
        return True


def pin(cpus: list[int]) -> None:
    """Restrict this process to ``cpus``."""
    os.sched_setaffinity(0, cpus)
