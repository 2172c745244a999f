"""flowc in other tools' CI: the pre-commit hook (run by pre-commit itself) and the composite GitHub Action."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
GOOD = (ROOT / "examples" / "datapath-demo.yaml").read_text()
BAD = GOOD.replace("type: transformer", "type: transformr")


def git(repo: Path, *args: str) -> None:
    """Run git in ``repo``."""
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_the_pre_commit_hook_runs_flowc_check(tmp_path: Path) -> None:
    assert shutil.which("git"), "git is needed"
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "good.yaml").write_text(GOOD)
    (repo / "bad.yaml").write_text(BAD)
    git(repo, "add", ".")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    try_repo = [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "flowc-check", "--files"]
    good = subprocess.run([*try_repo, "good.yaml"], cwd=repo, capture_output=True, text=True, env=env, timeout=600)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "flowc check" in good.stdout and "Passed" in good.stdout
    bad = subprocess.run([*try_repo, "bad.yaml"], cwd=repo, capture_output=True, text=True, env=env, timeout=600)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "bad.yaml:" in bad.stdout and "error[FLC203]" in bad.stdout and "Failed" in bad.stdout


def test_the_action_checks_with_github_annotations(tmp_path: Path) -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite" and set(action["inputs"]) == {"paths", "args", "python-version"}
    step = next(s for s in action["runs"]["steps"] if s.get("name") == "flowc check")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "bad.yaml").write_text(BAD)
    (tmp_path / "good.yaml").write_text(GOOD)
    env = {**os.environ, "FLOWC_PATHS": f"{tmp_path / 'docs'} {tmp_path / 'good.yaml'}", "FLOWC_ARGS": "--strict"}
    done = subprocess.run(["bash", "-c", step["run"]], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 1
    assert f"::error file={tmp_path / 'docs' / 'bad.yaml'},line=" in done.stdout
