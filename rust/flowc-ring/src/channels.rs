//! An actor's channels as the launcher hands them over: the `FLOWC_CHANNELS` environment variable,
//! `{"inputs": {channel: {"ring": name, "index": i}}, "outputs": {...}}` (`NodeView.actor_io`).

use std::collections::BTreeMap;

use crate::consumer::Consumer;
use crate::error::{Error, Result};
use crate::json::{self, Value};
use crate::producer::Producer;
use crate::segment::Segment;

/// The environment variable that holds an actor's channels.
pub const CHANNELS_ENV: &str = "FLOWC_CHANNELS";

/// Where one channel of an actor lives: a ring segment and this actor's index in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The segment's name (in `/dev/shm` or `/dev/hugepages`).
    pub ring: String,
    /// This actor's producer index (outputs) or consumer index (inputs).
    pub index: u32,
}

/// The channels of an actor: the ones it reads and the ones it writes, by channel name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Channels {
    /// Channels this actor reads.
    pub inputs: BTreeMap<String, Endpoint>,
    /// Channels this actor writes.
    pub outputs: BTreeMap<String, Endpoint>,
}

impl Channels {
    /// Reads [`CHANNELS_ENV`]; unset means no channels (as `flowc.runtime.inputs()` does).
    ///
    /// # Errors
    /// [`Error::Channels`] when the variable is not UTF-8 or not the shape above.
    pub fn from_env() -> Result<Channels> {
        match std::env::var(CHANNELS_ENV) {
            Ok(text) => Channels::parse(&text),
            Err(std::env::VarError::NotPresent) => Ok(Channels::default()),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::Channels("not UTF-8".into())),
        }
    }

    /// Parses the JSON of [`CHANNELS_ENV`]. Unknown keys are ignored; of a repeated key the last counts.
    ///
    /// # Errors
    /// [`Error::Channels`] naming what is wrong: not JSON, not an object, a channel without a `ring` string or
    /// with an `index` that is not a non-negative integer below 2^32.
    pub fn parse(text: &str) -> Result<Channels> {
        let bad = |why: String| Error::Channels(why);
        let Value::Object(top) = json::parse(text).map_err(|e| bad(format!("not JSON: {e}")))? else {
            return Err(bad("not a JSON object".into()));
        };
        let mut channels = Channels::default();
        for (key, value) in top {
            let side = match key.as_str() {
                "inputs" => &mut channels.inputs,
                "outputs" => &mut channels.outputs,
                _ => continue,
            };
            let Value::Object(members) = value else {
                return Err(bad(format!("'{key}' is not an object")));
            };
            side.clear(); // a repeated "inputs" replaces the earlier one, as in Python
            for (channel, wiring) in members {
                let endpoint = endpoint(&wiring).map_err(|why| bad(format!("{key} '{channel}': {why}")))?;
                side.insert(channel, endpoint);
            }
        }
        Ok(channels)
    }

    /// Attaches input `channel` as its consumer.
    ///
    /// # Errors
    /// [`Error::Channels`] when there is no such input, and whatever [`Segment::attach`] returns.
    pub fn consumer(&self, channel: &str) -> Result<Consumer> {
        let e = self.inputs.get(channel).ok_or_else(|| Error::Channels(format!("no input channel '{channel}'")))?;
        Segment::attach(&e.ring)?.consumer(e.index)
    }

    /// Attaches output `channel` as its producer.
    ///
    /// # Errors
    /// [`Error::Channels`] when there is no such output, and whatever [`Segment::attach`] returns.
    pub fn producer(&self, channel: &str) -> Result<Producer> {
        let e = self.outputs.get(channel).ok_or_else(|| Error::Channels(format!("no output channel '{channel}'")))?;
        Segment::attach(&e.ring)?.producer(e.index)
    }
}

fn endpoint(wiring: &Value) -> std::result::Result<Endpoint, String> {
    let Value::Object(fields) = wiring else {
        return Err("not an object".into());
    };
    let last = |name: &str| fields.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v);
    let ring = match last("ring") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("'ring' is not a string".into()),
        None => return Err("no 'ring'".into()),
    };
    let index = match last("index") {
        Some(Value::Number(n)) => n.parse::<u32>().map_err(|_| format!("'index' {n} is not an index"))?,
        Some(_) => return Err("'index' is not a number".into()),
        None => return Err("no 'index'".into()),
    };
    Ok(Endpoint { ring, index })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_launchers_shape() {
        let c = Channels::parse(
            r#"{"inputs": {"ticks": {"ring": "flowc-0a-ticks", "index": 1}},
                "outputs": {"out": {"index": 0, "ring": "flowc-0a-out", "extra": [1]}}, "future": 3}"#,
        )
        .unwrap();
        assert_eq!(c.inputs["ticks"], Endpoint { ring: "flowc-0a-ticks".into(), index: 1 });
        assert_eq!(c.outputs["out"], Endpoint { ring: "flowc-0a-out".into(), index: 0 });
        assert_eq!(Channels::parse("{}").unwrap(), Channels::default());
    }

    #[test]
    fn junk_is_an_error_not_a_panic() {
        for junk in [
            "",
            "[]",
            "null",
            r#"{"inputs": []}"#,
            r#"{"inputs": {"a": 1}}"#,
            r#"{"inputs": {"a": {"ring": 1}}}"#,
            r#"{"inputs": {"a": {"ring": "r"}}}"#,
            r#"{"inputs": {"a": {"ring": "r", "index": -1}}}"#,
            r#"{"inputs": {"a": {"ring": "r", "index": 1.5}}}"#,
            r#"{"inputs": {"a": {"ring": "r", "index": 1e3}}}"#,
            r#"{"inputs": {"a": {"ring": "r", "index": 4294967296}}}"#,
            r#"{"inputs": {"a": {"ring": "r", "index": "0"}}}"#,
            "\u{0}",
        ] {
            let e = Channels::parse(junk);
            assert!(matches!(e, Err(Error::Channels(_))), "{junk:?} gave {e:?}");
        }
    }
}
