"""Route keys: each node's Curve25519 keypair and the public keys of the nodes it exchanges routes with.

A route with ``auth: curve`` (the default) starts each connection with a Noise handshake over these keys
(:mod:`flowc.runtime.route_link`): the receiver lets in only the route's source node (its public key), and the
sender accepts only the receiver of its target node. ``flowc keys
generate`` makes the keys (:func:`generate`) once per plan, outside the deterministic build output: per node
a folder holding ``<node>.key_secret`` (its keypair, mode 0600) and ``<peer>.key`` for every peer (public
keys), in ZeroMQ's certificate format (:func:`zmq.auth.load_certificate` reads them).

At run time a bridge finds its node's folder (:func:`keys_directory`): ``FLOWC_KEYS_DIR`` (the Kubernetes
Secret's mount, or the whole folder ``flowc keys generate`` wrote), else ``$CREDENTIALS_DIRECTORY`` (systemd's
``LoadCredential=``), and loads what one leg needs (:func:`load`). A secret key that others may read, a
keypair that does not match, or a missing peer key is a :class:`RouteKeyError`, never a silent downgrade.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils import z85

from flowc.model.keys import KEYS_ENV, peers, public_file, secret_file
from flowc.model.plan import RoutePlan

#: Set by systemd for a unit with ``LoadCredential=``: the unit's credentials, one file each.
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
_KEY_CHARS = 40  # a 32-byte key in Z85


class RouteKeyError(Exception):
    """A route that authenticates cannot find or trust its keys."""


@dataclass(frozen=True)
class CurveKeys:
    """What one end of a route needs: its node's keypair and the public key of the node at the other end.

    Attributes:
        public: This node's public key (Z85).
        secret: This node's secret key (Z85).
        peer: The other end's public key (Z85): the receiver a sender trusts, the sender a receiver lets in.
    """

    public: bytes
    secret: bytes
    peer: bytes

    def __repr__(self) -> str:
        """Show the public keys only."""
        return f"CurveKeys(public={self.public.decode()!r}, peer={self.peer.decode()!r})"

    @classmethod
    def pair(cls) -> tuple[CurveKeys, CurveKeys]:
        """Two fresh keypairs that trust each other: ``(sender, receiver)`` (for tests and one-off links).

        Example:
            >>> sender, receiver = CurveKeys.pair()
            >>> sender.peer == receiver.public and receiver.peer == sender.public
            True
        """
        (public_a, secret_a), (public_b, secret_b) = zmq.curve_keypair(), zmq.curve_keypair()
        return cls(public_a, secret_a, public_b), cls(public_b, secret_b, public_a)


def generate(routes: Mapping[str, RoutePlan], metadata: Mapping[str, str] | None = None) -> dict[str, dict[str, bytes]]:
    """Make a fresh keypair for every node of an authenticated route and lay out what each node holds.

    The files are written by :func:`zmq.auth.create_certificates` in a private temporary folder and read back,
    so each node's folder is in ZeroMQ's certificate format.

    Args:
        routes: The plan's routes.
        metadata: Written into each secret certificate (for example the plan it was made for).

    Returns:
        Node → file name → content: its ``<node>.key_secret`` and each peer's ``<peer>.key``.
    """
    nodes = sorted({n for r in routes.values() if r.auth == "curve" for n in (r.source_node, *r.targets)})
    certificates: dict[str, tuple[bytes, bytes]] = {}
    with tempfile.TemporaryDirectory(prefix="flowc-keys-") as private:  # mode 0700: only this user sees them
        for node in nodes:
            public_path, secret_path = zmq.auth.create_certificates(private, node, {"node": node, **(metadata or {})})
            certificates[node] = (Path(public_path).read_bytes(), Path(secret_path).read_bytes())
    layout: dict[str, dict[str, bytes]] = {}
    for node in nodes:
        others = peers(routes, node)
        if others:
            layout[node] = {secret_file(node): certificates[node][1],
                            **{public_file(peer): certificates[peer][0] for peer in others}}
    return layout


def keys_directory(node: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """Where ``node``'s keys are: ``FLOWC_KEYS_DIR``, else systemd's credentials; ``None`` when neither is set.

    ``FLOWC_KEYS_DIR`` may name one node's folder or the whole output of ``flowc keys generate`` (then the
    node's folder in it is used).

    Args:
        node: The node.
        environ: The environment (default: this process's).

    Returns:
        The folder, or ``None``.
    """
    environ = os.environ if environ is None else environ
    base = environ.get(KEYS_ENV) or environ.get(CREDENTIALS_ENV)
    if not base:
        return None
    folder = Path(base)
    return folder / node if (folder / node / secret_file(node)).is_file() else folder


def load(directory: Path, node: str, peer: str) -> CurveKeys:
    """Load ``node``'s keypair and ``peer``'s public key from ``directory``.

    Args:
        directory: The node's key folder.
        node: This node.
        peer: The node at the other end of the route.

    Returns:
        The keys.

    Raises:
        RouteKeyError: A file is missing or unreadable, the secret key may be read by other users, a key is
            not a CURVE key, or the keypair does not match.
    """
    secret_path = directory / secret_file(node)
    public, secret = _certificate(secret_path)
    info = secret_path.stat()
    if not stat.S_ISREG(info.st_mode) or info.st_mode & (stat.S_IRWXO | stat.S_IWGRP):
        raise RouteKeyError(f"'{secret_path}' is readable or writable by other users (mode "
                            f"{stat.S_IMODE(info.st_mode):04o}); make it 0600 or 0400")
    if secret is None:
        raise RouteKeyError(f"'{secret_path}' holds no secret key")
    if zmq.curve_public(secret) != public:
        raise RouteKeyError(f"the public and secret keys in '{secret_path}' are not a pair")
    peer_public, _ = _certificate(directory / public_file(peer))
    return CurveKeys(public, secret, peer_public)


def _certificate(path: Path) -> tuple[bytes, bytes | None]:
    """Read a ZeroMQ certificate and check its keys are 32-byte Z85 keys."""
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise RouteKeyError(f"cannot read the key '{path}': {exc}") from None
    for key in (public, secret):
        if key is not None and not _z85_key(key):
            raise RouteKeyError(f"'{path}' does not hold a CURVE key (40 Z85 characters)")
    return public, secret


def _z85_key(key: bytes) -> bool:
    if len(key) != _KEY_CHARS:
        return False
    try:
        z85.decode(key)
    except (ValueError, KeyError, IndexError):
        return False
    return True
