//! Arbitrary bytes must never make the protocol layer panic, loop or disagree with itself:
//! the scanner fed the input all at once and fed it one byte at a time find the same frames,
//! every frame the scanner finds parses as a value of exactly that length, and the request
//! parser either parses, asks for more, or returns an error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use resp::{Limits, Parsed, RequestParser, Scanner, parse_value};

fn limits() -> Limits {
    // Small limits so that the fuzzer reaches the limit checks with small inputs.
    Limits { max_bulk_len: 1 << 16, max_elements: 1 << 10, max_depth: 16, max_inline_len: 1 << 10 }
}

/// Frame lengths found when the whole input is there from the start.
fn frames_at_once(data: &[u8]) -> (Vec<usize>, bool) {
    let mut scanner = Scanner::new(limits());
    let (mut at, mut frames) = (0, Vec::new());
    loop {
        match scanner.scan(&data[at..]) {
            Ok(Some(len)) => {
                assert!(len > 0 && at + len <= data.len());
                frames.push(len);
                at += len;
            }
            Ok(None) => return (frames, false),
            Err(_) => return (frames, true),
        }
    }
}

/// The same, with the input arriving one byte per read.
fn frames_byte_by_byte(data: &[u8]) -> (Vec<usize>, bool) {
    let mut scanner = Scanner::new(limits());
    let (mut start, mut frames) = (0, Vec::new());
    for end in 1..=data.len() {
        if end <= start {
            continue; // the previous read ended exactly at a frame boundary
        }
        match scanner.scan(&data[start..end]) {
            Ok(Some(len)) => {
                frames.push(len);
                start += len;
            }
            Ok(None) => {}
            Err(_) => return (frames, true),
        }
    }
    (frames, false)
}

fuzz_target!(|data: &[u8]| {
    let whole = frames_at_once(data);
    assert_eq!(whole, frames_byte_by_byte(data), "split reads change the frames");

    let mut at = 0;
    for len in &whole.0 {
        let (_, parsed_len) = parse_value(&data[at..], &limits())
            .expect("a scanned frame parses")
            .expect("a scanned frame is complete");
        assert_eq!(parsed_len, *len);
        at += len;
    }

    let mut parser = RequestParser::new(limits());
    let mut at = 0;
    while at < data.len() {
        match parser.parse(&data[at..]) {
            Ok(Parsed::Request { consumed }) => {
                assert!(parser.argc() > 0);
                at += consumed;
            }
            Ok(Parsed::Empty { consumed }) => at += consumed,
            Ok(Parsed::Incomplete) | Err(_) => break,
        }
    }
});
