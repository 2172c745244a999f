"""Reload: a running launcher applies a new plan by changing only what differs (:mod:`flowc.model.plan_diff`).

Asked by SIGHUP (the launcher re-reads its plan file) or by ``flowc reload PLAN --node NODE`` (which names the new
plan in ``<prefix>.reload``, sends SIGHUP to the process holding the node's lock and waits for
``<prefix>.reload-result``). The new plan is checked first: it must load, hold the node, come from the same
document name (which names the node's shared memory), fit the CPUs the launcher may use and have the keys of its
authenticated routes; otherwise nothing changes and the result says why. Then, in this order:

1. rings of added channels, and the new rings of replaced channels (the next generation of the name, see
   :func:`~flowc.model.node_view.ring_name`), are created;
2. every process that writes into a replaced or removed channel and reads none stops: producers and route legs
   with SIGTERM, transformers with SIGUSR2 (they hand over: they take no further message from their inputs, which
   keep the rest for their successors);
3. each replaced or removed channel's old ring is closed to writers once every process writing it has exited
   (upstream first), so its readers drain it and finish on their own;
4. the other processes that restart (their command, params, CPUs or NUMA node changed, or a route leg changed)
   stop the same way; a consumer's cursor lives in the ring, so its successor goes on from the first message it
   did not read;
5. the old rings of replaced and removed channels are removed;
6. added and restarted processes start, stage by stage, consumers before producers (each stage once the one before
   is ready).

Untouched processes keep running (same PIDs). Messages are neither lost nor repeated: a replaced channel is drained
to its readers before they move to the new ring, and writers only write into the new ring once the old one is
closed, so each producer's order is kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowc.diagnostics import UserError
from flowc.model.node_view import GENERATIONS_ENV, NodeView, shm_path
from flowc.model.plan_diff import NodeDiff, diff_node
from flowc.runtime import route_keys, segments
from flowc.runtime.actor_main import PlanError, load_node
from flowc.runtime.stop import HANDOVER_SIGNAL
from flowc.runtime.system import cpu_map

if TYPE_CHECKING:
    from flowc.runtime.launcher import Child, Launcher

#: Longest a reload waits for a stopping process (then it is killed, and the result says so).
STOP_TIMEOUT_S = 10.0
#: Longest ``flowc reload`` waits for the launcher's answer.
ANSWER_TIMEOUT_S = 120.0


class ReloadError(UserError):
    """``flowc reload`` could not ask, or got no answer."""


def request_path(layout: NodeView) -> str:
    """Where ``flowc reload`` names the new plan for the node's launcher."""
    return shm_path(f"{layout.prefix}.reload")


def result_path(layout: NodeView) -> str:
    """Where the launcher answers a reload."""
    return shm_path(f"{layout.prefix}.reload-result")


@dataclass
class Outcome:
    """What a reload did.

    Attributes:
        applied: Whether the new plan now runs (``False``: nothing changed, see ``why``).
        plan: The plan file.
        why: Why it was refused.
        changes: The change lines applied (:meth:`~flowc.model.plan_diff.Change.line`).
        untouched: Processes left running, with their PIDs.
        problems: What went wrong while applying (a process that had to be killed).
        seconds: How long applying took.
        request: The id of the ``flowc reload`` request answered (empty for SIGHUP).
    """

    applied: bool
    plan: str
    why: str = ""
    changes: list[str] = field(default_factory=list)
    untouched: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    request: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {"applied": self.applied, "plan": self.plan, "why": self.why, "changes": self.changes,
                "untouched": self.untouched, "problems": self.problems, "seconds": round(self.seconds, 3),
                "request": self.request}


def take_request(launcher: Launcher) -> tuple[str, str]:
    """The plan a reload should apply and the request's id: what ``flowc reload`` asked, else the plan file.

    The request file is read only when it is the user's own private regular file (it lives in ``/dev/shm``).
    """
    path = request_path(launcher.layout)
    try:
        fd = segments.open_private(path, os.O_RDONLY)
    except (FileNotFoundError, UserError):
        return launcher.plan_path, ""
    try:
        data = os.read(fd, 65536)
    finally:
        os.close(fd)
        os.unlink(path)
    try:
        request = json.loads(data)
        return str(request["plan"]), str(request["id"])
    except (ValueError, KeyError, TypeError):
        return launcher.plan_path, ""


def answer(launcher: Launcher, outcome: Outcome) -> None:
    """Write the outcome where ``flowc reload`` waits for it (written beside and renamed in)."""
    path = result_path(launcher.layout)
    temporary = f"{path}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(outcome.as_dict(), sort_keys=True).encode())
    finally:
        os.close(fd)
    os.replace(temporary, path)


