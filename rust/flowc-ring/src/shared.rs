//! Shared delivery (work sharing, ABI section 12): the consumers of a `SHARED` ring form one group, and each
//! message goes to exactly one of them.
//!
//! Consumer line 0 holds the group's two positions: `taken`, the next record to hand out, which consumers claim
//! with a CAS, and `cursor`, the release position below which every record has been copied out (producers wait
//! on it alone). A consumer copies the record it took and then releases it in claim order, as producers publish
//! in reservation order; while it waits for the consumers ahead of it, it checks that they are alive (their line's
//! `holding` and `holder_pid`) and releases the record of one that died while copying on its behalf. That wait has
//! no deadline, so it stops on a release position more than a ring behind its claim (corrupt: it breaks the ring)
//! and on a ring another endpoint marked broken.
//!
//! This is `consume_shared`, `release_shared` and `holder_alive` of `flowc_ring.c`, atomic for atomic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::consumer::Received;
use crate::error::Result;
use crate::layout::*;
use crate::producer::diff;
use crate::segment::Segment;
use crate::sys;
use crate::wait::{self, Budget, Deadline, StallClock, STALL_SPINS};

/// A consumer waiting to release in claim order yields this long, then sleeps on the space doorbell: a copy takes
/// well under a microsecond, so a longer wait means the taker ahead was preempted, and spinning on an
/// oversubscribed machine would only keep it off the core.
const RELEASE_YIELD: Duration = Duration::from_micros(50);

