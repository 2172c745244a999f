"""The bids a Mithril command works on: read from a build's output folder, or built in memory from a document.

``flowc submit out/`` reads ``out/mithril/<task>.json`` (what ``flowc build`` wrote, what was reviewed) and the
tasks' volumes from ``out/flowc/plan.json``; ``flowc submit topology.yaml`` compiles the document first
(errors are its diagnostics, exit 1, and nothing is sent) and keeps its spans, so an answer of the API that
names a field (a 422) can be reported at the line of the document that wrote it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowc.diagnostics import Span, UserError
from flowc.providers.mithril.domain.submission import BuiltBid

PLACEHOLDER = "${MITHRIL_PROJECT}"
#: Where a ``CreateBidRequest`` field comes from in a task of the document.
_FIELD_OF = {"limit_price": "max_price_per_hour", "instance_quantity": "num_instances",
             "instance_type": "instance_type", "region": "region", "ssh_keys": "ssh_keys", "volumes": "volumes",
             "startup_script": "command", "name": ""}


@dataclass
class BuildInput:
    """The bids of one build and where they came from.

    Attributes:
        origin: The folder or file given.
        bids: One per task (in name order).
        tasks: Task name → the document's task (``ir.Task``, with spans), when built from a document.
        document: The document's path, when built from one.
    """

    origin: str
    bids: list[BuiltBid]
    tasks: dict[str, Any] = field(default_factory=dict)
    document: str | None = None

    def project(self, given: str | None, environ: dict[str, str]) -> str:
        """The project: ``--project``, else ``MITHRIL_PROJECT``, else the one the bids carry.

        Raises:
            UserError: None is known.
        """
        carried = {b.body.get("project") for b in self.bids} - {None, PLACEHOLDER}
        project = given or environ.get("MITHRIL_PROJECT") or (carried.pop() if len(carried) == 1 else None)
        if not project:
            raise UserError("no Mithril project: pass --project, export MITHRIL_PROJECT, or set "
                            "'mithril: {project: ...}' in the document")
        return project

    def where(self, task: str, loc: list[Any]) -> str:
        """Where a field the API names in a 422 was written (``loc`` such as ``["body", "region"]``).

        Returns:
            ``file:line:col`` in the document, or the bid file and the field's JSON path.
        """
        path = [str(p) for p in loc if p != "body"]
        if self.document is not None and task in self.tasks:
            name = next((_FIELD_OF[p] for p in path if p in _FIELD_OF), "")
            index = next((p for p in path if p.isdigit()), None)
            span: Span = self.tasks[task].at(f"{name}[{index}]" if name and index is not None else name)
            return f"{span.path}:{span.line}:{span.col}"
        return f"{Path(self.origin) / 'mithril' / f'{task}.json'}: {'.'.join(path) or 'body'}"


def load(origin: str, project: str | None, tasks: tuple[str, ...]) -> BuildInput:
    """Read the bids of ``origin`` (an output folder or a document), only ``tasks`` when given.

    Raises:
        UserError: Nothing to submit, an unknown task, an unreadable folder, or a document with errors.
    """
    path = Path(origin)
    found = _from_folder(path) if path.is_dir() else _from_document(path, project)
    names = [b.task for b in found.bids]
    unknown = [t for t in tasks if t not in names]
    if unknown:
        raise UserError(f"{origin} has no task {', '.join(repr(t) for t in unknown)} (it has: {', '.join(names)})")
    if tasks:
        found.bids = [b for b in found.bids if b.task in tasks]
    if not found.bids:
        raise UserError(f"{origin} has no Mithril bids: it has no tasks, or was built without the mithril target")
    return found


def _from_folder(out: Path) -> BuildInput:
    from flowc.model.plan import Plan

    try:
        plan = Plan.model_validate(json.loads((out / "flowc" / "plan.json").read_text(encoding="utf-8")))
        bodies = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((out / "mithril").glob("*.json"))}
    except FileNotFoundError as exc:
        raise UserError(f"{out} is not a build output with bids ({exc.filename} is missing); run 'flowc build "
                        f"FILE -o {out}'") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{out} is not a readable build output: {str(exc).splitlines()[0]}") from None
    bids = [BuiltBid(name, body, plan.tasks[name].volumes if name in plan.tasks else ()) for name, body in
            sorted(bodies.items()) if isinstance(body, dict)]
    return BuildInput(str(out), bids)


def _from_document(document: Path, project: str | None) -> BuildInput:
    from flowc.cli.common import emit_diagnostics
    from flowc.model.options import BuildOptions
    from flowc.pipeline import compile_file

    options = BuildOptions(targets=("mithril",), target_options={"mithril": {"project": project}})
    result = compile_file(document, until="artifacts", options=options)
    if result.artifacts is None or any(d.severity == "error" for d in result.diagnostics):
        emit_diagnostics(result.diagnostics, "text", err=True)
        raise UserError(f"{document} has errors; nothing was sent")
    plan = result.values["plan"]
    spec = result.values["spec"]
    bids = []
    for artifact in sorted(result.artifacts, key=lambda a: a.path):
        if artifact.path.startswith("mithril/") and artifact.path.endswith(".json"):
            name = artifact.path.removeprefix("mithril/").removesuffix(".json")
            bids.append(BuiltBid(name, json.loads(artifact.content), plan.tasks[name].volumes))
    return BuildInput(str(document), bids, {t.name: t for t in spec.tasks}, str(document))
