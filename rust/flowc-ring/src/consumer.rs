//! The consumer side: read the record at this consumer's cursor once `published` (ACQUIRE) is past it, copy
//! it out, and give the space back by storing the cursor (RELEASE; a CAS under drop_oldest, where producers move
//! the cursors of slow consumers too). On a shared ring the consumers take turns instead (`shared.rs`).

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::layout::*;
use crate::producer::diff;
use crate::segment::Segment;
use crate::shared;
use crate::wait::{self, Budget, Deadline};

/// What a [`Consumer::recv`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// One message, now in the buffer (its length).
    Message(usize),
    /// The timeout passed with nothing to read.
    TimedOut,
    /// The writers are closed and every message has been read: nothing more will come.
    Closed,
}

/// One consumer cursor of a ring; `recv` takes `&mut self`, so one thread at a time moves a cursor.
///
/// On a [shared](Segment::shared) ring the consumers are one group: each message goes to exactly one of them,
/// and each sees every producer's messages that it takes in that producer's order.
pub struct Consumer {
    seg: Arc<Segment>,
    index: u32,
    cap: u64,
    drop: bool,
    shared: bool,
    /// This process's id, stored in the line as the holder's on a shared ring.
    pid: i32,
    budget: Budget,
    /// Last seen `published`: it only grows, so a stale value is safe, and it is re-read only when it says
    /// "empty", which keeps its cache line from bouncing.
    cached: u64,
}

impl Consumer {
    pub(crate) fn new(seg: Arc<Segment>, index: u32) -> Consumer {
        let m = *seg.meta();
        Consumer {
            cap: m.capacity,
            drop: m.drop_oldest(),
            shared: m.shared(),
            pid: std::process::id() as i32,
            budget: Budget::of(&m),
            cached: 0,
            seg,
            index,
        }
    }

    /// Overrides the ring's busy-poll and yield budgets for this endpoint.
    ///
    /// # Errors
    /// [`Error::BadBudget`](crate::Error::BadBudget) beyond one second each.
    pub fn set_wait_budget(&mut self, spin: Duration, yield_: Duration) -> Result<()> {
        self.budget = Budget::checked(spin, yield_)?;
        Ok(())
    }

    /// The segment this consumer reads.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    /// Bytes (records and padding) published but not yet read by this consumer (on a shared ring: not yet taken
    /// by any consumer of the group).
    pub fn pending(&self) -> u64 {
        let (line, field) = if self.shared { (0, LINE_TAKEN) } else { (self.index, LINE_CURSOR) };
        let c = self.seg.cons_u64(line, field).load(Ordering::Acquire);
        self.seg.published().load(Ordering::Acquire).wrapping_sub(c)
    }

    /// Receives the next message into `buf` (cleared first), waiting at most `timeout` (`None`: for ever).
    ///
    /// Returns [`Received::Closed`] at once when the writers are closed and everything was read (on a shared
    /// ring: taken by the group). On a shared ring a message, once taken, is released in the order the group took
    /// them, so the call may wait (beyond `timeout`) for consumers that took earlier messages to finish copying;
    /// one that died meanwhile is skipped and its message counted as dropped.
    ///
    /// # Errors
    /// [`Error::Broken`](crate::Error::Broken) when the segment's positions or records are corrupt (the ring is
    /// then marked broken for every endpoint), or another endpoint marked it so.
    pub fn recv(&mut self, buf: &mut Vec<u8>, timeout: Option<Duration>) -> Result<Received> {
        buf.clear();
        self.consume(buf, wait::deadline(timeout))
    }

    fn consume(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<Received> {
        if self.shared {
            return shared::consume(&self.seg, self.index, self.pid, self.budget, buf, deadline);
        }
        let seg = Arc::clone(&self.seg);
        let cursor = seg.cons_u64(self.index, LINE_CURSOR);
        let cap = self.cap;
        loop {
            let c = cursor.load(if self.drop { Ordering::Acquire } else { Ordering::Relaxed });
            if diff(c, self.cached) >= 0 {
                self.cached = seg.published().load(Ordering::Acquire);
            }
            // loaded after the cursor, `published` can only be at or past it; behind it the positions are corrupt
            // (and waiting for "published != cursor" would return at once, for ever)
            if diff(self.cached, c) < 0 {
                self.cached = seg.published().load(Ordering::Acquire);
                if diff(self.cached, c) < 0 {
                    return Err(seg.break_ring("consumer cursor ahead of the published position", c));
                }
            }
            if c == self.cached {
                seg.check_not_broken()?;
                if seg.closed().load(Ordering::Acquire) != 0 {
                    if seg.published().load(Ordering::Acquire) == c {
                        return Ok(Received::Closed);
                    }
                    continue;
                }
                let cached = &mut self.cached;
                let ready = || {
                    seg.warm_record(c % cap);
                    *cached = seg.published().load(Ordering::Acquire);
                    *cached != c
                        || seg.closed().load(Ordering::Acquire) != 0
                        || seg.broken().load(Ordering::Acquire) != 0
                };
                if !wait::wait_for(ready, seg.data_seq(), seg.data_waiters(), deadline, self.budget) {
                    return Ok(Received::TimedOut);
                }
                continue;
            }
            // an unaligned cursor would put a record header across the end of the data area
            if c & 7 != 0 {
                return Err(seg.break_ring("unaligned consumer cursor", c));
            }
            // backpressure: producers never pass a cursor, so more than a ring of unread bytes is corrupt.
            // drop_oldest: producers move a lagging cursor before they publish, so a reload sees it moved.
            if diff(self.cached, c) > cap as i64 {
                if self.drop && cursor.load(Ordering::Acquire) != c {
                    continue;
                }
                return Err(seg.break_ring("consumer cursor more than a ring behind", c));
            }
            let off = c % cap; // aligned and cap >= MIN_CAPACITY: off + REC_HDR <= cap
            let len = seg.data_u32(off).load(Ordering::Relaxed);
            let flags = seg.data_u32(off + 4).load(Ordering::Relaxed);
            if flags & REC_PAD != 0 {
                self.advance(c, c.wrapping_add(cap - off));
                continue;
            }
            let r = rec_size(len.into());
            // the length is read from shared memory: bounded by this ring's limit and by the end of the data
            if u64::from(len) > seg.max_message() || r > cap - off {
                if self.drop {
                    // overwritten under us if a producer moved the cursor (it does so before writing); an
                    // unchanged cursor means a corrupt record, and retrying it would spin for ever
                    fence(Ordering::Acquire);
                    if cursor.load(Ordering::Relaxed) != c {
                        continue;
                    }
                }
                return Err(seg.break_ring("corrupt record length", c));
            }
            buf.clear();
            seg.read_data(off + REC_HDR, len as usize, buf);
            if !self.advance(c, c.wrapping_add(r)) {
                continue; // drop_oldest: a producer dropped this record while we copied it
            }
            let received = seg.cons_u64(self.index, LINE_RECEIVED);
            received.store(received.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            return Ok(Received::Message(len as usize));
        }
    }

    /// Gives the space of [c, to) back; false when a producer moved the cursor first (drop_oldest).
    fn advance(&self, c: u64, to: u64) -> bool {
        let seg = &self.seg;
        let cursor = seg.cons_u64(self.index, LINE_CURSOR);
        if self.drop {
            return cursor.compare_exchange(c, to, Ordering::AcqRel, Ordering::Relaxed).is_ok();
        }
        cursor.store(to, Ordering::Release); // our reads of the record happen before a producer reuses it
        wait::doorbell_ring(seg.space_seq(), seg.space_waiters());
        true
    }
}
