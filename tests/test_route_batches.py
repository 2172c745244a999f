"""BATCH frames at a route's receiver: hostile batches refused whole, overlaps and gaps handled per message.

A real :class:`Receiver` on loopback and a raw connection holding the source node's keys (the fixtures of
``test_bridge_hostile.py``): every malformed batch is refused and counted before any of its records reaches the
local channel, the receiver lives on and serves the next handshake, and random cuts of a message sequence into
``DATA`` and ``BATCH`` frames, with resent overlaps, deliver exactly that sequence. A real :class:`Sender`
keeps its batches within a small receiver's frame limit, as they travel and decoded.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import lz4.block
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowc.runtime.bridge import BridgeStats, Sender
from flowc.runtime.bridge_receiver import Receiver
from flowc.runtime.wire import ACK, BATCH, DATA, MAX_RECORDS, RECORD, REJECT, RESYNC, Codec, header
from test_bridge_hostile import (  # noqa: F401
    DEADLINE_S,
    MIB,
    RECEIVER_KEYS,
    ROUTE,
    SOURCE_KEYS,
    Running,
    Stranger,
    free_port,
    peak_rss_bytes,
    receiver,
    stranger,
    wait_for,
    zstd_bomb,
)


def batch(*records: tuple[int, bytes]) -> bytes:
    """A BATCH payload of ``(codec id, bytes)`` records."""
    return b"".join(RECORD.pack(codec, len(data)) + data for codec, data in records)


def raw(*messages: bytes) -> bytes:
    """A BATCH payload of raw records."""
    return batch(*((0, message) for message in messages))


def refused_counts(stats: BridgeStats) -> dict[str, int]:
    """The rejects, without the ``route`` ones each :meth:`Stranger.sync` probe earns."""
    return {reason: count for reason, count in stats.rejects.items() if reason != "route"}


LZ4_WORDS = lz4.block.compress(b"words " * 50, store_size=True)
ZSTD_WORDS = zstandard.ZstdCompressor().compress(b"words " * 50)

#: name: (route codec, header codec byte, BATCH payload, reason counted, words of the REJECT). Each has one defect,
#: and most put a good record in front of it: nothing of a refused batch may be delivered.
HOSTILE = {
    "truncated-record": ("none", 0, raw(b"good") + RECORD.pack(0, 4)[:3], "malformed", b"cut short"),
    "length-past-the-payload": ("none", 0, raw(b"good") + RECORD.pack(0, 100) + bytes(10), "malformed",
                                b"100 bytes with 10 left"),
    "zero-records": ("none", 0, b"", "malformed", b"without records"),
    "too-many-records": ("none", 0, raw(*[b""] * (MAX_RECORDS + 1)), "malformed", b"more than 1024 records"),
    "codec-in-the-header": ("none", 0x01, raw(b"good"), "malformed", b"header names codec id 1"),
    "lz4-on-an-uncompressed-route": ("none", 0, raw(b"good") + batch((1, LZ4_WORDS)), "codec", b"codec id 1"),
    "zstd-on-an-lz4-route": ("lz4", 0, batch((1, LZ4_WORDS), (2, ZSTD_WORDS)), "codec", b"codec id 2"),
    "unknown-codec-id": ("zstd", 0, raw(b"good") + batch((9, b"x")), "codec", b"codec id 9"),
    "corrupt-after-good-records": ("lz4", 0, batch((0, b"good"), (1, LZ4_WORDS), (1, LZ4_WORDS[:4] + b"\xff" * 20)),
                                   "corrupt", b"does not decompress"),
}


@pytest.mark.parametrize(("compression", "head_codec", "payload", "reason", "words"), HOSTILE.values(),
                         ids=HOSTILE.keys())
def test_a_hostile_batch_is_refused_whole(receiver, stranger, compression: str, head_codec: int,  # noqa: F811
                                          payload: bytes, reason: str, words: bytes) -> None:
    run = receiver(compression)
    forger = stranger(run.endpoint)
    codec = Codec(compression).id
    assert forger.handshake(codec) == 1
    forger.send(header(BATCH, head_codec, 1, forger.session, 1), payload)
    assert words in forger.expect(REJECT, forger.session)[1]
    forger.sync()
    assert run.thread.is_alive() and run.delivered == [] and run.stats.received == 0
    assert refused_counts(run.stats) == {reason: 1}
    # The sender was told to stop; the same session may come back and carry on from the first message.
    assert forger.handshake(codec, epoch=2) == 1
    forger.send(header(BATCH, 0, 2, forger.session, 1), raw(b"first", b"second"))
    forger.sync()
    assert run.delivered == [b"first", b"second"]
    assert refused_counts(run.stats) == {reason: 1}


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_a_bomb_spread_over_many_records_is_refused_unread(receiver, stranger, codec: str) -> None:  # noqa: F811
    """Every record states a message within the limit; together they state hundreds of them."""
    run = receiver(codec, max_message=MIB)
    if codec == "lz4":
        record = (1, lz4.block.compress(bytes(MIB), store_size=True))
        records = 200  # 4 KiB each: the frame stays under the 1 MiB limit, the messages add up to 200 MiB
    else:
        record = (2, zstd_bomb(MIB))
        records = MAX_RECORDS
    payload = batch(*[record] * records)
    assert len(payload) < MIB
    before = peak_rss_bytes()
    forger = stranger(run.endpoint)
    forger.handshake(Codec(codec).id)
    forger.send(header(BATCH, 0, 1, forger.session, 1), payload)
    assert b"limit is 1048576" in forger.expect(REJECT, forger.session)[1]
    assert peak_rss_bytes() - before < 64 * MIB, "the batch was decompressed"
    assert run.thread.is_alive() and run.delivered == []
    assert run.stats.rejects == {"too_large": 1}


def expect_ack(forger: Stranger, seq: int) -> None:
    """Wait for an ACK that covers ``seq``."""
    while forger.expect(ACK, forger.session)[0][5] < seq:
        pass


def test_a_batch_overlapping_delivered_messages_delivers_only_its_new_tail(receiver, stranger) -> None:  # noqa: F811
    run = receiver()
    forger = stranger(run.endpoint)
    forger.handshake()
    m = [b"m%d" % i for i in range(6)]
    forger.send(header(DATA, 0, 1, forger.session, 1), m[1])
    forger.send(header(BATCH, 0, 1, forger.session, 1), raw(m[1], m[2], m[3]))  # 1 again, then 2 and 3
    forger.send(header(BATCH, 0, 1, forger.session, 2), raw(m[2], m[3]))  # nothing new
    forger.send(header(BATCH, 0, 1, forger.session, 3), raw(m[3], m[4], m[5]))
    forger.sync()
    assert run.delivered == m[1:]
    assert run.stats.duplicates_dropped == 1 + 2 + 1 and run.stats.received == 5
    assert run.stats.frames_received == 4 and refused_counts(run.stats) == {}
    expect_ack(forger, 5)


def test_a_batch_after_a_gap_earns_a_resync_and_delivers_nothing(receiver, stranger) -> None:  # noqa: F811
    run = receiver()
    forger = stranger(run.endpoint)
    forger.handshake()
    forger.send(header(DATA, 0, 1, forger.session, 1), b"one")
    forger.send(header(BATCH, 0, 1, forger.session, 3), raw(b"three", b"four"))  # two went missing
    assert forger.expect(RESYNC, forger.session)[0][5] == 2, "the resync names the next sequence expected"
    forger.sync()
    assert run.delivered == [b"one"] and refused_counts(run.stats) == {}
    # What a sender does on RESYNC: a new epoch, and everything from the sequence the WELCOME names.
    assert forger.handshake(epoch=2) == 2
    forger.send(header(BATCH, 0, 2, forger.session, 2), raw(b"two", b"three", b"four"))
    forger.sync()
    assert run.delivered == [b"one", b"two", b"three", b"four"]


@dataclass
class Link:
    """A receiver of one codec and a stranger that holds its route for a whole hypothesis run."""

    compression: str
    run: Running
    forger: Stranger
    epoch: int = 0

    def resume(self) -> int:
        """Start a new epoch, as a sender does after a reconnect; the sequence the receiver expects."""
        self.epoch += 1
        return self.forger.handshake(Codec(self.compression).id, epoch=self.epoch)


@pytest.fixture(scope="module", params=["none", "lz4", "zstd"])
def link(request: pytest.FixtureRequest) -> Iterator[Link]:
    compression = request.param
    port = free_port()
    run = Running(port, BridgeStats(), threading.Event(), threading.Thread())
    # The stranger is the route's only sender for the whole run: a long heartbeat keeps it from timing out.
    recv = Receiver(run.endpoint, ROUTE, compression, heartbeat_s=60.0, auth=RECEIVER_KEYS)
    run.thread = threading.Thread(target=recv.run, args=(run.delivered.append, run.stop, run.stats), daemon=True)
    run.thread.start()
    forger = Stranger(run.endpoint)
    yield Link(compression, run, forger)
    forger.close()
    run.stop.set()
    run.thread.join(DEADLINE_S)
    assert not run.thread.is_alive()


MESSAGES = st.one_of(st.binary(max_size=600),
                     st.tuples(st.binary(min_size=1, max_size=12), st.integers(0, 300)).map(lambda t: t[0] * t[1]))


@st.composite
def cuts(draw, count: int) -> list[tuple[int, int, bool]]:
    """How to send ``count`` messages: frames of ``(first message, end, lone message as DATA)``.

    A frame may start before the previous one ended, as a resend after a reconnect repeats what was sent.
    """
    frames, start = [], 0
    while start < count:
        end = start + draw(st.integers(1, min(50, count - start)), label="cut")
        first = start - draw(st.sampled_from(sorted({0, min(start, 1), start})), label="repeated")
        frames.append((first, end, end - first == 1 and draw(st.booleans(), label="as DATA")))
        start = end
    return frames


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(MESSAGES, min_size=1, max_size=80), data=st.data())
def test_random_batch_cuts_deliver_the_sent_sequence(link: Link, messages: list[bytes], data) -> None:
    plan = data.draw(cuts(len(messages)), label="frames")  # drawn whole: an example stops before it sends
    codec = Codec(link.compression)
    travelling = [codec.encode(message) for message in messages]
    base = link.resume()
    delivered, dropped = len(link.run.delivered), link.run.stats.duplicates_dropped
    session = link.forger.session
    for first, end, as_data in plan:
        if as_data:
            link.forger.send(header(DATA, travelling[first][0], link.epoch, session, base + first),
                             travelling[first][1])
        else:
            link.forger.send(header(BATCH, 0, link.epoch, session, base + first), batch(*travelling[first:end]))
    link.forger.sync()
    assert link.run.delivered[delivered:] == messages
    assert link.run.stats.duplicates_dropped - dropped == sum(end - first for first, end, _ in plan) - len(messages)
    assert refused_counts(link.run.stats) == {}


@pytest.mark.parametrize(("compression", "message", "per_frame"),
                         [("none", os.urandom(400), 2), ("lz4", bytes(300), 3)],
                         ids=["bytes-on-the-wire", "bytes-decoded"])
def test_a_senders_batches_fit_a_small_receivers_limit(receiver, compression: str, message: bytes,  # noqa: F811
                                                        per_frame: int) -> None:
    """With a 1000-byte limit: two 400-byte raw records fill a frame, three 300-byte messages decode to one."""
    count = 2000
    messages = [i.to_bytes(4, "little") + message[4:] for i in range(count)]
    run = receiver(compression, max_message=1000)
    feed, stop, results = iter(messages), threading.Event(), []
    sender = Sender(run.endpoint, ROUTE, compression, heartbeat_s=0.2, drain_timeout_s=5.0, auth=SOURCE_KEYS)

    def take(timeout: float) -> bytes | None:
        message = next(feed, None)
        if message is None:
            time.sleep(timeout)
        return message

    thread = threading.Thread(target=lambda: results.append(sender.run(take, stop)), daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(run.delivered) >= count, "every message")
    finally:
        stop.set()
        thread.join(DEADLINE_S)
    assert run.delivered == messages and run.stats.rejects == {}
    stats = results[0]
    assert stats.sent == count and stats.resent == 0
    assert count // per_frame <= stats.frames_sent < count, "messages that queue up share frames, within the limit"
