"""The Python ring peer: the C peer program's modes (``ring_peers.PEER_C``) over ``flowc.runtime.ring``, one process.

``python tests/ring_peer_python.py MODE ...`` with the same modes, arguments, output and exit codes as the C peer,
so a test drives either implementation with one command line:

* ``send RING INDEX COUNT WHO``: producer ``INDEX`` sends :func:`message` ``k`` of ``WHO`` for ``k < COUNT``;
* ``oversize RING INDEX``: sends one message of exactly ``max_message``, then one byte more, which must be refused;
* ``dump RING INDEX PACE_US``: consumer ``INDEX`` writes every message to stdout as a frame (``u32`` little-endian
  length, then the bytes), sleeping ``PACE_US`` microseconds after each, until the ring is closed and drained.

Exit 0: done; 2: a ring call failed or was refused (the reason on stderr); 3: attaching failed; 64: usage.
"""

from __future__ import annotations

import struct
import sys
import time

from flowc.runtime.ring import Ring, RingError

#: Every send or receive gives up after this long, so a protocol bug fails a test instead of hanging it.
TIMEOUT_S = 20.0
_PATTERN = bytes(range(256)) * 8200


def message(k: int, who: int, maxlen: int) -> bytes:
    """Message ``k`` of producer ``who``, as ``msg_len``/``fill`` in the C peer make it.

    Every 50th message is the ring's largest (``maxlen``); the others have lengths from 8 to ``maxlen`` that do not
    divide a ring, so records wrap with PAD records.

    Args:
        k: Sequence number.
        who: Producer id.
        maxlen: The ring's ``max_message`` (at most 2 MiB here).

    Returns:
        ``[u32 k][u32 who]`` then the bytes ``(k + j) & 0xff`` for ``j`` from 8 to the length.

    Example:
        >>> len(message(49, 0, 100)), message(1, 2, 100)[:10] == struct.pack("<II", 1, 2) + bytes([9, 10])
        (100, True)
    """
    length = maxlen if k % 50 == 49 else 8 + (k * 37) % (maxlen - 7)
    start = (k + 8) & 0xFF
    return struct.pack("<II", k, who) + _PATTERN[start:start + length - 8]


def _fail(what: str, why: object, code: int = 2) -> int:
    """Say why on stderr (``what: why``, as the C peer does); the exit code."""
    print(f"{what}: {why}", file=sys.stderr)
    return code


def _send(ring: Ring, index: int, count: int, who: int) -> int:
    """Mode ``send``: producer ``index`` sends messages ``0..count-1`` of ``who``."""
    tx = ring.producer(index)
    for k in range(count):
        try:
            sent = tx.send(message(k, who, ring.max_message), TIMEOUT_S)
        except ValueError as exc:
            return _fail("send", f"message too large: {exc}")
        if not sent:
            return _fail("send", "ring closed" if ring.closed else "timed out")
    print(f"ok {count}")
    return 0


def _oversize(ring: Ring, index: int) -> int:
    """Mode ``oversize``: the largest message, then one byte more (exit 2 when it is refused, as it must be)."""
    tx = ring.producer(index)
    if not tx.send(message(49, 0, ring.max_message), TIMEOUT_S):
        return _fail("send", "ring closed" if ring.closed else "timed out")
    try:
        tx.send(b"\0" * (ring.max_message + 1), 0)
    except ValueError as exc:
        return _fail("send", f"message too large: {exc}")
    print("ok: a message over the limit was sent")
    return 0


def _dump(ring: Ring, index: int, pace_us: int) -> int:
    """Mode ``dump``: consumer ``index`` writes frames to stdout until the ring is closed and drained."""
    rx, out = ring.consumer(index), sys.stdout.buffer
    while (data := rx.recv(TIMEOUT_S)) is not None:
        out.write(struct.pack("<I", len(data)) + data)
        if pace_us:
            time.sleep(pace_us / 1e6)
    out.flush()
    return 0 if ring.closed and rx.pending() == 0 else _fail("recv", "timed out")


def main(argv: list[str]) -> int:
    """Run one mode (see the module's docstring).

    Args:
        argv: The arguments after the program's name.

    Returns:
        The exit code.
    """
    modes = {"send": (_send, 3), "oversize": (_oversize, 1), "dump": (_dump, 2)}
    if not argv or argv[0] not in modes or len(argv) != 2 + modes[argv[0]][1]:
        return _fail("usage", "ring_peer_python.py send RING INDEX COUNT WHO | oversize RING INDEX | "
                     "dump RING INDEX PACE_US", 64)
    run, _ = modes[argv[0]]
    try:
        ring = Ring.attach(argv[1])
    except RingError as exc:
        return _fail("attach", exc, 3)
    try:
        return run(ring, *map(int, argv[2:]))
    except RingError as exc:
        return _fail(argv[0], exc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
