//! Micro-benchmark of the hot path: scanning backend replies and parsing client requests.
//! `cargo bench -p resp --bench scan` prints ns per frame and throughput for typical shapes.
//! A plain harness (no criterion) keeps the build small; each case runs long enough (about
//! 0.5 s) that timer noise does not matter, and the figure kept is the best of five rounds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use resp::{Limits, Parsed, RequestParser, Scanner, write};

/// `count` copies of one frame, back to back, as a pipelined read would bring them.
fn repeated(count: usize, frame: impl Fn(&mut BytesMut)) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for _ in 0..count {
        frame(&mut buf);
    }
    buf.to_vec()
}

/// Runs `pass` (which handles `frames` frames of `bytes` bytes) repeatedly and prints the best
/// round's cost per frame.
fn measure(name: &str, frames: usize, bytes: usize, mut pass: impl FnMut() -> usize) {
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut passes = 0u32;
        while start.elapsed() < Duration::from_millis(100) {
            assert_eq!(black_box(pass()), frames, "{name}: every frame found");
            passes += 1;
        }
        best = best.min(start.elapsed() / passes);
    }
    let per_frame = best.as_nanos() as f64 / frames as f64;
    let gib_per_s = bytes as f64 / best.as_secs_f64() / (1u64 << 30) as f64;
    println!("{name:<40} {per_frame:>8.1} ns/frame {gib_per_s:>7.2} GiB/s");
}

fn scan_all(buf: &[u8]) -> usize {
    let mut scanner = Scanner::new(Limits::default());
    let (mut at, mut frames) = (0, 0);
    while let Some(len) = scanner.scan(&buf[at..]).unwrap() {
        at += len;
        frames += 1;
    }
    frames
}

fn parse_all(buf: &[u8]) -> usize {
    let mut parser = RequestParser::new(Limits::default());
    let (mut at, mut requests) = (0, 0);
    while let Parsed::Request { consumed } = parser.parse(&buf[at..]).unwrap() {
        black_box(parser.arg(&buf[at..], 0));
        at += consumed;
        requests += 1;
    }
    requests
}

fn main() {
    const N: usize = 10_000;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("reply +OK", repeated(N, |b| write::simple(b, b"OK"))),
        ("reply bulk 32 B", repeated(N, |b| write::bulk(b, &[b'x'; 32]))),
        ("reply bulk 4 KiB", repeated(N, |b| write::bulk(b, &[b'x'; 4096]))),
        (
            "reply MGET of 10 x 32 B",
            repeated(N, |b| {
                write::array_len(b, 10);
                (0..10).for_each(|_| write::bulk(b, &[b'x'; 32]));
            }),
        ),
    ];
    for (name, buf) in &cases {
        measure(name, N, buf.len(), || scan_all(buf));
    }
    let requests: Vec<(&str, Vec<u8>)> = vec![
        ("request GET key:000123", repeated(N, |b| write::command(b, &["GET", "key:000123"]))),
        (
            "request SET key:000123 <32 B>",
            repeated(N, |b| write::command(b, &[&b"SET"[..], b"key:000123", &[b'x'; 32]])),
        ),
        (
            "request SET key:000123 <4 KiB>",
            repeated(N, |b| write::command(b, &[&b"SET"[..], b"key:000123", &[b'x'; 4096]])),
        ),
    ];
    for (name, buf) in &requests {
        measure(name, N, buf.len(), || parse_all(buf));
    }
}
