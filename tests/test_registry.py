"""The node's lock, registry and segments in ``/dev/shm``: races, hostile files and failed starts.

Real ``flowc launch`` processes and real files in ``/dev/shm``. Every plan here has its own source name, so its
segment prefix is not shared with any other test running at the same time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowc.model.node_view import NodeView, segment_prefix
from flowc.runtime import segments
from flowc.runtime.actor_main import load_node

TESTS = Path(__file__).resolve().parent
SHM = Path("/dev/shm")
NOBODY = 65534

PLAN = """
actors:
  feed: {type: producer, outputs: [ticks], run: "flowc.actors:synthetic_producer", params: {rate: 200, size: 64}}
  sink: {type: consumer, inputs: [ticks], run: "flowc.actors:latency_sink"}
nodes:
  dev:
    hostname: localhost
    actors: {feed: {cpu: [0]}, sink: {cpu: [1]}}
    local_channels:
      ticks: {type: SPSC, buffer_size: 64KiB}
"""


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "FLOWC_RESTART_BACKOFF_S": "0.05"}


def build(tmp: Path, source: str, text: str = PLAN) -> Path:
    path = tmp / source
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "flowc", "build", str(path), "-o", str(tmp / "out"), "-t", "plan"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return tmp / "out" / "flowc" / "plan.json"


def launch_argv(plan: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "flowc", "launch", str(plan), "--node", "dev", "--oversubscribe", *extra]


def launch(plan: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(launch_argv(plan, *extra), capture_output=True, text=True, env=env(), timeout=60,
                          check=False)


def shm_names(prefix: str) -> list[str]:
    return sorted(name for name in os.listdir(SHM) if name.startswith(prefix))


@pytest.fixture
def node(tmp_path: Path, request: pytest.FixtureRequest):
    """A built plan with a source name of its own, and its prefix; everything under the prefix is removed after."""
    source = "reg-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40] + ".yaml"
    plan = build(tmp_path, source)
    prefix = segment_prefix(source, "dev")
    yield plan, prefix
    for name in shm_names(prefix):
        path = SHM / name
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                child.unlink()
            path.rmdir()
        else:
            path.unlink()


def _wait_until(predicate, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


@pytest.mark.parametrize("trial", range(3))
def test_two_launchers_of_one_node_exactly_one_wins(node, trial: int) -> None:
    plan, prefix = node
    procs = [subprocess.Popen(launch_argv(plan), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    try:
        _wait_until(lambda: any(p.poll() is not None for p in procs), timeout=60)
        loser = next(p for p in procs if p.poll() is not None)
        winner = next(p for p in procs if p is not loser)
        message = loser.stderr.read()
        assert loser.returncode == 1, message
        assert f"process {winner.pid} holds" in message and "Traceback" not in message
        assert winner.poll() is None, "the winner keeps running"
        _wait_until(lambda: f"{prefix}-ticks" in shm_names(prefix))
        held = set(shm_names(prefix))
        assert {f"{prefix}-ticks", f"{prefix}.registry", f"{prefix}.lock"} <= held, \
            "the loser removed nothing of the winner's"
        for command in ("create", "remove"):
            other = subprocess.run([sys.executable, "-m", "flowc", "channels", command, str(plan), "--node", "dev"],
                                   capture_output=True, text=True, check=False)
            assert other.returncode == 1 and f"process {winner.pid} holds" in other.stderr, other.stderr
        assert set(shm_names(prefix)) == held, "'flowc channels' leaves a running node alone"
        winner.send_signal(signal.SIGTERM)
        assert winner.wait(timeout=30) == 0, winner.stderr.read()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert shm_names(prefix) == []


def test_a_registry_naming_a_live_pid_does_not_block(node) -> None:
    plan, prefix = node
    (SHM / f"{prefix}.registry").write_text(json.dumps({"launcher": 1, "node": "dev", "segments": []}))
    proc = launch(plan, "--duration", "0.3")
    assert proc.returncode == 0, proc.stderr
    assert shm_names(prefix) == []


@pytest.mark.parametrize("entry", ["victim", "{prefix}", "{prefix}-", "{prefix}-x/../../../{victim}",
                                   "../{victim}", "/dev/shm/{victim}", "{outside}", 7, None, ["{prefix}-ticks"]])
def test_a_registry_naming_files_outside_the_prefix_removes_nothing(node, tmp_path: Path, entry: object) -> None:
    plan, prefix = node
    victim_name = f"{prefix[:-3]}victim-{os.getpid()}"
    victim = SHM / victim_name
    victim.write_text("keep me")
    outside = tmp_path / "outside-shm"
    outside.write_text("keep me")
    ticks = SHM / f"{prefix}-ticks"
    ticks.write_bytes(b"\0" * 64)
    ticks.chmod(0o600)
    if isinstance(entry, str):
        entry = entry.format(prefix=prefix, victim=victim_name, outside=outside)
    if entry == "victim":
        entry = victim_name
    (SHM / f"{prefix}.registry").write_text(json.dumps({"launcher": 0, "segments": [entry]}))
    try:
        proc = launch(plan, "--duration", "0.3")
        assert proc.returncode == 1, proc.stderr
        assert f"{prefix}.registry" in proc.stderr and "Traceback" not in proc.stderr
        assert victim.read_text() == outside.read_text() == "keep me"
        assert ticks.exists(), "an untrusted registry makes the launcher remove nothing"
    finally:
        victim.unlink()


def test_a_registry_of_a_dead_run_is_reclaimed(node) -> None:
    plan, prefix = node
    leftover = SHM / f"{prefix}-ticks"
    leftover.write_bytes(b"\0" * 64)
    leftover.chmod(0o600)
    (SHM / f"{prefix}.registry").write_text(json.dumps({"launcher": 0, "segments": [f"{prefix}-ticks"]}))
    proc = launch(plan, "--duration", "0.3")
    assert proc.returncode == 0, proc.stderr
    assert "reclaimed 1 segment(s)" in proc.stderr
    assert shm_names(prefix) == []


def _symlink(path: Path, target: Path) -> None:
    path.symlink_to(target)


def _world_writable(path: Path, _target: Path) -> None:
    path.write_text(json.dumps({"launcher": 0, "segments": []}))
    path.chmod(0o666)


def _fifo(path: Path, _target: Path) -> None:
    os.mkfifo(path, 0o600)


def _foreign(path: Path, _target: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a file to another user")
    path.write_text(json.dumps({"launcher": 0, "segments": []}))
    path.chmod(0o644)
    os.chown(path, NOBODY, NOBODY)


def _directory(path: Path, _target: Path) -> None:
    path.mkdir(mode=0o700)


HOSTILE = {"symlink": (_symlink, "symbolic link"), "world-writable": (_world_writable, "mode 0666"),
           "fifo": (_fifo, "not a regular file"), "foreign": (_foreign, f"owned by uid {NOBODY}"),
           "directory": (_directory, "not a regular file")}


@pytest.mark.parametrize("which", [".registry", ".lock", "-ticks", ".registry.12345"])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_file_under_the_prefix_is_reported_not_used(node, tmp_path: Path, which: str, kind: str) -> None:
    plan, prefix = node
    target = tmp_path / "target"
    target.write_text("keep me")
    target.chmod(0o644)
    plant, why = HOSTILE[kind]
    path = SHM / f"{prefix}{which}"
    plant(path, target)
    proc = launch(plan, "--duration", "0.3")
    assert proc.returncode == 1, proc.stderr
    assert str(path) in proc.stderr and "Traceback" not in proc.stderr
    if which != "-ticks" or kind != "directory":
        assert why in proc.stderr, proc.stderr
    assert target.read_text() == "keep me"
    assert os.path.lexists(path), "what fails the checks is not removed"


def test_a_symlinked_report_dir_is_refused(node, tmp_path: Path) -> None:
    plan, prefix = node
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("keep me")
    (SHM / f"{prefix}.report").symlink_to(victim)
    proc = launch(plan, "--duration", "0.3")
    assert proc.returncode == 1 and "symbolic link" in proc.stderr, proc.stderr
    assert (victim / "keep").read_text() == "keep me"


def _layout(plan: Path) -> NodeView:
    return NodeView.of(load_node(str(plan), "dev"), "dev")


@pytest.fixture(scope="module")
def fuzz_layout(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("fuzz")
    layout = _layout(build(tmp, "reg-fuzz-registry.yaml"))
    sentinels = [SHM / f"flowc-fuzz-sentinel-{os.getpid()}", tmp / "sentinel"]
    for sentinel in sentinels:
        sentinel.write_text("keep me")
    yield layout, sentinels
    segments.release(layout)
    for sentinel in sentinels:
        sentinel.unlink()
    for name in shm_names(layout.prefix):
        os.unlink(SHM / name)


NAMES = st.one_of(st.text(max_size=40), st.integers(), st.none(),
                  st.sampled_from(["{prefix}-ticks", "{prefix}-a", "{sentinel}", "{sentinel_path}", "../{sentinel}",
                                   "{prefix}-/../{sentinel}", "{prefix}", "{prefix}-x\x00y"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(NAMES, max_size=6), extra=st.dictionaries(st.text(max_size=8), st.integers(), max_size=2),
       raw=st.one_of(st.none(), st.binary(max_size=64)))
def test_property_reclaim_never_removes_outside_the_prefix(fuzz_layout, names: list, extra: dict,
                                                            raw: bytes | None) -> None:
    layout, sentinels = fuzz_layout
    shm_sentinel, file_sentinel = sentinels
    filled = [n.replace("{prefix}", layout.prefix).replace("{sentinel}", shm_sentinel.name)
              .replace("{sentinel_path}", str(file_sentinel)) if isinstance(n, str) else n for n in names]
    for name in filled:
        if isinstance(name, str) and name.startswith(layout.prefix + "-") and "/" not in name and "\0" not in name:
            (SHM / name).write_bytes(b"x")
    body = raw if raw is not None else json.dumps({**extra, "launcher": 0, "segments": filled}).encode()
    registry = Path(layout.registry)
    registry.write_bytes(body)
    registry.chmod(0o644)
    try:
        removed = segments.reclaim(layout)
    except segments.UnsafeShm as exc:
        assert layout.registry in str(exc)
        removed = []
    assert all(segments.valid_name(layout, name) for name in removed)
    assert shm_sentinel.read_text() == file_sentinel.read_text() == "keep me"
    for name in shm_names(layout.prefix):
        if name != os.path.basename(layout.lock):
            os.unlink(SHM / name)


def _no_big_files() -> None:
    """Run with a 100 MiB file size limit, so creating a larger ring fails with EFBIG (a real, late failure)."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100 << 20, 100 << 20))


