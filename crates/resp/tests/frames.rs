//! Every RESP2/RESP3 type, and the malformed inputs Redis itself rejects.

use resp::{Limits, Parsed, ProtocolError, RequestParser, Scanner, Value, frame_len, parse_value};

fn parse(bytes: &[u8]) -> Value {
    let (value, len) = parse_value(bytes, &Limits::default()).unwrap().expect("complete frame");
    assert_eq!(len, bytes.len(), "the frame is the whole input");
    value
}

fn scan_err(bytes: &[u8]) -> ProtocolError {
    frame_len(bytes, &Limits::default()).expect_err("malformed")
}

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

#[test]
fn every_type_parses() {
    assert_eq!(parse(b"+OK\r\n"), Value::Simple(b"OK".to_vec()));
    assert_eq!(parse(b"-ERR no\r\n"), Value::Error(b"ERR no".to_vec()));
    assert_eq!(parse(b":-42\r\n"), Value::Integer(-42));
    assert_eq!(parse(b"$5\r\nhello\r\n"), bulk("hello"));
    assert_eq!(parse(b"$0\r\n\r\n"), bulk(""));
    assert_eq!(parse(b"$-1\r\n"), Value::Null);
    assert_eq!(parse(b"*-1\r\n"), Value::Null);
    assert_eq!(parse(b"*0\r\n"), Value::Array(vec![]));
    assert_eq!(parse(b"*2\r\n$1\r\na\r\n:1\r\n"), Value::Array(vec![bulk("a"), Value::Integer(1)]));
    assert_eq!(parse(b"_\r\n"), Value::Null);
    assert_eq!(parse(b"#t\r\n"), Value::Boolean(true));
    assert_eq!(parse(b"#f\r\n"), Value::Boolean(false));
    assert_eq!(parse(b",1.5\r\n"), Value::Double(1.5));
    assert_eq!(parse(b",-inf\r\n"), Value::Double(f64::NEG_INFINITY));
    assert!(matches!(parse(b",nan\r\n"), Value::Double(d) if d.is_nan()));
    assert_eq!(
        parse(b"(3492890328409238509324850943850943825024385\r\n"),
        Value::BigNumber(b"3492890328409238509324850943850943825024385".to_vec())
    );
    assert_eq!(
        parse(b"!21\r\nSYNTAX invalid syntax\r\n"),
        Value::Error(b"SYNTAX invalid syntax".to_vec())
    );
    assert_eq!(
        parse(b"=15\r\ntxt:Some string\r\n"),
        Value::Verbatim(*b"txt", b"Some string".to_vec())
    );
    assert_eq!(
        parse(b"%1\r\n+a\r\n:1\r\n"),
        Value::Map(vec![(Value::Simple(b"a".to_vec()), Value::Integer(1))])
    );
    assert_eq!(
        parse(b"~2\r\n:1\r\n:2\r\n"),
        Value::Set(vec![Value::Integer(1), Value::Integer(2)])
    );
    assert_eq!(
        parse(b">2\r\n+message\r\n$2\r\nhi\r\n"),
        Value::Push(vec![Value::Simple(b"message".to_vec()), bulk("hi")])
    );
    assert_eq!(
        parse(b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n"),
        Value::Attribute(
            vec![(Value::Simple(b"ttl".to_vec()), Value::Integer(3))],
            Box::new(bulk("v"))
        )
    );
}

#[test]
fn attribute_inside_an_array_counts_as_one_element() {
    let frame = b"*2\r\n|1\r\n+k\r\n+v\r\n:1\r\n:2\r\n";
    assert_eq!(frame_len(frame, &Limits::default()).unwrap(), Some(frame.len()));
}

#[test]
fn incomplete_frames_ask_for_more() {
    for partial in [
        &b""[..],
        b"+OK",
        b"+OK\r",
        b"$5\r\nhel",
        b"$5\r\nhello\r",
        b"*2\r\n:1\r\n",
        b"%1\r\n+a\r\n",
    ] {
        assert_eq!(frame_len(partial, &Limits::default()).unwrap(), None, "{partial:?}");
    }
}

#[test]
fn malformed_replies_are_errors() {
    assert_eq!(scan_err(b"$abc\r\n"), ProtocolError::InvalidBulkLength);
    assert_eq!(scan_err(b"$-2\r\n"), ProtocolError::InvalidBulkLength);
    assert_eq!(scan_err(b"$99999999999999999999999\r\n"), ProtocolError::InvalidBulkLength);
    assert_eq!(scan_err(b"*x\r\n"), ProtocolError::InvalidMultibulkLength);
    assert_eq!(scan_err(b"$3\r\nabcXY"), ProtocolError::MissingCrlf);
    assert_eq!(scan_err(b":12a\r\n"), ProtocolError::InvalidInteger);
    assert_eq!(scan_err(b":9223372036854775808\r\n"), ProtocolError::InvalidInteger);
    assert_eq!(scan_err(b"#x\r\n"), ProtocolError::InvalidBoolean);
    assert_eq!(scan_err(b",1.2.3\r\n"), ProtocolError::InvalidDouble);
    assert_eq!(scan_err(b"_x\r\n"), ProtocolError::InvalidNull);
    assert_eq!(scan_err(b"=2\r\nab\r\n"), ProtocolError::InvalidVerbatim);
    assert_eq!(scan_err(b"*?\r\n"), ProtocolError::Streamed);
    assert_eq!(scan_err(b"@1\r\n"), ProtocolError::UnknownType(b'@'));
    assert_eq!(frame_len(b":-9223372036854775808\r\n", &Limits::default()).unwrap(), Some(23));
}

#[test]
fn limits_are_enforced() {
    let limits = Limits { max_bulk_len: 4, max_elements: 2, max_depth: 2, max_inline_len: 8 };
    assert_eq!(frame_len(b"$5\r\nhello\r\n", &limits), Err(ProtocolError::InvalidBulkLength));
    assert_eq!(frame_len(b"*3\r\n", &limits), Err(ProtocolError::InvalidMultibulkLength));
    assert_eq!(frame_len(b"*1\r\n*1\r\n*1\r\n:1\r\n", &limits), Err(ProtocolError::TooDeep));
    assert_eq!(frame_len(b"*1\r\n*1\r\n:1\r\n", &limits), Ok(Some(12)));
    let mut parser = RequestParser::new(limits);
    assert_eq!(parser.parse(b"PING PING PING\r\n"), Err(ProtocolError::InlineTooBig));
    assert_eq!(parser.parse(b"*3\r\n"), Err(ProtocolError::InvalidMultibulkLength));
    assert_eq!(parser.parse(b"*1\r\n$5\r\nhello\r\n"), Err(ProtocolError::InvalidBulkLength));
}

#[test]
fn scanner_resumes_across_reads() {
    let frame = b"*3\r\n$3\r\nfoo\r\n%1\r\n+a\r\n*1\r\n:7\r\n,2.5\r\n";
    let mut scanner = Scanner::new(Limits::default());
    for end in 0..frame.len() {
        assert_eq!(scanner.scan(&frame[..end]).unwrap(), None, "prefix of {end} bytes");
    }
    assert_eq!(scanner.scan(frame).unwrap(), Some(frame.len()));
    // After a frame it starts over by itself.
    assert_eq!(scanner.scan(b"+OK\r\n").unwrap(), Some(5));
}

fn request(parser: &mut RequestParser, bytes: &[u8]) -> (usize, Vec<Vec<u8>>, Vec<u8>) {
    match parser.parse(bytes).unwrap() {
        Parsed::Request { consumed } => {
            let args = parser.args(bytes).map(<[u8]>::to_vec).collect();
            (consumed, args, parser.resp(bytes)[..].to_vec())
        }
        other => panic!("expected a request, got {other:?}"),
    }
}

#[test]
fn multibulk_requests() {
    let mut parser = RequestParser::new(Limits::default());
    let bytes = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*1\r\n$4\r\nPING\r\n";
    let (consumed, args, _) = request(&mut parser, bytes);
    assert_eq!(consumed, 22);
    assert_eq!(args, vec![b"GET".to_vec(), b"key".to_vec()]);
    let (consumed, args, _) = request(&mut parser, &bytes[22..]);
    assert_eq!((consumed, args), (14, vec![b"PING".to_vec()]));
    assert_eq!(parser.parse(b"*0\r\n").unwrap(), Parsed::Empty { consumed: 4 });
    assert_eq!(parser.parse(b"*-1\r\n").unwrap(), Parsed::Empty { consumed: 5 });
}

#[test]
fn malformed_requests_get_redis_errors() {
    let mut parser = RequestParser::new(Limits::default());
    let mut err = |bytes: &[u8]| {
        parser.reset();
        parser.parse(bytes).unwrap_err().to_string()
    };
    assert_eq!(err(b"*1\r\n+PING\r\n"), "expected '$', got '+'");
    assert_eq!(err(b"*1\r\n$-1\r\n"), "invalid bulk length");
    assert_eq!(err(b"*1\r\n$x\r\n"), "invalid bulk length");
    assert_eq!(err(b"*abc\r\n"), "invalid multibulk length");
    assert_eq!(err(b"*99999999999\r\n"), "invalid multibulk length");
    assert_eq!(err(b"*1\r\n$1\r\nab\r\n"), "missing CRLF after bulk payload");
    assert_eq!(err(b"SET \"unterminated\r\n"), "unbalanced quotes in request");
    assert_eq!(err(b"SET \"a\"b\r\n"), "unbalanced quotes in request");
    assert_eq!(err(&[b'A'; 70 * 1024]), "too big inline request");
    let mut long_count = b"*".to_vec();
    long_count.extend(std::iter::repeat_n(b'1', 70 * 1024));
    assert_eq!(err(&long_count), "too big mbulk count string");
}

#[test]
fn inline_requests_follow_redis_quoting() {
    let mut parser = RequestParser::new(Limits::default());
    let line = b"SET  \"a b\\n\\x41\" 'it\\'s'\r\n";
    let (consumed, args, resp) = request(&mut parser, line);
    assert_eq!(consumed, line.len());
    assert_eq!(args, vec![b"SET".to_vec(), b"a b\nA".to_vec(), b"it's".to_vec()]);
    assert_eq!(resp, b"*3\r\n$3\r\nSET\r\n$5\r\na b\nA\r\n$4\r\nit's\r\n");
    assert_eq!(parser.parse(b"   \r\nPING\r\n").unwrap(), Parsed::Empty { consumed: 5 });
    let (_, args, _) = request(&mut parser, b"PING\n");
    assert_eq!(args, vec![b"PING".to_vec()]);
    assert_eq!(parser.parse(b"PIN").unwrap(), Parsed::Incomplete);
}

#[test]
fn request_parser_resumes_across_reads() {
    let bytes = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";
    let mut parser = RequestParser::new(Limits::default());
    for end in 0..bytes.len() {
        assert_eq!(parser.parse(&bytes[..end]).unwrap(), Parsed::Incomplete, "prefix {end}");
    }
    let (consumed, args, _) = request(&mut parser, bytes);
    assert_eq!(consumed, bytes.len());
    assert_eq!(args[2], b"value");
}

#[test]
fn writers_produce_what_redis_sends() {
    let mut out = Vec::new();
    resp::write::command(&mut out, &["SET", "k", "v"]);
    resp::write::integer(&mut out, -7);
    resp::write::null_bulk(&mut out);
    resp::write::double(&mut out, f64::INFINITY);
    resp::write::error(&mut out, b"ERR x");
    assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n:-7\r\n$-1\r\n,inf\r\n-ERR x\r\n");
}

#[test]
fn scanner_says_how_long_a_partial_bulk_reply_will_be() {
    let mut scanner = Scanner::new(Limits::default());
    // Header incomplete: not known yet.
    assert_eq!(scanner.scan(b"$100").unwrap(), None);
    assert_eq!(scanner.wanted(b"$100"), None);
    // A bulk of 100 bytes: header (6) + value (100) + CRLF (2).
    let partial = b"$100\r\nabc";
    assert_eq!(scanner.scan(partial).unwrap(), None);
    assert_eq!(scanner.wanted(partial), Some(108));
    // Inside an aggregate, after its first element: the second element's end.
    let mut scanner = Scanner::new(Limits::default());
    let partial = b"*2\r\n$1\r\na\r\n$10\r\n";
    assert_eq!(scanner.scan(partial).unwrap(), None);
    assert_eq!(scanner.wanted(partial), Some(partial.len() + 12));
    // Not a bulk: nothing to say.
    let mut scanner = Scanner::new(Limits::default());
    assert_eq!(scanner.scan(b"+OK").unwrap(), None);
    assert_eq!(scanner.wanted(b"+OK"), None);
}
