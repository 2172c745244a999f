//! Rings on heap buffers, initialised as `_ring.init` does: the protocol end to end inside one process, and
//! corrupt positions and records that must give an error rather than a wrong answer or a hang.

use std::sync::Arc;
use std::time::Duration;

use crate::layout::tests::{fresh, fresh_shared};
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

/// Applies `edit` (given the data area's offset) to a fresh one-producer segment `words` with `consumers`
/// consumers, then receives as consumer `reader`: the error, which must have marked the ring broken.
fn broken_at(mut words: Vec<u64>, consumers: u64, reader: u32, edit: impl Fn(&mut Vec<u64>, usize)) -> String {
    edit(&mut words, layout_data_offset(1, consumers) as usize);
    let seg = Segment::from_words(words).unwrap();
    let err = seg.consumer(reader).unwrap().recv(&mut Vec::new(), SHORT).unwrap_err();
    assert!(seg.stats().broken, "{err}");
    err.to_string()
}

fn broken_recv(edit: impl Fn(&mut Vec<u64>, usize)) -> String {
    broken_at(fresh(1024, 1, 1, false), 1, 0, edit)
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
        poke(w, data, 0xffff_ffff); // len u32::MAX, flags 0
    });
    assert!(why.contains("corrupt record length"), "{why}");
    let why = broken_recv(|w, data| {
        poke(w, OFF_PUBLISHED, 64);
        poke(w, data + 1000, 200); // a record of 200 bytes 24 bytes before the end
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

// ---------------------------------------------------------------- shared delivery (work sharing)

fn shared_ring(capacity: u64, producers: u32, consumers: u32) -> Arc<Segment> {
    Segment::from_words(fresh_shared(capacity, producers, consumers)).unwrap()
}

/// Byte offset of field `field` of consumer line `j` in a ring of `producers` producer lines.
fn cons_at(producers: u32, j: u32, field: usize) -> usize {
    HEADER_SIZE + (producers + j) as usize * LINE_SIZE + field
}

/// The pid of a child process that has exited and been reaped: nobody holds anything under it.
fn dead_pid() -> i32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    child.wait().unwrap();
    pid
}

#[test]
fn a_shared_ring_gives_each_message_to_one_consumer_through_wraps() {
    let seg = shared_ring(256, 1, 2);
    assert!(seg.shared() && !seg.drop_oldest());
    let mut tx = seg.producer(0).unwrap();
    let mut rx = [seg.consumer(0).unwrap(), seg.consumer(1).unwrap()];
    let mut buf = Vec::new();
    for i in 0..3000u32 {
        let m = message(i, seg.max_message());
        assert_eq!(tx.send(&m, SHORT).unwrap(), Sent::Sent);
        assert!(rx[0].pending() >= rec_size(m.len() as u64) && rx[0].pending() == rx[1].pending());
        let who = usize::from(i % 3 == 2); // uneven turns
        assert_eq!(rx[who].recv(&mut buf, SHORT).unwrap(), Received::Message(m.len()));
        assert_eq!(buf, m);
        assert_eq!((rx[0].pending(), rx[1].pending()), (0, 0), "what one consumer took, the other does not see");
        assert_eq!(rx[1 - who].recv(&mut buf, Some(Duration::ZERO)).unwrap(), Received::TimedOut);
    }
    seg.close_writers();
    assert_eq!(rx[0].recv(&mut buf, None).unwrap(), Received::Closed);
    assert_eq!(rx[1].recv(&mut buf, None).unwrap(), Received::Closed);
    let stats = seg.stats();
    assert_eq!(stats.received_per_consumer, vec![2000, 1000]);
    assert_eq!(stats.dropped_per_consumer, vec![0, 0]);
    assert!(stats.published_bytes > 50 * 256, "the ring wrapped, with PAD records");
    let words = seg.words();
    assert_eq!(words[cons_at(1, 0, LINE_TAKEN) / 8], stats.published_bytes, "every record was taken");
    assert_eq!(words[cons_at(1, 0, LINE_CURSOR) / 8], stats.published_bytes, "and released");
    assert_eq!(words[cons_at(1, 1, LINE_CURSOR) / 8], 0, "only line 0's cursor moves");
    for j in 0..2 {
        assert_eq!(words[cons_at(1, j, LINE_HOLDING) / 8], NOT_HOLDING);
        assert_eq!(words[cons_at(1, j, LINE_HOLDER_PID) / 8] as u32, std::process::id());
    }
}

#[test]
fn a_shared_ring_producer_waits_for_the_group_release_position_only() {
    // consumer 1 never reads: on a broadcast ring its cursor would stop the producer after one ring
    let seg = shared_ring(256, 1, 2);
    let (mut tx, mut rx) = (seg.producer(0).unwrap(), seg.consumer(0).unwrap());
    let mut buf = Vec::new();
    for i in 0..200u32 {
        assert_eq!(tx.send(&i.to_le_bytes(), SHORT).unwrap(), Sent::Sent);
        assert_eq!(rx.recv(&mut buf, SHORT).unwrap(), Received::Message(4));
    }
    // and a full ring still stops it until the group releases
    let max = vec![3u8; seg.max_message() as usize];
    let mut sent = 0;
    while tx.send(&max, SHORT).unwrap() == Sent::Sent {
        sent += 1;
    }
    assert!(sent >= 3);
    assert_eq!(rx.recv(&mut buf, SHORT).unwrap(), Received::Message(max.len()));
    assert_eq!(tx.send(&max, SHORT).unwrap(), Sent::Sent);
    let stats = seg.stats();
    assert_eq!(stats.received_per_consumer, vec![201, 0]);
}

#[test]
fn shared_consumer_threads_take_each_message_exactly_once_in_producer_order() {
    const PRODUCERS: u32 = 2;
    const PER: u32 = 4000;
    let seg = shared_ring(512, PRODUCERS, 3);
    let writers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let mut tx = seg.producer(p).unwrap();
            std::thread::spawn(move || {
                for i in 0..PER {
                    let m = [p.to_le_bytes(), i.to_le_bytes(), [(i % 256) as u8; 4]].concat();
                    let m = &m[..8 + (i % 5) as usize];
                    assert_eq!(tx.send(m, None).unwrap(), Sent::Sent);
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..3u32)
        .map(|c| {
            let mut rx = seg.consumer(c).unwrap();
            std::thread::spawn(move || {
                let (mut got, mut buf) = (Vec::new(), Vec::new());
                while let Received::Message(n) = rx.recv(&mut buf, None).unwrap() {
                    assert_eq!(n, 8 + (u32::from_le_bytes(buf[4..8].try_into().unwrap()) % 5) as usize);
                    got.push((
                        u32::from_le_bytes(buf[..4].try_into().unwrap()),
                        u32::from_le_bytes(buf[4..8].try_into().unwrap()),
                    ));
                }
                got
            })
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().unwrap());
    seg.close_writers();
    let shares: Vec<Vec<(u32, u32)>> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    for share in &shares {
        for p in 0..PRODUCERS {
            let seqs: Vec<u32> = share.iter().filter(|m| m.0 == p).map(|m| m.1).collect();
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "each producer's messages in order within a consumer");
        }
    }
    let mut all: Vec<(u32, u32)> = shares.iter().flatten().copied().collect();
    all.sort_unstable();
    let expected: Vec<(u32, u32)> = (0..PRODUCERS).flat_map(|p| (0..PER).map(move |i| (p, i))).collect();
    assert_eq!(all, expected, "every message exactly once");
    let stats = seg.stats();
    assert_eq!(stats.received_per_consumer, shares.iter().map(|s| s.len() as u64).collect::<Vec<_>>());
    assert_eq!(stats.dropped_per_consumer, vec![0; 3]);
    assert!(!stats.broken);
}

/// A shared ring with three messages published, the first of which consumer 1 took (`holding` 0, pid `holder`)
/// and has not released: `taken` is past it, the release position still at 0.
fn first_message_held_by(holder: i32) -> (Arc<Segment>, [Vec<u8>; 3]) {
    let seg = shared_ring(1024, 1, 2);
    let mut tx = seg.producer(0).unwrap();
    let sent = [b"first".to_vec(), b"second".to_vec(), b"third".to_vec()];
    for m in &sent {
        assert_eq!(tx.send(m, SHORT).unwrap(), Sent::Sent);
    }
    let mut words = seg.words();
    poke(&mut words, cons_at(1, 0, LINE_TAKEN), rec_size(5));
    poke(&mut words, cons_at(1, 1, LINE_HOLDING), 0);
    poke(&mut words, cons_at(1, 1, LINE_HOLDER_PID), holder as u32 as u64);
    (Segment::from_words(words).unwrap(), sent)
}

#[test]
fn a_dead_holder_is_skipped_and_its_message_counted_as_dropped() {
    let (seg, sent) = first_message_held_by(dead_pid());
    let mut rx = seg.consumer(0).unwrap();
    let mut buf = Vec::new();
    let started = std::time::Instant::now();
    assert_eq!(rx.recv(&mut buf, SHORT).unwrap(), Received::Message(6));
    assert_eq!(buf, sent[1]);
    assert!(started.elapsed() >= Duration::from_millis(1), "the holder is given time first");
    assert_eq!(rx.recv(&mut buf, SHORT).unwrap(), Received::Message(5));
    assert_eq!(buf, sent[2]);
    let stats = seg.stats();
    assert_eq!((stats.received_per_consumer, stats.dropped_per_consumer), (vec![2, 0], vec![1, 0]));
    assert!(!stats.broken);
    // a holder pid of 0 or below is nobody (kill() would take it for a process group)
    let (seg, _) = first_message_held_by(0);
    assert_eq!(seg.consumer(0).unwrap().recv(&mut buf, SHORT).unwrap(), Received::Message(6));
    assert_eq!(seg.stats().dropped_per_consumer, vec![1, 0]);
}

#[test]
fn a_live_holder_is_waited_for_on_the_space_doorbell() {
    let (seg, sent) = first_message_held_by(std::process::id() as i32);
    let mut rx = seg.consumer(0).unwrap();
    let waiter = std::thread::spawn(move || {
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf, SHORT).unwrap(), Received::Message(6));
        buf
    });
    // it took the second message and sleeps until the first is released
    let holding = |seg: &Segment| seg.cons_u64(0, LINE_HOLDING).load(std::sync::atomic::Ordering::Relaxed);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seg.space_waiters().load(std::sync::atomic::Ordering::Relaxed) == 0 {
        assert!(std::time::Instant::now() < deadline, "the consumer never slept on the space doorbell");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(30)); // several liveness checks: the holder is alive
    assert!(!waiter.is_finished());
    assert_eq!(holding(&seg), rec_size(5));
    // the holder releases: the waiter wakes, releases its own, and delivers
    seg.cons_u64(0, LINE_CURSOR).store(rec_size(5), std::sync::atomic::Ordering::Release);
    crate::wait::doorbell_ring(seg.space_seq(), seg.space_waiters());
    assert_eq!(waiter.join().unwrap(), sent[1]);
    assert_eq!(holding(&seg), NOT_HOLDING);
    let stats = seg.stats();
    assert_eq!((stats.received_per_consumer, stats.dropped_per_consumer), (vec![1, 0], vec![0, 0]));
    assert_eq!(seg.cons_u64(0, LINE_CURSOR).load(std::sync::atomic::Ordering::Relaxed), rec_size(5) + rec_size(6));
}

fn broken_shared_recv(edit: impl Fn(&mut Vec<u64>, usize)) -> String {
    broken_at(fresh_shared(1024, 1, 2), 2, 1, edit)
}

#[test]
fn corrupt_shared_positions_and_records_break_the_ring() {
    let taken = cons_at(1, 0, LINE_TAKEN);
    let release = cons_at(1, 0, LINE_CURSOR);
    let why = broken_shared_recv(|w, _| poke(w, taken, 64));
    assert!(why.contains("shared position ahead of the published position"), "{why}");
    let why = broken_shared_recv(|w, _| {
        poke(w, OFF_PUBLISHED, 16);
        poke(w, taken, 3);
    });
    assert!(why.contains("unaligned shared position"), "{why}");
    let why = broken_shared_recv(|w, _| poke(w, OFF_PUBLISHED, 1 << 40));
    assert!(why.contains("shared position more than a ring behind"), "{why}");
    let why = broken_shared_recv(|w, data| {
        poke(w, OFF_PUBLISHED, 64);
        poke(w, data, 0xffff_ffff); // len u32::MAX, flags 0
    });
    assert!(why.contains("corrupt record length"), "{why}");
    let why = broken_shared_recv(|w, data| {
        poke(w, data + 1000, 200); // a record of 200 bytes 24 bytes before the end
        poke(w, taken, 1000);
        poke(w, release, 1000);
        poke(w, OFF_PUBLISHED, 1064);
    });
    assert!(why.contains("corrupt record length"), "{why}");
    let why = broken_shared_recv(|w, data| {
        poke(w, data, 8); // a record of 8 bytes at 0, taken by us; the release position already past it
        poke(w, OFF_PUBLISHED, 16);
        poke(w, release, 64);
    });
    assert!(why.contains("shared release position passed a claim"), "{why}");
}

#[test]
fn a_corrupt_record_at_a_dead_holders_position_breaks_the_ring() {
    let (seg, _) = first_message_held_by(dead_pid());
    let mut words = seg.words();
    poke(&mut words, layout_data_offset(1, 2) as usize, 0xffff_ffff); // the held record's length
    let seg = Segment::from_words(words).unwrap();
    let err = seg.consumer(0).unwrap().recv(&mut Vec::new(), SHORT).unwrap_err().to_string();
    assert!(err.contains("corrupt record length") && seg.stats().broken, "{err}");
}

#[test]
fn a_closed_shared_ring_drains_to_whichever_consumer_asks() {
    let seg = shared_ring(4096, 1, 3);
    let mut tx = seg.producer(0).unwrap();
    for i in 0..10u32 {
        assert_eq!(tx.send(&i.to_le_bytes(), None).unwrap(), Sent::Sent);
    }
    seg.close_writers();
    assert_eq!(tx.send(b"late", None).unwrap(), Sent::Closed);
    let mut rx: Vec<_> = (0..3).map(|j| seg.consumer(j).unwrap()).collect();
    let mut buf = Vec::new();
    for i in 0..10u32 {
        assert_eq!(rx[(i % 3) as usize].recv(&mut buf, None).unwrap(), Received::Message(4));
        assert_eq!(buf, i.to_le_bytes());
    }
    for r in &mut rx {
        assert_eq!(r.recv(&mut buf, None).unwrap(), Received::Closed);
    }
    assert_eq!(seg.stats().received_per_consumer, vec![4, 3, 3]);
}

/// Consumer 0 of `seg` receiving on a thread (with a short timeout, which a taken message outlasts); its result
/// comes back through the channel, so a test waits for it with a timeout of its own and a consumer that never
/// returns fails the test instead of hanging it.
fn recv_on_a_thread(seg: &Arc<Segment>) -> std::sync::mpsc::Receiver<crate::Result<Received>> {
    let mut rx = seg.consumer(0).unwrap();
    let (tx, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(rx.recv(&mut Vec::new(), SHORT));
    });
    result
}

