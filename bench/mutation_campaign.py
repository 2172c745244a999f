"""Campaign: many mutated documents through every pass, counting internal errors (what the CLI exits 3 on).

Documents come from ``tests/strategies.py``: an example or a generated valid document, then one to four
data- and text-level mutations (hostile names, typed-looking scalars, explicit tags, huge numbers, moved
keys...). Each goes through :func:`flowc.pipeline.compile_source` up to the artifacts (every target's
emitter included) with an environment whose variables are set, empty or absurdly long, so the substitution
runs as well. Any exception that escapes is an internal error: the script counts them by type and place and
writes each distinct one's document to ``--keep`` for a regression test.

Not part of CI: it takes minutes. It runs in one process (the machine is shared); ``--chunk`` documents are
drawn per hypothesis run, each with its own seed, so a long campaign never holds hypothesis' state for all of
them at once and ``--start`` resumes one.

Usage::

    python bench/mutation_campaign.py [--count 100000] [--chunk 2000] [--start 0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from flowc.pipeline import compile_source  # noqa: E402

from strategies import mutated_documents  # noqa: E402

ENVIRONMENTS = st.sampled_from([
    {},
    {"N": "4", "X": "", "IMG": "ubuntu"},
    {"N": "9" * 4301, "X": "\n", "IMG": "a\nb"},
    {"N": "-1", "X": "${X}", "IMG": "$$"},
])


class Tally:
    """What the campaign saw: documents, results by kind, internal errors by type and place."""

    def __init__(self, keep: Path | None) -> None:
        """Start an empty tally that writes reproducers to ``keep``."""
        self.documents = 0
        self.kinds: Counter[str] = Counter()
        self.internal: Counter[str] = Counter()
        self.keep = keep

    def run(self, text: str, environ: dict[str, str]) -> None:
        """Compile one document to artifacts and record how it ended."""
        self.documents += 1
        try:
            result = compile_source(text, "campaign.yaml", environ=environ, until="artifacts")
        except Exception as exc:  # noqa: BLE001 - every escaping exception is what this script counts
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            key = f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"
            if key not in self.internal and self.keep is not None:
                self.keep.mkdir(parents=True, exist_ok=True)
                name = f"internal-{len(self.internal):03d}.yaml"
                (self.keep / name).write_text(f"# {key}\n# environ: {environ!r}\n{text}", encoding="utf-8")
            self.internal[key] += 1
            self.kinds["internal error (exit 3)"] += 1
            return
        errors = any(d.severity == "error" for d in result.diagnostics)
        self.kinds["diagnostics with errors (exit 1)" if errors else "built (exit 0)"] += 1


def campaign(count: int, chunk: int, start: int, keep: Path | None) -> Tally:
    """Run ``count`` documents in chunks of ``chunk``, chunk ``i`` seeded with ``start + i``.

    Args:
        count: Documents in all.
        chunk: Documents per hypothesis run.
        start: Seed of the first chunk (to resume or extend a campaign).
        keep: Where to write one document per distinct internal error (``None``: nowhere).

    Returns:
        The tally.
    """
    tally = Tally(keep)
    began = time.monotonic()
    done = 0
    index = start
    while done < count:
        size = min(chunk, count - done)

        @seed(index)
        @settings(max_examples=size, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(mutated_documents(), ENVIRONMENTS)
        def one(text: str, environ: dict[str, str]) -> None:
            tally.run(text, environ)

        before = tally.documents
        one()
        done += tally.documents - before
        index += 1
        rate = tally.documents / (time.monotonic() - began)
        print(f"chunk {index - 1}: {tally.documents} documents, {tally.kinds['internal error (exit 3)']} "
              f"internal errors, {rate:.0f} documents/s", flush=True)
        if tally.documents == before:
            break  # hypothesis found nothing more to draw
    return tally


def main() -> int:
    """Parse the options, run the campaign, print the tally; exit 1 when an internal error was found."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    began = time.monotonic()
    tally = campaign(args.count, args.chunk, args.start, args.keep)
    print(f"\n{tally.documents} mutated documents through every pass in {time.monotonic() - began:.0f} s "
          f"(seeds {args.start}..{args.start + max(0, -(-tally.documents // args.chunk) - 1)})")
    for kind, number in sorted(tally.kinds.items()):
        print(f"  {kind}: {number}")
    print(f"internal errors (exit 3): {sum(tally.internal.values())}")
    for key, number in tally.internal.most_common():
        print(f"  {number:6d}  {key}")
    return 1 if tally.internal else 0


if __name__ == "__main__":
    sys.exit(main())
