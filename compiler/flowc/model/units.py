"""Parsing of the two compact notations of the input language: cpusets and byte sizes."""

from __future__ import annotations

import decimal
import math
import re

_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B|B)?\s*\Z")
_FACTORS = {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
MAX_CPU = 4095
MIN_BUFFER = 256
"""Smallest ring a channel gets: the ring needs room for four records of its smallest message."""
MAX_BUFFER = 1 << 40
"""Largest buffer of one channel (1 TiB). The ring's positions are 64-bit and never wrap in practice, so the
real bound is the machine: a ring is one shared-memory mapping, and no machine flowc targets has more memory
than this to give a single channel. A larger value is a typo, and is reported at check time."""
MAX_ENDS = 1024
"""Most producers, and most consumers, one ring supports (``MAX_ENDS`` in ``runtime/_ring.c``); each incoming
route's receiver is a producer and each target of an outgoing route a consumer."""


def parse_cpuset(value: str | list[int]) -> tuple[int, ...]:
    """Parse a CPU list or a cpuset string into sorted, unique CPU ids.

    Args:
        value: ``[0, 1]`` or ``"0-3,8"``.

    Returns:
        The CPU ids in ascending order.

    Raises:
        ValueError: On a reversed range, a repeated id or an id above 4095.

    Example:
        >>> parse_cpuset("0-3, 8")
        (0, 1, 2, 3, 8)
        >>> parse_cpuset([2, 1])
        (1, 2)
    """
    if isinstance(value, list):
        ids = [int(cpu) for cpu in value]
    else:
        ids = []
        for part in value.split(","):
            low, _, high = part.strip().partition("-")
            first, last = int(low), int(high or low)
            if last < first:
                raise ValueError(f"range '{part.strip()}' runs backwards")
            if last > MAX_CPU:
                raise ValueError(f"cpu {last} is above {MAX_CPU}")
            ids.extend(range(first, last + 1))
    if len(set(ids)) != len(ids):
        raise ValueError("a cpu is listed twice")
    return tuple(sorted(ids))


def format_cpuset(cpus: tuple[int, ...] | list[int]) -> str:
    """Write CPU ids in the compact cpuset notation the kernel and systemd use.

    Args:
        cpus: CPU ids.

    Returns:
        The cpuset string.

    Example:
        >>> format_cpuset([0, 1, 2, 3, 8, 10, 11])
        '0-3,8,10-11'
    """
    parts: list[str] = []
    ordered = sorted(set(cpus))
    start = prev = None
    for cpu in [*ordered, None]:
        if prev is not None and cpu == prev + 1:
            prev = cpu
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = cpu
    return ",".join(parts)


def parse_size(value: int | float | str, minimum: int = 1, maximum: int | None = None, what: str = "buffer") -> int:
    """Parse a byte size; every unit is binary (``64MB`` = ``64MiB`` = 67108864).

    Args:
        value: Bytes as an integer, or a string such as ``"64MB"``, ``"512KiB"``, ``"1.5GiB"``.
        minimum: The smallest size accepted.
        maximum: The largest size accepted (``None``: no bound).
        what: What the size is of, for the message of a size below one byte.

    Returns:
        The size in bytes.

    Raises:
        ValueError: When the text is not a size, or the size is outside ``minimum..maximum``.

    Example:
        >>> parse_size("64MB"), parse_size("64MiB"), parse_size(4096)
        (67108864, 67108864, 4096)
        >>> parse_size("2TiB", maximum=MAX_BUFFER)
        Traceback (most recent call last):
        ...
        ValueError: 2TiB is above the limit of 1TiB
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a size")
        size = int(value)
    else:
        match = _SIZE.match(value)
        if match is None:
            raise ValueError(f"'{value}' is not a size")
        number, unit = match.groups()
        # Decimal keeps a long digit string exact and finite; float() would turn 400 digits into inf.
        exact = decimal.Context(prec=len(number) + 16).multiply(decimal.Decimal(number), _FACTORS[(unit or "B")[0]])
        size = int(exact.to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
    if maximum is not None and size > maximum:
        raise ValueError(f"{_short(size)} is above the limit of {format_size(maximum)}")
    if size < 1:
        raise ValueError(f"a {what} needs at least one byte")
    if size < minimum:
        raise ValueError(f"{_short(size)} is below the minimum of {minimum} bytes")
    return size


def _short(size: int) -> str:
    """Write a size for a message; a number of hundreds of digits is described, not printed."""
    if size.bit_length() > 64:
        return f"a {len(str(size)) if size.bit_length() < 14000 else 'many'}-digit size"
    return format_size(size) if size > 0 else f"{size} bytes"


def format_size(size: int) -> str:
    """Write a byte count with the largest exact binary unit.

    Args:
        size: Bytes.

    Returns:
        The size, e.g. ``"64MiB"``.

    Example:
        >>> format_size(67108864), format_size(1000)
        ('64MiB', '1000B')
    """
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        factor = _FACTORS[unit[0]]
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"
