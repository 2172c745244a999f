"""The stop flag of an actor process: SIGTERM and SIGINT ask it to finish instead of killing it.

The launcher stops producers with SIGTERM; a producer polls :func:`stopping` between messages, and an
input counts as closed once the flag is set, so consumers and transformers drain what is left.
"""

from __future__ import annotations

import signal
from typing import Any

_stop = False


def _on_term(_signum: int, _frame: Any) -> None:
    global _stop
    _stop = True


def install_stop_handler() -> None:
    """Make SIGTERM and SIGINT set :func:`stopping` instead of killing the process."""
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)


def stopping() -> bool:
    """Whether the launcher asked this actor to stop (producers poll this between messages)."""
    return _stop
