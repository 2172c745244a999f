//! The segment format (version 1): where every shared field lives, and the check of a segment's header.
//!
//! The offsets are those of `flowc_ring.c`'s `meta_t`, `ring_hdr`, `prod_line` and `cons_line` (x86-64 and aarch64
//! Linux, 64-byte cache lines); `flowc.runtime._ring.LAYOUT` prints the same numbers. A header is copied once
//! ([`Meta`]) and checked against the length of the mapping this process was given ([`check_meta`]); every
//! later access is bounded by that copy, never by the shared header, which another process may rewrite.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// `"FLCRING1"` read as a little-endian `u64`.
pub const RING_MAGIC: u64 = 0x3147_4e49_5243_4c46;
/// The only segment format version this crate speaks.
pub const RING_VERSION: u32 = 1;
/// `flags` bit: the ring drops the oldest records of slow consumers instead of making producers wait.
pub const F_DROP_OLDEST: u32 = 1;
/// `flags` bit: the segment lives on hugetlbfs (informational).
pub const F_HUGE_PAGES: u32 = 2;
/// `flags` bit: each message goes to exactly one consumer (work sharing, ABI section 12); never with
/// [`F_DROP_OLDEST`].
pub const F_SHARED: u32 = 4;
/// Record flag: a filler record from its position to the end of the data area.
pub const REC_PAD: u32 = 1;
/// Bytes of a record header: `u32 len`, `u32 flags`.
pub const REC_HDR: u64 = 8;
/// Most producers, and most consumers, a segment may declare.
pub const MAX_ENDS: u32 = 1024;
/// Smallest data area a segment may claim: rules out capacity 0, which every position is divided by.
pub const MIN_CAPACITY: u64 = 64;
/// Upper bound of a segment's spin and yield budgets, in nanoseconds.
pub const MAX_BUDGET_NS: u64 = 1_000_000_000;

/// Size of the fixed header (`meta_t` plus the shared words, each group on its own cache line).
pub const HEADER_SIZE: usize = 384;
/// Size of one producer or consumer line.
pub const LINE_SIZE: usize = 64;

pub(crate) const OFF_MAGIC: usize = 0;
pub(crate) const OFF_VERSION: usize = 8;
pub(crate) const OFF_FLAGS: usize = 12;
pub(crate) const OFF_CAPACITY: usize = 16;
pub(crate) const OFF_PRODUCERS: usize = 24;
pub(crate) const OFF_CONSUMERS: usize = 28;
pub(crate) const OFF_MAX_MESSAGE: usize = 32;
pub(crate) const OFF_DATA_OFFSET: usize = 40;
pub(crate) const OFF_SPIN_NS: usize = 48;
pub(crate) const OFF_YIELD_NS: usize = 56;
pub(crate) const OFF_RESERVE: usize = 64;
pub(crate) const OFF_PUBLISHED: usize = 128;
pub(crate) const OFF_DATA_SEQ: usize = 192;
pub(crate) const OFF_DATA_WAITERS: usize = 196;
pub(crate) const OFF_SPACE_SEQ: usize = 256;
pub(crate) const OFF_SPACE_WAITERS: usize = 260;
pub(crate) const OFF_CLOSED: usize = 320;
pub(crate) const OFF_BROKEN: usize = 324;

pub(crate) const LINE_SENT: usize = 0;
pub(crate) const LINE_BP_WAITS: usize = 8;
pub(crate) const LINE_CLAIM: usize = 16;
pub(crate) const LINE_PID: usize = 24;
pub(crate) const LINE_CURSOR: usize = 0;
pub(crate) const LINE_RECEIVED: usize = 8;
pub(crate) const LINE_DROPPED: usize = 16;
// shared rings only: line 0's `taken` is the group's next position to hand out; each line's `holding` is the
// position its consumer took and is copying (`NOT_HOLDING`: none), `holder_pid` the process that stored it
pub(crate) const LINE_TAKEN: usize = 24;
pub(crate) const LINE_HOLDING: usize = 32;
pub(crate) const LINE_HOLDER_PID: usize = 40;

/// A shared ring's `holding` when the consumer holds no record (the creator writes it into every line).
pub const NOT_HOLDING: u64 = u64::MAX;

