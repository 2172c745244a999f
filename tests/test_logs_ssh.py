"""LogService against a real OpenSSH server on 127.0.0.1: reading, tailing and following a log file, and failures.

The module fixture starts Debian's sshd with a throwaway host key and client key on a free port, as the current
user. A small fake ``ssh`` program stands in where a test checks what would run, or that nothing runs.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from flowc.providers.mithril.domain.logs import LogError, LogService

from conftest import require_tool

SSHD = "/usr/sbin/sshd"
DEADLINE_S = 20.0


@dataclass(frozen=True)
class Server:
    port: int
    client_key: Path
    wrong_key: Path
    known_hosts: Path
    logs: Path

    @property
    def destination(self) -> str:
        return f"127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "flowc-test", "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL)


def wait_for_port(port: int, sshd: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if sshd.poll() is not None:
            pytest.fail(f"sshd exited with {sshd.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"sshd did not accept connections on port {port} within {DEADLINE_S} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_tool(SSHD)
    require_tool("ssh")
    require_tool("ssh-keygen")
    tmp = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key", "wrong_key"):
        keygen(tmp / name)
    (tmp / "authorized_keys").write_text((tmp / "client_key.pub").read_text())
    # A root sshd needs its privilege-separation directory; one run as another user does not use it.
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    port = free_port()
    config = tmp / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {tmp / 'host_key'}",
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}",
        f"PidFile {tmp / 'sshd.pid'}",
        "UsePAM no",
        "StrictModes no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "",
    ]))
    log = tmp / "sshd.log"
    with log.open("wb") as sink:
        sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=sink,
                                stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, sshd, log)
        logs = tmp / "logs"
        logs.mkdir()
        yield Server(port, tmp / "client_key", tmp / "wrong_key", tmp / "known_hosts", logs)
    finally:
        sshd.terminate()
        try:
            sshd.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sshd.kill()
            sshd.wait()


@pytest.fixture(scope="module")
def service(server: Server) -> LogService:
    return LogService(user=getpass.getuser(), identity_file=str(server.client_key),
                      known_hosts=str(server.known_hosts), connect_timeout_s=5)


def processes() -> Iterator[tuple[int, int, str, bytes]]:
    """Yield (pid, parent pid, command name, command line) of every process /proc shows."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        head, _, tail = stat.rpartition(")")
        yield int(entry.name), int(tail.split()[1]), head.partition("(")[2], cmdline


def ssh_children() -> list[int]:
    return [pid for pid, ppid, name, _ in processes() if ppid == os.getpid() and name == "ssh"]


def tails_of(path: Path) -> list[int]:
    return [pid for pid, _, name, cmdline in processes() if name == "tail" and str(path).encode() in cmdline]


@contextmanager
def watchdog() -> Iterator[None]:
    """Kill this process's ssh children after DEADLINE_S, so a line that never arrives fails the test, not hangs it."""
    fired = threading.Event()

    def kill() -> None:
        fired.set()
        for pid in ssh_children():
            os.kill(pid, signal.SIGKILL)

    timer = threading.Timer(DEADLINE_S, kill)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
    assert not fired.is_set(), f"no line arrived within {DEADLINE_S} s"


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {DEADLINE_S} s"
        time.sleep(0.05)


def fake_ssh(tmp_path: Path, body: str) -> str:
    """Write an executable that stands in for ssh, running the Python ``body``."""
    program = tmp_path / "fake-ssh"
    program.write_text(f"#!{sys.executable}\nimport sys, time\n{body}\n")
    program.chmod(0o755)
    return str(program)


def test_read_whole_file(server: Server, service: LogService) -> None:
    # A space and a quote in the name: the remote command must quote the path for the remote shell.
    path = server.logs / "task one's.log"
    path.write_text("epoch 1 loss 0.9\nepoch 2 loss 0.5\nünïcode ok\n")
    assert service.read(server.destination, str(path)) == path.read_text()


def test_read_tail(server: Server, service: LogService) -> None:
    path = server.logs / "tail.log"
    path.write_text("".join(f"line {i}\n" for i in range(1, 21)))
    assert service.read(server.destination, str(path), tail=3) == "line 18\nline 19\nline 20\n"
    assert service.read(server.destination, str(path), tail=0) == ""
    assert service.read(server.destination, str(path), tail=100) == path.read_text()


