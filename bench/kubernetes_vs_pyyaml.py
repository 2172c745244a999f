"""Benchmark: the Kubernetes emitter against PyYAML's C dumper writing the very same objects.

Generates an actor topology of ``--nodes`` nodes (two pinned actors and a local channel each, and a
TCP route from every node to the next), compiles it once, then times in the same run:

* baseline: ``yaml.dump(obj, Dumper=CSafeDumper, sort_keys=True)`` of every object the emitter builds;
* flowc: the Kubernetes emitter, plan → manifests (building the objects, slicing the plan per node,
  serializing);
* for context, the whole in-process build from the YAML text (parse, checks, plan, every emitter).

Prints medians and the ratios to the baseline; the goal is emitter ≤ 3× baseline.

Usage: ``python bench/kubernetes_vs_pyyaml.py [--nodes 1000] [--runs 5]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import yaml

GOAL = 3.0


def topology(nodes: int) -> str:
    """Return a valid document with ``nodes`` nodes, each sending its channel on to the next node.

    Args:
        nodes: How many nodes.

    Returns:
        The YAML text.
    """
    lines = ["actors:"]
    for i in range(nodes):
        lines.append(f"  p{i}: {{type: producer, outputs: [c{i}]}}")
        lines.append(f"  k{i}: {{type: consumer, inputs: [c{i}{', c' + str(i - 1) if i else ''}]}}")
    lines.append("nodes:")
    for i in range(nodes):
        lines.append(f"  n{i}:")
        lines.append(f"    hostname: host-{i}")
        lines.append('    numa_topology: {0: "0-3", 1: "4-7"}')
        lines.append("    actors: {" + f"p{i}: {{numa: 0, cpu: [0, 1]}}, k{i}: {{numa: 0, cpu: [2, 3]}}" + "}")
        lines.append("    local_channels: {" + f"c{i}: {{type: SPMC, buffer_size: 64MiB}}" + "}")
    lines.append("inter_node:")
    for i in range(nodes - 1):
        lines.append(f"  r{i}: {{source: n{i}.c{i}, targets: [n{i + 1}], compression: lz4}}")
    return "\n".join(lines) + "\n"


def median_seconds(action: Callable[[], object], runs: int) -> float:
    """Median wall time of ``runs`` calls after one warm-up call."""
    action()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report.

    Args:
        argv: The arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        0 after a measurement, 2 when the generated topology does not compile.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    import flowc.emit.kubernetes.emitter as k8s
    from flowc.model.context import Context
    from flowc.pipeline import compile_source

    text = topology(args.nodes)
    result = compile_source(text, "bench.yaml", environ={})
    if result.plan is None:
        print("bench: the generated topology does not compile:", *result.diagnostics, sep="\n", file=sys.stderr)
        return 2
    plan = result.plan
    settings = k8s.Settings.merged(plan.targets.get("kubernetes", {}), {}, plan.source)

    captured: list[object] = []
    real_dump = k8s.dump_yaml
    k8s.dump_yaml = lambda obj: captured.append(obj) or real_dump(obj)
    try:
        manifests = k8s.emit(plan, settings, Context("bench.yaml"))
    finally:
        k8s.dump_yaml = real_dump
    dumper = getattr(yaml, "CSafeDumper", None)
    if dumper is None:
        print("bench: PyYAML was built without libyaml; the C dumper baseline is unavailable", file=sys.stderr)
        return 2

    def baseline() -> None:
        for obj in captured:
            yaml.dump(obj, Dumper=dumper, sort_keys=True, default_flow_style=False, width=1 << 16)

    base = median_seconds(baseline, args.runs)
    emit = median_seconds(lambda: k8s.emit(plan, settings, Context("bench.yaml")), args.runs)
    def build() -> object:
        return compile_source(text, "bench.yaml", environ={}, until="artifacts")

    full = median_seconds(build, max(1, args.runs // 2))
    size = sum(len(a.content) for a in manifests)
    print(f"topology: {args.nodes} nodes, {2 * args.nodes} actors, {args.nodes - 1} routes; "
          f"{len(manifests)} manifests, {size / 1024:.0f} KiB")
    print(f"runs: median of {args.runs} after 1 warm-up")
    print(f"PyYAML CSafeDumper, same objects:  {base * 1000:9.1f} ms  (baseline)")
    print(f"flowc kubernetes emitter:          {emit * 1000:9.1f} ms  ratio {emit / base:5.2f}  "
          f"(goal <= {GOAL:g}: {'met' if emit / base <= GOAL else 'MISSED'})")
    print(f"whole build from YAML text:        {full * 1000:9.1f} ms  ratio {full / base:5.2f}  (context)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
