"""Pass ``lower``: schema-valid Document → :class:`~flowc.model.ir.Spec` (typed, frozen IR with spans).

Objects are built without validation (:meth:`~flowc.model.ir.Located.trusted`, ``model_construct``): the data
already passed the JSON Schema, so the IR's types hold by construction and ``flowc check`` does not pay for
pydantic's validators (the tests re-validate the IR of every example). Normalizes the input language's shorthands:
``topology: spread``, cpuset strings, byte sizes, ``numa_topology`` as a list or a map, ``command`` as
a string or a list. Emits FLC311 (cpu lists the
schema cannot judge, such as reversed ranges), FLC312 (buffer sizes outside what a ring holds,
256 bytes to 1 TiB) and FLC341 (a ``memory_max`` of zero or beyond 64 bits).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from flowc import data as shipped
from flowc.diagnostics import Span
from flowc.model import ir
from flowc.model.context import Context
from flowc.model.document import Document, Path
from flowc.model.units import MAX_BUFFER, MIN_BUFFER, parse_cpuset, parse_size

_MAX_MEMORY = (1 << 63) - 1


def target_sections() -> tuple[str, ...]:
    """Top-level sections that configure an output target (``"x-flowc-target": true`` in the schema).

    They travel to the target's settings model as they are, so no target's vocabulary enters the IR.

    Example:
        >>> target_sections()
        ('kubernetes', 'mithril', 'systemd')
    """
    return tuple(sorted(k for k, v in shipped.schema()["properties"].items() if v.get("x-flowc-target")))
_TASK_FIELDS = (
    "instance_type",
    "num_instances",
    "command",
    "image",
    "env",
    "region",
    "max_price_per_hour",
    "priority",
    "max_run_time_hours",
    "ssh_keys",
    "volumes",
    "topology",
)


def lower(doc: Document, ctx: Context) -> ir.Spec:
    """Build the IR from a document that passed the schema.

    Args:
        doc: The validated document.
        ctx: The context that collects diagnostics.

    Returns:
        The typed specification.

    Example:
        >>> ctx = Context("t.yaml")
        >>> spec = lower(Document("t.yaml", {"name": "x", "instance_type": "a100", "topology": "spread"}), ctx)
        >>> spec.tasks[0].topology.placement
        'spread'
    """
    return _Lowerer(doc, ctx).spec()


class _Lowerer:
    def __init__(self, doc: Document, ctx: Context) -> None:
        self.doc = doc
        self.ctx = ctx

    def spans(self, path: Path, value: dict[str, Any]) -> Mapping[str, Span]:
        """Spans of every field of the mapping at ``path``, list items included (``"cpu[0]"``)."""
        return _FieldSpans(self.doc, path, value)

    def spec(self) -> ir.Spec:
        data = self.doc.data
        tasks = []
        if "instance_type" in data:
            body = {k: data[k] for k in _TASK_FIELDS if k in data}
            tasks.append(self.task(data["name"], (), body, self.doc.key_span(("name",))))
        for name, body in data.get("tasks", {}).items():
            tasks.append(self.task(name, ("tasks", name), body, self.doc.key_span(("tasks", name))))
        actors = [self.actor(name, body) for name, body in data.get("actors", {}).items()]
        nodes = [self.node(name, body) for name, body in data.get("nodes", {}).items()]
        routes = [self.route(name, body) for name, body in data.get("inter_node", {}).items()]
        settings = {name: data[name] for name in target_sections() if name in data}
        return ir.Spec.model_construct(
            target_settings=settings,
            path=self.doc.path, tasks=tuple(tasks), actors=tuple(actors), nodes=tuple(nodes), routes=tuple(routes)
        )

    def task(self, name: str, path: Path, body: dict[str, Any], span: Span) -> ir.Task:
        fields = {k: v for k, v in body.items() if k not in ("topology", "volumes", "env", "command", "ssh_keys")}
        if "num_instances" in fields:
            fields["num_instances"] = int(fields["num_instances"])
        return ir.Task.trusted(
            name=name,
            span=span,
            spans=self.spans(path, body),
            **fields,
            command=_command(body.get("command")),
            env=_env(body.get("env")),
            ssh_keys=tuple(body.get("ssh_keys", ())),
            volumes=tuple(
                ir.Volume.trusted(
                    span=self.doc.span((*path, "volumes", i)), spans=self.spans((*path, "volumes", i), v), **_whole(v)
                )
                for i, v in enumerate(body.get("volumes", ()))
            ),
            topology=self.topology((*path, "topology"), body.get("topology")),
        )

    def topology(self, path: Path, value: str | dict[str, Any] | None) -> ir.Topology:
        span = self.doc.span(path)
        if value is None or isinstance(value, str):
            return ir.Topology.trusted(
                span=span,
                placement=value or "packed",
                interconnect=ir.Interconnect.trusted(span=span),
                constraints=ir.Constraints.trusted(span=span),
            )
        inter = value.get("interconnect", {})
        cons = value.get("constraints", {})
        constraints = ir.Constraints.trusted(
            span=self.doc.span((*path, "constraints")),
            spans=self.spans((*path, "constraints"), cons),
            **{**cons, "anti_affinity_groups": tuple(cons.get("anti_affinity_groups", ()))},
        )
        return ir.Topology.trusted(
            span=span,
            spans=self.spans(path, value),
            placement=value.get("placement", "packed"),
            interconnect=ir.Interconnect.trusted(
                span=self.doc.span((*path, "interconnect")), spans=self.spans((*path, "interconnect"), inter), **inter
            ),
            constraints=constraints,
        )

    def actor(self, name: str, body: dict[str, Any]) -> ir.Actor:
        path = ("actors", name)
        return ir.Actor.trusted(
            name=name,
            span=self.doc.key_span(path),
            spans=self.spans(path, body),
            role=body["type"],
            inputs=tuple(body.get("inputs", ())),
            outputs=tuple(body.get("outputs", ())),
            command=_command(body.get("command")),
            run=body.get("run"),
            params=dict(body.get("params", {})),
            env=_env(body.get("env")),
            realtime_priority=body.get("realtime_priority"),
            memory_max=self.memory_max(path, body["memory_max"]) if "memory_max" in body else None,
        )

    def memory_max(self, path: Path, value: int | str) -> int | None:
        try:
            return parse_size(value, maximum=_MAX_MEMORY, what="memory limit")
        except ValueError as exc:
            self.ctx.error("FLC341", f"invalid memory_max{_show(value)}: {exc}",
                           at=self.doc.span((*path, "memory_max")),
                           help="write a positive limit, such as '512MiB' or '4GiB'")
            return None

    def node(self, name: str, body: dict[str, Any]) -> ir.Node:
        path = ("nodes", name)
        return ir.Node.trusted(
            name=name,
            span=self.doc.key_span(path),
            spans=self.spans(path, body),
            hostname=body["hostname"],
            numa=self.numa((*path, "numa_topology"), body.get("numa_topology")),
            numa_declared="numa_topology" in body,
            placements=tuple(
                self.placement((*path, "actors", actor), actor, value)
                for actor, value in body.get("actors", {}).items()
            ),
            channels=tuple(
                self.channel((*path, "local_channels", channel), channel, value)
                for channel, value in body.get("local_channels", {}).items()
            ),
            bridge_cpus=self.cpus((*path, "bridge_cpus"), body["bridge_cpus"]) if "bridge_cpus" in body else (),
            metrics_port=body.get("metrics", {}).get("port"),
            metrics_address=body.get("metrics", {}).get("address"),
        )

    def numa(self, path: Path, value: list[int] | dict[str, Any] | None) -> tuple[ir.NumaDomain, ...]:
        if value is None:
            return (ir.NumaDomain.trusted(span=self.doc.span(path), id=0),)
        if isinstance(value, list):
            return tuple(
                ir.NumaDomain.trusted(span=self.doc.span((*path, i)), id=int(numa))
                for i, numa in enumerate(value)
            )
        domains = []
        for key, cpus in value.items():
            parsed = self.cpus((*path, key), cpus)
            domains.append(
                ir.NumaDomain.trusted(span=self.doc.key_span((*path, key)), id=int(key), cpus=parsed)
            )
        return tuple(sorted(domains, key=lambda d: d.id))

    def cpus(self, path: Path, value: str | list[int]) -> tuple[int, ...]:
        try:
            return parse_cpuset(value)
        except ValueError as exc:
            self.ctx.error(
                "FLC311",
                f"invalid cpu list {value!r}: {exc}",
                at=self.doc.span(path),
                help="write cpus as a list [0, 1] or a cpuset string '0-3,8' with ranges low-high",
            )
            return ()

    def placement(self, path: Path, actor: str, value: dict[str, Any]) -> ir.ActorPlacement:
        return ir.ActorPlacement.trusted(
            span=self.doc.key_span(path),
            spans=self.spans(path, value),
            actor=actor,
            numa=_integral(value.get("numa")),
            cpus=self.cpus((*path, "cpu"), value["cpu"]),
        )

    def channel(self, path: Path, name: str, value: dict[str, Any]) -> ir.LocalChannel:
        size = None
        if "buffer_size" in value:
            try:
                size = parse_size(value["buffer_size"], minimum=MIN_BUFFER, maximum=MAX_BUFFER)
            except ValueError as exc:
                self.ctx.error(
                    "FLC312",
                    f"invalid buffer_size{_show(value['buffer_size'])}: {exc}",
                    at=self.doc.span((*path, "buffer_size")),
                    help="write bytes as an integer, or a size such as '64MB' or '512KiB'"
                    + ("" if "at least one byte" in str(exc) else ", from 256B to 1TiB"),
                )
        fields = {k: v for k, v in _whole(value).items() if k != "buffer_size"}
        return ir.LocalChannel.trusted(
            span=self.doc.key_span(path), spans=self.spans(path, value), name=name, buffer_size=size, **fields
        )

    def route(self, name: str, body: dict[str, Any]) -> ir.Route:
        path = ("inter_node", name)
        node, _, channel = body["source"].partition(".")
        return ir.Route.trusted(
            name=name,
            span=self.doc.key_span(path),
            spans=self.spans(path, body),
            source_node=node,
            channel=channel,
            targets=tuple(body["targets"]),
            **{k: v for k, v in body.items() if k in ("transport", "compression", "auth")},
        )


def _whole(fields: dict[str, Any]) -> dict[str, Any]:
    """Turn integral floats into ints: JSON Schema counts ``1.0`` as an integer, the IR wants ``1``."""
    return {k: _integral(v) for k, v in fields.items()}


def _integral(value: Any) -> Any:
    """An integral float as an int (JSON Schema counts ``1.0`` as an integer); any other value as it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _show(value: Any) -> str:
    """Quote a value for a message after a space; a number of hundreds of digits is left to the reason."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return ""
    text = repr(value)
    return " " + (text if len(text) <= 40 else f"{text[:20]}...{text[-10:]}")


def _command(value: str | list[str] | None) -> str | tuple[str, ...] | None:
    return tuple(value) if isinstance(value, list) else value


def _env(value: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    if not value:
        return ()

    def text(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        return str(item)

    return tuple(sorted((key, text(item)) for key, item in value.items()))


class _FieldSpans(Mapping[str, Span]):
    """The spans of one mapping's fields, found in the document when a diagnostic asks for one.

    Keys are the mapping's keys, and ``key[index]`` for each item of a list value.
    """

    __slots__ = ("_doc", "_path", "_value")

    def __init__(self, doc: Document, path: Path, value: dict[str, Any]) -> None:
        self._doc = doc
        self._path = path
        self._value = value

    def __getitem__(self, name: str) -> Span:
        key, bracket, rest = name.partition("[")
        if key not in self._value:
            raise KeyError(name)
        if not bracket:
            return self._doc.span((*self._path, key))
        item = self._value[key]
        index = int(rest[:-1]) if rest[:-1].isdigit() and rest.endswith("]") else -1
        if not isinstance(item, list) or not 0 <= index < len(item) or name != f"{key}[{index}]":
            raise KeyError(name)
        return self._doc.span((*self._path, key, index))

    def __iter__(self) -> Iterator[str]:
        for key, item in self._value.items():
            yield key
            if isinstance(item, list):
                yield from (f"{key}[{index}]" for index in range(len(item)))

    def __len__(self) -> int:
        return sum(1 + (len(item) if isinstance(item, list) else 0) for item in self._value.values())