/// Waits until the consumer of [`recv_on_a_thread`] took the second message of [`first_message_held_by`] and sleeps
/// on the space doorbell, waiting to release it behind the holder of the first.
fn until_waiting_to_release(seg: &Segment) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seg.cons_u64(0, LINE_HOLDING).load(std::sync::atomic::Ordering::Relaxed) != rec_size(5)
        || seg.space_waiters().load(std::sync::atomic::Ordering::Relaxed) == 0
    {
        assert!(std::time::Instant::now() < deadline, "the consumer never waited to release");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How long a consumer waiting to release may take to notice what must stop it (it looks every 10 ms).
const PROMPTLY: Duration = Duration::from_secs(5);

#[test]
fn a_release_position_more_than_a_ring_behind_a_claim_breaks_the_ring() {
    // The holder of the first message is alive. Without the check, the waiter took the garbage at the release
    // position for records whose holders died, and skipped them one by one for ever, each counted dropped.
    let (seg, _) = first_message_held_by(std::process::id() as i32);
    let result = recv_on_a_thread(&seg);
    until_waiting_to_release(&seg);
    let far_behind = 0u64.wrapping_sub(1 << 40);
    seg.cons_u64(0, LINE_CURSOR).store(far_behind, std::sync::atomic::Ordering::Release);
    let err = result.recv_timeout(PROMPTLY).expect("the consumer still waits to release").unwrap_err();
    assert!(matches!(err, Error::Broken(_)), "{err}");
    assert!(err.to_string().contains("shared release position more than a ring behind"), "{err}");
    let stats = seg.stats();
    assert!(stats.broken, "the other endpoints see it");
    assert_eq!(stats.dropped_per_consumer, vec![0, 0], "no garbage counted as messages");
    assert_eq!(seg.cons_u64(0, LINE_CURSOR).load(std::sync::atomic::Ordering::Relaxed), far_behind);
    assert_eq!(seg.cons_u64(0, LINE_HOLDING).load(std::sync::atomic::Ordering::Relaxed), NOT_HOLDING);
}

#[test]
fn a_consumer_waiting_to_release_stops_when_another_endpoint_breaks_the_ring() {
    // woken as another endpoint marks the ring broken, and (without a wake-up) at its next look
    for wake in [true, false] {
        let (seg, _) = first_message_held_by(std::process::id() as i32);
        let result = recv_on_a_thread(&seg);
        until_waiting_to_release(&seg);
        std::thread::sleep(Duration::from_millis(30)); // several liveness checks: the holder is alive
        assert!(result.try_recv().is_err(), "it waits behind a live holder");
        if wake {
            let _ = seg.break_ring("another endpoint found something", 0);
        } else {
            seg.broken().store(1, std::sync::atomic::Ordering::Release);
        }
        let err = result.recv_timeout(PROMPTLY).expect("the consumer still waits to release").unwrap_err();
        assert!(err.to_string().contains("ring broken: another endpoint found it corrupt"), "{err}");
        assert_eq!(seg.cons_u64(0, LINE_CURSOR).load(std::sync::atomic::Ordering::Relaxed), 0, "nothing released");
        assert_eq!(seg.cons_u64(0, LINE_HOLDING).load(std::sync::atomic::Ordering::Relaxed), NOT_HOLDING);
        assert_eq!(seg.stats().dropped_per_consumer, vec![0, 0]);
    }
}
