//! Port checks. A Redis Cluster node listens on its port and on port + 10000 (the cluster bus),
//! so both must be free.

use std::net::TcpListener;

/// Offset of the cluster bus port from the client port, fixed by Redis.
pub const BUS_PORT_OFFSET: u16 = 10000;

/// True when nothing listens on `host:port` (we can bind it ourselves).
pub fn is_free(host: &str, port: u16) -> bool {
    TcpListener::bind((host, port)).is_ok()
}

/// The first port among `ports` (or their bus ports) that is taken, if any.
pub fn first_taken(host: &str, ports: &[u16]) -> Option<u16> {
    ports.iter().flat_map(|&p| [p, p + BUS_PORT_OFFSET]).find(|&p| !is_free(host, p))
}

/// Finds `count` consecutive ports on 127.0.0.1 whose bus ports are free too, starting from a
/// random point so that tests running at once rarely race for the same block.
pub fn free_block(count: u16) -> Option<u16> {
    let span = u32::from(20000 - count);
    let seed = random_seed();
    (0..200u32).map(|i| 30000 + (seed.wrapping_add(i * 37) % span) as u16).find(|&base| {
        let ports: Vec<u16> = (base..base + count).collect();
        first_taken("127.0.0.1", &ports).is_none()
    })
}

/// A port on 127.0.0.1 that was free a moment ago (the kernel's choice).
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

fn random_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().wrapping_mul(2654435761)
}
