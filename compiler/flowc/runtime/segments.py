"""Shared-memory segments of a node: locked, created from the layout, recorded, reclaimed after a crash.

Everything a node keeps in ``/dev/shm`` starts with its prefix (:attr:`NodeView.prefix`), a directory every
local user can write. So nothing found there is trusted: a file is used only when it was opened without
following a symlink and ``fstat`` shows a regular file owned by this user that no one else can write, and a
name read from the registry is removed only when it is under the node's own prefix. What fails a check is
reported (:class:`UnsafeShm`, exit 1), never used and never removed.

One process holds a node at a time: ``flock`` on ``<prefix>.lock`` (taken before anything is reclaimed or
created; a second launcher gets :class:`AlreadyRunning` naming the holder and removes nothing). The kernel
drops the lock when its holder dies, so a launcher killed with SIGKILL never blocks the next one, whatever a
pid in a file says. The registry (``<prefix>.registry``, JSON) names the segments a launcher is about to
create, so the next holder of the lock removes what a killed run left. Creation is transactional: when a
ring cannot be created, the rings created before it and the registry are removed before the error is raised.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import json
import os
import secrets
import shutil
import stat
import time
from typing import Any

from flowc.diagnostics import UserError
from flowc.model.node_view import SHM_DIR, NodeView, shm_path

#: A registry is a few names; anything longer is not one of ours.
MAX_REGISTRY_BYTES = 1 << 20
#: How long a launcher that lost the lock waits for the winner to write its pid into the lock file.
HOLDER_WAIT_S = 2.0

_HELD: dict[str, int] = {}


class AlreadyRunning(UserError):
    """Another live process holds this node's lock."""


class UnsafeShm(UserError):
    """A file under the node's prefix fails the ownership checks, or the registry is not one of flowc's."""


class SegmentError(UserError):
    """A ring of the node cannot be created (what was created before it has been removed)."""


