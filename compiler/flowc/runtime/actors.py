"""Built-in actors for demonstrations and measurement, usable as ``run: flowc.actors:<name>``.

Every message a :func:`synthetic_producer` writes starts with a header: the send time
(``CLOCK_MONOTONIC`` nanoseconds, shared by all processes of a machine), a per-producer sequence number
and the producer's id. :func:`latency_sink` uses it to measure end-to-end latency and to check that
each producer's messages arrive once and in order.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from array import array
from collections.abc import Callable, Iterator
from typing import Any

from flowc.runtime.histogram import Histogram, publish
from flowc.runtime.stop import stopping

HEADER = struct.Struct("<QQI")
REPORT_DIR_ENV = "FLOWC_REPORT_DIR"
#: The suffix of a latency sink's live histogram in the report folder, and how often it is rewritten.
HISTOGRAM_SUFFIX = ".histogram"
PUBLISH_EVERY_NS = 500_000_000
#: How long :func:`messages` waits before calling its ``idle`` callback.
IDLE_S = 0.5
_PR_SET_TIMERSLACK = 29
#: A pacer sleeps when more than this is left before the next send, and spins only the rest.
_SLEEP_ABOVE_NS = 10_000
#: How much earlier than the due time it asks to wake (a sleep overshoots by some µs even with 1 ns timer slack).
_WAKE_MARGIN_NS = 5_000


class Pacer:
    """Sends at a steady rate without burning a core: sleeps most of each period, spins only the last µs.

    The process's timer slack is set to 1 ns (``prctl(PR_SET_TIMERSLACK)``, Linux), so a short sleep wakes within
    a few tens of µs instead of the default 50 µs slack plus scheduling; the pacer sleeps until about
    ``_WAKE_MARGIN_NS`` before the due time and spins the remainder. A busy-waiting pacer holds a whole core, which
    on a small node is the core the route's bridges need. A late send goes at once (no skipped sequence numbers).

    Args:
        rate: Messages per second (0: no pacing).
    """

    def __init__(self, rate: float) -> None:
        """Start the clock now."""
        self.period = 1e9 / rate if rate > 0 else 0.0
        self.start = time.monotonic_ns()
        if self.period:
            _precise_sleep()

    def wait(self, seq: int) -> None:
        """Return at the due time of message ``seq`` (at once when it is already due)."""
        if not self.period:
            return
        due = self.start + int(seq * self.period)
        left = due - time.monotonic_ns()
        if left > _SLEEP_ABOVE_NS:
            time.sleep((left - _WAKE_MARGIN_NS) / 1e9)
        while time.monotonic_ns() < due:
            pass


def _precise_sleep() -> None:
    """Ask the kernel for 1 ns timer slack in this process (where it can; elsewhere sleeps are coarser)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def synthetic_producer(inputs: dict[str, Any], outputs: dict[str, Any], params: dict[str, Any]) -> None:
    """Write timestamped messages to every output until stopped.

    Args:
        inputs: Unused (a producer has none).
        outputs: Channel name → sender.
        params: ``rate`` messages per second (0: as fast as the channel takes them), ``size`` bytes per
            message (at least the 20-byte header), ``count`` messages before finishing (0: until stopped).
    """
    rate = float(params.get("rate", 1000))
    size = max(HEADER.size, int(params.get("size", 64)))
    count = int(params.get("count", 0))
    ident = zlib.crc32(os.environ.get("FLOWC_ACTOR", "producer").encode())
    body = bytearray(size)
    pacer = Pacer(rate)
    seq = 0
    while not stopping() and (count == 0 or seq < count):
        pacer.wait(seq)
        HEADER.pack_into(body, 0, time.monotonic_ns(), seq, ident)
        for out in outputs.values():
            while not out.send(body, timeout=0.1):
                if stopping():
                    return
        seq += 1


