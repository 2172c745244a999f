"""Tasks as Mithril runs them: a bid, its instances, and the task state they add up to.

A task is the live bid of its name in the project (``flowc submit`` makes at most one). :class:`TaskService`
shows tasks (:class:`TaskView`), waits for them to reach a state, and cancels them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flowc.providers.mithril.api import endpoints
from flowc.providers.mithril.api.models import parse_dollars
from flowc.providers.mithril.domain.bids import BidService
from flowc.providers.mithril.domain.instances import InstanceService
from flowc.providers.mithril.domain.task_state import ended, reached, task_state


@dataclass(frozen=True)
class TaskView:
    """One task's bid and instances, and what they mean.

    Attributes:
        name: The task (bid) name.
        bid: The ``BidModel``.
        instances: Its ``InstanceModel`` list.
        state: The task state (:data:`flowc.providers.mithril.domain.task_state.STATES`).
        spot_price: The market's current price per instance-hour in the bid's region, when known.
    """

    name: str
    bid: Any
    instances: tuple[Any, ...]
    state: str
    spot_price: float | None = None

    @property
    def limit_price(self) -> float:
        """The bid's limit price, USD per instance-hour."""
        return parse_dollars(self.bid.limit_price) or 0.0

    def age_s(self, now: datetime | None = None) -> float:
        """Seconds since the bid was placed."""
        return ((now or datetime.now(UTC)) - self.bid.created_at).total_seconds()


class WaitTimeout(Exception):
    """Tasks did not reach the wanted state in time (carries their last views)."""

    def __init__(self, views: list[TaskView], wanted: str) -> None:
        """Keep the last views."""
        states = ", ".join(f"{v.name}: {v.state}" for v in views)
        super().__init__(f"timed out waiting for {wanted} ({states})")
        self.views = views


class TaskEnded(Exception):
    """A task was cancelled or failed while being waited for."""

    def __init__(self, view: TaskView) -> None:
        """Keep its view."""
        super().__init__(f"task '{view.name}' is {view.state} (bid {view.bid.fid} is {view.bid.status})")
        self.view = view


class TaskService:
    """Task views, waiting and cancelling through the bid and instance services.

    Args:
        client: The API client (for market prices).
        bids: The bid service.
        instances: The instance service.
        clock: Monotonic clock for waiting.
        sleep: Called between polls.
    """

    def __init__(self, client: Any, bids: BidService, instances: InstanceService,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        """Keep the services."""
        self.client, self.bids, self.instances = client, bids, instances
        self._clock, self._sleep = clock, sleep

    def views(self, project: str, bids: Sequence[Any], prices: bool = False) -> list[TaskView]:
        """Views of ``bids`` (instances fetched in one request; market prices when ``prices``)."""
        by_bid = self.instances.of_bids(project, bids)
        market = self._market() if prices else {}
        return [TaskView(b.name, b, tuple(by_bid.get(b.fid, [])),
                         task_state(b.status, [i.status for i in by_bid.get(b.fid, [])], b.instance_quantity),
                         market.get((b.instance_type, b.region))) for b in bids]

    def _market(self) -> dict[tuple[str, str], float]:
        """The current price per instance-hour of every (instance type id, region) on offer."""
        return {(row.instance_type, row.region): row.price_per_instance_hour
                for row in endpoints.spot_availability(self.client)}

    def live(self, project: str, names: Sequence[str], prices: bool = False) -> list[TaskView]:
        """The live tasks among ``names`` (a name without a live bid is left out)."""
        live = self.bids.live_by_name(project)
        return self.views(project, [live[n] for n in names if n in live], prices)

    def wait(self, project: str, fids: Sequence[str], wanted: str, timeout_s: float, poll_s: float = 5.0,
             on_poll: Callable[[list[TaskView]], None] | None = None) -> list[TaskView]:
        """Poll bids until every one has reached ``wanted`` (``allocated`` or ``running``).

        Args:
            project: The project's id.
            fids: The bids to follow.
            wanted: ``allocated`` or ``running``.
            timeout_s: Longest wait.
            poll_s: Seconds between polls.
            on_poll: Called with the views after every poll (a CLI shows progress).

        Returns:
            The views once all have reached it.

        Raises:
            WaitTimeout: Not all reached it in time.
            TaskEnded: One was cancelled or failed on the way.
        """
        give_up = self._clock() + timeout_s
        while True:
            views = self.views(project, [self.bids.get(fid) for fid in fids])
            if on_poll is not None:
                on_poll(views)
            for view in views:
                if ended(view.state):
                    raise TaskEnded(view)
            if all(reached(v.state, wanted) for v in views):
                return views
            left = give_up - self._clock()
            if left <= 0:
                raise WaitTimeout(views, wanted)
            self._sleep(min(poll_s, left))
