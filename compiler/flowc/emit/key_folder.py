"""The folder ``flowc keys generate`` writes: each node's route keys, and a Kubernetes Secret per node.

Layout (all private to the user who ran the command)::

    KEYS/keys.json                                  what is here: the plan's source and each node's files
    KEYS/<node>/<node>.key_secret                   the node's keypair (0600)
    KEYS/<node>/<peer>.key                          the public key of every node it exchanges routes with
    KEYS/kubernetes/secret-<node>-route-keys.yaml   the same files as the Secret the node's Deployment mounts

Key material never enters a build's output: the folder may not be inside one (a build replaces its whole
output, and an output is often committed or published), and a build never reads it. The folder is written
beside its final place and moved there in one rename, so a failed run leaves no half set of keys; an existing
folder is replaced only with ``force`` and only if ``flowc keys generate`` made it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from flowc.emit.kubernetes.datapath import route_keys_secret
from flowc.emit.kubernetes.settings import Settings, k8s_name
from flowc.emit.writer import MANIFEST, OutputError
from flowc.emit.yaml_dump import dump_yaml

INDEX = "keys.json"
INDEX_FORMAT = "flowc.keys/v1"


def write_key_folder(keys: dict[str, dict[str, bytes]], directory: Path, source: str, kubernetes: Settings,
                     force: bool = False) -> list[str]:
    """Write ``keys`` (node → file → content) as a key folder at ``directory``.

    Args:
        keys: What each node holds, from :func:`flowc.runtime.route_keys.generate`.
        directory: Where the folder goes.
        source: The plan's source document (recorded in ``keys.json``).
        kubernetes: The Kubernetes settings the Secrets follow (namespace, labels).
        force: Replace a key folder that is already there.

    Returns:
        The files written, relative to ``directory``, sorted.

    Raises:
        OutputError: The folder is inside a build's output, is there without ``force``, is not a key folder,
            or cannot be written.
    """
    directory = Path(os.path.abspath(directory))
    _refuse_build_output(directory)
    exists = directory.exists() or directory.is_symlink()
    if exists:
        _refuse_replacing(directory, force)
    files = _files(keys, source, kubernetes)
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".flowc-keys", dir=directory.parent))
    except OSError as exc:
        raise OutputError("FLC502", f"cannot write '{directory}': {exc.strerror}",
                          "choose a folder you can write") from None
    try:
        for name, (content, mode) in files.items():
            path = staging / name
            path.parent.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
        if exists:
            retired = directory.with_name(f".{directory.name}.{os.getpid()}.flowc-keys-old")
            os.rename(directory, retired)
            os.rename(staging, directory)
            shutil.rmtree(retired)
        else:
            os.rename(staging, directory)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError("FLC502", f"cannot write '{directory}': {exc.strerror}",
                          "choose a folder you can write") from None
    return sorted(files)


def _files(keys: dict[str, dict[str, bytes]], source: str, kubernetes: Settings) -> dict[str, tuple[bytes, int]]:
    """Every file of the folder with its mode."""
    files: dict[str, tuple[bytes, int]] = {}
    for node, held in sorted(keys.items()):
        for name, content in sorted(held.items()):
            files[f"{node}/{name}"] = (content, 0o600 if name.endswith("_secret") else 0o644)
        secret = route_keys_secret(k8s_name(node), held, kubernetes)
        files[f"kubernetes/secret-{secret['metadata']['name']}.yaml"] = (dump_yaml(secret), 0o600)
    index = {"format": INDEX_FORMAT, "source": source, "nodes": {node: sorted(held) for node, held in keys.items()}}
    files[INDEX] = ((json.dumps(index, indent=2, sort_keys=True) + "\n").encode(), 0o644)
    return files


def _refuse_build_output(directory: Path) -> None:
    """A key folder inside a build's output would be replaced by the next build, or published with it."""
    for folder in (directory, *directory.parents):
        if (folder / MANIFEST).is_file():
            raise OutputError("FLC502", f"'{directory}' is inside the build output '{folder}'",
                              "keep keys out of build outputs: write them to a folder of their own")


def _refuse_replacing(directory: Path, force: bool) -> None:
    if not directory.is_dir() or directory.is_symlink():
        raise OutputError("FLC501", f"'{directory}' exists and is not a key folder", "choose another folder")
    if not any(directory.iterdir()):
        return  # an empty folder is taken as it is
    if not (directory / INDEX).is_file() or _format(directory / INDEX) != INDEX_FORMAT:
        raise OutputError("FLC501", f"'{directory}' exists and was not written by 'flowc keys generate'",
                          "choose another folder")
    if not force:
        raise OutputError("FLC501", f"'{directory}' already holds keys",
                          "pass --force to replace them (every node then needs its new keys)")


def _format(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("format") if isinstance(data, dict) else None