def messages(inputs: dict[str, Any], idle: Callable[[], None] | None = None) -> Iterator[bytes]:
    """Yield every message of ``inputs`` until each is closed and drained.

    Args:
        inputs: Channel name → receiver.
        idle: Called whenever half a second passes without a message (a sink publishes its numbers then).

    Yields:
        Messages, in each channel's order (channels interleave).
    """
    live = dict(inputs)
    quiet = 0.05 if len(live) > 1 else (None if idle is None else IDLE_S)
    while live:
        got = False
        for name, inp in list(live.items()):
            # One input blocks on its doorbell (for at most IDLE_S when someone waits for idle moments);
            # several are polled in turn.
            message = inp.recv(timeout=quiet)
            if message is not None:
                got = True
                yield message
            elif inp.closed:
                del live[name]
        if not got and idle is not None and live:
            idle()


def relay(inputs: dict[str, Any], outputs: dict[str, Any], params: dict[str, Any]) -> None:
    """Pass every message of its inputs on to all its outputs, until the inputs are drained and closed.

    Args:
        inputs: Channel name → receiver.
        outputs: Channel name → sender.
        params: Unused.
    """
    for message in messages(inputs):
        for out in outputs.values():
            out.send(message)


def latency_sink(inputs: dict[str, Any], outputs: dict[str, Any], params: dict[str, Any]) -> None:
    """Receive until the inputs are drained and closed; record latency and per-producer order.

    Writes ``<FLOWC_REPORT_DIR>/<actor>.latency`` (int64 nanoseconds) and ``<actor>.json`` (counts, how
    many messages arrived out of order or twice, how many were ``malformed``: shorter than the synthetic
    producer's header, or with a timestamp no clock of this host wrote, and the ``CLOCK_MONOTONIC`` times of
    the first and last arrival, for throughput) when it finishes; while it runs, publishes its latency
    histogram to ``<actor>.histogram`` twice a second (:mod:`flowc.runtime.histogram`).

    Args:
        inputs: Channel name → receiver.
        outputs: Unused (a consumer has none).
        params: Unused.
    """
    samples = array("q")
    last: dict[int, int] = {}
    disorder = malformed = 0
    first_ns = last_ns = 0
    histogram = Histogram()
    directory = os.environ.get(REPORT_DIR_ENV)
    live = os.path.join(directory, os.environ.get("FLOWC_ACTOR", "sink") + HISTOGRAM_SUFFIX) if directory else None
    next_publish = published = 0

    def publish_now() -> None:
        nonlocal published
        if live is not None and published != histogram.count:
            published = histogram.count
            publish(live, histogram.as_dict())

    for message in messages(inputs, idle=publish_now if live is not None else None):
        last_ns = time.monotonic_ns()
        first_ns = first_ns or last_ns
        if last_ns >= next_publish:
            publish_now()
            next_publish = last_ns + PUBLISH_EVERY_NS
        if len(message) < HEADER.size:
            malformed += 1
            continue
        sent, seq, ident = HEADER.unpack_from(message)
        latency = last_ns - sent
        if not -(1 << 63) <= latency < 1 << 63:
            malformed += 1  # a timestamp no clock of this host wrote
            continue
        samples.append(latency)
        histogram.observe_ns(latency)
        if seq != last.get(ident, -1) + 1:
            disorder += 1
        last[ident] = seq
    publish_now()
    _write_report(samples, {"count": len(samples), "out_of_order": disorder, "malformed": malformed,
                            "producers": len(last), "first_arrival_ns": first_ns, "last_arrival_ns": last_ns,
                            "last_seq": {str(k): v for k, v in sorted(last.items())}})


def _write_report(samples: array, summary: dict[str, Any]) -> None:
    directory = os.environ.get(REPORT_DIR_ENV)
    if not directory:
        return
    actor = os.environ.get("FLOWC_ACTOR", "sink")
    with open(os.path.join(directory, f"{actor}.latency"), "wb") as handle:
        samples.tofile(handle)
    with open(os.path.join(directory, f"{actor}.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, sort_keys=True)
