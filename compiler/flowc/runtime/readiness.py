"""Readiness: a child of the launcher says when it can do its work, so the next start stage waits for it.

An actor is ready once its channels are attached; a route receiver once it listens; a route sender once the
receiving node has welcomed it. Each writes an empty file ``<FLOWC_REPORT_DIR>/<FLOWC_ACTOR>.ready`` (the report
folder lives in the node's private ``/dev/shm`` prefix and is removed with it). The launcher starts a stage, waits
until every process of it is ready (or exited, or :data:`READY_TIMEOUT_S` passed), then starts the next: producers
no longer fill a ring while the route that drains it is still connecting, which would otherwise show as a burst of
latency at every start.
"""

from __future__ import annotations

import os

#: Longest a start stage waits for its processes (a sender whose receiving node is down would wait forever).
READY_TIMEOUT_S = float(os.environ.get("FLOWC_READY_TIMEOUT_S", "10"))
_SUFFIX = ".ready"


def ready_file(directory: str, key: str) -> str:
    """Where the child ``key`` says it is ready.

    Example:
        >>> ready_file("/dev/shm/flowc-abc.report", "route:feed:out:0")
        '/dev/shm/flowc-abc.report/route:feed:out:0.ready'
    """
    return os.path.join(directory, key.replace("/", "_") + _SUFFIX)


def signal_ready() -> None:
    """Say this process is ready (nothing happens outside a launcher, where there is nobody to tell)."""
    directory, key = os.environ.get("FLOWC_REPORT_DIR"), os.environ.get("FLOWC_CHILD")
    if not directory or not key:
        return
    try:
        fd = os.open(ready_file(directory, key), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return  # the launcher then waits out its timeout; the child still runs
    os.close(fd)
