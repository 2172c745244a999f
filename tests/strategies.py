"""Hypothesis strategies for flowc documents: valid ones (with what the plan must say) and mutations.

Valid documents are built from the answer outwards: every actor gets its own CPUs first and the NUMA
domains, channel types and routes are then derived so that they are consistent by construction. Each
generated document comes with an :class:`Expected` record that the compiled plan is checked against,
so a document that compiles into the wrong plan fails as surely as one that does not compile.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from ruamel.yaml import YAML

import flowc

CATALOG = json.loads((Path(flowc.__file__).parent / "data" / "instances.json").read_text(encoding="utf-8"))
ROWS: list[dict[str, Any]] = CATALOG["instance_types"]
REGIONS: list[str] = CATALOG["regions"]
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml"))

_UNITS = {"": 1, "B": 1, "KB": 2**10, "KiB": 2**10, "MB": 2**20, "MiB": 2**20, "GB": 2**30, "GiB": 2**30,
          "TB": 2**40, "TiB": 2**40}

# ---------------------------------------------------------------------------------------------------
# Scalars
# ---------------------------------------------------------------------------------------------------

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"
_ALNUM = _LOWER + _LOWER.upper() + _DIGITS


def words(first: str, rest: str, max_rest: int, last: str | None = None, min_rest: int = 0) -> st.SearchStrategy[str]:
    """Strings of one character of ``first``, then ``rest`` characters, then one of ``last`` if given.

    A cheaper ``st.from_regex`` for the simple patterns of the schema.
    """
    parts = [st.sampled_from(first), st.text(st.sampled_from(rest), min_size=min_rest, max_size=max_rest)]
    if last is not None:
        parts.append(st.sampled_from(last))
    return st.tuples(*parts).map("".join)


def _k8s(name: str) -> str:
    """Kubernetes spells '_' as '-': names that differ only there collide (FLC503)."""
    return name.replace("_", "-")


identifiers = words(_LOWER, _LOWER + _DIGITS + "_-", 12).filter(lambda name: name[-1].isalnum())
#: Free text: anything but '$' (which would start a ``${VAR}`` reference) and lone surrogates. Characters
#: outside the BMP are included on purpose: ``json.dumps`` writes them as escaped surrogate pairs.
# ruamel.yaml reads an unquoted '?x' inside a flow sequence as a complex key, and its emitter writes one
# unquoted: keep generated text away from that corner rather than test the YAML library.
free_text = st.text(st.characters(codec="utf-8", exclude_characters="$"), max_size=20).filter(
    lambda text: not text.startswith("?"))
_label = st.one_of(st.sampled_from(_ALNUM), words(_ALNUM, _ALNUM + "-", 8, _ALNUM))
hostnames = st.lists(_label, min_size=1, max_size=3).map(".".join)
env_maps = st.dictionaries(
    words(_ALNUM[:52] + "_", _ALNUM + "_", 15),
    st.one_of(free_text, st.integers(-(2**40), 2**40), st.booleans(),
              st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda x: round(x, 3))),
    max_size=3)
commands = st.one_of(free_text.filter(bool), st.lists(free_text, min_size=1, max_size=4))
images = words(_LOWER + _DIGITS, _LOWER + _DIGITS + "./:_@-", 40)
regions = st.one_of(st.sampled_from(REGIONS), words(_LOWER, _LOWER + _DIGITS + "-", 10, _LOWER + _DIGITS))
_volume_names = words(_LOWER + _DIGITS, _LOWER + _DIGITS + "-", 20, _LOWER + _DIGITS, min_rest=1)
_volume_ids = st.text(st.sampled_from(_ALNUM + "_-"), min_size=1, max_size=20)
_path_parts = words(_ALNUM + "_-", _ALNUM + "._-", 8)
#: Positive numbers written without an exponent (Python's repr switches to one below 1e-4).
positive_numbers = st.one_of(st.integers(1, 10_000), st.floats(min_value=0.01, max_value=10_000).map(
    lambda x: round(x, 2)).filter(lambda x: x > 0))


@dataclass
class Expected:
    """What the plan of a generated document must contain."""

    tasks: set[str] = field(default_factory=set)
    #: node -> actor -> sorted cpu ids.
    cpus: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict)
    #: (node, channel) -> (type, buffer size in bytes or None for the default) of every used channel.
    channels: dict[tuple[str, str], tuple[str, int | None]] = field(default_factory=dict)
    #: (producer node, channel, consumer node) of every hop that crosses nodes.
    crossings: set[tuple[str, str, str]] = field(default_factory=set)


# ---------------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------------


@st.composite
def volumes(draw: st.DrawFn, shared: bool) -> dict[str, Any]:
    """A volume; ``shared`` volumes (several instances) must be file volumes."""
    volume: dict[str, Any] = {}
    if draw(st.booleans()):
        volume["name"] = draw(_volume_names)
    else:
        volume["volume_id"] = draw(_volume_ids)
    if draw(st.booleans()):
        volume["size_gb"] = draw(st.integers(1, 16384))
    if draw(st.booleans()):
        volume["mount_path"] = "/" + "/".join(draw(st.lists(_path_parts, max_size=3)))
    if shared:
        volume["interface"] = "file"
    elif draw(st.booleans()):
        volume["interface"] = draw(st.sampled_from(["block", "file"]))
    return volume


@st.composite
def topologies(draw: st.DrawFn, row: dict[str, Any], count: int) -> Any:
    """A topology the instance type ``row`` can satisfy on ``count`` instances (or no topology)."""
    form = draw(st.sampled_from(["absent", "shorthand", "object"]))
    if form == "absent":
        return None
    if form == "shorthand":
        return draw(st.sampled_from(["packed", "spread", "cluster"]))
    topology: dict[str, Any] = {}
    if draw(st.booleans()):
        topology["placement"] = draw(st.sampled_from(["packed", "spread", "cluster"]))
    rdma = False
    if draw(st.booleans()):
        inter: dict[str, Any] = {}
        if draw(st.booleans()):
            inter["intranode"] = draw(st.sampled_from(["any", row["intranode"]]))
        if draw(st.booleans()):
            fabrics = ["any", "ethernet"]
            if count == 1 or row["internode"] in (None, "infiniband"):
                fabrics += ["infiniband", "roce"]
            inter["internode"] = draw(st.sampled_from(fabrics))
            rdma = inter["internode"] in ("infiniband", "roce") and count > 1
        if draw(st.booleans()):
            cap = row["internode_gbps"] if count > 1 and row["internode_gbps"] else 100_000
            inter["min_bandwidth_gbps"] = draw(positive_numbers.filter(lambda x: x <= cap))
        topology["interconnect"] = inter
    if draw(st.booleans()):
        cons: dict[str, Any] = {}
        for flag in ("same_zone", "same_rack"):
            if draw(st.booleans()):
                cons[flag] = draw(st.booleans())
        if draw(st.booleans()):
            cons["max_distance"] = draw(st.sampled_from(["rack", "zone"] if rdma else ["rack", "zone", "region"]))
        if draw(st.booleans()):
            cons["anti_affinity_groups"] = draw(st.lists(identifiers, unique=True, max_size=3))
        topology["constraints"] = cons
    return topology


@st.composite
def task_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """The body of one feasible task (everything but its name)."""
    row = draw(st.sampled_from(ROWS))
    body: dict[str, Any] = {"instance_type": draw(st.sampled_from([row["name"], *row["aliases"]]))}
    count = draw(st.one_of(st.integers(1, 4), st.integers(1, 256)))
    if count > 1 or draw(st.booleans()):
        body["num_instances"] = count
    optional = {
        "command": commands,
        "image": images,
        "env": env_maps,
        "region": regions,
        "max_price_per_hour": positive_numbers,
        "priority": st.sampled_from(["low", "med", "high"]),
        "max_run_time_hours": st.one_of(st.integers(0, 168), st.floats(0, 168).map(lambda x: round(x, 1))),
        "ssh_keys": st.lists(free_text.filter(bool), unique=True, max_size=2),
        "volumes": st.lists(volumes(shared=count > 1), max_size=2),
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=4)):
        body[key] = draw(optional[key])
    topology = draw(topologies(row, count))
    if topology is not None:
        body["topology"] = topology
    return body


# ---------------------------------------------------------------------------------------------------
# Actor topologies
# ---------------------------------------------------------------------------------------------------


def _ranges(cpus: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for cpu in sorted(cpus):
        if runs and runs[-1][1] == cpu - 1:
            runs[-1] = (runs[-1][0], cpu)
        else:
            runs.append((cpu, cpu))
    return runs


@st.composite
def cpusets(draw: st.DrawFn, cpus: list[int]) -> list[int] | str:
    """Write ``cpus`` as a list (any order) or as a cpuset string, ranges split at random."""
    if draw(st.booleans()):
        return draw(st.permutations(sorted(cpus)))
    parts = []
    for low, high in _ranges(cpus):
        while low <= high:
            end = draw(st.integers(low, high))
            space = draw(st.sampled_from(["", " "]))
            parts.append(f"{low}" if end == low and draw(st.booleans()) else f"{low}{space}-{space}{end}")
            low = end + 1
    lead, trail = draw(st.sampled_from(["", " "])), draw(st.sampled_from(["", " "]))
    return lead + draw(st.sampled_from([",", ", ", " ,"])).join(parts) + trail


@st.composite
def buffer_sizes(draw: st.DrawFn) -> tuple[int | str, int]:
    """A buffer size as written and in bytes: from 256 bytes (the smallest ring) to 1 TiB (flowc's limit)."""
    if draw(st.booleans()):
        size = draw(st.integers(256, 2**40))
        return size, size
    unit = draw(st.sampled_from(sorted(_UNITS)))
    lowest = 256 if unit in ("", "B") else 1
    number = draw(st.integers(lowest, {"TB": 1, "TiB": 1, "GB": 1023, "GiB": 1023}.get(unit, 4096)))
    half = unit not in ("", "B", "TB", "TiB") and draw(st.booleans())
    text = f"{number}.5" if half else str(number)
    return f"{text}{draw(st.sampled_from(['', ' ']))}{unit}", round((number + 0.5 * half) * _UNITS[unit])


@st.composite
def actor_topologies(draw: st.DrawFn, expected: Expected) -> dict[str, Any]:
    """Actors, nodes and routes that are consistent with one another; fills ``expected``."""
    node_names = draw(st.lists(identifiers, min_size=1, max_size=3, unique_by=_k8s))
    channel_names = draw(st.lists(identifiers, min_size=1, max_size=4, unique=True))
    actor_names = draw(st.lists(identifiers, min_size=1, max_size=6, unique=True))

    # Actors: roles and channels, every input produced by someone.
    def some(pool: set[str]) -> list[str]:
        return draw(st.lists(st.sampled_from(sorted(pool)), unique=True, max_size=2)) if pool else []

    roles = {name: draw(st.sampled_from(["producer", "transformer", "consumer"])) for name in actor_names}
    outputs = {name: some(set(channel_names)) if roles[name] != "consumer" else [] for name in actor_names}
    written = {c for outs in outputs.values() for c in outs}
    inputs = {name: some(written - set(outputs[name])) if roles[name] != "producer" else [] for name in actor_names}
    actors: dict[str, Any] = {}
    for name in actor_names:
        body: dict[str, Any] = {"type": roles[name]}
        if outputs[name] or (roles[name] != "consumer" and draw(st.booleans())):
            body["outputs"] = outputs[name]
        if inputs[name] or (roles[name] != "producer" and draw(st.booleans())):
            body["inputs"] = inputs[name]
        if draw(st.integers(0, 3)) == 0:
            body["command"] = draw(commands)
        if draw(st.integers(0, 3)) == 0:
            body["env"] = draw(env_maps)
        actors[name] = body

    # Placement: each actor on one node, with its own cpus and (maybe) a numa domain.
    home = {name: draw(st.sampled_from(node_names)) for name in actor_names}
    nodes: dict[str, Any] = {}
    for node in node_names:
        here = [a for a in actor_names if home[a] == node]
        form = draw(st.sampled_from(["none", "list", "map"]))
        ids = [0] if form == "none" else draw(st.lists(st.integers(0, 63), min_size=1, max_size=3, unique=True))
        cursor = draw(st.one_of(st.integers(0, 16), st.integers(3990, 4000)))
        domain_cpus: dict[int, list[int]] = {i: [] for i in ids}
        placements: dict[str, Any] = {}
        expected.cpus[node] = {}
        for actor in here:
            domain = draw(st.sampled_from(ids))
            cpus = []
            for _ in range(draw(st.integers(1, 3))):
                cursor += draw(st.integers(0, 2))
                cpus.append(cursor)
                cursor += 1
            domain_cpus[domain].extend(cpus)
            placement: dict[str, Any] = {}
            if draw(st.booleans()) and (form != "none" or draw(st.booleans())):
                placement["numa"] = domain
            placement["cpu"] = draw(cpusets(cpus))
            placements[actor] = placement
            expected.cpus[node][actor] = tuple(cpus)
        body = {"hostname": draw(hostnames)}
        if form == "list":
            body["numa_topology"] = draw(st.permutations(ids))
        elif form == "map":
            numa_map = {}
            for domain in draw(st.permutations(ids)):
                extra = draw(st.integers(0 if domain_cpus[domain] else 1, 3))
                numa_map[str(domain)] = draw(cpusets(domain_cpus[domain] + list(range(cursor, cursor + extra))))
                cursor += extra
            body["numa_topology"] = numa_map
        if placements or draw(st.booleans()):
            body["actors"] = placements
        body["_ids"] = ids
        nodes[node] = body

    # Who writes and reads each channel where.
    writers: dict[tuple[str, str], int] = {}
    readers: dict[tuple[str, str], int] = {}
    for actor in actor_names:
        for channel in outputs[actor]:
            writers[(home[actor], channel)] = writers.get((home[actor], channel), 0) + 1
        for channel in inputs[actor]:
            readers[(home[actor], channel)] = readers.get((home[actor], channel), 0) + 1

    # Routes: every channel read on a node that does not write it comes from one node that does.
    deliveries: dict[tuple[str, str], list[str]] = {}
    for (node, channel) in sorted(readers):
        sources = sorted(n for (n, c) in writers if c == channel and n != node)
        if (node, channel) in writers or not sources:
            continue
        source = draw(st.sampled_from(sources))
        deliveries.setdefault((source, channel), []).append(node)
    for (source, channel) in sorted(writers):
        others = [n for n in node_names if n != source and n not in deliveries.get((source, channel), [])]
        if others and draw(st.integers(0, 3)) == 0:
            deliveries.setdefault((source, channel), []).append(draw(st.sampled_from(others)))
    route_specs: list[tuple[str, str, list[str]]] = []
    for (source, channel), targets in sorted(deliveries.items()):
        targets = draw(st.permutations(targets))
        cut = draw(st.integers(1, len(targets)))
        for group in (targets[:cut], targets[cut:]):
            if group:
                route_specs.append((source, channel, group))
    routes: dict[str, Any] = {}
    route_names = draw(st.lists(identifiers, min_size=len(route_specs), max_size=len(route_specs), unique=True))
    routes_in: Counter[tuple[str, str]] = Counter()
    routes_out: Counter[tuple[str, str]] = Counter()
    for name, (source, channel, targets) in zip(route_names, route_specs, strict=True):
        route: dict[str, Any] = {"source": f"{source}.{channel}", "targets": targets}
        if draw(st.booleans()):
            route["transport"] = "tcp"
        if draw(st.booleans()):
            route["compression"] = draw(st.sampled_from(["none", "lz4", "zstd"]))
        routes[name] = route
        routes_out[(source, channel)] += len(targets)
        routes_in.update((target, channel) for target in targets)
        expected.crossings.update((source, channel, t) for t in targets if readers.get((t, channel)))

    # Local channels: a type consistent with the endpoints on the node, or none (then it is inferred).
    used = sorted({*writers, *readers, *routes_in, *routes_out})
    for node in node_names:
        ids = nodes[node].pop("_ids")
        declared: dict[str, Any] = {}
        for (where, channel) in used:
            if where != node:
                continue
            # Each route's receiver writes, and each route target has its own sender that reads.
            producers = writers.get((node, channel), 0) + routes_in[(node, channel)]
            consumers = readers.get((node, channel), 0) + routes_out[(node, channel)]
            inferred = ("S" if producers <= 1 else "M") + "P" + ("S" if consumers <= 1 else "M") + "C"
            size = None
            if draw(st.booleans()):
                expected.channels[(node, channel)] = (inferred, None)
                continue
            body = {}
            kind = inferred
            if draw(st.booleans()):
                kind = (draw(st.sampled_from("SM")) if producers <= 1 else "M") + "P" + (
                    draw(st.sampled_from("SM")) if consumers <= 1 else "M") + "C"
                body["type"] = kind
            if draw(st.booleans()):
                body["buffer_size"], size = draw(buffer_sizes())
            if draw(st.booleans()):
                body["numa"] = draw(st.sampled_from(ids))
            if draw(st.booleans()):
                body["huge_pages"] = draw(st.booleans())
            declared[channel] = body
            expected.channels[(node, channel)] = (kind, size)
        if draw(st.integers(0, 4)) == 0:
            unused = draw(identifiers)
            if (node, unused) not in used:
                declared[unused] = {"type": draw(st.sampled_from(["SPSC", "SPMC", "MPSC", "MPMC"]))}
        if declared:
            nodes[node]["local_channels"] = declared

    document: dict[str, Any] = {"actors": actors, "nodes": nodes}
    if routes or draw(st.booleans()):
        document["inter_node"] = routes
    return document


# ---------------------------------------------------------------------------------------------------
# Whole documents
# ---------------------------------------------------------------------------------------------------


@st.composite
def valid_documents(draw: st.DrawFn) -> tuple[dict[str, Any], Expected]:
    """A document flowc must compile without errors, and what its plan must contain."""
    expected = Expected()
    document: dict[str, Any] = {}
    parts = draw(st.sets(st.sampled_from(["task", "tasks", "actors"]), min_size=1))
    names = draw(st.lists(identifiers, min_size=4, max_size=4, unique_by=_k8s))
    if "task" in parts:
        document["name"] = names[0]
        document.update(draw(task_bodies()))
        expected.tasks.add(names[0])
    if "tasks" in parts:
        # An empty 'tasks:' is fine beside other declarations; alone it declares nothing (FLC210).
        count = draw(st.integers(0 if parts - {"tasks"} else 1, 3))
        document["tasks"] = {name: draw(task_bodies()) for name in names[1:1 + count]}
        expected.tasks.update(names[1:1 + count])
    if "actors" in parts:
        document.update(draw(actor_topologies(expected)))
    return document, expected


def dump_yaml(document: Any, style: str) -> str:
    """Write a document as YAML text: ``json``, ``json-indented``, ``block`` or ``flow``."""
    if style == "json":
        return json.dumps(document) + "\n"
    if style == "json-indented":
        return json.dumps(document, indent=2)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = style == "flow"
    yaml.width = 4096
    stream = io.StringIO()
    yaml.dump(document, stream)
    text = stream.getvalue()
    if style == "flow":
        # ruamel.yaml writes some plain keys that its own flow-context grammar refuses (``{:0: null}``); such a
        # document goes as JSON, which is flow-style YAML too, so every generated text is valid YAML.
        try:
            if YAML(typ="safe", pure=True).load(text) != document:
                return json.dumps(document) + "\n"
        except Exception:  # noqa: BLE001 - any refusal of ruamel's own output
            return json.dumps(document) + "\n"
    return text


yaml_styles = st.sampled_from(["json", "json-indented", "block", "flow"])


@st.composite
def valid_texts(draw: st.DrawFn) -> tuple[str, dict[str, Any], Expected]:
    """A valid document as YAML text, with the data and the expectations it was written from."""
    document, expected = draw(valid_documents())
    return dump_yaml(document, draw(yaml_styles)), document, expected


# ---------------------------------------------------------------------------------------------------
# Mutations
# ---------------------------------------------------------------------------------------------------

#: Characters that mean something to YAML or to flowc, plus some that mean nothing.
_NASTY = ["\t", "'", '"', "${", "$", "}", "*", "&", "!", "!!", ":", ": ", "-", "- ", "#", "{", "}", "[", "]",
          ",", "|", ">", "?", "%", "@", "`", "\n", "\r", "\r\n", " ", "  ", "~", "<<", "---", "...", "\\",
          "${X", "${:-}", "$$", "\ufeff", "\x00", "\x07", "\x1b", "\x85", "\u2028", "é", "0x", "1e9", "-1",
          "null", "true", ".nan", "2020-02-30", "2020-01-01 25:00:00", "0x_", "0o_", "!!int ", "!!omap ",
          "!!set ", "!!timestamp ", "!!binary ", "<<: ", "9" * 4400, "1e400"]
nasty_strings = st.one_of(
    st.lists(st.sampled_from(_NASTY), min_size=1, max_size=4).map("".join),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=6),
)

