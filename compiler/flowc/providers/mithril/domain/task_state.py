"""A task's state from its bid and instances, in the reference's mapping (pending … failed).

Mithril reports a bid status (``Open``, ``Allocated``, ``Preempting``, ``Terminated``, ``Paused``, and on the
status endpoint ``Relocating``) and an instance status per instance (``STATUS_NEW`` … ``STATUS_RUNNING`` …
``STATUS_ERROR``). The Flow SDK folds them into one task state; flowc does the same, refining an allocated bid by
its instances: any instance in error → ``failed``; any preempting or relocating → ``preempting``; all of the
bid's instances running → ``running``; otherwise ``provisioning``.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Task states, in the order a healthy task passes through them.
STATES = ("pending", "provisioning", "running", "preempting", "paused", "cancelled", "failed")
#: Bid statuses of a bid that still holds (or waits for) instances: at most one per task may exist.
LIVE_BID_STATUSES = frozenset({"Open", "Allocated", "Paused", "Preempting", "Relocating"})

_BID_STATES = {"open": "pending", "preempting": "preempting", "relocating": "preempting", "paused": "paused",
               "terminated": "cancelled", "replaced": "cancelled", "cancelled": "cancelled",
               "completed": "cancelled", "failed": "failed", "error": "failed"}
_INSTANCE_STATES = {"new": "provisioning", "confirmed": "provisioning", "initializing": "provisioning",
                    "starting": "provisioning", "running": "running", "preempting": "preempting",
                    "relocating": "preempting", "terminating": "preempting", "stopping": "preempting",
                    "paused": "paused", "terminated": "cancelled", "replaced": "cancelled", "preempted": "cancelled",
                    "stopped": "cancelled", "completed": "cancelled", "failed": "failed", "error": "failed"}


def instance_state(status: str) -> str:
    """The task state one instance status stands for (``STATUS_`` prefix and case ignored).

    Example:
        >>> instance_state("STATUS_RUNNING"), instance_state("STATUS_CONFIRMED"), instance_state("STATUS_ERROR")
        ('running', 'provisioning', 'failed')
    """
    word = status.lower().removeprefix("status_")
    return _INSTANCE_STATES.get(word, "provisioning")


def task_state(bid_status: str, instance_statuses: Sequence[str], quantity: int) -> str:
    """The task state of a bid with these instances.

    Args:
        bid_status: The bid's status.
        instance_statuses: Its instances' statuses.
        quantity: How many instances the bid asked for.

    Returns:
        One of :data:`STATES`.

    Example:
        >>> task_state("Open", [], 2)
        'pending'
        >>> task_state("Allocated", ["STATUS_RUNNING", "STATUS_STARTING"], 2)
        'provisioning'
        >>> task_state("Allocated", ["STATUS_RUNNING", "STATUS_RUNNING"], 2)
        'running'
        >>> task_state("Allocated", ["STATUS_RUNNING", "STATUS_ERROR"], 2)
        'failed'
    """
    word = bid_status.lower()
    if word != "allocated":
        return _BID_STATES.get(word, "pending")
    states = [instance_state(s) for s in instance_statuses]
    for worst in ("failed", "preempting"):
        if worst in states:
            return worst
    if states and len(states) >= quantity and all(s == "running" for s in states):
        return "running"
    return "provisioning"


def reached(state: str, wanted: str) -> bool:
    """Whether a task in ``state`` has reached ``wanted`` (``allocated`` or ``running``).

    Example:
        >>> reached("provisioning", "allocated"), reached("provisioning", "running"), reached("running", "running")
        (True, False, True)
    """
    if wanted == "allocated":
        return state in ("provisioning", "running", "preempting")
    return state == "running"


def ended(state: str) -> bool:
    """Whether a task in ``state`` will not get to run any more (cancelled or failed)."""
    return state in ("cancelled", "failed")
