"""Names other systems must accept: the DNS-1123 label (Kubernetes names, namespaces, label values)."""

from __future__ import annotations

import re

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def is_dns_label(name: str) -> bool:
    r"""Whether ``name`` is a DNS-1123 label: at most 63 lowercase letters, digits and ``-``, alphanumeric at both ends.

    Example:
        >>> is_dns_label("data-node"), is_dns_label("node-"), is_dns_label("a" * 64), is_dns_label("a\n")
        (True, False, False, False)
    """
    return _DNS_LABEL.fullmatch(name) is not None
