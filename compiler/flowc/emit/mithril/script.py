"""The startup script of a task's instances: its env exported and its command run in its image, all quoted.

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
    return template.render(source=source, task=task.name, env=sorted(task.env.items()), image=task.image, argv=argv)


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
