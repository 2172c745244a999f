"""The typed, frozen intermediate representation of a topology document.

Every object keeps the span of its key and of its fields, so later passes can point at the exact
place a problem comes from. Nothing here knows about any deployment target.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from flowc.diagnostics import Span

Placement = Literal["packed", "spread", "cluster"]
Distance = Literal["rack", "zone", "region"]
Role = Literal["producer", "transformer", "consumer"]
ChannelType = Literal["SPSC", "SPMC", "MPSC", "MPMC"]


class Located(BaseModel):
    """Base of every IR object: frozen, with the span of its key and of each field."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid", defer_build=True)

    span: Span
    spans: Mapping[str, Span] = Field(default_factory=dict, repr=False)

    @field_serializer("spans")
    def _spans_as_dict(self, spans: Mapping[str, Span]) -> dict[str, Span]:
        """Serialize the field spans as a dict (``lower`` hands over a mapping that finds them when asked)."""
        return dict(spans)

    @classmethod
    def trusted(cls, **values: Any) -> Self:
        """Build an object from values already of the field types: what ``model_construct`` builds, sooner.

        ``lower`` builds every IR object from a document that passed the JSON Schema, tens of thousands of
        them for a large topology. As ``model_construct``: nothing is validated, a field left out takes its
        default, and a name that is no field is dropped.

        Args:
            **values: Field values.

        Returns:
            The object.
        """
        defaults, required, factories = _TRUSTED.get(cls) or _trusted_fields(cls)
        found = defaults.copy()  # every field in its place, so the update keeps the fields' order
        found.update(values)
        given = set(values)
        if len(found) != len(defaults):
            given &= defaults.keys()
            for name in values.keys() - defaults.keys():
                del found[name]
        for name, factory in factories:
            if name not in values:
                found[name] = factory()
        for name in required:
            if name not in values:
                del found[name]
        obj = cls.__new__(cls)
        _set(obj, "__dict__", found)
        _set(obj, "__pydantic_fields_set__", given)
        _set(obj, "__pydantic_extra__", None)
        _set(obj, "__pydantic_private__", None)
        return obj

    def at(self, field: str) -> Span:
        """Return the span of ``field`` (``"inputs[2]"`` for a list item), or the object's own span.

        Args:
            field: A field name, optionally with an item index.

        Returns:
            The most precise span known.
        """
        return self.spans.get(field) or self.spans.get(field.split("[")[0]) or self.span


_set = object.__setattr__
#: Each field's default in field order (a placeholder for required fields and factories), the required fields, and
#: the fields a factory fills.
_Fill = tuple[dict[str, Any], tuple[str, ...], tuple[tuple[str, Callable[[], Any]], ...]]
_TRUSTED: dict[type[Located], _Fill] = {}


def _trusted_fields(cls: type[Located]) -> _Fill:
    if cls.__pydantic_post_init__ or cls.__private_attributes__:
        raise TypeError(f"{cls.__name__}.trusted would skip its post-init or private attributes: use model_construct")
    defaults: dict[str, Any] = {}
    required: list[str] = []
    factories: list[tuple[str, Callable[[], Any]]] = []
    for name, info in cls.__pydantic_fields__.items():
        if info.alias is not None or info.validation_alias is not None or info.default_factory_takes_validated_data:
            raise TypeError(f"{cls.__name__}.trusted cannot fill '{name}': use model_construct")
        defaults[name] = None
        if info.is_required():
            required.append(name)
        elif info.default_factory is not None:
            factories.append((name, info.default_factory))
        elif isinstance(info.default, (type(None), bool, int, float, str)) or info.default == ():
            defaults[name] = info.default
        else:  # a mutable default: a copy per object, as model_construct makes
            factories.append((name, functools.partial(info.get_default, call_default_factory=True)))
    _TRUSTED[cls] = found = (defaults, tuple(required), tuple(factories))
    return found


class Interconnect(Located):
    """Network requirements of a task."""

    intranode: Literal["nvlink", "pcie", "any"] | None = None
    internode: Literal["infiniband", "roce", "ethernet", "any"] | None = None
    min_bandwidth_gbps: float | None = None


class Constraints(Located):
    """Explicit placement constraints of a task."""

    same_zone: bool = False
    same_rack: bool = False
    max_distance: Distance | None = None
    anti_affinity_groups: tuple[str, ...] = ()


class Topology(Located):
    """Placement strategy plus interconnect and constraints."""

    placement: Placement = "packed"
    interconnect: Interconnect
    constraints: Constraints


class Volume(Located):
    """A storage volume attached to every instance of a task."""

    name: str | None = None
    volume_id: str | None = None
    size_gb: int | None = None
    mount_path: str | None = None
    interface: Literal["block", "file"] = "block"


class Task(Located):
    """A workload on ``num_instances`` rented instances."""

    name: str
    instance_type: str
    num_instances: int = 1
    command: str | tuple[str, ...] | None = None
    image: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    region: str | None = None
    max_price_per_hour: float | None = None
    priority: Literal["low", "med", "high"] = "med"
    max_run_time_hours: float | None = None
    ssh_keys: tuple[str, ...] = ()
    volumes: tuple[Volume, ...] = ()
    topology: Topology


class Actor(Located):
    """A logical actor: its role and the channels it reads and writes."""

    name: str
    role: Role
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    command: str | tuple[str, ...] | None = None
    run: str | None = None
    params: Mapping[str, Any] = Field(default_factory=dict)
    env: tuple[tuple[str, str], ...] = ()
    realtime_priority: int | None = None
    memory_max: int | None = None


class ActorPlacement(Located):
    """Where one actor runs on its node."""

    actor: str
    numa: int | None = None
    cpus: tuple[int, ...]


class LocalChannel(Located):
    """A channel declared on a node (its type and size; omitted fields are inferred later)."""

    name: str
    type: ChannelType | None = None
    buffer_size: int | None = None
    numa: int | None = None
    huge_pages: bool = False
    policy: Literal["backpressure", "drop_oldest"] = "backpressure"
    delivery: Literal["broadcast", "shared"] = "broadcast"
    spin_us: float | None = None


class NumaDomain(Located):
    """One NUMA node of a machine; ``cpus`` is ``None`` when the document lists ids only."""

    id: int
    cpus: tuple[int, ...] | None = None


class Node(Located):
    """A machine and what runs on it."""

    name: str
    hostname: str
    numa: tuple[NumaDomain, ...]
    numa_declared: bool = False
    placements: tuple[ActorPlacement, ...] = ()
    channels: tuple[LocalChannel, ...] = ()
    bridge_cpus: tuple[int, ...] = ()
    #: ``metrics.port`` and ``metrics.address`` as written (``None``: the default).
    metrics_port: int | None = None
    metrics_address: str | None = None


class Route(Located):
    """A channel carried from one node to others."""

    name: str
    source_node: str
    channel: str
    targets: tuple[str, ...]
    transport: Literal["tcp"] = "tcp"
    compression: Literal["none", "lz4", "zstd"] = "none"
    auth: Literal["curve", "none"] = "curve"


class Spec(BaseModel):
    """The whole document, typed: what to rent (tasks) and the actor topology.

    ``target_settings`` carries each output target's own settings section (validated by the schema) through
    to its emitter untouched, so that no target's vocabulary enters the IR.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    path: str
    tasks: tuple[Task, ...] = ()
    actors: tuple[Actor, ...] = ()
    nodes: tuple[Node, ...] = ()
    routes: tuple[Route, ...] = ()
    target_settings: Mapping[str, Mapping[str, Any]] = Field(default_factory=dict)
