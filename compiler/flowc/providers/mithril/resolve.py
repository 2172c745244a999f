"""Resolve the names a bid body carries into Mithril ids, through the API (``flowc build --resolve``).

Projects come from ``GET /v2/projects``; an instance type's id from the availability row of the bid's
region (ids differ per region) joined with ``GET /v2/instance-types`` for its name; SSH keys and volumes
from the project's lists. Values that already are ids (``proj_…``, ``it_…``, ``sshkey_…``, ``vol_…``) are
kept verbatim.
"""

from __future__ import annotations

from typing import Any

from flowc.providers.mithril.api import endpoints
from flowc.providers.mithril.api.client import ApiClient


class ResolveError(Exception):
    """A name has no id in the account (says which, and where it looked)."""


class Resolver:
    """Looks names up once per build and rewrites bid bodies with ids."""

    def __init__(self, client: ApiClient) -> None:
        """Use ``client`` for every lookup."""
        self.client = client
        self._projects: dict[str, str] | None = None
        self._types: dict[str, str] | None = None
        self._offers: list[Any] | None = None

    def project(self, value: str) -> str:
        """The id of project ``value`` (a name or an id)."""
        if value.startswith("proj_"):
            return value
        if self._projects is None:
            self._projects = endpoints.named_ids(self.client, "/v2/projects")
        if value not in self._projects:
            raise ResolveError(f"project '{value}' not found (projects: {', '.join(sorted(self._projects))})")
        return self._projects[value]

    def instance_type(self, name: str, region: str) -> str:
        """The id of instance type ``name`` in ``region``."""
        if name.startswith("it_"):
            return name
        if self._types is None:
            self._types = {t.fid: t.name for t in endpoints.instance_types(self.client)}
            self._offers = endpoints.spot_availability(self.client)
        for offer in self._offers or ():
            if offer.region == region and self._types.get(offer.instance_type) == name:
                return offer.instance_type
        raise ResolveError(f"instance type '{name}' is not offered in {region}")

    def _named(self, path: str, project: str, values: list[str], prefix: str, **params: str) -> list[str]:
        if all(v.startswith(prefix) for v in values):
            return values
        rows = endpoints.named_ids(self.client, path, {"project": project, **params})
        missing = [v for v in values if not v.startswith(prefix) and v not in rows]
        if missing:
            raise ResolveError(f"{path} has no {', '.join(repr(m) for m in missing)} in project {project}")
        return [v if v.startswith(prefix) else rows[v] for v in values]

    def ssh_keys(self, project: str, values: list[str]) -> list[str]:
        """The ids of SSH keys given by name or id, in ``project``."""
        return self._named("/v2/ssh-keys", project, values, "sshkey_")

    def resolve(self, body: dict[str, Any]) -> dict[str, Any]:
        """Return ``body`` with ids for the project, instance type, SSH keys and volumes."""
        project = self.project(body["project"])
        launch = dict(body["launch_specification"])
        launch["ssh_keys"] = self._named("/v2/ssh-keys", project, launch["ssh_keys"], "sshkey_")
        launch["volumes"] = self._named("/v2/volumes", project, launch["volumes"], "vol_", region=body["region"])
        return {**body, "project": project, "instance_type": self.instance_type(body["instance_type"], body["region"]),
                "launch_specification": launch}
