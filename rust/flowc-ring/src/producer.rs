//! The producer side: reserve a byte range with a CAS on `reserve`, write the record, publish in reservation
//! order, and ring the data doorbell. Under `drop_oldest`, first move slow consumers past their oldest records. On
//! a shared ring (work sharing) the space is what the consumer group released: consumer line 0's cursor alone.
//!
//! Positions are 64-bit byte counters that only grow; they are compared by signed difference, as in `_ring.c`.
//! Every position read from the segment is checked (alignment, distance to the cursors) before it is used.

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::layout::*;
use crate::segment::Segment;
use crate::sys;
use crate::wait::{self, Budget, Deadline, StallClock, STALL_CHECK, STALL_SPINS};

/// Past its deadline, a producer holding a reservation waits at most this long for a live reserver ahead of it.
const PUBLISH_STALL: Duration = Duration::from_secs(1);

/// What became of a [`Producer::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// The message is published.
    Sent,
    /// The timeout passed first (backpressure: no space; drop_oldest: a record ahead was still being written).
    TimedOut,
    /// The writers are closed; the message was not sent.
    Closed,
}

/// One producer slot of a ring; `send` takes `&mut self`, so one thread at a time writes a slot.
pub struct Producer {
    seg: Arc<Segment>,
    index: u32,
    cap: u64,
    drop: bool,
    /// The ring has one producer slot (this one): the reservation needs no compare-and-swap.
    single: bool,
    /// Shared ring: only consumer line 0's cursor (the group's release position) bounds the space.
    shared: bool,
    budget: Budget,
    pid: i32,
    /// Last seen lowest consumer cursor: it only grows, so a stale value is safe, and the cursors are re-read
    /// only when it says "full", which keeps their cache lines from bouncing.
    cached: u64,
}

impl Producer {
    pub(crate) fn new(seg: Arc<Segment>, index: u32) -> Producer {
        let m = *seg.meta();
        Producer {
            cap: m.capacity,
            drop: m.drop_oldest(),
            single: m.producers == 1,
            shared: m.shared(),
            budget: Budget::of(&m),
            pid: std::process::id() as i32,
            cached: 0,
            seg,
            index,
        }
    }

    /// Overrides the ring's busy-poll and yield budgets for this endpoint.
    ///
    /// # Errors
    /// [`Error::BadBudget`] beyond one second each.
    pub fn set_wait_budget(&mut self, spin: Duration, yield_: Duration) -> Result<()> {
        self.budget = Budget::checked(spin, yield_)?;
        Ok(())
    }

    /// The segment this producer writes.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    /// Copies `data` into the ring as one message.
    ///
    /// Under backpressure it waits for space, at most `timeout` (`None`: for ever); under drop_oldest it never
    /// waits for consumers. Once the ring is closed it returns [`Sent::Closed`].
    ///
    /// # Errors
    /// [`Error::TooLarge`] beyond [`Segment::max_message`]; [`Error::Broken`] when the segment's positions or
    /// records are corrupt, or a producer ahead died (or stalled for a second past `timeout`) mid-publish.
    pub fn send(&mut self, data: &[u8], timeout: Option<Duration>) -> Result<Sent> {
        let max = self.seg.max_message();
        if data.len() as u64 > max {
            return Err(Error::TooLarge { len: data.len(), max });
        }
        self.produce(data, wait::deadline(timeout))
    }

