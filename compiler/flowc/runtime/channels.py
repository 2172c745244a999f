"""The two ends of a channel as an actor sees them: :class:`Input` and :class:`Output`.

They wrap a ring's consumer and producer with the one rule actors need at shutdown: an input is
``closed`` once its writers are done and every message has been received.
"""

from __future__ import annotations

import time
from typing import Any

from flowc.runtime.stop import handing_over, stopping

#: A blocked ``recv`` looks at the stop flag this often (it sleeps on the ring's doorbell meanwhile).
_POLL_S = 0.1


class Input:
    """A channel this actor reads."""

    def __init__(self, ring: Any, index: int, spin_us: float | None = None, yield_us: float | None = None) -> None:
        """Attach as consumer ``index`` of ``ring`` (``spin_us``/``yield_us`` override the ring's wait budgets)."""
        self.ring = ring
        self._rx = ring.consumer(index, spin_us, yield_us)
        self.closed = False

    def recv(self, timeout: float | None = None) -> bytes | None:
        """Return the next message, or ``None`` on timeout or once the channel is closed and drained.

        The channel also counts as closed for an actor asked to stop (SIGTERM, as systemd sends after
        stopping the producers): it then drains what is left and finishes. Asked to hand over (SIGUSR2, a reload
        restarting it), it takes nothing more: the rest stays in the ring for its successor.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if handing_over():
                self.closed = True
                return None
            step = _POLL_S if deadline is None else max(0.0, min(_POLL_S, deadline - time.monotonic()))
            message = self._rx.recv(step)
            if message is not None:
                return message
            if self.ring.closed or stopping():
                message = self._rx.recv(0)
                self.closed = message is None
                return message
            if deadline is not None and time.monotonic() >= deadline:
                return None


class Output:
    """A channel this actor writes."""

    def __init__(self, ring: Any, index: int, spin_us: float | None = None, yield_us: float | None = None) -> None:
        """Attach as producer ``index`` of ``ring`` (``spin_us``/``yield_us`` override the ring's wait budgets)."""
        self.ring = ring
        self._tx = ring.producer(index, spin_us, yield_us)

    def send(self, data: bytes | bytearray | memoryview, timeout: float | None = None) -> bool:
        """Write one message; ``False`` when the ring stayed full for ``timeout`` seconds."""
        return self._tx.send(data, timeout)


def attach(io: dict[str, dict[str, dict[str, Any]]]) -> tuple[dict[str, Input], dict[str, Output]]:
    """Attach the channels described by a layout's ``actor_io`` entry.

    Args:
        io: ``{"inputs": {channel: {"ring", "index"}}, "outputs": {...}}``.

    Returns:
        Inputs and outputs by channel name.
    """
    from flowc.runtime.ring import Ring

    rings: dict[str, Any] = {}

    def ring(name: str) -> Any:
        if name not in rings:
            rings[name] = Ring.attach(name)
        return rings[name]

    inputs = {ch: Input(ring(w["ring"]), int(w["index"])) for ch, w in sorted(io.get("inputs", {}).items())}
    outputs = {ch: Output(ring(w["ring"]), int(w["index"])) for ch, w in sorted(io.get("outputs", {}).items())}
    return inputs, outputs
