"""Hatchling build hook: compile the ``flowc.runtime._ring`` C extension with the system C compiler.

The extension is ``_ring.c``, the CPython wrapper, which includes ``flowc_ring.c`` (the ring library C actors
compile too, declared in ``include/flowc_ring.h``) so that it stays one translation unit. A standard wheel gets the
shared object at ``flowc/runtime/_ring<EXT_SUFFIX>`` and a platform tag; an editable install builds it next to
``_ring.c`` so the source tree imports it (the file is git-ignored). The header and the library's sources ship in the
wheel as package data, for ``flowc ring-include``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("compiler/flowc/runtime/_ring.c")


def compile_extension(source: Path, target: Path) -> None:
    """Compile ``source`` (which includes the ring library beside it) into the CPython extension module ``target``.

    Args:
        source: The wrapper's C file.
        target: Output path, ending in the interpreter's ``EXT_SUFFIX``.

    Raises:
        RuntimeError: No C compiler, or the compile failed.
    """
    compiler = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise RuntimeError("flowc needs a C compiler (gcc) to build flowc.runtime._ring")
    # Hidden visibility keeps the library's flowc_* symbols private to the extension (only PyInit__ring is
    # exported), so they cannot clash with another copy of the library loaded in the same process.
    cmd = [compiler, "-O2", "-g0", "-Wall", "-shared", "-fPIC", "-std=gnu11", "-fvisibility=hidden", "-pthread",
           f"-I{sysconfig.get_paths()['include']}", str(source), "-o", str(target)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"compiling {source} failed:\n{' '.join(cmd)}\n{proc.stderr}")


class CustomBuildHook(BuildHookInterface):
    """Builds the ring extension for wheel and editable targets."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile the extension and tell hatchling the wheel is platform-specific.

        Args:
            version: ``standard`` or ``editable``.
            build_data: Hatchling's mutable build data.
        """
        if self.target_name != "wheel":
            return
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        source = Path(self.root) / SOURCE
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version == "editable":
            compile_extension(source, source.with_name(f"_ring{suffix}"))
            return
        # A temporary directory keeps standard builds from touching the source tree.
        self._tmp = tempfile.mkdtemp(prefix="flowc-build-")
        target = Path(self._tmp) / f"_ring{suffix}"
        compile_extension(source, target)
        build_data["force_include"][str(target)] = f"flowc/runtime/_ring{suffix}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        """Remove the temporary build directory.

        Args:
            version: ``standard`` or ``editable``.
            build_data: Hatchling's build data.
            artifact_path: The built wheel.
        """
        tmp = getattr(self, "_tmp", None)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
