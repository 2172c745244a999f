"""Carry one channel between nodes over TCP: a :class:`Sender` forwards it, a :class:`Receiver` feeds it.

The wire is one TCP connection per route leg (:mod:`flowc.runtime.route_link`: framed records, sealed with the
Noise protocol when the route authenticates), which the sender's and the receiver's own loops read and write;
on top of it the bridge numbers messages, keeps the unacknowledged ones and resends them after a reconnect,
so a route loses nothing that the sender took from its local channel.

Protocol. Every message is one frame: a 24-byte header (version, kind, codec, epoch, session, sequence) and its
payload. A receiver reads the version first, so a peer of another protocol version is refused by name.
A sender run has a random 64-bit *session* and numbers its messages 1, 2, 3, … Each (re)connection is an
*epoch*: the sender sends ``HELLO`` (its route, codec and first unacknowledged sequence), the receiver answers
``WELCOME`` with the next sequence it expects (and, as its payload, the largest frame it reads: the sender stops
with :class:`BridgeError` rather than send a larger one), and the sender streams ``DATA`` from there. The receiver
delivers strictly in order, acknowledges cumulatively (``ACK`` every ``ack_every`` messages, and 2 ms after the
first unacknowledged one otherwise) and drops sequences it has already delivered. Data of an epoch it does not know
(a restarted receiver, a lost frame) earns a ``RESYNC``, and the sender starts a new epoch. ``HEARTBEAT`` from the
sender is answered with an ``ACK``, so each side notices a silent peer after ``3 * heartbeat_s``; the sender then
reconnects with a fresh connection and resends. A connection that fails or ends is tried again every
:data:`RECONNECT_S`.

Batches. When more than one message is due at once (the producer outran the link, or a resend), the sender packs
consecutive ones into one ``BATCH``: its header's sequence is the first message's (its codec byte is 0), and its
payload is the messages in order, each a record of a codec id and a length (:data:`~flowc.runtime.wire.RECORD`,
5 bytes, network order) followed by that many bytes, raw or in the route's codec as a ``DATA`` payload may be. A
batch holds at most 256 messages and 64 KiB, and never more than the receiver's frame limit, neither as it travels
nor decoded. A lone message goes as ``DATA``: batches form only from messages already waiting, none is held back
to fill one. Each message keeps its own sequence, so acknowledgements, resends and the window count messages as
before. The receiver checks a whole batch (its records, their codecs, the sizes they state and the sum of those)
before it delivers any of it, then handles each record as the ``DATA`` of its sequence: a batch that starts
before the expected sequence delivers only its new tail, one that starts after it earns a ``RESYNC``.

Guarantee. Within one sender run, every message the sender took from its local channel is delivered to
the receiving channel in order and, while the receiver process lives, exactly once. Delivery comes before
acknowledgement, so a receiver process that dies may have delivered messages the sender never saw
acknowledged; the sender resends them to the restarted receiver:

* without ``state_path`` the restarted receiver cannot tell, and re-delivers them: the duplicates are the
  messages delivered after the last acknowledgement that reached the sender (typically up to ``ack_every``
  plus those in flight, never more than the sender's ``window``), a contiguous run just before the restart;
* with ``state_path`` the receiver records ``(session, last delivered sequence)`` after each delivery
  (one 20-byte ``pwrite``, which survives the process but not the machine) and a restart resumes after it,
  so at most one message repeats: the one whose delivery had completed in the local channel but was not
  yet recorded when the process died. Only a local channel that records the sequence itself, atomically
  with the message, could close that window.

A sender that is restarted starts a new session; what its predecessor had not yet sent is the local
channel's concern. One sender per route: another session takes over a receiver (and resets its order) only
once the current sender has been silent for three heartbeats; until then its HELLO is refused as ``busy``.

Hostile peers. The receiver (:mod:`flowc.runtime.bridge_receiver`) is the end a stranger can reach. No frame
can end it or reach the local channel unless it is the current session's next message: frames over the
ring's largest message end their connection before they are whole, only raw payloads and the route's own codec are
accepted, decompression is bounded by the ring's largest message, per-peer state is capped, and every
refused frame is counted by reason (:attr:`BridgeStats.rejects`, in the launch report per route).

Authentication. Given :class:`~flowc.runtime.route_keys.CurveKeys`, each connection starts with a Noise ``KK``
handshake: the link is encrypted, the receiver lets in only the key of the route's source node, and the sender
talks only to the key of its target node. A peer with another key never completes the handshake, so none of its
frames is read; the receiver counts it in ``auth_failures``, and a sender whose key the receiver refuses (or a
receiver that cannot prove its own) stops with :class:`BridgeError`. Without keys (a route the document marks
``auth: none``) anyone who reaches the port while no sender holds the route can become its sender.

Example (two processes; ``ring_recv`` and ``ring_send`` stand for the local channel's ends; :class:`Receiver`
is in :mod:`flowc.runtime.bridge_receiver`)::

    Sender("tcp://strategy-node-routes:7400", "quotes", compression="lz4").run(ring_recv, stop)
    Receiver("tcp://*:7400", "quotes", compression="lz4", max_message=ring.max_message).run(ring_send, stop)
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import select
import socket
import time
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import Any, Protocol

from flowc.runtime.histogram import Histogram
from flowc.runtime.route_keys import CurveKeys
from flowc.runtime.route_link import Link, LinkClosed, connect, parse_endpoint
from flowc.runtime.wire import (
    ACK,
    BATCH,
    DATA,
    HEARTBEAT,
    HELLO,
    LIMIT,
    PROBE,
    RECORD,
    REJECT,
    RESYNC,
    VERSION,
    WELCOME,
    Codec,
)
from flowc.runtime.wire import HEADER as _HEADER
from flowc.runtime.wire import header as _header

_POLL_S = 0.05  # longest a loop waits before it looks at ``stop`` again
#: How often a streaming sender times the route's round trip (a HEARTBEAT whose echo comes back in an ACK).
PROBE_S = 0.1
#: Round-trip samples kept for the percentiles (the most recent ones).
_ROUND_TRIPS_KEPT = 4096
#: Largest frame a sender accepts: the receiver only ever sends a header and a short reason.
_SENDER_MAX_FRAME = 4096
#: Most bytes and messages one BATCH carries: a larger frame would hold up the socket (and the acks) for longer.
_BATCH_BYTES = 64 << 10
_BATCH_MESSAGES = 256
#: Most messages one pass of the sender's loop takes from the local channel.
_PULL_MESSAGES = 256
#: Bytes a sender lets wait for the socket before it stops sending (the kernel's own buffer comes first).
_SEND_BUFFER = 4 << 20
#: How long a bridge goes on polling after traffic, between ``sched_yield`` calls, before it blocks. Within it the
#: next message of a busy route (20k msgs/s: one every 50 µs) is found by a poll, not delivered by a wake-up: waking
#: a process whose core went idle costs tens of µs (on a VM, the idle vCPU's return from the hypervisor), as much as
#: the rest of the route. A yield gives way to whatever else is runnable on the core, and an idle route sleeps after.
#: Ten of a 20k msgs/s route's gaps: a sender that fell behind sends a few messages as one frame, and frames that
#: come further apart than the window would each have to wake the receiver (measured: 100 µs left a 20k msgs/s
#: route's p50 higher and less steady).
BUSY_POLL_S = 500e-6
#: How long a sender waits before it connects again after a connection failed or ended.
RECONNECT_S = 0.1
_POLLIN, _POLLOUT = select.POLLIN, select.POLLOUT


class BridgeError(RuntimeError):
    """A route cannot be carried: the peer rejected it or the endpoint is unusable."""


class Event(Protocol):
    """What the bridge needs of a stop flag (:class:`threading.Event` and ``multiprocessing.Event`` fit)."""

    def is_set(self) -> bool:
        """Whether the bridge should stop."""
        ...


@dataclasses.dataclass
class BridgeStats:
    """Counters of one :meth:`Sender.run` or :meth:`Receiver.run`.

    Attributes:
        sent: Messages sent for the first time (sender).
        received: Messages delivered to the local channel (receiver).
        resent: Messages sent again after a reconnect or resync (sender).
        acked: Messages the receiver acknowledged (sender).
        duplicates_dropped: Messages received again and not delivered (receiver).
        reconnects: Handshakes after the first one, i.e. times the stream resumed.
        peer_timeouts: Times the peer stayed silent longer than three heartbeats.
        bytes_on_wire: Bytes of all frames this side sent (sender) or received (receiver).
        frames_sent: ``DATA`` and ``BATCH`` frames sent, first or again (sender); ``sent + resent`` over it is
            the messages per frame.
        frames_received: ``DATA`` and ``BATCH`` frames of the current sender handled (receiver).
        payload_bytes: Uncompressed bytes of the messages taken (sender) or delivered (receiver).
        compressed_bytes: The same messages' bytes as they travel, after compression.
        abandoned: Messages still unacknowledged when a drain timed out (sender).
        rejected: Frames refused and never delivered (receiver): the sum of ``rejects``.
        rejects: Refused frames by reason (:data:`flowc.runtime.wire.REASONS`; receiver).
        peers_evicted: Remembered peers forgotten to keep the receiver's state bounded (receiver).
        disconnects: Connections that ended, including those ZeroMQ closed for a frame over the size limit.
        handshake_failures: Connections refused during the ZeroMQ handshake (a protocol error or failed
            authentication).
        auth_failures: Of those, the peers whose key the route does not trust (receiver), or the times the
            receiver refused this sender's key (sender).
        round_trips_ns: The route's latest round trips (sender): a probe ``HEARTBEAT`` out, its echo back in an
            ``ACK``, every ``PROBE_S`` while streaming; ``as_dict`` reports their percentiles as ``round_trip_us``.
        round_trip_histogram: Every round trip of the run, bucketed (``as_dict``: ``round_trip_histogram``).
        connected: Whether the route is up now: the receiver welcomed this sender (sender), or a sender is
            streaming and has been heard within three heartbeats (receiver).

    Example:
        >>> stats = BridgeStats(sent=2, payload_bytes=300, compressed_bytes=100)
        >>> stats.compression_ratio
        3.0
        >>> stats.as_dict()["compression_ratio"]
        3.0
        >>> stats.reject("codec"); stats.reject("busy"); stats.reject("codec")
        >>> stats.rejected, stats.as_dict()["rejects"]
        (3, {'busy': 1, 'codec': 2})
    """

    sent: int = 0
    received: int = 0
    resent: int = 0
    acked: int = 0
    duplicates_dropped: int = 0
    reconnects: int = 0
    peer_timeouts: int = 0
    bytes_on_wire: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    payload_bytes: int = 0
    compressed_bytes: int = 0
    abandoned: int = 0
    rejected: int = 0
    rejects: dict[str, int] = dataclasses.field(default_factory=dict)
    peers_evicted: int = 0
    disconnects: int = 0
    handshake_failures: int = 0
    auth_failures: int = 0
    round_trips_ns: list[int] = dataclasses.field(default_factory=list, repr=False)
    round_trip_histogram: Histogram = dataclasses.field(default_factory=Histogram, repr=False)
    connected: bool = False

    def reject(self, reason: str) -> None:
        """Count one refused frame under ``reason``."""
        self.rejected += 1
        self.rejects[reason] = self.rejects.get(reason, 0) + 1

    @property
    def compression_ratio(self) -> float:
        """Uncompressed over compressed payload bytes (1.0 before any message)."""
        return self.payload_bytes / self.compressed_bytes if self.compressed_bytes else 1.0

    def round_trip(self, nanoseconds: int) -> None:
        """Record one round trip of the route (sender): a probe out, its echo back."""
        if 0 <= nanoseconds < 1 << 62:
            self.round_trip_histogram.observe_ns(nanoseconds)
            self.round_trips_ns.append(nanoseconds)
            if len(self.round_trips_ns) > _ROUND_TRIPS_KEPT:
                del self.round_trips_ns[: len(self.round_trips_ns) - _ROUND_TRIPS_KEPT]

    def as_dict(self) -> dict[str, Any]:
        """The counters, the compression ratio and the round trip's percentiles as a plain dict.

        ``rejects`` is sorted by reason; ``round_trip_us`` has ``p50``, ``p99``, ``p999`` and ``count`` (sender);
        ``round_trip_histogram`` is :meth:`~flowc.runtime.histogram.Histogram.as_dict`.
        """
        counters = dataclasses.asdict(self)
        counters["rejects"] = dict(sorted(self.rejects.items()))
        counters["round_trip_histogram"] = self.round_trip_histogram.as_dict()
        ordered = sorted(counters.pop("round_trips_ns"))
        counters["round_trip_us"] = {
            **{key: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000, 1) if ordered else 0.0
               for key, q in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))}, "count": len(ordered)}
        return {**counters, "compression_ratio": round(self.compression_ratio, 4)}


class Sender:
    """The sending end of a route: takes messages from the local channel and forwards them."""

    def __init__(self, endpoint: str, route: str, compression: str = "none", heartbeat_s: float = 1.0,
                 window: int = 1024, *, drain_timeout_s: float | None = None, auth: CurveKeys | None = None,
                 on_ready: Callable[[], None] | None = None) -> None:
        """Check the settings; nothing connects before :meth:`run`.

        Args:
            endpoint: Where the receiver listens, e.g. ``"tcp://strategy-node-routes:7400"``.
            route: The route's name; the receiver refuses a sender of another route.
            compression: ``"none"``, ``"lz4"`` or ``"zstd"``, applied to each payload.
            heartbeat_s: Seconds between heartbeats on an idle route; a peer silent for three is dead.
            window: Most messages taken but not yet acknowledged. When full, the sender stops taking
                messages from the local channel, which is how backpressure reaches the producer.
            drain_timeout_s: Longest :meth:`run` waits for acknowledgements once told to stop
                (``None``: until they come).
            auth: This node's keypair and the receiving node's public key: speak CURVE and talk only to that
                receiver (``None``: no authentication).
            on_ready: Called once, when the receiver first welcomes this sender.

        Raises:
            ValueError: On an unknown compression or a non-positive window or heartbeat.
        """
        if window < 1 or heartbeat_s <= 0:
            raise ValueError("window must be at least 1 and heartbeat_s positive")
        Codec(compression)
        self.endpoint, self.route, self.compression = endpoint, route, compression
        self.heartbeat_s, self.window, self.drain_timeout_s = heartbeat_s, window, drain_timeout_s
        self.auth, self.on_ready = auth, on_ready
        #: The counters of the current or last :meth:`run`, for a thread that publishes them meanwhile.
        self.live_stats: BridgeStats | None = None

    def run(self, recv: Callable[[float], bytes | None], stop: Event,
            closed: Callable[[], bool] | None = None) -> BridgeStats:
        """Forward messages until told to stop or the local channel ends, then drain.

        The local channel ends when ``recv`` raises :class:`EOFError`, or when it returns ``None`` and
        ``closed()`` is true. Either way, and when ``stop`` is set, the sender takes no more messages and
        returns once every message it took has been acknowledged (or ``drain_timeout_s`` passed).

        Args:
            recv: ``recv(timeout_s)`` returns the next message of the local channel, or ``None`` if none
                came within ``timeout_s`` (always finite; 0 means do not wait).
            stop: Set to stop taking messages.
            closed: Optional; says whether the local channel has ended.

        Returns:
            The run's counters.

        Raises:
            BridgeError: The receiver rejected this sender (another route or codec, or this node's key).
        """
        run = _SenderRun(self, recv, stop, closed)
        self.live_stats = run.stats  # read (never written) by a thread that publishes them while the run goes on
        return run.run()


class _SenderRun:
    """The state of one :meth:`Sender.run`: the window of unacknowledged messages and the socket."""

    def __init__(self, cfg: Sender, recv: Callable[[float], bytes | None], stop: Event,
                 closed: Callable[[], bool] | None) -> None:
        self.cfg, self.recv, self.stop, self.closed = cfg, recv, stop, closed
        self.codec = Codec(cfg.compression)
        self.stats = BridgeStats()
        self.session = secrets.randbits(64) or 1
        self.epoch = 0
        # (sequence, codec, payload as sent, size taken): consecutive sequences, the oldest first.
        self.unacked: deque[tuple[int, int, bytes, int]] = deque()
        self.next_seq = 1
        self.cursor = 1  # next sequence to transmit in this epoch
        self.highest_sent = 0
        self.streaming = False
        self.handshakes = 0
        self.ending = False
        self.drain_deadline = float("inf")
        self.blocked = False  # the socket refused data; wait for it to become writable
        self.peer_limit: int | None = None  # the largest frame the receiver reads, from its WELCOME
        try:
            self.address = parse_endpoint(cfg.endpoint)
        except ValueError as exc:
            raise BridgeError(f"cannot connect to '{cfg.endpoint}': {exc}") from None
        self.link: Link | None = None  # None between a connection's end and the next attempt
        self.connecting = False  # the TCP connection is not established yet
        self.poller = select.poll()
        self.next_connect = 0.0
        self.last_heard = self.last_sent = self.last_hello = self.last_probe = 0.0

    def run(self) -> BridgeStats:
        try:
            self._connect()
            while True:
                if not self.ending and self.stop.is_set():
                    self._end()
                if self.ending:
                    if not self.unacked:
                        break
                    if time.monotonic() > self.drain_deadline:
                        self.stats.abandoned = len(self.unacked)
                        break
                self._read(0)
                self._watch_peer()
                if self.streaming:
                    self._transmit()
                self._keepalive()
                if not self._pull():
                    self._read(self._idle_wait())
                elif self.streaming:
                    self._transmit()  # at once: what just came is sent before the loop's bookkeeping
        finally:
            self._close()
        return self.stats

    def _close(self) -> None:
        if self.link is not None:
            self.poller.unregister(self.link.sock)
            self.link.close()
            self.link = None

    def _end(self) -> None:
        self.ending = True
        if self.cfg.drain_timeout_s is not None:
            self.drain_deadline = time.monotonic() + self.cfg.drain_timeout_s

    def _connect(self) -> None:
        """Open a fresh connection (nothing stale in it) and start a new epoch; on failure, try again later."""
        self._close()
        self._handshake()
        self.next_connect = time.monotonic() + RECONNECT_S
        try:
            sock = connect(*self.address)
        except OSError:
            return  # the name does not resolve or the network is down: like a refused connection, try again
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self.link = Link(sock, initiator=True, keys=self.cfg.auth, max_frame=_SENDER_MAX_FRAME)
        self.connecting = True
        self.poller.register(sock, _POLLIN | _POLLOUT)

    def _lost(self) -> None:
        """The connection ended: stop streaming and connect again after ``RECONNECT_S``."""
        self._close()
        self.streaming = self.stats.connected = False
        self.blocked = False

    def _refused(self, exc: LinkClosed) -> BridgeError:
        self.stats.handshake_failures += 1
        self.stats.auth_failures += 1
        # A Noise KK responder cannot tell a sender's unknown key from its own wrong one: either way the first
        # handshake message does not open, and it refuses.
        why = ("refused the handshake: it does not trust this node's key or is not the target node"
               if exc.reason == "refused" else "does not hold the target node's key")
        return BridgeError(f"the receiver at '{self.cfg.endpoint}' {why} for route '{self.cfg.route}': both nodes "
                           "need keys from one 'flowc keys generate' run")

    def _handshake(self) -> None:
        self.epoch = (self.epoch + 1) & 0xFFFFFFFF
        self.streaming = self.stats.connected = False
        self.blocked = False
        self.last_heard = time.monotonic()
        self.last_hello = 0.0

    def _control(self, kind: int, seq: int, payload: bytes = b"") -> bool:
        link = self.link
        if link is None or not link.ready or link.pending > _SEND_BUFFER:
            return False  # nothing is queued for a peer that is not there
        header = _header(kind, self.codec.id, self.epoch, self.session, seq)
        try:
            link.send(header + payload)
        except LinkClosed:
            self._lost()
            return False
        self.stats.bytes_on_wire += len(header) + len(payload)
        self.last_sent = time.monotonic()
        return True

    def _first_unacked(self) -> int:
        return self.unacked[0][0] if self.unacked else self.next_seq

    def _keepalive(self) -> None:
        now = time.monotonic()
        if not self.streaming:
            if now - self.last_hello >= min(0.1, self.cfg.heartbeat_s) and self._control(
                    HELLO, self._first_unacked(), self.cfg.route.encode()):
                self.last_hello = now
        elif now - self.last_sent >= self.cfg.heartbeat_s or now - self.last_probe >= PROBE_S:
            # Also while streaming, a few times a second: the echo times the route's round trip.
            self.last_probe = now
            self._control(HEARTBEAT, self.highest_sent, PROBE.pack(time.monotonic_ns()))

    def _watch_peer(self) -> None:
        now = time.monotonic()
        if self.link is None:
            if now >= self.next_connect:
                self._connect()
        elif now - self.last_heard > 3 * self.cfg.heartbeat_s:
            self.stats.peer_timeouts += 1
            self._connect()

    def _read(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the socket, then take what it has (and write what waits for it)."""
        link = self.link
        if link is None:
            if timeout_s > 0:
                time.sleep(max(0.0, min(timeout_s, self.next_connect - time.monotonic())))
            return
        ready = self.poller.poll(math.ceil(timeout_s * 1000) if timeout_s > 0 else 0)
        if not ready:
            return
        events = ready[0][1]
        try:
            if self.connecting:
                error = link.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    self._lost()  # refused or unreachable: try again after RECONNECT_S
                    return
                self.connecting = False
            if events & _POLLOUT:
                link.flush()
            if events & ~_POLLOUT:
                for frame in link.read():
                    if len(frame) >= _HEADER.size:
                        self._handle(frame[:_HEADER.size], frame[_HEADER.size:])
                if link.at_eof:
                    self._lost()
                    return
        except LinkClosed as exc:
            if exc.reason in ("refused", "auth"):
                raise self._refused(exc) from None
            if exc.reason == "zeromq":
                self.stats.handshake_failures += 1
                raise BridgeError(f"the receiver at '{self.cfg.endpoint}' speaks ZeroMQ: it is a flowc bridge from "
                                  f"before route protocol {VERSION}, which this one cannot talk to; run one flowc "
                                  f"version on both nodes of route '{self.cfg.route}'") from None
            self._lost()
            return
        if self.link is link:
            self.poller.modify(link.sock, _POLLIN | (_POLLOUT if link.pending or self.connecting else 0))

    def _handle(self, header: bytes, payload: bytes) -> None:
        version, kind, _codec, epoch, session, seq = _HEADER.unpack(header)
        if version != VERSION or session != self.session:
            return
        self.last_heard = time.monotonic()
        if kind == ACK:
            self._acknowledge(seq)
            if len(payload) == PROBE.size:
                self.stats.round_trip(time.monotonic_ns() - PROBE.unpack(payload)[0])
        elif kind == WELCOME and epoch == self.epoch and not self.streaming:
            self.peer_limit = LIMIT.unpack(payload)[0] if len(payload) == LIMIT.size else None
            self._acknowledge(seq - 1)
            self.streaming = self.stats.connected = True
            self.handshakes += 1
            self.stats.reconnects = max(0, self.handshakes - 1)
            self.cursor = self._first_unacked()
            if self.handshakes == 1 and self.cfg.on_ready is not None:
                self.cfg.on_ready()
        elif kind == RESYNC and epoch == self.epoch and self.streaming:
            self._handshake()
        elif kind == REJECT:
            raise BridgeError(f"receiver at '{self.cfg.endpoint}' rejected route '{self.cfg.route}': "
                              f"{payload.decode(errors='replace')}")

    def _acknowledge(self, seq: int) -> None:
        unacked, released = self.unacked, 0
        while unacked and unacked[0][0] <= seq:
            unacked.popleft()
            released += 1
        self.stats.acked += released
        self.cursor = max(self.cursor, self._first_unacked())

    def _transmit(self) -> None:
        """Send what is due from the cursor: a lone message as DATA, consecutive ones as BATCH frames."""
        self.blocked = False
        stats = self.stats
        while self.unacked and self.cursor < self.next_seq:
            first = self.cursor
            due = self._due()
            if len(due) == 1:
                _seq, codec, payload, _size = due[0]
                if self.peer_limit is not None and len(payload) > self.peer_limit:
                    # The receiver would drop the connection unread, and the resend would repeat forever.
                    raise BridgeError(f"message {first} is {len(payload)} bytes on the wire; the receiver at "
                                      f"'{self.cfg.endpoint}' reads at most {self.peer_limit} (its ring is smaller)")
                header = _header(DATA, codec, self.epoch, self.session, first)
            else:
                header = _header(BATCH, 0, self.epoch, self.session, first)
                pack, parts = RECORD.pack, []
                for _seq, codec, data, _size in due:
                    parts += (pack(codec, len(data)), data)
                payload = b"".join(parts)
            link = self.link
            if link.pending > _SEND_BUFFER:
                self.blocked = True  # the socket has not taken what came before: wait until it is writable
                self.poller.modify(link.sock, _POLLIN | _POLLOUT)
                return
            try:
                link.send(header + payload)
            except LinkClosed:
                self._lost()
                return
            last = first + len(due) - 1
            again = max(0, min(last, self.highest_sent) - first + 1)
            stats.resent += again
            stats.sent += len(due) - again
            stats.frames_sent += 1
            stats.bytes_on_wire += len(header) + len(payload)
            self.highest_sent = max(self.highest_sent, last)
            self.cursor = last + 1
            self.last_sent = time.monotonic()

    def _due(self) -> list[tuple[int, int, bytes, int]]:
        """The messages of the next frame: the one at the cursor and as many following as fit one batch.

        A batch stays within the receiver's frame limit twice over: its records as they travel (the frame
        ZeroMQ checks) and the messages they decode to (what the receiver checks before delivering any).
        Without a limit from the receiver there is nothing to measure a batch against: one message a frame.
        """
        unacked, limit = self.unacked, self.peer_limit
        start = self.cursor - unacked[0][0]
        if limit is None or self.cursor + 1 == self.next_seq:
            return [unacked[start]]
        wire_room, decoded_room = min(limit, _BATCH_BYTES), limit
        due: list[tuple[int, int, bytes, int]] = []
        for entry in islice(unacked, start, start + _BATCH_MESSAGES):
            wire_room -= RECORD.size + len(entry[2])
            decoded_room -= entry[3]
            if due and (wire_room < 0 or decoded_room < 0):
                break
            due.append(entry)
        return due

    def _pull(self) -> bool:
        """Take what the local channel has, up to the window; whether anything came."""
        room = self.cfg.window - len(self.unacked)
        if self.ending or room <= 0:
            return False
        pending = self.streaming and not self.blocked and self.cursor < self.next_seq
        timeout = 0.0 if pending else min(0.01, self.cfg.heartbeat_s / 4)
        recv, append = self.recv, self.unacked.append
        encode = self.codec.encode if self.codec.id else None  # a route without compression sends what it takes
        seq = first = self.next_seq
        end = seq + min(room, _PULL_MESSAGES)
        payload_bytes = compressed_bytes = 0
        while seq < end:
            try:
                message = recv(timeout)
            except EOFError:
                self._end()
                break
            if message is None:
                if self.closed is not None and self.closed():
                    self._end()
                break
            message = bytes(message)
            codec, data = (0, message) if encode is None else encode(message)
            append((seq, codec, data, len(message)))
            seq += 1
            payload_bytes += len(message)
            compressed_bytes += len(data)
            timeout = 0.0
        self.next_seq = seq
        self.stats.payload_bytes += payload_bytes
        self.stats.compressed_bytes += compressed_bytes
        return seq > first or pending

    def _idle_wait(self) -> float:
        """How long to wait on the socket when there is nothing to take or send."""
        if self.ending or len(self.unacked) >= self.cfg.window or self.blocked:
            return min(_POLL_S, self.cfg.heartbeat_s / 4)
        return 0.0  # ``recv`` already waited
