//! 64-byte round trips over two flowc rings through this crate, one process per end (bench/ring_rtt.c in Rust).
//!
//! Usage: `ring_rtt ping RING_AB RING_BA N` and `ring_rtt pong RING_AB RING_BA N`. Both rings exist already
//! (SPSC, made by the caller, for example bench/datapath.py); `ping` sends on RING_AB (producer 0) and waits for the
//! echo on RING_BA (consumer 0), `pong` echoes every message back. Both ends do N/10 unmeasured round trips first,
//! then N measured ones, so they agree on the count without talking. The caller pins each process to its CPU.
//! `ping` prints `{"n": N, "p50_ns": ..., "p99_ns": ..., "p999_ns": ...}` on stdout (percentiles interpolate
//! between the two nearest ranks, as flowc.runtime.report.percentile does). A wait longer than 10 s means the
//! other end is gone: the program says so and exits 1 rather than hang.
//!
//! Build: `cargo build --release --offline --examples --manifest-path rust/flowc-ring/Cargo.toml`

use std::process::ExitCode;
use std::time::{Duration, Instant};

use flowc_ring::{Consumer, Producer, Received, Segment, Sent};

const SIZE: usize = 64;
const TIMEOUT: Duration = Duration::from_secs(10);

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let role = args.get(1).map(String::as_str);
    if args.len() != 5 || !matches!(role, Some("ping" | "pong")) {
        eprintln!("usage: ring_rtt ping|pong RING_AB RING_BA N");
        return ExitCode::from(2);
    }
    let n = match args[4].parse::<u64>() {
        Ok(n) if n > 0 => n,
        _ => {
            eprintln!("ring_rtt: N must be a positive integer, not '{}'", args[4]);
            return ExitCode::from(2);
        }
    };
    match run(role == Some("ping"), &args[2], &args[3], n) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ring_rtt: {error}");
            ExitCode::from(1)
        }
    }
}

fn run(is_ping: bool, ab: &str, ba: &str, n: u64) -> BoxResult<()> {
    let (ab, ba) = (Segment::attach(ab)?, Segment::attach(ba)?);
    // ping writes A→B and reads B→A; pong the other way round. Each ring is SPSC, so both use index 0.
    let (tx, rx) = if is_ping { (&ab, &ba) } else { (&ba, &ab) };
    let (mut tx, mut rx) = (tx.producer(0)?, rx.consumer(0)?);
    if is_ping {
        ping(&mut tx, &mut rx, n)
    } else {
        pong(&mut tx, &mut rx, n)
    }
}

fn send_one(tx: &mut Producer, data: &[u8]) -> BoxResult<()> {
    match tx.send(data, Some(TIMEOUT))? {
        Sent::Sent => Ok(()),
        Sent::TimedOut => Err("send timed out: is the other end running?".into()),
        Sent::Closed => Err("send: the ring is closed".into()),
    }
}

fn recv_one(rx: &mut Consumer, buf: &mut Vec<u8>) -> BoxResult<()> {
    match rx.recv(buf, Some(TIMEOUT))? {
        Received::Message(SIZE) => Ok(()),
        Received::Message(len) => Err(format!("received {len} bytes, expected {SIZE}").into()),
        Received::TimedOut => Err("recv timed out: is the other end running?".into()),
        Received::Closed => Err("recv: the ring is closed".into()),
    }
}

fn ping(tx: &mut Producer, rx: &mut Consumer, n: u64) -> BoxResult<()> {
    let warm = n / 10;
    let out = [b'p'; SIZE];
    let mut buf = Vec::with_capacity(SIZE);
    let mut samples = Vec::with_capacity(usize::try_from(n)?);
    for i in 0..warm + n {
        let start = Instant::now();
        send_one(tx, &out)?;
        recv_one(rx, &mut buf)?;
        let elapsed = start.elapsed();
        if i >= warm {
            samples.push(u64::try_from(elapsed.as_nanos())?);
        }
    }
    samples.sort_unstable();
    println!(
        "{{\"n\": {n}, \"p50_ns\": {:.1}, \"p99_ns\": {:.1}, \"p999_ns\": {:.1}}}",
        quantile(&samples, 0.5),
        quantile(&samples, 0.99),
        quantile(&samples, 0.999)
    );
    Ok(())
}

fn pong(tx: &mut Producer, rx: &mut Consumer, n: u64) -> BoxResult<()> {
    let mut buf = Vec::with_capacity(SIZE);
    for _ in 0..n / 10 + n {
        recv_one(rx, &mut buf)?;
        send_one(tx, &buf)?;
    }
    Ok(())
}

/// Inclusive linear interpolation between the two nearest ranks of sorted, non-empty samples.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn quantile(sorted: &[u64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos as usize;
    match sorted.get(lo + 1) {
        Some(&next) => sorted[lo] as f64 + (pos - lo as f64) * (next - sorted[lo]) as f64,
        None => sorted[lo] as f64,
    }
}
