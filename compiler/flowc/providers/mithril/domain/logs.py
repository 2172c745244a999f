"""Read a task's output from one of its instances by running the OpenSSH client (``ssh``) as a subprocess.

A Mithril task's startup script tees the command's output into a log file on each instance; :class:`LogService`
reads that file (whole, or its last lines) or follows it as it grows. The caller names the file: this layer does
not know where the emitter's script writes it. Every failure is a :class:`LogError` with a ``help`` line.
"""

from __future__ import annotations

import ipaddress
import math
import re
import shlex
import subprocess
import tempfile
from collections.abc import Iterator, Sequence

from flowc.providers.mithril.api.errors import MithrilApiError

DEFAULT_USER = "ubuntu"
DEFAULT_PORT = 22

# The remote command exits with this when the log file does not exist yet: EX_NOINPUT from sysexits.h, which
# neither ssh (255 for its own failures) nor cat and tail (1) use, so it cannot be mistaken for another failure.
_NO_LOG_EXIT = 66
_SSH_FAILED_EXIT = 255
_READ_TIMEOUT_S = 60.0
_STOP_GRACE_S = 5.0
_MAX_STDERR_LINE = 300

_HOSTNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")
_PORT = re.compile(r"[0-9]{1,5}")
_BRACKETED = re.compile(r"\[(?P<host>[^\[\]]+)\](?::(?P<port>[^:]*))?")
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")

_KEY_HELP = ("check the key: pass the private key of one of the task's ssh_keys with -i, and the user the "
             "instance expects (default 'ubuntu')")


class LogError(MithrilApiError):
    """A task's output could not be read: bad destination, ssh failure, missing log file or timeout."""


