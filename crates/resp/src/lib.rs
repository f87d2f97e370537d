//! RESP2/RESP3: find complete frames in a byte buffer without copying, parse them when a caller
//! needs values, and write frames.
//!
//! Three layers, from hottest to coldest:
//! - [`Scanner`]: resumable, tells where the first complete frame of a buffer ends. The proxy
//!   uses it on backend replies, which it forwards as the raw bytes the node sent.
//! - [`RequestParser`]: a client request (multibulk or inline) with the position of every
//!   argument, reusing its own buffers so that steady-state parsing allocates nothing.
//! - [`Value`] / [`parse_value`]: an owned tree, for admin connections and tests.
//!
//! Writers ([`write`]) append frames to any [`bytes::BufMut`].

mod error;
mod limits;
mod request;
mod scan;
mod value;
pub mod write;

pub use error::ProtocolError;
pub use limits::Limits;
pub use request::{Parsed, RequestParser};
pub use scan::{Scanner, frame_len};
pub use value::{Value, parse_value};
