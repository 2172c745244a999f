"""Shared-memory channels between processes: SPSC, SPMC, MPSC and MPMC rings of variable-size byte messages.

A ring lives in one file under ``/dev/shm`` (or ``/dev/hugepages``) that any process on the node attaches by
name. Every consumer sees every message, in order per producer. When the ring is full, the ``backpressure``
policy makes producers wait (nothing is lost) and ``drop_oldest`` drops the oldest messages of the consumers
that fell behind (counted in ``stats()["dropped"]``). The per-message work happens in the C extension
:mod:`flowc.runtime._ring`: one call per ``send``/``recv``, real acquire/release atomics, and adaptive waiting
(spin, then ``sched_yield``, then a futex doorbell in the segment). Nothing read from a segment is trusted: a
corrupt or hostile header, position or record length, or a producer that died mid-publish, raises
:class:`RingError` (and marks the ring broken for every endpoint) instead of crashing or hanging the caller.

Example:
    >>> Ring.unlink("flowc-doctest-ring")  # a crashed earlier run may have left it
    >>> ring = Ring.create("flowc-doctest-ring", 4096, producers=1, consumers=2)
    >>> ring.producer(0).send(b"tick")
    True
    >>> [ring.consumer(i).recv(timeout=1.0) for i in range(2)]
    [b'tick', b'tick']
    >>> ring.stats()["received"], ring.stats()["received_per_consumer"]
    (2, [1, 1])
    >>> ring.close(); Ring.unlink("flowc-doctest-ring")
"""

from __future__ import annotations

import mmap
import os
import stat
from typing import Any

from flowc.model.node_view import SHM_DIR
from flowc.runtime import _ring

MAX_MESSAGE = 1 << 20
"""Largest message any ring carries. A ring's own limit is ``min(MAX_MESSAGE, buffer_size // 4 - 8)``
(:attr:`Ring.max_message`), so a message always fits however the ring's free space is split by the wrap."""

DEFAULT_SPIN_US = 10.0
"""Busy-poll budget before yielding. A ping-pong between pinned cores answers within a few µs, well inside it;
blocking costs about 25 µs per wake-up across cores on the reference machine."""

YIELD_US = 100.0
"""How long a waiter polls with ``sched_yield`` after spinning, before blocking on the futex. Yielding keeps a
peer sharing the same core from waiting out a scheduler slice; blocking afterwards keeps idle ends near 0% CPU."""

POLICIES = ("backpressure", "drop_oldest")
DELIVERIES = ("broadcast", "shared")
MIN_BUFFER = 256
MAX_BUFFER = 1 << 48
"""Largest ``buffer_size`` a ring accepts (256 TiB: beyond any machine's memory, far inside 64-bit positions)."""
HUGE_DIR = "/dev/hugepages"


RingError = _ring.RingError
"""A ring could not be created or attached, or its segment is corrupt or broken (raised by the C extension too:
a bad header, position or record length in a segment is this error, never a crash)."""


