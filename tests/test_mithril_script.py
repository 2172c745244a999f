"""The Mithril startup script run for real in a sandbox, and what the bid's explanation says Mithril enforces.

Each test builds a bid through the compiler and runs its startup script with real bash, with stubs on ``PATH`` for
everything that would touch the machine (``docker``, ``nvidia-smi``, ``hostname``, ``mount`` and the disk tools)
and ``FLOWC_HOSTS_FILE``, ``FLOWC_LOG_DIR`` and ``FLOWC_SYSROOT`` pointing into a temporary directory.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from flowc.emit.kubernetes.settings import DIST_PORT
from flowc.emit.mithril.script import CLUSTER_ENV, LOG_DIR, MASTER_PORT, PLAIN_LIMIT, log_path
from flowc.pipeline import compile_source

CLUSTER = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n# Mithril instances\nfe80::1 link-local\n\n" \
          "10.0.0.1 node-a.internal node-a\n10.0.0.2 node-b.internal  # no short name here\n" \
          "10.0.0.3 node-c.internal node-c\n"
#: Rank of each host of :data:`CLUSTER`: the last line is the head.
RANKS = {"node-c": 0, "node-b": 1, "node-a": 2}

STUBS = {
    # docker records what it was given, then runs the command after the image on the host.
    "docker": """printf '%s\\0' "$@" > "$SANDBOX/docker.argv"
env -0 > "$SANDBOX/docker.env"
shift
while [[ $1 == -* ]]; do case $1 in --rm) shift ;; *) shift 2 ;; esac; done
shift
exec "$@"
""",
    "nvidia-smi": 'for ((i = 0; i < ${STUB_GPUS:-0}; i++)); do echo "GPU $i: NVIDIA H100 80GB HBM3"; done\n',
    "hostname": 'echo "$STUB_HOST"\n',
    "mountpoint": "exit 1\n",
    "findmnt": "exit 1\n",
    "blkid": 'echo "blkid $*" >> "$SANDBOX/calls"; exit "${STUB_BLKID:-2}"\n',
    "mkfs.ext4": 'echo "mkfs.ext4 $*" >> "$SANDBOX/calls"\n',
    "mount": 'echo "mount $*" >> "$SANDBOX/calls"\n',
    "lsblk": 'if [[ $1 == -dpno ]]; then printf "/dev/loop0 loop\\n/dev/vdz disk\\n"; else echo vdz; fi\n',
}


@dataclass
class Run:
    """What one run of a startup script did."""

    code: int
    stdout: str
    stderr: str
    log: str
    docker_argv: list[str] | None
    docker_env: dict[str, str] | None
    calls: list[str]


class Sandbox:
    """A temporary directory with stubs on ``PATH``, a hosts file and room for logs, volumes and disks."""

    def __init__(self, root: Path) -> None:
        """Lay the sandbox out in ``root``."""
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        for name, body in STUBS.items():
            stub = self.bin / name
            stub.write_text("#!/bin/bash\n" + body)
            stub.chmod(0o755)
        self.hosts = root / "hosts"
        self.hosts.write_text(CLUSTER)
        self.sysroot = root / "sysroot"
        self.sysroot.mkdir()

    def run(self, script: str, host: str = "node-c", gpus: int = 8, **env: str) -> Run:
        """Run ``script`` as ``host`` with ``gpus`` GPUs; ``env`` adds to the stubs' settings."""
        for name in ("docker.argv", "docker.env", "calls"):
            (self.root / name).unlink(missing_ok=True)
        path = self.root / "startup.sh"
        path.write_text(script)
        environ = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}", "SANDBOX": str(self.root),
                   "STUB_HOST": host, "STUB_GPUS": str(gpus), "FLOWC_HOSTS_FILE": str(self.hosts),
                   "FLOWC_LOG_DIR": str(self.root / "log"), "FLOWC_SYSROOT": str(self.sysroot), **env}
        proc = subprocess.run(["bash", str(path)], cwd=self.root, env=environ, capture_output=True, text=True,
                              check=False, timeout=60)
        logs = list((self.root / "log").glob("*.log"))
        argv_file, env_file, calls = (self.root / n for n in ("docker.argv", "docker.env", "calls"))
        return Run(
            code=proc.returncode, stdout=proc.stdout, stderr=proc.stderr,
            log="".join(p.read_text() for p in logs),
            docker_argv=argv_file.read_text().split("\0")[:-1] if argv_file.exists() else None,
            docker_env=dict(item.split("=", 1) for item in env_file.read_text().split("\0")[:-1])
            if env_file.exists() else None,
            calls=calls.read_text().splitlines() if calls.exists() else [])


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