def test_follow_sees_appended_lines_and_stopping_ends_ssh(server: Server, service: LogService) -> None:
    path = server.logs / "follow.log"
    path.write_text("old 1\nold 2\nstarted\n")
    lines = service.follow(server.destination, str(path), tail=1)
    assert ssh_children() == [], "ssh must start on the first next(), not when follow() is called"
    with watchdog():
        assert next(lines) == "started"
        (pid,) = ssh_children()
        with path.open("a") as log:
            log.write("appended 1\n")
            log.flush()
            log.write("appended 2\n")
        assert [next(lines), next(lines)] == ["appended 1", "appended 2"]
        assert tails_of(path), "the remote tail -F runs while the iterator is open"
    lines.close()
    assert not Path(f"/proc/{pid}").exists(), "ssh is stopped and reaped (no zombie) when the iterator is closed"
    wait_until(lambda: not tails_of(path), "the remote tail ends when the connection closes")


def test_follow_whole_file_then_waits(server: Server, service: LogService) -> None:
    path = server.logs / "whole.log"
    path.write_text("a\nb\nc\n")
    lines = service.follow(server.destination, str(path), tail=None)
    with watchdog():
        assert [next(lines) for _ in range(3)] == ["a", "b", "c"]
    lines.close()
    assert ssh_children() == []


def test_missing_file_says_no_output_yet(server: Server, service: LogService) -> None:
    with pytest.raises(LogError) as caught:
        service.read(server.destination, str(server.logs / "not-yet.log"), tail=10)
    assert caught.value.message.startswith("the task has not written output yet: no '")
    assert "not-yet.log" in caught.value.message
    assert caught.value.help is not None and "may still be starting" in caught.value.help


def test_wrong_key_is_an_auth_error(server: Server) -> None:
    service = LogService(user=getpass.getuser(), identity_file=str(server.wrong_key),
                         known_hosts=str(server.known_hosts), connect_timeout_s=5)
    path = server.logs / "auth.log"
    path.write_text("secret output\n")
    with pytest.raises(LogError) as caught:
        service.read(server.destination, str(path))
    assert "ssh login to" in caught.value.message and "Permission denied" in caught.value.message
    assert caught.value.help is not None and "-i" in caught.value.help and "ssh_keys" in caught.value.help
    with pytest.raises(LogError, match="Permission denied"):
        next(service.follow(server.destination, str(path)))
    assert ssh_children() == []


def test_unreachable_port(server: Server, service: LogService) -> None:
    with pytest.raises(LogError) as caught:
        service.read(f"127.0.0.1:{free_port()}", str(server.logs / "any.log"))
    assert caught.value.message.startswith("cannot reach '")
    assert "Connection refused" in caught.value.message
    assert caught.value.help is not None and "ssh_keys" in caught.value.help


@pytest.mark.parametrize(("text", "expected"), [
    ("10.0.0.5", ("10.0.0.5", 22)),
    ("10.0.0.5:2222", ("10.0.0.5", 2222)),
    ("gpu-7.example.com:65535", ("gpu-7.example.com", 65535)),
    ("[2001:db8::1]:2200", ("2001:db8::1", 2200)),
    ("[::1]", ("::1", 22)),
    ("2001:db8::1", ("2001:db8::1", 22)),
    ("[fe80::1%eth0]:22", ("fe80::1%eth0", 22)),
])
def test_destination_forms(text: str, expected: tuple[str, int]) -> None:
    assert LogService().destination(text) == expected


JUNK = ["", " ", "host name", " host", "host\n", "-oProxyCommand=touch /tmp/x", "-p", "host:", "host:0",
        "host:65536", "host:+22", "host:22:33", "[::1", "[::1]:", "[::1]:x", "[10.0.0.1]:22", "[]:22",
        "user@host", "ho;st", "fe80::1%@x", "host\x1b[31m", "hôst"]


@pytest.mark.parametrize("junk", JUNK)
def test_junk_destinations_rejected_without_running_ssh(tmp_path: Path, junk: str) -> None:
    marker = tmp_path / "ran"
    service = LogService(ssh_program=fake_ssh(tmp_path, f"open({str(marker)!r}, 'w').close()"))
    with pytest.raises(LogError, match="invalid ssh destination"):
        service.read(junk, "/var/log/flowc/train.log")
    with pytest.raises(LogError, match="invalid ssh destination"):
        service.follow(junk, "/var/log/flowc/train.log")
    assert not marker.exists()


