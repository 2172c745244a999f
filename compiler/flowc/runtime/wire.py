"""The route protocol's bytes: the frame header, the message kinds and the per-message codecs.

Everything here reads bytes a stranger may have written, so every length is checked against a limit the
receiver owns before anything is allocated: an lz4 block states its size in its first four bytes and a zstd
frame in its header, and both are refused above the limit (the ring's largest message) before decompressing.
A frame that fails a check raises :class:`FrameRejected` with a short reason, which the receiver counts.

A ``BATCH`` frame carries consecutive messages in one payload: records of a 5-byte head (:data:`RECORD`: codec id,
length, network byte order) and that many bytes, each record raw or in the route's codec like a ``DATA`` payload.
:meth:`Codec.decode_batch` checks the whole frame, including what all its messages add up to, before it returns
any of them.
"""

from __future__ import annotations

import struct

import lz4.block
import zstandard

#: Protocol version: 2 added BATCH frames, 3 sent data as one frame, 4 every message as one frame over the route's
#: own TCP connection (:mod:`flowc.runtime.route_link`); a peer of another version is refused with a REJECT naming
#: both versions.
VERSION = 4
DATA, HELLO, WELCOME, ACK, HEARTBEAT, RESYNC, REJECT, BATCH = range(1, 9)
CODECS = {"none": 0, "lz4": 1, "zstd": 2}
HEADER = struct.Struct("!BBBxIQQ")  # version, kind, codec, (pad), epoch, session, sequence
LIMIT = struct.Struct("!Q")  # a WELCOME's payload: the largest frame the receiver reads
PROBE = struct.Struct("!Q")  # a HEARTBEAT's payload, echoed by the ACK that answers it: the sender's send time (ns)
RECORD = struct.Struct("!BI")  # a BATCH record's head: codec id, length of the bytes that follow
#: Most records a receiver reads from one BATCH: each costs it a few objects, so the count is bounded as bytes are.
MAX_RECORDS = 1024
_LZ4_SIZE = struct.Struct("<i")  # what ``lz4.block.compress(store_size=True)`` puts first
_MIN_COMPRESS = 64  # smaller payloads never shrink enough to pay for the work
_ZSTD_MIN_WINDOW = 1 << 10  # zstd's smallest window (ZSTD_WINDOWLOG_MIN)

#: Why a receiver refuses a frame; the keys of :attr:`BridgeStats.rejects`.
REASONS = (
    "malformed",  # a frame shorter than a header, or a batch that is not 1 to MAX_RECORDS records
    "version",  # another protocol version
    "kind",  # a kind only a receiver sends, or no kind at all
    "route",  # a HELLO for another route
    "codec",  # a codec this route does not use
    "busy",  # a HELLO of another session while the route's sender is alive
    "unknown_session",  # data or heartbeat outside the current session, epoch and connection
    "corrupt",  # a payload that does not decompress
    "too_large",  # a message larger than the receiving ring's largest, or a batch's messages together over its limit
)


