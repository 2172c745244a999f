"""Pass ``choose_offers``: Plan → Plan with each task's offer (region and limit price, each with its reason).

Prices come only through the :class:`~flowc.model.options.PriceOracle` the command line hands in
(``flowc build --prices``), so a default build stays deterministic. Region: the task's, else
:func:`select_region` over the offers, else :data:`DEFAULT_REGION` (FLC512). Limit price, per instance-hour:
the task's ``max_price_per_hour``, else the recommendation from price history, else the priority tier
table per GPU-hour × GPUs (the Flow SDK's defaults).
"""

from __future__ import annotations

from typing import Any

from flowc.diagnostics import Span
from flowc.model.context import Context
from flowc.model.options import PriceOracle
from flowc.model.plan import OfferPlan, Plan, TaskPlan

#: USD per GPU-hour by priority (Flow SDK ``DEFAULT_PRICING`` / 3.x ``pricing.json``).
TIER_PRICES = {
    "h100": (4, 8, 16), "a100": (3, 6, 12), "a10": (1, 2, 4), "t4": (0.5, 1, 2), "h200": (5, 10, 20),
    "b200": (6, 12, 24), "v100": (0.8, 1.6, 3.2), "default": (2, 4, 8),
}
DEFAULT_REGION = "us-central5-a"


def choose_offers(plan: Plan, ctx: Context) -> Plan:
    """Choose every task's region and limit price.

    Args:
        plan: The plan.
        ctx: The context; ``ctx.options.prices`` is the price data, if any.

    Returns:
        The plan with each task's ``offer``.
    """
    tasks = {name: task.model_copy(update={"offer": _offer(task, ctx.options.prices, ctx)})
             for name, task in plan.tasks.items()}
    return plan.model_copy(update={"tasks": tasks})


def _offer(task: TaskPlan, prices: PriceOracle | None, ctx: Context) -> OfferPlan:
    reasons = []
    region, region_source = task.region, "document"
    if region is None and prices is not None:
        chosen = select_region(prices.get_spot_prices([task.instance.name]), task.num_instances)
        if chosen is not None:
            region, region_source = chosen.region, "prices"
            reasons.append(f"region choice: most capacity ({chosen.availability}), then lowest price "
                           f"(${chosen.price_per_hour:.2f}) among the offers for {task.instance.name}")
    if region is None:
        region, region_source = DEFAULT_REGION, "default"
        ctx.warn("FLC512", f"task '{task.name}' names no region and no price data is at hand; its bid uses "
                 f"'{region}'", at=task.span or Span(ctx.path, 1, 1),
                 help="set 'region', or build where the pricing store has observations")
    reasons.append(f"region: {region} ({region_source})")
    advice = None
    if task.max_price_per_hour is None and prices is not None:
        advice = prices.recommend_limit_price(task.instance.name, region)
    if task.max_price_per_hour is not None:
        price, price_source = task.max_price_per_hour, "document"
        reasons.append(f"limit price: ${price:.2f}/instance-hour from max_price_per_hour")
    elif advice is not None:
        price, price_source = advice.price, "history"
        reasons.append(f"limit price: ${price:.2f}/instance-hour recommended from price history: {advice.rationale}")
    else:
        tiers = TIER_PRICES.get(task.instance.gpu, TIER_PRICES["default"])
        per_gpu = tiers[("low", "med", "high").index(task.priority)]
        price, price_source = per_gpu * task.instance.gpu_count, "priority-tier"
        reasons.append(f"limit price: ${price:.2f}/instance-hour = {task.priority} tier ${per_gpu:g}/GPU-hour × "
                       f"{task.instance.gpu_count} GPUs ({task.instance.gpu})")
    return OfferPlan(region=region, region_source=region_source, limit_price=price,
                     limit_price_source=price_source, reasons=tuple(reasons))


def select_region(offers: list[Any], quantity: int) -> Any | None:
    """The region policy of the providers design: most available capacity first, lowest price on a tie.

    Offers that say they cannot hold ``quantity`` instances are skipped (multi-instance bids are all or
    nothing); offers that do not say are kept last.

    Args:
        offers: Spot offers (:class:`~flowc.model.options.Offer`) of one instance type.
        quantity: Instances the bid asks for.

    Returns:
        The chosen offer, or ``None`` when there is none.
    """
    usable = [o for o in offers if o.availability is None or o.availability >= quantity]
    if not usable:
        return None
    return min(usable, key=lambda o: (-(o.availability or 0), o.price_per_hour, o.region))