/// Where the data area starts for a geometry: after the header and the lines, page-aligned.
///
/// Callers bound `producers` and `consumers` by [`MAX_ENDS`] first, so the arithmetic cannot overflow.
pub fn layout_data_offset(producers: u64, consumers: u64) -> u64 {
    let end = HEADER_SIZE as u64 + (producers + consumers) * LINE_SIZE as u64;
    (end + 4095) & !4095
}

/// Bytes a record of `len` payload bytes takes in the ring: its header plus the payload padded to 8.
///
/// Callers bound `len` (by `max_message`, itself checked) so that this cannot wrap.
pub fn rec_size(len: u64) -> u64 {
    REC_HDR + ((len + 7) & !7)
}

/// A private copy of a segment's header: what an endpoint trusts once [`check_meta`] accepted it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Must be [`RING_MAGIC`].
    pub magic: u64,
    /// Must be [`RING_VERSION`].
    pub version: u32,
    /// [`F_DROP_OLDEST`], [`F_HUGE_PAGES`] and [`F_SHARED`]; no other bit, and not both of `F_DROP_OLDEST` and
    /// `F_SHARED`.
    pub flags: u32,
    /// Bytes in the data area.
    pub capacity: u64,
    /// Producer lines.
    pub producers: u32,
    /// Consumer lines.
    pub consumers: u32,
    /// Largest payload a record may carry.
    pub max_message: u64,
    /// Where the data area starts (must equal [`layout_data_offset`]).
    pub data_offset: u64,
    /// Default busy-poll budget of the ring's endpoints.
    pub spin_ns: u64,
    /// Default yield budget of the ring's endpoints.
    pub yield_ns: u64,
}

impl Meta {
    /// Copies the header at `base`, the start of a mapping of `len` bytes; all zero when `len` is too short.
    ///
    /// The magic is loaded with ACQUIRE: the creator stores it last with RELEASE, so a copy that sees the magic
    /// sees the fields written before it.
    ///
    /// # Safety
    /// `base` must be valid for `len` bytes and 8-byte aligned for the whole call.
    pub unsafe fn read(base: *const u8, len: usize) -> Meta {
        if len < 64 {
            return Meta::default();
        }
        let u64_at = |off: usize| (*(base.add(off) as *const AtomicU64)).load(Ordering::Relaxed);
        let u32_at = |off: usize| (*(base.add(off) as *const AtomicU32)).load(Ordering::Relaxed);
        let magic = (*(base.add(OFF_MAGIC) as *const AtomicU64)).load(Ordering::Acquire);
        Meta {
            magic,
            version: u32_at(OFF_VERSION),
            flags: u32_at(OFF_FLAGS),
            capacity: u64_at(OFF_CAPACITY),
            producers: u32_at(OFF_PRODUCERS),
            consumers: u32_at(OFF_CONSUMERS),
            max_message: u64_at(OFF_MAX_MESSAGE),
            data_offset: u64_at(OFF_DATA_OFFSET),
            spin_ns: u64_at(OFF_SPIN_NS),
            yield_ns: u64_at(OFF_YIELD_NS),
        }
    }

    /// Whether the ring drops the oldest records instead of applying backpressure.
    pub fn drop_oldest(&self) -> bool {
        self.flags & F_DROP_OLDEST != 0
    }

    /// Whether each message goes to exactly one consumer (work sharing) instead of to every consumer.
    pub fn shared(&self) -> bool {
        self.flags & F_SHARED != 0
    }
}

