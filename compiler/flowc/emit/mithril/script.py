"""The startup script of a task's instances: cluster found, volumes mounted, command run in its image, output logged.

The script gives the command the environment the Kubernetes Job gives it: the task's env plus
:data:`CLUSTER_ENV`, read from the instances Mithril lists in ``/etc/hosts`` (the last one is the head, rank 0).
It stops before starting anything when that list does not hold the task's ``num_instances`` or this host, or when
a volume is missing. What the command prints goes to :func:`log_path` and to the script's own output, and the
script exits with the command's status.

Rendered from ``templates/mithril/startup.sh.j2``; every value a user wrote goes through ``shell_quote``
(:func:`shlex.quote`), and what stands in a comment also through ``comment_text``, so no file name can end the
comment and run as a command. Past :data:`PLAIN_LIMIT` characters the script is sent as a gzip+base64 self-extracting
script checked by SHA-256 (:func:`compress_script`).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import shlex

from flowc.emit.templates import environment
from flowc.model.plan import TaskPlan

#: Mithril takes startup scripts of up to this many characters.
SCRIPT_LIMIT = 10_000
#: Scripts up to this size go as they are; the margin keeps room for the API's own wrapping.
PLAIN_LIMIT = 9_500
#: Where the script writes each task's output on the instance (``FLOWC_LOG_DIR`` overrides it at run time).
LOG_DIR = "/var/log/flowc"
#: The rendezvous port, the Kubernetes Job's ``MASTER_PORT`` too.
MASTER_PORT = 29500
#: What the script tells the command about its cluster; flowc sets these, a task env value of the same name is
#: dropped (as in the Kubernetes Job).
CLUSTER_ENV = ("NUM_NODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "HEAD_NODE_IP", "GPU_COUNT")


def log_path(task: str) -> str:
    """The file on each instance that holds what ``task``'s command printed.

    Args:
        task: The task's name.

    Returns:
        An absolute path under :data:`LOG_DIR`.

    Example:
        >>> log_path("trainer")
        '/var/log/flowc/trainer.log'
    """
    return f"{LOG_DIR}/{task}.log"


def comment_text(text: str) -> str:
    r"""Text that cannot leave the shell comment it stands in: every unprintable character becomes ``?``.

    A newline would end the comment and run the rest as root on the instance.

    Example:
        >>> comment_text("t\ntouch PWNED;id #.yaml")
        't?touch PWNED;id #.yaml'
    """
    return "".join(char if char.isprintable() else "?" for char in text)


def render_script(source: str, task: TaskPlan) -> str:
    """The plain startup script of ``task``.

    Args:
        source: The document's file name (named in the script's header).
        task: The task.

    Returns:
        A bash script.
    """
    argv = ["bash", "-c", task.command] if isinstance(task.command, str) else list(task.command or ())
    filters = {"shell_quote": shlex.quote, "comment_text": comment_text}
    template = environment("mithril", filters).get_template("startup.sh.j2")
    env = sorted((key, value) for key, value in task.env.items() if key not in CLUSTER_ENV)
    return template.render(source=source, task=task.name, env=env, image=task.image, argv=argv,
                           num_instances=task.num_instances, volumes=task.volumes, cluster_env=CLUSTER_ENV,
                           master_port=MASTER_PORT, log_dir=LOG_DIR)


def compress_script(script: str) -> str:
    """A self-extracting form of ``script``: gzip + base64, checked against its SHA-256 before it runs.

    Args:
        script: The plain script.

    Returns:
        A bash script that unpacks, checks and runs it.
    """
    payload = base64.b64encode(gzip.compress(script.encode(), mtime=0)).decode()
    digest = hashlib.sha256(script.encode()).hexdigest()
    return ("#!/bin/bash\nset -euo pipefail\n"
            f"payload='{payload}'\n"
            'f="$(mktemp)"\n'
            'printf %s "$payload" | base64 -d | gunzip > "$f"\n'
            f'echo "{digest}  $f" | sha256sum -c --quiet -\n'
            'exec bash "$f"\n')