#: Values of every JSON type, to put where another type belongs.
wrong_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), free_text, nasty_strings,
    st.floats(allow_nan=False, allow_infinity=False), st.lists(st.integers(-3, 5000), max_size=3),
    st.lists(free_text, max_size=2), st.dictionaries(identifiers, st.integers(), max_size=2),
    st.sampled_from(["0-3,8", "3-0", "64MB", "0B", "SPSC", "nvlink", "a.b", "x.y.z", "", "-", "0", "07",
                     "9999999TB", "1.5TiB", "255", "localhost\n", "a\n"]),
    st.integers(-(2**1100), 2**1100),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(_paths(item, (*prefix, index)))
    return out


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        document = document[part]
    return document


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


@st.composite
def mutated_data(draw: st.DrawFn, document: Any) -> Any:
    """Apply one data-level mutation.

    Delete, rename or retype a value, duplicate a list item, or move a value (or a key name) from one
    place of the document to another: the moves keep the schema happy more often than random values,
    so they reach the semantic checks with inconsistent topologies.
    """
    document = _copy(document)
    paths = [p for p in _paths(document) if p]
    if not paths:
        return draw(wrong_values)
    path = draw(st.sampled_from(paths))
    parent = _parent(document, path)
    key = path[-1]
    names = sorted({p[-1] for p in paths if isinstance(p[-1], str)})
    op = draw(st.sampled_from(["delete", "rename", "replace", "duplicate", "transplant", "rename_to_other"]))
    if op == "delete":
        del parent[key]
    elif op == "rename" and isinstance(parent, dict):
        new = draw(st.one_of(identifiers, nasty_strings, st.just(key.upper()), st.just(key[:-1] or "x"),
                             st.just(key + key[-1:]), st.just(key + "\n")))
        parent[new] = parent.pop(key)
    elif op == "rename_to_other" and isinstance(parent, dict):
        parent[draw(st.sampled_from(names))] = parent.pop(key)
    elif op == "duplicate" and isinstance(parent, list):
        parent.insert(key, _copy(parent[key]))
    elif op == "transplant":
        donor = draw(st.sampled_from(paths))
        parent[key] = _copy(_parent(document, donor)[donor[-1]])
    else:
        parent[key] = draw(wrong_values)
    return document


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> str:
    """Apply one text-level mutation."""
    lines = text.splitlines(keepends=True) or [""]
    op = draw(st.sampled_from(["duplicate_line", "delete_line", "swap_lines", "truncate", "insert",
                               "indent", "tab_indent", "dedent", "swap_indent"]))
    index = draw(st.integers(0, len(lines) - 1))
    if op == "duplicate_line":
        lines.insert(index, lines[index])
    elif op == "delete_line":
        del lines[index]
    elif op == "swap_lines":
        other = draw(st.integers(0, len(lines) - 1))
        lines[index], lines[other] = lines[other], lines[index]
    elif op == "truncate":
        return text[:draw(st.integers(0, len(text)))]
    elif op == "insert":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(nasty_strings) + text[at:]
    elif op == "indent":
        lines[index] = " " * draw(st.integers(1, 4)) + lines[index]
    elif op == "swap_indent":
        other = draw(st.integers(0, len(lines) - 1))
        first, second = lines[index], lines[other]
        lines[index] = second[:len(second) - len(second.lstrip(" \t"))] + first.lstrip(" \t")
        lines[other] = first[:len(first) - len(first.lstrip(" \t"))] + second.lstrip(" \t")
    elif op == "tab_indent":
        stripped = lines[index].lstrip(" ")
        lines[index] = "\t" * draw(st.integers(1, 2)) + stripped if stripped != lines[index] else "\t" + stripped
    else:
        lines[index] = lines[index].lstrip(" \t")
    return "".join(lines)


def load_example(path: Path) -> Any:
    """Read an example file as plain data."""
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


EXAMPLE_TEXTS = {path.name: path.read_text(encoding="utf-8") for path in EXAMPLES}
EXAMPLE_DATA = {path.name: load_example(path) for path in EXAMPLES}


@st.composite
def source_documents(draw: st.DrawFn) -> tuple[str, Any]:
    """Text and data to mutate: an example file, or a generated valid document."""
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(EXAMPLE_TEXTS)))
        return EXAMPLE_TEXTS[name], EXAMPLE_DATA[name]
    document, _ = draw(valid_documents())
    return dump_yaml(document, draw(yaml_styles)), document


@st.composite
def mutated_documents(draw: st.DrawFn) -> str:
    """A document after one to four random mutations, at the data level, the text level or both."""
    text, data = draw(source_documents())
    steps = draw(st.lists(st.sampled_from(["data", "text"]), min_size=1, max_size=4))
    if "data" in steps:
        for _ in range(steps.count("data")):
            data = draw(mutated_data(data))
        text = dump_yaml(data, draw(yaml_styles))
    for _ in range(steps.count("text")):
        text = draw(mutated_text(text))
    return text
