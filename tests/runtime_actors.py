"""Actors used by the launcher tests (imported by actor processes through PYTHONPATH)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from flowc.actors import latency_sink, synthetic_producer
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