@pytest.mark.parametrize("bad_size", [-1, 512 << 20])
def test_a_failed_start_leaves_nothing(node, bad_size: int) -> None:
    plan, prefix = node
    data = json.loads(plan.read_text())
    channels = data["nodes"]["dev"]["channels"]
    channels["ticks"]["buffer_size"] = 64 << 20
    channels["zz_bad"] = {**channels["ticks"], "buffer_size": bad_size, "producers": [], "consumers": []}
    plan.write_text(json.dumps(data))
    proc = subprocess.run(launch_argv(plan, "--duration", "0.3"), capture_output=True, text=True, env=env(),
                          timeout=60, check=False, preexec_fn=_no_big_files)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    if bad_size > 0:
        assert "cannot create channel 'zz_bad'" in proc.stderr and "File too large" in proc.stderr, proc.stderr
    assert shm_names(prefix) == []


@pytest.mark.parametrize("bad_size", [-1, 0, 9999999 << 40, 1 << 64])
def test_create_is_transactional(node, bad_size: int) -> None:
    plan, prefix = node
    layout = _layout(plan)
    good = dataclasses.replace(layout.rings["ticks"], buffer_size=64 << 20)
    bad = dataclasses.replace(good, channel="zz_bad", name=f"{prefix}-zz_bad", buffer_size=bad_size)
    layout.rings = {"ticks": good, "zz_bad": bad}
    try:
        with pytest.raises(segments.SegmentError, match="cannot create channel 'zz_bad'"):
            segments.create(layout)
        assert shm_names(prefix) == [f"{prefix}.lock"], "only the lock this process still holds"
    finally:
        segments.release(layout)
    assert shm_names(prefix) == []


def test_a_registry_that_fails_halfway_removes_nothing(node) -> None:
    plan, prefix = node
    mine, planted = SHM / f"{prefix}-a_left", SHM / f"{prefix}-b_planted"
    for path, mode in ((mine, 0o600), (planted, 0o666)):
        path.write_bytes(b"x")
        path.chmod(mode)
    (SHM / f"{prefix}.registry").write_text(json.dumps({"launcher": 0, "segments": [mine.name, planted.name]}))
    proc = launch(plan, "--duration", "0.3")
    assert proc.returncode == 1 and str(planted) in proc.stderr and "mode 0666" in proc.stderr, proc.stderr
    assert mine.exists() and planted.exists(), "every file is checked before any is removed"
