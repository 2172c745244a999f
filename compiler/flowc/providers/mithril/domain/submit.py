"""Carry out a submission plan: volumes first, then each task's bid, stopping at the first failure.

What was done before a failure stays done and is reported with it (:class:`SubmitFailed`): which tasks were
submitted, which one failed and why, and which were not sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flowc.providers.mithril.api.errors import MithrilApiError
from flowc.providers.mithril.domain.bids import BidService
from flowc.providers.mithril.domain.submission import Action
from flowc.providers.mithril.domain.volumes import VolumeService


@dataclass(frozen=True)
class Outcome:
    """What happened to one task.

    Attributes:
        task: The task.
        kind: The action carried out (``create``, ``update``, ``replace``, ``unchanged``).
        bid: The task's bid afterwards.
        volumes_created: Names of the volumes created for it.
    """

    task: str
    kind: str
    bid: Any
    volumes_created: tuple[str, ...] = ()


class SubmitFailed(Exception):
    """A submission stopped: what was done, what failed, what was not sent."""

    def __init__(self, done: list[Outcome], task: str, error: Exception, not_sent: list[str]) -> None:
        """Keep the parts."""
        super().__init__(f"task '{task}': {error}")
        self.done, self.task, self.error, self.not_sent = done, task, error, not_sent


def carry_out(actions: Sequence[Action], bids: BidService, volumes: VolumeService,
              progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Carry out ``actions`` in order (``refuse`` actions must have been dealt with before).

    Args:
        actions: The plan.
        bids: The bid service.
        volumes: The volume service.
        progress: Called after each task.

    Returns:
        One outcome per action.

    Raises:
        SubmitFailed: An action failed; earlier ones are done.
        ValueError: The plan holds a ``refuse`` action.
    """
    if any(a.kind == "refuse" for a in actions):
        raise ValueError("a refused action cannot be carried out")
    done: list[Outcome] = []
    for index, action in enumerate(actions):
        try:
            outcome = _one(action, bids, volumes)
        except (MithrilApiError, ValueError) as error:
            raise SubmitFailed(done, action.wanted.task, error,
                               [a.wanted.task for a in actions[index + 1:] if a.kind != "unchanged"]) from error
        done.append(outcome)
        if progress is not None:
            progress(outcome)
    return done


def _one(action: Action, bids: BidService, volumes: VolumeService) -> Outcome:
    wanted = action.wanted
    if action.kind == "unchanged":
        return Outcome(wanted.task, "unchanged", action.live)
    if action.kind == "update":
        return Outcome(wanted.task, "update", bids.reprice(action.live.fid, wanted.body["limit_price"]))
    body = dict(wanted.body)
    launch = dict(body["launch_specification"])
    ids = {}
    for volume in wanted.volumes_to_create:
        ids[volume.name] = volumes.create(body["project"], volume).fid
    launch["volumes"] = [ids.get(v, v) for v in launch.get("volumes", [])]
    body["launch_specification"] = launch
    if action.kind == "replace":
        bids.cancel(action.live.fid)
    return Outcome(wanted.task, action.kind, bids.create(body), tuple(ids))
