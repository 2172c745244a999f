"""A route's connection: frames over one TCP socket, sealed with the Noise protocol when the route authenticates.

The route's own thread reads and writes its socket: a message goes from the sender's loop straight into the
kernel and comes out in the receiver's loop, with no I/O thread between (a ZeroMQ socket hands every message to
its context's I/O thread and back, two more wake-ups per message on each side).

Records. A frame travels as one or more records: a 2-byte length (network order) and that many bytes, the
record's body, sealed (authenticated routes) or as is. A body is a flag byte (1: more records of this frame
follow, 0: the frame's last) and up to :data:`CHUNK` bytes of the frame. A reader refuses a frame as soon as the
record that takes it past its limit arrives, so a peer can make it hold at most one frame and one record.

Security. ``Noise_KK_25519_ChaChaPoly_BLAKE2s`` (the Noise Protocol Framework): both ends know each other's
static key in advance (the X25519 node keys of ``flowc keys generate``), so the first handshake message proves
the sender holds the source node's key and the answer proves the receiver holds the target node's. Each
connection has fresh ephemeral keys (forward secrecy), and every record is authenticated and numbered: a record
that is altered, dropped, replayed or reordered ends the connection. A receiver that refuses a sender's key
answers :data:`REFUSED` in the clear before it closes, so the sender can say why.

Example (a connected pair, no keys)::

    >>> import socket
    >>> a, b = socket.socketpair()
    >>> left, right = Link(a, initiator=True, keys=None, max_frame=1 << 20), Link(b, initiator=False, keys=None,
    ...                                                                          max_frame=1 << 20)
    >>> left.send(b"x" * 70_000)
    >>> frames = []
    >>> while not frames:
    ...     frames = right.read()
    >>> [len(f) for f in frames]
    [70000]
    >>> left.close(); right.close()
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from noise.connection import Keypair, NoiseConnection
from noise.exceptions import NoiseHandshakeError, NoiseInvalidMessage, NoiseValidationError, NoiseValueError
from zmq.utils import z85

from flowc.runtime.route_keys import CurveKeys

RECORD = struct.Struct("!H")  # the length of the record's body that follows
MAX_RECORD = 0xFFFF  # a Noise transport message is at most 65535 bytes
_TAG = 16  # ChaCha20-Poly1305's tag
CHUNK = MAX_RECORD - _TAG - 1  # frame bytes per record: what a sealed body of one flag byte more leaves room for
PROTOCOL = b"Noise_KK_25519_ChaChaPoly_BLAKE2s"
PROLOGUE = b"flowc route protocol 4"
#: The initiator's first handshake message: its ephemeral key and the tag of its (empty) payload.
KK_FIRST_MESSAGE = 32 + _TAG
#: A receiver's clear answer to a handshake whose key it does not trust.
REFUSED = b"\x00"
#: Most bytes one :meth:`Link.read` takes from the socket: a fast peer cannot keep its reader from its other work.
READ_BYTES = 256 << 10
_LAST, _MORE = b"\x00", b"\x01"
#: A ZeroMQ (ZMTP 3) greeting opens with 0xFF, eight bytes, then 0x7F. This protocol's first record is a handshake
#: message or a HELLO frame, far shorter than the 65,280 bytes a length starting with 0xFF would announce.
_ZMTP_SIGNATURE = 10
#: A ChaCha20-Poly1305 nonce as Noise forms it: 32 zero bits, then the record counter (little-endian, 64 bits).
_NONCE = struct.Struct("<4xQ")
_BROKEN_HANDSHAKE = (NoiseInvalidMessage, NoiseHandshakeError, NoiseValidationError, NoiseValueError, InvalidTag,
                     ValueError, IndexError)


class LinkClosed(Exception):
    """The connection is over; ``reason`` says why.

    Reasons: ``closed`` (the peer closed it or the socket failed), ``too_large`` (a frame over the limit),
    ``auth`` (the peer's handshake does not prove the key this end expects), ``refused`` (the receiver does not
    trust this end's key), ``protocol`` (a record that is not what the protocol allows, such as a peer without
    keys talking to one with keys), ``zeromq`` (the peer opened with a ZeroMQ greeting: a flowc bridge from before
    route protocol 4, which carried routes over ZeroMQ).
    """

    def __init__(self, reason: str, detail: str) -> None:
        """Record why.

        Args:
            reason: One of the reasons above.
            detail: Lower-case words for a log or an error message.
        """
        super().__init__(detail)
        self.reason = reason


class _TransportCipher:
    """One direction of a finished Noise handshake: seals or opens records in order.

    The handshake's split gives each direction a key and a counter (Noise's ``CipherState``); transport records are
    ChaCha20-Poly1305 under that key, the counter as nonce, no associated data, exactly as Noise's
    ``EncryptWithAd``/``DecryptWithAd`` do them, without the per-call layers of the library around them (a
    record's cost is on the route's latency path).
    """

    def __init__(self, state: Any) -> None:
        """Take over the key and counter of ``state``, a split Noise ``CipherState``."""
        self._aead = ChaCha20Poly1305(state.k)
        self._n = state.n
        self._nonce = _NONCE.pack

    def seal(self, body: bytes) -> bytes:
        """The next record's body, sealed."""
        sealed = self._aead.encrypt(self._nonce(self._n), body, None)
        self._n += 1
        return sealed

    def open(self, body: bytes) -> bytes:
        """The next record's body, opened (the counter moves only past a record that authenticates).

        Raises:
            InvalidTag: The record was altered, replayed, reordered or sealed with another key.
        """
        opened = self._aead.decrypt(self._nonce(self._n), body, None)
        self._n += 1
        return opened


