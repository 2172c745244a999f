"""The stop flags of an actor process: SIGTERM and SIGINT ask it to finish, SIGUSR2 to hand over, never killing it.

The launcher stops producers with SIGTERM; a producer polls :func:`stopping` between messages, and an
input counts as closed once the flag is set, so consumers and transformers drain what is left. A reload that
restarts a reader while its producers go on sends SIGUSR2 instead (:func:`handing_over`): the reader takes no further
message and finishes, leaving the rest in the ring for its successor, which reads on from the same cursor.
"""

from __future__ import annotations

import signal
from typing import Any

_stop = False
_handover = False
#: The signal a reload sends a reader it restarts.
HANDOVER_SIGNAL = signal.SIGUSR2


def _on_term(_signum: int, _frame: Any) -> None:
    global _stop
    _stop = True


def _on_handover(_signum: int, _frame: Any) -> None:
    global _stop, _handover
    _stop = _handover = True


def install_stop_handler() -> None:
    """Make SIGTERM and SIGINT set :func:`stopping`, and SIGUSR2 :func:`handing_over`, instead of killing."""
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    signal.signal(HANDOVER_SIGNAL, _on_handover)


def stopping() -> bool:
    """Whether the launcher asked this actor to stop (producers poll this between messages)."""
    return _stop


def handing_over() -> bool:
    """Whether a reload asked this actor to stop taking messages now (its successor reads the rest)."""
    return _handover
