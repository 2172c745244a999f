"""Shared-memory segments of a node: created from the layout, recorded, reclaimed after a crash.

The registry (``/dev/shm/<prefix>.registry``, JSON) names the launcher's pid and every segment it
created. A start that finds a registry whose launcher is gone removes what it lists first, so a
launcher killed with SIGKILL leaves nothing behind after the next start.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from flowc.diagnostics import UserError
from flowc.model.node_view import NodeView, shm_path


class AlreadyRunning(UserError):
    """Another live launcher owns this node's segments."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reclaim(layout: NodeView) -> list[str]:
    """Remove segments a dead launcher of this plan and node left behind.

    Args:
        layout: The node's layout.

    Returns:
        The segment names removed.

    Raises:
        AlreadyRunning: When the recorded launcher is still alive.
    """
    from flowc.runtime.ring import Ring

    try:
        with open(layout.registry, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        record = {}
    pid = int(record.get("launcher", 0) or 0)
    if pid and pid != os.getpid() and _alive(pid):
        raise AlreadyRunning(f"launcher {pid} is still running node '{layout.node}' of this plan")
    names = sorted(set(record.get("segments", [])) | {spec.name for spec in layout.rings.values()})
    removed = [name for name in names if os.path.exists(shm_path(name))]
    for name in names:
        Ring.unlink(name)
    _remove(layout.registry)
    shutil.rmtree(layout.report_dir, ignore_errors=True)
    return removed


def create(layout: NodeView) -> dict[str, Any]:
    """Create every ring of the node and record them.

    Args:
        layout: The node's layout.

    Returns:
        Channel name → the created ring.
    """
    from flowc.runtime.ring import Ring

    rings: dict[str, Any] = {}
    _record(layout, [])
    for channel, spec in sorted(layout.rings.items()):
        kwargs: dict[str, Any] = {"policy": spec.policy, "huge_pages": spec.huge_pages}
        if spec.spin_us is not None:
            kwargs["spin_us"] = spec.spin_us
        rings[channel] = Ring.create(spec.name, spec.buffer_size, spec.producers, spec.consumers, **kwargs)
        _record(layout, [rings_spec.name for ch, rings_spec in layout.rings.items() if ch in rings])
    return rings


def remove(layout: NodeView, rings: dict[str, Any]) -> None:
    """Close and remove the node's rings and its registry."""
    from flowc.runtime.ring import Ring

    for channel, ring in rings.items():
        ring.close()
        Ring.unlink(layout.rings[channel].name)
    for bridge in layout.bridges:
        _remove(layout.route_state(bridge.route))
    _remove(layout.registry)


def _record(layout: NodeView, segments: list[str]) -> None:
    tmp = f"{layout.registry}.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump({"launcher": os.getpid(), "node": layout.node, "segments": sorted(segments)}, handle)
    os.replace(tmp, layout.registry)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
