"""flowc: a declarative config compiler for rented compute and pinned distributed data paths.

The library entry points are :func:`flowc.pipeline.compile_source` and
:func:`flowc.pipeline.compile_file`; the command line lives in :mod:`flowc.cli`.
"""

__version__ = "0.1.0"
