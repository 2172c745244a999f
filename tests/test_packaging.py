"""The wheel ships the schema and works from another directory, with no source tree on the path."""

from __future__ import annotations

import site
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

from conftest import ROOT


def dependency_dirs() -> list[str]:
    """The site-packages directories of this interpreter (a virtual environment's own when it runs in one)."""
    dirs = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [d for d in dict.fromkeys(dirs) if Path(d).is_dir()]


def test_wheel_contains_resources_and_runs_elsewhere(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next(dist.glob("flowc-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "flowc/schemas/flowc.schema.json" in names
    assert "flowc/data/instances.json" in names
    assert not any(n.startswith(("tests/", "examples/")) for n in names)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    # flowc's dependencies come from the interpreter running this test, through plain directory lines of a .pth
    # file. They are appended after the new environment's own site-packages, so flowc is the wheel's, and the
    # .pth files inside those directories are not read, so an editable install cannot put the source tree back.
    (Path(site) / "flowc_test_dependencies.pth").write_text("\n".join(dependency_dirs()) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(
        [str(python), "-c", "import flowc, sys; from flowc.cli import main; print(flowc.__file__); "
         "sys.argv=['flowc','build',sys.argv[1],'-o','out']; main()", str(ROOT / "examples" / "multi-node.yaml")],
        cwd=elsewhere, capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(site), "flowc must come from the installed wheel, not the source tree"
    assert (elsewhere / "out" / "flowc" / "plan.json").is_file()
