"""A route's connection (:mod:`flowc.runtime.route_link`) over real socket pairs: records, the Noise handshake, limits.

Every test drives both ends through real sockets; the wire bytes in between are real too, read or written raw
where a test plays a peer that mangles them.
"""

from __future__ import annotations

import select
import socket
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from noise.connection import Keypair, NoiseConnection
from zmq.utils import z85

from flowc.runtime.route_keys import CurveKeys
from flowc.runtime.route_link import CHUNK, PROLOGUE, PROTOCOL, RECORD, REFUSED, Link, LinkClosed, parse_endpoint

MIB = 1 << 20
DEADLINE_S = 10.0
SENDER_KEYS, RECEIVER_KEYS = CurveKeys.pair()


def pair(sender_keys: CurveKeys | None = None, receiver_keys: CurveKeys | None = None,
         max_frame: int = MIB) -> tuple[Link, Link]:
    a, b = socket.socketpair()
    return (Link(a, initiator=True, keys=sender_keys, max_frame=max_frame),
            Link(b, initiator=False, keys=receiver_keys, max_frame=max_frame))


def pump(*links: Link, until=lambda: False) -> list[list[bytes]]:
    """Move bytes between ``links`` until ``until()`` holds or nothing moves for a while; frames per link."""
    got: list[list[bytes]] = [[] for _ in links]
    deadline = time.monotonic() + DEADLINE_S
    quiet = 0
    while time.monotonic() < deadline and not until() and quiet < 20:
        for link in links:
            link.flush()
        readable, _, _ = select.select(list(links), [], [], 0.01)
        quiet = 0 if readable else quiet + 1
        for link in readable:
            got[links.index(link)].extend(link.read())
    return got


def test_frames_of_every_size_cross_in_order_without_keys() -> None:
    sender, receiver = pair()
    sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5, MIB]
    frames = [bytes([n % 251]) * n for n in sizes]
    for frame in frames:
        sender.send(frame)
    assert pump(sender, receiver)[1] == frames
    sender.close()
    receiver.close()


