"""The wheel ships the schema and works from another directory, with no source tree on the path."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

from flowc import __version__

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


def containerfile_stages() -> list[list[tuple[str, str]]]:
    """The Containerfile's stages, each a list of ``(INSTRUCTION, arguments)`` with continuation lines joined."""
    text = (ROOT / "Containerfile").read_text().replace("\\\n", " ")
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, args = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), " ".join(args.split())))
    return stages


def test_containerfile_builds_with_the_build_stage_script_and_runs_flowc_unprivileged() -> None:
    build, runtime = containerfile_stages()
    assert build[0] == ("FROM", "docker.io/library/python:3.11-slim AS build")
    runs = [args for instruction, args in build if instruction == "RUN"]
    assert "gcc" in runs[0].split(), "the build stage compiles the ring extension"
    # The script is the whole build: CI runs it too, so the image cannot be built differently from what CI checks.
    assert runs[-1] == "sh packaging/build-stage.sh /dist"
    assert runtime[0] == ("FROM", "docker.io/library/python:3.11-slim")
    assert ("COPY", "--from=build /dist/ /tmp/dist/") in runtime
    assert ("USER", "10001:10001") in runtime and ("EXPOSE", "9464") in runtime
    assert runtime[-2] == ("ENTRYPOINT", '["flowc"]')
    install = next(args for instruction, args in runtime if instruction == "RUN")
    assert "pip install" in install and "/tmp/dist/flowc-*.whl" in install
    assert "--uid 10001" in install and "--gid 10001" in install


def test_build_stage_script_builds_a_wheel_with_the_extension_from_what_the_image_copies(tmp_path: Path) -> None:
    """Run packaging/build-stage.sh on a tree holding only what the Containerfile's build stage copies."""
    build, _ = containerfile_stages()
    context = tmp_path / "src"
    context.mkdir()
    for instruction, args in build:
        if instruction == "COPY":
            *sources, _ = args.split()
            for source in sources:
                origin = ROOT / source
                assert origin.exists(), f"the Containerfile copies {source}, which the repository does not have"
                if origin.is_dir():
                    shutil.copytree(origin, context / source, symlinks=True)
                else:
                    shutil.copy2(origin, context / source)
    # A developer's editable install leaves its own build of the extension in the tree, which COPY takes along.
    extension = f"flowc/runtime/_ring{sysconfig.get_config_var('EXT_SUFFIX')}"
    stale = context / "compiler" / extension
    stale.write_bytes(b"stale editable build")
    dist = tmp_path / "dist"
    proc = subprocess.run(["sh", str(context / "packaging" / "build-stage.sh"), str(dist)], cwd=tmp_path,
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-4000:]
    wheel = Path(proc.stdout.strip().splitlines()[-1])
    assert wheel.parent == dist and wheel.name.startswith("flowc-") and wheel.suffix == ".whl"
    assert sorted(p.name for p in dist.iterdir()) == [wheel.name]
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    assert [n for n in names if n.startswith("flowc/runtime/_ring") and not n.endswith(".c")] == [extension]
    assert archive.read(extension).startswith(b"\x7fELF"), "the freshly compiled extension, not the stale one"
    assert "flowc/runtime/include/flowc_ring.h" in names
    assert f"flowc, version {__version__}" in proc.stderr, "flowc --version ran from the installed wheel"
    assert "build-stage: ok" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist", "src"], "the script removes its check environment"
    assert stale.read_bytes() == b"stale editable build", "the build leaves the source tree alone"
    assert sorted(context.rglob("_ring*.so")) == [stale]


def test_build_stage_script_fails_loudly_without_a_c_compiler(tmp_path: Path) -> None:
    proc = subprocess.run(["sh", str(ROOT / "packaging" / "build-stage.sh"), str(tmp_path / "dist")],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHON": sys.executable, "CC": str(tmp_path / "no-such-cc")})
    assert proc.returncode == 1
    assert "is not an executable" in proc.stderr
    assert not (tmp_path / "dist").exists() and proc.stdout == ""
