"""Write artifacts into an output directory atomically, or compare them with it (drift check).

A build is written into a staging directory beside the target and swapped in with one atomic step,
``renameat2(RENAME_EXCHANGE)``, so a reader of the output always sees one complete build and a failed or killed
build leaves the previous output as it was. Where that call is missing (not Linux, glibc < 2.28, a kernel
before 3.15, or a filesystem that cannot exchange) the swap falls back to two renames, between which the output
is briefly absent. Builds of one output take turns (``flock`` on ``.<name>.flowc-lock`` beside it); the one
holding the lock first removes the staging directories of builds that died. A symlinked output stays a symlink:
the build replaces the directory it points to. A directory that flowc did not create (it lacks
``flowc/manifest.json``) is never replaced.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any

from flowc.emit.artifact import Artifact
from flowc.model.json_text import pretty

MANIFEST = "flowc/manifest.json"
MANIFEST_FORMAT = "flowc.manifest/v1"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class OutputError(Exception):
    """The output directory cannot be written; carries a diagnostic code and a help line."""

    def __init__(self, code: str, message: str, help: str) -> None:
        """Keep the parts of the diagnostic.

        Args:
            code: ``FLC501`` or ``FLC502``.
            message: What went wrong.
            help: How to fix it.
        """
        super().__init__(message)
        self.code = code
        self.message = message
        self.help = help


def with_manifest(artifacts: list[Artifact]) -> list[Artifact]:
    """Add ``flowc/manifest.json``: every file's SHA-256, which also marks the directory as flowc's.

    Args:
        artifacts: The emitted files.

    Returns:
        The files plus the manifest, sorted by path.
    """
    files = {a.path: hashlib.sha256(a.content).hexdigest() for a in artifacts}
    manifest = {"format": MANIFEST_FORMAT, "files": files}
    # json.dumps escapes non-ASCII here (ensure_ascii); pretty() writes the same bytes for ASCII paths, faster
    ascii_only = all(path.isascii() for path in files)
    body = pretty(manifest) if ascii_only else json.dumps(manifest, sort_keys=True, indent=2) + "\n"
    return sorted([*artifacts, Artifact(MANIFEST, body.encode())], key=lambda artifact: artifact.path)


def _owned(directory: Path) -> bool:
    if not directory.exists():
        return True
    if not directory.is_dir():
        return False
    if not any(directory.iterdir()):
        return True
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT


def write_output(artifacts: list[Artifact], directory: Path) -> None:
    """Replace ``directory`` with exactly ``artifacts`` (plus the manifest), in one atomic step.

    Args:
        artifacts: The files to write.
        directory: The output directory (a symlink to one is written through and stays a symlink).

    Raises:
        OutputError: When the directory belongs to someone else or cannot be written.
    """
    through_link = Path(os.path.abspath(directory)).is_symlink()
    directory = _target(directory)
    if directory.parent == directory:
        raise OutputError("FLC501", f"'{directory}' is the root directory, and a build replaces its whole output "
                          "directory", "choose a new or empty directory for the output, such as 'out/'")
    _refuse_foreign(directory)
    try:
        # A symlink names where its output lives; flowc makes the missing parents of a plain path only.
        if not through_link:
            directory.parent.mkdir(parents=True, exist_ok=True)
        lock = _lock(directory)
    except (FileExistsError, NotADirectoryError) as exc:
        raise OutputError("FLC502", f"cannot create the output beside '{directory}': a part of its parent "
                          "directory is a file", "choose an output directory whose parents are directories") from exc
    except OSError as exc:
        raise OutputError("FLC502", f"cannot create the output beside '{directory}': {exc.strerror or exc}",
                          "check the permissions of the parent directory") from exc
    try:
        _refuse_foreign(directory)
        _remove_stale(directory)
        staging = directory.parent / f".{directory.name}.{os.getpid()}.{secrets.token_hex(4)}.flowc-new"
        try:
            os.mkdir(staging, 0o700)
            _write_files(with_manifest(artifacts), str(staging))
            os.chmod(staging, 0o755)
            _swap(staging, directory)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise OutputError("FLC502", f"cannot write '{directory}': {exc.strerror or exc}",
                              "check free space and permissions; the previous output is unchanged") from exc
    finally:
        _unlock(lock, directory)


#: An output of at least this many files is written by :data:`WRITERS` threads: creating a file waits on the
#: filesystem far longer than on Python, and threads writing folders of their own do not wait on each other.
PARALLEL_WRITE_MIN_FILES = 512
WRITERS = 4


def _write_files(artifacts: list[Artifact], root: str) -> None:
    """Create each artifact under ``root`` (new files, their folders made first), with its exact mode.

    A large output is cut into runs of consecutive paths, one per thread, so each thread mostly fills folders
    no other thread touches; the first error any thread meets is raised once all have stopped.
    """
    for folder in sorted({artifact.path.rpartition("/")[0] for artifact in artifacts} - {""}):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    if len(artifacts) < PARALLEL_WRITE_MIN_FILES:
        _create_files(artifacts, root)
        return
    from concurrent.futures import ThreadPoolExecutor

    count = len(artifacts)
    runs = [artifacts[i * count // WRITERS:(i + 1) * count // WRITERS] for i in range(WRITERS)]
    with ThreadPoolExecutor(WRITERS, thread_name_prefix="flowc-writer") as pool:
        futures = [pool.submit(_create_files, run, root) for run in runs]
    for future in futures:
        future.result()


def _create_files(artifacts: list[Artifact], root: str) -> None:
    """Create ``artifacts`` under ``root``, whose folders exist, each with its content and exact mode."""
    for artifact in artifacts:
        fd = os.open(os.path.join(root, artifact.path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(artifact.content)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, 0o755 if artifact.executable else 0o644)  # exact, whatever the umask
        finally:
            os.close(fd)


def exchange_supported() -> bool:
    """Whether this system's C library has ``renameat2``, so the swap is one atomic step."""
    return _renameat2() is not None


