"""Running the targets' emitters on two cores for a large plan.

Emitters are pure: a plan and settings in, artifacts and diagnostics out. For a large plan (a thousand nodes emit
tens of thousands of files) the selected targets are split between this process and one forked child, which
inherits the plan without copying or pickling it and sends back only its artifacts and diagnostics. Results are
put back in target order, so the output is the same bytes as a serial run. Small plans, one target, a machine
with one CPU or without ``fork`` run serially: a fork costs more than it saves there.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from typing import Any

PARALLEL_MIN_NODES = 64
"""Plans with fewer nodes than this emit serially."""

Job = Callable[[], tuple[list[Any], list[Any]]]
"""One target's emission: returns its artifacts and the diagnostics it reported."""


def run_jobs(jobs: Sequence[Job], nodes: int) -> list[tuple[list[Any], list[Any]]]:
    """Run every job and return their results in order, on two processes when the plan is large enough.

    Args:
        jobs: The targets' emissions, in target order.
        nodes: How many nodes the plan has.

    Returns:
        Each job's ``(artifacts, diagnostics)``, in the order of ``jobs``.
    """
    if not _worth_forking(len(jobs), nodes):
        return [job() for job in jobs]
    child_jobs = list(range(1, len(jobs), 2))
    fork = multiprocessing.get_context("fork")
    receive, send = fork.Pipe(duplex=False)
    child = fork.Process(target=_child, args=(send, [jobs[i] for i in child_jobs]), daemon=True)
    child.start()
    send.close()
    results: dict[int, tuple[list[Any], list[Any]]] = {}
    try:
        for index in range(0, len(jobs), 2):
            results[index] = jobs[index]()
        try:
            outcome = receive.recv()
        except EOFError:
            outcome = None  # the child died: run its jobs here, where a failure raises as usual
    finally:
        receive.close()
        child.join()
    for index, position in enumerate(child_jobs):
        results[position] = outcome[index] if outcome is not None else jobs[position]()
    return [results[index] for index in range(len(jobs))]


def _worth_forking(jobs: int, nodes: int) -> bool:
    if jobs < 2 or nodes < PARALLEL_MIN_NODES or "fork" not in multiprocessing.get_all_start_methods():
        return False
    return len(os.sched_getaffinity(0)) >= 2


def _child(send: Any, jobs: list[Job]) -> None:
    """Run ``jobs`` and send their results; on any failure send nothing, so the parent runs them itself."""
    try:
        results = [job() for job in jobs]
    except BaseException:  # noqa: BLE001 - the parent re-runs the jobs and reports the failure itself
        send.close()
        os._exit(1)
    send.send(results)
    send.close()
    os._exit(0)
