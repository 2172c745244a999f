//! Rings on heap buffers, initialised as `_ring.init` does: the protocol end to end inside one process, and
//! corrupt positions and records that must give an error rather than a wrong answer or a hang.

use std::sync::Arc;
use std::time::Duration;

use crate::layout::tests::fresh;
use crate::layout::*;
use crate::{Error, Received, Segment, Sent};

const SHORT: Option<Duration> = Some(Duration::from_millis(20));

fn ring(capacity: u64, producers: u32, consumers: u32, drop: bool) -> Arc<Segment> {
    Segment::from_words(fresh(capacity, producers, consumers, drop)).unwrap()
}

fn message(i: u32, max: u64) -> Vec<u8> {
    let len = (i as u64 * 37) % (max + 1);
    (0..len).map(|k| (i as u64 + k) as u8).collect()
}

#[test]
fn messages_wrap_around_in_order() {
    let seg = ring(1024, 1, 1, false);
    let (mut tx, mut rx) = (seg.producer(0).unwrap(), seg.consumer(0).unwrap());
    let mut buf = Vec::new();
    for i in 0..2000 {
        let m = message(i, seg.max_message());
        assert_eq!(tx.send(&m, SHORT).unwrap(), Sent::Sent);
        assert_eq!(rx.recv(&mut buf, SHORT).unwrap(), Received::Message(m.len()));
        assert_eq!(buf, m);
    }
    assert_eq!(rx.recv(&mut buf, SHORT).unwrap(), Received::TimedOut);
    let stats = seg.stats();
    assert_eq!((stats.sent_per_producer[0], stats.received_per_consumer[0]), (2000, 2000));
    assert!(stats.published_bytes > 100 * 1024);
}

#[test]
fn backpressure_times_out_and_close_drains() {
    let seg = ring(256, 1, 1, false);
    let (mut tx, mut rx) = (seg.producer(0).unwrap(), seg.consumer(0).unwrap());
    let max = vec![7u8; seg.max_message() as usize];
    let mut sent = 0;
    while tx.send(&max, SHORT).unwrap() == Sent::Sent {
        sent += 1;
    }
    assert!(sent >= 4);
    assert!(matches!(tx.send(&vec![0; max.len() + 1], None), Err(Error::TooLarge { .. })));
    seg.close_writers();
    assert_eq!(tx.send(b"late", None).unwrap(), Sent::Closed);
    let mut buf = Vec::new();
    for _ in 0..sent {
        assert_eq!(rx.recv(&mut buf, None).unwrap(), Received::Message(max.len()));
    }
    assert_eq!(rx.recv(&mut buf, None).unwrap(), Received::Closed);
}

#[test]
fn drop_oldest_keeps_the_newest() {
    let seg = ring(512, 1, 2, true);
    let mut tx = seg.producer(0).unwrap();
    let (mut slow, mut fast) = (seg.consumer(0).unwrap(), seg.consumer(1).unwrap());
    let mut buf = Vec::new();
    for i in 0..500u32 {
        assert_eq!(tx.send(&i.to_le_bytes(), None).unwrap(), Sent::Sent);
        assert_eq!(fast.recv(&mut buf, None).unwrap(), Received::Message(4));
    }
    seg.close_writers();
    let mut got = Vec::new();
    while let Received::Message(_) = slow.recv(&mut buf, None).unwrap() {
        got.push(u32::from_le_bytes(buf[..4].try_into().unwrap()));
    }
    assert_eq!(*got.last().unwrap(), 499);
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1));
    let stats = seg.stats();
    assert_eq!(stats.dropped_per_consumer, vec![500 - got.len() as u64, 0]);
}

