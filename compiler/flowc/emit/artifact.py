"""An output file as the emitters produce it: a relative path and its bytes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Artifact:
    """One output file.

    Attributes:
        path: Relative, ``/``-separated path inside the output directory.
        content: The file's bytes.
        executable: Whether the file gets mode 0755 instead of 0644.
    """

    path: str
    content: bytes
    executable: bool = False