def artifacts(task: dict) -> tuple[dict[str, str], list]:
    """Compile a one-task document named 't'; return its files and its diagnostics."""
    text = yaml.safe_dump({"name": "t", "instance_type": "8xh100", **task}, sort_keys=False)
    result = compile_source(text, "t.yaml", environ={}, until="artifacts")
    assert result.artifacts is not None, result.diagnostics
    return {a.path: a.content.decode() for a in result.artifacts}, result.diagnostics


def build(task: dict) -> tuple[dict, str, list]:
    """Compile a one-task document; return its bid body, its explanation and the diagnostics."""
    files, diagnostics = artifacts(task)
    return json.loads(files["mithril/t.json"]), files["mithril/t.explain.txt"], diagnostics


def startup_script(task: dict) -> str:
    return build(task)[0]["launch_specification"]["startup_script"]


TRAINER = {"num_instances": 3, "image": "nvcr.io/nvidia/pytorch:24.05-py3",
           "command": ["sh", "-c", "echo training on $$NODE_RANK; echo warn >&2"]}


@pytest.mark.parametrize("host", sorted(RANKS))
def test_every_host_of_a_three_node_cluster_gets_its_rank(sandbox: Sandbox, host: str) -> None:
    run = sandbox.run(startup_script(TRAINER), host=host)
    assert run.code == 0, run.stderr
    env = run.docker_env
    assert (env["NUM_NODES"], env["NODE_RANK"], env["GPU_COUNT"]) == ("3", str(RANKS[host]), "8")
    assert env["MASTER_ADDR"] == env["HEAD_NODE_IP"] == "10.0.0.3" and env["MASTER_PORT"] == "29500"
    argv = run.docker_argv
    assert argv[:7] == ["run", "--rm", "--gpus", "all", "--network", "host", "--ipc"]
    passed = {argv[i + 1] for i, arg in enumerate(argv) if arg == "-e"}
    assert passed == set(CLUSTER_ENV)
    assert argv[-4:] == ["nvcr.io/nvidia/pytorch:24.05-py3", "sh", "-c", "echo training on $NODE_RANK; echo warn >&2"]
    assert f"training on {RANKS[host]}\n" in run.stdout and "warn\n" in run.stdout
    assert f"node {RANKS[host]} of 3, head 10.0.0.3, 8 gpus" in run.stderr


def test_no_gpu_driver_means_zero_gpus(sandbox: Sandbox) -> None:
    (sandbox.bin / "nvidia-smi").write_text("#!/bin/bash\necho 'driver not loaded' >&2\nexit 9\n")
    run = sandbox.run(startup_script(TRAINER))
    assert run.code == 0, run.stderr
    assert run.docker_env["GPU_COUNT"] == "0"


@pytest.mark.parametrize(("hosts", "host", "reason"), [
    ("10.0.0.1 node-a\n10.0.0.3 node-c\n", "node-c", "lists 2 instances, the task asks for 3"),
    (CLUSTER + "10.0.0.4 node-d\n", "node-c", "lists 4 instances, the task asks for 3"),
    ("127.0.0.1 localhost\n", "node-c", "lists 0 instances"),
    (CLUSTER, "node-x", "this host ('node-x') is not among the instances"),
])
def test_a_wrong_world_size_never_starts(sandbox: Sandbox, hosts: str, host: str, reason: str) -> None:
    sandbox.hosts.write_text(hosts)
    run = sandbox.run(startup_script(TRAINER), host=host)
    assert run.code != 0
    assert run.docker_argv is None, "docker was never called"
    assert reason in run.stderr and reason in run.log
    assert "not starting" in run.stderr


