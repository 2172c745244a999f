"""Parsing of the two compact notations of the input language: cpusets and byte sizes."""

from __future__ import annotations

import re

_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B|B)?\s*\Z")
_FACTORS = {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
MAX_CPU = 4095


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


def parse_size(value: int | str) -> int:
    """Parse a byte size; every unit is binary (``64MB`` = ``64MiB`` = 67108864).

    Args:
        value: Bytes as an integer, or a string such as ``"64MB"``, ``"512KiB"``, ``"1.5GiB"``.

    Returns:
        The size in bytes.

    Raises:
        ValueError: When the text is not a size, or the size is zero.

    Example:
        >>> parse_size("64MB"), parse_size("64MiB"), parse_size(4096)
        (67108864, 67108864, 4096)
    """
    if isinstance(value, int | float):
        size = int(value)
    else:
        match = _SIZE.match(value)
        if match is None:
            raise ValueError(f"'{value}' is not a size")
        number, unit = match.groups()
        size = round(float(number) * _FACTORS[(unit or "B")[0]])
    if size <= 0:
        raise ValueError("a buffer needs at least one byte")
    return size


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