def hold(layout: NodeView) -> None:
    """Take the node's lock for this process (idempotent); released by :func:`release` or at exit.

    Args:
        layout: The node's layout.

    Raises:
        AlreadyRunning: When another live process holds the node.
        UnsafeShm: When the lock file is not this user's regular, private file.
    """
    if layout.prefix in _HELD:
        return
    path = layout.lock
    for _ in range(64):
        fd = _open_checked(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            who = f"process {pid}" if pid else "another process"
            raise AlreadyRunning(f"node '{layout.node}' of this plan is already running: {who} holds {path} "
                                 "(stop it first; nothing was changed)") from None
        # The previous holder unlinks the lock file as it releases; a lock on that unlinked file guards nothing.
        if _same_file(fd, path):
            break
        os.close(fd)
    else:
        raise AlreadyRunning(f"cannot take the lock {path}: it keeps being replaced")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[layout.prefix] = fd


def holder(layout: NodeView) -> int | None:
    """The pid of the live process that holds the node's lock (its launcher), or ``None`` when nobody does."""
    try:
        fd = _open_checked(layout.lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def open_private(path: str, flags: int) -> int:
    """Open a file of the node's in ``/dev/shm`` only if it is this user's private regular file (no symlink).

    Raises:
        FileNotFoundError: There is no such file.
        UnsafeShm: It fails the checks.
    """
    return _open_checked(path, flags)


def release(layout: NodeView) -> None:
    """Give up the node's lock and remove the lock file (a no-op when this process does not hold it)."""
    fd = _HELD.pop(layout.prefix, None)
    if fd is None:
        return
    if _same_file(fd, layout.lock):
        _remove(layout.lock)
    os.close(fd)


def reclaim(layout: NodeView) -> list[str]:
    """Remove what a dead launcher of this plan and node left behind (takes the node's lock first).

    Args:
        layout: The node's layout.

    Returns:
        The segment names removed.

    Raises:
        AlreadyRunning: When another live process holds the node.
        UnsafeShm: When the registry or a file under the prefix fails the checks (nothing of it is removed).
    """
    hold(layout)
    names = sorted(set(_read_registry(layout)) | {spec.name for spec in layout.rings.values()})
    temporary = sorted(entry for entry in os.listdir(SHM_DIR)
                       if entry.startswith(os.path.basename(layout.registry) + "."))
    # Every file is checked before any is removed, so a registry that fails halfway leaves all as it was.
    found = {name: _own_paths(name) for name in [*names, *temporary]}
    _remove_report_dir(layout)
    for paths in found.values():
        for path in paths:
            _remove(path)
    removed = [name for name in names if found[name]]
    _remove(layout.registry)
    return removed


def create(layout: NodeView, only: set[str] | None = None) -> dict[str, Any]:
    """Create every ring of the node and record them; on any failure remove what this call created.

    Args:
        layout: The node's layout.
        only: Create only these channels' rings, adding them to the rings already recorded (a reload).

    Returns:
        Channel name → the created ring.

    Raises:
        AlreadyRunning: When another live process holds the node.
        SegmentError: When a ring cannot be created (nothing this call created is left behind).
        UnsafeShm: When a segment's name is taken by a file this launcher did not create.
    """
    from flowc.runtime.ring import Ring, RingError

    hold(layout)
    rings: dict[str, Any] = {}
    kept = _read_registry(layout) if only is not None else []
    attempted: list[str] = []
    try:
        for channel, spec in sorted(layout.rings.items()):
            if only is not None and channel not in only:
                continue
            taken = _existing(spec.name)
            if taken:
                raise UnsafeShm(f"refusing to create channel '{channel}': {taken} already exists and this "
                                "launcher did not create it; remove it if no other program uses it")
            # Recorded before it exists, so a launcher killed in between still leaves a name to reclaim.
            attempted.append(spec.name)
            _record(layout, kept + attempted)
            kwargs: dict[str, Any] = {"policy": spec.policy, "huge_pages": spec.huge_pages, "delivery": spec.delivery}
            if spec.spin_us is not None:
                kwargs["spin_us"] = spec.spin_us
            try:
                rings[channel] = Ring.create(spec.name, spec.buffer_size, spec.producers, spec.consumers, **kwargs)
            except (RingError, OSError, ValueError, OverflowError, MemoryError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise SegmentError(f"cannot create channel '{channel}' ({spec.buffer_size} bytes in "
                                   f"{shm_path(spec.name)}): {reason}; nothing of this node was left in "
                                   f"{SHM_DIR}") from exc
    except BaseException:
        for ring in rings.values():
            ring.close()
        for name in attempted:
            _unlink_own(name)
        if only is None:
            _remove(layout.registry)
        else:
            _record(layout, kept)
        raise
    return rings


def retire(layout: NodeView, rings: dict[str, Any]) -> None:
    """Close and remove some rings of a running node (a reload replaced or dropped them) and unrecord them.

    Args:
        layout: The node's layout (its lock is held by this process).
        rings: Segment name → the ring, as this process has it open.
    """
    hold(layout)
    for name, ring in rings.items():
        ring.close()
        _unlink_own(name)
    _record(layout, [n for n in _read_registry(layout) if n not in rings])


def remove(layout: NodeView, rings: dict[str, Any]) -> None:
    """Close and remove ``rings``, the node's route states and its registry (takes the node's lock first).

    Args:
        layout: The node's layout.
        rings: Channel name → ring this process created (closed and removed here).

    Raises:
        AlreadyRunning: When another live process holds the node.
    """
    hold(layout)
    for channel, ring in rings.items():
        ring.close()
        _unlink_own(layout.rings[channel].name)
    for bridge in layout.bridges:
        _unlink_own(os.path.basename(layout.route_state(bridge.route)))
    _remove(layout.registry)


def make_report_dir(layout: NodeView) -> str:
    """Create the node's report directory afresh (private to this user) and return its path."""
    hold(layout)
    _remove_report_dir(layout)
    try:
        os.mkdir(layout.report_dir, 0o700)
    except OSError as exc:
        raise UnsafeShm(f"cannot create {layout.report_dir}: {exc.strerror}") from exc
    return layout.report_dir


def remove_report_dir(layout: NodeView) -> None:
    """Remove the node's report directory when it is this user's own."""
    _remove_report_dir(layout, strict=False)


def valid_name(layout: NodeView, name: object) -> bool:
    """Whether ``name`` may be removed on behalf of this node: a file name under its prefix.

    Args:
        layout: The node's layout.
        name: A name read from the registry (anything JSON holds).

    Returns:
        True for ``<prefix>-<rest>`` without ``/`` or NUL, at most 255 bytes.

    Example:
        >>> from types import SimpleNamespace
        >>> view = SimpleNamespace(prefix="flowc-0123456789")
        >>> [valid_name(view, n) for n in ("flowc-0123456789-ticks", "flowc-0123456789-../x", "other-seg", 7)]
        [True, False, False, False]
    """
    return (isinstance(name, str) and name.startswith(layout.prefix + "-") and len(name) > len(layout.prefix) + 1
            and "/" not in name and "\0" not in name and len(name.encode()) <= 255)


def _read_registry(layout: NodeView) -> list[str]:
    path = layout.registry
    try:
        fd = _open_checked(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        data = os.read(fd, MAX_REGISTRY_BYTES + 1)
    finally:
        os.close(fd)
    try:
        record = json.loads(data) if len(data) <= MAX_REGISTRY_BYTES else None
    except ValueError:
        record = None
    names = record.get("segments") if isinstance(record, dict) else None
    if not isinstance(names, list):
        raise UnsafeShm(f"{path} is not a flowc registry; remove it if no launcher of node '{layout.node}' runs")
    for name in names:
        if not valid_name(layout, name):
            raise UnsafeShm(f"{path} names {json.dumps(name)[:80]}, which is not a segment of node "
                            f"'{layout.node}' (names start with '{layout.prefix}-'); nothing was removed")
    return names


def _record(layout: NodeView, segments: list[str]) -> None:
    body = json.dumps({"launcher": os.getpid(), "node": layout.node, "segments": sorted(segments)}).encode()
    for _ in range(16):
        tmp = f"{layout.registry}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            continue
        except OSError as exc:
            raise UnsafeShm(f"cannot create a temporary registry beside {layout.registry}: {exc.strerror}") from exc
        break
    else:
        raise UnsafeShm(f"cannot create a temporary registry beside {layout.registry}")
    try:
        os.write(fd, body)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, layout.registry)
    except OSError as exc:
        _remove(tmp)
        raise UnsafeShm(f"cannot write {layout.registry}: {exc.strerror}; remove it if it is not this node's") \
            from exc


def _open_checked(path: str, flags: int, mode: int = 0o600) -> int:
    """Open ``path`` without following a symlink and check it is this user's regular, private file."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except FileNotFoundError:
        raise
    except OSError as exc:
        why = {errno.ELOOP: "it is a symbolic link", errno.EISDIR: "it is not a regular file (a directory)"}.get(
            exc.errno, exc.strerror)
        raise UnsafeShm(f"refusing to use {path}: {why}; remove it if it is not this node's") from exc
    try:
        problem = _problem(os.fstat(fd), directory=False)
    except BaseException:
        os.close(fd)
        raise
    if problem:
        os.close(fd)
        raise UnsafeShm(f"refusing to use {path}: {problem}; remove it if it is not this node's")
    return fd


def _problem(st: os.stat_result, directory: bool) -> str | None:
    """Why a file found in shared memory must not be trusted, or None."""
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link"
    if directory and not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if not directory and not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if st.st_uid != os.geteuid():
        return f"it is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    if st.st_mode & 0o022:
        return f"group or others may write it (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _shm_dirs() -> tuple[str, ...]:
    from flowc.runtime.ring import HUGE_DIR

    return SHM_DIR, HUGE_DIR


def _existing(name: str) -> str | None:
    for directory in _shm_dirs():
        path = os.path.join(directory, name)
        if os.path.lexists(path):
            return path
    return None


def _existing(name: str) -> list[tuple[str, str | None]]:
    """Every place segment ``name`` exists, each with what makes it unsafe to touch (``None`` when nothing)."""
    found = []
    for directory in _shm_dirs():
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        found.append((path, _problem(st, directory=False)))
    return found


def _own_paths(name: str) -> list[str]:
    """Where segment ``name`` exists; raises when one of them fails the checks."""
    found = _existing(name)
    for path, problem in found:
        if problem:
            raise UnsafeShm(f"refusing to remove {path}: {problem}; nothing was removed")
    return [path for path, _ in found]


def _unlink_own(name: str) -> None:
    """Unlink segment ``name`` where it passes the checks; a file that fails them stays."""
    for path, problem in _existing(name):
        if problem is None:
            _remove(path)


def _remove_report_dir(layout: NodeView, strict: bool = True) -> None:
    path = layout.report_dir
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    problem = _problem(st, directory=True)
    if problem:
        if strict:
            raise UnsafeShm(f"refusing to use {path}: {problem}; remove it if it is not this node's")
        return
    shutil.rmtree(path, ignore_errors=True)


def _holder(fd: int) -> int | None:
    """The pid the lock's holder wrote into the lock file (it may still be writing it)."""
    end = time.monotonic() + HOLDER_WAIT_S
    while True:
        try:
            pid = int(os.pread(fd, 32, 0).decode("ascii").strip() or 0)
        except (OSError, ValueError, UnicodeDecodeError):
            pid = 0
        if pid > 0 and _alive(pid):
            return pid
        if time.monotonic() >= end:
            return None
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _same_file(fd: int, path: str) -> bool:
    try:
        here = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


def _release_all() -> None:
    for prefix, fd in list(_HELD.items()):
        _HELD.pop(prefix, None)
        path = shm_path(f"{prefix}.lock")  # NodeView.lock
        if _same_file(fd, path):
            _remove(path)
        os.close(fd)


atexit.register(_release_all)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
