"""``flowc launch``: run one node's data path and supervise it.

Takes the node's lock (a second launcher of the node exits 1 naming the first and touches nothing), removes
what a killed run left, creates the node's rings (all or none: see :mod:`flowc.runtime.segments`), starts
every actor pinned to its CPUs (mapped onto the allowed set when the plan's ids are not all available) and
every route's TCP bridge, restarts crashed actors with exponential backoff, and stops in order: producers and
route receivers first, then each ring is closed once all its writers are gone, so transformers and consumers
drain and finish on their own. Then it removes its shared memory and writes the report.

While it runs it serves the node's metrics endpoint (:mod:`flowc.runtime.metrics`): ``/healthz`` answers 200
while the launcher supervises, ``/readyz`` once every channel exists, every process runs and every route is
connected.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from flowc.diagnostics import UserError
from flowc.model.node_view import GENERATIONS_ENV, NodeView
from flowc.runtime import reload, route_keys, segments
from flowc.runtime.actor_main import load_node
from flowc.runtime.metrics import MetricsError, MetricsServer, NodeCollector, endpoint
from flowc.runtime.observe import NodeReader, ProcessState, process_usage
from flowc.runtime.readiness import READY_TIMEOUT_S, ready_file
from flowc.runtime.report import build_report
from flowc.runtime.system import Numa, cpu_map, die_with_parent, pin

MAX_FAILURES = 5
#: First restart delay, doubled per failure; ``FLOWC_RESTART_BACKOFF_S`` overrides it.
BACKOFF_START_S = float(os.environ.get("FLOWC_RESTART_BACKOFF_S", "0.2"))
BACKOFF_MAX_S = 5.0
DRAIN_TIMEOUT_S = 10.0
KILL_TIMEOUT_S = 3.0
#: ``/healthz`` fails when the supervising loop has not come round for this long (it comes every 20 ms).
STALL_S = 5.0


class LaunchError(UserError):
    """The node cannot run, or stopped because an actor kept failing."""


@dataclass
class Child:
    """One supervised process: an actor or a route bridge."""

    key: str
    argv: list[str]
    role: str
    stage: int
    cpus: list[int] | None
    writes: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    restarts: int = 0
    failures: int = 0
    cpu_s: float = 0.0
    exit_code: int | None = None
    finished: bool = False
    restart_at: float | None = None
    previous_exit_code: int | None = None
    #: A reload is stopping it to start it again (or for good): its exit is neither a failure nor an end.
    reloading: bool = False

    def state(self) -> ProcessState:
        """What the process is doing now, for the metrics endpoint (read from another thread: reads only)."""
        proc, code = self.proc, self.exit_code
        usage = process_usage(proc.pid) if proc is not None and code is None else None
        if self.finished:
            state = "finished"
        elif self.restart_at is not None or self.reloading:
            state = "restarting"
        elif proc is None:
            state = "starting"
        elif code is None:
            state = "running"
        else:
            state = "failed"
        return ProcessState(self.key, state, proc.pid if usage else None, self.restarts,
                            round(self.cpu_s + (usage[0] if usage else 0.0), 3), usage[1] if usage else None,
                            self.last_exit_code)

    @property
    def last_exit_code(self) -> int | None:
        """The exit code of the last run that ended (kept across a restart, unlike :attr:`exit_code`)."""
        return self.exit_code if self.exit_code is not None else self.previous_exit_code

    def start(self, env: dict[str, str]) -> None:
        """Start (or restart) the process, pinned and tied to the launcher's life."""
        cpus = self.cpus

        def setup() -> None:
            die_with_parent()
            if cpus:
                pin(cpus)

        self.previous_exit_code = self.last_exit_code
        self.reloading = self.finished = False
        self.proc = subprocess.Popen(self.argv, env={**env, "FLOWC_ACTOR": self.key, "FLOWC_CHILD": self.key},
                                     stdin=subprocess.DEVNULL,
                                     preexec_fn=setup)  # noqa: PLW1509 - affinity and pdeathsig must precede exec
        self.exit_code = None

    @property
    def running(self) -> bool:
        """Whether the process is alive (as far as the last reap knows)."""
        return self.proc is not None and self.exit_code is None

    def exited(self) -> bool:
        """Whether the process has exited, without collecting it (:meth:`reap` still sees it)."""
        if not self.running:
            return True
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def reap(self) -> bool:
        """Collect the process if it exited; returns True when it just did."""
        if not self.running:
            return False
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.cpu_s += usage.ru_utime + usage.ru_stime
        self.exit_code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.exit_code
        return True

    def signal(self, signum: int) -> None:
        """Send ``signum`` if the process is alive."""
        if self.running:
            try:
                self.proc.send_signal(signum)
            except ProcessLookupError:
                pass


