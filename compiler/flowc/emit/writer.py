"""Write artifacts into an output directory atomically, or compare them with it (drift check).

A build is written into a fresh directory beside the target and swapped in with two renames, so a
failed build leaves the previous output as it was. A directory that flowc did not create (it lacks
``flowc/manifest.json``) is never replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from flowc.emit.artifact import Artifact

MANIFEST = "flowc/manifest.json"
MANIFEST_FORMAT = "flowc.manifest/v1"


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
    body = json.dumps({"format": MANIFEST_FORMAT, "files": files}, sort_keys=True, indent=2) + "\n"
    return sorted([*artifacts, Artifact(MANIFEST, body.encode())])


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
    """Replace ``directory`` with exactly ``artifacts`` (plus the manifest).

    Args:
        artifacts: The files to write.
        directory: The output directory.

    Raises:
        OutputError: When the directory belongs to someone else or cannot be written.
    """
    directory = directory.absolute()
    if not _owned(directory):
        raise OutputError("FLC501", f"'{directory.name}' exists and was not created by flowc",
                          "choose an empty or new output directory; flowc never replaces other files")
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".flowc-new", dir=directory.parent))
    except OSError as exc:
        raise OutputError("FLC502", f"cannot create the output beside '{directory}': {exc.strerror}",
                          "check the permissions of the parent directory") from exc
    try:
        for artifact in with_manifest(artifacts):
            target = staging.joinpath(*artifact.path.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(artifact.content)
            os.chmod(target, 0o755 if artifact.executable else 0o644)
        os.chmod(staging, 0o755)
        _swap(staging, directory)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError("FLC502", f"cannot write '{directory}': {exc.strerror or exc}",
                          "check free space and permissions; the previous output is unchanged") from exc


def _swap(staging: Path, directory: Path) -> None:
    if not directory.exists():
        os.rename(staging, directory)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".flowc-old", dir=directory.parent))
    old.rmdir()
    os.rename(directory, old)
    try:
        os.rename(staging, directory)
    except OSError:
        os.rename(old, directory)
        raise
    shutil.rmtree(old, ignore_errors=True)


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
