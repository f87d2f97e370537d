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

/// Lowest client port [`free_block`] hands out.
const BLOCK_LOW: u16 = 12000;
/// Highest client port + 1 [`free_block`] hands out: bus ports (port + 10000) stay below Linux's
/// default ephemeral range (32768-60999), where the kernel's outgoing and TIME-WAIT sockets
/// would make a block look taken (seen with ~9,500 TIME-WAIT sockets during a test run).
const BLOCK_HIGH: u16 = 32768 - BUS_PORT_OFFSET;

/// Finds `count` consecutive ports on 127.0.0.1 whose bus ports are free too, starting from a
/// random point so that tests running at once rarely race for the same block.
pub fn free_block(count: u16) -> Option<u16> {
    let span = u32::from(BLOCK_HIGH - BLOCK_LOW - count);
    let seed = random_seed();
    (0..200u32).map(|i| BLOCK_LOW + (seed.wrapping_add(i * 37) % span) as u16).find(|&base| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_block_and_its_bus_ports_lie_below_the_ephemeral_range() {
        let base = free_block(6).expect("a free block");
        assert!(base >= BLOCK_LOW);
        assert!(
            base + 6 + BUS_PORT_OFFSET <= 32768,
            "bus ports of {base} reach the ephemeral range"
        );
        assert_eq!(first_taken("127.0.0.1", &(base..base + 6).collect::<Vec<_>>()), None);
    }
}
