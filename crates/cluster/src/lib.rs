//! The Redis Cluster model.
//!
//! Pure parts (no I/O, tested without sockets): [`slot`] (which slot a key lives in),
//! [`topology`] (what `CLUSTER NODES` / `CLUSTER SHARDS` say, as one model), [`plan`] (how to
//! form a cluster), [`check`] (what is wrong with one), [`fix`] (how to repair it),
//! [`reshard`] (which slots a rebalance or reshard moves).
//! I/O at the edge: [`net`] (opening a node stream, plain or TLS), [`admin`] (an async connection for operator commands), [`ops`]
//! (operations that gather state and apply plans) and [`mover`] (moving slots live).

pub mod admin;
pub mod check;
pub mod fix;
pub mod mover;
pub mod net;
pub mod ops;
pub mod plan;
pub mod reshard;
pub mod slot;
pub mod status;
pub mod topology;

pub use slot::{SLOT_COUNT, key_slot};