def ring_limit(buffer_size: int) -> int:
    """Largest message a ring of ``buffer_size`` bytes carries.

    Args:
        buffer_size: The ring's data capacity in bytes.

    Returns:
        ``min(MAX_MESSAGE, capacity // 4 - 8)``, rounded down to a multiple of 8.

    Example:
        >>> ring_limit(4096), ring_limit(64 << 20) == MAX_MESSAGE
        (1016, True)
    """
    capacity = buffer_size - buffer_size % 8
    return min(MAX_MESSAGE, (capacity // 4 - _ring.RECORD_HEADER) & ~7)


class Ring:
    """One mapped ring segment; hands out producer and consumer endpoints.

    Create it once (the launcher does), attach it by name from every process that uses it, and call
    :meth:`producer` / :meth:`consumer` with this process's index. Endpoints are C objects whose ``send`` and
    ``recv`` are documented on :meth:`producer` and :meth:`consumer`.
    """

    def __init__(self, name: str, path: str, fd: int, initialised: bool = True) -> None:
        """Map a segment. Use :meth:`create` or :meth:`attach` instead.

        Args:
            name: The ring's name.
            path: The segment file.
            fd: An open descriptor of the file (closed here once mapped).
            initialised: Whether the header is already written (False only inside :meth:`create`).
        """
        try:
            status = os.fstat(fd)
            # a FIFO or device would block or map something that is not a segment; an empty file cannot be mapped
            if not stat.S_ISREG(status.st_mode) or status.st_size == 0:
                raise RingError(f"ring segment {path} is not a non-empty regular file")
            self._mm = mmap.mmap(fd, status.st_size)
        except OSError as exc:  # ENOMEM for a segment larger than the address space or the overcommit limit
            raise RingError(f"cannot map ring segment {path}: {exc.strerror}") from None
        finally:
            os.close(fd)
        self.name = name
        self.path = path
        self._info: dict[str, Any] = _ring.info(self._mm) if initialised else {}
        self._endpoints: list[Any] = []

    @classmethod
    def create(cls, name: str, buffer_size: int, producers: int, consumers: int, policy: str = "backpressure",
               spin_us: float = DEFAULT_SPIN_US, huge_pages: bool = False, delivery: str = "broadcast") -> Ring:
        """Create the segment ``/dev/shm/<name>`` (or ``/dev/hugepages/<name>``); fails if it exists.

        Args:
            name: Segment name (a file name, no ``/``).
            buffer_size: Data bytes in the ring (rounded down to a multiple of 8, at least 256).
            producers: Number of producer indices.
            consumers: Number of consumer indices; each sees every message (``broadcast``), or each message
                goes to exactly one of them (``shared``).
            policy: ``backpressure`` (producers wait) or ``drop_oldest`` (slow consumers lose old messages).
            spin_us: Default busy-poll budget of this ring's endpoints, in µs.
            huge_pages: Map from ``/dev/hugepages`` when it is usable; otherwise fall back to ``/dev/shm``
                (``stats()["huge_pages"]`` says which was used).
            delivery: ``broadcast`` or ``shared`` (work sharing; backpressure only).

        Returns:
            The mapped ring.

        Raises:
            RingError: Bad arguments, or the segment already exists.
        """
        _check_name(name)
        if policy not in POLICIES:
            raise RingError(f"unknown policy '{policy}' (expected one of {', '.join(POLICIES)})")
        if delivery not in DELIVERIES:
            raise RingError(f"unknown delivery '{delivery}' (expected one of {', '.join(DELIVERIES)})")
        if delivery == "shared" and policy == "drop_oldest":
            raise RingError("a shared ring cannot drop the oldest messages: its consumers take turns, none lags")
        if buffer_size < MIN_BUFFER:
            raise RingError(f"buffer_size {buffer_size} is below the minimum of {MIN_BUFFER} bytes")
        if buffer_size > MAX_BUFFER:
            raise RingError(f"buffer_size {buffer_size} is too large for a ring (at most {MAX_BUFFER} bytes)")
        if not (1 <= producers <= 1024 and 1 <= consumers <= 1024):
            raise RingError("producers and consumers must be between 1 and 1024")
        capacity = buffer_size - buffer_size % 8
        try:
            size = _ring.layout_size(capacity, producers, consumers)
        except ValueError:  # beyond what 64-bit positions address
            raise RingError(f"buffer_size {buffer_size} is too large for a ring") from None
        opened = _open_huge(name, size) if huge_pages else None
        huge = opened is not None
        if opened is None:
            path = os.path.join(SHM_DIR, name)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                raise RingError(f"ring segment {path} already exists") from None
            try:
                os.ftruncate(fd, size)
            except OSError as exc:  # the file was created above: a failed start leaves nothing behind
                os.close(fd)
                os.unlink(path)
                raise RingError(f"cannot size ring segment {path} to {size} bytes: {exc.strerror}") from None
            opened = (path, fd)
        path, fd = opened
        try:
            ring = cls(name, path, fd, initialised=False)
            _ring.init(ring._mm, capacity, producers, consumers, ring_limit(capacity), policy == "drop_oldest",
                       huge, int(spin_us * 1000), int(YIELD_US * 1000), delivery == "shared")
        except BaseException:
            os.unlink(path)
            raise
        ring._info = _ring.info(ring._mm)
        return ring

    @classmethod
    def attach(cls, name: str) -> Ring:
        """Map a ring that another process created.

        Args:
            name: The ring's name.

        Returns:
            The mapped ring.

        Raises:
            RingError: No such segment.
        """
        _check_name(name)
        for directory in (SHM_DIR, HUGE_DIR):
            path = os.path.join(directory, name)
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue
            return cls(name, path, fd)
        raise RingError(f"no ring segment named '{name}' in {SHM_DIR} or {HUGE_DIR}")

    @staticmethod
    def unlink(name: str) -> None:
        """Remove the segment file if present; processes that mapped it keep their mapping.

        Args:
            name: The ring's name.
        """
        _check_name(name)
        for directory in (SHM_DIR, HUGE_DIR):
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                pass

    @property
    def buffer_size(self) -> int:
        """Data capacity in bytes."""
        return int(self._info["capacity"])

    @property
    def max_message(self) -> int:
        """Largest message this ring carries (see :data:`MAX_MESSAGE`)."""
        return int(self._info["max_message"])

    @property
    def policy(self) -> str:
        """``backpressure`` or ``drop_oldest``."""
        return "drop_oldest" if self._info["drop_oldest"] else "backpressure"

    @property
    def delivery(self) -> str:
        """``broadcast`` (every consumer sees every message) or ``shared`` (each message to one consumer)."""
        return "shared" if self._info.get("shared") else "broadcast"

    @property
    def huge_pages(self) -> bool:
        """Whether the segment is on hugetlbfs."""
        return bool(self._info["huge_pages"])

    @property
    def closed(self) -> bool:
        """Whether :meth:`close_writers` was called: consumers drain what is left, then ``recv`` returns None."""
        return _ring.is_closed(self._mm)

    def producer(self, index: int, spin_us: float | None = None, yield_us: float | None = None) -> Any:
        """Producer endpoint ``index``: one process or thread per index.

        ``send(data, timeout=None) -> bool`` copies ``data`` (bytes-like, at most :attr:`max_message` bytes)
        into the ring. Under ``backpressure`` it waits for space and returns False when ``timeout`` seconds pass
        first; under ``drop_oldest`` it never waits for consumers. It returns False once the ring is closed. It
        raises :class:`RingError` when the segment is corrupt, or when a producer ahead of it died (or stalled
        for a second past ``timeout``) between reserving and publishing: a commit that can never come.

        Args:
            index: Producer index, ``0 <= index < producers``.
            spin_us: Override the ring's busy-poll budget for this endpoint.
            yield_us: Override how long this endpoint yields before it blocks.

        Returns:
            A :class:`flowc.runtime._ring.Producer`.
        """
        tx = _ring.Producer(self._mm, index, -1.0 if spin_us is None else spin_us,
                            -1.0 if yield_us is None else yield_us)
        self._endpoints.append(tx)
        return tx

    def consumer(self, index: int, spin_us: float | None = None, yield_us: float | None = None) -> Any:
        """Consumer endpoint ``index``: its own cursor, so it sees every message.

        ``recv(timeout=None) -> bytes | None`` returns the next message, or None after ``timeout`` seconds, or
        at once when the ring is closed and drained. ``pending()`` is the number of unread bytes.

        Args:
            index: Consumer index, ``0 <= index < consumers``.
            spin_us: Override the ring's busy-poll budget for this endpoint.
            yield_us: Override how long this endpoint yields before it blocks.

        Returns:
            A :class:`flowc.runtime._ring.Consumer`.
        """
        rx = _ring.Consumer(self._mm, index, -1.0 if spin_us is None else spin_us,
                            -1.0 if yield_us is None else yield_us)
        self._endpoints.append(rx)
        return rx

    def stats(self) -> dict[str, Any]:
        """Counters from the segment header, summed over all processes.

        Returns:
            ``sent``, ``received`` (sum), ``dropped`` (sum), ``backpressure_waits`` (sum), their per-producer or
            per-consumer lists (``received_per_consumer`` …), ``policy``, ``buffer_size``, ``max_message``,
            ``huge_pages``, ``closed`` and ``broken`` (an endpoint found the segment corrupt, or a producer died
            between reserving and publishing: every endpoint now raises :class:`RingError`).

        Raises:
            RingError: The segment's header is no longer valid.
        """
        raw = _ring.stats(self._mm)
        return {
            "sent": sum(raw["sent_per_producer"]),
            "received": sum(raw["received_per_consumer"]),
            "dropped": sum(raw["dropped_per_consumer"]),
            "backpressure_waits": sum(raw["backpressure_waits_per_producer"]),
            **raw,
            "policy": self.policy,
            "delivery": self.delivery,
            "buffer_size": self.buffer_size,
            "max_message": self.max_message,
            "huge_pages": self.huge_pages,
        }

    def wake_all(self) -> None:
        """Wake every blocked ``send`` and ``recv`` so they re-check the ring (and the closed flag)."""
        _ring.wake_all(self._mm)

    def close_writers(self) -> None:
        """Mark the producers done: later sends return False, consumers drain and then get None at once.

        Call it after the producers' last ``send`` returned (for example after their processes exited), so
        their messages are published before the flag.
        """
        _ring.close_writers(self._mm)

    def close(self) -> None:
        """Unmap the segment (the file stays; see :meth:`unlink`). Endpoints of this ring stop working.

        Raises:
            RuntimeError: An endpoint is inside ``send``/``recv`` in another thread (unmapping the segment under
                it would crash that thread); close after the call returns.
        """
        for endpoint in self._endpoints:
            endpoint.release()
        self._endpoints.clear()
        if not self._mm.closed:
            self._mm.close()

    def __enter__(self) -> Ring:
        """Use the ring as a context manager that closes (not unlinks) it."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the ring."""
        self.close()

    def __repr__(self) -> str:
        """Name, geometry and policy."""
        return f"Ring({self.name!r}, buffer_size={self.buffer_size}, policy={self.policy!r})"


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise RingError(f"invalid ring name '{name}'")


def _huge_page_size() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Hugepagesize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 2 << 20


def _open_huge(name: str, size: int) -> tuple[str, int] | None:
    """Create the segment on hugetlbfs, or return None when that is not possible here."""
    if not os.path.ismount(HUGE_DIR) or not os.access(HUGE_DIR, os.W_OK):
        return None
    page = _huge_page_size()
    path = os.path.join(HUGE_DIR, name)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise RingError(f"ring segment {path} already exists") from None
    except OSError:
        return None
    try:
        os.ftruncate(fd, -(-size // page) * page)
        # hugetlbfs reserves pages at mmap time: a trial mapping tells whether the pool can back the ring.
        mmap.mmap(fd, -(-size // page) * page).close()
    except OSError:
        os.close(fd)
        os.unlink(path)
        return None
    return path, fd
