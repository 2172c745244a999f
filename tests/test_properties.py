"""Property tests: valid documents compile (to the right plan, deterministically), mutated ones never crash.

The strategies live in ``tests/strategies.py``. ``REPRODUCERS`` holds minimal inputs of bugs the properties
found; they are tested on their own (in-process and through the CLI) so that each fix, or regression, shows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from flowc.diagnostics.codes import CODES
from flowc.diagnostics.render import render_text
from flowc.emit.registry import emit_targets as emit_all
from flowc.model.context import Context
from flowc.passes.resolve_transports import DEFAULT_BUFFER_SIZE
from flowc.pipeline import compile_source

from strategies import (
    EXAMPLE_TEXTS,
    EXAMPLES_DIR,
    Expected,
    mutated_documents,
    valid_texts,
)

_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
VALID = settings(max_examples=150, deadline=None, suppress_health_check=_SLOW)
MUTATIONS = settings(max_examples=400, deadline=None, suppress_health_check=_SLOW)
#: Subprocess properties do not shrink: each step would start flowc again. A failure shows the input as drawn.
_NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
SUBPROCESS = settings(max_examples=2, deadline=None, suppress_health_check=_SLOW, phases=_NO_SHRINK)
CLI = settings(max_examples=6, deadline=None, suppress_health_check=_SLOW, phases=_NO_SHRINK)

NAME = "gen.yaml"
_NODE = """\
actors:
  p: {type: producer, outputs: [c]}
  q: {type: consumer, inputs: [c]}
nodes:
  n:
    hostname: h
