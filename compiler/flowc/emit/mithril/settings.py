"""What the Mithril target takes: the document's ``mithril:`` section, ``--project`` and ``--resolve``."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from flowc.emit.settings import TargetSettings


@runtime_checkable
class NameResolver(Protocol):
    """Turns the names a bid body carries into Mithril ids (``flowc build --resolve``, through the API)."""

    def resolve(self, body: dict[str, Any]) -> dict[str, Any]:
        """Return ``body`` with ids for the project, instance type, SSH keys and volumes.

        Raises:
            Exception: Any lookup or API error; its message says which name failed (``help`` may say how to fix it).
        """


class Settings(TargetSettings):
    """Settings of the Mithril target.

    Attributes:
        project: Project name or id (``--project`` over the document's; else ``MITHRIL_PROJECT``).
        notification_email: Where Mithril sends the bid's notifications.
        image_version: Instance image version.
        kubernetes_cluster: The Mithril Kubernetes cluster to join.
        memory_gb: Memory per instance.
        resolver: Set by ``--resolve``: turns names into ids.
    """

    project: str | None = None
    notification_email: str | None = None
    image_version: str | None = None
    kubernetes_cluster: str | None = None
    memory_gb: int | None = None
    resolver: NameResolver | None = None
