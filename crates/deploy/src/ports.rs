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
/// random point so that tests running at once rarely race for the same block. A block is
/// handed out once per process: a test that kills a node and starts it again on its port must
/// not find that port taken by a block handed to another test while the node was down.
pub fn free_block(count: u16) -> Option<u16> {
    static HANDED_OUT: std::sync::Mutex<Vec<std::ops::Range<u16>>> =
        std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let span = u32::from(BLOCK_HIGH - BLOCK_LOW - count);
    let seed = random_seed();
    let base = (0..200u32).map(|i| BLOCK_LOW + (seed.wrapping_add(i * 37) % span) as u16).find(
        |&base| {
            let block = base..base + count;
            let ports: Vec<u16> = block.clone().collect();
            !handed_out.iter().any(|r| r.start < block.end && block.start < r.end)
                && first_taken("127.0.0.1", &ports).is_none()
        },
    )?;
    handed_out.push(base..base + count);
    Some(base)
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

    #[test]
    fn a_block_is_handed_out_once_even_while_its_ports_are_free() {
        let blocks: Vec<u16> = (0..50).map(|_| free_block(6).expect("a free block")).collect();
        for (i, a) in blocks.iter().enumerate() {
            for b in &blocks[i + 1..] {
                assert!(a + 6 <= *b || b + 6 <= *a, "blocks at {a} and {b} overlap");
            }
        }
    }
}
