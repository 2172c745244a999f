"""Large plans emit on two processes: the same artifacts and diagnostics as one, in the same order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import flowc.emit.parallel as parallel
from flowc.pipeline import compile_file

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="forking only pays with two cpus or more")


def _pid_job(tag: str) -> parallel.Job:
    return lambda: ([(tag, os.getpid())], [f"{tag}-diagnostic"])


@two_cpus
def test_a_large_plan_splits_the_targets_between_two_processes() -> None:
    results = parallel.run_jobs([_pid_job(str(i)) for i in range(4)], nodes=parallel.PARALLEL_MIN_NODES)
    assert [artifacts[0][0] for artifacts, _ in results] == ["0", "1", "2", "3"], "results stay in target order"
    assert [diagnostics for _, diagnostics in results] == [[f"{i}-diagnostic"] for i in range(4)]
    pids = [artifacts[0][1] for artifacts, _ in results]
    assert pids[0] == pids[2] == os.getpid() and pids[1] == pids[3] != os.getpid()


def test_a_small_plan_emits_in_this_process() -> None:
    results = parallel.run_jobs([_pid_job(str(i)) for i in range(4)], nodes=parallel.PARALLEL_MIN_NODES - 1)
    assert {artifacts[0][1] for artifacts, _ in results} == {os.getpid()}


@two_cpus
def test_a_job_that_fails_in_the_child_fails_here_with_its_own_error() -> None:
    def broken() -> tuple[list, list]:
        raise ValueError("two targets write 'x'")

    with pytest.raises(ValueError, match="two targets write"):
        parallel.run_jobs([_pid_job("0"), broken], nodes=parallel.PARALLEL_MIN_NODES)


@two_cpus
@pytest.mark.parametrize("example", ["multi-node.yaml", "route-demo.yaml", "training-with-datapath.yaml"])
def test_parallel_and_serial_builds_are_the_same_bytes(example: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "PARALLEL_MIN_NODES", 10**9)
    serial = compile_file(EXAMPLES / example, until="artifacts")
    monkeypatch.setattr(parallel, "PARALLEL_MIN_NODES", 1)
    forked = compile_file(EXAMPLES / example, until="artifacts")
    assert serial.artifacts and [(a.path, a.content, a.executable) for a in forked.artifacts] == [
        (a.path, a.content, a.executable) for a in serial.artifacts]
    assert forked.diagnostics == serial.diagnostics
