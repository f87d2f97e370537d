//! Checking a request's rights allocates nothing: the classification of an allowed request
//! by a user with key and channel patterns is counted by a global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use proxy::acl::user::parse_users_file;
use proxy::commands::CommandTable;
use proxy::plan::{ClientState, Plan, Policy, classify};
use proxy::security::{Security, SecurityConfig};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn classifying_an_allowed_request_with_rights_checks_allocates_nothing() {
    let table = CommandTable::builtin();
    let users = "user app on >pw +@all -@dangerous ~other:* %R~r:* ~key:* &news.*\n";
    let config = SecurityConfig { users: parse_users_file(users).unwrap(), ..Default::default() };
    let security = Arc::new(Security::new(&config, &table).unwrap());
    let policy = Policy { security, ..Policy::default() };
    let state = ClientState { user: Some(0), ..ClientState::default() };
    let requests: [&[&[u8]]; 5] = [
        &[b"GET", b"key:000123"],
        &[b"SET", b"key:000123", b"value"],
        &[b"MGET", b"key:1", b"r:2"],
        &[b"EVAL", b"return 1", b"1", b"key:1"],
        &[b"PUBLISH", b"news.today", b"m"],
    ];
    let mut keys = Vec::with_capacity(16);
    for request in requests {
        // Once to warm up (the keys vector), then counted.
        let plan = classify(&table, &policy, state, request, &mut keys);
        assert!(!matches!(plan, Plan::Refuse(_)), "{request:?}: {plan:?}");
        let before = allocations();
        for _ in 0..100 {
            let plan = classify(&table, &policy, state, request, &mut keys);
            std::hint::black_box(&plan);
        }
        assert_eq!(allocations() - before, 0, "{request:?}");
    }
    // A refused request may allocate its error text; that is off the hot path.
    let denied: &[&[u8]] = &[b"GET", b"secret"];
    assert!(matches!(classify(&table, &policy, state, denied, &mut keys), Plan::Refuse(_)));
}
