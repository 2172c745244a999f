"""The Mithril provider: ``MithrilProvider`` (prices) and ``MithrilCompute`` (tasks), thin facades over services.

``MithrilProvider`` fronts the pricing source, the local store and the statistics. ``MithrilCompute``
(``MithrilCompute.from_config()``) fronts the compute services in ``domain/``: bids, instances, volumes, task
views and waiting, submission planning, and logs over SSH; the command line only renders what they return.

Prices are per instance-hour as the API quotes them; per GPU-hour divides by the GPU count from flowc's catalog
(``flowc.model.catalog.lookup``), and stays ``None`` for names the catalog does not know (such as raw ``it_…`` ids).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from flowc.providers.mithril.domain.pricing import (
    DEFAULT_MARGIN,
    PriceHistory,
    Recommendation,
    SpotPrice,
    compute_statistics,
    recommend_limit_price,
    trend_of,
)
from flowc.providers.mithril.domain.sources import PriceSource, choose_source
from flowc.providers.mithril.domain.store import PriceStore

DASHBOARD_URL = "https://app.mithril.ai/instances/spot"
"""The web console's spot price graphs (reference section 4). The design's ``dashboard.mithril.ai/pricing``
pattern is not a documented page, so flowc links the console; its filters ride along as query parameters."""

TREND_HOURS = 168.0
"""History fetched for trends; the same window the CLI colours prices against, so one query serves both."""


def gpu_count(instance_type: str) -> int | None:
    """Return the GPUs per instance of ``instance_type`` from flowc's catalog, or ``None`` when unknown.

    Example:
        >>> gpu_count("h100-80gb.sxm.8x"), gpu_count("it_5ECSoHQjLBzrp5YM")
        (8, None)
    """
    from flowc.model.catalog import lookup

    found = lookup(instance_type)
    return found.gpu_count if found is not None and found.gpu_count > 0 else None


def canonical_instance_type(name: str) -> str:
    """Return the Mithril display name of a catalog spelling (``8xh100``), or ``name`` unchanged.

    Example:
        >>> canonical_instance_type("8xh100"), canonical_instance_type("it_5ECSoHQjLBzrp5YM")
        ('h100-80gb.sxm.8x', 'it_5ECSoHQjLBzrp5YM')
    """
    from flowc.model.catalog import lookup

    found = lookup(name)
    return found.name if found is not None and found.known else name


class MithrilProvider:
    """Spot prices, price history and limit-price advice from one pricing source.

    Args:
        source: ``live``, ``local`` or ``sample``; ``None`` picks one (see ``choose_source``).
        store: The local price store (default: the per-user one).
    """

    def __init__(self, source: str | None = None, store: PriceStore | None = None) -> None:
        """Choose the source."""
        self.store = store if store is not None else PriceStore()
        self.source: PriceSource = choose_source(source, self.store)
        self.compute: MithrilCompute | None = None

    @classmethod
    def from_config(cls, api_key: str | None = None, base_url: str | None = None, source: str | None = None,
                    store: PriceStore | None = None, **services: Any) -> MithrilProvider:
        """The whole provider: prices from ``source`` and the compute services of :class:`MithrilCompute`.

        Compute methods (``submit_task``, ``list_tasks``, ``cancel_task``, ``get_task_logs`` …) are reached on
        the provider itself; ``services`` overrides any of them (see :class:`MithrilCompute`).

        Raises:
            AuthError: No API key is set.
        """
        provider = cls(source, store)
        provider.compute = MithrilCompute.from_config(api_key, base_url, **services)
        return provider

    def __getattr__(self, name: str) -> Any:
        """Reach the compute methods on the provider (after :meth:`from_config`)."""
        compute = self.__dict__.get("compute")
        if compute is None or name.startswith("_"):
            raise AttributeError(name)
        return getattr(compute, name)

    @property
    def is_sample(self) -> bool:
        """True when the prices are the bundled sample data, not observations."""
        return self.source.is_sample

    def get_spot_prices(self, instance_types: list[str] | None = None,
                        regions: list[str] | None = None) -> list[SpotPrice]:
        """Return the current spot price of every matching (instance type, region), sorted by both.

        The trend compares the current price with the price one hour earlier (see ``pricing.trend_of``).
        """
        wanted = {canonical_instance_type(name) for name in instance_types or ()}
        out = []
        for obs in self.source.current():
            if wanted and canonical_instance_type(obs.instance_type) not in wanted:
                continue
            if regions and obs.region not in regions:
                continue
            points, _, _ = self.source.history(obs.instance_type, obs.region, TREND_HOURS)
            gpus = gpu_count(obs.instance_type) or self._api_gpu_count(obs.instance_type)
            out.append(SpotPrice(obs.instance_type, obs.region, obs.price, obs.price / gpus if gpus else None,
                                 obs.availability, trend_of(points) if points else "stable", obs.time))
        return sorted(out, key=lambda p: (p.instance_type, p.region))

    def _api_gpu_count(self, instance_type: str) -> int | None:
        lookup = getattr(self.source, "gpu_count", None)
        return lookup(instance_type) if lookup is not None else None

    def get_price_history(self, instance_type: str, region: str, hours: float = 24.0) -> PriceHistory:
        """Return the observations of the last ``hours`` with their duration-weighted statistics."""
        instance_type = canonical_instance_type(instance_type)
        points, start, end = self.source.history(instance_type, region, hours)
        return PriceHistory(instance_type, region, points, compute_statistics(points, end), start, end)

    @staticmethod
    def get_price_dashboard_url(instance_type: str | None = None, region: str | None = None) -> str:
        """Return the web console's spot price page, with the filters as query parameters.

        Example:
            >>> MithrilProvider.get_price_dashboard_url("8xh100", "us-central2-a")
            'https://app.mithril.ai/instances/spot?instance_type=8xh100&region=us-central2-a'
        """
        query = urlencode([(k, v) for k, v in (("instance_type", instance_type), ("region", region)) if v])
        return f"{DASHBOARD_URL}?{query}" if query else DASHBOARD_URL

    def recommend_limit_price(self, instance_type: str, region: str, target_uptime: float = 0.75,
                              hours: float = 168.0, margin: float = DEFAULT_MARGIN) -> Recommendation | None:
        """Suggest a limit price from the last ``hours`` of history (see ``pricing.recommend_limit_price``)."""
        return recommend_limit_price(self.get_price_history(instance_type, region, hours), target_uptime, margin)


class MithrilCompute:
    """The compute half of the provider: tasks as bids, their instances, volumes and logs.

    Built by :meth:`from_config` from one API client; every service can be given instead, for tests.

    Args:
        client: The API client.
        bids: Bids (default: :class:`BidService` of ``client``).
        volumes: Volumes.
        instances: Instances.
        tasks: Task views, waiting.
        resolver: Names to ids.
        logs: Reads a task's output over SSH.
    """

    def __init__(self, client: Any, *, bids: Any = None, volumes: Any = None, instances: Any = None,
                 tasks: Any = None, resolver: Any = None, logs: Any = None) -> None:
        """Compose the services."""
        from flowc.providers.mithril.domain.bids import BidService
        from flowc.providers.mithril.domain.instances import InstanceService
        from flowc.providers.mithril.domain.tasks import TaskService
        from flowc.providers.mithril.domain.volumes import VolumeService
        from flowc.providers.mithril.resolve import Resolver

        self.client = client
        self.bids = bids or BidService(client)
        self.volumes = volumes or VolumeService(client)
        self.instances = instances or InstanceService(client)
        self.tasks = tasks or TaskService(client, self.bids, self.instances)
        self.resolver = resolver or Resolver(client)
        self.logs = logs

    @classmethod
    def from_config(cls, api_key: str | None = None, base_url: str | None = None, **services: Any) -> MithrilCompute:
        """Build the API client (``MITHRIL_API_KEY``, ``MITHRIL_API_URL`` by default) and the services.

        ``MITHRIL_API_DEADLINE_S`` sets how long one request may take in all (default 20 s; a slow link may need
        more).

        Raises:
            AuthError: No API key is set.
            UserError: ``MITHRIL_API_DEADLINE_S`` is not a positive number.
        """
        import os

        from flowc.providers.mithril.api.client import ApiClient
        from flowc.providers.mithril.api.errors import AuthError

        key = api_key or os.environ.get("MITHRIL_API_KEY")
        if not key:
            raise AuthError("no Mithril API key", help="export MITHRIL_API_KEY=fkey_... (create one at "
                            "app.mithril.ai/account/apikeys)")
        from flowc.diagnostics import UserError

        text = os.environ.get("MITHRIL_API_DEADLINE_S") or "20"
        try:
            deadline = float(text)
        except ValueError:
            deadline = math.nan
        if not 0 < deadline < 86_400:
            raise UserError(f"MITHRIL_API_DEADLINE_S must be a number of seconds below a day, not {text[:20]!r}")
        return cls(ApiClient(base_url, key, deadline_s=deadline, total_deadline_s=max(30.0, deadline * 1.5)),
                   **services)

    def close(self) -> None:
        """Close the API client."""
        self.client.close()

    # Names and identifiers.

    def resolve_project(self, project: str) -> str:
        """The id of a project given by name or id."""
        return self.resolver.project(project)

    def resolve_instance_type(self, name: str, region: str) -> str:
        """The id of an instance type in ``region`` (ids differ per region)."""
        return self.resolver.instance_type(name, region)

    def get_capabilities(self) -> dict[str, Any]:
        """What Mithril enforces of a bid, and what it takes but does not enforce."""
        return {"enforced": ["region", "instance_type", "all-or-nothing instance_quantity", "limit_price"],
                "not_enforced": ["placement_spec (not part of CreateBidRequest)"],
                "max_instances_per_bid": 256, "startup_script_limit": 10_000}

    # Submission.

    def market(self) -> dict[tuple[str, str], tuple[float, int]]:
        """The spot market now: (instance type id, region) → (price per instance-hour, instances free)."""
        from flowc.providers.mithril.api import endpoints

        return {(row.instance_type, row.region): (row.price_per_instance_hour, row.capacity)
                for row in endpoints.spot_availability(self.client)}

    def prepare(self, built: Any, project: str) -> Any:
        """Turn a built bid into the wanted one: ids for names, volumes to create listed.

        Args:
            built: A :class:`~flowc.providers.mithril.domain.submission.BuiltBid`.
            project: The project's id.

        Returns:
            The :class:`~flowc.providers.mithril.domain.submission.WantedBid`.
        """
        from flowc.providers.mithril.domain.submission import WantedBid

        body = dict(built.body)
        launch = dict(body["launch_specification"])
        region = body["region"]
        launch["ssh_keys"] = self.resolver.ssh_keys(project, list(launch.get("ssh_keys", [])))
        refs, create = self.volumes.plan(project, region, built.volumes)
        if built.volumes:
            launch["volumes"] = refs
        body.update(project=project, instance_type=self.resolve_instance_type(body["instance_type"], region),
                    launch_specification=launch)
        return WantedBid(built.task, body, tuple(create))

    def plan_submission(self, wanted: Sequence[Any], project: str, replace: bool = False) -> list[Any]:
        """Each wanted bid's action against the project's live bids (sends nothing)."""
        from flowc.providers.mithril.domain.submission import plan_submission

        live = self.bids.live_by_name(project)
        return plan_submission(wanted, {w.task: live[w.task] for w in wanted if w.task in live}, replace)

    def submit_task(self, actions: Sequence[Any], progress: Any = None) -> list[Any]:
        """Carry out a submission plan (see :func:`flowc.providers.mithril.domain.submit.carry_out`)."""
        from flowc.providers.mithril.domain.submit import carry_out

        return carry_out(actions, self.bids, self.volumes, progress)

    # Tasks.

    def list_tasks(self, project: str, names: Sequence[str] | None = None, prices: bool = True) -> list[Any]:
        """Views of the live tasks among ``names``, or of every bid of the project when ``names`` is ``None``."""
        if names is None:
            return self.tasks.views(project, self.bids.all(project), prices)
        return self.tasks.live(project, names, prices)

    def get_task(self, project: str, name: str) -> Any | None:
        """The view of task ``name``, or ``None`` when it has no live bid."""
        found = self.tasks.live(project, [name], prices=False)
        return found[0] if found else None

    def get_task_status(self, project: str, name: str) -> str | None:
        """The state of task ``name``, or ``None`` when it has no live bid."""
        view = self.get_task(project, name)
        return view.state if view is not None else None

    def get_task_instances(self, project: str, name: str) -> list[Any]:
        """The instances of task ``name`` (empty when it has no live bid)."""
        view = self.get_task(project, name)
        return list(view.instances) if view is not None else []

    def wait_for(self, project: str, fids: Sequence[str], wanted: str, timeout_s: float, poll_s: float = 5.0,
                 on_poll: Any = None) -> list[Any]:
        """Follow bids until they reach ``wanted`` (see :meth:`TaskService.wait`)."""
        return self.tasks.wait(project, fids, wanted, timeout_s, poll_s, on_poll)

    def cancel_task(self, project: str, name: str) -> str | None:
        """Cancel task ``name``: the id of the bid cancelled, or ``None`` when it had none (already gone)."""
        bid = self.bids.live(project, name)
        if bid is None:
            return None
        self.bids.cancel(bid.fid)
        return bid.fid

    stop_task = cancel_task

    # Logs.

    def _instance(self, project: str, name: str, index: int) -> Any:
        from flowc.providers.mithril.api.errors import NotFound

        instances = self.get_task_instances(project, name)
        if not instances:
            raise NotFound(f"task '{name}' has no instances yet", help="see 'flowc status'; logs come once it runs")
        if not 0 <= index < len(instances):
            raise NotFound(f"task '{name}' has {len(instances)} instance(s); there is no instance {index}",
                           help=f"use --instance 0..{len(instances) - 1}")
        instance = instances[index]
        if not instance.ssh_destination:
            raise NotFound(f"instance {index} of task '{name}' ({instance.status}) has no SSH address yet",
                           help="wait until it runs: flowc submit --wait running")
        return instance

    def get_task_logs(self, project: str, name: str, path: str, instance: int = 0, tail: int | None = None) -> str:
        """The output of task ``name`` on one of its instances (the file ``path`` there)."""
        return self._log_service().read(self._instance(project, name, instance).ssh_destination, path, tail)

    def stream_task_logs(self, project: str, name: str, path: str, instance: int = 0,
                         tail: int | None = 10) -> Any:
        """The output of task ``name`` as it is written, line by line (stop by leaving the iteration)."""
        return self._log_service().follow(self._instance(project, name, instance).ssh_destination, path, tail)

    def _log_service(self) -> Any:
        if self.logs is None:
            from flowc.providers.mithril.domain.logs import LogService

            self.logs = LogService()
        return self.logs

    # Volumes.

    def list_volumes(self, project: str, region: str | None = None) -> list[Any]:
        """The project's volumes."""
        return self.volumes.list(project, region)

    def create_volume(self, project: str, volume: Any) -> Any:
        """Create a volume (a ``VolumeToCreate``) once."""
        return self.volumes.create(project, volume)

    def delete_volume(self, fid: str) -> bool:
        """Delete a volume; ``False`` when it was already gone."""
        return self.volumes.delete(fid)

    @staticmethod
    def is_volume_id(value: str) -> bool:
        """Whether ``value`` is a volume id rather than a name."""
        from flowc.providers.mithril.domain.volumes import is_volume_id

        return is_volume_id(value)