def ask(plan_path: str, node: str, timeout_s: float = ANSWER_TIMEOUT_S) -> dict[str, Any]:
    """Ask the launcher running ``node`` to apply ``plan_path`` and wait for its answer (``flowc reload``).

    Raises:
        ReloadError: No launcher runs the node, or it did not answer in time.
        PlanError: The plan cannot be read here (the launcher is then not asked).
    """
    layout = NodeView.of(load_node(plan_path, node), node)
    pid = segments.holder(layout)
    if pid is None:
        raise ReloadError(f"no launcher runs node '{node}' of this plan (nobody holds {layout.lock}); start it with "
                          f"'flowc launch {plan_path} --node {node}'")
    ident = secrets.token_hex(8)
    body = json.dumps({"plan": os.path.abspath(plan_path), "id": ident}).encode()
    temporary = f"{request_path(layout)}.{ident}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, body)
    finally:
        os.close(fd)
    os.replace(temporary, request_path(layout))
    os.kill(pid, signal.SIGHUP)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            with open(result_path(layout), encoding="utf-8") as handle:
                result = json.load(handle)
        except (OSError, ValueError):
            result = None
        if isinstance(result, dict) and result.get("request") == ident:
            with contextlib.suppress(OSError):
                os.unlink(result_path(layout))
            return result
        time.sleep(0.02)
    raise ReloadError(f"launcher {pid} of node '{node}' did not answer within {timeout_s:g} s")


