"""The runtime side of flowc: what runs a node's data path, and the client API actors use.

An actor started by the launcher finds its channels through the ``FLOWC_CHANNELS`` environment
variable (JSON: ``{"inputs": {channel: {"ring": name, "index": i}}, "outputs": {...}}``). Python actors
use :func:`inputs` and :func:`outputs`; a ``run:`` callable receives them as arguments. The launcher
stops producers with SIGTERM, which sets :func:`stopping`; consumers and transformers see their inputs
drain and ``recv()`` return ``None``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from flowc.runtime.stop import install_stop_handler, stopping

CHANNELS_ENV = "FLOWC_CHANNELS"

__all__ = ["CHANNELS_ENV", "inputs", "install_stop_handler", "outputs", "stopping"]


def _io() -> tuple[dict[str, Any], dict[str, Any]]:
    from flowc.runtime.channels import attach

    return attach(json.loads(os.environ.get(CHANNELS_ENV, "{}")))


def inputs() -> dict[str, Any]:
    """Attach this actor's input channels: channel name → :class:`~flowc.runtime.channels.Input`."""
    return _io()[0]


def outputs() -> dict[str, Any]:
    """Attach this actor's output channels: channel name → :class:`~flowc.runtime.channels.Output`."""
    return _io()[1]
