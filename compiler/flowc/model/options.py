"""What a compilation is asked for beyond the document: price data, which targets, their command-line settings.

The command line builds one :class:`BuildOptions`; passes and emitters read it from their context. Price data
reaches the compiler only through the :class:`PriceOracle` protocol, so a default build (no oracle) never reads
prices and stays deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class Offer(Protocol):
    """One spot offer: an instance type's price and free capacity in a region."""

    @property
    def region(self) -> str:
        """The region."""

    @property
    def price_per_hour(self) -> float:
        """USD per instance-hour."""

    @property
    def availability(self) -> int | None:
        """Instances available at that price, when the source says."""


class Advice(Protocol):
    """A limit price recommended from price history, with why."""

    @property
    def price(self) -> float:
        """USD per instance-hour."""

    @property
    def rationale(self) -> str:
        """One line saying how the price was derived."""


class PriceOracle(Protocol):
    """Where spot prices come from when ``flowc build --prices`` asks for them."""

    def get_spot_prices(self, instance_types: list[str] | None = None,
                        regions: list[str] | None = None) -> list[Any]:
        """Return the current offers (:class:`Offer`) for the instance types."""

    def recommend_limit_price(self, instance_type: str, region: str) -> Any:
        """Return an :class:`Advice` for the pair, or ``None`` without history."""


@dataclass(frozen=True)
class BuildOptions:
    """Everything a compilation is told besides the document and the environment.

    Attributes:
        prices: Price data for regions and limit prices; ``None`` keeps the build deterministic.
        targets: The targets to build (``None``: those on by default).
        target_options: Command-line settings per target name (``{"kubernetes": {"namespace": "ml"}}``),
            merged over the document's section of that target by the target's settings model.
    """

    prices: PriceOracle | None = None
    targets: tuple[str, ...] | None = None
    target_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def for_target(self, name: str) -> Mapping[str, Any]:
        """The command-line settings of one target (empty when none were given).

        Example:
            >>> BuildOptions(target_options={"kubernetes": {"namespace": "ml"}}).for_target("kubernetes")
            {'namespace': 'ml'}
        """
        return self.target_options.get(name, {})