class FrameRejected(Exception):
    """A frame failed a check; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        """Record why.

        Args:
            reason: One of :data:`REASONS`.
            detail: Lower-case words for a log or a REJECT reply.
        """
        super().__init__(detail)
        self.reason = reason


def header(kind: int, codec: int, epoch: int, session: int, seq: int) -> bytes:
    """Pack a frame header.

    Example:
        >>> len(header(DATA, 0, 1, 2, 3)) == HEADER.size == 24
        True
    """
    return HEADER.pack(VERSION, kind, codec, epoch, session, seq)


def _window_for(limit: int) -> int:
    """The smallest power of two that holds ``limit`` bytes (a zstd window never needs more than the content)."""
    return max(_ZSTD_MIN_WINDOW, 1 << max(0, limit - 1).bit_length())


class Codec:
    """Per-message payload compression; a payload that would not shrink travels raw (codec id 0).

    Example:
        >>> codec = Codec("lz4", limit=1000)
        >>> tag, data = codec.encode(b"abc" * 300)
        >>> tag, codec.decode(tag, data) == b"abc" * 300
        (1, True)
        >>> Codec("none", limit=10).decode(1, data)
        Traceback (most recent call last):
        ...
        flowc.runtime.wire.FrameRejected: codec id 1 on a route without compression
    """

    def __init__(self, name: str, limit: int = 1 << 20) -> None:
        """Choose the codec.

        Args:
            name: ``"none"``, ``"lz4"`` or ``"zstd"``.
            limit: Largest message :meth:`decode` returns; larger ones are refused before decompressing.

        Raises:
            ValueError: On an unknown name or a limit below 1.
        """
        if name not in CODECS:
            raise ValueError(f"unknown compression '{name}'; expected one of {', '.join(sorted(CODECS))}")
        if limit < 1:
            raise ValueError("the message size limit must be at least 1")
        self.name, self.id, self.limit = name, CODECS[name], limit
        self._zstd_c = zstandard.ZstdCompressor(level=3)  # writes the content size, which decode requires
        self._zstd_d = zstandard.ZstdDecompressor(max_window_size=min(_window_for(limit), 1 << 31))

    def encode(self, payload: bytes) -> tuple[int, bytes]:
        """Compress ``payload`` if that makes it smaller; returns ``(codec id, bytes to send)``."""
        if self.id == 0 or len(payload) < _MIN_COMPRESS:
            return 0, payload
        packed = lz4.block.compress(payload, store_size=True) if self.id == 1 else self._zstd_c.compress(payload)
        return (self.id, packed) if len(packed) < len(payload) else (0, payload)

    def decode(self, codec: int, data: bytes) -> bytes:
        """Undo :meth:`encode`, refusing anything that is not this route's codec or exceeds the limit.

        Args:
            codec: The codec id the frame names: 0 (raw) or this route's own.
            data: The payload as it travelled.

        Returns:
            The message, at most ``limit`` bytes.

        Raises:
            FrameRejected: ``codec`` (not raw, not this route's), ``too_large`` or ``corrupt``.
        """
        return self._expand(codec, data, self._stated_size(codec, data))

    def decode_batch(self, payload: bytes, total_limit: int, skip: int = 0) -> tuple[int, list[bytes], int]:
        """Check a whole ``BATCH`` payload, then decode its records from the ``skip``-th on.

        Nothing is decompressed before every record has passed the checks of :meth:`decode` and the sizes
        its records state add up to at most ``total_limit``, so a batch of many small records that each
        claim a large message is refused unread.

        Args:
            payload: The records as they travelled (see :data:`RECORD`).
            total_limit: Most bytes all the batch's messages may hold together.
            skip: Records to check but not decode (messages the receiver already delivered).

        Returns:
            The number of records, the messages of records ``skip`` onwards, and those records' bytes as
            they travelled.

        Raises:
            FrameRejected: ``malformed`` (no record, more than :data:`MAX_RECORDS`, or a record that does not
                end where the payload does or the next record starts), what :meth:`decode` raises, or
                ``too_large`` for the sum.

        Example:
            >>> codec = Codec("lz4", limit=1000)
            >>> batch = b"".join(RECORD.pack(tag, len(data)) + data
            ...                  for tag, data in (codec.encode(b"abc" * 300), codec.encode(b"xyz")))
            >>> codec.decode_batch(batch, total_limit=1000, skip=1)
            (2, [b'xyz'], 3)
            >>> codec.decode_batch(batch, total_limit=900)
            Traceback (most recent call last):
            ...
            flowc.runtime.wire.FrameRejected: a batch of 903 bytes of messages; this route's limit is 900
        """
        head, unpack = RECORD.size, RECORD.unpack_from
        end, offset, total = len(payload), 0, 0
        records: list[tuple[int, bytes, int]] = []
        while offset < end:
            if end - offset < head:
                raise FrameRejected("malformed", f"a batch record head cut short at byte {offset}")
            codec, length = unpack(payload, offset)
            offset += head
            if length > end - offset:
                raise FrameRejected("malformed", f"a batch record of {length} bytes with {end - offset} left")
            data = payload[offset:offset + length]
            offset += length
            # Raw records are the hot path of an uncompressed route: their size is their length.
            size = length if codec == 0 and length <= self.limit else self._stated_size(codec, data)
            total += size
            if total > total_limit:  # stop reading at once: the rest of the records cannot make it smaller
                raise FrameRejected("too_large", f"a batch of {total} bytes of messages; this route's limit is "
                                                 f"{total_limit}")
            if len(records) == MAX_RECORDS:
                raise FrameRejected("malformed", f"a batch of more than {MAX_RECORDS} records")
            records.append((codec, data, size))
        if not records:
            raise FrameRejected("malformed", "a batch without records")
        expand = self._expand
        kept = records[skip:]
        return len(records), [expand(codec, data, size) for codec, data, size in kept], sum(len(r[1]) for r in kept)

    def _stated_size(self, codec: int, data: bytes) -> int:
        """The size ``data`` says it decodes to, checked against the codec and the limit before decoding."""
        if codec != 0 and codec != self.id:
            route = f"'{self.name}'" if self.id else "without compression"
            raise FrameRejected("codec", f"codec id {codec} on a route {'using ' if self.id else ''}{route}")
        if codec == 0:
            size = len(data)
        elif codec == 1:
            if len(data) < _LZ4_SIZE.size:
                raise FrameRejected("corrupt", "lz4 block shorter than its size prefix")
            size = _LZ4_SIZE.unpack_from(data)[0]
            if size < 0:
                raise FrameRejected("corrupt", f"lz4 block states a negative size {size}")
        else:
            try:
                size = zstandard.frame_content_size(data)
            except zstandard.ZstdError:
                raise FrameRejected("corrupt", "not a zstd frame") from None
            if size < 0:  # the frame does not say how large it is; our sender always does
                raise FrameRejected("corrupt", "zstd frame without a content size")
        if size > self.limit:
            raise FrameRejected("too_large", f"message of {size} bytes; this route's limit is {self.limit}")
        return size

    def _expand(self, codec: int, data: bytes, size: int) -> bytes:
        """Decode ``data``, whose stated ``size`` :meth:`_stated_size` has checked."""
        if codec == 0:
            return data
        try:
            if codec == 1:
                message = lz4.block.decompress(data[_LZ4_SIZE.size:], uncompressed_size=size)
            else:
                # The stated content size was checked; max_output_size bounds a frame that lies about it.
                message = self._zstd_d.decompress(data, max_output_size=self.limit)
        except (lz4.block.LZ4BlockError, zstandard.ZstdError, ValueError, MemoryError) as exc:
            raise FrameRejected("corrupt", f"payload does not decompress: {exc}") from None
        if len(message) != size:
            raise FrameRejected("corrupt", f"payload decompressed to {len(message)} bytes, stated {size}")
        return message
