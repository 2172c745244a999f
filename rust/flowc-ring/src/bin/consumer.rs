//! `flowc-ring-consumer`: an actor that writes every message of its input channel (from `FLOWC_CHANNELS`) to
//! stdout as a length-prefixed frame, until the channel is closed and drained (exit 0) or `--count` messages.
//! SIGTERM (or SIGINT) makes it drain what is pending and finish the same way.

mod cli;

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use flowc_ring::{shutdown, Channels, Received};

const NAME: &str = "flowc-ring-consumer";
const USAGE: &str =
    "flowc-ring-consumer [--channel NAME] [--timeout SECONDS] [--count N] [--pace-us MICROSECONDS] > frames";

fn main() -> ExitCode {
    let opts = match cli::options(USAGE) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if let Err(e) = shutdown::install() {
        return cli::fail(NAME, format!("installing the SIGTERM handler: {e}"));
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    let result = run(&opts, &mut out);
    let flushed = out.flush();
    match result.and_then(|n| flushed.map(|()| n).map_err(|e| format!("writing stdout: {e}"))) {
        Ok(received) => {
            let stopped = if shutdown::requested() { " (stopped)" } else { "" };
            eprintln!("{NAME}: received {received}{stopped}");
            ExitCode::SUCCESS
        }
        Err(why) => cli::fail(NAME, why),
    }
}

fn run(opts: &cli::Options, out: &mut impl Write) -> Result<u64, String> {
    let channels = Channels::from_env().map_err(|e| e.to_string())?;
    let channel = cli::pick(&opts.channel, channels.inputs.keys(), "input")?;
    let mut rx = channels.consumer(&channel).map_err(|e| format!("channel '{channel}': {e}"))?;
    let (mut buf, mut received) = (Vec::new(), 0u64);
    while opts.count.is_none_or(|n| received < n) {
        match shutdown::recv(&mut rx, &mut buf, opts.timeout).map_err(|e| format!("channel '{channel}': {e}"))? {
            Received::Message(_) => {
                cli::write_frame(out, &buf).map_err(|e| format!("writing stdout: {e}"))?;
                received += 1;
                if !opts.pace.is_zero() {
                    std::thread::sleep(opts.pace);
                }
            }
            Received::TimedOut => return Err(format!("channel '{channel}': timed out after {received} messages")),
            Received::Closed => break,
        }
    }
    Ok(received)
}
