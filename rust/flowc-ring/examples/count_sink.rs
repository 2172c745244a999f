//! A flowc consumer actor in Rust: reads its input channel "signals" until it is closed and drained, checks that
//! each producer's sequence numbers arrive in order (the synthetic producer's header: send time, sequence,
//! producer id), and prints a summary on stderr. Exits 1 if the channel fails or anything arrived out of order.
//! SIGTERM (as the launcher or systemd sends to stop it) makes it drain what is pending and finish the same way.
//!
//! Build: `cargo build --release --offline --examples --manifest-path rust/flowc-ring/Cargo.toml`

use std::collections::HashMap;
use std::process::ExitCode;

use flowc_ring::{shutdown, Channels, Received};

fn main() -> ExitCode {
    match run() {
        Ok((count, 0)) => {
            eprintln!("count_sink: received {count} messages, in order");
            ExitCode::SUCCESS
        }
        Ok((count, disorder)) => {
            eprintln!("count_sink: received {count} messages, {disorder} out of order");
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("count_sink: {error}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<(u64, u64), Box<dyn std::error::Error>> {
    shutdown::install()?;
    let channels = Channels::from_env()?;
    let mut input = channels.consumer("signals")?;
    let mut buffer = Vec::new();
    let mut last: HashMap<u32, u64> = HashMap::new();
    let (mut count, mut disorder) = (0u64, 0u64);
    while let Received::Message(len) = shutdown::recv(&mut input, &mut buffer, None)? {
        count += 1;
        if len < 20 {
            disorder += 1;
            continue;
        }
        let seq = u64::from_le_bytes(buffer[8..16].try_into()?);
        let producer = u32::from_le_bytes(buffer[16..20].try_into()?);
        let expected = last.get(&producer).map_or(0, |s| s + 1);
        if seq != expected {
            disorder += 1;
        }
        last.insert(producer, seq);
    }
    Ok((count, disorder))
}