#[test]
fn threads_keep_per_producer_order() {
    let seg = ring(4096, 3, 2, false);
    let workers: Vec<_> = (0..3u32)
        .map(|p| {
            let mut tx = seg.producer(p).unwrap();
            std::thread::spawn(move || {
                for i in 0..3000u32 {
                    let m = [p.to_le_bytes(), i.to_le_bytes()].concat();
                    assert_eq!(tx.send(&m, None).unwrap(), Sent::Sent);
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2u32)
        .map(|c| {
            let mut rx = seg.consumer(c).unwrap();
            std::thread::spawn(move || {
                let (mut next, mut buf) = ([0u32; 3], Vec::new());
                while let Received::Message(_) = rx.recv(&mut buf, None).unwrap() {
                    let p = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
                    assert_eq!(u32::from_le_bytes(buf[4..8].try_into().unwrap()), next[p]);
                    next[p] += 1;
                }
                next
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
    seg.close_writers();
    for r in readers {
        assert_eq!(r.join().unwrap(), [3000; 3]);
    }
}

/// Writes a u64 at byte `off` of a fresh ring's buffer.
fn poke(words: &mut [u64], off: usize, value: u64) {
    words[off / 8] = value;
}

fn broken_recv(edit: impl Fn(&mut Vec<u64>, u64)) -> String {
    let mut words = fresh(1024, 1, 1, false);
    let data = layout_data_offset(1, 1);
    edit(&mut words, data);
    let seg = Segment::from_words(words).unwrap();
    let err = seg.consumer(0).unwrap().recv(&mut Vec::new(), SHORT).unwrap_err();
    assert!(seg.stats().broken, "{err}");
    err.to_string()
}

#[test]
fn corrupt_positions_and_records_break_the_ring() {
    let cursor = HEADER_SIZE + LINE_SIZE + LINE_CURSOR;
    let why = broken_recv(|w, _| poke(w, OFF_PUBLISHED, 1 << 40));
    assert!(why.contains("more than a ring behind"), "{why}");
    let why = broken_recv(|w, _| {
        poke(w, OFF_PUBLISHED, 16);
        poke(w, cursor, 3);
    });
    assert!(why.contains("unaligned consumer cursor"), "{why}");
    let why = broken_recv(|w, _| poke(w, cursor, 64));
    assert!(why.contains("ahead of the published position"), "{why}");
    let why = broken_recv(|w, data| {
        poke(w, OFF_PUBLISHED, 64);
        poke(w, data as usize, 0xffff_ffff); // len u32::MAX, flags 0
    });
    assert!(why.contains("corrupt record length"), "{why}");
    let why = broken_recv(|w, data| {
        poke(w, OFF_PUBLISHED, 64);
        poke(w, data as usize + 1000, 200); // a record of 200 bytes 24 bytes before the end
        poke(w, cursor, 1000);
        poke(w, OFF_PUBLISHED, 1064);
    });
    assert!(why.contains("corrupt record length"), "{why}");
}

#[test]
fn corrupt_reserve_breaks_the_producer() {
    for (reserve, what) in [(5u64, "unaligned reserve"), (1 << 40, "too far ahead")] {
        let mut words = fresh(1024, 1, 1, false);
        poke(&mut words, OFF_RESERVE, reserve);
        let seg = Segment::from_words(words).unwrap();
        let err = seg.producer(0).unwrap().send(b"x", SHORT).unwrap_err().to_string();
        assert!(err.contains(what), "{err}");
        // every endpoint now refuses
        let err = seg.consumer(0).unwrap().recv(&mut Vec::new(), SHORT).unwrap_err().to_string();
        assert!(err.contains("ring broken"), "{err}");
    }
}

#[test]
fn a_dead_reserver_breaks_the_ring() {
    let mut words = fresh(1024, 2, 1, false);
    let claim = HEADER_SIZE + LINE_CLAIM;
    poke(&mut words, OFF_RESERVE, 64); // producer 0 reserved [0, 64) and vanished without publishing
    poke(&mut words, claim, 0);
    let seg = Segment::from_words(words).unwrap();
    let err = seg.producer(1).unwrap().send(b"x", SHORT).unwrap_err().to_string();
    assert!(err.contains("gone"), "{err}");
}

#[test]
fn indices_are_checked() {
    let seg = ring(1024, 2, 1, false);
    assert!(matches!(seg.producer(2), Err(Error::IndexOutOfRange { .. })));
    assert!(matches!(seg.consumer(1), Err(Error::IndexOutOfRange { .. })));
}

#[test]
fn random_corruption_is_an_error_or_a_message_never_a_panic() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let data = layout_data_offset(2, 2) as usize;
    let cursors = [HEADER_SIZE + 2 * LINE_SIZE, HEADER_SIZE + 3 * LINE_SIZE];
    for case in 0..2000 {
        let drop = case % 2 == 1;
        let seg = ring(256, 2, 2, drop);
        let mut tx = seg.producer(0).unwrap();
        for i in 0..(next() % 12) as u32 {
            let _ = tx.send(&message(i, seg.max_message()), Some(Duration::ZERO));
        }
        let mut words = seg.words();
        for _ in 0..1 + next() % 3 {
            let value = match next() % 4 {
                0 => next(),
                1 => next() % 1024,
                2 => (next() % 1024) & !7,
                _ => u64::MAX - next() % 1024,
            };
            let at = match next() % 5 {
                0 => OFF_RESERVE,
                1 => OFF_PUBLISHED,
                2 | 3 => cursors[(next() % 2) as usize],
                _ => data + (next() % 32 * 8) as usize,
            };
            poke(&mut words, at, value);
        }
        let seg = Segment::from_words(words).unwrap();
        let (mut tx, mut rx) = (seg.producer(1).unwrap(), seg.consumer((next() % 2) as u32).unwrap());
        let mut buf = Vec::new();
        for i in 0..8 {
            let _ = tx.send(&message(i, seg.max_message()), Some(Duration::ZERO));
            if let Ok(Received::Message(n)) = rx.recv(&mut buf, Some(Duration::ZERO)) {
                assert!(n as u64 <= seg.max_message() && n == buf.len());
            }
        }
    }
}
