//! The one error type of the crate: what can go wrong attaching a ring, using it, or reading `FLOWC_CHANNELS`.

use std::fmt;

/// Why a ring could not be attached or used. Messages follow `flowc.runtime.ring.RingError`'s words.
#[derive(Debug)]
pub enum Error {
    /// The segment name is empty, contains `/` or NUL, or is `.` or `..`.
    BadName(String),
    /// No segment of that name in `/dev/shm` or `/dev/hugepages`.
    NotFound(String),
    /// The segment file could not be opened, inspected or mapped.
    Io {
        /// The segment file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The segment's header fails a check (`not a valid flowc ring segment: <why>`).
    Invalid(&'static str),
    /// The ring is broken: corrupt positions or records, or a producer that died mid-publish.
    Broken(String),
    /// A producer or consumer index beyond the segment's count.
    IndexOutOfRange {
        /// `"producer"` or `"consumer"`.
        role: &'static str,
        /// The index asked for.
        index: u32,
    },
    /// A message larger than the ring's `max_message`.
    TooLarge {
        /// The message's length.
        len: usize,
        /// The ring's limit.
        max: u64,
    },
    /// A spin or yield budget beyond one second.
    BadBudget,
    /// `FLOWC_CHANNELS` is not the JSON an actor gets, or lacks the channel asked for.
    Channels(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadName(name) => write!(f, "invalid ring name '{name}'"),
            Error::NotFound(name) => write!(f, "no ring segment named '{name}' in /dev/shm or /dev/hugepages"),
            Error::Io { path, source } => write!(f, "cannot map ring segment {path}: {source}"),
            Error::Invalid(why) => write!(f, "not a valid flowc ring segment: {why}"),
            Error::Broken(why) => write!(f, "ring broken: {why}"),
            Error::IndexOutOfRange { role, index } => write!(f, "{role} index {index} out of range"),
            Error::TooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds this ring's maximum of {max}")
            }
            Error::BadBudget => write!(f, "spin and yield budgets must be at most one second"),
            Error::Channels(why) => write!(f, "FLOWC_CHANNELS: {why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