    fn produce(&mut self, src: &[u8], deadline: Deadline) -> Result<Sent> {
        let seg = Arc::clone(&self.seg);
        let cap = self.cap;
        let rec = rec_size(src.len() as u64);
        let mut waited = false;
        let (h, end, pad) = loop {
            if seg.closed().load(Ordering::Acquire) != 0 {
                return Ok(Sent::Closed); // producers are done: refuse rather than block at shutdown
            }
            seg.check_not_broken()?;
            let h = seg.reserve().load(Ordering::Relaxed);
            // positions are multiples of 8: an unaligned one would put a record header across the end of the data
            if h & 7 != 0 {
                return Err(seg.break_ring("unaligned reserve position", h));
            }
            let off = h % cap;
            let pad = if off + rec > cap { cap - off } else { 0 };
            let end = h.wrapping_add(pad + rec);
            if self.drop {
                if !self.make_room(end, deadline)? {
                    return Ok(Sent::TimedOut);
                }
            } else if !self.space_ok(end) {
                // a reservation is at most a ring ahead of the slowest cursor and a record at most a quarter of a
                // ring: further apart, the positions are corrupt and space would never come
                if diff(end, self.cached) > 2 * cap as i64 {
                    // see the cursors the reserver of h saw
                    let _ = seg.reserve().load(Ordering::Acquire);
                    if !self.space_ok(end) && diff(end, self.cached) > 2 * cap as i64 {
                        return Err(seg.break_ring("reserve position too far ahead of the cursors", h));
                    }
                    continue;
                }
                if wait::expired(deadline, Instant::now()) {
                    return Ok(Sent::TimedOut);
                }
                waited = true;
                let budget = self.budget;
                let ok = wait::wait_for(|| self.space_ok(end), seg.space_seq(), seg.space_waiters(), deadline, budget);
                if !ok {
                    return Ok(Sent::TimedOut);
                }
                continue;
            }
            // The claim precedes the CAS, so it is visible with any reservation at or after h (reserver_alive);
            // RELEASE orders our last publish before the new claim.
            seg.prod_pid(self.index).store(self.pid, Ordering::Relaxed);
            seg.prod_u64(self.index, LINE_CLAIM).store(h, Ordering::Release);
            if self.single && !self.drop {
                // The ring's only producer: nobody else moves `reserve`, so no compare-and-swap (a locked
                // instruction on the path of every send). RELEASE, as the CAS: a reader of it sees the claim.
                seg.reserve().store(end, Ordering::Release);
                break (h, end, pad);
            }
            // ACQ_REL: the payload stores below stay after the claim
            if seg.reserve().compare_exchange(h, end, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                break (h, end, pad);
            }
        };
        // drop_oldest: the cursors moved past [h, end) are ordered before our writes there, so a reader that sees
        // the new bytes and then its old cursor knows the record is corrupt, not torn.
        if self.drop {
            fence(Ordering::Release);
        }
        let mut off = h % cap;
        if pad != 0 {
            seg.data_u32(off).store(0, Ordering::Relaxed);
            seg.data_u32(off + 4).store(REC_PAD, Ordering::Relaxed);
            off = 0;
        }
        seg.data_u32(off).store(src.len() as u32, Ordering::Relaxed);
        seg.data_u32(off + 4).store(0, Ordering::Relaxed);
        seg.write_data(off + REC_HDR, src);
        // commit in reservation order so `published` is one counter; only other producers' copies are awaited
        if seg.published().load(Ordering::Acquire) != h {
            self.wait_published(h, true, deadline)?;
        }
        seg.published().store(end, Ordering::Release);
        let sent = seg.prod_u64(self.index, LINE_SENT);
        sent.store(sent.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if waited {
            let waits = seg.prod_u64(self.index, LINE_BP_WAITS);
            waits.store(waits.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        wait::doorbell_ring(seg.data_seq(), seg.data_waiters());
        Ok(Sent::Sent)
    }

    /// Backpressure: whether a reservation ending at `end` fits before the slowest cursor (on a shared ring the
    /// group's release position, consumer line 0's cursor; also true once the ring is closed or broken, so that a
    /// waiter stops and the loop reports it).
    fn space_ok(&mut self, end: u64) -> bool {
        let seg = &self.seg;
        if diff(end, self.cached) <= self.cap as i64 {
            return true;
        }
        if seg.closed().load(Ordering::Acquire) != 0 || seg.broken().load(Ordering::Acquire) != 0 {
            return true;
        }
        // ACQUIRE: each consumer's reads of the space happen before we overwrite it
        let cursors = if self.shared { 1 } else { seg.meta().consumers };
        let low = (0..cursors).map(|j| seg.cons_u64(j, LINE_CURSOR).load(Ordering::Acquire)).min().unwrap_or(u64::MAX);
        self.cached = low;
        diff(end, low) <= self.cap as i64
    }

    /// drop_oldest: moves every consumer more than a ring behind `end` past its oldest records.
    /// `Ok(false)` on timeout.
    fn make_room(&mut self, end: u64, deadline: Deadline) -> Result<bool> {
        let seg = Arc::clone(&self.seg);
        let cap = self.cap;
        for j in 0..seg.meta().consumers {
            let cursor = seg.cons_u64(j, LINE_CURSOR);
            loop {
                let c = cursor.load(Ordering::Acquire);
                if diff(end, c) <= cap as i64 {
                    break;
                }
                // earlier reservations left this cursor at most a ring behind, and our record is at most half a
                // ring with its pad: further behind is corrupt (and would loop for a long time)
                if diff(end, c) > 2 * cap as i64 {
                    // h was loaded relaxed: order us after its reserver, which moved the cursors first
                    let _ = seg.reserve().load(Ordering::Acquire);
                    if diff(end, cursor.load(Ordering::Acquire)) > 2 * cap as i64 {
                        return Err(seg.break_ring("consumer cursor far behind", c));
                    }
                    continue;
                }
                if c & 7 != 0 {
                    return Err(seg.break_ring("unaligned consumer cursor", c));
                }
                if diff(seg.published().load(Ordering::Acquire), c) <= 0 {
                    // the oldest record is still being written by another producer: it commits soon
                    if !self.wait_published(c, false, deadline)? {
                        return Ok(false);
                    }
                    continue;
                }
                let off = c % cap; // aligned and cap >= MIN_CAPACITY: off + REC_HDR <= cap
                let len = seg.data_u32(off).load(Ordering::Relaxed);
                let flags = seg.data_u32(off + 4).load(Ordering::Relaxed);
                let r = if flags & REC_PAD != 0 { cap - off } else { rec_size(len.into()) };
                if u64::from(len) > seg.max_message() || r > cap - off {
                    // Torn read: another producer moved this cursor and overwrote the record (it moves the cursor
                    // before writing); an unchanged cursor means a corrupt record, and retrying would spin.
                    fence(Ordering::Acquire);
                    if cursor.load(Ordering::Relaxed) == c {
                        return Err(seg.break_ring("corrupt record length", c));
                    }
                    continue;
                }
                if cursor.compare_exchange(c, c.wrapping_add(r), Ordering::AcqRel, Ordering::Acquire).is_ok()
                    && flags & REC_PAD == 0
                {
                    seg.cons_u64(j, LINE_DROPPED).fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(true)
    }

    /// Waits for the producers ahead: until `published == pos` (`turn`: we hold the reservation at pos) or
    /// `published > pos` (`!turn`: make_room waits for the oldest record to be committed). A dead or absent
    /// reserver, or a position no legal sequence of commits produces, breaks the ring. Only `!turn` gives up at
    /// the deadline (`Ok(false)`); `turn` gives a live reserver [`PUBLISH_STALL`] past it.
    fn wait_published(&self, pos: u64, turn: bool, deadline: Deadline) -> Result<bool> {
        let seg = &self.seg;
        let mut spins = 0u32;
        let mut stall = StallClock::new();
        loop {
            let p = seg.published().load(Ordering::Acquire);
            let ahead = diff(p, pos);
            if if turn { ahead == 0 } else { ahead > 0 } {
                return Ok(true);
            }
            // `published` only grows and never passes an unpublished reservation
            if if turn { ahead > 0 } else { ahead < 0 } {
                return Err(seg.break_ring("published position passed a reservation", p));
            }
            spins += 1;
            if spins <= STALL_SPINS {
                std::hint::spin_loop();
                continue;
            }
            let t = Instant::now();
            let check = stall.check_due(t);
            if !turn && wait::expired(deadline, t) {
                return Ok(false);
            }
            if check {
                if seg.broken().load(Ordering::Acquire) != 0 {
                    if turn {
                        return Err(seg.break_ring("broken while publishing", pos));
                    }
                    seg.check_not_broken()?;
                }
                if !self.reserver_alive(p) {
                    return Err(seg.break_ring("the producer reserving this position is gone", p));
                }
                if turn && wait::expired(deadline, t) && stall.elapsed(t) >= PUBLISH_STALL {
                    return Err(seg.break_ring("a producer stalled mid-publish past the timeout", p));
                }
            }
            if stall.elapsed(t) < STALL_CHECK {
                sys::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50)); // a long stall: stop burning the core
            }
        }
    }

    /// Whether `published` is no longer stuck at `p`, or a producer that claimed `p` may still publish it.
    fn reserver_alive(&self, p: u64) -> bool {
        let seg = &self.seg;
        // ACQUIRE on `reserve`: a claim is stored before its reserve CAS, so every reservation below the value
        // read here has its claim visible
        let _ = seg.reserve().load(Ordering::Acquire);
        for j in 0..seg.meta().producers {
            if j == self.index {
                continue; // our own claim is a reservation we published already
            }
            // ACQUIRE pairs with the claim's RELEASE store: a claim that moved on comes with the publish before it
            if seg.prod_u64(j, LINE_CLAIM).load(Ordering::Acquire) == p
                && sys::pid_alive(seg.prod_pid(j).load(Ordering::Relaxed))
            {
                return true;
            }
        }
        // the reserver may have published p and claimed its next position while we scanned
        seg.published().load(Ordering::Acquire) != p
    }
}

/// `a - b` of two positions, signed: positions only grow, so this orders them even across a wrap of u64.
pub(crate) fn diff(a: u64, b: u64) -> i64 {
    a.wrapping_sub(b) as i64
}
