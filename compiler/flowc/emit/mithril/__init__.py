"""The Mithril target: each task's spot bid, the body of ``POST /v2/spot/bids``, with the reasons for each value.

:mod:`.emitter` builds the body, :mod:`.script` the startup script (a jinja2 template), :mod:`.settings` what the
target takes (the document's ``mithril:`` section, ``--project``, and the name resolver of ``--resolve``).
"""
