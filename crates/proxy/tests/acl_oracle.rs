//! The proxy's ACL against Redis' own: random users and requests are given to a real
//! redis-server (`ACL SETUSER` + `ACL DRYRUN`) and to [`proxy::acl`], and the answers must be
//! the same: which rules are refused, which requests are allowed, and why one is denied.

use std::cell::RefCell;

use deploy::testing::StandaloneServer;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use proxy::acl::{self, Denied, User, user::parse_rule};
use proxy::commands::{CommandTable, key_positions};

fn connect(server: &StandaloneServer) -> redis::Connection {
    redis::Client::open(format!("redis://{}/", server.addr())).unwrap().get_connection().unwrap()
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

/// Redis' DRYRUN answer in the proxy's terms: `Ok`, or the denial (`run 'name'`, `key`,
/// `channel`).
fn redis_answer(reply: redis::RedisResult<String>) -> Result<(), String> {
    let text = match reply {
        Ok(ok) if ok == "OK" => return Ok(()),
        Ok(text) => text,
        Err(e) => panic!("DRYRUN failed: {e}"),
    };
    if let Some(rest) = text.strip_prefix("This user has no permissions to run the '") {
        Err(format!("run '{}'", rest.trim_end_matches("' command")))
    } else if text.ends_with("' key") {
        Err("key".into())
    } else if text.ends_with("' channel") {
        Err("channel".into())
    } else {
        panic!("unexpected DRYRUN reply {text:?}")
    }
}

fn our_answer(user: &User, table: &CommandTable, line: &[&[u8]]) -> Result<(), String> {
    let info = table.lookup(line).expect("a known command");
    let mut routed = Vec::new();
    let _ = key_positions(info, line, &mut routed);
    acl::check(user, info, line, &routed).map_err(|denied| match denied {
        Denied::Command(name) => format!("run '{name}'"),
        Denied::Key => "key".into(),
        Denied::Channel => "channel".into(),
    })
}

#[test]
fn glob_matches_like_redis_acl_key_patterns() {
    let server = StandaloneServer::start();
    let conn = RefCell::new(connect(&server));
    let table = CommandTable::builtin();
    // Patterns from pieces, so classes, ranges, escapes and their broken forms all come up.
    const PIECES: &[&str] = &[
        "a", "b", "*", "**", "?", "[ab]", "[^a]", "[a-b]", "[b-a]", "[\\]]", "\\*", "\\", "[^",
        "[", "[a", "]", "^", "-", "[a-]",
    ];
    let pattern = proptest::collection::vec(proptest::sample::select(PIECES), 1..5)
        .prop_map(|pieces| pieces.concat());
    let key = proptest::string::string_regex(r"[ab]{0,3}|[ab*\\\]^\[-]{0,4}").unwrap();
    runner(3000)
        .run(&(pattern, key), |(pattern, key)| {
            let mut conn = conn.borrow_mut();
            let rule = format!("%R~{pattern}");
            let set: redis::RedisResult<String> = redis::cmd("ACL")
                .arg(&["SETUSER", "g", "reset", "on", "nopass", "+get", &rule][..])
                .query(&mut *conn);
            prop_assert!(set.is_ok(), "Redis refused {rule}: {set:?}");
            let theirs = redis_answer(
                redis::cmd("ACL").arg(&["DRYRUN", "g", "get", &key][..]).query(&mut *conn),
            );
            let ours = acl::glob::matches(pattern.as_bytes(), key.as_bytes());
            prop_assert_eq!(theirs.is_ok(), ours, "pattern {:?} key {:?}", pattern, key);
            let user = User::compile(
                "g",
                &["reset", "on", "nopass", "+get", &rule].map(|r| parse_rule(r).unwrap()),
                &table,
            )
            .unwrap();
            prop_assert_eq!(our_answer(&user, &table, &[b"get", key.as_bytes()]), theirs);
            Ok(())
        })
        .unwrap();
}

const RULES: &[&str] = &[
    "+@all",
    "-@all",
    "+@read",
    "-@write",
    "+@string",
    "-@dangerous",
    "+@slow",
    "+@fast",
    "-@slow",
    "+@keyspace",
    "+@pubsub",
    "-@admin",
    "+config",
    "-config|set",
    "+config|get",
    "+get",
    "-get",
    "+set",
    "+client",
    "-client|getname",
    "+publish",
    "+subscribe",
    "+psubscribe",
    "-@scripting",
    "+eval",
    "+sort",
    "+bitfield",
    "~app:*",
    "%R~r:*",
    "%W~w:*",
    "%RW~a*",
    "~[ar]:?",
    "resetkeys",
    "&news.*",
    "&other",
    "resetchannels",
    "+object",
    "-object|freq",
    "+@hash",
];

const REQUESTS: &[&str] = &[
    "GET app:1",
    "GET r:1",
    "GET w:1",
    "SET w:1 v",
    "SET r:1 v GET",
    "MGET a r:1",
    "MSET app:1 x w:1 y",
    "CONFIG GET maxmemory",
    "CONFIG SET maxmemory 1",
    "CLIENT GETNAME",
    "CLIENT ID",
    "PUBLISH news.1 m",
    "PUBLISH other m",
    "SUBSCRIBE news.1 other",
    "PSUBSCRIBE news.*",
    "PSUBSCRIBE new*",
    "FLUSHALL",
    "EVAL s 1 app:1",
    "EVAL s 0",
    "RENAME r:1 w:1",
    "COPY r:1 w:1",
    "EXISTS r:1",
    "SORT r:1 STORE w:1",
    "SORT r:1 BY w:* LIMIT 0 1",
    "BITFIELD r:1 GET u8 0",
    "BITFIELD w:1 SET u8 0 1",
    "XREAD STREAMS r:1 w:1 0 0",
    "HSET app:h f v",
    "PING",
    "OBJECT ENCODING app:1",
    "OBJECT FREQ r:1",
    "LMOVE r:1 w:1 LEFT RIGHT",
    "ZUNIONSTORE w:1 2 r:1 app:1",
    "GEORADIUS r:1 0 0 1 km STORE w:1",
    "BLPOP app:1 0",
    "DEBUG SLEEP 0",
    "AUTH x y",
];

#[test]
fn rights_are_the_same_as_redis_acl_dryrun() {
    let server = StandaloneServer::start();
    let conn = RefCell::new(connect(&server));
    let table = CommandTable::builtin();
    let rules = proptest::collection::vec(proptest::sample::select(RULES), 1..7);
    let request = proptest::sample::select(REQUESTS);
    runner(1500)
        .run(&(rules, request), |(rules, request)| {
            let mut conn = conn.borrow_mut();
            let mut all = vec!["reset", "on", "nopass"];
            all.extend(&rules);
            let set: redis::RedisResult<String> =
                redis::cmd("ACL").arg("SETUSER").arg("t").arg(&all).query(&mut *conn);
            let parsed: Vec<_> = all.iter().map(|r| parse_rule(r).unwrap()).collect();
            let ours = User::compile("t", &parsed, &table);
            prop_assert_eq!(
                set.is_ok(),
                ours.is_ok(),
                "rules {:?}: {:?} / {:?}",
                all,
                set,
                ours.err()
            );
            let Ok(user) = ours else { return Ok(()) };
            let line: Vec<&str> = request.split(' ').collect();
            let theirs =
                redis_answer(redis::cmd("ACL").arg("DRYRUN").arg("t").arg(&line).query(&mut *conn));
            let bytes: Vec<&[u8]> = line.iter().map(|a| a.as_bytes()).collect();
            prop_assert_eq!(
                our_answer(&user, &table, &bytes),
                theirs,
                "rules {:?} request {}",
                all,
                request
            );
            Ok(())
        })
        .unwrap();
}
