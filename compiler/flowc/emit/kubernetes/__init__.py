"""The Kubernetes target: :mod:`.emitter` builds the objects, :mod:`.names` checks names at check time.

Kept empty so that ``flowc check`` can import the name checks without the emitter's dependencies.
"""
