//! What the two actor programs share: options, length-prefixed frames on stdio, and exit codes
//! (0 done or stopped by SIGTERM, 1 the ring failed or timed out, 2 usage), with the reason on stderr.

// each program uses one direction of the frame helpers
#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Options of both programs.
pub struct Options {
    /// The channel to use; the only one of its side when not given.
    pub channel: Option<String>,
    /// Per-message timeout in seconds; none waits for ever.
    pub timeout: Option<Duration>,
    /// Consumer: stop after this many messages.
    pub count: Option<u64>,
    /// Producer: close the writers after the last message.
    pub close: bool,
    /// Consumer: sleep this long after each message (a slow consumer, for tests of backpressure and drops).
    pub pace: Duration,
}

/// Parses `--channel NAME`, `--timeout SECONDS`, `--count N`, `--close`, `--pace-us MICROSECONDS`.
pub fn options(usage: &str) -> Result<Options, ExitCode> {
    let mut o = Options { channel: None, timeout: None, count: None, close: false, pace: Duration::ZERO };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let ok = match arg.as_str() {
            "--close" => {
                o.close = true;
                true
            }
            "--channel" => args.next().map(|v| o.channel = Some(v)).is_some(),
            "--timeout" => args
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .map(|d| o.timeout = Some(d))
                .is_some(),
            "--count" => args.next().and_then(|v| v.parse().ok()).map(|n| o.count = Some(n)).is_some(),
            "--pace-us" => {
                args.next().and_then(|v| v.parse().ok()).map(|us| o.pace = Duration::from_micros(us)).is_some()
            }
            _ => false,
        };
        if !ok {
            eprintln!("usage: {usage}");
            return Err(ExitCode::from(2));
        }
    }
    Ok(o)
}

/// The channel to use among `names`: the one asked for, or the only one.
pub fn pick<'a>(
    asked: &'a Option<String>,
    mut names: impl Iterator<Item = &'a String>,
    side: &str,
) -> Result<String, String> {
    if let Some(name) = asked {
        return Ok(name.clone());
    }
    match (names.next(), names.next()) {
        (Some(only), None) => Ok(only.clone()),
        (None, _) => Err(format!("FLOWC_CHANNELS has no {side} channel")),
        _ => Err(format!("FLOWC_CHANNELS has several {side} channels: pick one with --channel")),
    }
}

/// Reads one frame (`u32` little-endian length, then the bytes) into `buf`; false at a clean end of input.
pub fn read_frame(input: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    buf.resize(u32::from_le_bytes(len) as usize, 0);
    input.read_exact(buf)?;
    Ok(true)
}

/// Writes one frame.
pub fn write_frame(output: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    output.write_all(&(data.len() as u32).to_le_bytes())?;
    output.write_all(data)
}

/// Exit 1 with `why` on stderr.
pub fn fail(program: &str, why: impl std::fmt::Display) -> ExitCode {
    eprintln!("{program}: error: {why}");
    ExitCode::from(1)
}