class Launcher:
    """Runs one node of a plan until ``duration`` passes, a signal arrives, or every actor finished."""

    def __init__(self, plan_path: str, node: str, duration: float | None = None, log: Any = sys.stderr,
                 oversubscribe: bool = False, keys_dir: str | None = None,
                 metrics: bool = True, metrics_port: int | None = None, metrics_address: str | None = None) -> None:
        """Prepare, without starting anything.

        Args:
            plan_path: The plan (or node slice) file.
            node: The node to run.
            duration: Seconds to run before stopping in order; ``None`` runs until signalled.
            log: Where progress lines go.
            oversubscribe: Run even when fewer CPUs are allowed than the actors ask for (said loudly).
            keys_dir: The route keys (``flowc keys generate``'s folder or this node's part of it); by default
                ``FLOWC_KEYS_DIR`` or systemd's credentials.
            metrics: Whether to serve the metrics endpoint (on the plan's ``metrics`` address and port).
            metrics_port: Serve it on this port instead.
            metrics_address: Serve it on this address instead.
        """
        self.plan_path = os.path.abspath(plan_path)
        self.plan = load_node(plan_path, node)
        self.node = node
        self.layout = NodeView.of(self.plan, node)
        self.duration = duration
        self.log = log
        self.stop_requested = False
        self.children: list[Child] = []
        self.rings: dict[str, Any] = {}
        self.notes: list[str] = []
        self.cpu_mapping: dict[int, int] = {}
        self.oversubscribe = oversubscribe
        self.environ = {**os.environ, **({route_keys.KEYS_ENV: os.path.abspath(keys_dir)} if keys_dir else {})}
        self.metrics = endpoint(self.plan.nodes[node].metrics, metrics_port, metrics_address) if metrics else None
        self.server: MetricsServer | None = None
        self.phase = "starting"
        self.heartbeat = time.monotonic()
        self.reload_requested = False
        self.generations: dict[str, int] = {}
        self.reloads: list[dict[str, Any]] = []
        self.env: dict[str, str] = {}
        self.report_dir = ""

    def say(self, line: str) -> None:
        """Write one progress line."""
        print(f"flowc launch [{self.node}]: {line}", file=self.log, flush=True)

    def run(self) -> dict[str, Any]:
        """Run the node and return the report.

        Returns:
            The report (see :func:`flowc.runtime.report.build_report`).

        Raises:
            LaunchError: When the node cannot start, or an actor failed too often.
        """
        self._check_keys()
        try:
            self.cpu_mapping = cpu_map(self.plan.nodes[self.node].cpus_asked, os.sched_getaffinity(0),
                                       self.oversubscribe)
        except ValueError as exc:
            raise LaunchError(str(exc)) from exc
        if len(set(self.cpu_mapping.values())) < len(self.cpu_mapping):
            self.notes.append("oversubscribed: some actors share a core (--oversubscribe)")
            self.say("warning: " + self.notes[-1])
        if any(k != v for k, v in self.cpu_mapping.items()):
            self.say("cpus mapped onto the allowed set: " + ", ".join(f"{k}->{v}" for k, v in self.cpu_mapping.items()))
        self.notes.append(Numa().describe())
        self.say(self.notes[-1])
        # The lock comes first: a launcher that loses it has created nothing and removes nothing.
        segments.hold(self.layout)
        try:
            self._open_metrics()
        except MetricsError as exc:
            segments.release(self.layout)
            raise LaunchError(str(exc)) from None
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hangup)
        created = False
        failure: str | None = None
        try:
            removed = segments.reclaim(self.layout)
            if removed:
                self.say(f"reclaimed {len(removed)} segment(s) a previous run left behind")
            report_dir = self.report_dir = segments.make_report_dir(self.layout)
            created = True
            self.rings = segments.create(self.layout)
            self.replan_children(keep=[])
            self.env = {**self.environ, "FLOWC_NODE": self.node, "FLOWC_REPORT_DIR": report_dir}
            self.start_in_stages(self.children)
            self.say(f"running {len(self.children)} process(es) on {len(self.rings)} channel(s)")
            self.phase = "running"
            failure = self._supervise()
            self.phase = "stopping"
            self._stop_in_order()
            return build_report(self, report_dir, failure)
        finally:
            for child in self.children:
                child.signal(signal.SIGKILL)
                if child.running:
                    child.proc.wait()
            try:
                if created:
                    segments.remove(self.layout, self.rings)
                    segments.remove_report_dir(self.layout)
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
                self._close_metrics()
                reload.forget(self.layout)
                segments.release(self.layout)

    def _open_metrics(self) -> None:
        """Bind the metrics endpoint (before anything is created: a taken port changes nothing) and serve it."""
        if self.metrics is None:
            return
        self.reader = NodeReader(self.layout)
        self.collector = NodeCollector(self.reader, lambda: [c.state() for c in list(self.children)])
        self.server = MetricsServer(self.metrics.address, self.metrics.port, self.collector, self._live,
                                    self._ready)
        self.server.start()
        self.say(f"metrics on http://{self.metrics.address}:{self.server.port}/metrics (/healthz, /readyz)")

    def _close_metrics(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.reader.close()
            self.server = None

    def _live(self) -> tuple[bool, dict[str, Any]]:
        """``/healthz``: the launcher is alive and its supervising loop comes round."""
        stalled = time.monotonic() - self.heartbeat
        ok = stalled < STALL_S and self.phase != "stopping"
        return ok, {"node": self.node, "phase": self.phase, "ok": ok,
                    **({} if ok else {"why": "stopping" if self.phase == "stopping" else
                                      f"the supervising loop has not run for {stalled:.1f} s"})}

    def _ready(self) -> tuple[bool, dict[str, Any]]:
        """``/readyz``: every channel exists, every process runs and every route is connected."""
        not_ready: list[str] = []
        if self.phase != "running":
            not_ready.append(f"the launcher is {self.phase}")
        missing = sorted(set(self.layout.rings) - set(self.rings))
        not_ready += [f"channel '{name}' is not created" for name in missing]
        for child in list(self.children):
            process = child.state()
            if process.state != "running":
                code = "" if process.last_exit_code is None else f", last exit code {process.last_exit_code}"
                not_ready.append(f"'{child.key}' is {process.state} ({process.restarts} restart(s){code})")
        for leg in self.collector.state().routes:
            if not leg.connected:
                towards = f"to '{leg.peer}'" if leg.direction == "out" else f"from '{leg.peer}'"
                not_ready.append(f"route '{leg.route}' ({leg.direction}, {towards}) is not connected")
        return not not_ready, {"node": self.node, "ready": not not_ready, "not_ready": not_ready}

    def _check_keys(self) -> None:
        """Every route that authenticates has its keys, before anything starts (a bridge would only retry)."""
        legs = [b for b in self.layout.bridges if b.auth == "curve"]
        if not legs:
            return
        directory = route_keys.keys_directory(self.node, self.environ)
        if directory is None:
            raise LaunchError(f"route '{legs[0].route}' authenticates its peers and no keys were given: pass --keys "
                              f"DIR (the folder 'flowc keys generate' wrote) or set {route_keys.KEYS_ENV}")
        for bridge in legs:
            try:
                route_keys.load(directory, self.node, bridge.peer_node)
            except route_keys.RouteKeyError as exc:
                raise LaunchError(f"route '{bridge.route}': {exc}") from None

    def _on_signal(self, _signum: int, _frame: Any) -> None:
        self.stop_requested = True

    def _on_hangup(self, _signum: int, _frame: Any) -> None:
        self.reload_requested = True

    def _reload(self) -> None:
        """Apply the plan ``flowc reload`` named (or the plan file again) and answer (:mod:`flowc.runtime.reload`)."""
        self.reload_requested = False
        plan_path, request = reload.take_request(self)
        self.say(f"reloading {plan_path}")
        outcome = reload.Reload(self, plan_path).run()
        outcome.request = request
        if not outcome.applied:
            self.say(f"reload refused, nothing changed: {outcome.why}")
        else:
            for line in outcome.changes or ["nothing to change"]:
                self.say(f"reload: {line}")
            for problem in outcome.problems:
                self.say(f"reload: warning: {problem}")
        self.reloads.append(outcome.as_dict())
        reload.answer(self, outcome)

    def adopt(self, plan_path: str, plan: Any, layout: NodeView, mapping: dict[int, int],
              generations: dict[str, int]) -> None:
        """Make a reloaded plan the running one (its rings exist; its new processes are not started yet)."""
        self.plan_path, self.plan, self.layout, self.cpu_mapping = plan_path, plan, layout, mapping
        self.generations = generations
        self.env = {k: v for k, v in self.env.items() if k != GENERATIONS_ENV} | reload.generations_env(generations)
        if self.server is not None:
            with self.collector.lock:
                self.reader.close()
                self.reader = self.collector.reader = NodeReader(layout)

    def replan_children(self, keep: list[Child]) -> list[Child]:
        """Make the list of processes the running plan asks for; return those that must (re)start.

        Args:
            keep: Processes that go on as they are (a reload leaves them untouched).

        Returns:
            The processes to start: new ones, and the earlier objects of processes a reload stopped (so their
            counters go on).
        """
        info = self.plan.nodes[self.node]
        base = [sys.executable, "-m", "flowc"]
        earlier = {c.key: c for c in self.children}
        kept = {c.key for c in keep}
        wanted: list[Child] = []
        for name, actor in sorted(info.actors.items()):
            cpus = [self.cpu_mapping[c] for c in actor.cpus]
            argv = [*base, "run-actor", self.plan_path, "--node", self.node, "--actor", name]
            wanted.append(Child(name, argv, actor.role, info.start_stages.get(name, 0), cpus,
                                writes=list(actor.outputs)))
        # Bridges share the node's bridge_cpus when it names them; otherwise they are not pinned.
        bridge_cpus = sorted({self.cpu_mapping[c] for c in info.bridge_cpus})
        for bridge in self.layout.bridges:
            key = bridge.key
            argv = [*base, "run-bridge", self.plan_path, "--node", self.node, "--route", bridge.route,
                    "--direction", bridge.direction, "--index", str(bridge.index)]
            role = "producer" if bridge.direction == "in" else "consumer"
            wanted.append(Child(key, argv, role, bridge.stage, bridge_cpus or None,
                                writes=[bridge.channel] if role == "producer" else []))
        children, starting = [], []
        for child in wanted:
            if child.key in kept:
                children.append(earlier[child.key])
                continue
            if child.key in earlier:  # the same process again: its counters go on
                old = earlier[child.key]
                old.argv, old.role, old.stage, old.cpus, old.writes = (child.argv, child.role, child.stage,
                                                                       child.cpus, child.writes)
                child = old
            children.append(child)
            starting.append(child)
        self.children = children
        return starting

    def start_in_stages(self, starting: list[Child]) -> None:
        """Start ``starting`` stage by stage, each once the one before is ready (:mod:`flowc.runtime.readiness`)."""
        env, report_dir = self.env, self.report_dir
        stages: dict[int, list[Child]] = {}
        for child in sorted(starting, key=lambda c: (c.stage, c.key)):
            stages.setdefault(child.stage, []).append(child)
        for stage, children in sorted(stages.items()):
            for child in children:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(ready_file(report_dir, child.key))  # a reloaded process says it again
                child.start(env)
            if stage == max(stages):
                break
            give_up = time.monotonic() + READY_TIMEOUT_S
            waiting = list(children)
            while waiting and not self.stop_requested:
                self.heartbeat = time.monotonic()
                waiting = [c for c in waiting if not os.path.exists(ready_file(report_dir, c.key)) and not c.exited()]
                if waiting and time.monotonic() >= give_up:
                    self.say(f"not ready after {READY_TIMEOUT_S:g} s: {', '.join(c.key for c in waiting)}; "
                             "starting the next stage anyway")
                    break
                time.sleep(0.005)

    def _supervise(self) -> str | None:
        deadline = time.monotonic() + self.duration if self.duration is not None else None
        while not self.stop_requested and (deadline is None or time.monotonic() < deadline):
            if self.reload_requested:
                self._reload()
            now = self.heartbeat = time.monotonic()
            for child in self.children:
                if child.reap():
                    if child.exit_code == 0:
                        child.finished = True
                        self._close_finished_writers()
                        continue
                    child.failures += 1
                    if child.failures > MAX_FAILURES:
                        return f"'{child.key}' failed {child.failures} times (last exit code {child.exit_code})"
                    delay = min(BACKOFF_MAX_S, BACKOFF_START_S * 2 ** (child.failures - 1))
                    self.say(f"'{child.key}' exited with {child.exit_code}; restarting in {delay:.1f} s")
                    child.restart_at = now + delay
                if child.restart_at is not None and now >= child.restart_at:
                    child.restart_at = None
                    child.restarts += 1
                    child.start(self.env)
            if self.children and all(c.finished for c in self.children):
                break
            time.sleep(0.02)
        return None

    def _close_finished_writers(self) -> None:
        """Close every ring whose writers have all finished, so its readers drain and finish."""
        for channel, ring in self.rings.items():
            writers = [c for c in self.children if channel in c.writes]
            if writers and all(not c.running and c.restart_at is None for c in writers) and not ring.closed:
                ring.close_writers()
                ring.wake_all()

    def _stop_in_order(self) -> None:
        for child in self.children:
            child.restart_at = None
        for child in self.children:
            if child.role == "producer":
                child.signal(signal.SIGTERM)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and any(c.running for c in self.children):
            for child in self.children:
                child.reap()
            self._close_finished_writers()
            time.sleep(0.02)
        for signum, wait in ((signal.SIGTERM, KILL_TIMEOUT_S), (signal.SIGKILL, KILL_TIMEOUT_S)):
            if not any(c.running for c in self.children):
                break
            for child in self.children:
                child.signal(signum)
            end = time.monotonic() + wait
            while time.monotonic() < end and any(c.running for c in self.children):
                for child in self.children:
                    child.reap()
                time.sleep(0.02)
