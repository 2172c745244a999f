"""The jinja2 environment of the text targets: one folder of ``templates/`` each, strict and unescaped.

Templates are for text formats (systemd units, shell scripts); every value a user wrote goes through the
escaping filter the target registers for its format. ``StrictUndefined`` turns a misspelt variable into an
error instead of an empty string.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flowc.data import resource_dir


@functools.cache
def _environments() -> dict[str, Any]:
    return {}


def environment(folder: str, filters: dict[str, Callable[..., str]]) -> Any:
    """Return the jinja2 environment of ``templates/<folder>`` with ``filters`` (made once per folder).

    Args:
        folder: The target's folder under ``templates/``.
        filters: Escaping filters by name.

    Returns:
        A ``jinja2.Environment``.
    """
    made = _environments()
    if folder not in made:
        import jinja2

        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(resource_dir("templates") / folder)),
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
            autoescape=False, auto_reload=False)  # shipped templates do not change: no stat() per render
        env.filters.update(filters)
        made[folder] = env
    return made[folder]


def renderer(env: Any, name: str) -> Callable[[dict[str, Any]], str]:
    """Return a function rendering template ``name`` of ``env`` from one dict of variables, for many renders.

    ``Template.render`` copies the variables into a new context together with the environment's globals on every
    call, which was half the cost of rendering the thousands of units a large plan has. The function passes the
    dict as the context itself (a *shared* context, which jinja2 documents as "the data is passed as is, without
    the globals"); the templates of the text targets use no jinja2 globals, only variables and filters.

    Args:
        env: An environment from :func:`environment`.
        name: The template's file name.

    Returns:
        ``render(variables)``: the text, the same as ``template.render(**variables)``.
    """
    template = env.get_template(name)
    root, new_context = template.root_render_func, template.new_context

    def render(variables: dict[str, Any]) -> str:
        return "".join(root(new_context(variables, shared=True)))

    return render
