//! Micro-benchmark of routing one request: find the command in the table, find its keys,
//! hash them to a slot, look up the slot's master. `cargo bench -p proxy --bench route` prints
//! ns per request. Plain harness, best of five rounds of about 0.1 s, as the scanner's bench.

use std::hint::black_box;
use std::time::{Duration, Instant};

use proxy::commands::{CommandTable, key_positions};
use proxy::slotmap::SlotMap;

fn measure(name: &str, mut route: impl FnMut() -> u16) {
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut n = 0u32;
        while start.elapsed() < Duration::from_millis(100) {
            for _ in 0..1000 {
                black_box(route());
            }
            n += 1000;
        }
        best = best.min(start.elapsed() / n);
    }
    println!("{name:<44} {:>8.1} ns/request", best.as_nanos() as f64);
}

fn main() {
    let table = CommandTable::builtin();
    let nodes = "\
a 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922
c 127.0.0.1:7003@17003 master - 0 0 3 connected 10923-16383
";
    let map = SlotMap::from_topology(&cluster::topology::parse_cluster_nodes(nodes).unwrap());
    let mut keys = Vec::with_capacity(16);
    let mut route = |args: &[&[u8]]| -> u16 {
        let info = table.lookup(args).unwrap();
        key_positions(info, args, &mut keys).unwrap();
        let slot = cluster::key_slot(args[keys[0]]);
        map.master_of(slot).unwrap()
    };
    let get: [&[u8]; 2] = [b"GET", b"key:000123456"];
    measure("GET key:000123456", || route(&get));
    let set: [&[u8]; 3] = [b"set", b"user:{42}:profile", &[b'x'; 32]];
    measure("set user:{42}:profile <32 B> (hash tag)", || route(&set));
    let eval: [&[u8]; 5] =
        [b"EVALSHA", b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db", b"1", b"key:1", b"arg"];
    measure("EVALSHA sha 1 key:1 arg (movable keys)", || route(&eval));
    let object: [&[u8]; 3] = [b"OBJECT", b"ENCODING", b"key:1"];
    measure("OBJECT ENCODING key:1 (subcommand)", || route(&object));
}
