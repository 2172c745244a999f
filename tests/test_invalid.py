"""Invalid inputs and their golden diagnostics.

Each ``tests/invalid/<case>.yaml`` makes ``flowc check`` exit 1 with exactly the lines in
``<case>.expected``, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc.cli import main

from conftest import ROOT, compare_or_update

INVALID = ROOT / "tests" / "invalid"
CASES = sorted(INVALID.glob("*.yaml"))


@pytest.mark.parametrize("source", CASES, ids=[c.stem for c in CASES])
def test_invalid_case(source: Path, update_golden: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(INVALID)
    monkeypatch.delenv("FLOWC_TEST_UNSET", raising=False)
    result = CliRunner().invoke(main, ["check", source.name])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().endswith("in 1 file")
    lines = result.stdout.splitlines()
    assert any("error[FLC" in line for line in lines)
    compare_or_update(source.with_suffix(".expected"), "".join(f"{line}\n" for line in lines), update_golden)


def test_every_invalid_case_has_expectations() -> None:
    assert len(CASES) >= 30
    for case in CASES:
        assert case.with_suffix(".expected").exists(), case