def _target(directory: Path) -> Path:
    """The absolute directory to replace: a symlink's target (so the link stays), else the path itself."""
    path = Path(os.path.abspath(directory))
    if path.is_symlink():
        return Path(os.path.realpath(path))
    return path


def _refuse_foreign(directory: Path) -> None:
    try:
        owned = _owned(directory)
    except OSError as exc:
        raise OutputError("FLC502", f"cannot read '{directory}': {exc.strerror or exc}",
                          "check the permissions of the output directory") from exc
    if not owned:
        raise OutputError("FLC501", f"'{directory.name}' exists and was not created by flowc",
                          "choose an empty or new output directory; flowc never replaces other files")


def _lock(directory: Path) -> int:
    """Wait for this output's lock; its file is removed by the holder as it releases, so check it is current."""
    path = directory.parent / f".{directory.name}.flowc-lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, f"'{path}' is not a regular file")
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _same_file(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _unlock(fd: int, directory: Path) -> None:
    path = directory.parent / f".{directory.name}.flowc-lock"
    if _same_file(fd, path):
        path.unlink(missing_ok=True)
    os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


def _remove_stale(directory: Path) -> None:
    """Remove staging directories of this output whose build is gone (called with the lock held).

    Staging names carry the building process's pid; names without one come from older flowc versions, which
    took no lock and are never running beside this one.
    """
    pattern = re.compile(re.escape(f".{directory.name}.") + r"(?:(\d+)\.)?[a-z0-9_]{8}\.flowc-(?:new|old)")
    try:
        entries = os.listdir(directory.parent)
    except OSError:
        return
    for entry in entries:
        found = pattern.fullmatch(entry)
        if not found:
            continue
        pid = int(found.group(1)) if found.group(1) else None
        if pid is not None and pid != os.getpid() and _alive(pid):
            continue
        path = directory.parent / entry
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _swap(staging: Path, directory: Path) -> None:
    if not os.path.lexists(directory):
        os.rename(staging, directory)
        return
    if _exchange(staging, directory):
        # ``staging`` now holds the previous output; a build killed before this line leaves it for the next one.
        shutil.rmtree(staging, ignore_errors=True)
        return
    old = directory.parent / f".{directory.name}.{os.getpid()}.{secrets.token_hex(4)}.flowc-old"
    os.rename(directory, old)
    try:
        os.rename(staging, directory)
    except OSError:
        os.rename(old, directory)
        raise
    shutil.rmtree(old, ignore_errors=True)


@functools.cache
def _renameat2() -> Any:
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically; False when this system cannot (the caller falls back to two renames)."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def drift(artifacts: list[Artifact], directory: Path) -> list[str]:
    """List the files that differ between ``artifacts`` and ``directory`` (a drift gate).

    Args:
        artifacts: What a build would write.
        directory: What is on disk.

    Returns:
        Relative paths that are missing, changed or extra, sorted; empty when up to date.
    """
    expected = {a.path: a.content for a in with_manifest(artifacts)}
    actual: dict[str, bytes] = {}
    if directory.is_dir():
        for path in directory.rglob("*"):
            if path.is_file():
                actual[path.relative_to(directory).as_posix()] = path.read_bytes()
    return sorted(p for p in {*expected, *actual} if expected.get(p) != actual.get(p))
