"""Low-level access to the Mithril REST API: HTTP client, error taxonomy, response models and endpoints.

Nothing here is imported by ``flowc check`` or ``flowc --help``; httpx is loaded only by :mod:`.client`.
"""
