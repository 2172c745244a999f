//! Waiting for data or space: spin, then `sched_yield`, then sleep on a futex doorbell in the segment; and
//! ringing that doorbell only when someone sleeps on it, so the fast path makes no system call.

use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::layout::{Meta, MAX_BUDGET_NS};
use crate::sys;

/// A sleeping waiter wakes at least this often (as `_ring.c`'s signal poll): it re-checks its condition, so a
/// lost wake-up costs at most this long.
const POLL: Duration = Duration::from_millis(100);

/// When a wait gives up: `None` waits for ever.
pub(crate) type Deadline = Option<Instant>;

/// The deadline `timeout` from now; a timeout too large to represent is no deadline.
pub(crate) fn deadline(timeout: Option<Duration>) -> Deadline {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

pub(crate) fn expired(deadline: Deadline, now: Instant) -> bool {
    deadline.is_some_and(|d| now >= d)
}

/// Wakes the waiters of a doorbell after a store they wait for.
pub(crate) fn doorbell_ring(seq: &AtomicU32, waiters: &AtomicU32) {
    // Pairs with the waiter's fetch_add + fence: one side always sees the other's store (Dekker).
    fence(Ordering::SeqCst);
    if waiters.load(Ordering::Relaxed) != 0 {
        seq.fetch_add(1, Ordering::Release);
        sys::futex_wake_all(seq);
    }
}

/// An endpoint's busy-poll and yield budgets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub spin: Duration,
    pub yield_: Duration,
}

impl Budget {
    /// The budgets a segment's header sets for its endpoints.
    pub fn of(meta: &Meta) -> Budget {
        Budget { spin: Duration::from_nanos(meta.spin_ns), yield_: Duration::from_nanos(meta.yield_ns) }
    }

    /// Budgets an endpoint asks for instead, each at most one second.
    pub fn checked(spin: Duration, yield_: Duration) -> Result<Budget> {
        let max = Duration::from_nanos(MAX_BUDGET_NS);
        if spin > max || yield_ > max {
            return Err(Error::BadBudget);
        }
        Ok(Budget { spin, yield_ })
    }
}

/// Waits until `cond` holds (true) or the deadline passes (false): spin for the spin budget, yield for the
/// yield budget, then sleep on `seq` after registering in `waiters`.
pub(crate) fn wait_for(
    mut cond: impl FnMut() -> bool,
    seq: &AtomicU32,
    waiters: &AtomicU32,
    deadline: Deadline,
    budget: Budget,
) -> bool {
    let start = Instant::now();
    let spin_end = start + budget.spin;
    let mut i = 0u32;
    loop {
        if cond() {
            return true;
        }
        if i & 15 == 0 {
            let t = if i == 0 { start } else { Instant::now() };
            if expired(deadline, t) {
                return false;
            }
            if t >= spin_end {
                break;
            }
        }
        i = i.wrapping_add(1);
        std::hint::spin_loop();
    }
    let yield_end = spin_end + budget.yield_;
    loop {
        if cond() {
            return true;
        }
        let t = Instant::now();
        if expired(deadline, t) {
            return false;
        }
        if t < yield_end {
            sys::yield_now(); // lets a peer sharing this core run instead of waiting out a time slice
            continue;
        }
        waiters.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let s = seq.load(Ordering::Acquire);
        if cond() {
            waiters.fetch_sub(1, Ordering::SeqCst);
            return true;
        }
        let rel = deadline.map_or(POLL, |d| d.saturating_duration_since(t).min(POLL));
        sys::futex_wait(seq, s, rel);
        waiters.fetch_sub(1, Ordering::SeqCst);
    }
}
