"""The receiving end of a route (:class:`Receiver`): frames from TCP into the local channel, in order, once.

The protocol is described in :mod:`flowc.runtime.bridge`. The receiver is the side a stranger can reach. With
keys, only the route's source node completes the Noise handshake (others are counted in ``auth_failures`` and
never read), a connection that has not finished its handshake within ``handshake_s`` is closed, and at most
:data:`MAX_HANDSHAKES` connections may be in their handshake at once and :data:`MAX_CONNECTIONS` open at all (the
oldest is closed first, never the current sender's), so half-open and idle connections cannot pile up. Even the
trusted peer is not trusted with memory: a frame over the ring's largest message ends its connection as soon as the
record that crosses the limit arrives, a payload is only raw or the route's own codec and is refused before
decompressing if it says it is larger than the ring's largest message, a ``BATCH`` is checked whole (at most
:data:`~flowc.runtime.wire.MAX_RECORDS` records, each as a ``DATA`` payload, their stated sizes together within the
frame limit) before any of it is delivered, another session can take over the route only once its sender has been
silent for three heartbeats, and what a stranger can make it remember is bounded (``max_peers``, oldest forgotten
first). Every refused frame is counted by reason in
:attr:`BridgeStats.rejects`; none is delivered, none ends the process.
"""

from __future__ import annotations

import math
import os
import select
import socket
import stat
import struct
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from flowc.runtime.bridge import BUSY_POLL_S, BridgeError, BridgeStats, Event
from flowc.runtime.route_keys import CurveKeys
from flowc.runtime.route_link import Link, LinkClosed, parse_endpoint
from flowc.runtime.wire import (
    ACK,
    BATCH,
    DATA,
    HEADER,
    HEARTBEAT,
    HELLO,
    LIMIT,
    PROBE,
    REJECT,
    RESYNC,
    VERSION,
    WELCOME,
    Codec,
    FrameRejected,
)
from flowc.runtime.wire import header as _header

_STATE = struct.Struct("<QQI")  # session, last delivered sequence, crc32 of the first 16 bytes
_STATE_HEAD = struct.Struct("<QQ")  # the part of a state record its crc32 covers
_POLL_S = 0.05  # longest the loop waits before it looks at ``stop`` again
#: Deliveries are acknowledged after ``ack_every`` of them or this many seconds, whichever comes first: one ACK
#: per message would double the route's traffic (and its CPU) for no gain, since the sender's window is large.
ACK_INTERVAL_S = 0.002
#: Largest message a receiver delivers unless told otherwise (the launcher passes the ring's own limit).
DEFAULT_MAX_MESSAGE = 1 << 20
#: Most (session, epoch) pairs a receiver remembers having asked to resync; the oldest is forgotten first.
DEFAULT_MAX_PEERS = 1024
_REASON_BYTES = 1024  # a REJECT's reason stays well inside the sender's frame limit
#: Most connections in their handshake at once; a new one beyond it closes the oldest.
MAX_HANDSHAKES = 64
#: Most connections at once (a route has one sender; the rest are reconnects and strangers): a new one beyond it
#: closes the oldest that is not the current sender's.
MAX_CONNECTIONS = 256
#: Bytes of replies a receiver keeps for a peer that does not read them; beyond it, replies to it are dropped
#: (every reply is repeated or superseded later).
_REPLY_BUFFER = 1 << 20
_LISTEN_BACKLOG = 64
_POLLIN, _POLLOUT = select.POLLIN, select.POLLOUT


@dataclass(eq=False)
class _Connection:
    """One accepted connection: its link and, until its handshake is done, the time it must be done by."""

    ident: int
    link: Link
    deadline: float


