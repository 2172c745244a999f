"""Bids on Mithril's spot market: find a task's live bid, create one exactly once, reprice, cancel.

A create carries an ``Idempotency-Key`` derived from the project, the name, the body and the bids of that name
the project already had, so a retried create is recognised by the API while a bid created again after a
cancel is a new one. The API's OpenAPI file does not declare that header, so flowc does not
rely on it alone: after a create whose outcome is unknown (a timeout, a dropped connection or a 5xx after the
request went out), it lists the project's bids of that name before it tries again, and adopts the bid it finds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowc.providers.mithril.api import compute
from flowc.providers.mithril.api.errors import MithrilApiError
from flowc.providers.mithril.domain.task_state import LIVE_BID_STATUSES

#: Attempts of one create (the first and the retries after an unknown outcome).
CREATE_ATTEMPTS = 3


class BidService:
    """Bids of one API client.

    Args:
        client: The API client.
        sleep: Called with the wait before a retried create (tests pass a recorder).
    """

    def __init__(self, client: Any, sleep: Callable[[float], None] | None = None) -> None:
        """Keep the client."""
        import time

        self.client = client
        self._sleep = sleep or time.sleep

    def live(self, project: str, name: str) -> Any | None:
        """The newest live bid named ``name`` in ``project``, or ``None``.

        Args:
            project: The project's id.
            name: The bid (task) name.

        Returns:
            The ``BidModel``, or ``None``.
        """
        found = [b for b in compute.list_bids(self.client, project, name=name)
                 if b.name == name and b.status in LIVE_BID_STATUSES]
        return max(found, key=lambda b: b.created_at) if found else None

    def live_by_name(self, project: str) -> dict[str, Any]:
        """Every live bid of ``project`` by name (the newest when a name has several)."""
        out: dict[str, Any] = {}
        for bid in compute.list_bids(self.client, project):
            if bid.status in LIVE_BID_STATUSES and (bid.name not in out or bid.created_at > out[bid.name].created_at):
                out[bid.name] = bid
        return out

    def all(self, project: str) -> list[Any]:
        """Every bid of ``project``, newest first."""
        return sorted(compute.list_bids(self.client, project), key=lambda b: b.created_at, reverse=True)

    def get(self, fid: str) -> Any:
        """One bid by id."""
        return compute.get_bid(self.client, fid)

    def create(self, body: dict[str, Any]) -> Any:
        """Create the bid of ``body`` exactly once.

        Args:
            body: The ``CreateBidRequest`` body, with ids.

        Returns:
            The created (or, after an unknown outcome, the found) ``BidModel``.

        Raises:
            MithrilApiError: The API refused the bid, or it could not be created and none was found.
        """
        # The key names this create, not only the body: after a bid of the same name and body was cancelled,
        # creating it again is a new request (an API that remembers keys would answer with the cancelled bid).
        earlier = sorted(b.fid for b in compute.list_bids(self.client, body["project"], name=body["name"])
                         if b.name == body["name"])
        key = compute.idempotency_key(body["project"], body["name"], body, ",".join(earlier))
        for attempt in range(CREATE_ATTEMPTS):
            try:
                return compute.create_bid(self.client, body, key)
            except MithrilApiError as error:
                if not getattr(error, "outcome_unknown", False):
                    raise
                found = self.live(body["project"], body["name"])
                if found is not None:
                    return found
                if attempt == CREATE_ATTEMPTS - 1:
                    raise
                self._sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def reprice(self, fid: str, limit_price: str) -> Any:
        """Set a live bid's limit price (a ``"$NN.NN"`` string); it keeps its place and instances."""
        return compute.update_bid(self.client, fid, {"limit_price": limit_price})

    def cancel(self, fid: str) -> bool:
        """Cancel a bid; ``False`` when it was already gone (which is success too)."""
        return compute.cancel_bid(self.client, fid)
