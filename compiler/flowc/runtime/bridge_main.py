"""``flowc run-bridge``: carry one leg of an inter-node route between a local ring and TCP.

The launcher starts one per route target on the sending node (a consumer of the ring) and one per
route on the receiving node (a producer into the ring of the same name). SIGTERM makes a sender drain
what it took and a receiver stop. A route the peer refuses (another route or codec, a message over the
receiving ring's limit, this node's key) or an endpoint that cannot be used ends the bridge with exit code 1
and the reason. A route that authenticates (``auth: curve``, the default) loads its keys first
(:mod:`flowc.runtime.route_keys`); without them the bridge does not start.
"""

from __future__ import annotations

import os
import platform
import signal
import sys
import threading
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from flowc.model.node_view import Bridge
from flowc.runtime.actor_main import child_layout, load_node
from flowc.runtime.histogram import publish

#: How often a bridge publishes its live counters for the metrics endpoint and ``flowc top``.
PUBLISH_EVERY_S = 0.5
#: OpenSSL's capability mask for a bridge (``OPENSSL_ia32cap``, read once when libcrypto loads): no AVX2 and no
#: AVX-512, so ChaCha20-Poly1305 takes its SSE code. A route seals records of tens of bytes to 64 KiB, where the wide
#: code gains little, and a bridge shares its core with busy processes that switch in and out thousands of times a
#: second: with the wide code, a 20k msgs/s route's p50 was 1.7× what it is without (``bench/route.py``, 2 vCPU
#: Xeon VM). A mask the environment already sets is kept (``OPENSSL_ia32cap=:~0`` keeps every path).
OPENSSL_CAPABILITIES = ":~0x10020"

if TYPE_CHECKING:
    from flowc.runtime.bridge import BridgeStats
    from flowc.runtime.route_keys import CurveKeys


def prefer_narrow_crypto(environ: MutableMapping[str, str]) -> None:
    """Ask OpenSSL, before it loads, for :data:`OPENSSL_CAPABILITIES` unless ``environ`` already names a mask.

    Only x86-64 has these paths; elsewhere ``environ`` is left as it is. Loaded already, libcrypto keeps the paths
    it chose (a bridge started by the launcher or systemd is a fresh process, where it has not).

    Example:
        >>> env = {}
        >>> prefer_narrow_crypto(env); env.get("OPENSSL_ia32cap", OPENSSL_CAPABILITIES) == OPENSSL_CAPABILITIES
        True
        >>> env = {"OPENSSL_ia32cap": ":~0"}
        >>> prefer_narrow_crypto(env); env
        {'OPENSSL_ia32cap': ':~0'}
    """
    if platform.machine().lower() in ("x86_64", "amd64"):
        environ.setdefault("OPENSSL_ia32cap", OPENSSL_CAPABILITIES)


def run_bridge(plan_path: str, node: str, route: str, direction: str, index: int) -> int:
    """Run one bridge until the route's channel ends or SIGTERM arrives.

    Args:
        plan_path: The plan file.
        node: This node.
        route: The route.
        direction: ``"out"`` (send this node's channel) or ``"in"`` (receive into it).
        index: The ring endpoint index the layout gave this bridge.

    Returns:
        The exit code: 0, or 1 when the route cannot be carried (the reason goes to stderr).
    """
    prefer_narrow_crypto(os.environ)
    from flowc.runtime.bridge import BUSY_POLL_S, BridgeError, BridgeStats, Sender
    from flowc.runtime.bridge_receiver import Receiver
    from flowc.runtime.channels import Input, Output
    from flowc.runtime.readiness import signal_ready
    from flowc.runtime.ring import Ring
    from flowc.runtime.route_keys import RouteKeyError

    layout = child_layout(load_node(plan_path, node), node)
    bridge = next(b for b in layout.bridges if (b.route, b.direction, b.index) == (route, direction, index))
    try:
        keys = _keys(bridge, node)
    except RouteKeyError as exc:
        print(f"flowc run-bridge: route '{route}': {exc}", file=sys.stderr)
        return 1
    ring = Ring.attach(layout.rings[bridge.channel].name)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stats = BridgeStats()
    directory = os.environ.get("FLOWC_REPORT_DIR")
    path = os.path.join(directory, bridge_stats_file(route, direction, index)) if directory else None
    publisher = _Publisher(path, lambda: stats) if path else None
    code = 0
    try:
        if direction == "out":
            # No spin (a bridge usually shares cores with the actors, and a spinning one holds a core they need):
            # it polls the ring between yields for BUSY_POLL_S, then blocks on its doorbell.
            inp = Input(ring, bridge.index, 0.0, BUSY_POLL_S * 1e6)
            sender = Sender(f"tcp://{bridge.peer}:{bridge.port}", route, bridge.compression, drain_timeout_s=5.0,
                            auth=keys, on_ready=signal_ready)
            if publisher is not None:
                publisher.source = lambda: sender_stats(sender)
                publisher.start()
            stats = sender.run(lambda timeout: inp.recv(timeout), stop, closed=lambda: inp.closed)
        else:
            out = Output(ring, bridge.index)
            # The ring's own limit: a larger message could not be delivered, so it is refused on the wire.
            receiver = Receiver(f"tcp://*:{bridge.port}", route, bridge.compression,
                                state_path=layout.route_state(route), max_message=ring.max_message, auth=keys,
                                on_ready=signal_ready)
            if publisher is not None:
                publisher.start()
            receiver.run(lambda message: out.send(message), stop, stats)
    except BridgeError as exc:
        print(f"flowc run-bridge: route '{route}': {exc}", file=sys.stderr)
        code = 1
    if publisher is not None:
        publisher.stop()
    if path:
        stats.connected = False
        publish(path, stats.as_dict())
    return code


def bridge_stats_file(route: str, direction: str, index: int) -> str:
    """The name of the file in the report folder where a bridge publishes its counters.

    Example:
        >>> bridge_stats_file("feed", "out", 1)
        'route-feed-out-1.bridge'
    """
    return f"route-{route}-{direction}-{index}.bridge"


def sender_stats(sender: Any) -> BridgeStats | None:
    """The live counters of a running :class:`~flowc.runtime.bridge.Sender` (``None`` before it runs)."""
    return getattr(sender, "live_stats", None)


class _Publisher:
    """A daemon thread that writes a bridge's counters to its file every :data:`PUBLISH_EVERY_S`."""

    def __init__(self, path: str, source: Callable[[], BridgeStats | None]) -> None:
        self.path, self.source = path, source
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="flowc-bridge-publisher", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.done.set()
            self.thread.join()

    def _loop(self) -> None:
        while not self.done.wait(PUBLISH_EVERY_S):
            stats = self.source()
            if stats is None:
                continue
            try:
                data = stats.as_dict()
            except RuntimeError:  # a counter dict grew while it was copied: the next round has it
                continue
            publish(self.path, data)


def _keys(bridge: Bridge, node: str) -> CurveKeys | None:
    """The keys of a bridge whose route authenticates (``None`` for ``auth: none``)."""
    from flowc.runtime import route_keys

    if bridge.auth != "curve":
        return None
    directory = route_keys.keys_directory(node)
    if directory is None:
        raise route_keys.RouteKeyError(
            f"it authenticates its peers, and no keys were given: set {route_keys.KEYS_ENV} to the folder "
            "'flowc keys generate' wrote (or this node's part of it), or run under systemd with the unit's "
            "LoadCredential= files in place")
    return route_keys.load(directory, node, bridge.peer_node)