class Link:
    """One end of a route's connection over a non-blocking socket; its owner polls :meth:`fileno`.

    The initiator (the sender) speaks first. Without keys the link is ready at once; with keys, once the
    handshake is done (:attr:`ready`). :meth:`send` writes what the socket takes and keeps the rest
    (:attr:`pending`) for :meth:`flush`; :meth:`read` returns the frames that arrived whole.
    """

    def __init__(self, sock: socket.socket, *, initiator: bool, keys: CurveKeys | None, max_frame: int) -> None:
        """Take over ``sock`` (connected or connecting) and, as the initiator with keys, queue the first message.

        Args:
            sock: A TCP socket (or one end of a socket pair); made non-blocking here.
            initiator: Whether this end speaks first (the route's sender).
            keys: This node's keypair and the peer's public key (``None``: no handshake, records in the clear).
            max_frame: Largest frame this end reads; a larger one closes the link.
        """
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.initiator, self.max_frame = sock, initiator, max_frame
        self._in = bytearray()
        self._out = bytearray()
        self._parts: list[bytes] = []
        self._size = 0
        self.at_eof = False
        self._opening = True  # no record has arrived yet: the peer's first bytes may be another protocol's greeting
        self._noise: NoiseConnection | None = None  # the handshake's state, until it is done
        self._sealer: _TransportCipher | None = None
        self._opener: _TransportCipher | None = None
        self.ready = keys is None
        if keys is not None:
            noise = NoiseConnection.from_name(PROTOCOL)
            if initiator:
                noise.set_as_initiator()
            else:
                noise.set_as_responder()
            noise.set_keypair_from_private_bytes(Keypair.STATIC, z85.decode(keys.secret))
            noise.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, z85.decode(keys.peer))
            noise.set_prologue(PROLOGUE)
            noise.start_handshake()
            self._noise = noise
            if initiator:
                self._queue(bytes(noise.write_message()))

    def fileno(self) -> int:
        """The socket's descriptor."""
        return self.sock.fileno()

    @property
    def pending(self) -> int:
        """Bytes written but not yet taken by the socket."""
        return len(self._out)

    def send(self, frame: bytes) -> None:
        """Seal ``frame`` and write it (what the socket does not take now waits for :meth:`flush`).

        Raises:
            LinkClosed: The socket failed.
            RuntimeError: The handshake has not finished (a link with keys sends nothing in the clear).
        """
        sealer = self._sealer
        if sealer is None and self._noise is not None:
            raise RuntimeError("a frame sent before the handshake finished")
        if len(frame) <= CHUNK:
            body = _LAST + frame
            self._queue(sealer.seal(body) if sealer is not None else body)
        else:
            view = memoryview(frame)
            for start in range(0, len(frame), CHUNK):
                body = (_LAST if start + CHUNK >= len(frame) else _MORE) + view[start:start + CHUNK]
                self._queue(sealer.seal(body) if sealer is not None else body)
        self.flush()

    def flush(self) -> None:
        """Write what the socket takes of the pending bytes.

        Raises:
            LinkClosed: The socket failed.
        """
        if not self._out:
            return
        try:
            sent = self.sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            raise LinkClosed("closed", f"cannot write: {exc.strerror or exc}") from None
        del self._out[:sent]

    def read(self) -> list[bytes]:
        """Take what the socket has (one receive, at most :data:`READ_BYTES`) and return the frames it completes.

        Handshake messages are answered here. After the peer closed the connection, the frames it sent
        before are still returned, and :attr:`at_eof` is set.

        Raises:
            LinkClosed: A record the protocol does not allow, a frame over the limit, a failed handshake, or a
                socket error.
        """
        buf = self._in
        # One receive per call: the owner polls level-triggered, so what is left makes the socket readable again,
        # and a second receive that finds nothing would cost an exception on every message.
        try:
            data = self.sock.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError as exc:
            raise LinkClosed("closed", f"cannot read: {exc.strerror or exc}") from None
        if data == b"":
            self.at_eof = True
        elif data:
            buf += data
        if self._opening and buf:
            self._check_greeting(buf)
        frames: list[bytes] = []
        offset, end, head = 0, len(buf), RECORD.size
        while end - offset >= head:
            (length,) = RECORD.unpack_from(buf, offset)
            if end - offset - head < length:
                break
            body = bytes(buf[offset + head:offset + head + length])
            offset += head + length
            frame = self._record(body)
            if frame is not None:
                frames.append(frame)
        del buf[:offset]
        return frames

    def close(self) -> None:
        """Close the socket (nothing pending is written)."""
        self.sock.close()

    def _check_greeting(self, buf: bytearray) -> None:
        """Refuse a peer that opened with a ZeroMQ greeting (it would otherwise look like one huge record)."""
        if buf[0] != 0xFF:
            self._opening = False
        elif len(buf) >= _ZMTP_SIGNATURE:
            if buf[_ZMTP_SIGNATURE - 1] == 0x7F:
                raise LinkClosed("zeromq", "the peer speaks ZeroMQ: a flowc bridge from before route protocol 4")
            self._opening = False

    def _queue(self, body: bytes) -> None:
        if len(body) > MAX_RECORD:
            raise ValueError(f"a record body of {len(body)} bytes")
        self._out += RECORD.pack(len(body))
        self._out += body

    def _record(self, body: bytes) -> bytes | None:
        """Handle one record's body; the frame it completes, if any."""
        if not self.ready:
            self._handshake(self._noise, body)
            return None
        if self._opener is not None:
            try:
                body = self._opener.open(body)
            except (InvalidTag, ValueError):
                raise LinkClosed("protocol", "a record that does not authenticate") from None
        if not body or body[0] > 1:
            raise LinkClosed("protocol", "a record without its frame flag")
        self._size += len(body) - 1
        if self._size > self.max_frame:
            raise LinkClosed("too_large", f"a frame of more than {self.max_frame} bytes")
        if body[0]:
            self._parts.append(body[1:])
            return None
        parts, self._parts, self._size = self._parts, [], 0
        return body[1:] if not parts else b"".join([*parts, body[1:]])

    def _handshake(self, noise: NoiseConnection, message: bytes) -> None:
        if self.initiator:
            if message == REFUSED:
                raise LinkClosed("refused", "the receiver does not trust this node's key")
            try:
                noise.read_message(message)
            except _BROKEN_HANDSHAKE:
                raise LinkClosed("auth", "the receiver does not hold the target node's key") from None
        else:
            if len(message) != KK_FIRST_MESSAGE:
                raise LinkClosed("protocol", f"a first message of {len(message)} bytes, not a Noise KK handshake")
            try:
                noise.read_message(message)
            except _BROKEN_HANDSHAKE:
                self._out.clear()
                self._queue(REFUSED)
                self.flush()
                raise LinkClosed("auth", "the sender does not hold the source node's key") from None
            self._queue(bytes(noise.write_message()))
            self.flush()
        self.ready = noise.handshake_finished
        if self.ready:
            self._sealer = _TransportCipher(noise.noise_protocol.cipher_state_encrypt)
            self._opener = _TransportCipher(noise.noise_protocol.cipher_state_decrypt)


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``tcp://host:port`` into host and port (``*`` is every address; ``[v6]`` a literal IPv6 address).

    Example:
        >>> parse_endpoint("tcp://strategy-node:7400"), parse_endpoint("tcp://*:7400"), parse_endpoint("tcp://[::1]:9")
        (('strategy-node', 7400), ('', 7400), ('::1', 9))

    Raises:
        ValueError: Not a ``tcp://host:port`` endpoint with a port from 0 to 65535.
    """
    scheme, _, rest = endpoint.partition("://")
    host, _, port = rest.rpartition(":")
    if scheme != "tcp" or not host or not port.isdigit() or int(port) > 0xFFFF:
        raise ValueError(f"'{endpoint}' is not a tcp://host:port endpoint")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return ("" if host == "*" else host), int(port)


def connect(host: str, port: int) -> socket.socket:
    """Start a non-blocking TCP connection to ``host:port`` (its outcome shows when the socket becomes writable).

    Raises:
        OSError: The name does not resolve or the connection cannot even start.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    try:
        sock.connect(address)
    except BlockingIOError:
        pass
    except OSError:
        sock.close()
        raise
    return sock
