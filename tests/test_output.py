"""The output directory: one atomic swap, builds that take turns, stale staging cleaned, symlinks kept.

Real processes build into real directories; a reader polls the output while they swap it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowc.emit.artifact import Artifact
from flowc.emit.writer import MANIFEST, OutputError, drift, exchange_supported, write_output

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "single-node.yaml"

BUILDER = """
import sys
from pathlib import Path
from flowc.emit.artifact import Artifact
from flowc.emit.writer import write_output

out, who, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for i in range(count):
    files = [Artifact(f"file-{n}.yaml", f"{who} {i} {n}\\n".encode()) for n in range(20)]
    write_output([*files, Artifact("flowc/plan.json", f"{who} {i}\\n".encode())], out)
"""

STUCK_BUILDER = """
import sys, time
from pathlib import Path
from flowc.emit import writer
from flowc.emit.artifact import Artifact

def stuck(staging, directory):
    Path(sys.argv[2]).write_text(str(staging))
    time.sleep(600)

writer._swap = stuck
writer.write_output([Artifact("flowc/plan.json", b"never\\n")], Path(sys.argv[1]))
"""


def flowc_build(out: Path, source: Path = EXAMPLE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowc", "build", str(source), "-o", str(out), "-t", "plan"],
                          capture_output=True, text=True, check=False)


def test_the_swap_is_one_atomic_step_on_this_system() -> None:
    assert exchange_supported(), "renameat2 is in every glibc since 2.28; without it the swap has a gap"


def test_a_reader_never_sees_the_output_missing_during_concurrent_builds(tmp_path: Path) -> None:
    out = tmp_path / "polled"
    write_output([Artifact("flowc/plan.json", b"first\n")], out)
    builders = [subprocess.Popen([sys.executable, "-c", BUILDER, str(out), who, "40"], stderr=subprocess.PIPE,
                                 text=True) for who in ("a", "b")]
    checks = missing = 0
    seen: set[str] = set()
    while any(b.poll() is None for b in builders):
        checks += 1
        if not os.path.exists(out / MANIFEST):
            missing += 1
        if checks % 50 == 0:
            try:
                seen.add((out / "flowc" / "plan.json").read_text())
            except FileNotFoundError:
                missing += 1
    for builder in builders:
        assert builder.wait() == 0, builder.stderr.read()
    assert missing == 0, f"the output was missing {missing} times in {checks} checks"
    assert len(seen) > 1, "the reader watched the output change"
    assert (out / "flowc" / "plan.json").read_text() in {"a 39\n", "b 39\n"}
    assert drift([Artifact(f"file-{n}.yaml", f"{(out / 'flowc' / 'plan.json').read_text().split()[0]} 39 {n}\n"
                           .encode()) for n in range(20)]
                 + [Artifact("flowc/plan.json", (out / "flowc" / "plan.json").read_bytes())], out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["polled"], "no staging directory or lock is left"


def test_concurrent_flowc_builds_of_one_output_both_succeed(tmp_path: Path) -> None:
    out = tmp_path / "together"
    argv = [sys.executable, "-m", "flowc", "build", str(EXAMPLE), "-o", str(out)]
    procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    check = subprocess.run([*argv, "--check"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["together"]


def test_a_killed_build_is_cleaned_by_the_next(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert flowc_build(out).returncode == 0
    marker = tmp_path / "staging-path"
    stuck = subprocess.Popen([sys.executable, "-c", STUCK_BUILDER, str(out), str(marker)])
    try:
        end = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < end and stuck.poll() is None:
            time.sleep(0.05)
        staging = Path(marker.read_text())
        assert staging.is_dir() and staging.name.startswith(f".out.{stuck.pid}.")
    finally:
        stuck.send_signal(signal.SIGKILL)
        stuck.wait()
    marker.unlink()
    left_by_older_flowc = [tmp_path / ".out.k2j_9xq1.flowc-new", tmp_path / ".out.abcdefgh.flowc-old"]
    not_ours = [tmp_path / ".out.x.123.abcdefgh.flowc-new", tmp_path / ".out.keep", tmp_path / "out.1.abcdefgh"]
    for path in (*left_by_older_flowc, *not_ours):
        path.mkdir()
    assert staging.exists(), "the killed build left its staging directory"
    proc = flowc_build(out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", *(p.name for p in not_ours)])


def test_a_symlinked_output_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "builds" / "current"
    link = tmp_path / "link"
    assert flowc_build(real).returncode == 0
    link.symlink_to(real)
    for _ in range(2):
        proc = flowc_build(link)
        assert proc.returncode == 0, proc.stderr
        assert link.is_symlink() and os.readlink(link) == str(real)
        assert (link / "flowc" / "plan.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["builds", "link"]
    assert sorted(p.name for p in real.parent.iterdir()) == ["current"]


def test_a_dangling_symlink_gets_its_directory(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "later")
    assert flowc_build(link).returncode == 0
    assert link.is_symlink() and (tmp_path / "later" / "flowc" / "plan.json").is_file()


def test_a_symlink_whose_target_parent_is_missing_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(tmp_path / "missing" / "out")
    proc = flowc_build(tmp_path / "link")
    assert proc.returncode == 1 and "error[FLC502]" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "missing").exists()


def test_an_output_below_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    proc = flowc_build(tmp_path / "file" / "out")
    assert proc.returncode == 1 and "is a file" in proc.stderr and "Traceback" not in proc.stderr


def test_a_symlink_to_a_foreign_directory_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    (tmp_path / "link").symlink_to(foreign)
    proc = flowc_build(tmp_path / "link")
    assert proc.returncode == 1 and "error[FLC501]" in proc.stderr, proc.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["precious.txt"]


def test_the_root_directory_is_refused_with_a_precise_message() -> None:
    proc = flowc_build(Path("/"))
    assert proc.returncode == 1, proc.stderr
    assert "'/' is the root directory" in proc.stderr and "''" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unreadable_output_is_an_error_not_a_crash(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every directory")
    out = tmp_path / "out"
    out.mkdir()
    (out / "x").write_text("x")
    out.chmod(0)
    try:
        proc = flowc_build(out)
    finally:
        out.chmod(0o755)
    assert proc.returncode == 1 and "error[FLC502]" in proc.stderr and "Traceback" not in proc.stderr


SIBLING = st.text(alphabet="abcdefgh0123456789._-", min_size=1, max_size=24).filter(lambda s: s not in (".", ".."))
PATHS = st.sampled_from(["a.yaml", "b/c.yaml", "flowc/plan.json", "d.txt"])
CONTENT = st.lists(st.tuples(PATHS, st.binary(max_size=8)), max_size=4, unique_by=lambda item: item[0])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=SIBLING, siblings=st.lists(SIBLING, max_size=6), builds=st.lists(CONTENT, min_size=1, max_size=3))
def test_property_builds_replace_only_their_output(tmp_path_factory: pytest.TempPathFactory, name: str,
                                                   siblings: list[str], builds: list) -> None:
    parent = tmp_path_factory.mktemp("prop")
    others = {s for s in siblings if s != name}
    for sibling in others:
        (parent / sibling).mkdir()
    for content in builds:
        artifacts = [Artifact(path, data) for path, data in content]
        try:
            write_output(artifacts, parent / name)
        except OutputError:
            pytest.fail(f"a build of {name!r} beside {sorted(others)} failed")
        assert drift(artifacts, parent / name) == []
        assert sorted(p.name for p in parent.iterdir()) == sorted({name, *others})


def test_a_large_output_written_by_several_threads_is_complete_and_exact(tmp_path: Path) -> None:
    from flowc.emit import writer

    count = writer.PARALLEL_WRITE_MIN_FILES + 37
    artifacts = [Artifact(f"n{i % 50}/sub/f{i}", f"file {i}\n".encode(), executable=i % 7 == 0) for i in range(count)]
    write_output(artifacts, tmp_path / "out")
    for artifact in artifacts:
        path = tmp_path / "out" / artifact.path
        assert path.read_bytes() == artifact.content
        assert path.stat().st_mode & 0o777 == (0o755 if artifact.executable else 0o644)
    assert sum(1 for p in (tmp_path / "out").rglob("*") if p.is_file()) == count + 1  # and the manifest


def test_a_thread_that_fails_fails_the_build_and_leaves_the_previous_output(tmp_path: Path) -> None:
    from flowc.emit import writer

    out = tmp_path / "out"
    write_output([Artifact("keep.txt", b"previous\n")], out)
    count = writer.PARALLEL_WRITE_MIN_FILES * 2
    artifacts = [Artifact(f"d{i % 9}/f{i}", b"x") for i in range(count)]
    artifacts.append(Artifact(f"d{(count - 1) % 9}/f{count - 1}", b"twice"))  # the last run creates it twice
    with pytest.raises(OutputError, match="cannot write"):
        write_output(artifacts, out)
    assert sorted(p.name for p in out.iterdir()) == ["flowc", "keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".flowc-new")]