class Reload:
    """One reload of a running launcher (its supervising loop waits meanwhile)."""

    def __init__(self, launcher: Launcher, plan_path: str) -> None:
        """Prepare to apply ``plan_path`` to ``launcher``."""
        self.launcher = launcher
        self.plan_path = os.path.abspath(plan_path)
        self.problems: list[str] = []

    def run(self) -> Outcome:
        """Check the new plan, then apply the difference; never raises for a bad plan (the outcome says why)."""
        start = time.monotonic()
        launcher = self.launcher
        try:
            new_plan, diff, mapping = self._check()
        except (PlanError, UserError, ValueError) as exc:
            return Outcome(False, self.plan_path, why=str(exc))
        if diff.status == "unchanged":
            launcher.plan_path = self.plan_path
            return Outcome(True, self.plan_path, untouched=self._pids(list(launcher.children)),
                           seconds=time.monotonic() - start)
        untouched = self._apply(new_plan, diff, mapping)
        return Outcome(True, self.plan_path, changes=[c.line() for c in diff.changes],
                       untouched=self._pids([c for c in launcher.children if c.key in untouched]),
                       problems=self.problems, seconds=time.monotonic() - start)

    @staticmethod
    def _pids(children: list[Child]) -> dict[str, int]:
        return {c.key: c.proc.pid for c in children if c.running}

    def _check(self) -> tuple[Any, NodeDiff, dict[int, int]]:
        launcher, node = self.launcher, self.launcher.node
        new_plan = load_node(self.plan_path, node)
        if new_plan.source != launcher.plan.source:
            raise UserError(f"the new plan was built from '{new_plan.source}' and node '{node}' runs "
                            f"'{launcher.plan.source}': build the same document (its name names the node's "
                            "shared memory)")
        diff = diff_node(launcher.plan, new_plan, node)
        mapping = cpu_map(new_plan.nodes[node].cpus_asked, os.sched_getaffinity(0), launcher.oversubscribe)
        directory = route_keys.keys_directory(node, launcher.environ)
        for bridge in NodeView.of(new_plan, node).bridges:
            if bridge.auth != "curve":
                continue
            if directory is None:
                raise UserError(f"route '{bridge.route}' authenticates its peers and this launcher has no keys")
            try:
                route_keys.load(directory, node, bridge.peer_node)
            except route_keys.RouteKeyError as exc:
                raise UserError(f"route '{bridge.route}': {exc}") from None
        return new_plan, diff, mapping

    def _apply(self, new_plan: Any, diff: NodeDiff, mapping: dict[int, int]) -> set[str]:
        """Apply ``diff``; return the keys of the processes it left running untouched."""
        launcher, node = self.launcher, self.launcher.node
        old_layout = launcher.layout
        replaced = {c.name for c in diff.changes if c.kind == "channel" and c.action == "replace"}
        removed = {c.name for c in diff.changes if c.kind == "channel" and c.action == "remove"}
        added = {c.name for c in diff.changes if c.kind == "channel" and c.action == "add"}
        generations = dict(launcher.generations)
        for channel in replaced:
            generations[channel] = generations.get(channel, 0) + 1
        for channel in removed:
            generations.pop(channel, None)
        new_layout = NodeView.of(new_plan, node, {c: g for c, g in generations.items() if g})
        # 1. the new rings
        created = segments.create(new_layout, only=added | replaced)
        # which processes go: by their keys in the running layout
        affected_actors = {c.name for c in diff.changes if c.kind == "actor" and c.action in ("remove", "restart")}
        legs = {c.name for c in diff.changes if c.kind == "route" and c.action in ("remove", "restart")}
        going = [c for c in launcher.children if c.key in affected_actors or _leg_of(old_layout, c.key) in legs]
        closing = replaced | removed
        reads = {c.key: set(_reads(launcher, old_layout, c)) for c in going}
        readers = [c for c in going if reads[c.key] & closing]
        writers = [c for c in going if c not in readers and set(c.writes) & closing]
        others = [c for c in going if c not in readers and c not in writers]
        for child in going:
            child.reloading = True  # their exits are not failures, and close no ring
        # 2. what writes into a closing ring and reads none stops; 3. each closing ring closes once its writers are
        # gone (upstream first), and its readers drain it and finish
        self._stop_group(writers, reads)
        self._drain(sorted(closing), readers)
        # 4. the others restart
        self._stop_group(others, reads)
        # 5. the old rings go
        segments.retire(old_layout, {old_layout.rings[ch].name: launcher.rings.pop(ch) for ch in sorted(closing)})
        # 6. the new plan takes over, and what it adds or changed starts
        launcher.adopt(self.plan_path, new_plan, new_layout, mapping, generations)
        launcher.rings.update(created)
        starting = launcher.replan_children(keep=[c for c in launcher.children if c not in going])
        launcher.start_in_stages(starting)
        return {c.key for c in launcher.children if c not in starting}

    def _stop_group(self, children: list[Child], reads: dict[str, set[str]]) -> None:
        """Stop ``children``: actors that read hand over (SIGUSR2), the others stop (SIGTERM)."""
        handing = [c for c in children if reads[c.key] and not c.key.startswith("route:")]
        self._stop(handing, HANDOVER_SIGNAL)
        self._stop([c for c in children if c not in handing], signal.SIGTERM)

    def _drain(self, closing: list[str], readers: list[Child]) -> None:
        """Close each closing ring once every process writing it has exited; wait for ``readers`` to finish."""
        launcher = self.launcher
        open_rings = list(closing)
        end = time.monotonic() + STOP_TIMEOUT_S
        while (open_rings or any(c.running for c in readers)) and time.monotonic() < end:
            for child in readers:
                child.reap()
            for channel in list(open_rings):
                if not any(c.running for c in launcher.children if channel in c.writes):
                    ring = launcher.rings[channel]
                    ring.close_writers()
                    ring.wake_all()
                    open_rings.remove(channel)
            time.sleep(0.005)
        for channel in open_rings:
            self.problems.append(f"channel '{channel}' was closed while a process still wrote into it")
            launcher.rings[channel].close_writers()
            launcher.rings[channel].wake_all()
        self._stop(readers, None)

    def _stop(self, children: list[Child], signum: int | None) -> None:
        """Stop ``children`` (``signum`` first, or wait for them to finish by themselves) and collect them."""
        if signum is not None:
            for child in children:
                child.signal(signum)
        end = time.monotonic() + STOP_TIMEOUT_S
        while any(c.running for c in children) and time.monotonic() < end:
            for child in children:
                child.reap()
            time.sleep(0.005)
        for child in children:
            if child.running:
                self.problems.append(f"'{child.key}' did not stop within {STOP_TIMEOUT_S:g} s and was killed")
                child.signal(signal.SIGKILL)
                while not child.reap():
                    time.sleep(0.005)


def _leg_of(layout: NodeView, key: str) -> str | None:
    """The route leg name (as :mod:`flowc.model.plan_diff` names it) of a bridge child's key, else ``None``."""
    return next((bridge.leg for bridge in layout.bridges if bridge.key == key), None)


def _reads(launcher: Launcher, layout: NodeView, child: Child) -> list[str]:
    """The channels a child reads from in the running layout."""
    actor = launcher.plan.nodes[launcher.node].actors.get(child.key)
    if actor is not None:
        return list(actor.inputs)
    return [b.channel for b in layout.bridges if b.direction == "out" and child.key == b.key]


def generations_env(generations: dict[str, int]) -> dict[str, str]:
    """The environment that tells a child which ring generations are current (empty when none was replaced)."""
    current = {channel: g for channel, g in sorted(generations.items()) if g}
    return {GENERATIONS_ENV: json.dumps(current)} if current else {}


def forget(layout: NodeView) -> None:
    """Remove a node's reload request and answer files (the launcher does, as it stops)."""
    for path in (request_path(layout), result_path(layout)):
        with contextlib.suppress(OSError):
            os.unlink(path)