def test_a_missing_hosts_file_never_starts(sandbox: Sandbox) -> None:
    sandbox.hosts.unlink()
    run = sandbox.run(startup_script(TRAINER))
    assert run.code != 0 and run.docker_argv is None and "lists 0 instances" in run.stderr


def test_a_single_instance_needs_no_hosts_file(sandbox: Sandbox) -> None:
    sandbox.hosts.unlink()
    run = sandbox.run(startup_script({"image": "img", "command": "true"}), host="anything", gpus=2)
    assert run.code == 0, run.stderr
    env = run.docker_env
    assert (env["NUM_NODES"], env["NODE_RANK"], env["MASTER_ADDR"], env["GPU_COUNT"]) == ("1", "0", "127.0.0.1", "2")


HOSTILE = {"QUOTES": """it's "quoted" \\ and `ticks`""", "SPACES": "  two  spaces  ",
           "SUBST": "$(touch pwned) ${HOME} $HOME", "LINES": "one\ntwo\n"}


def test_task_env_arrives_verbatim_in_the_container(sandbox: Sandbox) -> None:
    env = {key: value.replace("$", "$$") for key, value in HOSTILE.items()}
    run = sandbox.run(startup_script({**TRAINER, "env": env}))
    assert run.code == 0, run.stderr
    assert {key: run.docker_env[key] for key in HOSTILE} == HOSTILE
    passed = [run.docker_argv[i + 1] for i, arg in enumerate(run.docker_argv) if arg == "-e"]
    assert passed == [*CLUSTER_ENV, *sorted(HOSTILE)]
    assert not (sandbox.root / "pwned").exists()


