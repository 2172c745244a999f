"""A node's plan ConfigMap must fit the 1 MiB Kubernetes accepts: FLC508 at build (exact) and at check (bound).

The documents here put one node's actors' ``params`` around the limit, calibrated from a build of the same shape
with empty params: each ASCII character of a parameter adds one byte to the ConfigMap and to its lower bound.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowc.cli import main
from flowc.emit.kubernetes.configmap_size import CONFIGMAP_LIMIT, configmap_lower_bounds, data_size
from flowc.emit.kubernetes.settings import k8s_name
from flowc.model.options import BuildOptions
from flowc.pipeline import compile_source

from conftest import ROOT
from k8s_schema import VERSIONS, errors
from strategies import dump_yaml, free_text, valid_documents, words, yaml_styles

SOURCES = sorted((ROOT / "examples").glob("*.yaml")) + sorted((ROOT / "tests" / "golden").glob("*/input.yaml"))
SINKS = 16
#: The file name the CLI tests write (the slice records it, so calibration compiles under it too).
SOURCE_NAME = "big.yaml"


def document(blob_chars: int, sinks: int = SINKS) -> str:
    """One node 'big': a producer and ``sinks`` consumers whose ``params`` hold ``blob_chars`` characters in all."""
    share, extra = divmod(blob_chars, sinks)
    lines = ["actors:", "  source: {type: producer, outputs: [ticks], run: 'flowc.actors:synthetic_producer'}"]
    for i in range(sinks):
        blob = "x" * (share + (i < extra))
        lines.append(f"  sink_{i}: {{type: consumer, inputs: [ticks], run: 'flowc.actors:latency_sink', "
                     f"params: {{blob: '{blob}', rate: {i}}}, env: {{SINK: '{i}'}}}}")
    lines += ["nodes:", "  big:", "    hostname: h1", "    actors:", "      source: {cpu: [0]}"]
    lines += [f"      sink_{i}: {{cpu: [{i + 1}]}}" for i in range(sinks)]
    return "\n".join(lines) + "\n"


def configmaps(text: str) -> dict[str, dict[str, Any]]:
    """Build ``text`` for Kubernetes; return its ConfigMaps by name."""
    result = compile_source(text, SOURCE_NAME, environ={}, until="artifacts",
                            options=BuildOptions(targets=("kubernetes",)))
    assert result.artifacts is not None, result.diagnostics
    loaded = [yaml.safe_load(a.content) for a in result.artifacts if a.path.startswith("configmap-")]
    return {obj["metadata"]["name"]: obj for obj in loaded}


def bounds_and_sizes(text: str) -> list[tuple[str, int, int]]:
    """``(node, lower bound, exact ConfigMap data size)`` of every node of ``text``."""
    checked = compile_source(text, SOURCE_NAME, environ={}, until="spec")
    assert checked.ok, checked.diagnostics
    spec = checked.values["spec"]
    bounds = configmap_lower_bounds(spec)
    built = configmaps(text)
    return [(node.name, bounds[node.name], data_size(built[k8s_name(node.name) + "-plan"]["data"]))
            for node in spec.nodes]


@pytest.fixture(scope="module")
def calibration() -> tuple[int, int]:
    """The exact size and the lower bound of the node 'big' with empty blobs."""
    [(_, bound, size)] = bounds_and_sizes(document(0))
    return size, bound


def run(tmp_path: Path, command: str, text: str, *args: str) -> tuple[Path, Result]:
    """Write ``text`` to ``tmp_path/big.yaml`` and run ``flowc COMMAND big.yaml ARGS``."""
    source = tmp_path / SOURCE_NAME
    source.write_text(text)
    return source, CliRunner().invoke(main, [command, str(source), *args])


def node_position(source: Path) -> str:
    return f"{source}:{source.read_text().splitlines().index('  big:') + 1}:3"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_lower_bound_never_exceeds_the_configmap_of_an_example(source: Path) -> None:
    for node, bound, size in bounds_and_sizes(source.read_text()):
        assert 0 < bound <= size, node


@pytest.mark.parametrize("text", [document(0), document(5000), document(300_000, sinks=3), document(10, sinks=40)],
                         ids=["empty", "small", "large", "many"])
def test_lower_bound_of_generated_nodes(text: str) -> None:
    [(_, bound, size)] = bounds_and_sizes(text)
    assert bound <= size
    # What the bound leaves out is small and does not grow with the params: check catches nearly every case.
    assert size - bound < 2048


def fanned_out(blob_chars: int, targets: int) -> str:
    """:func:`document`, with 'big' sending its channel to ``targets`` nodes of one reader each over one route."""
    lines = document(blob_chars).splitlines()
    at = lines.index("nodes:")
    lines[at:at] = [f"  far_{i}: {{type: consumer, inputs: [ticks], run: 'flowc.actors:latency_sink'}}"
                    for i in range(targets)]
    lines += [f"  n{i}: {{hostname: h{i + 2}, actors: {{far_{i}: {{cpu: [0]}}}}}}" for i in range(targets)]
    lines += ["inter_node:", f"  fan: {{source: big.ticks, targets: [{', '.join(f'n{i}' for i in range(targets))}]}}"]
    return "\n".join(lines) + "\n"


def test_lower_bound_of_nodes_joined_by_a_route() -> None:
    found = bounds_and_sizes(fanned_out(20_000, 70))
    assert all(bound <= size for _, bound, size in found)
    [(_, bound, size)] = [item for item in found if item[0] == "big"]
    # Each route end's start stage (left out of the bound) costs the sender ~30 bytes per target.
    assert size - bound < 2048 + 40 * 70


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63) + 1, 2**63 - 1) | free_text
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(free_text, inner, max_size=3), max_leaves=10)
param_maps = st.dictionaries(words("abcdefghijklmnopqrstuvwxyz_", "abcdefghijklmnopqrstuvwxyz0123456789_", 10),
                             json_values, max_size=4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_documents(), st.data(), yaml_styles)
def test_lower_bound_never_exceeds_the_configmap(generated: Any, data: st.DataObject, style: str) -> None:
    topology, _ = generated
    for body in topology.get("actors", {}).values():
        if "command" not in body and data.draw(st.booleans()):
            body["run"] = "flowc.actors:latency_sink"
            body["params"] = data.draw(param_maps)
    for node, bound, size in bounds_and_sizes(dump_yaml(topology, style)):
        assert bound <= size, node


def test_a_configmap_one_byte_over_fails_the_build_and_writes_nothing(tmp_path: Path,
                                                                      calibration: tuple[int, int]) -> None:
    size, bound = calibration
    out = tmp_path / "out"
    assert run(tmp_path, "build", document(0), "-o", str(out))[1].exit_code == 0
    before = snapshot(out)
    over = document(CONFIGMAP_LIMIT - size + 1)
    source, result = run(tmp_path, "build", over, "-o", str(out))
    assert result.exit_code == 1
    assert (f"{node_position(source)}: error[FLC508] the plan slice of node 'big' makes a kubernetes configmap of "
            f"{CONFIGMAP_LIMIT + 1:,} bytes, more than the 1,048,576 bytes (1 MiB) kubernetes accepts") in result.stderr
    assert "help: split the node's actors over more nodes" in result.stderr
    assert snapshot(out) == before
    # Its bound is under the limit, so check, which never builds, has nothing to say about it.
    assert bound < size
    _, checked = run(tmp_path, "check", over)
    assert checked.exit_code == 0 and "FLC508" not in checked.output


def test_a_configmap_at_the_limit_builds_and_validates(tmp_path: Path, calibration: tuple[int, int]) -> None:
    size, _ = calibration
    out = tmp_path / "out"
    _, result = run(tmp_path, "build", document(CONFIGMAP_LIMIT - size), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    config = yaml.safe_load((out / "configmap-big-plan.yaml").read_text())
    assert data_size(config["data"]) == CONFIGMAP_LIMIT
    for version in VERSIONS:
        assert errors(config, version) == []


def test_check_reports_a_node_whose_bound_is_over_the_limit(tmp_path: Path, calibration: tuple[int, int]) -> None:
    _, bound = calibration
    over = document(CONFIGMAP_LIMIT - bound + 1)
    source, checked = run(tmp_path, "check", over)
    assert checked.exit_code == 1
    assert (f"{node_position(source)}: error[FLC508] the plan slice of node 'big' makes a kubernetes configmap of "
            f"at least {CONFIGMAP_LIMIT + 1:,} bytes") in checked.stdout
    out = tmp_path / "out"
    _, built = run(tmp_path, "build", over, "-o", str(out))
    assert built.exit_code == 1 and "error[FLC508]" in built.stderr
    assert not out.exists()


def test_systemd_only_builds_take_no_configmap_limit(tmp_path: Path, calibration: tuple[int, int]) -> None:
    _, bound = calibration
    _, result = run(tmp_path, "build", document(CONFIGMAP_LIMIT - bound + 1), "-o", str(tmp_path / "out"),
                    "--target", "systemd")
    assert result.exit_code == 0, result.stderr
