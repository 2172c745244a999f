"""Actors used by the launcher tests (imported by actor processes through PYTHONPATH)."""

from __future__ import annotations

import os
import struct
import sys
import time
from typing import Any

from flowc.actors import latency_sink, synthetic_producer
from flowc.runtime.actors import Pacer, messages
from flowc.runtime.stop import stopping


def crash_once_sink(inputs: dict[str, Any], outputs: dict[str, Any], params: dict[str, Any]) -> None:
    """Exit with status 3 the first time (before reading), then behave like the latency sink."""
    marker = params["marker"]
    if not os.path.exists(marker):
        open(marker, "w").close()
        sys.exit(3)
    latency_sink(inputs, outputs, params)


def always_fail(inputs: dict[str, Any], outputs: dict[str, Any], params: dict[str, Any]) -> None:
    """Fail at once, every time."""
    sys.exit(4)


def emit_then_wait(inputs: dict[str, Any], outputs: dict[str, Any], params: dict[str, Any]) -> None:
    """Send ``count`` synthetic messages, then idle until the launcher stops it (the node stays up)."""
    synthetic_producer(inputs, outputs, params)
    while not stopping():
        time.sleep(0.05)


SEQ = struct.Struct("<IQ")  # producer run id, sequence
RECORD = struct.Struct("<IQq")  # producer run id, sequence, arrival (CLOCK_MONOTONIC ns)


def seq_producer(inputs: dict[str, Any], outputs: dict[str, Any], params: dict[str, Any]) -> None:
    """Send ``count`` numbered messages at ``rate``, then append ``<run id> <sent>`` to ``params['sent']``.

    The run id is this process's pid, so each run (a reload may restart it) numbers its own messages from 0.
    """
    pacer, run, sent = Pacer(float(params.get("rate", 1000))), os.getpid(), 0
    out = list(outputs.values())
    for seq in range(int(params["count"])):
        if stopping():
            break
        pacer.wait(seq)
        for channel in out:
            if not channel.send(SEQ.pack(run, seq)):
                break
        sent = seq + 1
    with open(params["sent"], "a", encoding="ascii") as handle:
        handle.write(f"{run} {sent}\n")
    while not stopping() and params.get("linger"):
        time.sleep(0.05)


def seq_recorder(inputs: dict[str, Any], outputs: dict[str, Any], params: dict[str, Any]) -> None:
    """Append (run id, sequence, arrival time) of every message to ``params['out']``; pass it on to its outputs."""
    with open(params["out"], "ab") as handle:
        for message in messages(inputs):
            run, seq = SEQ.unpack_from(message)
            handle.write(RECORD.pack(run, seq, time.monotonic_ns()))
            handle.flush()  # what a test reads while the node runs is what arrived
            for channel in outputs.values():
                channel.send(message)
