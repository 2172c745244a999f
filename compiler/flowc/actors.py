"""The built-in actors under the name documents use: ``run: flowc.actors:<name>``.

The implementation is :mod:`flowc.runtime.actors`; this name is part of the input language (every
document that runs a built-in spells it), so it stays stable while the package is rearranged.
"""

from flowc.runtime.actors import latency_sink, relay, synthetic_producer

__all__ = ["latency_sink", "relay", "synthetic_producer"]