class Receiver:
    """The receiving end of a route: feeds the local channel of the same name, in order, once."""

    def __init__(self, bind: str, route: str, compression: str = "none", heartbeat_s: float = 1.0,
                 *, ack_every: int = 64, state_path: str | os.PathLike[str] | None = None,
                 max_message: int = DEFAULT_MAX_MESSAGE, max_peers: int = DEFAULT_MAX_PEERS,
                 auth: CurveKeys | None = None, handshake_s: float = 2.0,
                 on_ready: Callable[[], None] | None = None) -> None:
        """Check the settings; nothing listens before :meth:`run`.

        Args:
            bind: Where to listen, e.g. ``"tcp://*:7400"``.
            route: The route's name; a sender of another route is rejected.
            compression: The route's codec; frames may only be raw or use it.
            heartbeat_s: A sender silent for three heartbeats counts as gone (``peer_timeouts``); until
                then no other session may take the route over.
            ack_every: Acknowledge at least every this many deliveries (else within ``ACK_INTERVAL_S``).
            state_path: Optional file recording the last delivered sequence, so a restarted receiver does
                not deliver again what it delivered before it died (see the module docstring).
            max_message: Largest message the local channel takes (the ring's ``max_message``); a larger
                frame ends its connection, a payload that would decompress to more is refused unread.
            max_peers: Most unknown (session, epoch) pairs remembered; beyond it the oldest is forgotten.
            auth: This node's keypair and the source node's public key: speak CURVE and let only that key in
                (``None``: anyone may connect).
            handshake_s: A connection that has not completed its handshake by then is closed.
            on_ready: Called once it listens.

        Raises:
            ValueError: On an unknown compression or a non-positive ``ack_every``, ``heartbeat_s``,
                ``max_message`` or ``max_peers``.
        """
        Codec(compression, max_message)
        if ack_every < 1 or heartbeat_s <= 0 or max_peers < 1 or handshake_s <= 0:
            raise ValueError("ack_every and max_peers must be at least 1, heartbeat_s and handshake_s positive")
        self.bind, self.route, self.compression = bind, route, compression
        self.heartbeat_s, self.ack_every, self.state_path = heartbeat_s, ack_every, state_path
        self.max_message, self.max_peers = max_message, max_peers
        self.auth, self.handshake_s, self.on_ready = auth, handshake_s, on_ready

    def run(self, send: Callable[[bytes], object], stop: Event, stats: BridgeStats | None = None) -> BridgeStats:
        """Receive and deliver until ``stop`` is set.

        ``send`` may block (the local channel is full): the receiver then stops reading, TCP and the
        sender's window push back, and the sender may time out and resend, which costs only bandwidth.

        Args:
            send: Puts one message into the local channel; must not return before it is there.
            stop: Set to stop receiving.
            stats: Counters to update, for a caller that watches them while the receiver runs.

        Returns:
            The run's counters (``stats`` when given).

        Raises:
            BridgeError: The address cannot be bound, or the state file is not this user's regular file.
        """
        return _ReceiverRun(self, send, stop, stats if stats is not None else BridgeStats()).run()