/// Checks a header copy against the length of the mapping it came from, in `flowc_ring.c`'s order and words.
///
/// Returns why the segment cannot be trusted, or `Ok(())`. Every later access is bounded by these fields, so a
/// corrupt or hostile header is refused here instead of steering reads and writes outside the mapping.
pub fn check_meta(m: &Meta, len: u64) -> Result<(), &'static str> {
    if len < HEADER_SIZE as u64 {
        return Err("segment smaller than a ring header");
    }
    if m.magic != RING_MAGIC {
        return Err("bad magic");
    }
    if m.version != RING_VERSION {
        return Err("unsupported version");
    }
    if m.flags & !(F_DROP_OLDEST | F_HUGE_PAGES | F_SHARED) != 0 {
        return Err("unknown flags");
    }
    if m.flags & F_SHARED != 0 && m.flags & F_DROP_OLDEST != 0 {
        return Err("shared delivery with drop_oldest");
    }
    // bounds the endpoint lines and the multiplications in layout_data_offset
    if !(1..=MAX_ENDS).contains(&m.producers) || !(1..=MAX_ENDS).contains(&m.consumers) {
        return Err("producer or consumer count out of range");
    }
    // the data starts where this process computes it, never where the segment says
    if m.data_offset != layout_data_offset(m.producers.into(), m.consumers.into()) {
        return Err("data offset does not match layout");
    }
    // capacity 0 would divide by zero; an unaligned capacity would let a record header straddle the end
    if m.capacity < MIN_CAPACITY || !m.capacity.is_multiple_of(8) {
        return Err("bad capacity");
    }
    // a subtraction, so that data_offset + capacity cannot wrap
    if m.data_offset > len || m.capacity > len - m.data_offset {
        return Err("capacity exceeds the segment");
    }
    // max_message first, so that rec_size cannot wrap; a record must fit whatever the wrap leaves free
    if m.max_message > m.capacity / 4 || rec_size(m.max_message) > m.capacity / 4 {
        return Err("bad max_message");
    }
    if m.spin_ns > MAX_BUDGET_NS || m.yield_ns > MAX_BUDGET_NS {
        return Err("bad spin or yield budget");
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An 8-byte-aligned zeroed buffer holding a fresh ring, initialised as `_ring.init` does.
    pub(crate) fn fresh(capacity: u64, producers: u32, consumers: u32, drop: bool) -> Vec<u64> {
        fresh_with(capacity, producers, consumers, if drop { F_DROP_OLDEST } else { 0 })
    }

    /// A fresh shared ring (work sharing): every consumer line holds nothing, as the creator writes it.
    pub(crate) fn fresh_shared(capacity: u64, producers: u32, consumers: u32) -> Vec<u64> {
        let mut words = fresh_with(capacity, producers, consumers, F_SHARED);
        for j in 0..consumers as usize {
            words[(HEADER_SIZE + (producers as usize + j) * LINE_SIZE + LINE_HOLDING) / 8] = NOT_HOLDING;
        }
        words
    }

    fn fresh_with(capacity: u64, producers: u32, consumers: u32, flags: u32) -> Vec<u64> {
        let off = layout_data_offset(producers.into(), consumers.into());
        let mut words = vec![0u64; ((off + capacity) / 8) as usize];
        let max_message = ((capacity / 4 - REC_HDR) & !7).min(1 << 20);
        let m = Meta {
            magic: RING_MAGIC,
            version: RING_VERSION,
            flags,
            capacity,
            producers,
            consumers,
            max_message,
            data_offset: off,
            spin_ns: 10_000,
            yield_ns: 100_000,
        };
        write(&mut words, &m);
        words
    }

    pub(crate) fn write(words: &mut [u64], m: &Meta) {
        words[0] = m.magic;
        words[1] = u64::from(m.version) | u64::from(m.flags) << 32;
        words[2] = m.capacity;
        words[3] = u64::from(m.producers) | u64::from(m.consumers) << 32;
        words[4] = m.max_message;
        words[5] = m.data_offset;
        words[6] = m.spin_ns;
        words[7] = m.yield_ns;
    }

    fn check(words: &[u64]) -> Result<(), &'static str> {
        let len = words.len() * 8;
        let m = unsafe { Meta::read(words.as_ptr() as *const u8, len) };
        check_meta(&m, len as u64)
    }

    fn corrupted(edit: impl Fn(&mut Meta)) -> Result<(), &'static str> {
        let mut words = fresh(4096, 2, 3, false);
        let mut m = unsafe { Meta::read(words.as_ptr() as *const u8, words.len() * 8) };
        edit(&mut m);
        write(&mut words, &m);
        check(&words)
    }

    #[test]
    fn layout_matches_the_c_structs() {
        assert_eq!(layout_data_offset(1, 1), 4096);
        assert_eq!(layout_data_offset(30, 30), 4096 + 4096);
        assert_eq!(rec_size(0), 8);
        assert_eq!(rec_size(1), 16);
        assert_eq!(rec_size(8), 16);
        assert_eq!(RING_MAGIC.to_le_bytes(), *b"FLCRING1");
    }

    #[test]
    fn a_fresh_header_is_accepted() {
        assert_eq!(check(&fresh(4096, 2, 3, false)), Ok(()));
        assert_eq!(check(&fresh(64, 1, 1, true)), Ok(()));
        assert_eq!(check(&fresh_shared(4096, 2, 3)), Ok(()));
        assert_eq!(corrupted(|m| m.flags = F_SHARED | F_HUGE_PAGES), Ok(()));
    }

    #[test]
    fn every_corrupt_field_is_refused() {
        assert_eq!(corrupted(|m| m.magic ^= 1), Err("bad magic"));
        assert_eq!(corrupted(|m| m.version = 2), Err("unsupported version"));
        assert_eq!(corrupted(|m| m.flags = 8), Err("unknown flags"));
        assert_eq!(corrupted(|m| m.flags = 1 << 31), Err("unknown flags"));
        assert_eq!(corrupted(|m| m.flags = F_SHARED | F_DROP_OLDEST), Err("shared delivery with drop_oldest"));
        // the unknown bit is named first, as in flowc_ring.c
        assert_eq!(corrupted(|m| m.flags = 8 | F_SHARED | F_DROP_OLDEST), Err("unknown flags"));
        for (p, c) in [(0, 1), (1, 0), (1025, 1), (1, u32::MAX)] {
            let why = corrupted(|m| {
                m.producers = p;
                m.consumers = c;
            });
            assert_eq!(why, Err("producer or consumer count out of range"));
        }
        assert_eq!(corrupted(|m| m.data_offset = 0), Err("data offset does not match layout"));
        assert_eq!(corrupted(|m| m.data_offset += 8), Err("data offset does not match layout"));
        assert_eq!(corrupted(|m| m.capacity = 0), Err("bad capacity"));
        assert_eq!(corrupted(|m| m.capacity = 56), Err("bad capacity"));
        assert_eq!(corrupted(|m| m.capacity = 4100), Err("bad capacity"));
        assert_eq!(corrupted(|m| m.capacity = 4096 + 8), Err("capacity exceeds the segment"));
        assert_eq!(corrupted(|m| m.capacity = !7), Err("capacity exceeds the segment"));
        assert_eq!(corrupted(|m| m.max_message = 1025), Err("bad max_message"));
        assert_eq!(corrupted(|m| m.max_message = 1024), Err("bad max_message")); // its record is 1032
        assert_eq!(corrupted(|m| m.max_message = u64::MAX), Err("bad max_message"));
        assert_eq!(corrupted(|m| m.spin_ns = MAX_BUDGET_NS + 1), Err("bad spin or yield budget"));
        assert_eq!(corrupted(|m| m.yield_ns = u64::MAX), Err("bad spin or yield budget"));
    }

    #[test]
    fn short_buffers_are_refused() {
        let words = fresh(4096, 1, 1, false);
        for len in [0usize, 8, 63, 64, 383] {
            let m = unsafe { Meta::read(words.as_ptr() as *const u8, len) };
            assert_eq!(check_meta(&m, len as u64), Err("segment smaller than a ring header"));
        }
        // the header is intact but the data area is cut short
        for len in [384usize, 4096, 4096 + 4088] {
            let m = unsafe { Meta::read(words.as_ptr() as *const u8, len) };
            assert_eq!(check_meta(&m, len as u64), Err("capacity exceeds the segment"));
        }
    }

    #[test]
    fn random_headers_never_pass_unless_consistent() {
        // xorshift: any header check_meta accepts must describe a data area inside the buffer
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut words = fresh(4096, 1, 1, next() & 1 == 1);
            let field = (next() % 8) as usize;
            words[field] = match next() % 4 {
                0 => next(),
                1 => words[field] ^ (1 << (next() % 64)),
                2 => next() % 8192,
                _ => 0,
            };
            let len = words.len() * 8;
            let m = unsafe { Meta::read(words.as_ptr() as *const u8, len) };
            if check_meta(&m, len as u64).is_ok() {
                assert!(m.data_offset + m.capacity <= len as u64);
                assert!(rec_size(m.max_message) <= m.capacity / 4);
            }
        }
    }
}
