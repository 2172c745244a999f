"""Benchmark: how fast ``flowc build`` is, and how it scales with the number of actors.

For each size the script generates a valid topology, writes it as YAML into a temporary directory,
and times the build two ways: in-process (:func:`flowc.pipeline.compile_file` up to the emitted artifacts, the
median of ``--runs`` runs after one untimed warm-up, in a fresh interpreter) and end to end (one
``flowc build FILE -o OUT`` subprocess, start-up and writing included). For each size it prints the seconds,
the microseconds per actor, and the ratio of the time per actor to that of the smallest size: a ratio near 1.0
means the compiler scales linearly.

``--baseline REV`` checks that git revision of this repository out into a temporary worktree and times it the
same way in the same run, on the same files, and prints the speed-up of this checkout over it (the before/after
table of a change). Both sides run from their source folders (``PYTHONPATH``), with the same interpreter.

The generated topologies look like a real data path. Every node has two NUMA domains of 32 CPUs
(``numa_topology: {0: "0-31", 1: "32-63"}``) and hosts up to ``--per-node`` actors (64 by default), each
pinned to a CPU of its own. Actors form chains ``producer -> transformer -> consumer`` over SPSC channels that
are declared on every node that uses them. A chain stays inside one NUMA domain, except at the end of a node,
where the last chain continues on the next node; its channel is then carried by an ``inter_node`` route over
TCP. The documents compile without errors; their only warning is FLC504, once per node (the script checks this).

Usage::

    python bench/build_scaling.py [--sizes 100,1000,10000] [--per-node N] [--runs N] [--baseline REV]
                                  [--by-pass] [--profile]

For example, 1,000 nodes of 10 actors against the revision before the speed work::

    python bench/build_scaling.py --sizes 1000,10000 --per-node 10 --baseline f2129cd
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

CHAIN = 3
DOMAINS = 2
CPUS_PER_DOMAIN = 32


@dataclass
class _Node:
    """A generated node: its actor placements and the channels used on it."""

    name: str
    placements: list[tuple[str, int, int]] = field(default_factory=list)
    channels: dict[str, int] = field(default_factory=dict)


def chain_lengths(actors: int) -> list[int]:
    """Split ``actors`` into chains of three, the last one taking the remainder.

    Args:
        actors: How many actors in all (at least 2).

    Returns:
        The length of each chain; they add up to ``actors``.

    Example:
        >>> chain_lengths(10), chain_lengths(2)
        ([3, 3, 4], [2])
    """
    if actors < 2:
        raise ValueError("a topology needs at least 2 actors (a producer and a consumer)")
    lengths = [CHAIN] * max(1, actors // CHAIN)
    lengths[-1] += actors - sum(lengths)
    return lengths


def generate(actors: int, per_node: int = DOMAINS * CPUS_PER_DOMAIN) -> str:
    """Generate a valid topology document with exactly ``actors`` actors.

    Args:
        actors: How many actors (at least 2).
        per_node: How many actors a node hosts at most (up to its 64 CPUs).

    Returns:
        The document as YAML text (flow style, so that 10,000 actors stay well under flowc's 4 MiB cap).

    Example:
        >>> text = generate(130)
        >>> text.count("type: producer"), text.count("type: consumer"), text.count("hostname:")
        (43, 43, 3)
        >>> text.count("transport: tcp"), "c00041-1-to-n0002: {source: n0001.c00041-1," in text
        (2, True)
    """
    nodes: list[_Node] = []
    declared: list[str] = []
    routes: list[str] = []
    slot = DOMAINS * CPUS_PER_DOMAIN  # the cursor: next free cpu of the last node (full: start a new node)

    def next_slot(length: int, first: bool) -> tuple[_Node, int, int]:
        nonlocal slot
        if slot == DOMAINS * CPUS_PER_DOMAIN or (nodes and len(nodes[-1].placements) >= per_node):
            nodes.append(_Node(f"n{len(nodes):04d}"))
            slot = 0
        domain, offset = divmod(slot, CPUS_PER_DOMAIN)
        if first and domain < DOMAINS - 1 and CPUS_PER_DOMAIN - offset < length:
            # A chain must not straddle two NUMA domains of one node (FLC401): skip to the next domain.
            slot = (domain + 1) * CPUS_PER_DOMAIN
            domain, offset = domain + 1, 0
        slot += 1
        return nodes[-1], domain, domain * CPUS_PER_DOMAIN + offset

    for chain, length in enumerate(chain_lengths(actors)):
        previous: tuple[_Node, int] | None = None
        for step in range(length):
            node, domain, cpu = next_slot(length, step == 0)
            name = ("p" if step == 0 else "k" if step == length - 1 else "t") + f"{chain:05d}-{step}"
            role = "producer" if step == 0 else "consumer" if step == length - 1 else "transformer"
            ports = []
            if step > 0:
                channel = f"c{chain:05d}-{step - 1}"
                ports.append(f"inputs: [{channel}]")
                node.channels.setdefault(channel, domain)
                assert previous is not None
                if previous[0] is not node:
                    routes.append(f"  {channel}-to-{node.name}: {{source: {previous[0].name}.{channel}, "
                                  f"targets: [{node.name}], transport: tcp}}")
            if step < length - 1:
                channel = f"c{chain:05d}-{step}"
                ports.append(f"outputs: [{channel}]")
                node.channels.setdefault(channel, domain)
            declared.append(f"  {name}: {{type: {role}, {', '.join(ports)}}}")
            node.placements.append((name, domain, cpu))
            previous = (node, domain)

    lines = ["# generated by bench/build_scaling.py", f"# {actors} actors on {len(nodes)} nodes", "actors:"]
    lines += declared
    lines.append("nodes:")
    numa = ", ".join(f'{d}: "{d * CPUS_PER_DOMAIN}-{(d + 1) * CPUS_PER_DOMAIN - 1}"' for d in range(DOMAINS))
    for node in nodes:
        lines += [f"  {node.name}:", f"    hostname: {node.name}.bench.example",
                  f"    numa_topology: {{{numa}}}", "    actors:"]
        lines += [f"      {name}: {{numa: {domain}, cpu: [{cpu}]}}" for name, domain, cpu in node.placements]
        lines.append("    local_channels:")
        lines += [f"      {channel}: {{type: SPSC, buffer_size: 1MiB, numa: {domain}}}"
                  for channel, domain in node.channels.items()]
    if routes:
        lines.append("inter_node:")
        lines += routes
    return "\n".join(lines) + "\n"


def build_in_process(path: Path) -> tuple[float, int]:
    """Compile one file and emit its artifacts, as ``flowc build`` does before writing.

    Args:
        path: The topology file.

    Returns:
        Seconds taken, and the number of bytes emitted.

    Raises:
        RuntimeError: When the file does not compile cleanly.
    """
    from flowc.pipeline import compile_file

    start = time.perf_counter()
    result = compile_file(path, until="artifacts")
    if result.artifacts is None:
        raise RuntimeError(_describe(path, result.diagnostics))
    artifacts = result.artifacts
    elapsed = time.perf_counter() - start
    # FLC504 (Kubernetes cannot pin cpu ids) is expected once per node; anything else is a generator bug.
    if any(d.code != "FLC504" for d in result.diagnostics):
        raise RuntimeError(_describe(path, result.diagnostics))
    return elapsed, sum(len(a.content) for a in artifacts)


def _describe(path: Path, diagnostics: list) -> str:
    from flowc.diagnostics.render import RENDERERS

    shown = RENDERERS["text"](diagnostics[:10])
    return f"{path}: the generated topology has {len(diagnostics)} diagnostic(s); the first:\n{shown}"


def time_passes(path: Path) -> dict[str, float]:
    """Time each stage of one in-process build, the emitters included.

    Args:
        path: The topology file.

    Returns:
        Stage name → seconds, in pipeline order, ``emit_targets`` last.
    """
    from flowc.lazy import load
    from flowc.model.context import Context
    from flowc.pipeline import STAGES, collector_paused

    ctx = Context(str(path), {}, emits=True)  # a build: the check-only bounds are skipped
    value: object = path.read_text(encoding="utf-8")
    seconds: dict[str, float] = {}
    with collector_paused():  # as a build runs them
        for stage in STAGES:
            run = load(stage.run)
            start = time.perf_counter()
            value = run(value, ctx)
            seconds[stage.name] = time.perf_counter() - start
    return seconds


def profile(path: Path, top: int) -> str:
    """Profile one in-process build and return the functions with the most cumulative time.

    Args:
        path: The topology file.
        top: How many functions to list.

    Returns:
        The pstats report.
    """
    profiler = cProfile.Profile()
    profiler.enable()
    build_in_process(path)
    profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(top)
    return stream.getvalue()


_TIMER = """
import statistics, sys, time
from pathlib import Path
from flowc.pipeline import compile_file
path, runs = Path(sys.argv[1]), int(sys.argv[2])
def once():
    start = time.perf_counter()
    result = compile_file(path, until="artifacts")
    elapsed = time.perf_counter() - start
    if result.artifacts is None or any(d.code != "FLC504" for d in result.diagnostics):
        sys.exit(f"{path}: does not build cleanly: {[d.code for d in result.diagnostics][:5]}")
    return elapsed
once()
print(statistics.median(once() for _ in range(runs)))
"""


@dataclass
class Side:
    """One side of the comparison: a source folder of flowc and its label."""

    label: str
    compiler: Path
    results: dict[int, tuple[float, float | None]] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """The environment that makes ``import flowc`` load this side."""
        return {**os.environ, "PYTHONPATH": str(self.compiler)}

    def in_process(self, path: Path, runs: int) -> float:
        """Median seconds of ``runs`` in-process builds of ``path`` in a fresh interpreter.

        Raises:
            RuntimeError: When the document does not build cleanly.
        """
        proc = subprocess.run([sys.executable, "-c", _TIMER, str(path), str(runs)], capture_output=True, text=True,
                              env=self.env(), check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.label}: {proc.stderr.strip() or proc.stdout.strip()}")
        return float(proc.stdout.split()[-1])

    def end_to_end(self, path: Path, out: Path) -> float:
        """Seconds of one ``python -m flowc build FILE -o OUT``.

        Raises:
            RuntimeError: When the build exits non-zero.
        """
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "flowc", "build", str(path), "-o", str(out)],
                              capture_output=True, text=True, env=self.env(), check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{self.label}: flowc build {path} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
        return elapsed


def checkout(revision: str, where: Path) -> Path:
    """Check ``revision`` out into a detached worktree under ``where`` and return its source folder.

    Raises:
        RuntimeError: When git cannot.
    """
    repo = Path(__file__).resolve().parent.parent
    tree = where / f"baseline-{revision}"
    proc = subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), revision],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git worktree add {revision}: {proc.stderr.strip()}")
    return tree / "compiler"


def remove_checkout(compiler: Path) -> None:
    """Remove the worktree that :func:`checkout` made."""
    repo = Path(__file__).resolve().parent.parent
    subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(compiler.parent)],
                   capture_output=True, check=False)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: The arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The options.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000",
                        help="comma-separated actor counts (default: 100,1000,10000)")
    parser.add_argument("--per-node", type=int, default=DOMAINS * CPUS_PER_DOMAIN,
                        help="actors per node, 3 to 64 (default: 64)")
    parser.add_argument("--runs", type=int, default=3,
                        help="in-process runs per size, median taken (default: 3)")
    parser.add_argument("--baseline", metavar="REV", help="also time this git revision, in the same run")
    parser.add_argument("--no-subprocess", action="store_true", help="skip the end-to-end 'flowc build' runs")
    parser.add_argument("--by-pass", action="store_true",
                        help="also print microseconds per actor of each pass of this checkout, for every size")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile report (cumulative) of one build of the largest size")
    parser.add_argument("--keep", type=Path, help="write the generated files here and keep them")
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({int(size.replace("_", "")) for size in args.sizes.split(",") if size.strip()})
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, not {args.sizes!r}")
    if not args.sizes or args.sizes[0] < 2 or args.runs < 1:
        parser.error("every size must be at least 2, and --runs at least 1")
    if not 3 <= args.per_node <= DOMAINS * CPUS_PER_DOMAIN:
        parser.error(f"--per-node must be between 3 and {DOMAINS * CPUS_PER_DOMAIN}")
    return args


def _cpu_layout() -> str:
    cpus = os.cpu_count() or 0
    model = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpus} cpus ({model}), python {sys.version.split()[0]}"


def main(argv: Sequence[str] | None = None) -> int:
    """Generate, build and report.

    Args:
        argv: The arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit code: 0, or 1 when a generated topology does not build cleanly or the baseline cannot be had.
    """
    args = parse_args(argv)
    here = Side("this checkout", Path(__file__).resolve().parent.parent / "compiler")
    with tempfile.TemporaryDirectory(prefix="flowc-scale-") as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        sides = [here]
        try:
            if args.baseline:
                sides.insert(0, Side(f"baseline {args.baseline}", checkout(args.baseline, Path(tmp))))
            code = _report(args, sides, where, Path(tmp))
        except RuntimeError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            code = 1
        finally:
            if args.baseline and len(sides) == 2:
                remove_checkout(sides[0].compiler)
    return code


def _report(args: argparse.Namespace, sides: list[Side], where: Path, tmp: Path) -> int:
    files = {}
    for size in args.sizes:
        files[size] = where / f"topology-{size}-{args.per_node}.yaml"
        files[size].write_text(generate(size, args.per_node), encoding="utf-8")
    how = "skipped" if args.no_subprocess else "1 run of python -m flowc build FILE -o OUT"
    print(f"{_cpu_layout()}; files in {where}")
    print(f"in-process: median of {args.runs} after 1 warm-up, fresh interpreter per size; end to end: {how}")
    print(f"{args.per_node} actors per node")
    for side in sides:
        print(f"\n{side.label} ({side.compiler})")
        header = f"{'actors':>8} {'nodes':>6} {'KiB':>7} {'in-process s':>13} {'us/actor':>9} {'ratio':>6}"
        if not args.no_subprocess:
            header += f" {'end-to-end s':>13} {'us/actor':>9} {'ratio':>6}"
        print(header)
        base: tuple[float, float] | None = None
        for size in args.sizes:
            path = files[size]
            seconds = side.in_process(path, args.runs)
            wall = None if args.no_subprocess else side.end_to_end(path, tmp / f"out-{len(side.label)}-{size}")
            side.results[size] = (seconds, wall)
            per = seconds / size * 1e6
            per_wall = None if wall is None else wall / size * 1e6
            if base is None:
                base = (per, per_wall or 0.0)
            nodes = path.read_text(encoding="utf-8").count("hostname:")
            row = (f"{size:>8} {nodes:>6} {path.stat().st_size / 1024:>7.0f} {seconds:>13.3f} {per:>9.1f} "
                   f"{per / base[0]:>6.2f}")
            if per_wall is not None and wall is not None:
                row += f" {wall:>13.3f} {per_wall:>9.1f} {per_wall / base[1]:>6.2f}"
            print(row, flush=True)
    if len(sides) == 2:
        before, after = sides
        print(f"\nspeed-up of {after.label} over {before.label} (same run, same files)")
        print(f"{'actors':>8} {'in-process':>11}" + ("" if args.no_subprocess else f" {'end-to-end':>11}"))
        for size in args.sizes:
            (b_in, b_wall), (a_in, a_wall) = before.results[size], after.results[size]
            row = f"{size:>8} {b_in / a_in:>10.1f}x"
            if b_wall is not None and a_wall is not None:
                row += f" {b_wall / a_wall:>10.1f}x"
            print(row)
    if args.by_pass:
        print("\nmicroseconds per actor of each pass of this checkout (one build per size, after a warm-up):")
        table = {size: time_passes(files[size]) for size in args.sizes}
        names = list(table[args.sizes[0]])
        print(f"{'actors':>8} " + " ".join(f"{name[:12]:>12}" for name in names))
        for size, seconds in table.items():
            print(f"{size:>8} " + " ".join(f"{seconds[name] / size * 1e6:>12.1f}" for name in names))
    if args.profile:
        print(f"\ncProfile of one in-process build of {args.sizes[-1]} actors (cumulative time):")
        print(profile(files[args.sizes[-1]], 30))
    return 0


if __name__ == "__main__":
    sys.exit(main())
