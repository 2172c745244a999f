//! A mapped ring segment: attaching it by name, its shared words, and the segment-level operations
//! (counters, closing the writers, waking everyone, marking it broken).
//!
//! Every shared word is reached through an accessor that checks its offset against the mapping, and through an
//! atomic type, so a value another process wrote can steer neither an access outside the mapping nor a torn read.

use std::fs::OpenOptions;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::consumer::Consumer;
use crate::error::{Error, Result};
use crate::layout::*;
use crate::producer::Producer;
use crate::sys;

const SHM_DIR: &str = "/dev/shm";
const HUGE_DIR: &str = "/dev/hugepages";

/// One ring segment mapped into this process, with the checked copy of its header.
///
/// Hand out endpoints with [`Segment::producer`] and [`Segment::consumer`]; they keep the mapping alive.
pub struct Segment {
    base: *mut u8,
    len: usize,
    meta: Meta,
    /// The buffer of an in-memory ring (tests); `None` for a mapping, which drop unmaps.
    heap: Option<Vec<u64>>,
}

// SAFETY: the mapping is shared memory reached only through atomics and bounds-checked copies; the pointer
// stays valid until drop.
unsafe impl Send for Segment {}
unsafe impl Sync for Segment {}

/// Counters and state of a ring, summed by nobody: one entry per producer or consumer line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// An endpoint found the ring corrupt, or a producer died mid-publish.
    pub broken: bool,
    /// The writers are done ([`Segment::close_writers`]).
    pub closed: bool,
    /// Bytes (records and padding) published since the ring was created.
    pub published_bytes: u64,
    /// Bytes reserved by producers (published or being written).
    pub reserved_bytes: u64,
    /// Messages sent, per producer.
    pub sent_per_producer: Vec<u64>,
    /// Sends that had to wait for space, per producer.
    pub backpressure_waits_per_producer: Vec<u64>,
    /// Messages received, per consumer.
    pub received_per_consumer: Vec<u64>,
    /// Messages lost, per consumer: under `drop_oldest` those producers skipped before the consumer read them; on
    /// a shared ring those whose taker died while copying them, which this consumer released on its behalf.
    pub dropped_per_consumer: Vec<u64>,
}

impl Segment {
    /// Maps the ring segment `name` from `/dev/shm` (or `/dev/hugepages`), as `Ring.attach` does.
    ///
    /// # Errors
    /// [`Error::BadName`], [`Error::NotFound`], [`Error::Io`] when the file is not a non-empty regular file or
    /// cannot be mapped, and [`Error::Invalid`] when its header fails a check.
    pub fn attach(name: &str) -> Result<Arc<Segment>> {
        if name.is_empty() || name.contains('/') || name.contains('\0') || name == "." || name == ".." {
            return Err(Error::BadName(name.to_owned()));
        }
        for dir in [SHM_DIR, HUGE_DIR] {
            let path = format!("{dir}/{name}");
            match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(file) => return Segment::map(file, path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(Error::Io { path, source }),
            }
        }
        Err(Error::NotFound(name.to_owned()))
    }

