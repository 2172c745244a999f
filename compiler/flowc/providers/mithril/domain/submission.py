"""What ``flowc submit`` would do: for each task, its wanted bid against its live one (pure; sends nothing).

Each task's action is one of:

* ``create``: no live bid of that name in the project;
* ``unchanged``: the live bid asks for the same thing at the same limit price;
* ``update``: only the limit price differs (a ``PATCH``: the bid keeps its place and its instances);
* ``replace``: anything else differs and ``--replace`` was given (cancel, then create: a running bid loses its
  work);
* ``refuse``: anything else differs without ``--replace``; the differences are listed.

Comparison covers what a bid's answer echoes: region, instance type, quantity and the launch specification
(SSH keys and volumes as sets, the startup script, image version, Kubernetes cluster, memory). The
``placement_spec`` and ``notification_email`` are not echoed back, so they cannot be compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from flowc.providers.mithril.api.models import parse_dollars

Kind = Literal["create", "update", "replace", "unchanged", "refuse"]
#: Launch-specification fields compared; a missing one counts as ``None``.
_LAUNCH_FIELDS = ("image_version", "kubernetes_cluster", "memory_gb", "ssh_keys", "startup_script", "volumes")
_SETS = ("ssh_keys", "volumes")


@dataclass(frozen=True)
class VolumeToCreate:
    """A volume the document names with a size that the project does not have yet."""

    name: str
    region: str
    size_gb: int
    interface: Literal["Block", "File"]


@dataclass(frozen=True)
class BuiltBid:
    """A task's bid as ``flowc build`` wrote it (names, not ids) and the volumes its document describes.

    Attributes:
        task: The task's name.
        body: The body of ``out/mithril/<task>.json``.
        volumes: The task's volumes (``VolumePlan``: name or id, size, interface).
    """

    task: str
    body: dict[str, Any]
    volumes: tuple[Any, ...] = ()


@dataclass(frozen=True)
class WantedBid:
    """A task's bid as the build wants it, with ids resolved.

    Attributes:
        task: The task's name (the bid's name).
        body: The ``CreateBidRequest`` body (volumes still to create appear by name until they exist).
        volumes_to_create: Volumes to create before the bid.
    """

    task: str
    body: dict[str, Any]
    volumes_to_create: tuple[VolumeToCreate, ...] = ()

    @property
    def limit_price(self) -> float:
        """USD per instance-hour."""
        return _dollars(self.body["limit_price"])

    @property
    def per_hour(self) -> float:
        """The most the bid spends per hour: limit price times instances."""
        return self.limit_price * int(self.body["instance_quantity"])


@dataclass(frozen=True)
class Action:
    """What submission does for one task.

    Attributes:
        kind: See the module docstring.
        wanted: The bid the build wants.
        live: The task's live bid, if any.
        changes: For ``update``, ``replace`` and ``refuse``: one line per differing field.
    """

    kind: Kind
    wanted: WantedBid
    live: Any = None
    changes: tuple[str, ...] = field(default=())

    @property
    def spends(self) -> bool:
        """Whether carrying it out commits money (a new bid, or a new limit price)."""
        return self.kind in ("create", "update", "replace")


def plan_submission(wanted: Sequence[WantedBid], live: Mapping[str, Any], replace: bool) -> list[Action]:
    """Decide each task's action.

    Args:
        wanted: The bids the build wants, one per task.
        live: Task name → its live bid (a ``BidModel``), for the tasks that have one.
        replace: Whether a bid that differs in more than its price may be cancelled and created anew.

    Returns:
        One action per wanted bid, in the given order.
    """
    actions = []
    for bid in wanted:
        current = live.get(bid.task)
        if current is None:
            actions.append(Action("create", bid))
            continue
        changes = differences(bid.body, current)
        price_changed = abs(_dollars(current.limit_price) - bid.limit_price) >= 0.005
        if not changes and not price_changed:
            actions.append(Action("unchanged", bid, current))
        elif not changes:
            line = f"limit_price: {current.limit_price} -> {bid.body['limit_price']}"
            actions.append(Action("update", bid, current, (line,)))
        else:
            if price_changed:
                changes.append(f"limit_price: {current.limit_price} -> {bid.body['limit_price']}")
            actions.append(Action("replace" if replace else "refuse", bid, current, tuple(changes)))
    return actions


def differences(body: Mapping[str, Any], live: Any) -> list[str]:
    """The fields, besides the limit price, in which a live bid differs from the wanted body.

    Args:
        body: The wanted ``CreateBidRequest`` body.
        live: The live ``BidModel``.

    Returns:
        One ``field: live -> wanted`` line per difference.
    """
    out = []
    for name, current in (("region", live.region), ("instance_type", live.instance_type),
                          ("instance_quantity", live.instance_quantity)):
        if body.get(name) != current:
            out.append(f"{name}: {current} -> {body.get(name)}")
    echoed = live.launch_specification or {}
    wanted = body.get("launch_specification", {})
    for name in _LAUNCH_FIELDS:
        have, want = echoed.get(name), wanted.get(name)
        if name in _SETS:
            have, want = sorted(have or []), sorted(want or [])
        if have != want:
            out.append(f"launch_specification.{name}: {_short(have)} -> {_short(want)}")
    return out


def _short(value: Any) -> str:
    """A value for a one-line difference: long text shows its length, not its content."""
    if isinstance(value, str) and (len(value) > 40 or "\n" in value):
        return f"<{len(value)} characters>"
    return repr(value)


def _dollars(value: Any) -> float:
    price = parse_dollars(value)
    if price is None:
        raise ValueError(f"not a price: {value!r}")
    return price
