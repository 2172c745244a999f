"""Validate Kubernetes objects against kubernetes-validate's bundled strict schemas.

One validator is cached per (version, kind): the library itself re-reads its 1.8 MB definitions per
document.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema
from referencing import Registry, Resource

VERSIONS = ("1.29.0", "1.33.0")


@functools.cache
def _validator(version: str, kind: str, api_version: str) -> jsonschema.Draft202012Validator:
    root = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{version}-local-strict"
    group = api_version.replace("/", "-") if "/" in api_version else api_version
    schema = json.loads((root / f"{kind.lower()}-{group}.json").read_text())
    definitions = json.loads((root / "_definitions.json").read_text())
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def errors(obj: dict[str, Any], version: str) -> list[str]:
    """Every schema violation of ``obj`` under Kubernetes ``version`` (strict: unknown fields fail)."""
    validator = _validator(version, obj["kind"], obj["apiVersion"])
    return [f"{obj['kind']}/{obj['metadata']['name']} {'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(obj)]
