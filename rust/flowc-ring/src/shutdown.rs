//! Finishing on SIGTERM as flowc's Python actors do (`flowc.runtime.stop`): the launcher stops producers with
//! SIGTERM, and systemd sends it to every actor of a unit it stops. After [`install`], SIGTERM and SIGINT no
//! longer kill the process; they set a flag that [`requested`] reads. A producer stops producing when it is set;
//! a consumer that receives through [`recv`] gets everything still pending, then [`Received::Closed`], and
//! finishes as if its writers had closed the channel.
//!
//! ```no_run
//! use flowc_ring::{shutdown, Channels, Received};
//! shutdown::install()?;
//! let mut input = Channels::from_env()?.consumer("ticks")?;
//! let (mut buf, mut count) = (Vec::new(), 0u64);
//! while let Received::Message(_) = shutdown::recv(&mut input, &mut buf, None)? {
//!     count += 1;
//! }
//! eprintln!("received {count}"); // closed and drained, or stopped and drained
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`send`] does the same for a producer waiting for space: a stop ends the wait (nothing is written).
//!
//! The handler only stores to an atomic (async-signal-safe). A wait on the ring's doorbell is interrupted by the
//! signal or ends within [`POLL`], so the flag is seen within that time even when no message arrives.

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::consumer::{Consumer, Received};
use crate::error::Result;
use crate::producer::{Producer, Sent};

/// How long [`recv`] and [`send`] wait on the ring at a time before they look at the flag again.
pub const POLL: Duration = Duration::from_millis(100);

// Linux's numbers on x86-64 and aarch64 (the only targets of the crate, see sys.rs).
const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;
const SIG_ERR: usize = !0;

static REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" {
    // glibc's and musl's `signal` install a persistent handler with SA_RESTART (BSD semantics).
    fn signal(signum: c_int, handler: usize) -> usize;
}

extern "C" fn on_signal(_signum: c_int) {
    REQUESTED.store(true, Ordering::Relaxed);
}

/// Makes SIGTERM and SIGINT set [`requested`] instead of ending the process. Call it before the first message.
///
/// # Errors
/// The operating system's error if a handler could not be installed.
pub fn install() -> std::io::Result<()> {
    for signum in [SIGTERM, SIGINT] {
        // SAFETY: `on_signal` is an `extern "C" fn(c_int)` that only does an atomic store.
        if unsafe { signal(signum, on_signal as extern "C" fn(c_int) as usize) } == SIG_ERR {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether SIGTERM or SIGINT arrived since [`install`].
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// Receives the next message like [`Consumer::recv`], and once a stop is [`requested`] returns what is still
/// pending without waiting, then [`Received::Closed`].
///
/// It waits at most [`POLL`] at a time, so a stop is noticed while the ring is idle. [`Received::TimedOut`]
/// means `timeout` passed with nothing to read and no stop requested.
///
/// # Errors
/// As [`Consumer::recv`].
pub fn recv(rx: &mut Consumer, buf: &mut Vec<u8>, timeout: Option<Duration>) -> Result<Received> {
    let wait = Steps::new(timeout);
    loop {
        if requested() {
            // a zero timeout reads what is published and does not wait for more
            return Ok(match rx.recv(buf, Some(Duration::ZERO))? {
                Received::TimedOut => Received::Closed,
                got => got,
            });
        }
        match rx.recv(buf, Some(wait.next()))? {
            Received::TimedOut if !wait.expired() => {}
            got => return Ok(got),
        }
    }
}

/// Sends one message like [`Producer::send`], waiting for space at most [`POLL`] at a time. Once a stop is
/// [`requested`] it no longer waits: a message that does not fit at once is not written, and it returns
/// [`Sent::TimedOut`] (as when `timeout` passes; [`requested`] tells the two apart).
///
/// # Errors
/// As [`Producer::send`].
pub fn send(tx: &mut Producer, data: &[u8], timeout: Option<Duration>) -> Result<Sent> {
    let wait = Steps::new(timeout);
    loop {
        let step = if requested() { Duration::ZERO } else { wait.next() };
        match tx.send(data, Some(step))? {
            Sent::TimedOut if !requested() && !wait.expired() => {}
            got => return Ok(got),
        }
    }
}

/// A wait of `timeout` (`None`: for ever) cut into steps of at most [`POLL`].
struct Steps(Option<Instant>);

impl Steps {
    fn new(timeout: Option<Duration>) -> Steps {
        Steps(timeout.and_then(|t| Instant::now().checked_add(t)))
    }

    /// How long the next step may wait.
    fn next(&self) -> Duration {
        self.0.map_or(POLL, |d| d.saturating_duration_since(Instant::now()).min(POLL))
    }

    fn expired(&self) -> bool {
        self.0.is_some_and(|d| Instant::now() >= d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::tests::fresh;
    use crate::{Segment, Sent};

    extern "C" {
        fn raise(signum: c_int) -> c_int;
    }

    // One test: the flag is process-wide, and the test threads share it.
    #[test]
    fn sigterm_sets_the_flag_recv_drains_then_reports_closed_and_send_gives_up() {
        let seg = Segment::from_words(fresh(1024, 1, 1, false)).unwrap();
        let (mut tx, mut rx) = (seg.producer(0).unwrap(), seg.consumer(0).unwrap());
        let mut buf = Vec::new();
        let short = Some(Duration::from_millis(20));
        install().unwrap();
        assert_eq!(recv(&mut rx, &mut buf, short).unwrap(), Received::TimedOut);
        for m in [&b"one"[..], b"two"] {
            assert_eq!(tx.send(m, None).unwrap(), Sent::Sent);
        }
        assert!(!requested());
        // SAFETY: the handler installed above only sets the flag.
        assert_eq!(unsafe { raise(SIGTERM) }, 0);
        assert!(requested());
        let started = Instant::now();
        assert_eq!(recv(&mut rx, &mut buf, None).unwrap(), Received::Message(3));
        assert_eq!(buf, b"one");
        assert_eq!(recv(&mut rx, &mut buf, None).unwrap(), Received::Message(3));
        assert_eq!(buf, b"two");
        assert_eq!(recv(&mut rx, &mut buf, None).unwrap(), Received::Closed);
        assert!(started.elapsed() < POLL, "a stopped consumer does not wait for more");
        assert!(!seg.is_closed(), "stopping one consumer closes nothing for the others");
        // a full ring: a stopped producer does not wait for space, and writes nothing
        let max = vec![1u8; seg.max_message() as usize];
        while tx.send(&max, Some(Duration::ZERO)).unwrap() == Sent::Sent {}
        let published = seg.stats().published_bytes;
        let started = Instant::now();
        assert_eq!(send(&mut tx, &max, None).unwrap(), Sent::TimedOut);
        assert!(started.elapsed() < POLL);
        assert_eq!(seg.stats().published_bytes, published);
    }
}
