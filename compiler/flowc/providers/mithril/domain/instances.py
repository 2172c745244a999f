"""The instances of bids: their status, where to reach them over SSH, their private address."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowc.providers.mithril.api import compute


class InstanceService:
    """Instances through one API client."""

    def __init__(self, client: Any) -> None:
        """Keep the client."""
        self.client = client

    def of_bids(self, project: str, bids: Sequence[Any]) -> dict[str, list[Any]]:
        """Each bid's instances, in the order the bid lists them (one request for all bids).

        Args:
            project: The project's id.
            bids: ``BidModel`` objects.

        Returns:
            Bid id → its ``InstanceModel`` list.
        """
        wanted = [b.fid for b in bids if b.instances]
        found = {i.fid: i for i in compute.list_instances(self.client, project, wanted)} if wanted else {}
        out: dict[str, list[Any]] = {}
        for bid in bids:
            listed = [found[fid] for fid in bid.instances if fid in found]
            extra = sorted((i for i in found.values() if getattr(i, "bid", None) == bid.fid and i.fid not in
                            bid.instances), key=lambda i: i.fid)
            out[bid.fid] = listed + extra
        return out
