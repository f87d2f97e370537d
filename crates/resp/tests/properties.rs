//! Property tests: whatever we write, we scan and parse back identically, whichever way the
//! bytes are split across reads.

use proptest::prelude::*;
use resp::{Limits, Parsed, RequestParser, Scanner, Value, frame_len, parse_value};

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..40)
}

/// A line-safe string (simple strings, errors, big numbers cannot hold CR or LF).
fn line() -> impl Strategy<Value = Vec<u8>> {
    "[a-zA-Z0-9 _:.-]{0,20}".prop_map(String::into_bytes)
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        line().prop_map(Value::Simple),
        line().prop_map(Value::Error),
        any::<i64>().prop_map(Value::Integer),
        bytes().prop_map(Value::Bulk),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Boolean),
        prop::num::f64::NORMAL.prop_map(Value::Double),
        "-?[1-9][0-9]{0,40}".prop_map(|s| Value::BigNumber(s.into_bytes())),
        bytes().prop_map(|b| Value::Verbatim(*b"txt", b)),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Set),
            prop::collection::vec(inner.clone(), 1..6).prop_map(Value::Push),
            prop::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(Value::Map),
            (prop::collection::vec((inner.clone(), inner.clone()), 1..3), inner)
                .prop_map(|(attrs, v)| Value::Attribute(attrs, Box::new(v))),
        ]
    })
}

fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    resp::write::value(&mut out, v);
    out
}

proptest! {
    #[test]
    fn written_values_parse_back(v in value()) {
        let bytes = encode(&v);
        prop_assert_eq!(frame_len(&bytes, &Limits::default()).unwrap(), Some(bytes.len()));
        let (parsed, len) = parse_value(&bytes, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(len, bytes.len());
        prop_assert_eq!(parsed, v);
    }

    #[test]
    fn a_stream_split_anywhere_yields_the_same_frames(values in prop::collection::vec(value(), 1..5)) {
        let frames: Vec<Vec<u8>> = values.iter().map(encode).collect();
        let stream: Vec<u8> = frames.concat();
        // Feed growing prefixes of the unread part, as reads would deliver them.
        let mut scanner = Scanner::new(Limits::default());
        let mut start = 0;
        let mut found = Vec::new();
        for end in 0..=stream.len() {
            if let Some(len) = scanner.scan(&stream[start..end]).unwrap() {
                found.push(len);
                start += len;
            }
        }
        prop_assert_eq!(found, frames.iter().map(Vec::len).collect::<Vec<_>>());
    }

    #[test]
    fn requests_in_random_chunks(
        commands in prop::collection::vec(prop::collection::vec(bytes(), 1..6), 1..5),
        chunk in 1usize..17,
    ) {
        let mut stream = Vec::new();
        for args in &commands {
            resp::write::command(&mut stream, args);
        }
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = Vec::new();
        let mut parsed = Vec::new();
        for piece in stream.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Parsed::Request { consumed } = parser.parse(&buf).unwrap() {
                parsed.push(parser.args(&buf).map(<[u8]>::to_vec).collect::<Vec<_>>());
                buf.drain(..consumed);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(parsed, commands);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..200)) {
        let limits = Limits::default();
        let scanned = frame_len(&input, &limits);
        let parsed = parse_value(&input, &limits);
        // Both agree on whether and where a frame ends.
        match (scanned, parsed) {
            (Ok(Some(len)), Ok(Some((_, consumed)))) => prop_assert_eq!(len, consumed),
            (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
            (a, b) => prop_assert!(false, "scan {:?} vs parse {:?}", a, b.map(|o| o.map(|(_, n)| n))),
        }
        let _ = RequestParser::new(limits).parse(&input);
    }
}
