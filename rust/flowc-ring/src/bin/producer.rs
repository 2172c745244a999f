//! `flowc-ring-producer`: an actor that sends every length-prefixed frame of its stdin to its output channel
//! (from `FLOWC_CHANNELS`), then optionally closes the writers. Exit 0 when all were sent, or when SIGTERM (or
//! SIGINT) stopped it: it then sends no further frame (one it was waiting to send is not sent).

mod cli;

use std::io::BufReader;
use std::process::ExitCode;

use flowc_ring::{shutdown, Channels, Sent};

const NAME: &str = "flowc-ring-producer";
const USAGE: &str = "flowc-ring-producer [--channel NAME] [--timeout SECONDS] [--close] < frames";

fn main() -> ExitCode {
    let opts = match cli::options(USAGE) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if let Err(e) = shutdown::install() {
        return cli::fail(NAME, format!("installing the SIGTERM handler: {e}"));
    }
    match run(&opts) {
        Ok(sent) => {
            let stopped = if shutdown::requested() { " (stopped)" } else { "" };
            eprintln!("{NAME}: sent {sent}{stopped}");
            ExitCode::SUCCESS
        }
        Err(why) => cli::fail(NAME, why),
    }
}

fn run(opts: &cli::Options) -> Result<u64, String> {
    let channels = Channels::from_env().map_err(|e| e.to_string())?;
    let channel = cli::pick(&opts.channel, channels.outputs.keys(), "output")?;
    let mut tx = channels.producer(&channel).map_err(|e| format!("channel '{channel}': {e}"))?;
    let mut input = BufReader::new(std::io::stdin().lock());
    let (mut buf, mut sent) = (Vec::new(), 0u64);
    while !shutdown::requested() && cli::read_frame(&mut input, &mut buf).map_err(|e| format!("reading stdin: {e}"))? {
        match shutdown::send(&mut tx, &buf, opts.timeout).map_err(|e| format!("channel '{channel}': {e}"))? {
            Sent::Sent => sent += 1,
            Sent::TimedOut if shutdown::requested() => break,
            Sent::TimedOut => return Err(format!("channel '{channel}': timed out after {sent} messages")),
            Sent::Closed => return Err(format!("channel '{channel}': closed after {sent} messages")),
        }
    }
    if opts.close {
        tx.segment().close_writers();
    }
    Ok(sent)
}
