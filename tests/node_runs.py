"""Running real nodes in tests: build a document into a plan with free ports, start ``flowc launch``, wait, stop.

Shared by the tests that observe a running node from outside (``test_metrics``, ``test_top``).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build_plan(folder: Path, name: str, text: str, targets: tuple[str, ...] = ("plan",)) -> Path:
    """Write ``text`` as ``folder/name``, ``flowc build`` it into ``folder/out`` and return the plan's path.

    Args:
        folder: Where the document and its output go (made if missing).
        name: The document's file name (it names the plan's segments in ``/dev/shm``).
        text: The document.
        targets: The targets to build (none given: the default ones).
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    chosen = [arg for target in targets for arg in ("-t", target)]
    done = subprocess.run([sys.executable, "-m", "flowc", "build", str(folder / name), "-o", str(folder / "out"),
                           *chosen], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return folder / "out" / "flowc" / "plan.json"


def build(tmp_path: Path, text: str) -> Path:
    """Build ``text`` and give every node (and route) a free port; return the plan's path.

    Each call writes its document under a new random name, so the plan's segments in ``/dev/shm`` (named after
    the document) are its own, even when tests run side by side.
    """
    plan = build_plan(tmp_path, f"node-{secrets.token_hex(4)}.yaml", text, targets=())
    data = json.loads(plan.read_text())
    for node in data["nodes"].values():
        node["metrics"] = {"address": "127.0.0.1", "port": free_port()}
    for route in data["routes"].values():
        route["port"] = free_port()
    plan.write_text(json.dumps(data))
    return plan


def launch(plan: Path, node: str, report: Path, *extra: str) -> subprocess.Popen:
    """Start ``flowc launch`` for ``node`` with the plan's metrics port (not the suite's free-port default)."""
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("FLOWC_METRICS_PORT")
    return subprocess.Popen([sys.executable, "-m", "flowc", "launch", str(plan), "--node", node, "--report",
                             str(report), "--oversubscribe", *extra], env=env, stderr=subprocess.PIPE, text=True)


def wait_for(check: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
    """Call ``check`` until it returns something true (which is returned) or ``timeout`` passes.

    A connection refused while a server starts (:class:`httpx.TransportError`) counts as not yet.
    """
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = check()
        except httpx.TransportError:
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"still not true after {timeout} s")


def stop(proc: subprocess.Popen) -> str:
    """SIGTERM a launcher and return its stderr."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return err
