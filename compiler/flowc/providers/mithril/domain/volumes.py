"""Volumes of a project: which a task names already exist, which must be created first, and creating them once.

A task's volume is given by id (``vol_…``, used as it is) or by name. A name the project has in the bid's
region is its id; a name it does not have is created before the bid when the document gives its ``size_gb``
(Mithril needs a size), and is an error otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowc.providers.mithril.api import compute
from flowc.providers.mithril.domain.submission import VolumeToCreate

VOLUME_PREFIX = "vol_"


class VolumeError(ValueError):
    """A volume a task names cannot be found or made."""


def is_volume_id(value: str) -> bool:
    """Whether ``value`` is a Mithril volume id rather than a name.

    Example:
        >>> is_volume_id("vol_Q7w2eR9tY1uI3oP5"), is_volume_id("ckpts")
        (True, False)
    """
    return value.startswith(VOLUME_PREFIX)


class VolumeService:
    """Volumes through one API client."""

    def __init__(self, client: Any) -> None:
        """Keep the client."""
        self.client = client

    def list(self, project: str, region: str | None = None) -> list[Any]:
        """The project's volumes that are not deleted (in ``region`` when given)."""
        return [v for v in compute.list_volumes(self.client, project, region)
                if getattr(v, "deleted_at", None) is None]

    def plan(self, project: str, region: str, wanted: Sequence[Any]) -> tuple[list[str], list[VolumeToCreate]]:
        """Match a task's volumes with the project's.

        Args:
            project: The project's id.
            region: The bid's region (volumes attach only in their own region).
            wanted: The task's volumes (``VolumePlan``: ``name``, ``volume_id``, ``size_gb``, ``interface``).

        Returns:
            The launch specification's volume list (ids, or names of volumes still to create) and the volumes
            to create.

        Raises:
            VolumeError: A named volume without ``size_gb`` does not exist in the region.
        """
        if not wanted:
            return [], []
        have = {v.name: v.fid for v in self.list(project, region)}
        refs, create = [], []
        for volume in wanted:
            if volume.volume_id:
                refs.append(volume.volume_id)
            elif volume.name in have:
                refs.append(have[volume.name])
            elif volume.size_gb:
                refs.append(volume.name)
                create.append(VolumeToCreate(volume.name, region, int(volume.size_gb),
                                             "File" if volume.interface == "file" else "Block"))
            else:
                raise VolumeError(f"volume '{volume.name}' does not exist in {region} and has no size_gb to "
                                  "create it with")
        return refs, create

    def create(self, project: str, volume: VolumeToCreate) -> Any:
        """Create ``volume`` once (an ``Idempotency-Key`` from the project, region, name and size)."""
        key = compute.idempotency_key(project, volume.region, volume.name, str(volume.size_gb), volume.interface)
        return compute.create_volume(self.client, project=project, name=volume.name, region=volume.region,
                                     size_gb=volume.size_gb, interface=volume.interface, idempotency_key=key)

    def delete(self, fid: str) -> bool:
        """Delete a volume; ``False`` when it was already gone."""
        return compute.delete_volume(self.client, fid)
