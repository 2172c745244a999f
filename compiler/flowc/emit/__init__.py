"""The back end: each target turns a :class:`~flowc.model.plan.Plan` into artifacts (relative path → bytes).

:mod:`.registry` lists the targets; each is a module or package here (``plan_json``, ``kubernetes``, ``systemd``,
``mithril``, ``graph``) exposing ``Settings`` and ``emit``. :mod:`.writer` writes artifacts atomically. Paths at the
top level of the output directory are reserved for Kubernetes objects, so ``kubectl apply -f out/`` works; every
other target writes under its own subfolder.
"""