    fn map(file: std::fs::File, path: String) -> Result<Arc<Segment>> {
        let io = |source| Error::Io { path: path.clone(), source };
        let status = file.metadata().map_err(io)?; // fstat
        let kind = status.file_type();
        // a FIFO or a device would block or map something that is not a segment; an empty file cannot be mapped
        if !kind.is_file() || kind.is_fifo() || status.len() == 0 {
            let why = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a non-empty regular file");
            return Err(io(why));
        }
        let len = usize::try_from(status.len())
            .map_err(|_| io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "larger than the address space")))?;
        let base = sys::map_shared(file.as_raw_fd(), len).map_err(io)?;
        // the descriptor closes here; the mapping stays
        Segment::checked(base, len, None)
    }

    fn checked(base: *mut u8, len: usize, heap: Option<Vec<u64>>) -> Result<Arc<Segment>> {
        // SAFETY: base is a page- (or u64-) aligned region of len bytes that lives as long as the segment.
        let meta = unsafe { Meta::read(base, len) };
        let segment = Segment { base, len, meta, heap }; // dropped (unmapped) on the error path too
        check_meta(&segment.meta, len as u64).map_err(Error::Invalid)?;
        Ok(Arc::new(segment))
    }

    #[cfg(test)]
    pub(crate) fn from_words(mut words: Vec<u64>) -> Result<Arc<Segment>> {
        let (base, len) = (words.as_mut_ptr() as *mut u8, words.len() * 8);
        Segment::checked(base, len, Some(words))
    }

    /// A copy of an in-memory ring's words, to corrupt and attach again.
    #[cfg(test)]
    pub(crate) fn words(&self) -> Vec<u64> {
        self.heap.clone().expect("an in-memory ring")
    }

    /// The checked copy of the header: geometry, policy and wait budgets.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Bytes in the data area (`Ring.buffer_size`).
    pub fn capacity(&self) -> u64 {
        self.meta.capacity
    }

    /// Largest message this ring carries (`Ring.max_message`).
    pub fn max_message(&self) -> u64 {
        self.meta.max_message
    }

    /// Whether the ring drops the oldest messages of slow consumers instead of making producers wait.
    pub fn drop_oldest(&self) -> bool {
        self.meta.drop_oldest()
    }

    /// Whether each message goes to exactly one of the consumers (`delivery: shared`, work sharing) instead of
    /// to every one of them.
    pub fn shared(&self) -> bool {
        self.meta.shared()
    }

    /// Producer endpoint `index` (one thread or process per index).
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] when `index` is not below the segment's producer count.
    pub fn producer(self: &Arc<Self>, index: u32) -> Result<Producer> {
        if index >= self.meta.producers {
            return Err(Error::IndexOutOfRange { role: "producer", index });
        }
        Ok(Producer::new(Arc::clone(self), index))
    }

    /// Consumer endpoint `index`: on a broadcast ring its own cursor, so it sees every message; on a
    /// [shared](Segment::shared) ring one of a group that takes turns, so it sees the messages it takes.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] when `index` is not below the segment's consumer count.
    pub fn consumer(self: &Arc<Self>, index: u32) -> Result<Consumer> {
        if index >= self.meta.consumers {
            return Err(Error::IndexOutOfRange { role: "consumer", index });
        }
        Ok(Consumer::new(Arc::clone(self), index))
    }

    /// Whether the writers are done: consumers drain what is left, then `recv` reports closed.
    pub fn is_closed(&self) -> bool {
        self.closed().load(Ordering::Acquire) != 0
    }

    /// Marks the producers done and wakes everyone: later sends report closed, consumers drain and finish.
    ///
    /// Call it after the producers' last send returned, so that their messages are published before the flag.
    pub fn close_writers(&self) {
        self.closed().store(1, Ordering::Release);
        self.wake_all();
    }

    /// Wakes every blocked send and receive so they re-check the ring (and the closed and broken flags).
    pub fn wake_all(&self) {
        self.data_seq().fetch_add(1, Ordering::SeqCst);
        self.space_seq().fetch_add(1, Ordering::SeqCst);
        sys::futex_wake_all(self.data_seq());
        sys::futex_wake_all(self.space_seq());
    }

    /// The ring's counters, as `_ring.stats` reads them (relaxed: they are statistics, not synchronisation).
    pub fn stats(&self) -> Stats {
        let prods = 0..self.meta.producers;
        let conss = 0..self.meta.consumers;
        Stats {
            broken: self.broken().load(Ordering::Acquire) != 0,
            closed: self.is_closed(),
            published_bytes: self.published().load(Ordering::Acquire),
            reserved_bytes: self.reserve().load(Ordering::Acquire),
            sent_per_producer: prods.clone().map(|i| self.prod_u64(i, LINE_SENT).load(Ordering::Relaxed)).collect(),
            backpressure_waits_per_producer: prods
                .map(|i| self.prod_u64(i, LINE_BP_WAITS).load(Ordering::Relaxed))
                .collect(),
            received_per_consumer: conss
                .clone()
                .map(|j| self.cons_u64(j, LINE_RECEIVED).load(Ordering::Relaxed))
                .collect(),
            dropped_per_consumer: conss.map(|j| self.cons_u64(j, LINE_DROPPED).load(Ordering::Relaxed)).collect(),
        }
    }

    /// Marks the ring broken for good and wakes everyone to see it; the error to return.
    ///
    /// A reservation that can never be published blocks `published` forever, and corrupt positions mean no
    /// record can be trusted, so every endpoint fails fast instead of waiting for what cannot come.
    pub(crate) fn break_ring(&self, why: &str, pos: u64) -> Error {
        self.broken().store(1, Ordering::Release);
        self.wake_all();
        Error::Broken(format!("{why} (position {pos})"))
    }

    /// `Err` when another endpoint marked the ring broken.
    pub(crate) fn check_not_broken(&self) -> Result<()> {
        if self.broken().load(Ordering::Acquire) == 0 {
            return Ok(());
        }
        Err(Error::Broken("another endpoint found it corrupt or a producer died mid-publish".into()))
    }

    fn u64_at(&self, off: usize) -> &AtomicU64 {
        assert!(off.is_multiple_of(8) && off + 8 <= self.len, "shared word outside the mapping");
        // SAFETY: in bounds and aligned (the mapping is page-aligned); shared words are only accessed atomically.
        unsafe { &*(self.base.add(off) as *const AtomicU64) }
    }

    fn u32_at(&self, off: usize) -> &AtomicU32 {
        assert!(off.is_multiple_of(4) && off + 4 <= self.len, "shared word outside the mapping");
        // SAFETY: as u64_at.
        unsafe { &*(self.base.add(off) as *const AtomicU32) }
    }

    pub(crate) fn reserve(&self) -> &AtomicU64 {
        self.u64_at(OFF_RESERVE)
    }
    pub(crate) fn published(&self) -> &AtomicU64 {
        self.u64_at(OFF_PUBLISHED)
    }
    pub(crate) fn data_seq(&self) -> &AtomicU32 {
        self.u32_at(OFF_DATA_SEQ)
    }
    pub(crate) fn data_waiters(&self) -> &AtomicU32 {
        self.u32_at(OFF_DATA_WAITERS)
    }
    pub(crate) fn space_seq(&self) -> &AtomicU32 {
        self.u32_at(OFF_SPACE_SEQ)
    }
    pub(crate) fn space_waiters(&self) -> &AtomicU32 {
        self.u32_at(OFF_SPACE_WAITERS)
    }
    pub(crate) fn closed(&self) -> &AtomicU32 {
        self.u32_at(OFF_CLOSED)
    }
    pub(crate) fn broken(&self) -> &AtomicU32 {
        self.u32_at(OFF_BROKEN)
    }

    fn prod_line(&self, i: u32) -> usize {
        assert!(i < self.meta.producers);
        HEADER_SIZE + i as usize * LINE_SIZE
    }

    fn cons_line(&self, j: u32) -> usize {
        assert!(j < self.meta.consumers);
        HEADER_SIZE + (self.meta.producers + j) as usize * LINE_SIZE
    }

    pub(crate) fn prod_u64(&self, i: u32, field: usize) -> &AtomicU64 {
        self.u64_at(self.prod_line(i) + field)
    }

    fn i32_at(&self, off: usize) -> &AtomicI32 {
        assert!(off.is_multiple_of(4) && off + 4 <= self.len, "shared word outside the mapping");
        // SAFETY: as u64_at.
        unsafe { &*(self.base.add(off) as *const AtomicI32) }
    }

    pub(crate) fn prod_pid(&self, i: u32) -> &AtomicI32 {
        self.i32_at(self.prod_line(i) + LINE_PID)
    }

    pub(crate) fn cons_u64(&self, j: u32, field: usize) -> &AtomicU64 {
        self.u64_at(self.cons_line(j) + field)
    }

    /// Shared rings: the pid of the process that stored consumer `j`'s `holding`.
    pub(crate) fn holder_pid(&self, j: u32) -> &AtomicI32 {
        self.i32_at(self.cons_line(j) + LINE_HOLDER_PID)
    }

    /// The u32 at byte `off` of the data area (record lengths and flags).
    pub(crate) fn data_u32(&self, off: u64) -> &AtomicU32 {
        assert!(off + 4 <= self.meta.capacity, "record header outside the data area");
        self.u32_at((self.meta.data_offset + off) as usize)
    }

    /// Reads (and ignores) the first two cache lines of the record at byte `off` of the data area, so that a
    /// waiting consumer fetches the producer's next record in parallel with `published` (ABI section 7).
    pub(crate) fn warm_record(&self, off: u64) {
        let cap = self.meta.capacity;
        assert!(off + 4 <= cap, "record header outside the data area");
        touch(self.base.wrapping_add((self.meta.data_offset + off) as usize));
        if off + 64 < cap {
            touch(self.base.wrapping_add((self.meta.data_offset + ((off + 64) & !63)) as usize));
        }
    }

    /// Copies `src` to byte `off` of the data area.
    pub(crate) fn write_data(&self, off: u64, src: &[u8]) {
        assert!(
            off <= self.meta.capacity && src.len() as u64 <= self.meta.capacity - off,
            "payload outside the data area"
        );
        // SAFETY: in bounds (asserted); the bytes belong to this producer's reservation. Plain copies, as memcpy
        // in _ring.c: they are published by the RELEASE store of `published`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.as_ptr(),
                self.base.add((self.meta.data_offset + off) as usize),
                src.len(),
            )
        }
    }

    /// Appends `len` bytes from byte `off` of the data area to `out`.
    pub(crate) fn read_data(&self, off: u64, len: usize, out: &mut Vec<u8>) {
        assert!(off <= self.meta.capacity && len as u64 <= self.meta.capacity - off, "payload outside the data area");
        out.reserve(len);
        // SAFETY: in bounds (asserted); below `published`, so written and published (ACQUIRE) before this read.
        // Under drop_oldest a producer may overwrite it meanwhile; the cursor CAS that follows detects that. On a
        // shared ring the record was taken by this consumer, and nobody releases it before this copy is done.
        unsafe {
            let src = self.base.add((self.meta.data_offset + off) as usize);
            std::ptr::copy_nonoverlapping(src, out.as_mut_ptr().add(out.len()), len);
            out.set_len(out.len() + len);
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.heap.is_none() {
            // SAFETY: every endpoint holds an Arc of this segment, so none is left.
            unsafe { sys::unmap(self.base, self.len) }
        }
    }
}

/// Loads the word at `p` and discards it: a hardware read outside the language's memory model (so it cannot race
/// with a producer's copy), used only to pull a cache line in early. Nothing elsewhere.
#[inline(always)]
fn touch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `p` is inside the mapping (the caller checks the offset); the load's value is discarded.
    unsafe {
        std::arch::asm!("mov {0:e}, dword ptr [{1}]", out(reg) _, in(reg) p, options(nostack, readonly, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above.
    unsafe {
        std::arch::asm!("ldr {0:w}, [{1}]", out(reg) _, in(reg) p, options(nostack, readonly, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}
