//! Waiting for data or space: spin, then `sched_yield`, then sleep on a futex doorbell in the segment; and
//! ringing that doorbell only when someone sleeps on it, so the fast path makes no system call.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::layout::{Meta, MAX_BUDGET_NS};
use crate::sys;

/// A sleeping waiter wakes at least this often (as `_ring.c`'s signal poll): it re-checks its condition, so a
/// lost wake-up costs at most this long.
const POLL: Duration = Duration::from_millis(100);

/// A wait for another endpoint's progress (a producer ahead publishing, a shared consumer ahead releasing) spins
/// this many rounds before it looks at the clock: the usual wait is a peer's copy of one record.
pub(crate) const STALL_SPINS: u32 = 64;
/// The endpoint a stalled wait depends on is first checked for liveness after this long…
pub(crate) const STALL_CHECK: Duration = Duration::from_millis(1);
/// …and then this often (a syscall, so never on the fast path).
pub(crate) const STALL_POLL: Duration = Duration::from_millis(10);

/// The clock of a wait that has stopped spinning: when it started, and when the next liveness check is due
/// (first [`STALL_CHECK`] after the start, then every [`STALL_POLL`]); `stall_clock` in `flowc_ring.c`.
pub(crate) struct StallClock {
    start: Option<Instant>,
    next_check: Instant,
}

impl StallClock {
    pub fn new() -> StallClock {
        StallClock { start: None, next_check: Instant::now() }
    }

    /// Records the time `t` (the first one starts the clock); true when a liveness check is due now.
    pub fn check_due(&mut self, t: Instant) -> bool {
        if self.start.is_none() {
            self.start = Some(t);
            self.next_check = t + STALL_CHECK;
        }
        if t < self.next_check {
            return false;
        }
        self.next_check = t + STALL_POLL;
        true
    }

    /// How long the wait has lasted at `t` since the clock started (zero before [`StallClock::check_due`]).
    pub fn elapsed(&self, t: Instant) -> Duration {
        self.start.map_or(Duration::ZERO, |s| t.saturating_duration_since(s))
    }

    /// How long from `t` until the next liveness check is due (zero when it is due already).
    pub fn until_check(&self, t: Instant) -> Duration {
        self.next_check.saturating_duration_since(t)
    }
}

/// When a wait gives up: `None` waits for ever.
pub(crate) type Deadline = Option<Instant>;

/// The deadline `timeout` from now; a timeout too large to represent is no deadline.
pub(crate) fn deadline(timeout: Option<Duration>) -> Deadline {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

pub(crate) fn expired(deadline: Deadline, now: Instant) -> bool {
    deadline.is_some_and(|d| now >= d)
}

/// A wait's first polls go flat out, with no `pause` between them: a peer on another core answers within them, and
/// one `pause` lasts about as long as a cache-line transfer on recent x86 cores (`EAGER_POLLS` in `flowc_ring.c`).
const EAGER_POLLS: u32 = 512;

/// A full barrier: stores before it are visible before loads after it. On x86-64 a locked add of zero to the stack,
/// as Linux's `smp_mb()` and `full_barrier` in `flowc_ring.c`: the ordering of `mfence` for ordinary memory, at a
/// fraction of its cost.
#[inline]
pub(crate) fn full_barrier() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: adds zero to a word just below the stack pointer, atomically: no value changes, and the word is this
    // thread's own stack (the red zone), always mapped. The block is also a compiler barrier (no `nomem`).
    unsafe {
        std::arch::asm!("lock add dword ptr [rsp - 4], 0", options(nostack));
    }
    #[cfg(not(target_arch = "x86_64"))]
    fence(Ordering::SeqCst);
}

/// Wakes the waiters of a doorbell after a store they wait for.
pub(crate) fn doorbell_ring(seq: &AtomicU32, waiters: &AtomicU32) {
    // Pairs with the waiter's fetch_add + fence: one side always sees the other's store (Dekker).
    full_barrier();
    if waiters.load(Ordering::Relaxed) != 0 {
        seq.fetch_add(1, Ordering::Release);
        sys::futex_wake_all(seq);
    }
}

/// Sleeps on a doorbell for at most `max` while `word` still holds `value`: the waiter side of the Dekker pairing
/// in [`doorbell_ring`], for a wait that has its own clock (`sleep_on_doorbell` in `flowc_ring.c`).
pub(crate) fn sleep_on_doorbell(seq: &AtomicU32, waiters: &AtomicU32, word: &AtomicU64, value: u64, max: Duration) {
    if max.is_zero() {
        return;
    }
    waiters.fetch_add(1, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    let s = seq.load(Ordering::Acquire);
    if word.load(Ordering::Acquire) == value {
        sys::futex_wait(seq, s, max);
    }
    waiters.fetch_sub(1, Ordering::SeqCst);
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
        if i > EAGER_POLLS {
            std::hint::spin_loop();
        }
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
