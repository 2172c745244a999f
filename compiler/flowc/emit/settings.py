"""The base of every target's settings model: the document's section of the target, then the command line.

A target declares its settings as a frozen pydantic model; :meth:`TargetSettings.merged` applies the
documented defaults (the model's), the document's section (already schema-valid) and the command-line options
of that target (those not ``None``), in that order, and :meth:`TargetSettings.derive` fills values computed from
the plan's source file name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class TargetSettings(BaseModel):
    """Settings of one output target."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True, defer_build=True)

    @classmethod
    def merged(cls, section: Mapping[str, Any], options: Mapping[str, Any], source: str) -> Self:
        """Merge defaults, the document's section and the command line.

        Args:
            section: The document's section of this target.
            options: Command-line settings of this target; ``None`` values are left out.
            source: The plan's source file name.

        Returns:
            The settings.
        """
        values = {**section, **{key: value for key, value in options.items() if value is not None}}
        return cls.model_validate(cls.derive(values, source))

    @classmethod
    def derive(cls, values: dict[str, Any], source: str) -> dict[str, Any]:
        """Fill values computed from the source file name (a hook; the default changes nothing).

        Args:
            values: The merged values.
            source: The plan's source file name.

        Returns:
            The values to validate.
        """
        return values


class NoSettings(TargetSettings):
    """Settings of a target that takes none."""
