"""Golden build outputs.

Every example and every case under tests/golden/ compiles to the files kept beside it
(``expected/files``), with the exact diagnostics in ``expected/diagnostics.txt``; each target built alone
writes its share of them, and a target off by default keeps its own under ``expected/targets/<target>``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc.cli import main
from flowc.emit.registry import PLAN, TARGETS
from flowc.model.options import BuildOptions
from flowc.pipeline import compile_source

from conftest import ROOT, compare_or_update

GOLDEN = ROOT / "tests" / "golden"


def _cases() -> list[tuple[str, Path, Path]]:
    cases = [(f"example-{p.stem}", p, GOLDEN / f"example-{p.stem}") for p in sorted((ROOT / "examples").glob("*.yaml"))]
    cases += [(d.name, d / "input.yaml", d) for d in sorted(GOLDEN.iterdir()) if (d / "input.yaml").exists()]
    return cases


@pytest.mark.parametrize(("name", "source", "case"), _cases(), ids=[c[0] for c in _cases()])
def test_golden_build(name: str, source: Path, case: Path, tmp_path: Path, update_golden: bool,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(source.parent)
    for var in [v for v in os.environ if v.startswith(("TRAIN_", "FLOWC_GOLDEN_", "MITHRIL_"))]:
        monkeypatch.delenv(var)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", source.name, "-o", str(out)])
    assert result.exit_code == 0, result.output
    expected = case / "expected"
    diagnostics = "".join(line + "\n" for line in result.output.splitlines() if not line.startswith("flowc: "))
    produced = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    if update_golden and (expected / "files").exists():
        shutil.rmtree(expected / "files")
    compare_or_update(expected / "diagnostics.txt", diagnostics, update_golden)
    for rel, data in produced.items():
        compare_or_update(expected / "files" / rel, data, update_golden)
    kept = {p.relative_to(expected / "files").as_posix() for p in (expected / "files").rglob("*") if p.is_file()}
    assert kept == set(produced), "the build wrote a different set of files than the golden case keeps"


@pytest.mark.parametrize(("name", "source", "case"), _cases(), ids=[c[0] for c in _cases()])
def test_golden_build_per_target(name: str, source: Path, case: Path, update_golden: bool,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Each target alone writes exactly its share of the golden build; targets off by default keep their own."""
    monkeypatch.chdir(source.parent)
    for var in [v for v in os.environ if v.startswith(("TRAIN_", "FLOWC_GOLDEN_", "MITHRIL_"))]:
        monkeypatch.delenv(var)
    files = case / "expected" / "files"
    golden = {p.relative_to(files).as_posix(): p.read_bytes() for p in files.rglob("*") if p.is_file()}
    covered: set[str] = set()
    for target in TARGETS:
        options = BuildOptions(targets=(target.name,))
        result = compile_source(source.read_text(encoding="utf-8"), source.name, until="artifacts", options=options)
        assert result.artifacts is not None, result.diagnostics
        own = {a.path: a.content for a in result.artifacts if target is PLAN or a.path != "flowc/plan.json"}
        if target.default:
            assert {path: golden.get(path) for path in own} == own, f"{target.name} differs from the golden build"
            covered |= set(own)
            continue
        kept = case / "expected" / "targets" / target.name
        for path, content in own.items():
            compare_or_update(kept / path, content, update_golden)
    assert covered == set(golden) - {"flowc/manifest.json"}, "the default targets together make the golden build"
