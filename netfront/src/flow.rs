//! The queue a frame leaves on: a stable hash of its flow (Linux's netfront picks the tx
//! queue from the skb's hash, `xennet_select_queue`), so that one connection's frames always
//! take the same queue and are never reordered.

/// FNV-1a over `bytes`, continuing from `hash`.
fn fnv(hash: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(hash, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// The hash of an Ethernet frame's flow: for IPv4 and IPv6, the addresses, the protocol and
/// (TCP and UDP, unfragmented) the ports; 0 for anything else (ARP) or a frame too short to
/// say.
pub fn flow_hash(frame: &[u8]) -> u32 {
    const BASIS: u32 = 0x811c_9dc5;
    let ethertype = frame.get(12..14).map(|t| u16::from_be_bytes([t[0], t[1]]));
    let (addresses, proto, l4) = match ethertype {
        Some(0x0800) => {
            let Some(&ver_ihl) = frame.get(14) else {
                return 0;
            };
            let ihl = usize::from(ver_ihl & 0x0f) * 4;
            // A fragment other than the first has no ports; every fragment hashes alike.
            let fragmented = frame
                .get(20..22)
                .is_some_and(|f| u16::from_be_bytes([f[0], f[1]]) & 0x3fff != 0);
            let l4 = (!fragmented).then_some(14 + ihl);
            (frame.get(26..34), frame.get(23).copied(), l4)
        }
        Some(0x86dd) => (frame.get(22..54), frame.get(20).copied(), Some(54)),
        _ => return 0,
    };
    let (Some(addresses), Some(proto)) = (addresses, proto) else {
        return 0;
    };
    let mut hash = fnv(fnv(BASIS, addresses), &[proto]);
    if matches!(proto, 6 | 17)
        && let Some(ports) = l4.and_then(|at| frame.get(at..at + 4))
    {
        hash = fnv(hash, ports);
    }
    hash
}

/// The queue of `queues` (at least 1) that `frame` leaves on.
pub fn queue_for(frame: &[u8], queues: usize) -> usize {
    usize::try_from(flow_hash(frame)).unwrap_or(0) % queues.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn tcp(sport: u16, dport: u16) -> Vec<u8> {
        let mut f = alloc::vec![0u8; 54];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 0, 0, 2]);
        f[30..34].copy_from_slice(&[10, 0, 0, 1]);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn one_flow_one_queue_and_flows_spread() {
        let a = tcp(40_000, 9);
        let mut b = tcp(40_000, 9);
        // The payload and the sequence number do not move the flow.
        b[40] = 0xff;
        assert_eq!(flow_hash(&a), flow_hash(&b));
        let used: Vec<usize> = (0..8).map(|i| queue_for(&tcp(40_100 + i, 9), 2)).collect();
        assert!(used.contains(&0) && used.contains(&1), "{used:?}");
        // ARP, runts and one queue: queue 0.
        let mut arp = tcp(1, 2);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(queue_for(&arp, 2), 0);
        assert_eq!(queue_for(&a[..20], 2), 0);
        assert_eq!(queue_for(&a, 1), 0);
        assert_eq!(queue_for(&a, 0), 0);
    }
}
