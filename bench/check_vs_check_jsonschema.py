"""Benchmark: ``flowc check`` against ``check-jsonschema`` on the same files.

Both tools run as subprocesses, each run a fresh interpreter, so start-up (imports, schema loading)
counts as it does for a user or a CI gate. After the warm-up runs, the two tools alternate run by
run (and which one goes first alternates too), so drift on the machine affects both equally. The
script prints both medians and the ratio ``flowc / check-jsonschema`` against the goal of 0.6.

It also times ``flowc check`` of one file and of a folder of 100 files (copies of the inputs, in turn), in the
same alternation, and prints how much more the hundred cost than the one (goal: at most 3 times).

check-jsonschema validates against the schema ``flowc schema`` exports (JSON Schema Draft 2020-12).
That schema describes a document *after* ``${VAR}`` substitution, which check-jsonschema cannot do,
so input files that use ``${...}`` are given to both tools with their references expanded (the same
way flowc expands them, from this process's environment); ``--raw`` turns this off. Both tools
always read the very same copies, in a temporary directory.

Python's bytecode cache is on for both tools and kept in the temporary directory
(``PYTHONPYCACHEPREFIX``), so the warm-up runs compile each tool once, as installing a package does,
even where ``PYTHONDONTWRITEBYTECODE`` is set or an editable install has no ``__pycache__`` yet;
``--inherit-env`` runs the tools with this process's environment unchanged instead.

Exit codes: 0 after a measurement, whatever the ratio (this is a report, not a test); 2 when a tool
is missing or a command fails (its output is printed).

Usage::

    python bench/check_vs_check_jsonschema.py [--runs N] [--warmup N] [--regex-variant V] [FILE ...]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOAL = 0.6
MANY = 100
MANY_GOAL = 3.0
EXIT_TOOL = 2

_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class BenchError(Exception):
    """A tool is missing or a command failed; the message says which and why."""


def find_tool(script: str, module: str, probe: str) -> list[str]:
    """Return the command prefix that runs a console script.

    The script next to this interpreter comes first, then one on ``PATH``, then ``python -m``.
    Wrapper shims on ``PATH`` (pyenv, asdf) start a shell before Python and would add their own
    start-up time to every run, which is why the interpreter's own scripts directory wins.

    Args:
        script: The console script's name, e.g. ``flowc``.
        module: The module that runs it under ``python -m``.
        probe: The importable package that tells whether ``python -m`` can work.

    Returns:
        The command prefix, e.g. ``["/venv/bin/flowc"]`` or ``[sys.executable, "-m", "flowc"]``.

    Raises:
        BenchError: When the tool is not installed at all.
    """
    for path in (sysconfig.get_path("scripts"), None):
        found = shutil.which(script, path=path)
        if found:
            return [found]
    try:
        __import__(probe)
    except ImportError:
        raise BenchError(f"'{script}' is not installed (no executable, and 'python -m {module}' cannot "
                         f"import '{probe}'); install it with: pip install -e '.[test]'") from None
    return [sys.executable, "-m", module]


def expand(text: str, environ: dict[str, str]) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}`` and ``$$`` the way flowc's substitute pass does.

    Substituting in the text and letting YAML type the result gives plain scalars the type flowc
    gives them after its own substitution.

    Args:
        text: A YAML document.
        environ: The variables.

    Returns:
        The text with every reference replaced.

    Raises:
        BenchError: When a variable without a default is not set.

    Example:
        >>> expand("image: ${IMG:-ubuntu}  # costs $$5", {})
        'image: ubuntu  # costs $5'
    """

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise BenchError(f"environment variable '{name}' is not set and has no default; export it")

    return _REF.sub(replace, text)


def stage_inputs(files: Sequence[Path], into: Path, raw: bool) -> tuple[list[str], list[str]]:
    """Copy the inputs into one directory, expanding variable references unless ``raw``.

    Args:
        files: The input files.
        into: The directory to copy them to.
        raw: Copy the text unchanged.

    Returns:
        The copies' paths, and the names of the files whose references were expanded.
    """
    copies, expanded = [], []
    for index, source in enumerate(files):
        text = source.read_text(encoding="utf-8")
        if not raw and "$" in text:
            new = expand(text, dict(os.environ))
            if new != text:
                expanded.append(source.name)
                text = new
        target = into / f"{index:03d}-{source.name}"
        target.write_text(text, encoding="utf-8")
        copies.append(str(target))
    return copies, expanded


def run_once(command: list[str], name: str, env: dict[str, str]) -> float:
    """Run a command once and return its wall time in seconds.

    Args:
        command: The command line.
        name: The tool's name, for the error message.
        env: The environment to run it in.

    Returns:
        Seconds from start to exit.

    Raises:
        BenchError: When the command exits non-zero (its output is in the message).
    """
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        output = "\n".join(part for part in (proc.stdout.strip(), proc.stderr.strip()) if part)
        raise BenchError(f"{name} failed (exit {proc.returncode}):\n  $ {' '.join(command)}\n"
                         + "\n".join(f"  | {line}" for line in output.splitlines()) + _hint(output))
    return elapsed