def test_the_cluster_variables_win_over_task_env_as_in_the_kubernetes_job(sandbox: Sandbox) -> None:
    task = {**TRAINER, "env": {"NUM_NODES": "99", "MASTER_PORT": "1234", "OTHER": "kept"}}
    run = sandbox.run(startup_script(task))
    assert (run.docker_env["NUM_NODES"], run.docker_env["MASTER_PORT"], run.docker_env["OTHER"]) == (
        "3", "29500", "kept")
    job = yaml.safe_load(artifacts(task)[0]["job-t.yaml"])
    job_env = {item["name"]: item.get("value") for item in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert set(CLUSTER_ENV) <= set(job_env) and set(job_env) - set(CLUSTER_ENV) == {"OTHER"}
    assert job_env["NUM_NODES"] == "3" and job_env["MASTER_PORT"] == str(MASTER_PORT) == str(DIST_PORT)


def test_without_an_image_the_command_runs_with_the_same_environment(sandbox: Sandbox) -> None:
    report = sandbox.root / "report"
    command = f"echo $$NODE_RANK/$$NUM_NODES/$$MASTER_ADDR:$$MASTER_PORT/$$GPU_COUNT/$$MINE > {report}; echo done"
    run = sandbox.run(startup_script({"num_instances": 3, "command": command, "env": {"MINE": "a b"}}), host="node-a")
    assert run.code == 0, run.stderr
    assert run.docker_argv is None
    assert report.read_text() == "2/3/10.0.0.3:29500/8/a b\n"
    assert run.stdout == "done\n" and "done\n" in run.log


@pytest.mark.parametrize("code", [0, 3, 42])
def test_the_log_holds_the_output_and_the_exit_status_is_the_commands(sandbox: Sandbox, code: int) -> None:
    task = {**TRAINER, "command": ["sh", "-c", f"echo out; echo err >&2; exit {code}"]}
    run = sandbox.run(startup_script(task))
    assert run.code == code
    assert run.stdout == "out\nerr\n"
    log = sandbox.root / "log" / "t.log"
    assert log.read_text().splitlines() == [
        "flowc: node 0 of 3, head 10.0.0.3, 8 gpus", "out", "err", f"flowc: exited with status {code}"]
    assert oct(log.parent.stat().st_mode & 0o777) == "0o755"


def test_the_log_path_contract() -> None:
    assert log_path("trainer") == f"{LOG_DIR}/trainer.log" == "/var/log/flowc/trainer.log"
    assert 'log_dir=${FLOWC_LOG_DIR:-/var/log/flowc}\n' in startup_script({"command": "true"})


def test_block_volume_found_by_id_is_formatted_once_and_passed_to_docker(sandbox: Sandbox) -> None:
    disk = sandbox.sysroot / "dev" / "vdb"
    by_id = sandbox.sysroot / "dev" / "disk" / "by-id"
    by_id.mkdir(parents=True)
    disk.write_text("")
    (by_id / "virtio-vol_abc123").symlink_to(disk)
    (by_id / "virtio-vol_abc123-part1").symlink_to(disk)
    target = sandbox.root / "volumes" / "ckpt"
    task = {"image": "img", "command": "true", "volumes": [
        {"volume_id": "vol_abc123", "mount_path": str(target)}]}
    run = sandbox.run(startup_script(task))
    assert run.code == 0, run.stderr
    assert run.calls == [f"blkid -p {disk}", f"mkfs.ext4 -q -F {disk}", f"mount {disk} {target}"]
    assert target.is_dir()
    flags = [run.docker_argv[i + 1] for i, arg in enumerate(run.docker_argv) if arg == "-v"]
    assert flags == [f"{target}:{target}"]
    again = sandbox.run(startup_script(task), STUB_BLKID="0")
    assert again.calls == [f"blkid -p {disk}", f"mount {disk} {target}"], "a disk with a filesystem is kept"


def test_block_volume_falls_back_to_the_first_unused_disk(sandbox: Sandbox) -> None:
    target = sandbox.root / "data"
    run = sandbox.run(startup_script({"image": "img", "command": "true", "volumes": [
        {"volume_id": "vol_zzz", "mount_path": str(target)}]}))
    assert run.code == 0, run.stderr
    assert run.calls == ["blkid -p /dev/vdz", "mkfs.ext4 -q -F /dev/vdz", f"mount /dev/vdz {target}"]


def test_file_volumes_are_found_under_mnt_or_fstab(sandbox: Sandbox) -> None:
    share = sandbox.sysroot / "mnt" / "fs-shared"
    share.mkdir(parents=True)
    (sandbox.sysroot / "etc").mkdir()
    (sandbox.sysroot / "etc" / "fstab").write_text(
        "# vol_nfs1 is not this line\nnfs.internal:/exports/vol_nfs1 /mnt/vol_nfs1 nfs defaults 0 0\n")
    shared, scratch = sandbox.root / "shared", sandbox.root / "scratch"
    task = {**TRAINER, "volumes": [{"name": "shared", "interface": "file", "mount_path": str(shared)},
                                   {"volume_id": "vol_nfs1", "interface": "file", "mount_path": str(scratch)}]}
    run = sandbox.run(startup_script(task))
    assert run.code == 0, run.stderr
    assert run.calls == [f"mount --bind {share} {shared}", "mount /mnt/vol_nfs1",
                         f"mount --bind /mnt/vol_nfs1 {scratch}"]
    flags = [run.docker_argv[i + 1] for i, arg in enumerate(run.docker_argv) if arg == "-v"]
    assert flags == [f"{shared}:{shared}", f"{scratch}:{scratch}"]


def test_a_missing_volume_never_starts(sandbox: Sandbox) -> None:
    target = sandbox.root / "shared"
    run = sandbox.run(startup_script({**TRAINER, "volumes": [
        {"name": "shared", "interface": "file", "mount_path": str(target)}]}))
    assert run.code != 0 and run.docker_argv is None
    assert f"file volume 'shared' for {target} not found" in run.stderr


def test_default_mount_path() -> None:
    script = startup_script({"image": "img", "command": "true", "volumes": [{"name": "data"}]})
    assert "mount_volume block /volumes/data data\n" in script and " -v /volumes/data:/volumes/data " in script


def test_a_compressed_script_behaves_the_same(sandbox: Sandbox) -> None:
    big = "".join(f"x{i:05d}" for i in range(PLAIN_LIMIT // 6 + 1))
    script = startup_script({**TRAINER, "env": {"BIG": big, "SUBST": "$$(touch pwned)"}})
    assert "payload=" in script and len(script) <= PLAIN_LIMIT
    for host, rank in RANKS.items():
        run = sandbox.run(script, host=host)
        assert run.code == 0, run.stderr
        assert (run.docker_env["NODE_RANK"], run.docker_env["BIG"], run.docker_env["SUBST"]) == (
            str(rank), big, "$(touch pwned)")
    sandbox.hosts.write_text("10.0.0.1 node-a\n")
    run = sandbox.run(script)
    assert run.code != 0 and run.docker_argv is None and "lists 1 instances" in run.stderr
    failing = startup_script({**TRAINER, "command": ["sh", "-c", "echo out; exit 7"], "env": {"BIG": big}})
    sandbox.hosts.write_text(CLUSTER)
    run = sandbox.run(failing)
    assert "payload=" in failing and run.code == 7 and run.stdout == "out\n"
    assert "out\nflowc: exited with status 7\n" in (sandbox.root / "log" / "t.log").read_text()
    assert not (sandbox.root / "pwned").exists()


def test_unenforced_topology_is_explained_and_warned_once() -> None:
    topology = {"placement": "spread", "interconnect": {"intranode": "nvlink", "internode": "infiniband"},
                "constraints": {"same_zone": True, "anti_affinity_groups": ["eval"]}}
    body, explain, diagnostics = build({"num_instances": 2, "topology": topology, "region": "us-central1-b"})
    assert body["placement_spec"] == {"anti_affinity": True, "gpu_interconnect": "nvlink",
                                      "network_tier": "infiniband", "zone_affinity": "required",
                                      "anti_affinity_groups": ["eval"]}, "still sent as before"
    assert ("mithril enforces: region us-central1-b; 2 instances, allocated all together or not at all; "
            "intranode nvlink (it comes with the instance type)\n") in explain
    assert ("mithril does not enforce: placement: spread; internode: infiniband; same_zone: true; "
            "anti_affinity_groups: [eval] (sent in placement_spec, which its CreateBidRequest does not define)\n"
            ) in explain
    [warning] = [d for d in diagnostics if d.code == "FLC515"]
    assert warning.severity.value == "warning" and (warning.span.line, warning.span.col) == (1, 1)
    assert warning.message == ("mithril does not enforce the topology task 't' asks for: 'placement: spread', "
                               "'internode: infiniband', 'same_zone: true', 'anti_affinity_groups: [eval]'")
    assert "region and 2 instances, allocated all together or not at all" in warning.help
    assert "kubernetes" in warning.help


@pytest.mark.parametrize("task", [
    {"num_instances": 4},
    {"num_instances": 4, "topology": {"placement": "packed", "interconnect": {"intranode": "nvlink"}}},
    {"topology": {"placement": "spread", "interconnect": {"internode": "infiniband"}}},
], ids=["defaults", "packed-nvlink", "one-instance"])
def test_nothing_unenforced_no_warning(task: dict) -> None:
    _, explain, diagnostics = build(task)
    assert "FLC515" not in {d.code for d in diagnostics}
    assert "mithril enforces: region us-central5-a; " in explain and "does not enforce" not in explain


def test_one_instance_still_warns_about_anti_affinity_groups() -> None:
    _, explain, diagnostics = build({"topology": {"constraints": {"anti_affinity_groups": ["b", "a"]}}})
    assert [d.message for d in diagnostics if d.code == "FLC515"] == [
        "mithril does not enforce the topology task 't' asks for: 'anti_affinity_groups: [a, b]'"]
    assert "mithril enforces: region us-central5-a; 1 instance\n" in explain