def test_command_line(tmp_path: Path) -> None:
    recorded = tmp_path / "argv.json"
    program = fake_ssh(tmp_path, f"import json; json.dump(sys.argv[1:], open({str(recorded)!r}, 'w'))")
    service = LogService(identity_file="/keys/id_ed25519", known_hosts="/state/known_hosts", ssh_program=program,
                         connect_timeout_s=2.5, extra_options=["Compression=yes"])
    assert service.read("[2001:db8::1]:2200", "/var/log/flowc/it's.log", tail=5) == ""
    argv = json.loads(recorded.read_text())
    options = [argv[i + 1] for i, arg in enumerate(argv[:-3]) if arg == "-o"]
    assert {"BatchMode=yes", "ConnectTimeout=3", "StrictHostKeyChecking=accept-new",
            "UserKnownHostsFile=/state/known_hosts", "IdentitiesOnly=yes", "ForwardAgent=no",
            "Compression=yes"} <= set(options)
    assert argv[argv.index("-i") + 1] == "/keys/id_ed25519"
    assert argv[-5:] == ["-p", "2200", "--", "ubuntu@2001:db8::1",
                         "test -e '/var/log/flowc/it'\"'\"'s.log' || exit 66; "
                         "exec tail -n 5 -- '/var/log/flowc/it'\"'\"'s.log'"]
    service.read("host", "/var/log/flowc/a.log")
    assert json.loads(recorded.read_text())[-3:] == ["--", "ubuntu@host",
                                                     "test -e /var/log/flowc/a.log || exit 66; "
                                                     "exec cat -- /var/log/flowc/a.log"]


def test_read_timeout_kills_ssh(tmp_path: Path) -> None:
    service = LogService(ssh_program=fake_ssh(tmp_path, "time.sleep(60)"), connect_timeout_s=0.2,
                         read_timeout_s=0.3)
    with pytest.raises(LogError, match="took longer than"):
        service.read("host", "/var/log/flowc/a.log")
    assert ssh_children() == []


def test_ssh_program_missing(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="cannot run") as caught:
        LogService(ssh_program=str(tmp_path / "no-ssh")).read("host", "/var/log/flowc/a.log")
    assert caught.value.help is not None and "openssh-client" in caught.value.help


@pytest.mark.parametrize("tail", [-1, True, 1.5])
def test_bad_tail(tail: object) -> None:
    with pytest.raises(LogError, match="tail must be"):
        LogService().read("host", "/var/log/flowc/a.log", tail=tail)  # type: ignore[arg-type]


@pytest.mark.parametrize("settings", [{"user": "-oProxyCommand=x"}, {"user": ""}, {"user": "a b"},
                                      {"known_hosts": "/a b"}, {"connect_timeout_s": 0},
                                      {"read_timeout_s": float("nan")}])
def test_bad_settings(settings: dict[str, object]) -> None:
    with pytest.raises(LogError):
        LogService(**settings)  # type: ignore[arg-type]


def test_flowc_logs_reads_a_submitted_tasks_output(server: Server, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from fake_mithril import FakeMithril
    from flowc.cli import main

    document = tmp_path / "job.yaml"
    document.write_text("mithril: {project: ml-team}\ntasks:\n  eval:\n    instance_type: a100\n"
                        "    region: us-central1-b\n    max_price_per_hour: 2\n    command: python eval.py\n"
                        "    ssh_keys: [alice-laptop]\n")
    (server.logs / "eval.log").write_text("".join(f"step {i}\n" for i in range(5)))
    monkeypatch.setattr("flowc.emit.mithril.script.LOG_DIR", str(server.logs))
    with FakeMithril() as fake:
        monkeypatch.setenv("MITHRIL_API_URL", fake.url)
        monkeypatch.setenv("MITHRIL_API_KEY", fake.key)
        runner = CliRunner()
        ssh = ["--user", getpass.getuser(), "-i", str(server.client_key), "--known-hosts", str(server.known_hosts)]
        early = runner.invoke(main, ["logs", str(document), "--task", "eval", *ssh])
        assert early.exit_code == 1 and "has no instances yet" in early.output
        assert runner.invoke(main, ["submit", str(document), "--yes"]).exit_code == 0
        fake.run(ssh_destination=server.destination)
        result = runner.invoke(main, ["logs", str(document), "--task", "eval", "--tail", "2", *ssh])
        assert result.exit_code == 0, result.output
        assert result.output == "step 3\nstep 4\n"
        missing = runner.invoke(main, ["logs", str(document), "--task", "eval", "--instance", "1", *ssh])
        assert missing.exit_code == 1 and "there is no instance 1" in missing.output