def _hint(output: str) -> str:
    if "is not a 'regex'" in output:
        return ("\n  hint: a 'pattern' in flowc's schema is not a valid ECMA-262 regex in unicode mode "
                "(check-jsonschema's default); fix the schema, or measure anyway with "
                "--regex-variant nonunicode")
    if "${" in output:
        return "\n  hint: an input still holds a ${VAR} reference; drop --raw so both tools get it expanded"
    return ""


def measure(commands: dict[str, list[str]], runs: int, warmup: int, env: dict[str, str]) -> dict[str, list[float]]:
    """Time the commands, alternating them run by run.

    Args:
        commands: Tool name → command line.
        runs: Timed runs per tool.
        warmup: Untimed runs per tool before them (they also prove that each command succeeds).
        env: The environment to run them in.

    Returns:
        Tool name → the timed runs' wall times in seconds.
    """
    names = list(commands)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + runs):
        order = names if round_ % 2 == 0 else names[::-1]
        for name in order:
            elapsed = run_once(commands[name], name, env)
            if round_ >= warmup:
                times[name].append(elapsed)
    return times


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: The arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The options.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path,
                        help="topology files (default: examples/*.yaml of this repository)")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per tool (default: 15)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per tool first (default: 2)")
    parser.add_argument("--regex-variant", choices=["default", "nonunicode", "python"],
                        help="passed to check-jsonschema (default: its own default, ECMA-262 unicode mode)")
    parser.add_argument("--raw", action="store_true",
                        help="give both tools the files as written, without expanding ${VAR} references")
    parser.add_argument("--inherit-env", action="store_true",
                        help="run the tools in this environment as is (no private bytecode cache)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report.

    Args:
        argv: The arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit code: 0 after a measurement, 2 when a tool is missing or a command fails.
    """
    args = parse_args(argv)
    files = args.files or sorted((REPO / "examples").glob("*.yaml"))
    if not files:
        print("bench: no input files (examples/*.yaml is empty)", file=sys.stderr)
        return EXIT_TOOL
    try:
        flowc = find_tool("flowc", "flowc", "flowc")
        cjs = find_tool("check-jsonschema", "check_jsonschema", "check_jsonschema")
        with tempfile.TemporaryDirectory(prefix="flowc-bench-") as tmp:
            schema = Path(tmp) / "flowc.schema.json"
            env = dict(os.environ)
            if not args.inherit_env:
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
            proc = subprocess.run([*flowc, "schema"], capture_output=True, text=True, check=False, env=env)
            if proc.returncode != 0 or not proc.stdout.strip():
                raise BenchError(f"'flowc schema' failed (exit {proc.returncode}): {proc.stderr.strip()}")
            schema.write_text(proc.stdout, encoding="utf-8")
            inputs = Path(tmp) / "inputs"
            inputs.mkdir()
            copies, expanded = stage_inputs(files, inputs, args.raw)
            variant = ["--regex-variant", args.regex_variant] if args.regex_variant else []
            many = Path(tmp) / "many"
            many.mkdir()
            for number in range(MANY):
                source = Path(copies[number % len(copies)])
                (many / f"{number:03d}-{source.name}").write_bytes(source.read_bytes())
            commands = {
                "flowc check": [*flowc, "check", *copies],
                "check-jsonschema": [*cjs, *variant, "--schemafile", str(schema), *copies],
                "flowc check 1": [*flowc, "check", copies[0]],
                f"flowc check {MANY}": [*flowc, "check", str(many)],
            }
            print(f"inputs: {len(files)} files ({', '.join(f.name for f in files)})")
            if expanded:
                print(f"note: ${{VAR}} references expanded for both tools in: {', '.join(expanded)}")
            print(f"flowc:            {' '.join(flowc)}")
            print(f"check-jsonschema: {' '.join(cjs + variant)} (schema from 'flowc schema')")
            print(f"runs: {args.runs} timed per tool after {args.warmup} warm-up, alternating")
            if not args.inherit_env:
                print("bytecode: cached for both tools in the temporary directory (PYTHONPYCACHEPREFIX)")
            times = measure(commands, args.runs, args.warmup, env)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return EXIT_TOOL
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name + ':':<20} median {medians[name] * 1000:7.1f} ms  "
              f"(min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})")
    ratio = medians["flowc check"] / medians["check-jsonschema"]
    verdict = "meets" if ratio <= GOAL else "misses"
    print(f"ratio flowc/check-jsonschema: {ratio:.2f}  (goal <= {GOAL:.2f}: {verdict} it)")
    scale = medians[f"flowc check {MANY}"] / medians["flowc check 1"]
    verdict = "meets" if scale <= MANY_GOAL else "misses"
    print(f"ratio flowc check of {MANY} files / of 1 file: {scale:.2f}  (goal <= {MANY_GOAL:.0f}: {verdict} it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
