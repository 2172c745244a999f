"""The compiler passes, one module each; :mod:`flowc.pipeline` is the only place that orders them."""