@settings(max_examples=40, deadline=None)
@given(frames=st.lists(st.binary(max_size=3 * CHUNK // 2), min_size=1, max_size=6),
       cuts=st.lists(st.integers(1, 70_000), max_size=8))
def test_frames_survive_any_split_of_the_byte_stream(frames: list[bytes], cuts: list[int]) -> None:
    """However TCP cuts the stream, whole frames come out, each once, in order."""
    a, raw = socket.socketpair()
    writer = Link(a, initiator=True, keys=None, max_frame=MIB)
    for frame in frames:
        writer.send(frame)
    wire = bytearray()
    while writer.pending or select.select([raw], [], [], 0.01)[0]:
        writer.flush()
        if select.select([raw], [], [], 0.01)[0]:
            wire += raw.recv(1 << 20)
    c, d = socket.socketpair()
    reader = Link(d, initiator=False, keys=None, max_frame=MIB)
    got: list[bytes] = []
    offset = 0
    for cut in [*cuts, len(wire)]:
        piece = bytes(wire[offset:offset + cut])
        offset += len(piece)
        if piece:
            c.sendall(piece)
            while select.select([reader], [], [], 0.01)[0]:
                got += reader.read()
    assert offset == len(wire) and got == frames
    for s in (a, raw, c, d):
        s.close()


def test_the_handshake_proves_both_keys_and_seals_every_record() -> None:
    sender, receiver = pair(SENDER_KEYS, RECEIVER_KEYS)
    assert not sender.ready and not receiver.ready
    pump(sender, receiver, until=lambda: sender.ready and receiver.ready)
    assert sender.ready and receiver.ready
    secret = b"the quote book " * 100
    sender.send(secret)
    receiver.send(b"ack")
    assert pump(sender, receiver) == [[b"ack"], [secret]]


def test_the_wire_never_shows_a_sealed_frame() -> None:
    a, raw = socket.socketpair()
    sender = Link(a, initiator=True, keys=SENDER_KEYS, max_frame=MIB)
    responder = socket.socketpair()
    receiver = Link(responder[1], initiator=False, keys=RECEIVER_KEYS, max_frame=MIB)
    # relay the handshake by hand, keeping a copy of every byte the sender writes
    seen = bytearray()

    def relay() -> None:
        for _ in range(50):
            sender.flush()
            receiver.flush()
            if select.select([raw], [], [], 0.01)[0]:
                data = raw.recv(1 << 20)
                seen.extend(data)
                responder[0].sendall(data)
            if select.select([responder[0]], [], [], 0)[0]:
                raw.sendall(responder[0].recv(1 << 20))
            for link in (sender, receiver):
                if select.select([link], [], [], 0)[0]:
                    link.read()

    relay()
    assert sender.ready and receiver.ready
    sender.send(b"SECRET-ORDER-FLOW" * 10)
    relay()
    assert b"SECRET-ORDER-FLOW" not in bytes(seen)


@pytest.mark.parametrize("who", ["sender", "receiver"])
def test_a_key_the_other_end_does_not_expect_ends_the_handshake(who: str) -> None:
    other, _ = CurveKeys.pair()
    if who == "sender":  # a stranger's own keypair, knowing the receiver's public key
        sender_keys, receiver_keys = CurveKeys(other.public, other.secret, RECEIVER_KEYS.public), RECEIVER_KEYS
    else:  # an impostor receiver that trusts the sender but holds another key
        sender_keys, receiver_keys = SENDER_KEYS, CurveKeys(other.public, other.secret, SENDER_KEYS.public)
    sender, receiver = pair(sender_keys, receiver_keys)
    sender.flush()
    with pytest.raises(LinkClosed) as refused:
        pump(receiver)
    assert refused.value.reason == "auth"
    with pytest.raises(LinkClosed) as told:
        pump(sender)
    assert told.value.reason == "refused" and not sender.ready


def test_a_peer_without_keys_fails_the_handshake_as_a_protocol_error() -> None:
    sender, receiver = pair(None, RECEIVER_KEYS)
    sender.send(b"HELLO in the clear")
    with pytest.raises(LinkClosed) as ended:
        pump(sender, receiver)
    assert ended.value.reason == "protocol" and not receiver.ready


@pytest.mark.parametrize("keys", [False, True], ids=["clear", "sealed"])
def test_a_frame_over_the_limit_ends_the_link_at_the_record_that_crosses_it(keys: bool) -> None:
    sender, receiver = pair(SENDER_KEYS if keys else None, RECEIVER_KEYS if keys else None, max_frame=2 * CHUNK)
    pump(sender, receiver, until=lambda: sender.ready and receiver.ready)
    sender.send(b"x" * (2 * CHUNK))  # exactly the limit: fine
    assert pump(sender, receiver)[1] == [b"x" * (2 * CHUNK)]
    # a frame of many records: the reader gives up on the third record, before the rest is even written
    big = b"y" * (40 * CHUNK)
    with pytest.raises(LinkClosed) as ended:
        sender.send(big)
        pump(sender, receiver)
    assert ended.value.reason == "too_large"


@pytest.mark.parametrize("mangle", ["flip", "replay"])
def test_an_altered_or_replayed_record_ends_a_sealed_link(mangle: str) -> None:
    a, raw = socket.socketpair()
    sender = Link(a, initiator=True, keys=SENDER_KEYS, max_frame=MIB)
    b, feed = socket.socketpair()
    receiver = Link(b, initiator=False, keys=RECEIVER_KEYS, max_frame=MIB)

    def carry(mutate=lambda data: data) -> None:
        for _ in range(20):
            sender.flush()
            receiver.flush()
            if select.select([raw], [], [], 0.01)[0]:
                feed.sendall(mutate(raw.recv(1 << 20)))
            if select.select([feed], [], [], 0)[0]:
                raw.sendall(feed.recv(1 << 20))
            for link in (sender, receiver):
                if select.select([link], [], [], 0)[0]:
                    link.read()

    carry()
    assert sender.ready and receiver.ready
    sender.send(b"first")
    record = bytearray()

    def keep(data: bytes) -> bytes:
        record.extend(data)
        return data if mangle == "replay" else b""  # a replay is delivered once first; an altered one never

    carry(keep)
    assert record, "the record was written"
    tampered = bytearray(record)
    tampered[-1] ^= 1
    with pytest.raises(LinkClosed) as ended:
        feed.sendall(bytes(tampered) if mangle == "flip" else bytes(record))
        for _ in range(20):
            if select.select([receiver], [], [], 0.05)[0]:
                receiver.read()
    assert ended.value.reason == "protocol"


def test_frames_sent_before_the_peer_closes_still_arrive() -> None:
    sender, receiver = pair()
    sender.send(b"last words")
    sender.close()
    frames: list[bytes] = []
    while not receiver.at_eof:
        select.select([receiver], [], [], 1.0)
        frames += receiver.read()
    assert frames == [b"last words"]


def test_a_record_without_its_frame_flag_is_a_protocol_error() -> None:
    a, b = socket.socketpair()
    receiver = Link(b, initiator=False, keys=None, max_frame=MIB)
    a.sendall(RECORD.pack(3) + b"\x07ab")
    select.select([receiver], [], [], 1.0)
    with pytest.raises(LinkClosed) as ended:
        receiver.read()
    assert ended.value.reason == "protocol"
    a.sendall(REFUSED)  # harmless once closed on this side


@pytest.mark.parametrize("endpoint", ["udp://a:1", "tcp://a", "tcp://:7400", "tcp://a:70000", "tcp://a:x"])
def test_an_endpoint_that_is_not_tcp_host_port_is_refused(endpoint: str) -> None:
    with pytest.raises(ValueError, match="is not a tcp://host:port endpoint"):
        parse_endpoint(endpoint)


def test_records_are_noise_transport_messages_both_ways() -> None:
    """A peer that is only the noiseprotocol library (its own handshake and transport calls) talks to a Link."""
    ours, theirs = socket.socketpair()
    receiver = Link(ours, initiator=False, keys=RECEIVER_KEYS, max_frame=MIB)
    noise = NoiseConnection.from_name(PROTOCOL)
    noise.set_as_initiator()
    noise.set_keypair_from_private_bytes(Keypair.STATIC, z85.decode(SENDER_KEYS.secret))
    noise.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, z85.decode(SENDER_KEYS.peer))
    noise.set_prologue(PROLOGUE)
    noise.start_handshake()

    def write(body: bytes) -> None:
        theirs.sendall(RECORD.pack(len(body)) + body)

    def read_record() -> bytes:
        head = theirs.recv(RECORD.size, socket.MSG_WAITALL)
        return theirs.recv(RECORD.unpack(head)[0], socket.MSG_WAITALL)

    write(bytes(noise.write_message()))
    pump(receiver, until=lambda: receiver.ready)
    noise.read_message(read_record())
    assert noise.handshake_finished and receiver.ready
    for frame in (b"first", b"second" * 50):
        write(noise.encrypt(b"\x00" + frame))  # the frame flag byte: 0, the frame's last record
    assert pump(receiver) == [[b"first", b"second" * 50]]
    receiver.send(b"answer")
    assert noise.decrypt(read_record()) == b"\x00answer"
    receiver.close()
    theirs.close()


def test_nothing_is_sent_in_the_clear_before_the_handshake_finishes() -> None:
    sender, receiver = pair(SENDER_KEYS, RECEIVER_KEYS)
    with pytest.raises(RuntimeError, match="before the handshake"):
        sender.send(b"too early")
    sender.close()
    receiver.close()


@pytest.mark.parametrize("cut", [0, 1, 5, 9])
def test_a_zeromq_greeting_is_named_however_it_arrives(cut: int) -> None:
    """The 10-byte ZMTP signature, in one piece or two, ends the link as a ZeroMQ peer, not as a huge record."""
    ours, theirs = socket.socketpair()
    link = Link(ours, initiator=True, keys=SENDER_KEYS, max_frame=MIB)
    greeting = b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00NULL" + bytes(16)
    with pytest.raises(LinkClosed) as ended:
        for piece in (greeting[:cut], greeting[cut:]):
            if piece:
                theirs.sendall(piece)
                pump(link)
    assert ended.value.reason == "zeromq"
    link.close()
    theirs.close()


def test_a_first_record_that_only_starts_like_a_greeting_is_not_mistaken_for_one() -> None:
    ours, theirs = socket.socketpair()
    link = Link(ours, initiator=False, keys=None, max_frame=1 << 17)
    frame = b"y" * 0xFF10  # a record length whose first byte is 0xFF
    theirs.sendall(RECORD.pack(len(frame) + 1) + b"\x00" + frame)
    assert pump(link) == [[frame]]
    link.close()
    theirs.close()