/// Receives one message for consumer `index` of a shared ring: take the record at the group's `taken` position
/// with a CAS, copy it into `buf`, release it in claim order. `pid` is this process's, stored as the holder's.
pub(crate) fn consume(
    seg: &Segment,
    index: u32,
    pid: i32,
    budget: Budget,
    buf: &mut Vec<u8>,
    deadline: Deadline,
) -> Result<Received> {
    let cap = seg.capacity();
    let taken = seg.cons_u64(0, LINE_TAKEN);
    let holding = seg.cons_u64(index, LINE_HOLDING);
    // a consumer waiting behind us finds us through this pid (and our `holding`) and asks whether we are alive
    seg.holder_pid(index).store(pid, Ordering::Relaxed);
    loop {
        let t = taken.load(Ordering::Acquire);
        let p = seg.published().load(Ordering::Acquire);
        // loaded after `taken`, which only moves up to what was published, `published` is at or past it
        if diff(p, t) < 0 {
            return Err(seg.break_ring("shared position ahead of the published position", t));
        }
        if p == t {
            seg.check_not_broken()?;
            if seg.closed().load(Ordering::Acquire) != 0 {
                if seg.published().load(Ordering::Acquire) == taken.load(Ordering::Acquire) {
                    return Ok(Received::Closed); // closed and drained
                }
                continue;
            }
            let ready = || {
                seg.published().load(Ordering::Acquire) != t
                    || taken.load(Ordering::Acquire) != t
                    || seg.closed().load(Ordering::Acquire) != 0
                    || seg.broken().load(Ordering::Acquire) != 0
            };
            if !wait::wait_for(ready, seg.data_seq(), seg.data_waiters(), deadline, budget) {
                return Ok(Received::TimedOut);
            }
            continue;
        }
        if t & 7 != 0 || diff(p, t) > cap as i64 {
            // `t` may be stale: others took and released past it, and producers published a ring more, between
            // our two loads. Corrupt only if `taken` still says t.
            if taken.load(Ordering::Acquire) != t {
                continue;
            }
            let why = if t & 7 != 0 { "unaligned shared position" } else { "shared position more than a ring behind" };
            return Err(seg.break_ring(why, t));
        }
        let off = t % cap; // aligned and cap >= MIN_CAPACITY: off + REC_HDR <= cap
        let (len, pad, size) = record_at(seg, off);
        if u64::from(len) > seg.max_message() || size > cap - off {
            // another consumer may have taken it and the space been reused since we loaded `taken`
            if taken.load(Ordering::Acquire) != t {
                continue;
            }
            return Err(seg.break_ring("corrupt record length", t));
        }
        holding.store(t, Ordering::Relaxed);
        // A successful CAS means nobody took t before us, so nothing released it and its bytes are as read.
        if taken.compare_exchange(t, t.wrapping_add(size), Ordering::AcqRel, Ordering::Acquire).is_err() {
            holding.store(NOT_HOLDING, Ordering::Relaxed);
            continue; // another consumer took it
        }
        if !pad {
            buf.clear();
            seg.read_data(off + REC_HDR, len as usize, buf);
        }
        let released = release(seg, index, t, t.wrapping_add(size));
        holding.store(NOT_HOLDING, Ordering::Relaxed);
        released?;
        if pad {
            continue;
        }
        let received = seg.cons_u64(index, LINE_RECEIVED);
        received.store(received.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        return Ok(Received::Message(len as usize));
    }
}

/// The header of the record at byte `off` of the data area (aligned, so inside it): its length, whether it is a
/// PAD record, and the bytes it covers (a PAD record's, the rest of the area). Unchecked: the caller bounds them.
fn record_at(seg: &Segment, off: u64) -> (u32, bool, u64) {
    let len = seg.data_u32(off).load(Ordering::Relaxed);
    let flags = seg.data_u32(off + 4).load(Ordering::Relaxed);
    let pad = flags & REC_PAD != 0;
    (len, pad, if pad { seg.capacity() - off } else { rec_size(len.into()) })
}

/// Releases [pos, next) once every record before it is released: consumers finish copying in any order, and the
/// group's release position moves in claim order, like `published` for producers. A record whose taker died while
/// copying it is released on its behalf and counted as dropped by consumer `index`. The wait has no deadline (the
/// record is ours and must be released in order), so it ends on what can never be released: a release position no
/// legal sequence of releases produces (the ring is corrupt: broken here), or a ring another endpoint marked broken.
fn release(seg: &Segment, index: u32, pos: u64, next: u64) -> Result<()> {
    let cap = seg.capacity();
    let cursor = seg.cons_u64(0, LINE_CURSOR);
    let mut spins = 0u32;
    let mut stall = StallClock::new();
    loop {
        let r = cursor.load(Ordering::Acquire);
        if r == pos {
            break;
        }
        if diff(r, pos) > 0 || r & 7 != 0 {
            return Err(seg.break_ring("shared release position passed a claim", r));
        }
        // Producers publish at most a ring past the release position (which only grows), and we took a published
        // record: further behind our claim, the positions are corrupt, and what lies between would be skipped as
        // records of dead holders for ever.
        if diff(pos, r) > cap as i64 {
            return Err(seg.break_ring("shared release position more than a ring behind", r));
        }
        spins = spins.saturating_add(1);
        if spins <= STALL_SPINS {
            std::hint::spin_loop();
            continue;
        }
        // broken by another endpoint: nobody releases on a broken ring (one load, past the spins)
        seg.check_not_broken()?;
        let t = Instant::now();
        if stall.check_due(t) && !holder_alive(seg, r) {
            skip_dead_holder(seg, index, cursor, r, cap)?;
            continue;
        }
        if stall.elapsed(t) < RELEASE_YIELD {
            sys::yield_now(); // the taker ahead is usually still copying on the other core
            continue;
        }
        // Longer: the taker ahead was preempted. Sleep on the space doorbell (every release rings it) so this core
        // goes to it instead of to our spinning; wake at the next liveness check at the latest.
        wait::sleep_on_doorbell(seg.space_seq(), seg.space_waiters(), cursor, r, stall.until_check(t));
    }
    cursor.store(next, Ordering::Release); // our copy of the record happens before a producer reuses the space
    wait::doorbell_ring(seg.space_seq(), seg.space_waiters());
    Ok(())
}

/// Moves the release position past the record at `r`, whose taker died while copying it: the message is lost (it
/// was taken, and nobody may take it twice), counted in consumer `index`'s `dropped`.
fn skip_dead_holder(seg: &Segment, index: u32, cursor: &AtomicU64, r: u64, cap: u64) -> Result<()> {
    let off = r % cap; // aligned (checked by the caller): off + REC_HDR <= cap
    let (len, pad, size) = record_at(seg, off);
    if u64::from(len) > seg.max_message() || size > cap - off {
        return Err(seg.break_ring("corrupt record length", r));
    }
    if cursor.compare_exchange(r, r.wrapping_add(size), Ordering::AcqRel, Ordering::Relaxed).is_ok() {
        if !pad {
            seg.cons_u64(index, LINE_DROPPED).fetch_add(1, Ordering::Relaxed);
        }
        wait::doorbell_ring(seg.space_seq(), seg.space_waiters());
    }
    Ok(())
}

/// Whether the consumer that took the record at `pos` may still release it (alive as far as the kernel says), or
/// the release position moved on meanwhile; false when it died holding it. A holder stores `holding` before its
/// claim CAS on `taken`, and ours came later in that CAS chain, so its `holding` is visible here.
fn holder_alive(seg: &Segment, pos: u64) -> bool {
    for j in 0..seg.meta().consumers {
        if seg.cons_u64(j, LINE_HOLDING).load(Ordering::Acquire) == pos
            && sys::pid_alive(seg.holder_pid(j).load(Ordering::Relaxed))
        {
            return true;
        }
    }
    seg.cons_u64(0, LINE_CURSOR).load(Ordering::Acquire) != pos
}
