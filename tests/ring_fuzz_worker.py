"""Child process for the hostile-segment tests: corrupts a real ring segment and calls the ring on it.

It reads one JSON case per line on stdin and answers one JSON line per case on stdout, so a crash (SIGSEGV,
SIGFPE, an ASan report) kills only this process and the parent sees which case did it. A case names a fresh
segment, its geometry, messages to send first, the writes that corrupt it (``[field, index, value]``) and the
calls to make; the answer lists, per call, what it returned or raised and how long it took.

``python tests/ring_fuzz_worker.py [SO]`` loads the ring's C extension from ``SO`` instead of the installed one
(the sanitizer build of ``test_ring_hostile.py``).
"""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
import time
from typing import Any

if __name__ == "__main__" and len(sys.argv) > 1:  # a separately built extension (ASan/UBSan) replaces the installed one
    spec = importlib.util.spec_from_file_location("flowc.runtime._ring", sys.argv[1])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["flowc.runtime._ring"] = module
    spec.loader.exec_module(module)

from flowc.runtime import _ring  # noqa: E402
from flowc.runtime.ring import Ring, RingError  # noqa: E402

LAYOUT = _ring.LAYOUT
WIDTHS = {"magic": "Q", "version": "I", "flags": "I", "capacity": "Q", "producers": "I", "consumers": "I",
          "max_message": "Q", "data_offset": "Q", "spin_ns": "Q", "yield_ns": "Q", "reserve": "Q",
          "published": "Q", "closed": "I", "broken": "I"}
"""Header fields (at ``LAYOUT[field]``) and their struct formats; per-line and data fields are below."""


def offset_of(ring: Ring, field: str, index: int) -> tuple[int, str]:
    """Byte offset and struct format of ``field`` (``index`` picks the line or the data byte) in the segment."""
    info = ring._info
    lines = LAYOUT["header_size"]
    if field in WIDTHS:
        return LAYOUT[field], WIDTHS[field]
    if field in ("claim", "pid"):
        line = lines + (index % info["producers"]) * LAYOUT["line_size"]
        return line + LAYOUT[field], "Q" if field == "claim" else "i"
    if field == "cursor":
        line = info["producers"] + index % info["consumers"]
        return lines + line * LAYOUT["line_size"] + LAYOUT["cursor"], "Q"
    if field == "record":  # a u32 anywhere in the data area: record lengths and flags
        data = _ring.layout_size(0, info["producers"], info["consumers"])
        return data + (index * 4) % info["capacity"], "I"
    raise ValueError(f"unknown field {field}")


def corrupt(ring: Ring, writes: list[list[Any]]) -> None:
    """Apply ``[field, index, value]`` writes; values are truncated to the field's width."""
    for field, index, value in writes:
        offset, fmt = offset_of(ring, field, index)
        bits = struct.calcsize(fmt) * 8
        value &= (1 << bits) - 1
        if fmt == "i" and value >= 1 << 31:
            value -= 1 << 32
        struct.pack_into("<" + fmt, ring._mm, offset, value)


def call(ring: Ring, op: str, timeout: float) -> Any:
    """One call on a freshly attached view of the segment (attaching is part of what is checked)."""
    other = Ring.attach(ring.name)
    try:
        if op == "send":
            return other.producer(0).send(b"m" * 40, timeout=timeout)
        if op == "send_big":
            return other.producer(0).send(bytes(other.max_message), timeout=timeout)
        if op == "recv":
            data = other.consumer(0).recv(timeout=timeout)
            return None if data is None else len(data)
        if op == "pending":
            return other.consumer(0).pending()
        if op == "stats":
            return other.stats()["received"]
        raise ValueError(f"unknown op {op}")
    finally:
        other.close()


def run_case(case: dict[str, Any]) -> list[list[Any]]:
    """Create the segment, send, corrupt, then make every call; return ``[op, outcome, seconds]`` per call."""
    name = case["name"]
    Ring.unlink(name)
    ring = Ring.create(name, case["buffer"], case["producers"], case["consumers"], policy=case["policy"])
    results: list[list[Any]] = []
    try:
        tx = ring.producer(0)
        for size in case["sends"]:
            tx.send(bytes(size % (ring.max_message + 1)), timeout=0)
        corrupt(ring, case["writes"])
        for op in case["ops"]:
            start = time.monotonic()
            try:
                outcome = ["ok", repr(call(ring, op, case["timeout"]))]
            except RingError as exc:
                outcome = ["RingError", str(exc)]
            except (ValueError, IndexError) as exc:  # a usage error, e.g. an index beyond a corrupted count
                outcome = [type(exc).__name__, str(exc)]
            results.append([op, outcome, time.monotonic() - start])
    finally:
        ring.close()
        Ring.unlink(name)
    return results


def main() -> None:
    """Serve cases until stdin closes."""
    print(json.dumps("ready"), flush=True)
    for line in sys.stdin:
        print(json.dumps(run_case(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
