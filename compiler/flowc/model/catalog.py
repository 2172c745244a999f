"""The built-in instance catalog: GPU model, count and fabric of each instance type flowc knows.

The data lives in ``data/instances.json`` with the source of every row. Lookups accept Mithril display
names (``h100-80gb.sxm.8x``) and Flow short names (``8xh100``, ``h100x8``, ``h100:8``, ``a100``).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowc.data import DATA_DIR

_GRAMMAR = re.compile(r"(?:(?P<n1>[0-9]+)x(?P<g1>[a-z][a-z0-9-]*)|(?P<g2>[a-z][a-z0-9-]*?)(?:x|:)(?P<n2>[0-9]+))\Z")


class InstanceType(BaseModel):
    """One catalog row: the one instance record, also what a plan's task carries as ``instance``.

    Attributes:
        name: The Mithril display name.
        gpu: GPU family, lower case (``h100``).
        gpu_count: GPUs per instance.
        gpu_memory_gb: Memory per GPU.
        intranode: GPU-to-GPU link inside the instance (``nvlink`` or ``pcie``).
        internode: Node-to-node fabric (``infiniband``, ``ethernet``) or ``None`` when unknown.
        internode_gbps: Total internode bandwidth in Gb/s, or ``None`` when unknown.
        known: False for a size the grammar names but the catalog does not list (``16xa100``).
        gpu_product: The GPU's product name as node labels spell it (``NVIDIA-H100-80GB-HBM3``).
    """

    name: str
    gpu: str
    gpu_count: int
    gpu_memory_gb: int | None
    intranode: str | None
    internode: str | None
    internode_gbps: float | None
    known: bool = Field(default=True, exclude=True)
    gpu_product: str | None = None

    # built on first use: the catalog makes its rows with _row, so `flowc check` never needs the validator
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


@functools.cache
def _data() -> dict:
    return json.loads((DATA_DIR / "instances.json").read_text(encoding="utf-8"))


def _row(**values: Any) -> InstanceType:
    """Build a row from values of the field types, as validation would leave them, without validating them.

    Validating a row would build the model's validator, which costs more than a whole ``flowc check``'s passes;
    the shipped data and the grammar give every field its type already, but for a bandwidth written as an
    integer, which becomes the float validation makes of it. ``tests/test_catalog.py`` holds every row equal to
    the validated one.

    Args:
        **values: The row's fields (``known`` may be left out).

    Returns:
        The row.
    """
    gbps = values["internode_gbps"]
    values["internode_gbps"] = None if gbps is None else float(gbps)
    return InstanceType.model_construct(**values)


@functools.cache
def _index() -> dict[str, InstanceType]:
    index: dict[str, InstanceType] = {}
    for row in _data()["instance_types"]:
        product = _data()["gpu_products"].get(row["gpu"])
        item = _row(name=row["name"], gpu=row["gpu"], gpu_count=row["gpu_count"], gpu_memory_gb=row["gpu_memory_gb"],
                    intranode=row["intranode"], internode=row["internode"], internode_gbps=row["internode_gbps"],
                    gpu_product=product)
        for name in (row["name"], *row["aliases"]):
            index[name] = item
    return index


def names() -> list[str]:
    """Return every spelling the catalog accepts, sorted.

    Example:
        >>> "8xh100" in names() and "h100-80gb.sxm.8x" in names()
        True
    """
    return sorted(_index())


def short_names() -> list[str]:
    """Return one name per catalog row: its shortest Flow alias, or its Mithril name.

    Example:
        >>> [n for n in short_names() if "a100" in n]
        ['a100', '2xa100', '4xa100', '8xa100']
    """
    out = []
    for row in _data()["instance_types"]:
        out.append(min(row["aliases"], key=lambda a: (len(a), a)) if row["aliases"] else row["name"])
    return out


def regions() -> list[str]:
    """Return the regions flowc knows (a warning, not an error, names any other)."""
    return list(_data()["regions"])


def lookup(name: str) -> InstanceType | None:
    """Find an instance type by any of its spellings.

    A ``<count>x<gpu>`` name of a known GPU family that the catalog does not list comes back with
    ``known=False`` and no fabric data, so feasibility checks can still speak about its GPU count.

    Args:
        name: What the document says.

    Returns:
        The catalog row, or ``None`` when the GPU family is unknown.

    Example:
        >>> lookup("8xh100").name
        'h100-80gb.sxm.8x'
        >>> lookup("16xa100").gpu_count, lookup("16xa100").known
        (16, False)
    """
    found = _index().get(name)
    if found is not None:
        return found
    match = _GRAMMAR.match(name)
    if match is None:
        return None
    gpu = match.group("g1") or match.group("g2")
    count = int(match.group("n1") or match.group("n2"))
    family = [row for row in _index().values() if row.gpu == gpu]
    if not family or count < 1:
        return None
    intranode = family[0].intranode
    return _row(name=f"{count}x{gpu}", gpu=gpu, gpu_count=count, gpu_memory_gb=family[0].gpu_memory_gb,
                intranode=intranode, internode=None, internode_gbps=None, known=False)
