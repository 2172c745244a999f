//! flowc's shared-memory rings, spoken from Rust: attach a segment that flowc's launcher (or
//! `flowc.runtime.ring.Ring.create`) made, and send or receive messages byte-compatibly with the C library
//! (`compiler/flowc/runtime/flowc_ring.c`, segment format version 1, `docs/ring-abi.md`).
//!
//! Nothing read from a segment is trusted: the header is copied and checked once ([`check_meta`]), positions and
//! record lengths are checked where they are read, and what fails a check is an [`Error`] (and marks the ring
//! broken for every endpoint, as the C code does), never an access outside the mapping.
//!
//! ```no_run
//! use flowc_ring::{Channels, Received};
//! let channels = Channels::from_env()?;
//! let mut input = channels.consumer("ticks")?;
//! let mut output = channels.producer("out")?;
//! let mut buf = Vec::new();
//! while let Received::Message(_) = input.recv(&mut buf, None)? {
//!     output.send(&buf, None)?;
//! }
//! # Ok::<(), flowc_ring::Error>(())
//! ```
//!
//! On a ring created with `delivery: shared` ([`Segment::shared`]) the consumers, whatever their language, take
//! turns: each message goes to exactly one of them (ABI section 12), and [`Consumer::recv`] is used the same way.
//!
//! An actor that should finish cleanly when the launcher stops it (SIGTERM) calls [`shutdown::install`] and
//! receives through [`shutdown::recv`] (it then drains what is pending and sees the channel closed) or sends
//! through [`shutdown::send`] (it then stops waiting for space).

#![warn(missing_docs)]

mod channels;
mod consumer;
mod error;
mod json;
pub mod layout;
mod producer;
mod segment;
mod shared;
pub mod shutdown;
mod sys;
mod wait;

pub use channels::{Channels, Endpoint, CHANNELS_ENV};
pub use consumer::{Consumer, Received};
pub use error::{Error, Result};
pub use layout::{check_meta, Meta};
pub use producer::{Producer, Sent};
pub use segment::{Segment, Stats};

#[cfg(test)]
mod tests;
