"""``flowc run-actor``: run one actor of a node with its channels attached.

This is what the launcher, or a systemd unit per actor, starts for each actor.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import sys

from flowc.diagnostics import UserError
from flowc.model.node_view import GENERATIONS_ENV, NodeView
from flowc.model.plan import NodeSlice, UnknownNode
from flowc.runtime import CHANNELS_ENV, install_stop_handler
from flowc.runtime.readiness import signal_ready
from flowc.runtime.system import Numa


class ActorError(UserError):
    """The actor cannot be started (unknown actor, nothing to run, bad callable)."""


class PlanError(UserError):
    """The file is not a plan ``flowc build`` wrote (or a node slice of one), or lacks the node asked for."""


def load_node(path: str, node: str) -> NodeSlice:
    """Read ``node``'s slice from a plan (or a node slice of one) written by ``flowc build``.

    Args:
        path: The plan file.
        node: The node to run.

    Returns:
        The node's slice: all a launcher, an actor or a bridge reads.

    Raises:
        PlanError: When the file cannot be read, is not a flowc plan, or has no such node.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return NodeSlice.load(handle.read(), node)
    except UnknownNode as exc:
        raise PlanError(str(exc).replace("the plan", path, 1)) from exc
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PlanError(f"{path} is not a flowc plan ({_reason(exc)}); build one with 'flowc build FILE -o DIR'") \
            from exc


def _reason(exc: BaseException) -> str:
    """The first problem of ``exc`` on one line; for pydantic's errors, the field and what is wrong with it."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {first.get('msg', '')}" if where else str(first.get("msg", ""))
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def child_layout(plan: NodeSlice, node: str) -> NodeView:
    """The layout a launcher's child sees: the plan's, with the ring generations a reload gave it.

    The launcher passes them in :data:`~flowc.model.node_view.GENERATIONS_ENV`; anything there that is not a JSON
    object of channel → non-negative integer is ignored (the child then sees the plan's first rings).
    """
    try:
        given = json.loads(os.environ.get(GENERATIONS_ENV, "{}"))
    except ValueError:
        given = {}
    generations = {k: v for k, v in given.items() if isinstance(k, str) and type(v) is int and 0 <= v < 1 << 31} \
        if isinstance(given, dict) else {}
    return NodeView.of(plan, node, generations)


def run_actor(plan_path: str, node: str, actor: str) -> int:
    """Run ``actor`` in this process: call its ``run`` callable, or exec its ``command``.

    Args:
        plan_path: The plan file.
        node: The node the actor is placed on.
        actor: The actor.

    Returns:
        The exit code (a ``command`` actor replaces this process and never returns).

    Raises:
        ActorError: When the actor cannot be started.
    """
    plan = load_node(plan_path, node)
    if actor not in plan.nodes[node].actors:
        raise ActorError(f"no actor '{actor}' on node '{node}' in {plan_path}")
    layout = child_layout(plan, node)
    info = plan.nodes[node].actors[actor]
    Numa().bind(info.numa)
    os.environ.update({"FLOWC_ACTOR": actor, "FLOWC_NODE": node, CHANNELS_ENV: json.dumps(layout.actor_io[actor])})
    os.environ.update(info.env)
    if info.run:
        module_name, _, function = info.run.partition(":")
        try:
            target = getattr(importlib.import_module(module_name), function)
        except (ImportError, AttributeError) as exc:
            raise ActorError(f"actor '{actor}': cannot load '{info.run}': {exc}") from exc
        install_stop_handler()
        from flowc.runtime.channels import attach
        from flowc.runtime.ring import RingError

        try:
            inputs, outputs = attach(layout.actor_io[actor])
            signal_ready()
            target(inputs, outputs, dict(info.params))
        except RingError as exc:
            # A broken or hostile segment is a failure of the node's data, not a bug in flowc: exit 1 with why.
            raise ActorError(f"actor '{actor}': a channel is unusable: {exc}") from exc
        return 0
    if info.command:
        argv = shlex.split(info.command) if isinstance(info.command, str) else list(info.command)
        sys.stdout.flush()
        signal_ready()  # its channels are in the environment; the program attaches them itself
        os.execvp(argv[0], argv)
    raise ActorError(f"actor '{actor}' has neither 'run' nor 'command'")
