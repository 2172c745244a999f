"""The import-linter contracts of pyproject.toml hold for the source tree, and they catch a forbidden import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import ROOT

PYPROJECT = ROOT / "pyproject.toml"


def lint_imports(*args: str, cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` (the one installed next to this interpreter) without a cache and return the result."""
    beside = Path(sys.executable).parent / "lint-imports"
    exe = str(beside) if beside.exists() else shutil.which("lint-imports")
    assert exe, "lint-imports is missing: pip install -e '.[test]' installs import-linter"
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([exe, "--no-cache", "--no-logo", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)


def contract_name(contract_id: str) -> str:
    """The name pyproject.toml gives the contract ``contract_id`` (what lint-imports prints)."""
    contracts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
    return next(c["name"] for c in contracts if c["id"] == contract_id)


def test_contracts_hold() -> None:
    proc = lint_imports(cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ", 0 broken." in proc.stdout


def test_a_planted_forbidden_import_breaks_its_contract(tmp_path: Path) -> None:
    # A copy of the package, first on PYTHONPATH, so the planted import never touches the real tree.
    copy = tmp_path / "src" / "flowc"
    shutil.copytree(ROOT / "compiler" / "flowc", copy, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    real = ROOT / "compiler" / "flowc" / "runtime" / "report.py"
    before = real.read_bytes()
    planted = copy / "runtime" / "report.py"
    planted.write_text(planted.read_text(encoding="utf-8") + "\nimport flowc.cli  # noqa: E402, F401\n",
                       encoding="utf-8")

    proc = lint_imports(str(PYPROJECT), cwd=tmp_path, pythonpath=tmp_path / "src")

    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert f"{contract_name('runtime')} BROKEN" in proc.stdout, proc.stdout
    assert "flowc.runtime.report -> flowc.cli" in proc.stdout, "it analysed the copy and names the planted import"
    assert real.read_bytes() == before