class LogService:
    """Reads log files on instances over SSH, with ``BatchMode`` so that nothing ever prompts.

    Host keys are trusted on first use (``StrictHostKeyChecking=accept-new``): a rented instance's key is new to
    this machine, and a key that changes afterwards is still refused. Agent and X11 forwarding are off, so a
    rented instance never gets a handle on the user's keys. Nothing secret goes on ssh's command line: the key
    is a file path.

    Args:
        user: The login user on the instance.
        identity_file: The private key to offer (``-i``, with ``IdentitiesOnly``); ``None`` uses ssh's defaults
            and agent.
        known_hosts: The known-hosts file to read and extend; ``None`` uses ``~/.ssh/known_hosts``.
        ssh_program: The OpenSSH client to run.
        connect_timeout_s: Seconds to wait for the connection (rounded up to whole seconds for ssh); also the
            keep-alive interval that ends a follow whose instance has gone away.
        extra_options: More ssh options, each ``Key=value``, passed as ``-o Key=value``.
        read_timeout_s: Seconds a :meth:`read` may take after connecting before its ssh process is killed.

    Raises:
        LogError: If ``user``, ``known_hosts`` or a timeout is not usable.

    Example:
        >>> LogService(user="ubuntu").destination("[2001:db8::1]:2222")
        ('2001:db8::1', 2222)
    """

    def __init__(
        self,
        user: str = DEFAULT_USER,
        identity_file: str | None = None,
        known_hosts: str | None = None,
        ssh_program: str = "ssh",
        connect_timeout_s: float = 10.0,
        extra_options: Sequence[str] = (),
        *,
        read_timeout_s: float = _READ_TIMEOUT_S,
    ) -> None:
        """Check the settings and keep them."""
        if not _USER.fullmatch(user):
            raise LogError(f"invalid ssh user {user!r}", help="use a login name such as 'ubuntu'")
        # ssh splits UserKnownHostsFile at whitespace and reads quotes, so such a path would silently name
        # other files.
        if known_hosts is not None and (not known_hosts or re.search(r"[\s\"']", known_hosts)):
            raise LogError(f"unusable known_hosts path {known_hosts!r}",
                           help="use a path without spaces or quotes")
        for name, value in (("connect_timeout_s", connect_timeout_s), ("read_timeout_s", read_timeout_s)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise LogError(f"{name} must be a positive number of seconds, got {value!r}")
        self.user = user
        self.identity_file = identity_file
        self.known_hosts = known_hosts
        self.ssh_program = ssh_program
        self.connect_timeout_s = float(connect_timeout_s)
        self.read_timeout_s = float(read_timeout_s)
        self.extra_options = tuple(extra_options)

    def destination(self, ssh_destination: str) -> tuple[str, int]:
        """Split an instance's ``ssh_destination`` into host and port.

        Args:
            ssh_destination: ``host``, ``host:port``, ``[ipv6]``, ``[ipv6]:port`` or a bare IPv6 address, as
                the API reports it.

        Returns:
            ``(host, port)``; the port is 22 when none is given, and an IPv6 host has no brackets.

        Raises:
            LogError: If it is empty, has spaces or control characters, starts with ``-`` (ssh would take it
                for an option), or is not one of the forms above.

        Example:
            >>> service = LogService()
            >>> service.destination("10.0.0.5"), service.destination("gpu-7.example.com:2200")
            (('10.0.0.5', 22), ('gpu-7.example.com', 2200))
            >>> try:
            ...     service.destination("-oProxyCommand=x")
            ... except LogError as err:
            ...     print(err.message)
            invalid ssh destination '-oProxyCommand=x': expected 'host', 'host:port' or '[ipv6]:port'
        """
        parsed = _parse_destination(ssh_destination) if isinstance(ssh_destination, str) else None
        if parsed is None:
            raise LogError(f"invalid ssh destination {ssh_destination!r}: expected 'host', 'host:port' or "
                           "'[ipv6]:port'", help="use the instance's ssh_destination as the Mithril API reports it")
        return parsed

    def read(self, ssh_destination: str, path: str, tail: int | None = None) -> str:
        """Return the content of ``path`` on the instance, or its last ``tail`` lines.

        Args:
            ssh_destination: The instance's ``ssh_destination``.
            path: The log file on the instance.
            tail: How many lines from the end to return; ``None`` returns the whole file.

        Returns:
            The text, decoded as UTF-8 (undecodable bytes replaced).

        Raises:
            LogError: If the destination, path or ``tail`` is invalid, ssh cannot connect or log in, the file
                does not exist yet, reading it fails, or it takes longer than the timeouts allow.
        """
        host, port = self.destination(ssh_destination)
        quoted = shlex.quote(_checked_path(path))
        reader = f"cat -- {quoted}" if tail is None else f"tail -n {_checked_tail(tail)} -- {quoted}"
        argv = self._argv(host, port, f"test -e {quoted} || exit {_NO_LOG_EXIT}; exec {reader}")
        timeout_s = self.connect_timeout_s + self.read_timeout_s
        try:
            # process_group=0: a Ctrl-C reaches this process only, and run() then kills ssh itself.
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s,
                                  check=False, process_group=0)
        except subprocess.TimeoutExpired:
            raise LogError(f"reading '{path}' on {self._where(host, port)} took longer than {timeout_s:g} s",
                           help="the instance or the network is slow; try again, or read fewer lines with a "
                                "tail") from None
        except OSError as exc:
            raise self._cannot_run(exc) from None
        if done.returncode != 0:
            raise self._failure(done.returncode, done.stderr, host, port, path)
        return done.stdout.decode("utf-8", "replace")

    def follow(self, ssh_destination: str, path: str, tail: int | None = 10) -> Iterator[str]:
        """Stream the lines of ``path`` on the instance as they are written (``tail -F``), until closed.

        The arguments are checked now; ssh starts on the first ``next()``. Closing the iterator (``close()``, or
        an exception such as ``KeyboardInterrupt`` passing through it) stops ssh and waits for it, and the
        remote ``tail`` ends when its connection closes. A log file that does not exist yet is waited for, as
        ``tail -F`` does, so following a starting instance shows its output once the task begins.

        Args:
            ssh_destination: The instance's ``ssh_destination``.
            path: The log file on the instance.
            tail: How many existing lines to show first; ``None`` shows the whole file.

        Returns:
            An iterator of lines, each without its trailing newline.

        Raises:
            LogError: At call time if the destination, path or ``tail`` is invalid; while iterating if ssh
                cannot connect or log in, or the connection is lost.
        """
        host, port = self.destination(ssh_destination)
        quoted = shlex.quote(_checked_path(path))
        start = "+1" if tail is None else str(_checked_tail(tail))
        argv = self._argv(host, port, f"exec tail -n {start} -F -- {quoted}")
        return self._stream(argv, host, port, path)

    def _stream(self, argv: list[str], host: str, port: int, path: str) -> Iterator[str]:
        """Run ``argv`` and yield its output line by line; stop ssh when the consumer stops."""
        # stderr goes to a file, not a pipe: nobody reads it while lines stream, and a full pipe would stall ssh.
        with tempfile.TemporaryFile() as stderr:
            try:
                # process_group=0: a Ctrl-C reaches this process only, which then stops ssh in the finally below.
                process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                                           process_group=0)
            except OSError as exc:
                raise self._cannot_run(exc) from None
            try:
                assert process.stdout is not None
                for raw in process.stdout:
                    yield raw.decode("utf-8", "replace").removesuffix("\n")
                # ssh closes its output as it exits, so this wait is short; _stop ends an ssh that lingers.
                try:
                    process.wait(timeout=_STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    pass
            finally:
                _stop(process)
            returncode = process.returncode
            if returncode != 0:
                stderr.seek(0)
                raise self._failure(returncode, stderr.read(), host, port, path)

    def _argv(self, host: str, port: int, remote_command: str) -> list[str]:
        """Build ssh's argument list; the remote command is one argument, already quoted for the remote shell."""
        seconds = str(max(1, math.ceil(self.connect_timeout_s)))
        options = [
            "BatchMode=yes",
            f"ConnectTimeout={seconds}",
            "StrictHostKeyChecking=accept-new",
            f"ServerAliveInterval={seconds}",
            "ServerAliveCountMax=3",
            "ForwardAgent=no",
            "ForwardX11=no",
            "ClearAllForwardings=yes",
            # Only errors on stderr, so its last line is the reason of a failure, not a notice about known_hosts.
            "LogLevel=ERROR",
        ]
        if self.known_hosts is not None:
            options.append(f"UserKnownHostsFile={self.known_hosts}")
        if self.identity_file is not None:
            options.append("IdentitiesOnly=yes")
        options.extend(self.extra_options)
        argv = [self.ssh_program, "-T"]
        for option in options:
            argv += ["-o", option]
        if self.identity_file is not None:
            argv += ["-i", self.identity_file]
        return [*argv, "-p", str(port), "--", f"{self.user}@{host}", remote_command]

    def _where(self, host: str, port: int) -> str:
        """Name the login for messages: ``'user@host:port'``, with brackets around an IPv6 host."""
        shown = f"[{host}]" if ":" in host else host
        return f"'{self.user}@{shown}:{port}'"

    def _cannot_run(self, exc: OSError) -> LogError:
        """Explain that the ssh program itself could not be started."""
        return LogError(f"cannot run '{self.ssh_program}': {exc.strerror or exc}",
                        help="install the OpenSSH client (Debian and Ubuntu: apt-get install openssh-client)")

    def _failure(self, returncode: int, stderr: bytes, host: str, port: int, path: str) -> LogError:
        """Turn a non-zero exit of ssh or of the remote command into an error that says what to do."""
        where = self._where(host, port)
        reason = _last_line(stderr)
        if returncode == _NO_LOG_EXIT:
            return LogError(f"the task has not written output yet: no '{path}' on {where}",
                            help="the instance may still be starting; its startup script creates the log when "
                                 "the task's command starts, so try again in a minute")
        if returncode != _SSH_FAILED_EXIT:
            return LogError(f"reading '{path}' on {where} failed (exit {returncode}): {reason}",
                            help=f"check that user '{self.user}' can read '{path}' on the instance")
        lowered = reason.lower()
        if "permission denied" in lowered or "too many authentication failures" in lowered:
            return LogError(f"ssh login to {where} was refused: {reason}", help=_KEY_HELP)
        if "host key" in lowered or "host identification" in lowered:
            return LogError(f"ssh to {where} refused the instance's host key: {reason}",
                            help="the instance's host key differs from the one in known_hosts; if the address "
                                 "was reused by a new instance, remove the old entry with ssh-keygen -R")
        return LogError(f"cannot reach {where} over ssh: {reason}",
                        help="check that the instance is running and reachable from here; if it is, " + _KEY_HELP)


def _parse_destination(text: str) -> tuple[str, int] | None:
    """Return ``(host, port)`` for a well-formed destination, else ``None``."""
    if not text or not text.isascii() or not text.isprintable() or any(c.isspace() for c in text):
        return None
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed:
        host, port = bracketed["host"], bracketed["port"]
        return (host, _port(port)) if _is_ipv6(host) and _port(port) else None
    if text.count(":") > 1:
        return (text, DEFAULT_PORT) if _is_ipv6(text) else None
    host, _, port = text.partition(":")
    if not _HOSTNAME.fullmatch(host):
        return None
    resolved = _port(port if ":" in text else None)
    return (host, resolved) if resolved else None


def _port(text: str | None) -> int | None:
    """Return the port ``text`` names (22 when ``None``), or ``None`` when it is not one."""
    if text is None:
        return DEFAULT_PORT
    if not _PORT.fullmatch(text) or not 0 < int(text) < 65536:
        return None
    return int(text)


def _is_ipv6(text: str) -> bool:
    """Say whether ``text`` is an IPv6 address, optionally with a ``%zone`` of interface-name characters."""
    # ipaddress accepts any zone text; ssh would read an '@' or '/' in it as part of the login or a path.
    if not _IPV6_CHARS.fullmatch(text):
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _checked_path(path: str) -> str:
    """Return ``path`` if it can name a file on the instance, else raise :class:`LogError`."""
    if not isinstance(path, str) or not path or "\0" in path:
        raise LogError(f"invalid log path {path!r}", help="name the task's log file, such as "
                                                           "'/var/log/flowc/<task>.log'")
    return path


def _checked_tail(tail: int) -> int:
    """Return ``tail`` if it is a line count, else raise :class:`LogError`."""
    if isinstance(tail, bool) or not isinstance(tail, int) or tail < 0:
        raise LogError(f"tail must be a number of lines (0 or more), got {tail!r}")
    return tail


def _last_line(stderr: bytes) -> str:
    """Return the last non-empty line of ``stderr``, made printable and short, for an error message.

    What the remote side writes is not trusted: control characters (terminal escapes) become ``?``.
    """
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    if not lines:
        return "no message from ssh"
    line = "".join(c if c.isprintable() else "?" for c in lines[-1])
    return line if len(line) <= _MAX_STDERR_LINE else line[: _MAX_STDERR_LINE - 3] + "..."


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End ``process`` if it still runs (TERM, then KILL after a grace), reap it, and close its output pipe."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