class _ReceiverRun:
    """The state of one :meth:`Receiver.run`: the current sender session and the next expected sequence.

    Everything a frame can make it remember is bounded: one current session, ``max_peers`` resync marks.
    """

    def __init__(self, cfg: Receiver, send: Callable[[bytes], object], stop: Event, stats: BridgeStats) -> None:
        self.cfg, self.send, self.stop, self.stats = cfg, send, stop, stats
        self.codec = Codec(cfg.compression, cfg.max_message)
        self.session = 0
        self.epoch = 0
        self.peer: bytes | None = None
        self.expected = 1  # next sequence to deliver
        self.unacked = 0  # deliveries since the last ACK
        self.last_ack = 0.0
        self.resynced: OrderedDict[tuple[int, int], None] = OrderedDict()
        self.handshakes = 0
        self.last_heard = 0.0
        self.frame_limit = max(cfg.max_message, 4 * HEADER.size)
        self.state_fd: int | None = None
        self.saved: tuple[int, int] | None = None  # (session, last delivered) read at start
        self.listener: socket.socket | None = None
        self.poller = select.poll()
        self.connections: dict[int, _Connection] = {}  # by descriptor
        self.by_ident: dict[int, _Connection] = {}  # in the order they came
        self.handshaking: dict[int, _Connection] = {}  # by ident, those whose handshake is not done
        self.next_ident = 1
        self.last_frame = 0.0  # when frames last came: the receiver polls between yields for BUSY_POLL_S after it

    def run(self) -> BridgeStats:
        try:
            self._open()
            listener = self.listener.fileno()
            while not self.stop.is_set():
                wait = _POLL_S if not self.unacked else max(0.0, self.last_ack + ACK_INTERVAL_S - time.monotonic())
                for fd, events in self._ready(wait):
                    if fd == listener:
                        self._accept()
                    elif fd in self.connections:
                        self._serve(self.connections[fd], events)
                if self.unacked and time.monotonic() - self.last_ack >= ACK_INTERVAL_S:
                    self._ack()
                now = time.monotonic()
                if self.peer is not None and now - self.last_heard > 3 * self.cfg.heartbeat_s:
                    self.stats.peer_timeouts += 1
                    self.peer = None
                self._expire(now)
                self.stats.connected = self.peer is not None
        finally:
            self._close()
        return self.stats

    def _ready(self, wait_s: float) -> list[tuple[int, int]]:
        """The sockets ready to be served, waiting up to ``wait_s`` for one.

        For ``BUSY_POLL_S`` after the last frame it polls between yields first: a busy route's next frame is found
        by a poll, not delivered by a wake-up.
        """
        poll = self.poller.poll
        ready = poll(0)
        if not ready and time.monotonic() - self.last_frame < BUSY_POLL_S:
            until = self.last_frame + BUSY_POLL_S
            while not ready and time.monotonic() < until:
                os.sched_yield()
                ready = poll(0)
        return ready or poll(math.ceil(wait_s * 1000))  # 0 would make the wait a busy loop

    def _close(self) -> None:
        """Let the last replies leave (briefly), then close every connection, the listener and the state file."""
        deadline = time.monotonic() + 0.1
        for connection in list(self.connections.values()):
            while connection.link.pending and time.monotonic() < deadline:
                try:
                    connection.link.flush()
                except LinkClosed:
                    break
                if connection.link.pending:
                    time.sleep(0.001)
            connection.link.close()
        self.connections.clear()
        self.by_ident.clear()
        if self.listener is not None:
            self.listener.close()
        if self.state_fd is not None:
            os.close(self.state_fd)

    def _open(self) -> None:
        try:
            host, port = parse_endpoint(self.cfg.bind)
            family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                                 flags=socket.AI_PASSIVE)[0]
            listener = socket.socket(family, kind, proto)
        except (ValueError, OSError) as exc:
            raise BridgeError(f"cannot listen on '{self.cfg.bind}': {exc}") from None
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(_LISTEN_BACKLOG)
        except OSError as exc:
            listener.close()
            raise BridgeError(f"cannot listen on '{self.cfg.bind}': {exc.strerror or exc}") from None
        listener.setblocking(False)
        self.listener = listener
        self.poller.register(listener, _POLLIN)
        if self.cfg.state_path is not None:
            self._open_state(os.fspath(self.cfg.state_path))
        if self.cfg.on_ready is not None:
            self.cfg.on_ready()

    def _accept(self) -> None:
        """Take the waiting connections; each must finish its handshake within ``handshake_s``."""
        for _ in range(_LISTEN_BACKLOG):
            try:
                sock, _address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # out of descriptors or the like: the connection stays queued until there is room
            link = Link(sock, initiator=False, keys=self.cfg.auth, max_frame=self.frame_limit + HEADER.size)
            if len(self.handshaking) >= MAX_HANDSHAKES:
                self._drop(next(iter(self.handshaking.values())), handshake_failed=True)
            if len(self.connections) >= MAX_CONNECTIONS:
                self._drop(next(c for c in self.by_ident.values() if c.ident != self.peer))
            connection = _Connection(self.next_ident, link, time.monotonic() + self.cfg.handshake_s)
            self.next_ident += 1
            self.connections[sock.fileno()] = connection
            self.by_ident[connection.ident] = connection
            if not link.ready:
                self.handshaking[connection.ident] = connection
            self.poller.register(sock, _POLLIN)

    def _expire(self, now: float) -> None:
        """Close the connections whose handshake is overdue."""
        for connection in [c for c in self.handshaking.values() if now > c.deadline]:
            self._drop(connection, handshake_failed=True)

    def _drop(self, connection: _Connection, *, handshake_failed: bool = False, auth_failed: bool = False) -> None:
        """Close ``connection``, counting how it ended."""
        fd = connection.link.fileno()
        self.poller.unregister(fd)
        del self.connections[fd]
        del self.by_ident[connection.ident]
        self.handshaking.pop(connection.ident, None)
        connection.link.close()
        if handshake_failed or auth_failed:
            self.stats.handshake_failures += 1
            self.stats.auth_failures += auth_failed
        else:
            self.stats.disconnects += 1

    def _serve(self, connection: _Connection, events: int) -> None:
        """Read what ``connection`` sent and handle each frame (and write what waits for it)."""
        link, stats = connection.link, self.stats
        try:
            if events & _POLLOUT:
                link.flush()
            frames = link.read() if events & ~_POLLOUT else []
            if link.ready and connection.ident in self.handshaking:
                del self.handshaking[connection.ident]
            if frames:
                self.last_frame = time.monotonic()
            for frame in frames:
                stats.bytes_on_wire += len(frame)
                if len(frame) < HEADER.size:
                    stats.reject("malformed")
                    continue
                self._handle(connection.ident, *HEADER.unpack_from(frame), frame[HEADER.size:])
                if self.unacked >= self.cfg.ack_every:
                    self._ack()
        except LinkClosed as exc:
            if exc.reason == "zeromq":
                stats.reject("version")  # a sender from before protocol 4 (routes over ZeroMQ)
            if connection.ident in self.by_ident:
                self._drop(connection, handshake_failed=not link.ready or exc.reason == "zeromq",
                           auth_failed=exc.reason == "auth")
            return
        if connection.ident not in self.by_ident:
            return  # dropped while its frames were handled (a reply could not be written)
        if link.at_eof:
            self._drop(connection)
        else:
            self.poller.modify(link.sock, _POLLIN | (_POLLOUT if link.pending else 0))

    def _open_state(self, path: str) -> None:
        """Open the state file without following a link, and only if it is this user's regular file."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise BridgeError(f"cannot open the route state '{path}': {exc.strerror}") from exc
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            os.close(fd)
            raise BridgeError(f"the route state '{path}' is not a regular file of this user writable only by it")
        self.state_fd = fd
        raw = os.pread(fd, _STATE.size, 0)
        if len(raw) == _STATE.size:
            session, last, crc = _STATE.unpack(raw)
            if crc == zlib.crc32(raw[:16]):
                self.saved = (session, last)

    def _reply(self, ident: int, kind: int, epoch: int, session: int, seq: int, payload: bytes = b"") -> None:
        connection = self.by_ident.get(ident)
        if connection is None or not connection.link.ready or connection.link.pending > _REPLY_BUFFER:
            return  # peer gone, or not reading its replies: every reply is repeated or superseded later
        try:
            connection.link.send(_header(kind, 0, epoch, session, seq) + payload)
        except LinkClosed:
            self._drop(connection)
            return
        if connection.link.pending:
            self.poller.modify(connection.link.sock, _POLLIN | _POLLOUT)

    def _refuse(self, ident: int, epoch: int, session: int, reason: str, detail: str) -> None:
        """Count a refused HELLO and tell its sender why (a sender stops on REJECT)."""
        self.stats.reject(reason)
        self._reply(ident, REJECT, epoch, session, 0, detail.encode()[:_REASON_BYTES])

    def _ack(self) -> None:
        if self.peer is not None:
            self._reply(self.peer, ACK, self.epoch, self.session, self.expected - 1)
        self.unacked = 0
        self.last_ack = time.monotonic()

    def _handle(self, ident: int, version: int, kind: int, codec: int, epoch: int, session: int, seq: int,
                payload: bytes) -> None:
        if version != VERSION:
            self._refuse(ident, epoch, session, "version", f"protocol version {version}, expected {VERSION}")
        elif kind == HELLO:
            self._hello(ident, codec, epoch, session, seq, payload)
        elif kind not in (DATA, BATCH, HEARTBEAT):
            self.stats.reject("kind")
        elif (session, epoch, ident) != (self.session, self.epoch, self.peer):
            self.stats.reject("unknown_session")
            if session == self.session and epoch < self.epoch:
                return  # left over from an epoch the sender has already given up
            if (session, epoch) not in self.resynced:
                self._remember(session, epoch)
                self._reply(ident, RESYNC, epoch, session, self.expected)
        elif kind == HEARTBEAT:
            self.last_heard = time.monotonic()
            # Answered at once, echoing the sender's probe (at most 8 bytes): the sender times its round trip.
            self._reply(self.peer, ACK, self.epoch, self.session, self.expected - 1, payload[:PROBE.size])
            self.unacked = 0
            self.last_ack = self.last_heard
        else:
            self.last_heard = time.monotonic()
            self.stats.frames_received += 1
            if kind == DATA:
                self._data(ident, codec, epoch, seq, payload)
            else:
                self._batch(ident, codec, epoch, seq, payload)

    def _remember(self, session: int, epoch: int) -> None:
        """Mark (session, epoch) as asked to resync, forgetting the oldest mark beyond ``max_peers``."""
        self.resynced[(session, epoch)] = None
        while len(self.resynced) > self.cfg.max_peers:
            self.resynced.popitem(last=False)
            self.stats.peers_evicted += 1

    def _alive(self) -> bool:
        return self.peer is not None and time.monotonic() - self.last_heard <= 3 * self.cfg.heartbeat_s

    def _hello(self, ident: int, codec: int, epoch: int, session: int, base: int, payload: bytes) -> None:
        route = payload.decode(errors="replace")
        if route != self.cfg.route:
            self._refuse(ident, epoch, session, "route", f"this endpoint carries route '{self.cfg.route}'")
            return
        if codec != self.codec.id:
            self._refuse(ident, epoch, session, "codec", f"this route expects '{self.cfg.compression}'")
            return
        if session != self.session and self._alive():
            # Another session may take over only once the current sender has gone quiet; a restarted sender
            # keeps saying HELLO until then. No reply, so a stranger learns nothing about the session.
            self.stats.reject("busy")
            return
        if session != self.session:
            resumed = self.saved[1] + 1 if self.saved is not None and self.saved[0] == session else 1
            self.session, self.expected = session, resumed
        # The sender no longer holds what is below ``base``: it was acknowledged, so it was delivered.
        self.expected = max(self.expected, base)
        if (ident, epoch) != (self.peer, self.epoch):
            self.handshakes += 1
            self.stats.reconnects = max(0, self.handshakes - 1)
        self.peer, self.epoch = ident, epoch
        self.last_heard = time.monotonic()
        self.unacked = 0
        self._reply(ident, WELCOME, epoch, session, self.expected, LIMIT.pack(self.frame_limit))

    def _data(self, ident: int, codec: int, epoch: int, seq: int, payload: bytes) -> None:
        if seq < self.expected:
            self.stats.duplicates_dropped += 1
            self.unacked += 1  # say again what was delivered, so the sender lets go of it
            return
        if seq > self.expected:
            self._gap(ident, epoch)
            return
        try:
            message = self.codec.decode(codec, payload)
        except FrameRejected as exc:
            self._stop_peer(ident, epoch, exc)
            return
        self._deliver([message], len(payload))

    def _batch(self, ident: int, codec: int, epoch: int, seq: int, payload: bytes) -> None:
        """Deliver the records of a BATCH that are new, once every record of it has passed its checks."""
        if seq > self.expected:
            self._gap(ident, epoch)
            return
        try:
            if codec != 0:
                raise FrameRejected("malformed", f"a batch whose header names codec id {codec}")
            # The sum of a batch's messages is bounded by the frame limit this receiver announced in WELCOME.
            count, messages, travelled = self.codec.decode_batch(payload, self.frame_limit, self.expected - seq)
        except FrameRejected as exc:
            self._stop_peer(ident, epoch, exc)
            return
        seen = count - len(messages)
        if seen:
            self.stats.duplicates_dropped += seen
            self.unacked += seen
        if messages:
            self._deliver(messages, travelled)

    def _gap(self, ident: int, epoch: int) -> None:
        """A frame went missing before this one: restart the epoch (once per epoch)."""
        if (self.session, epoch) not in self.resynced:
            self._remember(self.session, epoch)
            self._reply(ident, RESYNC, epoch, self.session, self.expected)

    def _stop_peer(self, ident: int, epoch: int, exc: FrameRejected) -> None:
        """Count a refused frame of the current sender and stop that sender with the reason.

        Only the session's own sender gets here, so this is a misconfigured or broken peer: better it stops
        than waits for a message that can never be delivered.
        """
        self.stats.reject(exc.reason)
        self._reply(ident, REJECT, epoch, self.session, 0, str(exc).encode()[:_REASON_BYTES])
        self.peer = None

    def _deliver(self, messages: list[bytes], travelled: int) -> None:
        """Put ``messages`` (sequences from ``expected`` on) into the local channel, recording each in the state."""
        send, fd, session = self.send, self.state_fd, self.session
        seq = self.expected
        for message in messages:
            send(message)
            if fd is not None:
                os.pwrite(fd, _STATE.pack(session, seq, zlib.crc32(_STATE_HEAD.pack(session, seq))), 0)
            seq += 1
            self.expected = seq
        stats = self.stats
        self.unacked += len(messages)
        stats.received += len(messages)
        stats.payload_bytes += sum(map(len, messages))
        stats.compressed_bytes += travelled