"""
_CHANNELS = _NODE + "    actors: {p: {cpu: [0]}, q: {cpu: [1]}}\n"
#: Minimal inputs of the bugs these properties found, checked by the same assertions as the properties.
REPRODUCERS = {
    "control character": "\x01",
    "deeply nested flow collection": "[" * 400,
    "integral float buffer_size": _CHANNELS + "    local_channels: {c: {buffer_size: 1.0}}\n",
    "nan price": "name: x\ninstance_type: a100\nmax_price_per_hour: .nan\n",
    "integral float cpu ids": _NODE + "    actors: {p: {cpu: [1.0, 2.0]}, q: {cpu: [3]}}\n",
    "integral float numa ids": _NODE + "    numa_topology: [0, 1.0]\n    actors: {p: {cpu: [1]}, q: {cpu: [3]}}\n",
    "collection inside a complex key": "{[[]]: 1}\n",
    "tagged scalar as the document": "!a\n",
    "escaped surrogate pair": '{"name": "x", "instance_type": "a100", "command": "\\ud800\\udc00"}\n',
    "impossible date": "name: x\ninstance_type: a100\nregion: 2020-02-30\n",
    "impossible time": "name: x\ninstance_type: a100\nregion: 2020-01-01 25:00:00\n",
    "hex without digits": "name: x\ninstance_type: a100\nnum_instances: 0x_\n",
    "integer over 4300 digits": "name: x\ninstance_type: a100\nnum_instances: " + "9" * 4400 + "\n",
    "int tag on text": "name: x\ninstance_type: a100\nnum_instances: !!int x\n",
    "omap tag on a scalar": "name: x\ninstance_type: !!omap a100\n",
    "set tag on a scalar": "name: x\ninstance_type: !!set a100\n",
    "merge key as the only key": "name: x\ninstance_type: a100\ntopology: {<<: {placement: spread}}\n",
    "400-digit buffer_size": _CHANNELS + "    local_channels: {c: {buffer_size: " + "9" * 400 + "}}\n",
    "310-digit price": "name: x\ninstance_type: a100\nmax_price_per_hour: " + "9" * 310 + "\n",
    "trailing newline in a hostname": _NODE.replace("hostname: h", 'hostname: "h\\n"'),
}


def _errors(result) -> list:
    return [d for d in result.diagnostics if d.severity == "error"]


def _artifacts(plan) -> list[tuple[str, bytes, bool]]:
    return [(a.path, a.content, a.executable) for a in emit_all(plan, Context(NAME))]


def _expand(cpuset: str) -> tuple[int, ...]:
    assert re.fullmatch(r"[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*", cpuset), cpuset
    cpus: list[int] = []
    for part in cpuset.split(","):
        low, _, high = part.partition("-")
        cpus.extend(range(int(low), int(high or low) + 1))
    return tuple(cpus)


def _check_plan_consistent(plan) -> None:
    """What holds for every plan: strict JSON, integer ids, cpusets that say what the cpu lists say."""
    _strict_json(plan.to_json())
    for node in plan.nodes.values():
        assert all(re.fullmatch(r"[0-9]+", key) for key in node.numa_topology), node.numa_topology
        for actor in node.actors.values():
            assert actor.numa is None or type(actor.numa) is int, actor
            assert all(type(cpu) is int for cpu in actor.cpus), actor
            assert _expand(actor.cpuset) == actor.cpus, actor


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> None:
        raise ValueError(f"plan.json contains {constant}, which is not JSON")

    return json.loads(text, parse_constant=refuse)


# ---------------------------------------------------------------------------------------------------
# 1. Valid documents compile, to the plan they describe, the same way every time
# ---------------------------------------------------------------------------------------------------


def _check_plan(plan, expected: Expected) -> None:
    assert set(plan.tasks) == expected.tasks
    cpus = {node: {actor: placed.cpus for actor, placed in body.actors.items()} for node, body in plan.nodes.items()}
    assert cpus == expected.cpus
    channels = {(node, name): (channel.type, channel.buffer_size)
                for node, body in plan.nodes.items() for name, channel in body.channels.items()}
    assert channels == {key: (kind, size or DEFAULT_BUFFER_SIZE) for key, (kind, size) in expected.channels.items()}
    crossings = {(link.producer_node, link.channel, link.consumer_node) for link in plan.links
                 if link.transport == "tcp"}
    assert crossings == expected.crossings
    assert all(link.route is not None for link in plan.links if link.transport == "tcp")


@VALID
@given(valid_texts())
def test_valid_documents_compile_to_their_plan_deterministically(case) -> None:
    text, _, expected = case
    first = compile_source(text, NAME, environ={})
    assert first.plan is not None and not _errors(first), render_text(first.diagnostics) + text
    _check_plan(first.plan, expected)
    second = compile_source(text, NAME, environ={})
    assert second.plan is not None
    assert first.plan.to_json() == second.plan.to_json()
    assert _artifacts(first.plan) == _artifacts(second.plan)
    _check_plan_consistent(first.plan)


@pytest.mark.parametrize("name", sorted(EXAMPLE_TEXTS))
def test_examples_compile_deterministically(name: str) -> None:
    text = EXAMPLE_TEXTS[name]
    first, second = (compile_source(text, name, environ={}) for _ in range(2))
    assert first.plan is not None and not _errors(first), render_text(first.diagnostics)
    assert first.plan.to_json() == second.plan.to_json()
    assert _artifacts(first.plan) == _artifacts(second.plan)


# ---------------------------------------------------------------------------------------------------
# 2. The same bytes from another process, hash seed and working directory
# ---------------------------------------------------------------------------------------------------


def _build(file_arg: str, out_arg: str, cwd: Path, hashseed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    proc = subprocess.run([sys.executable, "-m", "flowc", "build", file_arg, "-o", out_arg], cwd=cwd, env=env,
                          capture_output=True, text=True, errors="replace", timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _tree(directory: Path) -> dict[str, bytes]:
    return {path.relative_to(directory).as_posix(): path.read_bytes()
            for path in sorted(directory.rglob("*")) if path.is_file()}


def _assert_builds_agree(text: str, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = root / "docs" / name
        source.parent.mkdir()
        source.write_bytes(text.encode("utf-8"))
        # Absolute input, relative output, from one directory; relative input, absolute output, from another.
        (root / "a").mkdir()
        _build(str(source), "out", root / "a", "0")
        (root / "b" / "deep").mkdir(parents=True)
        _build(os.path.join("..", "..", "docs", name), str(root / "out-b"), root / "b" / "deep", "4242")
        first, second = _tree(root / "a" / "out"), _tree(root / "out-b")
        assert first == second
        expected = compile_source(text, name, environ=dict(os.environ)).plan
        assert expected is not None
        assert first["flowc/plan.json"] == expected.to_json().encode("utf-8")


@pytest.mark.parametrize("name", ["multi-node.yaml", "training-with-datapath.yaml"])
def test_example_builds_are_identical_across_processes(name: str) -> None:
    _assert_builds_agree((EXAMPLES_DIR / name).read_text(encoding="utf-8"), name)


@SUBPROCESS
@given(valid_texts().filter(lambda case: len(case[2].crossings) >= 1 and len(case[2].tasks) >= 1))
def test_generated_builds_are_identical_across_processes(case) -> None:
    _assert_builds_agree(case[0], NAME)


# ---------------------------------------------------------------------------------------------------
# 3. Mutated documents: diagnostics, never exceptions
# ---------------------------------------------------------------------------------------------------


def _check_result(text: str, result) -> None:
    lines = len(text.splitlines())
    for d in result.diagnostics:
        assert d.code in CODES, d
        assert d.severity in ("error", "warning"), d
        assert d.span.path == NAME, d
        assert 1 <= d.span.line <= lines + 1, (d, lines)
        assert d.span.col >= 1, d
        assert (d.span.end_line, d.span.end_col) >= (d.span.line, d.span.col), d
    if result.plan is None:
        assert _errors(result), result.diagnostics
    else:
        assert not _errors(result), result.diagnostics
        _check_plan_consistent(result.plan)
        emit_all(result.plan, Context(NAME))


@MUTATIONS
@given(mutated_documents())
def test_mutated_documents_give_diagnostics_not_exceptions(text: str) -> None:
    _check_result(text, compile_source(text, NAME, environ={}))


def _flowc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    flowc = shutil.which("flowc")
    command = [flowc] if flowc else [sys.executable, "-m", "flowc"]
    return subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, errors="replace",
                          timeout=120, check=False)


@CLI
@given(mutated_documents())
def test_cli_check_on_mutated_files_exits_cleanly(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / NAME
        path.write_bytes(text.encode("utf-8"))
        proc = _flowc("check", str(path))
    output = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), output
    assert "Traceback" not in output and "internal error" not in output, output


# ---------------------------------------------------------------------------------------------------
# Reproducers of the bugs the properties found, each on its own so that each fix shows
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REPRODUCERS))
def test_reproducer_gives_diagnostics_not_exceptions(name: str) -> None:
    text = REPRODUCERS[name]
    _check_result(text, compile_source(text, NAME, environ={}))


@pytest.mark.parametrize("name", sorted(REPRODUCERS))
def test_reproducer_through_the_cli_exits_cleanly(name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / NAME
        path.write_bytes(REPRODUCERS[name].encode("utf-8"))
        proc = _flowc("build", str(path), "-o", str(Path(tmp) / "out"))
    output = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), output
    assert "Traceback" not in output and "internal error" not in output, output


def test_escaped_surrogate_pair_is_the_character_it_encodes() -> None:
    # json.dumps writes every character outside the BMP this way, and JSON is YAML 1.2.
    text = '{"name": "x", "instance_type": "a100", "command": "echo \\ud83d\\ude00"}\n'
    result = compile_source(text, NAME, environ={})
    assert result.plan is not None, render_text(result.diagnostics)
    assert result.plan.tasks["x"].command == "echo \U0001f600"
